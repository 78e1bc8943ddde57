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
    from cc_backend.commands.actions import init_directory

    init_directory(directory)


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
    from cc_backend.commands.actions import import_jobs
    from cc_backend.importer import parse_import_spec

    import_jobs(runtime(), [pair for arg in pairs for pair in parse_import_spec(arg)])


@click.group("db")
def db_group() -> None:
    """Database schema versions (compatible with upstream's schema_migrations)."""


@db_group.command("version")
@format_option
def db_version_cmd(fmt: str) -> None:
    """Show program, database schema and archive versions."""
    from cc_backend.commands.actions import print_version
    from cc_backend.version import version_info

    if fmt == "table":
        print_version(runtime())
    else:
        emit_object(version_info(runtime()).to_json(), fmt)


@db_group.command("migrate")
def db_migrate_cmd() -> None:
    """Migrate the database to the current schema (creates it if empty). Back it up first."""
    from cc_backend.commands.actions import migrate_database

    migrate_database(runtime())


@db_group.command("revert")
def db_revert_cmd() -> None:
    """Migrate the database one schema version down (11 to 10)."""
    from cc_backend.commands.actions import revert_database

    revert_database(runtime())


@db_group.command("force")
def db_force_cmd() -> None:
    """Mark the database clean at the current schema version."""
    from cc_backend.commands.actions import force_database

    force_database(runtime())


@db_group.command("optimize")
def db_optimize_cmd() -> None:
    """VACUUM and ANALYZE (SQLite) or OPTIMIZE TABLE (MariaDB)."""
    from cc_backend.commands.actions import optimize_database

    optimize_database(runtime())


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
    from cc_backend.commands.actions import print_token

    rt = runtime()
    rt.load_env()
    print_token(rt, username)


@click.command("serve")
@click.option("--dev", is_flag=True, help="Development mode: adds /dev/sleep for testing slow requests (the API docs at /swagger/ are always served).")
def serve_cmd(dev: bool) -> None:
    """Start the HTTP server on main.addr."""
    from cc_backend.commands.actions import start_server

    rt = runtime()
    rt.load_env()
    start_server(rt, dev=dev)
