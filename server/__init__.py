"""The embedded HTTP server: a bottle app (:mod:`cc_backend.server.app`) served by cheroot.

``serve(runtime, dev=False)`` is the only entry point the CLI uses; importing this package stays
cheap (bottle and cheroot are imported when ``serve`` or ``make_app`` is called).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cc_backend.runtime import Runtime


def serve(runtime: Runtime, *, dev: bool = False) -> None:
    """Check the database, bind main.addr, drop privileges, start the background tasks, serve until SIGTERM/SIGINT."""
    from cc_backend.server.serving import run_server

    run_server(runtime, dev=dev)
