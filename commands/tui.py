"""``cc-backend tui``: browse jobs in the terminal, from this machine's database or from a server."""

from __future__ import annotations

import shlex
import sys

import click


@click.command("tui", context_settings={"ignore_unknown_options": True})
@click.argument("filter_words", nargs=-1, type=click.UNPROCESSED, metavar="[FILTER]...")
@click.option("--filter", "filter_option", metavar="TEXT", default="",
              help="Filter text, e.g. 'state:running user:k1*' (combined with FILTER words).")
@click.option("--url", envvar="CC_URL", metavar="URL",
              help="Server to read from, e.g. https://monitoring.example.org (env CC_URL); without it the "
                   "local database and job archive of --config are used.")
@click.option("--token", envvar="CC_TOKEN", metavar="JWT",
              help="API token (JWT) for --url (env CC_TOKEN); `cc-backend jwt NAME` prints one.")
@click.option("--config", "config_path", metavar="PATH", default=None,
              help="config.json of the local source (default: the one given to cc-backend, else ./config.json).")
@click.option("--as-user", metavar="NAME",
              help="Local source only: see what this account of the database may see (default: everything).")
def tui_cmd(filter_words: tuple[str, ...], filter_option: str, url: str | None, token: str | None,
            config_path: str | None, as_user: str | None) -> None:
    """Browse jobs in the terminal: job list, job details with plots, users, projects, tags, clusters.

    FILTER is the job filter of `cc-backend jobs list` and of the filter bar, as name:value words
    (`cc-backend tui state:running user:k1* duration:1h..`) or as options after `--`
    (`cc-backend tui -- --state running --user 'k1*'`). Inside, press ? for the keys, ctrl+p for the
    command palette, q to quit.
    """
    from cc_backend.errors import CCError, InvalidInput
    from cc_backend.jobs.filter import parse_filter_text

    filter_text = " ".join(part for part in (filter_option.strip(), shlex.join(filter_words)) if part)
    try:
        parse_filter_text(filter_text)  # a typo is reported here, before the screen is taken over
    except InvalidInput as exc:
        raise click.BadParameter(exc.message, param_hint="FILTER") from None
    source = _source(url, token, config_path, as_user)
    try:
        source.connect()
    except CCError as exc:
        # One line on stderr and exit 1: the terminal was never switched to the full-screen UI.
        click.echo(f"Error: {exc.message}", err=True)
        source.close()
        sys.exit(1)
    try:
        from cc_backend.tui.screens.jobs import build_filter

        build_filter(filter_text, source.resolve_tags)  # values too: states, ranges, tags
    except CCError as exc:
        click.echo(f"Error: FILTER: {exc.message}", err=True)
        source.close()
        sys.exit(2)
    import gc

    from cc_backend.tui.app import CockpitApp

    # What is loaded by now (the modules, the source) lives until the end: frozen, the collector no longer
    # walks it, and a full collection in the middle of a screen update costs a few ms instead of ~70 ms.
    gc.freeze()
    try:
        CockpitApp(source, filter_text=filter_text).run()
    finally:
        source.close()


def _source(url: str | None, token: str | None, config_path: str | None, as_user: str | None):
    if url:
        if not token:
            raise click.UsageError("--url needs an API token: give --token JWT or set CC_TOKEN "
                                   "(`cc-backend jwt NAME` on the server prints one)")
        if as_user:
            raise click.UsageError("--as-user is for the local source; with --url the token's user is used")
        from cc_backend.tui.remote import RemoteSource

        return RemoteSource(url, token)
    from cc_backend.commands.common import runtime
    from cc_backend.runtime import Runtime
    from cc_backend.tui.local import LocalSource

    return LocalSource(Runtime(config_path) if config_path else runtime(), as_user=as_user)
