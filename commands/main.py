"""The ``cc-backend`` entry point: subcommands, plus upstream's single-dash action flags."""

from __future__ import annotations

import logging
import sys

import click

from cc_backend.commands.lazy import LazyGroup

SUBCOMMANDS = {
    "init": ("cc_backend.commands.admin:init_cmd", "Create config.json, .env, var/job.db and var/job-archive here."),
    "init-db": ("cc_backend.commands.admin:init_db_cmd", "Rebuild the job tables from every meta.json of the archive."),
    "import": ("cc_backend.commands.admin:import_cmd", "Import jobs (meta.json + data.json) into archive and database."),
    "db": ("cc_backend.commands.admin:db_group", "Database schema: migrate, revert, force, optimize, version."),
    "user": ("cc_backend.commands.users:user_group", "Manage users: add, list, delete, roles and projects."),
    "jobs": ("cc_backend.commands.jobs:jobs_group", "List and show jobs with the upstream job filter."),
    "clusters": ("cc_backend.commands.jobs:clusters_group", "List the clusters of the job archive."),
    "tags": ("cc_backend.commands.jobs:tags_group", "List tags; run the application and job-class taggers."),
    "report": ("cc_backend.commands.report:report_cmd", "Efficiency report of one job: what it used of its allocation."),
    "archive": ("cc_backend.commands.archive:archive_group", "Job archive tools: info, validate, job."),
    "demo": ("cc_backend.commands.demo:demo_group", "Demo data: generate an archive, feed a live demo, seed running jobs."),
    "gen-keypair": ("cc_backend.commands.admin:gen_keypair_cmd", "Print a new base64 Ed25519 key pair for .env."),
    "jwt": ("cc_backend.commands.admin:jwt_cmd", "Print an API token (JWT) for an existing user."),
    "serve": ("cc_backend.commands.admin:serve_cmd", "Start the HTTP server."),
    "tui": ("cc_backend.commands.tui:tui_cmd", "Browse jobs in the terminal (local, or a server with --url/--token)."),
}

# Upstream's Go flags, accepted with one or two dashes and Go's `-flag=true|false` bool form.
UPSTREAM_BOOL_FLAGS = {
    "init", "init-db", "server", "no-server", "dev", "migrate-db", "revert-db", "force-db",
    "optimize-db", "version", "logdate", "gops", "sync-ldap", "apply-tags",
}
UPSTREAM_VALUE_FLAGS = {"add-user", "del-user", "jwt", "import-job", "config", "loglevel"}
LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
              "err": logging.ERROR, "crit": logging.CRITICAL, "fatal": logging.CRITICAL}


def normalize_argv(argv: list[str]) -> list[str]:
    """Turn upstream spellings (``-init-db``, ``-server=true``) into Click's (``--init-db``)."""
    out: list[str] = []
    for arg in argv:
        if arg == "--":
            out.extend(argv[len(out):])
            break
        if arg.startswith("-") and not arg.startswith("--") and len(arg) > 2:
            name, _, value = arg[1:].partition("=")
            if name in UPSTREAM_BOOL_FLAGS or name in UPSTREAM_VALUE_FLAGS:
                arg = "--" + arg[1:]
        if arg.startswith("--") and "=" in arg:
            name, _, value = arg[2:].partition("=")
            if name in UPSTREAM_BOOL_FLAGS:
                if value.lower() in ("true", "1", "t"):
                    arg = "--" + name
                elif value.lower() in ("false", "0", "f"):
                    if name != "server":
                        continue
                    arg = "--no-server"  # an explicit "no", unlike leaving the flag out
        out.append(arg)
    return out


#: click context meta key: whether --loglevel was given (the server then keeps it, see start_server).
LOGLEVEL_GIVEN = "cc_backend.loglevel_given"


def setup_logging(level: str | None, logdate: bool) -> None:
    """Log to stderr at ``level``; without one at warn (the server raises that to info when it starts)."""
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s" if logdate else "%(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=LOG_LEVELS[level or "warn"], format=fmt, stream=sys.stderr)


