"""The real server at the edge: slow or silent clients and bodies, TLS clients that never handshake, reverse proxies, the access log."""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
import time

import httpx
import orjson
from support.cli import EXE, cli
from support.db import SQLITE_ONLY
from support.server import Server, free_port, self_signed
from support.site import auth, configure

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


def client_from(address: str) -> httpx.Client:
    """An HTTP client whose connections come from ``address`` (any 127.x.y.z works on loopback)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=5)


def access_lines(output: str) -> list[str]:
    return [line.split("cc_backend.server.access: ", 1)[1] for line in output.splitlines()
            if "cc_backend.server.access: " in line]


@SQLITE_ONLY
def test_forwarded_headers_count_only_from_trusted_proxies(start, tokens):
    # 127.0.0.2 plays the reverse proxy, 10.0.0.0/8 the proxies behind it; 127.0.0.1 is a client.
    srv = start(api_allowed_ips=["192.0.2.1"], trusted_proxies=["127.0.0.2", "10.0.0.0/8"])
    url = srv.url + "/api/jobs/?items-per-page=1"
    token = auth(tokens(["api"]))

    def api(client: httpx.Client, **headers: str) -> tuple[int, str | None]:
        r = client.get(url, headers={**token, **headers})
        return r.status_code, r.json().get("error")

    with client_from("127.0.0.1") as direct, client_from("127.0.0.2") as proxy:
        # A client that is no trusted proxy cannot claim another address.
        assert api(direct, **{"X-Real-Ip": "192.0.2.1"}) == (401, "unknown ip: 127.0.0.1")
        assert api(direct, **{"X-Forwarded-For": "192.0.2.1"}) == (401, "unknown ip: 127.0.0.1")
        # Through the proxy: the right-most X-Forwarded-For entry that is not a trusted proxy.
        assert api(proxy, **{"X-Forwarded-For": "192.0.2.1"}) == (200, None)
        assert api(proxy, **{"X-Forwarded-For": "192.0.2.1, 10.9.9.9"}) == (200, None)
        assert api(proxy, **{"X-Forwarded-For": "192.0.2.1, 198.51.100.7"}) == (401, "unknown ip: 198.51.100.7")
        assert api(proxy, **{"X-Forwarded-For": "10.1.1.1, 10.9.9.9"}) == (401, "unknown ip: 10.1.1.1")
        assert api(proxy, **{"X-Real-Ip": "192.0.2.1"}) == (200, None)
        assert api(proxy, **{"X-Real-Ip": "192.0.2.1", "X-Forwarded-For": "198.51.100.7"}) == \
            (401, "unknown ip: 198.51.100.7")
        assert api(proxy) == (401, "unknown ip: 127.0.0.2")
        # The login rate limit counts the same address.
        for client, forwarded, user in ((direct, "203.0.113.9", "nobody1"), (proxy, "203.0.113.5", "nobody2")):
            statuses = [client.post(srv.url + "/login", data={"username": user, "password": "wrong"},
                                    headers={"X-Forwarded-For": forwarded}).status_code for _ in range(6)]
            assert statuses[-1] == 429
    output = srv.output()
    assert "login of 'nobody1' from 127.0.0.1 refused" in output
    assert "login of 'nobody2' from 203.0.113.5 refused" in output
    # And so does the access log.
    clients = [line.split(" ", 1)[0] for line in access_lines(output) if '"GET /api/jobs/' in line]
    assert clients == ["127.0.0.1", "127.0.0.1", "192.0.2.1", "192.0.2.1", "198.51.100.7", "10.1.1.1",
                       "192.0.2.1", "198.51.100.7", "127.0.0.2"]


@SQLITE_ONLY
def test_trusted_proxies_must_be_addresses(site):
    configure(site, trusted_proxies=["10.0.0.0/8", "proxy.example.org"])
    r = cli(site, "serve")
    assert r.returncode != 0
    assert "main.trusted-proxies" in r.stderr and '"proxy.example.org"' in r.stderr


ACCESS_LINE = re.compile(r'^(\S+) (\S+) "([^"]*)" (\d{3}) (\d+) \d+\.\dms$')


@SQLITE_ONLY
def test_access_log_line_per_request(start, tokens, site):
    srv = start()  # no --loglevel: the server logs at info
    identity = {"Accept-Encoding": "identity"}  # the logged size is the size sent
    r = httpx.get(srv.url + "/api/jobs/?items-per-page=1&page=1", headers={**identity, **auth(tokens(["api"], sub="alice"))})
    assert r.status_code == 200
    jobs_size = len(r.content)
    r = httpx.get(srv.url + "/api/jobs/", headers={**identity, **auth("not-a-token")})
    assert r.status_code == 401
    denied_size = len(r.content)
    r = httpx.get(srv.url + "/healthz?jwt=abc&state=1&Access%5FToken=x&page=1&user_key&password=")
    assert r.json() == {"status": "ok"}
    lines = [ACCESS_LINE.match(line) for line in access_lines(srv.output())]
    assert all(lines), access_lines(srv.output())
    # The readiness probes of wait_ready come first.
    assert [m.groups() for m in lines][-3:] == [
        ("127.0.0.1", "alice", "GET /api/jobs/?items-per-page=1&page=1", "200", str(jobs_size)),
        ("127.0.0.1", "-", "GET /api/jobs/", "401", str(denied_size)),
        ("127.0.0.1", "-", "GET /healthz?jwt=REDACTED&state=1&Access%5FToken=REDACTED&page=1&user_key&password=REDACTED",
         "200", "15"),
    ]
    # Other commands stay at warn.
    r = cli(site, "jobs", "list", "--format", "json")
    assert r.returncode == 0 and "INFO" not in r.stderr


@SQLITE_ONLY
def test_loglevel_warn_silences_the_access_log(site):
    r = cli(site, "-init-db")
    assert r.returncode == 0, r.stderr
    quiet = Server(site, options=("--loglevel", "warn"))
    try:
        quiet.wait_ready()
        assert httpx.get(quiet.url + "/healthz").status_code == 200
        output = quiet.output()
    finally:
        quiet.stop()
    assert "cc_backend.server.access" not in output and "listening at" in output
    # A bare `cc-backend` (upstream's way to start the server) logs requests like `serve`.
    port = free_port()
    configure(site, addr=f"127.0.0.1:{port}")
    with open(site / "bare.log", "wb") as log:
        proc = subprocess.Popen([str(EXE), "--config", str(site / "config.json")], cwd=site, stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline and proc.poll() is None, (site / "bare.log").read_text()
                    time.sleep(0.05)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    assert '127.0.0.1 - "GET /healthz" 200 15 ' in (site / "bare.log").read_text()


@SQLITE_ONLY
def test_unread_bodies_of_refused_requests_hold_no_worker(start):
    """A 401 for a POST whose (slow) body nobody reads comes at once and ties up no worker thread."""
    srv = start()
    head = b"POST /api/jobs/start_job/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
    senders = []
    for _ in range(40):  # more than the 16 worker threads
        sock = connect(srv.port)
        sock.sendall(head + b"{" * 1000)
        senders.append(sock)
    for sock in senders:
        sock.settimeout(1)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            answer += sock.recv(4096)
        status, _, rest = answer.partition(b"\r\n")
        assert status == b"HTTP/1.1 401 Unauthorized" and b"\r\nConnection: close\r\n" in rest
        assert orjson.loads(rest.partition(b"\r\n\r\n")[2]) == {"status": "Unauthorized", "error": "unauthorized: no token given"}
    # Still sending their bodies, slowly: the server discards them without a worker thread.
    for sock in senders:
        sock.sendall(b"{" * 100)
    assert_answers_quickly(srv.url)
    # The response was followed by the end of the stream (the server's side is shut down).
    for sock in senders:
        answer, _ = read_until_closed(sock, time.monotonic() + 1)
        assert answer == b""
        sock.close()


@SQLITE_ONLY
def test_pipelined_requests_and_the_head_deadline_on_kept_alive_connections(start):
    srv = start(read_header_timeout="1s")
    sock = connect(srv.port)
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    sock.sendall(request * 2 + b"GET /healthz HTTP/1.1\r\n")  # two requests and the start of a third
    began = time.monotonic()
    answer, closed = read_until_closed(sock, began + 3)
    responses = answer.split(b"HTTP/1.1 ")[1:]
    assert [r.split(b"\r\n", 1)[0] for r in responses] == [b"200 OK", b"200 OK", b"408 Request Timeout"]
    assert [r.rpartition(b"\r\n\r\n")[2] for r in responses[:2]] == [b'{"status":"ok"}'] * 2
    assert closed - began > 0.9  # the third head had its full second
    sock.close()
