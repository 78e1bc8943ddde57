"""Administrative subcommands: init, init-db, import, db, gen-keypair, jwt, serve."""

from __future__ import annotations

from pathlib import Path

import click

from cc_backend.commands.common import runtime
from cc_backend.commands.output import emit, emit_object, format_option


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
def init_cmd(directory: Path) -> None:
    """Create config.json, .env (fresh keys), var/job.db and var/job-archive in DIRECTORY.

    Refuses to overwrite anything that exists.
    """
    from cc_backend.project_init import init_here

    for path in init_here(directory):
        click.echo(f"created {path}")


@click.command("init-db")
@click.option("--workers", type=int, default=None, help="Parser processes (default: number of CPUs, at most 4).")
def init_db_cmd(workers: int | None) -> None:
    """Flush job, tag and jobtag and rebuild them from every meta.json of the job archive.

    Running jobs in the database are lost, as with upstream. Broken meta.json files, and jobs the
    database cannot hold, are reported and skipped; a tag the tag table cannot hold is left out and
    reported. Tag scopes are kept.
    """
    from cc_backend.commands.actions import run_init_db

    run_init_db(runtime(), workers=workers)


@click.command("import")
@click.argument("pairs", nargs=-1, required=True, metavar="META.json:DATA.json...")
def import_cmd(pairs: tuple[str, ...]) -> None:
    """Import finished jobs into the job archive and the database.

    Each argument is META.json:DATA.json (or comma-separated pairs, as upstream's -import-job).
    Statistics missing from meta.json are computed from the data.
    """
    from cc_backend.importer import import_files, parse_import_spec

    rt = runtime()
    specs = [pair for arg in pairs for pair in parse_import_spec(arg)]
    summary = import_files(rt.engine, rt.archive, specs, validate=rt.config.main.validate_json)
    click.echo(f"imported {summary.jobs} job(s)")


@click.group("db")
def db_group() -> None:
    """Database schema versions (compatible with upstream's schema_migrations)."""


@db_group.command("version")
@format_option
def db_version_cmd(fmt: str) -> None:
    """Show program, database schema and archive versions."""
    from cc_backend.version import version_info

    emit_object(version_info(runtime()).to_json(), fmt)


@db_group.command("migrate")
def db_migrate_cmd() -> None:
    """Migrate the database to the current schema (creates it if empty). Back it up first."""
    from cc_backend.db.migrate import migrate

    before, after = migrate(runtime().raw_engine)
    click.echo(f"database migrated from schema version {before} to {after}" if before != after
               else f"database is at schema version {after}")


@db_group.command("revert")
def db_revert_cmd() -> None:
    """Migrate the database one schema version down (11 to 10)."""
    from cc_backend.db.migrate import revert

    before, after = revert(runtime().raw_engine)
    click.echo(f"database reverted from schema version {before} to {after}")


@db_group.command("force")
def db_force_cmd() -> None:
    """Mark the database clean at the current schema version."""
    from cc_backend.db.migrate import SCHEMA_VERSION, force

    force(runtime().raw_engine)
    click.echo(f"database marked clean at schema version {SCHEMA_VERSION}")


@db_group.command("optimize")
def db_optimize_cmd() -> None:
    """VACUUM and ANALYZE (SQLite) or OPTIMIZE TABLE (MariaDB)."""
    from cc_backend.db.migrate import optimize

    optimize(runtime().engine)
    click.echo("database optimized")


@click.command("gen-keypair")
@format_option
def gen_keypair_cmd(fmt: str) -> None:
    """Print a new base64 Ed25519 key pair in upstream's format, ready for .env."""
    from cc_backend.auth.keys import generate_keypair

    public, private = generate_keypair()
    if fmt == "table":
        click.echo(f'JWT_PUBLIC_KEY="{public}"')
        click.echo(f'JWT_PRIVATE_KEY="{private}"')
    else:
        emit([{"JWT_PUBLIC_KEY": public, "JWT_PRIVATE_KEY": private}], ["JWT_PUBLIC_KEY", "JWT_PRIVATE_KEY"], fmt,
             json_value={"JWT_PUBLIC_KEY": public, "JWT_PRIVATE_KEY": private})


@click.command("jwt")
@click.argument("username")
def jwt_cmd(username: str) -> None:
    """Print an API token (JWT) for USERNAME, valid for auth.jwts.max-age."""
    from cc_backend.auth.keys import user_token

    rt = runtime()
    rt.load_env()
    token, warnings = user_token(rt, username)
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(token)


@click.command("serve")
@click.option("--dev", is_flag=True, help="Development mode: adds /dev/sleep for testing slow requests (the API docs at /swagger/ are always served).")
def serve_cmd(dev: bool) -> None:
    """Start the HTTP server on main.addr."""
    from cc_backend.commands.actions import start_server

    rt = runtime()
    rt.load_env()
    start_server(rt, dev=dev)
