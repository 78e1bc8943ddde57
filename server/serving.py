"""Run the app under cheroot: bind, TLS, HTTP->HTTPS redirect, privilege drop, graceful shutdown.

(Named ``serving`` rather than ``serve`` so that importing it cannot replace the package's
``serve`` function with a module attribute.)
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import ssl
import sys
import threading
from typing import Any, Callable, Iterable

from cc_backend.errors import ConfigError

log = logging.getLogger("cc_backend.server")

#: Worker threads of the WSGI server (calibration: 16 threads ~2,400 small JSON req/s on 2 cores).
THREADS = 16
#: Socket timeout (upstream: ReadHeaderTimeout/WriteTimeout 20 s).
SOCKET_TIMEOUT = 20
#: How long shutdown waits for in-flight requests (upstream: HTTP shutdown <= 60 s).
SHUTDOWN_TIMEOUT = 60


def parse_addr(addr: str) -> tuple[str, int]:
    """``main.addr`` as (host, port): ":8080" = all interfaces, "localhost:8080", "[::1]:8080"."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"main.addr: expected HOST:PORT such as \":8080\" or \"localhost:8080\", got {addr!r}",
                          field="main.addr")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def tls_adapter(cert_file: str, key_file: str) -> Any:
    """cheroot's builtin SSL adapter with TLS 1.2 as the minimum."""
    from cheroot.ssl.builtin import BuiltinSSLAdapter

    for name, path in (("https-cert-file", cert_file), ("https-key-file", key_file)):
        if not os.path.isfile(path):
            raise ConfigError(f"main.{name}: no such file: {path}", field=f"main.{name}")
    adapter = BuiltinSSLAdapter(cert_file, key_file)
    adapter.context.minimum_version = ssl.TLSVersion.TLSv1_2
    return adapter


def redirect_app(target: str) -> Callable[..., Iterable[bytes]]:
    """A WSGI app answering every request with 301 to ``target`` + the request path."""
    base = target.rstrip("/")

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        query = environ.get("QUERY_STRING")
        location = base + path + (f"?{query}" if query else "")
        start_response("301 Moved Permanently", [("Location", location), ("Content-Length", "0")])
        return [b""]

    return app


def drop_privileges(user: str | None, group: str | None) -> None:
    """Switch to main.user/main.group after binding; only when running as root."""
    if not (user or group) or os.geteuid() != 0:
        return
    import grp
    import pwd

    try:
        gid = grp.getgrnam(group).gr_gid if group else None
        pw = pwd.getpwnam(user) if user else None
    except KeyError as exc:
        raise ConfigError(f"main.user/main.group: {exc.args[0]}", field="main.user") from None
    if gid is None and pw is not None:
        gid = pw.pw_gid
    if gid is not None:
        os.setgroups([gid])
        os.setgid(gid)
    if pw is not None:
        os.setuid(pw.pw_uid)
    log.info("dropped privileges to user %s, group %s", user or "-", group or "-")


def sd_notify(message: str) -> None:
    """systemd's NOTIFY_SOCKET protocol (Type=notify); a no-op outside systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        log.warning("sd_notify failed: %s", exc)


def make_server(app: Any, host: str, port: int, *, threads: int = THREADS) -> Any:
    from cheroot import wsgi

    return wsgi.Server((host, port), app, numthreads=threads, timeout=SOCKET_TIMEOUT,
                       shutdown_timeout=SHUTDOWN_TIMEOUT, server_name="cc-backend")


def run_server(runtime: Any, *, dev: bool = False) -> None:
    """Serve ``runtime`` on main.addr until SIGTERM or SIGINT, then finish in-flight requests and return."""
    from cc_backend.server.app import make_app

    main = runtime.config.main
    runtime.engine  # noqa: B018 - refuses an outdated/dirty database before anything listens
    runtime.archive  # noqa: B018 - a missing or wrong-version archive fails now, not in a request
    if main.disable_authentication:
        log.warning("main.disable-authentication is set: every request acts as an administrator")
    app = make_app(runtime, dev=dev)
    host, port = parse_addr(main.addr)
    server = make_server(app, host, port)
    https = bool(main.https_cert_file and main.https_key_file)
    if https:
        server.ssl_adapter = tls_adapter(main.https_cert_file, main.https_key_file)
    servers = [server]
    if https and main.redirect_http_to:
        servers.append(make_server(redirect_app(main.redirect_http_to), host, 80, threads=2))
    for srv in servers:
        try:
            srv.prepare()  # binds the port (may need root for :80/:443)
        except OSError as exc:
            for other in servers:
                other.stop()
            where = "%s:%s" % srv.bind_addr[:2]
            raise ConfigError(f"main.addr: cannot listen on {where}: {exc}", field="main.addr") from None
    drop_privileges(main.user, main.group)

    bound_host, bound_port = server.bind_addr[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    url = f"{'https' if https else 'http'}://{shown}:{bound_port}/"
    # Always shown, whatever the log level (upstream prints this line with cclog.Printf).
    print(f"cc-backend: HTTP server listening at {url}", file=sys.stderr, flush=True)

    stopper: list[threading.Thread] = []

    def on_signal(signum: int, _frame: Any) -> None:
        if stopper:
            return
        log.warning("received %s: shutting down (waiting for in-flight requests)", signal.Signals(signum).name)
        sd_notify("STOPPING=1")
        thread = threading.Thread(target=lambda: [s.stop() for s in servers], name="shutdown")
        stopper.append(thread)
        thread.start()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    extra = [threading.Thread(target=s.serve, name="redirect-http", daemon=True) for s in servers[1:]]
    for thread in extra:
        thread.start()
    sd_notify("READY=1")
    try:
        server.serve()
    finally:
        for thread in stopper:
            thread.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        runtime.close()
    log.warning("HTTP server stopped")
