"""cheroot with deadlines: a connection reaches a worker thread only once its request head is complete.

Why: cheroot's ConnectionManager hands every new connection (and every kept-alive one that becomes
readable) to a worker thread, which then blocks reading the request line and headers. The socket
timeout restarts with each byte, so a client that sends one header line every few seconds holds a
worker for as long as it likes, and 17 such clients stop a 16-thread server. Upstream (Go) bounds the
whole head with ReadHeaderTimeout and does not spend a thread per waiting connection.

Here the connection manager's own thread reads what a connection sends, without blocking, into a
buffer in front of the connection's reader (:class:`_GuardedSocketIO`), and hands the connection to
a worker only when the buffer holds a whole head (``\\r\\n\\r\\n``). A connection whose head is not
complete ``main.read-header-timeout`` after it was accepted (or, kept alive, after the first byte of
its next request) gets a 408 and is closed; a head over :data:`MAX_HEAD_BYTES` gets a 431. Reading
instead of peeking (``MSG_PEEK``) makes this work for TLS as well, where the kernel only sees
encrypted records. The TLS handshake is done here too, without blocking: cheroot does it in the
accepting thread with a blocking socket, so a client that connects to the TLS port and sends nothing
would stop every other connection from being accepted for the socket timeout.

Request bodies are read by the worker; the reader gives the body ``main.read-body-timeout`` from the
moment the worker first waits for it, and then fails with :class:`RequestTimeout` (a 408). A body the
application did not read (a request refused before it) is not waited for either: the connection is
closed after the response, and the manager discards what the client still sends for a moment
(:data:`LINGER_S`) so that the client sees the response, not a reset.

Pipelined requests that a worker already buffered go back in front of the connection's reader and
wait like any other head. Limitation: a client that completes its head and then sends a slow body to
a handler that reads it (after admission, or /login) does hold a worker, for at most
``main.read-body-timeout``.
"""

from __future__ import annotations

import _pyio
import logging
import selectors
import socket
import ssl
import time
from typing import Any

from cheroot import connections, wsgi
from cheroot.makefile import StreamReader, StreamWriter
from cheroot.server import HTTPConnection, HTTPRequest

from cc_backend.errors import CCError

log = logging.getLogger("cc_backend.server")

#: Largest request head (request line + headers) accepted; nginx's default allows 32 KiB, Go's 1 MiB.
MAX_HEAD_BYTES = 64 * 1024
#: How long the rest of an unread request body is discarded after the response, before closing.
LINGER_S = 2.0
_END_OF_HEAD = b"\r\n\r\n"
_CHUNK = 16 * 1024
#: Chunks of a lingering connection's input discarded per wake-up of the manager.
_DISCARD_CHUNKS = 16
_WAIT_READ = selectors.EVENT_READ
_WAIT_WRITE = selectors.EVENT_READ | selectors.EVENT_WRITE
_DONE = 0


class RequestTimeout(CCError, TimeoutError):
    """The request body did not arrive within main.read-body-timeout (HTTP 408)."""

    status = 408

    def __init__(self, message: str) -> None:
        super().__init__(message)
        # cheroot recognises a read timeout by this text and answers 408 when the app did not.
        self.args = ("timed out",)


class _GuardedSocketIO(socket.SocketIO):
    """The raw reader of a connection: bytes the manager already received first, then the socket, up to a deadline."""

    def __init__(self, sock: socket.socket, mode: str) -> None:
        super().__init__(sock, mode)
        self.prefix = bytearray()
        self.budget: float | None = None  # seconds the body may take, counted from the first wait for it
        self.deadline: float | None = None
        self.expired = False

    def reset(self) -> None:
        self.budget = self.deadline = None

    def readinto(self, b: Any) -> int:
        if self.prefix:
            n = min(len(b), len(self.prefix))
            b[:n] = self.prefix[:n]
            del self.prefix[:n]
            return n
        if self.budget is None:
            return super().readinto(b)
        if self.expired:
            return 0  # cheroot then skips the unread body, sends the app's 408, and the manager closes
        now = time.monotonic()
        if self.deadline is None:
            self.deadline = now + self.budget
        remaining = self.deadline - now
        if remaining <= 0:
            self.expired = True
            raise RequestTimeout(f"the request body did not arrive within {self.budget:g} s (main.read-body-timeout)")
        timeout = self._sock.gettimeout()
        if timeout is not None and timeout <= remaining:
            return super().readinto(b)
        self._sock.settimeout(remaining)
        try:
            return super().readinto(b)
        except TimeoutError:
            self.expired = True
            raise RequestTimeout(f"the request body did not arrive within {self.budget:g} s "
                                 f"(main.read-body-timeout)") from None
        finally:
            self._sock.settimeout(timeout)


