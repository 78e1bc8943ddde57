"""The real HTTP server: ``cc-backend --config X serve`` as a subprocess on a free port, tested over HTTP."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import httpx
import jwt as pyjwt
import pytest

from conftest import run_cli

FAST_BCRYPT = {"CC_BCRYPT_ROUNDS": "4"}
EXE = Path(sys.executable).parent / "cc-backend"
SQLITE_ONLY = pytest.mark.parametrize("empty_db_url", ["sqlite"], indirect=True)
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "content-security-policy": "frame-ancestors 'none'; object-src 'none'; base-uri 'self'",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(site: Path, *args: str) -> subprocess.CompletedProcess:
    return run_cli("--config", str(site / "config.json"), *args, cwd=site, env=FAST_BCRYPT)


def configure(site: Path, **main: object) -> dict:
    config = json.loads((site / "config.json").read_text())
    for key, value in main.items():
        if key == "validate_user":
            config["auth"]["jwts"]["validate-user"] = value
        else:
            config["main"][key.replace("_", "-")] = value
    (site / "config.json").write_text(json.dumps(config, indent=2))
    return config


class Server:
    """One ``cc-backend serve`` process; ``url`` is its base URL."""

    def __init__(self, site: Path, *, https: bool = False, dev: bool = False, env: dict | None = None,
                 options: tuple[str, ...] = ()) -> None:
        self.site = site
        self.port = free_port()
        configure(site, addr=f"127.0.0.1:{self.port}")
        self.url = f"{'https' if https else 'http'}://127.0.0.1:{self.port}"
        self.log = open(site / "server.log", "wb")  # noqa: SIM115 - closed in stop()
        args = [str(EXE), *options, "--config", str(site / "config.json"), "serve"] + (["--dev"] if dev else [])
        self.proc = subprocess.Popen(args, cwd=site, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})})

    def wait_ready(self, verify: object = True, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.url + "/healthz", verify=verify, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        pytest.fail(f"server did not answer /healthz within {timeout} s:\n{self.output()}")

    def output(self) -> str:
        self.log.flush()
        return (self.site / "server.log").read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


@pytest.fixture
def start(site):
    """Start a server on ``site`` (after init-db) with extra main.* settings; stopped at teardown."""
    servers: list[Server] = []

    def _start(*, https: bool = False, dev: bool = False, verify: object = True, env: dict | None = None,
               **main: object) -> Server:
        r = cli(site, "-init-db")
        assert r.returncode == 0, r.stderr
        if main:
            configure(site, **main)
        server = Server(site, https=https, dev=dev, env=env)
        servers.append(server)
        server.wait_ready(verify=verify)
        return server

    yield _start
    for server in servers:
        server.stop()


@pytest.fixture
def tokens(site):
    """Signed tokens for the site's key: tokens(roles, sub=..., ...)."""
    from cc_backend.auth.keys import issue_jwt
    from cc_backend.config import load_env

    secrets = load_env(site / ".env", environ={})

    def _token(roles, sub: str = "apiuser", *, key: str | None = None, now: float | None = None) -> str:
        return issue_jwt(sub, roles, key or secrets.JWT_PRIVATE_KEY, dt.timedelta(hours=1), now=now)

    return _token


def auth(token: str) -> dict[str, str]:
    return {"X-Auth-Token": token}


# --------------------------------------------------------------------------------------------------


