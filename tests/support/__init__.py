"""Helpers shared by the test modules: sites on disk, the command line, servers (real and in process).

Fixtures live in ``tests/conftest.py``; test modules import helpers from here, never from each other.
"""
