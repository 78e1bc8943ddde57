"""Helpers shared by the commands: the Runtime of the current invocation."""

from __future__ import annotations

import click

from cc_backend.runtime import Runtime


def runtime() -> Runtime:
    """The Runtime the root group created (config, database, archive)."""
    obj = click.get_current_context().find_root().obj
    if not isinstance(obj, Runtime):  # a command invoked directly, e.g. from a test
        obj = Runtime()
        click.get_current_context().find_root().obj = obj
    return obj
