"""The terminal UI's screens: each asks ``app.source`` (a :class:`cc_backend.tui.source.JobSource`) for its data."""