@SQLITE_ONLY
def test_headers_errors_cors_csrf_gzip(start, tokens):
    srv = start()
    ok = tokens(["api"])
    r = httpx.get(srv.url + "/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    for name, value in SECURITY_HEADERS.items():
        assert r.headers[name] == value
    assert "strict-transport-security" not in r.headers
    assert "strict-transport-security" in httpx.get(srv.url + "/healthz", headers={"X-Forwarded-Proto": "https"}).headers

    for path in ("/api/does-not-exist", "/userapi/nope/", "/frontend/x", "/config/y"):
        r = httpx.get(srv.url + path, headers=auth(ok))
        assert r.status_code == 404, path
        assert r.json() == {"status": "Resource not found", "error": "the requested endpoint does not exist"}
        assert r.headers["x-frame-options"] == "DENY"
    r = httpx.get(srv.url + "/not-api")
    assert r.status_code == 404 and r.headers["x-content-type-options"] == "nosniff"
    r = httpx.delete(srv.url + "/api/jobs/", headers=auth(ok))
    assert r.status_code == 405 and r.json()["status"] == "Method Not Allowed"

    # CSRF guard: a cross-site non-GET is refused before anything else; same-site passes on.
    r = httpx.post(srv.url + "/api/jobs/", headers={"Sec-Fetch-Site": "cross-site", **auth(ok)})
    assert r.status_code == 403 and r.json()["status"] == "Forbidden"
    assert httpx.post(srv.url + "/api/jobs/", headers={"Sec-Fetch-Site": "same-origin", **auth(ok)}).status_code == 405
    assert httpx.get(srv.url + "/api/jobs/", headers={"Sec-Fetch-Site": "cross-site", **auth(ok)}).status_code == 200

    # CORS as upstream: any origin, no credentials, preflight answered.
    r = httpx.get(srv.url + "/healthz", headers={"Origin": "https://elsewhere.example"})
    assert r.headers["access-control-allow-origin"] == "*"
    r = httpx.options(srv.url + "/api/jobs/", headers={"Origin": "https://x.example", "Access-Control-Request-Method": "GET"})
    assert r.status_code == 200 and "GET" in r.headers["access-control-allow-methods"]
    assert "access-control-allow-credentials" not in r.headers

    # gzip above 1 KiB when accepted, not for small bodies or clients that do not accept it.
    big = httpx.get(srv.url + "/api/clusters/", headers={"Accept-Encoding": "gzip", **auth(ok)})
    assert big.status_code == 200 and big.headers["content-encoding"] == "gzip"
    assert int(big.headers["content-length"]) < len(big.content)
    assert {c["name"] for c in big.json()["clusters"]} == {"alex", "emmy", "fritz"}
    plain = httpx.get(srv.url + "/api/clusters/", headers={"Accept-Encoding": "identity", **auth(ok)})
    assert "content-encoding" not in plain.headers and plain.json() == big.json()
    assert "content-encoding" not in httpx.get(srv.url + "/healthz", headers={"Accept-Encoding": "gzip"}).headers


@SQLITE_ONLY
def test_jwt_matrix(start, tokens, site):
    from cc_backend.auth.keys import generate_keypair

    srv = start()
    url = srv.url + "/api/jobs/"
    now = int(time.time())
    claims = {"sub": "apiuser", "roles": ["api"], "iat": now, "exp": now + 3600}
    public = (site / ".env").read_text().split('"')[1]
    other_private = generate_keypair()[1]
    cases = {
        "no token": {},
        "alg none": auth(pyjwt.encode(claims, None, algorithm="none")),
        "HS256 with the public key as secret": auth(pyjwt.encode(claims, public, algorithm="HS256")),
        "other key": auth(tokens(["api"], key=other_private)),
        "expired": auth(tokens(["api"], now=now - 7200)),
        "garbage": auth("not.a.jwt"),
        "roles [user]": auth(tokens(["user"])),
        "roles [admin]": auth(tokens(["admin"])),
        "roles [user, api]": auth(tokens(["user", "api"])),
        "roles []": auth(tokens([])),
        "bad bearer": {"Authorization": "Bearer nope"},
    }
    for name, headers in cases.items():
        r = httpx.get(url, headers=headers)
        assert r.status_code == 401, name
        assert r.json()["status"] == "Unauthorized" and r.json()["error"], name

    for roles in (["api"], ["admin", "api"], ["api", "admin", "user"], ["api", "wizard"]):
        r = httpx.get(url, headers=auth(tokens(roles)))
        assert r.status_code == 200, roles
    assert httpx.get(url, headers={"Authorization": "Bearer " + tokens(["api"])}).status_code == 200

    # /userapi/: api plus any of user/manager/support/admin
    assert httpx.get(srv.url + "/userapi/jobs/", headers=auth(tokens(["user", "api"]))).status_code == 200
    assert httpx.get(srv.url + "/userapi/jobs/", headers=auth(tokens(["api"]))).status_code == 200
    assert httpx.get(srv.url + "/userapi/jobs/", headers=auth(tokens(["user"]))).status_code == 401

    # /api/users/ needs admin in addition to admission
    r = httpx.get(srv.url + "/api/users/", headers=auth(tokens(["api"])))
    assert r.status_code == 403 and r.json()["status"] == "Forbidden"
    assert httpx.get(srv.url + "/api/users/", headers=auth(tokens(["admin", "api"]))).json() == []


def test_jobs_and_clusters(start, tokens, site):
    """GET /api/jobs/, /api/jobs/{id}, /api/clusters/ over the peer archive, on SQLite and MariaDB."""
    srv = start()
    h = auth(tokens(["api"]))
    get = lambda path, **kw: httpx.get(srv.url + path, headers=kw.pop("headers", h), **kw)  # noqa: E731

    r = get("/api/jobs/")
    assert r.status_code == 200
    body = r.json()
    assert body["items"] == 25 and body["page"] == 1
    assert [j["jobId"] for j in body["jobs"]] == [1404397, 1403244]  # start_time DESC
    job = body["jobs"][0]
    assert job["cluster"] == "emmy" and job["resources"][0]["hostname"] and "tags" in job
    assert "metaData" not in job
    assert "metaData" in get("/api/jobs/", params={"with-metadata": ""}).json()["jobs"][0]

    r = get("/api/jobs/", params={"items-per-page": 1, "page": 2})
    assert r.json()["items"] == 1 and r.json()["page"] == 2
    assert [j["jobId"] for j in r.json()["jobs"]] == [1403244]
    assert get("/api/jobs/", params={"items-per-page": 1, "page": 3}).json()["jobs"] == []

    assert [j["jobId"] for j in get("/api/jobs/", params={"start-time": "1608923000-1608923100"}).json()["jobs"]] == [1403244]
    assert len(get("/api/jobs/", params=[("state", "completed"), ("state", "running")]).json()["jobs"]) == 2
    assert get("/api/jobs/", params={"state": "running"}).json()["jobs"] == []
    assert len(get("/api/jobs/", params={"cluster": "emmy"}).json()["jobs"]) == 2
    assert get("/api/jobs/", params={"cluster": "fritz"}).json()["jobs"] == []
    assert get("/api/jobs/", params={"project": "nope"}).json()["jobs"] == []

    for params in ({"page": 0}, {"page": "x"}, {"items-per-page": 0}, {"state": "bogus"},
                   {"start-time": "12"}, {"start-time": "a-b"}, {"sort": "x"}):
        r = get("/api/jobs/", params=params)
        assert r.status_code == 400, params
        assert r.json()["status"] == "Bad Request" and r.json()["error"], params

    db_id = job["id"]
    r = get(f"/api/jobs/{db_id}")
    assert r.status_code == 200 and r.json()["Data"] is None and r.json()["Meta"]["jobId"] == 1404397
    assert get(f"/userapi/jobs/{db_id}").status_code == 200
    r = get("/api/jobs/999999")
    assert r.status_code == 422 and r.json()["status"] == "Unprocessable Entity"
    assert get("/api/jobs/abc").status_code == 400

    clusters = get("/api/clusters/").json()["clusters"]
    assert sorted(c["name"] for c in clusters) == ["alex", "emmy", "fritz"]
    assert [c["name"] for c in get("/api/clusters/", params={"cluster": "emmy"}).json()["clusters"]] == ["emmy"]
    r = get("/api/clusters/", params={"cluster": "nope"})
    assert r.status_code == 400 and r.json() == {"status": "Bad Request", "error": "unknown cluster: nope"}

    # Only an api-only token sees every job (upstream SecurityCheck, internal/repository/job.go); api plus user sees that user's jobs, which is
    # what /userapi/ is for.
    mine = httpx.get(srv.url + "/userapi/jobs/", headers=auth(tokens(["user", "api"], sub="nobody"))).json()
    assert mine["jobs"] == []
    owner = job["user"]
    mine = httpx.get(srv.url + "/userapi/jobs/", headers=auth(tokens(["user", "api"], sub=owner))).json()
    assert {j["user"] for j in mine["jobs"]} == {owner} and mine["jobs"]


@SQLITE_ONLY
def test_allowed_ips_and_validate_user(start, tokens, site):
    r = cli(site, "-migrate-db")
    assert r.returncode == 0, r.stderr
    r = cli(site, "-add-user", "svc:api:pw")
    assert r.returncode == 0, r.stderr
    # The test client is the trusted proxy here; tests/test_server_transport.py covers the proxy rules.
    srv = start(api_allowed_ips=["10.1.2.3", "::1"], validate_user=True, trusted_proxies=["127.0.0.1"])
    url = srv.url + "/api/jobs/"
    token = tokens(["api"], sub="svc")
    r = httpx.get(url, headers=auth(token))
    assert r.status_code == 401 and "127.0.0.1" in r.json()["error"]
    assert httpx.get(url, headers={"X-Real-Ip": "10.1.2.3", **auth(token)}).status_code == 200
    assert httpx.get(url, headers={"X-Forwarded-For": "192.0.2.1, 10.1.2.3", **auth(token)}).status_code == 200
    # validate-user: unknown users are refused, roles come from the database, not the token
    assert httpx.get(url, headers={"X-Real-Ip": "10.1.2.3", **auth(tokens(["api"], sub="ghost"))}).status_code == 401
    r = httpx.get(srv.url + "/api/users/", headers={"X-Real-Ip": "10.1.2.3", **auth(tokens(["admin", "api"], sub="svc"))})
    assert r.status_code == 403  # token claims admin, the database says api only


@SQLITE_ONLY
def test_graceful_shutdown_and_disabled_auth(start, site, tmp_path_factory):
    notify_path = tmp_path_factory.mktemp("notify") / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.settimeout(5)
    srv = start(dev=True, disable_authentication=True, env={"NOTIFY_SOCKET": str(notify_path)})
    assert notify.recv(100) == b"READY=1"  # systemd Type=notify
    assert httpx.get(srv.url + "/api/jobs/").status_code == 200  # no token needed: acts as admin
    assert httpx.get(srv.url + "/api/users/").status_code == 200
    result: dict = {}

    def slow() -> None:
        try:
            result["response"] = httpx.get(srv.url + "/dev/sleep", params={"seconds": 1.5}, timeout=10)
        except Exception as exc:  # noqa: BLE001 - reported below
            result["error"] = exc

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.5)
    srv.proc.send_signal(signal.SIGTERM)
    thread.join(10)
    assert "error" not in result, result
    assert result["response"].status_code == 200 and result["response"].json() == {"slept": 1.5}
    assert srv.proc.wait(timeout=20) == 0
    assert notify.recv(100) == b"STOPPING=1"
    notify.close()
    assert "shutting down" in srv.output()
    with pytest.raises(httpx.TransportError):
        httpx.get(srv.url + "/healthz", timeout=1)