class _HeadReader(StreamReader):
    """cheroot's socket reader on a :class:`_GuardedSocketIO`."""

    def __init__(self, sock: socket.socket, mode: str = "r", bufsize: int = _pyio.DEFAULT_BUFFER_SIZE) -> None:
        _pyio.BufferedReader.__init__(self, _GuardedSocketIO(sock, mode), bufsize)
        self.bytes_read = 0

    def has_data(self) -> bool:
        return super().has_data() or bool(self.raw.prefix)

    def take_buffered(self) -> bytes:
        """Bytes read ahead (a pipelined next request), removed from this reader."""
        with self._read_lock:
            data = self._read_buf[self._read_pos:]
            self._reset_read_buf()
        return data


def _makefile(sock: socket.socket, mode: str = "r", bufsize: int = _pyio.DEFAULT_BUFFER_SIZE) -> Any:
    return _HeadReader(sock, mode, bufsize) if "r" in mode else StreamWriter(sock, mode, bufsize)


class _Request(HTTPRequest):
    """cheroot's request, which does not wait in a worker for a body the application did not read."""

    def send_headers(self) -> None:
        # cheroot would read the rest of the body here to keep the connection alive: a client that
        # sends a large or slow body to a refused request (401 before anything reads it) would hold
        # the worker. Close instead; the manager discards what still arrives (lingering close), so
        # the client reads the response rather than a reset.
        if getattr(self.rfile, "remaining", 0) > 0 and not self.close_connection:
            self.close_connection = True
            self.conn.cc_linger = True
        super().send_headers()


class _Connection(HTTPConnection):
    """cheroot's connection with the state the manager keeps for it."""

    RequestHandlerClass = _Request
    #: time.monotonic() since which the manager waits for a complete head; None between requests.
    cc_head_since: float | None = None
    #: The TLS handshake is not done yet.
    cc_handshaking = False
    #: Close by lingering (see _Request); then the time.monotonic() until which input is discarded.
    cc_linger = False
    cc_linger_until: float | None = None

    def close(self) -> None:
        if self.cc_linger and self.server.ready:
            self.cc_linger = False
            try:
                self.wfile.flush()
                self.socket.shutdown(socket.SHUT_WR)  # the response is complete: FIN after it
            except OSError:
                super().close()
                return
            self.server._connections.linger(self)
            return
        super().close()


def _simple_response(status: str, text: bytes = b"") -> bytes:
    kind = "Content-Type: text/plain\r\n" if text else ""
    return f"HTTP/1.1 {status}\r\n{kind}Content-Length: {len(text)}\r\nConnection: close\r\n\r\n".encode() + text


