"""The real HTTP server: ``cc-backend --config X serve`` as a subprocess on a free port, tested over HTTP."""

from __future__ import annotations

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

import httpx
import jwt as pyjwt
import pytest
from support.cli import cli, run_cli
from support.db import SHARED_SQLITE_ONLY, SQLITE_ONLY
from support.server import free_port, self_signed, wsgi_call
from support.site import auth, configure, token

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "content-security-policy": "frame-ancestors 'none'; object-src 'none'; base-uri 'self'",
}


# --------------------------------------------------------------------------------------------------


@SHARED_SQLITE_ONLY
def test_headers_errors_cors_csrf_gzip(shared_app, shared_site):
    srv = shared_app
    ok = token(shared_site, ["api"])
    r = srv.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    for name, value in SECURITY_HEADERS.items():
        assert r.headers[name] == value
    assert "strict-transport-security" not in r.headers
    assert "strict-transport-security" in srv.get("/healthz", headers={"X-Forwarded-Proto": "https"}).headers

    for path in ("/api/does-not-exist", "/userapi/nope/", "/frontend/x", "/config/y"):
        r = srv.get(path, headers=auth(ok))
        assert r.status_code == 404, path
        assert r.json() == {"status": "Resource not found", "error": "the requested endpoint does not exist"}
        assert r.headers["x-frame-options"] == "DENY"
    r = srv.get("/not-api")
    assert r.status_code == 404 and r.headers["x-content-type-options"] == "nosniff"
    r = srv.delete("/api/jobs/", headers=auth(ok))
    assert r.status_code == 405 and r.json()["status"] == "Method Not Allowed"

    # CSRF guard: a cross-site non-GET is refused before anything else; same-site passes on.
    r = srv.post("/api/jobs/", headers={"Sec-Fetch-Site": "cross-site", **auth(ok)})
    assert r.status_code == 403 and r.json()["status"] == "Forbidden"
    assert srv.post("/api/jobs/", headers={"Sec-Fetch-Site": "same-origin", **auth(ok)}).status_code == 405
    assert srv.get("/api/jobs/", headers={"Sec-Fetch-Site": "cross-site", **auth(ok)}).status_code == 200

    # CORS as upstream: any origin, no credentials, preflight answered.
    r = srv.get("/healthz", headers={"Origin": "https://elsewhere.example"})
    assert r.headers["access-control-allow-origin"] == "*"
    r = srv.options("/api/jobs/", headers={"Origin": "https://x.example", "Access-Control-Request-Method": "GET"})
    assert r.status_code == 200 and "GET" in r.headers["access-control-allow-methods"]
    assert "access-control-allow-credentials" not in r.headers

    # gzip above 1 KiB when accepted, not for small bodies or clients that do not accept it.
    big = srv.get("/api/clusters/", headers={"Accept-Encoding": "gzip", **auth(ok)})
    assert big.status_code == 200 and big.headers["content-encoding"] == "gzip"
    assert int(big.headers["content-length"]) < len(big.content)
    assert {c["name"] for c in big.json()["clusters"]} == {"alex", "emmy", "fritz"}
    plain = srv.get("/api/clusters/", headers={"Accept-Encoding": "identity", **auth(ok)})
    assert "content-encoding" not in plain.headers and plain.json() == big.json()
    assert "content-encoding" not in srv.get("/healthz", headers={"Accept-Encoding": "gzip"}).headers


