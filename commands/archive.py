"""``cc-backend archive``: information about the job archive and its validation against the schemas."""

from __future__ import annotations

import click

from cc_backend.commands.common import runtime
from cc_backend.commands.output import emit, format_option


@click.group("archive")
def archive_group() -> None:
    """Job archive tools."""


@archive_group.command("info")
@format_option
def info_cmd(fmt: str) -> None:
    """Per cluster: number of archived jobs, first and last start time, size on disk."""
    from cc_backend.archive.info import archive_info

    rows = archive_info(runtime().archive.root)
    emit(rows, ["cluster", "jobs", "first_start", "last_start", "megabytes"], fmt)


@archive_group.command("validate")
@click.option("--path", "path", default=None, help="Archive directory (default: archive.path of the config).")
@format_option
def validate_cmd(path: str | None, fmt: str) -> None:
    """Validate version.txt, cluster.json, meta.json and data files against the archive JSON schemas.

    Exits with status 1 if any file is invalid.
    """
    from cc_backend.archive.validate import validate_archive

    root = path or runtime().config.archive.path
    problems = validate_archive(root)
    if problems or fmt != "table":
        emit([{"path": p, "problem": m} for p, m in problems], ["path", "problem"], fmt)
    if problems:
        raise click.exceptions.Exit(1)
    if fmt == "table":
        click.echo(f"{root}: valid")
