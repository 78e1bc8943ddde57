"""The Textual terminal UI; built in a later issue."""
