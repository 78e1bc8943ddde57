"""Transport robustness of the real server: slow or silent clients, slow bodies, TLS clients that never handshake."""

from __future__ import annotations

import socket
import ssl
import time

import httpx
import orjson

from test_server import SQLITE_ONLY, auth, self_signed, start, tokens  # noqa: F401 - start and tokens are fixtures

TIMEOUT_408 = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_until_closed(sock: socket.socket, until: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it closed it (monotonic)."""
    data = b""
    while True:
        sock.settimeout(max(until - time.monotonic(), 0.01))
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            raise AssertionError(f"the server did not close the connection in time (got {data!r})") from None
        if not chunk:
            return data, time.monotonic()
        data += chunk


def assert_answers_quickly(url: str, **kwargs: object) -> None:
    """GET /healthz is answered within a second (the liveness bound these tests are about)."""
    began = time.monotonic()
    r = httpx.get(url + "/healthz", timeout=1, **kwargs)
    assert (r.status_code, r.json()) == (200, {"status": "ok"})
    assert time.monotonic() - began < 1


@SQLITE_ONLY
def test_slow_and_silent_clients_do_not_block_requests(start):
    # 2 s instead of the default 20 s keeps the test short; the mechanism is the same.
    srv = start(read_header_timeout="2s")
    began = time.monotonic()
    silent = [connect(srv.port) for _ in range(100)]
    slow = [connect(srv.port) for _ in range(100)]  # 100 + 100 > 16 worker threads
    for sock in slow:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    # One header line per slow client every 0.3 s for 1.8 s: a deadline that restarted with each line
    # (the old 20 s socket timeout did) would close them no earlier than 3.8 s after connecting.
    line = 0
    while time.monotonic() - began < 1.8:
        line += 1
        for sock in slow:
            sock.sendall(b"X-Line-%d: slow\r\n" % line)
        assert_answers_quickly(srv.url)
        time.sleep(0.3)
    for sock in silent + slow:
        answer, closed = read_until_closed(sock, began + 3.3)
        assert answer == TIMEOUT_408
        assert closed - began > 1.9  # not before the deadline
        sock.close()
    assert_answers_quickly(srv.url)
    # A complete request on a kept-alive connection is still served after all that.
    with httpx.Client(base_url=srv.url, timeout=1) as client:
        assert [client.get("/healthz").json() for _ in range(3)] == [{"status": "ok"}] * 3


@SQLITE_ONLY
def test_oversized_request_head_is_refused(start):
    srv = start()
    sock = connect(srv.port)
    sock.sendall(b"GET /healthz HTTP/1.1\r\n" + b"X-Big: " + b"a" * 70_000)
    answer, _ = read_until_closed(sock, time.monotonic() + 5)
    assert answer == b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    sock.close()
    assert_answers_quickly(srv.url)


@SQLITE_ONLY
def test_tls_clients_that_never_handshake_do_not_block_accept(start, site):
    self_signed(site)
    ctx = ssl.create_default_context(cafile=str(site / "cert.pem"))
    srv = start(https=True, verify=ctx, https_cert_file=str(site / "cert.pem"), https_key_file=str(site / "key.pem"),
                read_header_timeout="2s")
    began = time.monotonic()
    silent = [connect(srv.port) for _ in range(30)]  # cheroot did the handshake in its accepting thread
    partial = [connect(srv.port) for _ in range(30)]
    for sock in partial:
        sock.sendall(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello, never finished
    for _ in range(3):
        assert_answers_quickly(srv.url, verify=ctx)
    # A TLS client that completes the handshake but sends its request head slowly.
    slow_tls = ctx.wrap_socket(connect(srv.port), server_hostname="127.0.0.1")
    slow_tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    tls_began = time.monotonic()
    assert_answers_quickly(srv.url, verify=ctx)
    for sock in silent + partial:
        answer, closed = read_until_closed(sock, began + 3.3)
        assert answer == b""  # no TLS session: nothing to answer in
        assert closed - began > 1.9
        sock.close()
    answer, closed = read_until_closed(slow_tls, tls_began + 3.3)
    assert answer == TIMEOUT_408 and closed - tls_began > 1.9
    slow_tls.close()
    # Plain HTTP on the TLS port still gets cheroot's explanation.
    sock = connect(srv.port)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    answer, _ = read_until_closed(sock, time.monotonic() + 3)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n") and answer.endswith(b"only speaks HTTPS on this port.")
    sock.close()


@SQLITE_ONLY
def test_slow_request_body_gets_408(start, tokens):
    srv = start(read_body_timeout="1s")
    sock = connect(srv.port)
    began = time.monotonic()
    sock.sendall(b"POST /api/jobs/start_job/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"X-Auth-Token: " + tokens(["api"]).encode() + b"\r\nContent-Length: 100\r\n\r\n{\"jobId\": 1")
    answer, closed = read_until_closed(sock, began + 4)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert orjson.loads(body) == {"status": "Request Timeout",
                                  "error": "the request body did not arrive within 1 s (main.read-body-timeout)"}
    assert 0.9 < closed - began < 3
    sock.close()
    assert_answers_quickly(srv.url)
    # A body that arrives in time, in pieces, is read as before.
    job = {"jobId": 7, "cluster": "nope"}
    raw = orjson.dumps(job)
    sock = connect(srv.port)
    sock.sendall(b"POST /api/jobs/start_job/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
                 b"X-Auth-Token: " + tokens(["api"]).encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(raw) + raw[:5])
    time.sleep(0.3)
    sock.sendall(raw[5:])
    answer, _ = read_until_closed(sock, time.monotonic() + 5)
    head, _, body = answer.partition(b"\r\n\r\n")
    # Read whole: the job is refused for its cluster, not for a body cut short.
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert orjson.loads(body) == {"status": "Bad Request", "error": "cluster 'nope' is not in the job archive"}
    sock.close()