@click.group(
    cls=LazyGroup, lazy_subcommands=SUBCOMMANDS, invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option("--config", "config_path", metavar="PATH", default=None,
              help="config.json to use (default ./config.json; missing default file means built-in defaults).")
@click.option("--loglevel", type=click.Choice(list(LOG_LEVELS)), default=None,
              help="Log level of messages on stderr [default: info for the server (one line per request), "
                   "warn otherwise].")
@click.option("--logdate", is_flag=True, help="Prefix log lines with date and time.")
@click.option("--version", "show_version", is_flag=True, help="Print program, database schema and archive versions.")
@click.option("--init", "do_init", is_flag=True, help="Create config.json, .env, var/job.db, var/job-archive; exit.")
@click.option("--migrate-db", is_flag=True, help="Migrate the database to the current schema; exit.")
@click.option("--revert-db", is_flag=True, help="Migrate the database one schema version down; exit.")
@click.option("--force-db", is_flag=True, help="Mark the database clean at the current schema version; exit.")
@click.option("--optimize-db", is_flag=True, help="VACUUM and ANALYZE the database.")
@click.option("--add-user", metavar="NAME:ROLES:PASSWORD", help="Add a local user, e.g. demo:admin,api:secret.")
@click.option("--del-user", metavar="NAME", help="Delete a user.")
@click.option("--jwt", "jwt_user", metavar="NAME", help="Print an API token (JWT) for an existing user.")
@click.option("--sync-ldap", is_flag=True, help="Synchronise users with the LDAP directory (auth.ldap).")
@click.option("--init-db", is_flag=True, help="Rebuild the job tables from the job archive.")
@click.option("--import-job", metavar="META:DATA[,META:DATA...]", help="Import jobs into archive and database.")
@click.option("--apply-tags", is_flag=True,
              help="Run the application and job-class taggers over every job (after --init-db/--import-job).")
@click.option("--server/--no-server", "server", default=None,
              help="Start the server after the actions (a bare `cc-backend` starts it).")
@click.option("--dev", is_flag=True, help="Development mode for the server: adds /dev/sleep for testing slow requests (API docs at /swagger/ are always served).")
@click.option("--gops", is_flag=True, hidden=True, help="Accepted for compatibility; does nothing.")
@click.pass_context
def cli(ctx: click.Context, config_path, loglevel, logdate, show_version, do_init, migrate_db, revert_db,
        force_db, optimize_db, add_user, del_user, jwt_user, sync_ldap, init_db, import_job, apply_tags, server, dev, gops) -> None:
    """cc-backend: job-specific performance monitoring for HPC clusters.

    Run a subcommand, or use upstream's action flags (`cc-backend -init-db -add-user demo:admin,api:pw`).
    Action flags run and exit unless --server is given; a bare `cc-backend` starts the server.
    """
    setup_logging(loglevel, logdate)
    ctx.meta[LOGLEVEL_GIVEN] = loglevel is not None
    from cc_backend.runtime import Runtime

    ctx.obj = runtime = Runtime(config_path)
    ctx.call_on_close(runtime.close)
    if ctx.invoked_subcommand is not None:
        actions_given = [name for name, value in (
            ("--version", show_version), ("--init", do_init), ("--migrate-db", migrate_db),
            ("--revert-db", revert_db), ("--force-db", force_db), ("--optimize-db", optimize_db),
            ("--add-user", add_user), ("--del-user", del_user), ("--jwt", jwt_user), ("--sync-ldap", sync_ldap),
            ("--init-db", init_db),
            ("--import-job", import_job), ("--apply-tags", apply_tags), ("--server", server)) if value]
        if actions_given:
            raise click.UsageError(f"{', '.join(actions_given)} cannot be combined with the subcommand "
                                   f"{ctx.invoked_subcommand!r}: run them separately")
        return
    from cc_backend.commands import actions

    did_something = actions.run_flag_actions(
        runtime, show_version=show_version, do_init=do_init, migrate_db=migrate_db, revert_db=revert_db,
        force_db=force_db, optimize_db=optimize_db, add_user=add_user, del_user=del_user, jwt_user=jwt_user,
        sync_ldap=sync_ldap,
        init_db=init_db, import_job=import_job, apply_tags=apply_tags,
    )
    if did_something is None:  # an action that always exits (version, init, migrations)
        return
    if server or (server is None and not did_something):
        actions.start_server(runtime, dev=dev)
    else:
        click.echo("No errors, server flag not set. Exiting cc-backend.", err=True)


def main(argv: list[str] | None = None) -> None:
    from cc_backend.errors import CCError

    args = normalize_argv(sys.argv[1:] if argv is None else argv)
    try:
        cli.main(args=args, prog_name="cc-backend", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except CCError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
