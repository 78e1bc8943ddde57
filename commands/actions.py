"""Upstream's action flags (``-init-db``, ``-add-user`` ...), run in upstream's order; each action is one function that the matching subcommand runs too."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from cc_backend.runtime import Runtime


def print_version(runtime: Runtime) -> None:
    """``--version`` and ``db version``: program, supported versions, what the configured database and archive hold."""
    from cc_backend.version import version_info

    info = version_info(runtime)
    click.echo(f"cc-backend (Python) {info.program}")
    click.echo(f"SQL db version: {info.schema_version}")
    click.echo(f"Job archive version: {info.archive_version}")
    if info.database_version is not None:
        dirty = " (dirty)" if info.database_dirty else ""
        click.echo(f"Configured database ({info.database_url}): schema version {info.database_version}{dirty}")
    if info.archive_path_version is not None:
        click.echo(f"Configured job archive: version {info.archive_path_version}")


def init_directory(directory: Path) -> None:
    """``--init`` and ``init``."""
    from cc_backend.project_init import init_here

    for path in init_here(directory):
        click.echo(f"created {path}")


def migrate_database(runtime: Runtime) -> None:
    """``--migrate-db`` and ``db migrate``."""
    from cc_backend.db.migrate import migrate

    before, after = migrate(runtime.raw_engine)
    click.echo(f"database migrated from schema version {before} to {after}" if before != after
               else f"database is at schema version {after}")


def revert_database(runtime: Runtime) -> None:
    """``--revert-db`` and ``db revert``."""
    from cc_backend.db.migrate import revert

    before, after = revert(runtime.raw_engine)
    click.echo(f"database reverted from schema version {before} to {after}")


def force_database(runtime: Runtime) -> None:
    """``--force-db`` and ``db force``."""
    from cc_backend.db.migrate import SCHEMA_VERSION, force

    force(runtime.raw_engine)
    click.echo(f"database marked clean at schema version {SCHEMA_VERSION}")


def optimize_database(runtime: Runtime) -> None:
    """``--optimize-db`` and ``db optimize``."""
    from cc_backend.db.engine import is_sqlite
    from cc_backend.db.migrate import optimize

    optimize(runtime.engine)
    click.echo("database optimized (" + ("VACUUM, ANALYZE" if is_sqlite(runtime.engine) else "OPTIMIZE TABLE") + ")")


def print_token(runtime: Runtime, username: str) -> None:
    """``--jwt`` and ``jwt``: the token on stdout, warnings on stderr."""
    from cc_backend.auth.keys import user_token

    token, warnings = user_token(runtime, username)
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(token)


def import_jobs(runtime: Runtime, specs: list[tuple[str, str]]) -> None:
    """``--import-job`` and ``import``."""
    from cc_backend.importer import import_files

    summary = import_files(runtime.engine, runtime.archive, specs, validate=runtime.config.main.validate_json)
    click.echo(f"imported {summary.jobs} job(s)")


def run_flag_actions(runtime: Runtime, *, show_version, do_init, migrate_db, revert_db, force_db, optimize_db,
                     add_user, del_user, jwt_user, init_db, import_job, sync_ldap=False,
                     apply_tags=False) -> bool | None:
    """Run the requested actions; None if one of them always ends the program, else whether any ran."""
    if show_version:
        print_version(runtime)
        return None
    if do_init:
        init_directory(Path.cwd())
        return None
    runtime.load_env()
    if migrate_db:
        migrate_database(runtime)
        return None
    if revert_db:
        revert_database(runtime)
        return None
    if force_db:
        force_database(runtime)
        return None
    if init_db:
        # Upstream's README sets up a new site with `-init-db -add-user ... -no-server`: the schema
        # must exist before -add-user (which runs first, in upstream's order) touches the database.
        from cc_backend.db.migrate import ensure_schema

        ensure_schema(runtime.raw_engine)
    did = False
    if optimize_db:
        optimize_database(runtime)
        did = True
    if (add_user or del_user or jwt_user or sync_ldap) and runtime.config.main.disable_authentication:
        raise click.UsageError("--add-user, --del-user, --sync-ldap and --jwt need authentication, but "
                               "main.disable-authentication is set in the configuration")
    if add_user:
        from cc_backend.auth.users import add_user as add
        from cc_backend.auth.users import parse_user_spec

        name, roles, password = parse_user_spec(add_user)
        user = add(runtime.engine, name, password=password, roles=roles)
        click.echo(f"added user {user.username!r} with roles {', '.join(user.roles)}")
        did = True
    if del_user:
        from cc_backend.auth.users import delete_user

        delete_user(runtime.engine, del_user)  # like upstream: deleting an absent user is no error
        click.echo(f"deleted user {del_user!r}")
        did = True
    if sync_ldap:
        from cc_backend.auth.ldap import ldap_directory, sync_users

        result = sync_users(runtime.engine, ldap_directory(runtime))
        click.echo(f"LDAP sync: {len(result.added)} added, {len(result.removed)} removed")
        did = True
    if jwt_user:
        print_token(runtime, jwt_user)
        did = True
    if init_db:
        run_init_db(runtime)
        did = True
    if import_job:
        from cc_backend.importer import parse_import_spec

        import_jobs(runtime, parse_import_spec(import_job))
        did = True
    if apply_tags:  # upstream's order: after -init-db and -import-job, so their jobs are tagged too
        click.echo(describe_tag_runs(run_taggers(runtime)))
        did = True
    return did


def run_taggers(runtime: Runtime, names: Sequence[str] | None = None, filters: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """Run the taggers (default both, AppTagger first) over the jobs matching ``filters``, a progress bar each."""
    from cc_backend.commands.output import progress_bar
    from cc_backend.taggers.service import TAGGER_KINDS

    summaries = []
    for name in names or list(TAGGER_KINDS):
        total = runtime.taggers.count(filters)
        bar = progress_bar(name, total)
        try:
            summary = runtime.taggers.run(name, filters, progress=bar.update if bar is not None else None)
        finally:
            if bar is not None:
                bar.close()
        summaries.append(summary.to_dict())
    return summaries


def describe_tag_runs(summaries: Sequence[dict[str, Any]]) -> str:
    """One line per tagger run, then how many jobs got each tag."""
    lines = []
    for run in summaries:
        line = (f"{run['tagger']}: {run['jobs']} jobs, {run['tagged']} tagged"
                + (f", {run['skipped']} not archived (skipped)" if run["skipped"] else "")
                + (f", {run['failed']} failed (see the log)" if run["failed"] else "")
                + f" [{run['seconds']:.1f} s]")
        lines.append(line)
        lines.extend(f"  {tag}: {count} jobs" for tag, count in run["tags"].items())
    return "\n".join(lines)


def run_init_db(runtime: Runtime, workers: int | None = None) -> None:
    """Rebuild the job tables with a progress bar on a terminal and a summary at the end."""
    from cc_backend.db.migrate import ensure_schema
    from cc_backend.importer import init_db

    ensure_schema(runtime.raw_engine)  # a fresh database file gets the schema; an outdated one is refused
    from cc_backend.commands.output import progress_bar

    bar = progress_bar("init-db")

    def progress(n: int) -> None:
        if bar is not None:
            bar.update(n)

    summary = init_db(runtime.engine, runtime.archive, workers=workers, progress=progress)
    if bar is not None:
        bar.close()
    for path, reason in summary.skipped[:20]:
        click.echo(f"skipped {path}: {reason}", err=True)
    if len(summary.skipped) > 20:
        click.echo(f"... and {len(summary.skipped) - 20} more skipped files", err=True)
    for path, what in summary.notes[:20]:
        click.echo(f"{path}: {what}", err=True)
    click.echo(f"init-db: {summary.jobs} jobs, {summary.tags} tags, {len(summary.skipped)} skipped, "
               f"{summary.seconds:.1f} s ({summary.rate:,.0f} jobs/s)")


def start_server(runtime: Runtime, *, dev: bool = False) -> None:
    from cc_backend.commands.main import LOGLEVEL_GIVEN
    from cc_backend.server import serve

    ctx = click.get_current_context(silent=True)
    if ctx is not None and not ctx.find_root().meta.get(LOGLEVEL_GIVEN, True):
        # As upstream, a server logs one line per request unless told otherwise (--loglevel warn).
        logging.getLogger().setLevel(logging.INFO)

    serve(runtime, dev=dev)