def self_signed(folder: Path) -> tuple[Path, Path]:
    """cert.pem and key.pem for 127.0.0.1 in ``folder`` (a self-signed CA certificate, valid for a day)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@SQLITE_ONLY
def test_https(start, site):
    self_signed(site)
    ctx = ssl.create_default_context(cafile=str(site / "cert.pem"))
    srv = start(https=True, verify=ctx, https_cert_file=str(site / "cert.pem"), https_key_file=str(site / "key.pem"))
    r = httpx.get(srv.url + "/healthz", verify=ctx)
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert r.headers["strict-transport-security"].startswith("max-age=")
    assert srv.url.startswith("https://") and "listening at https://" in srv.output()
    old = ssl.create_default_context(cafile=str(site / "cert.pem"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises((httpx.TransportError, ssl.SSLError)):
        httpx.get(srv.url + "/healthz", verify=old)
    # Plain HTTP on the TLS port is not served, only told so.
    r = httpx.get(srv.url.replace("https://", "http://") + "/healthz", timeout=3)
    assert r.status_code == 400
    assert r.text == "The client sent a plain HTTP request, but this server only speaks HTTPS on this port."


@SQLITE_ONLY
def test_refuses_empty_database(site):
    configure(site, addr=f"127.0.0.1:{free_port()}")
    r = run_cli("--config", str(site / "config.json"), "serve", cwd=site)
    assert r.returncode != 0
    assert "--migrate-db" in r.stderr


def test_package_import_is_light():
    code = "import sys, cc_backend.server; assert 'bottle' not in sys.modules and 'cheroot' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], env={**os.environ}).returncode == 0


def test_addr_parsing_and_redirect_app():
    from cc_backend.errors import ConfigError
    from cc_backend.server.serving import parse_addr, redirect_app

    assert parse_addr(":8080") == ("0.0.0.0", 8080)
    assert parse_addr("localhost:8080") == ("localhost", 8080)
    assert parse_addr("[::1]:443") == ("::1", 443)
    with pytest.raises(ConfigError):
        parse_addr("8080")
    seen = {}
    body = redirect_app("https://cc.example.org/")({"PATH_INFO": "/a/b", "QUERY_STRING": "x=1"},
                                                   lambda status, headers: seen.update(status=status, headers=dict(headers)))
    assert list(body) == [b""] and seen["status"].startswith("301")
    assert seen["headers"]["Location"] == "https://cc.example.org/a/b?x=1"


def _call(app, path: str, method: str = "GET", headers: dict | None = None) -> tuple[int, dict, bytes]:
    """One request through the WSGI app in process."""
    from io import BytesIO
    from wsgiref.util import setup_testing_defaults

    path, _, query = path.partition("?")
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "wsgi.input": BytesIO()}
    environ.update({"HTTP_" + k.upper().replace("-", "_"): v for k, v in (headers or {}).items()})
    setup_testing_defaults(environ)
    seen: dict = {}
    body = b"".join(app(environ, lambda status, hdrs, exc_info=None: seen.update(status=status, headers=dict(hdrs))))
    return int(seen["status"].split()[0]), seen["headers"], body


def test_error_shape_in_process(caplog):
    """CCError -> its status; bottle errors and unexpected exceptions -> the same JSON shape, no internals."""
    import bottle

    from cc_backend.errors import Conflict
    from cc_backend.server.app import make_app

    class FakeRuntime:
        class config:  # noqa: N801 - attribute bag
            class main:  # noqa: N801
                disable_authentication = True
                api_allowed_ips = None
                api_subjects = None
                max_request_body_size = 8 << 20
                trusted_proxies: list[str] = []

    app = make_app(FakeRuntime())

    def boom() -> None:
        raise RuntimeError("secret internals /etc/passwd")

    def conflict() -> None:
        raise Conflict("job already stopped")

    def aborts() -> None:
        bottle.abort(400, "bad thing")

    app.route("/api/boom", "GET", boom)
    app.route("/api/conflict", "GET", conflict)
    app.route("/api/abort", "GET", aborts)
    app.route("/plain/boom", "GET", boom)
    with caplog.at_level("ERROR", logger="cc_backend.server"):
        status, headers, body = _call(app, "/api/boom")
    assert status == 500 and json.loads(body) == {"status": "Internal Server Error", "error": "internal server error"}
    assert headers["Content-Type"] == "application/json" and headers["X-Frame-Options"] == "DENY"
    assert "secret internals" in caplog.text and "Traceback" in caplog.text  # logged, not sent
    status, _, body = _call(app, "/plain/boom")
    assert status == 500 and b"secret" not in body
    status, _, body = _call(app, "/api/conflict")
    assert status == 422 and json.loads(body) == {"status": "Unprocessable Entity", "error": "job already stopped"}
    status, _, body = _call(app, "/api/abort")
    assert status == 400 and json.loads(body) == {"status": "Bad Request", "error": "bad thing"}
    status, _, body = _call(app, "/userapi/unknown")
    assert status == 404 and json.loads(body)["status"] == "Resource not found"
