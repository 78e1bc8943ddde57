"""Run the app under cheroot: bind, TLS, :80 redirect, privilege drop, background tasks, live monitoring, graceful shutdown.

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
import sysconfig
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cc_backend.errors import ConfigError

if TYPE_CHECKING:
    from cc_backend.runtime import Runtime

log = logging.getLogger("cc_backend.server")

#: Worker threads of the WSGI server (calibration: 16 threads ~2,400 small JSON req/s on 2 cores).
THREADS = 16
#: Socket timeout of one read or write, and how long a kept-alive connection may idle (upstream:
#: WriteTimeout 20 s; the request head and body have overall deadlines, main.read-header-timeout
#: and main.read-body-timeout).
SOCKET_TIMEOUT = 20
#: How long shutdown waits for in-flight requests (upstream: HTTP shutdown <= 60 s).
SHUTDOWN_TIMEOUT = 60
#: The port of the main.redirect-http-to listener (upstream: ":80", fixed).
REDIRECT_PORT = 80


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


@dataclass(frozen=True)
class Identity:
    """The user and group of main.user/main.group, resolved before anything is bound."""

    user: str | None
    group: str | None
    uid: int | None
    gid: int | None

    def describe(self) -> str:
        return f"user {self.user or '-'}, group {self.group or '-'}"


def resolve_identity(user: str | None, group: str | None) -> Identity | None:
    """Look main.user/main.group up now, so a typo stops ``serve`` before it listens; None if neither is set."""
    if not (user or group):
        return None
    import grp
    import pwd

    uid = gid = None
    if user:
        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            raise ConfigError(f"main.user: no such user: {user!r}", field="main.user") from None
        uid, gid = pw.pw_uid, pw.pw_gid
    if group:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise ConfigError(f"main.group: no such group: {group!r}", field="main.group") from None
    return Identity(user, group, uid, gid)


def drop_privileges(identity: Identity | None) -> bool:
    """Switch to main.user/main.group after binding; True if the process changed its user or group.

    Not running as root, the process must already be that user and group (as under a systemd unit
    with ``User=``/``Group=``): it cannot switch, and silently going on as someone else would hide a
    misconfiguration (upstream's setuid fails the same way).
    """
    if identity is None:
        return False
    if os.geteuid() != 0:
        # main.user alone implies the user's primary group, but under a unit with another
        # Group= that is no reason to refuse: only a group given explicitly must match.
        same = ((identity.uid is None or identity.uid == os.geteuid())
                and (identity.group is None or identity.gid == os.getegid()))
        if same:
            return False
        import pwd

        try:
            me = pwd.getpwuid(os.geteuid()).pw_name
        except KeyError:  # a uid without a passwd entry (containers)
            me = str(os.geteuid())
        raise ConfigError(f"main.user/main.group: cannot switch to {identity.describe()}: cc-backend runs as "
                          f"{me!r}, not as root (start it as root, or as that user and group)", field="main.user")
    if identity.gid is not None:
        if identity.user:
            # The user's supplementary groups too (e.g. a group that may read the job archive).
            os.initgroups(identity.user, identity.gid)
        else:
            os.setgroups([identity.gid])
        os.setgid(identity.gid)
    if identity.uid is not None:
        os.setuid(identity.uid)
    log.info("dropped privileges to %s", identity.describe())
    return True


def check_access(runtime: Runtime, identity: Identity) -> None:
    """After the drop: the SQLite database must be writable and the archive readable by the new user.

    Otherwise the server would start and fail in its first request that writes (or in a task).
    """
    who = identity.describe()
    url = runtime.database_url
    if url.startswith("sqlite:///"):
        db = os.path.abspath(url.removeprefix("sqlite:///"))
        folder = os.path.dirname(db)
        # The folder too: SQLite creates its -wal, -shm and journal files beside the database.
        for path, mode, what in ((db, os.R_OK | os.W_OK, "read and write"),
                                 (folder, os.W_OK | os.X_OK, "create files in")):
            if not os.access(path, mode):
                raise ConfigError(f"main.db: after dropping privileges to {who}, cc-backend cannot {what} {path}; "
                                  f"chown the database and its directory to that user", field="main.db")
    archive = runtime.config.archive.path
    if archive:
        archive = os.path.abspath(archive)
        if not os.access(archive, os.R_OK | os.X_OK):
            raise ConfigError(f"archive.path: after dropping privileges to {who}, cc-backend cannot read "
                              f"{archive}; chown the job archive to that user", field="archive.path")
        if not os.access(archive, os.W_OK):
            log.warning("archive.path %s is not writable by %s: stopped jobs cannot be archived", archive, who)
    # What serve uses is imported before the drop; a module imported later (a rarely used route) needs
    # Python's own files, which a Python installed under a private home (pyenv in /root) no longer lets it read.
    stdlib = sysconfig.get_paths()["stdlib"]
    if not os.access(stdlib, os.R_OK | os.X_OK):
        log.warning("Python's standard library %s is not readable by %s: a request that needs a module not "
                    "yet loaded will fail; install Python where that user can read it", stdlib, who)


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


def make_server(app: Any, host: str, port: int, main: Any, *, threads: int = THREADS) -> Any:
    """A cheroot server whose worker threads only see complete request heads (see :mod:`.transport`)."""
    from cc_backend.server.transport import GuardedServer

    return GuardedServer((host, port), app, numthreads=threads, timeout=SOCKET_TIMEOUT,
                         shutdown_timeout=SHUTDOWN_TIMEOUT, server_name="cc-backend",
                         header_timeout=main.read_header_timeout.total_seconds(),
                         body_timeout=main.read_body_timeout.total_seconds())


#: How often the metric store drops samples beyond retention-in-memory and frees memory above memory-cap.
ENFORCE_LIMITS_INTERVAL_S = 60.0
#: How long shutdown waits for the archive queue to drain (upstream: 60 s).
ARCHIVE_DRAIN_TIMEOUT_S = 60.0


class LiveServices:
    """The background parts of live monitoring a server runs: metric store with checkpoints, NATS, archiver.

    ``start()`` after the port is bound and privileges are dropped (checkpoints and the archive belong to
    the server's user); ``stop()`` after the HTTP server stopped accepting, in this order: NATS (no new
    metrics or job events), the archive queue (drained up to 60 s), the final checkpoint. An app made by
    ``make_app`` alone (tests, the TUI) has none of them: the store is then created on first use.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.checkpointer: Any = None
        self.nats: Any = None
        self.archiver: Any = None

    def prepare(self) -> None:
        """Import what start() and its threads need while the installation is still readable.

        After the privileges are dropped (main.user) a Python installed in a private directory (e.g. under
        /root) can no longer be read, and a lazy import in a background thread would fail then.
        """
        import concurrent.futures.thread  # noqa: F401 - loaded by name on first use of ThreadPoolExecutor

        import cc_backend.jobs.archiving  # noqa: F401 - imported for start()
        import cc_backend.metricstore.checkpoint  # noqa: F401
        import cc_backend.metricstore.store  # noqa: F401
        from cc_backend import nats

        if nats.wanted(self.runtime):
            import nats as nats_client  # noqa: F401 - the client library the NATS thread connects with

    def tasks(self) -> list[Any]:
        """Periodic tasks for the server's TaskRunner (the store's retention and memory cap)."""
        from cc_backend.tasks import PeriodicTask

        # Also without a metric-store section: the built-in store then keeps its default limits.
        return [PeriodicTask("metricstore-limits", ENFORCE_LIMITS_INTERVAL_S,
                             lambda: self.runtime.metric_store.enforce_limits() or None)]

    def start(self) -> None:
        config = self.runtime.config
        # Created now, before the request and NATS threads could each create one of their own on first use.
        store = self.runtime.metric_store
        if config.metric_store is not None:
            from cc_backend.metricstore.checkpoint import Checkpointer

            self.checkpointer = Checkpointer(store, config.metric_store)
            restored = self.checkpointer.restore()
            log.info("metric store restored from %s: %s", config.metric_store.checkpoints.directory, restored)
            self.checkpointer.start()
        self._start_nats()
        from cc_backend.jobs.archiving import ArchiveQueue

        self.archiver = ArchiveQueue(self.runtime)
        self.runtime.archiver = self.archiver
        self.archiver.requeue_unarchived()
        self.archiver.start()

    def _start_nats(self) -> None:
        from cc_backend import nats

        config = self.runtime.config
        if not nats.wanted(self.runtime):
            return
        if config.nats is None:
            log.error("metric-store.nats-subscriptions or main.api-subjects is set, but there is no nats section: "
                      "nothing is received over NATS")
            return
        self.nats = nats.NatsService(self.runtime)
        self.nats.start()

    def stop(self) -> None:
        """Stop in order; each step runs even if an earlier one failed."""
        steps: list[tuple[str, Callable[[], Any]]] = []
        if self.nats is not None:
            steps.append(("NATS", self.nats.stop))
        if self.archiver is not None:
            steps.append(("archive queue", lambda: self.archiver.stop(ARCHIVE_DRAIN_TIMEOUT_S)))
        if self.checkpointer is not None:
            steps.append(("final checkpoint", self.checkpointer.stop))
        for name, step in steps:
            try:
                step()
            except Exception:
                log.exception("stopping the %s failed", name)
        self.runtime.archiver = None


def run_server(runtime: Runtime, *, dev: bool = False) -> None:
    """Serve ``runtime`` on main.addr until SIGTERM or SIGINT, then finish in-flight requests and return."""
    from cc_backend.server.app import make_app
    from cc_backend.tasks import STOP_GRACE_S, TaskRunner, server_tasks

    main = runtime.config.main
    identity = resolve_identity(main.user, main.group)  # an unknown name fails before anything listens
    runtime.load_env()  # now, while .env is readable: it is often root's only (chmod 600)
    runtime.engine  # noqa: B018 - refuses an outdated/dirty database before anything listens
    runtime.archive  # noqa: B018 - a missing or wrong-version archive fails now, not in a request
    if main.disable_authentication:
        log.warning("main.disable-authentication is set: every request acts as an administrator")
    app = make_app(runtime, dev=dev)
    host, port = parse_addr(main.addr)
    server = make_server(app, host, port, main)
    cert_file, key_file = main.https_cert_file, main.https_key_file
    https = bool(cert_file and key_file)
    if cert_file and key_file:
        server.ssl_adapter = tls_adapter(cert_file, key_file)
    servers = [server]
    if main.redirect_http_to:
        # As upstream: a second listener on port 80 whenever redirect-http-to is set, unless
        # main.addr is port 80 itself (it would collide with the main listener).
        if port == REDIRECT_PORT:
            log.warning("main.redirect-http-to is ignored: main.addr already uses port %d", REDIRECT_PORT)
        else:
            servers.append(make_server(redirect_app(main.redirect_http_to), host, REDIRECT_PORT, main, threads=2))
    for srv in servers:
        try:
            srv.prepare()  # binds the port (may need root for :80/:443)
        except OSError as exc:
            for other in servers:
                other.stop()
            where = ":".join(str(part) for part in srv.bind_addr[:2])
            key = "main.addr" if srv is server else "main.redirect-http-to"
            raise ConfigError(f"{key}: cannot listen on {where}: {exc}", field=key) from None
    live = LiveServices(runtime)
    try:
        live.prepare()
        runtime.taggers.prepare()
        if drop_privileges(identity):
            check_access(runtime, identity)
        tasks = TaskRunner(server_tasks(runtime) + live.tasks())
        live.start()
    except BaseException:
        for srv in servers:
            srv.stop()
        live.stop()
        raise

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
        tasks.stopping.set()  # no task starts again; a running one is not waited for here
        thread = threading.Thread(target=lambda: [s.stop() for s in servers], name="shutdown")
        stopper.append(thread)
        thread.start()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    extra = [threading.Thread(target=s.serve, name="redirect-http", daemon=True) for s in servers[1:]]
    for thread in extra:
        thread.start()
    tasks.start()
    sd_notify("READY=1")
    try:
        server.serve()
    finally:
        tasks.stopping.set()
        for thread in stopper:
            thread.join()
        # In-flight requests are done; a task in the middle of a run gets a short grace, no more.
        tasks.stop(timeout=STOP_GRACE_S)
        live.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        runtime.close()
    log.warning("HTTP server stopped")