@SHARED_SQLITE_ONLY
def test_jwt_matrix(shared_app, shared_site):
    from cc_backend.auth.keys import generate_keypair

    srv = shared_app
    url = "/api/jobs/"
    now = int(time.time())
    claims = {"sub": "apiuser", "roles": ["api"], "iat": now, "exp": now + 3600}
    public = (shared_site / ".env").read_text().split('"')[1]
    other_private = generate_keypair()[1]
    cases = {
        "no token": {},
        "alg none": auth(pyjwt.encode(claims, None, algorithm="none")),
        "HS256 with the public key as secret": auth(pyjwt.encode(claims, public, algorithm="HS256")),
        "other key": auth(token(shared_site, ["api"], key=other_private)),
        "expired": auth(token(shared_site, ["api"], now=now - 7200)),
        "garbage": auth("not.a.jwt"),
        "roles [user]": auth(token(shared_site, ["user"])),
        "roles [admin]": auth(token(shared_site, ["admin"])),
        "roles [user, api]": auth(token(shared_site, ["user", "api"])),
        "roles []": auth(token(shared_site, [])),
        "bad bearer": {"Authorization": "Bearer nope"},
    }
    for name, headers in cases.items():
        r = srv.get(url, headers=headers)
        assert r.status_code == 401, name
        assert r.json()["status"] == "Unauthorized" and r.json()["error"], name

    for roles in (["api"], ["admin", "api"], ["api", "admin", "user"], ["api", "wizard"]):
        r = srv.get(url, headers=auth(token(shared_site, roles)))
        assert r.status_code == 200, roles
    assert srv.get(url, headers={"Authorization": "Bearer " + token(shared_site, ["api"])}).status_code == 200

    # /userapi/: api plus any of user/manager/support/admin
    assert srv.get("/userapi/jobs/", headers=auth(token(shared_site, ["user", "api"]))).status_code == 200
    assert srv.get("/userapi/jobs/", headers=auth(token(shared_site, ["api"]))).status_code == 200
    assert srv.get("/userapi/jobs/", headers=auth(token(shared_site, ["user"]))).status_code == 401

    # /api/users/ needs admin in addition to admission
    r = srv.get("/api/users/", headers=auth(token(shared_site, ["api"])))
    assert r.status_code == 403 and r.json()["status"] == "Forbidden"
    assert srv.get("/api/users/", headers=auth(token(shared_site, ["admin", "api"]))).json() == []


def test_jobs_and_clusters(shared_app, shared_site):
    """GET /api/jobs/, /api/jobs/{id}, /api/clusters/ over the peer archive, on SQLite and MariaDB."""
    srv = shared_app
    h = auth(token(shared_site, ["api"]))
    get = lambda path, **kw: srv.get(path, headers=kw.pop("headers", h), **kw)  # noqa: E731

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
    mine = srv.get("/userapi/jobs/", headers=auth(token(shared_site, ["user", "api"], sub="nobody"))).json()
    assert mine["jobs"] == []
    owner = job["user"]
    mine = srv.get("/userapi/jobs/", headers=auth(token(shared_site, ["user", "api"], sub=owner))).json()
    assert {j["user"] for j in mine["jobs"]} == {owner} and mine["jobs"]


@SQLITE_ONLY
def test_allowed_ips_and_validate_user(app_start, tokens, site):
    r = cli(site, "-migrate-db")
    assert r.returncode == 0, r.stderr
    r = cli(site, "-add-user", "svc:api:pw")
    assert r.returncode == 0, r.stderr
    # The test client is the trusted proxy here; tests/test_server_transport.py covers the proxy rules.
    srv = app_start(api_allowed_ips=["10.1.2.3", "::1"], validate_user=True, trusted_proxies=["127.0.0.1"])
    url = "/api/jobs/"
    token = tokens(["api"], sub="svc")
    r = srv.get(url, headers=auth(token))
    assert r.status_code == 401 and "127.0.0.1" in r.json()["error"]
    assert srv.get(url, headers={"X-Real-Ip": "10.1.2.3", **auth(token)}).status_code == 200
    assert srv.get(url, headers={"X-Forwarded-For": "192.0.2.1, 10.1.2.3", **auth(token)}).status_code == 200
    # validate-user: unknown users are refused, roles come from the database, not the token
    assert srv.get(url, headers={"X-Real-Ip": "10.1.2.3", **auth(tokens(["api"], sub="ghost"))}).status_code == 401
    r = srv.get("/api/users/", headers={"X-Real-Ip": "10.1.2.3", **auth(tokens(["admin", "api"], sub="svc"))})
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
        status, headers, body = wsgi_call(app, "/api/boom")
    assert status == 500 and json.loads(body) == {"status": "Internal Server Error", "error": "internal server error"}
    assert headers["Content-Type"] == "application/json" and headers["X-Frame-Options"] == "DENY"
    assert "secret internals" in caplog.text and "Traceback" in caplog.text  # logged, not sent
    status, _, body = wsgi_call(app, "/plain/boom")
    assert status == 500 and b"secret" not in body
    status, _, body = wsgi_call(app, "/api/conflict")
    assert status == 422 and json.loads(body) == {"status": "Unprocessable Entity", "error": "job already stopped"}
    status, _, body = wsgi_call(app, "/api/abort")
    assert status == 400 and json.loads(body) == {"status": "Bad Request", "error": "bad thing"}
    status, _, body = wsgi_call(app, "/userapi/unknown")
    assert status == 404 and json.loads(body)["status"] == "Resource not found"