class GuardedConnectionManager(connections.ConnectionManager):
    """cheroot's ConnectionManager that dispatches a connection only with a complete request head."""

    def __init__(self, server: GuardedServer) -> None:
        super().__init__(server)
        self.header_timeout = server.header_timeout

    # -- called from worker threads when a response is done and the connection stays open ---------

    def put(self, conn: Any) -> None:
        raw = conn.rfile.raw
        if raw.expired:
            conn.close()  # the rest of a timed-out body would be read as the next request
            return
        raw.reset()
        conn.last_used = time.time()
        raw.prefix[:0] = conn.rfile.take_buffered()
        conn.cc_head_since = time.monotonic() if raw.prefix else None
        if self._settle(conn) == _WAIT_READ:
            self._selector.register(conn.socket.fileno(), _WAIT_READ, data=conn)

    def linger(self, conn: Any) -> None:
        """Discard what ``conn`` still sends for up to LINGER_S, then close it (called from workers)."""
        conn.cc_head_since = None
        conn.cc_linger_until = time.monotonic() + LINGER_S
        self._selector.register(conn.socket.fileno(), _WAIT_READ, data=conn)

    # -- the manager's thread -------------------------------------------------------------------------

    def _run(self, expiration_interval: float) -> None:
        last_check = time.monotonic()
        while not self._stop_requested:
            try:
                ready = list(self._selector.select(timeout=expiration_interval))
            except OSError:
                self._remove_invalid_sockets()
                continue
            for fd, conn in ready:
                if conn is self.server:
                    new = self._from_server_socket(self.server.socket)
                    if new is not None:
                        self._selector.register(new.socket.fileno(), _WAIT_READ, data=new)
                    continue
                self._selector.unregister(fd)
                events = self._receive(conn)
                if events:
                    self._selector.register(fd, events, data=conn)
            now = time.monotonic()
            if now - last_check >= expiration_interval:
                self._expire_all(now)
                last_check = now

    def _from_server_socket(self, server_socket: socket.socket) -> Any:
        """Accept one connection; unlike cheroot's, without the TLS handshake (see :meth:`_handshake`)."""
        try:
            sock, addr = server_socket.accept()
        except OSError:  # timeouts, EINTR, a client gone before accept, a closed listener
            return None
        connections.prevent_socket_inheritance(sock)
        sock.settimeout(self.server.timeout)
        adapter = self.server.ssl_adapter
        if adapter is not None:
            sock = adapter.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        conn = _Connection(self.server, sock, _makefile)
        if addr is None:
            addr = ("0.0.0.0", 0) if len(sock.getsockname()) == 2 else ("::", 0)
        conn.remote_addr, conn.remote_port = addr[0], addr[1]
        conn.ssl_env = {}
        conn.cc_handshaking = adapter is not None
        conn.cc_head_since = time.monotonic()  # the header deadline includes the TLS handshake
        conn.last_used = time.time()
        if self.server.stats["Enabled"]:
            self.server.stats["Accepts"] += 1
        return conn

    def _receive(self, conn: Any) -> int:
        """Take what ``conn`` sent without blocking; the events to wait for, or 0 when dispatched or closed."""
        sock = conn.socket
        raw = conn.rfile.raw
        sock.settimeout(0)  # the manager thread must never wait on one client
        try:
            if conn.cc_linger_until is not None:
                return self._discard(conn)
            if conn.cc_handshaking:
                events = self._handshake(conn)
                if events != _DONE:
                    return events
            while _END_OF_HEAD not in raw.prefix and len(raw.prefix) <= MAX_HEAD_BYTES:
                try:
                    chunk = sock.recv(_CHUNK)
                except (BlockingIOError, ssl.SSLWantReadError):
                    break
                except ssl.SSLWantWriteError:
                    return _WAIT_WRITE
                if not chunk:  # the client closed the connection
                    conn.close()
                    return _DONE
                if conn.cc_head_since is None:
                    conn.cc_head_since = time.monotonic()
                raw.prefix += chunk
        except OSError:  # reset by the peer, a broken TLS record
            conn.close()
            return _DONE
        finally:
            if sock.fileno() != -1:
                sock.settimeout(self.server.timeout)
        return self._settle(conn)

    @staticmethod
    def _discard(conn: Any) -> int:
        """Read and drop the input of a lingering connection; close it at the end of input."""
        recv = socket.socket.recv  # after shutdown() an SSLSocket has no TLS layer left
        # A bounded number of chunks per wake-up: a client that keeps sending must not hold the
        # manager's thread, which serves every other connection too.
        for _ in range(_DISCARD_CHUNKS):
            try:
                if not recv(conn.socket, _CHUNK):
                    conn.close()
                    return _DONE
            except BlockingIOError:
                break
        return _WAIT_READ

    def _handshake(self, conn: Any) -> int:
        """Advance the TLS handshake of ``conn``: the events to wait for, or _DONE when complete; OSError when it failed."""
        sock = conn.socket
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            return _WAIT_READ
        except ssl.SSLWantWriteError:
            return _WAIT_WRITE
        except ssl.SSLError as exc:
            if "http request" not in str(exc).lower():
                raise  # the caller closes the connection
            # Plain HTTP on the TLS port: say so in plain HTTP, as cheroot does.
            self._refuse(conn, "400 Bad Request",
                         b"The client sent a plain HTTP request, but this server only speaks HTTPS on this port.")
            return _DONE
        conn.cc_handshaking = False
        conn.ssl_env = self.server.ssl_adapter.get_environ(sock)
        return _DONE

    def _settle(self, conn: Any) -> int:
        """Dispatch ``conn`` if its head is complete, refuse it if the head is too large, else wait."""
        raw = conn.rfile.raw
        if _END_OF_HEAD in raw.prefix:
            conn.cc_head_since = None
            raw.budget = self.server.body_timeout
            self.server.process_conn(conn)
            return _DONE
        if len(raw.prefix) > MAX_HEAD_BYTES:
            self._refuse(conn, "431 Request Header Fields Too Large")
            return _DONE
        return _WAIT_READ

    def _refuse(self, conn: Any, status: str, text: bytes = b"") -> None:
        """Best effort, without blocking: a short error response, then close.

        Before the TLS handshake is done only plain text can be sent (to a client that speaks plain
        HTTP), bypassing the TLS layer; a client still in the handshake gets nothing.
        """
        sock = conn.socket
        handshaking = conn.cc_handshaking
        # Plain socket methods on an SSLSocket reach the TCP connection underneath.
        send, recv = (socket.socket.send, socket.socket.recv) if handshaking else (type(sock).send, type(sock).recv)
        try:
            sock.settimeout(0)
            if text or not handshaking:
                send(sock, _simple_response(status, text))
            # Unread input would make close() send a reset, which can destroy the response.
            while recv(sock, _CHUNK):
                pass
        except (OSError, ValueError):
            pass
        conn.close()

    def _expire_all(self, now: float) -> None:
        """408 for heads past main.read-header-timeout; close lingering connections at their end, and
        kept-alive ones idle for the socket timeout."""
        idle_before = time.time() - self.server.timeout

        def expired(conn: Any) -> bool:
            if conn.cc_linger_until is not None:
                return now > conn.cc_linger_until
            if conn.cc_head_since is not None:
                return now - conn.cc_head_since > self.header_timeout
            return conn.last_used < idle_before

        for fd, conn in [(fd, conn) for fd, conn in self._selector.connections
                         if conn is not self.server and expired(conn)]:
            self._selector.unregister(fd)
            if conn.cc_head_since is None:
                conn.close()
            else:
                log.info("closing connection from %s: no complete request head within %g s (main.read-header-timeout)",
                         conn.remote_addr, self.header_timeout)
                self._refuse(conn, "408 Request Timeout")


class GuardedServer(wsgi.Server):
    """cheroot's WSGI server with :class:`GuardedConnectionManager` and the two read deadlines."""

    #: How often waiting connections are checked against their deadline (seconds).
    expiration_interval = 0.25
    #: Listen backlog. cheroot's 5 makes a burst of connections wait for SYN retransmits (1 s and
    #: more) before they are even accepted; the kernel caps this at net.core.somaxconn.
    LISTEN_BACKLOG = 1024

    def __init__(self, *args: Any, header_timeout: float, body_timeout: float, **kwargs: Any) -> None:
        kwargs.setdefault("request_queue_size", self.LISTEN_BACKLOG)
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.max_request_header_size = MAX_HEAD_BYTES

    def prepare(self) -> None:
        super().prepare()
        if self.ready:
            # cheroot creates its ConnectionManager here with no way to choose the class.
            self._connections._selector.close()
            self._connections = GuardedConnectionManager(self)
