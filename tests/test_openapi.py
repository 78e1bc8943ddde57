"""The OpenAPI description: every route is described and exists, it is valid and served, and fuzzing it finds no 5xx."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import httpx
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from support.cli import cli
from support.db import SQLITE_ONLY
from support.server import wsgi_call
from support.web import csrf_token

SPEC_FILE = Path(__file__).resolve().parents[1] / "server" / "openapi.json"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
#: bottle's ``<name>`` and ``<name:filter>`` wildcards, as OpenAPI's ``{name}``.
BOTTLE_WILDCARD = re.compile(r"<(\w+)(?::[^>]*)?>")
#: Which security schemes each auth group of server/auth.py must declare (None: no authentication).
GROUP_SECURITY = {
    None: [],
    "api": [{"XAuthToken": []}, {"BearerJWT": []}],
    "userapi": [{"XAuthToken": []}, {"BearerJWT": []}],
    "session": [{"SessionCookie": []}],
    "admin-session": [{"SessionCookie": []}],
    "token-or-session": [{"XAuthToken": []}, {"BearerJWT": []}, {"SessionCookie": []}],
}
#: Examples per operation and generation phase: the whole file stays well under two minutes.
#: CC_FUZZ_EXAMPLES=200 fuzzes deeper (minutes); CC_FUZZ_SEED=random (or a number) other inputs than CI's.
MAX_EXAMPLES = int(os.environ.get("CC_FUZZ_EXAMPLES", "12"))
FUZZ_SEED = os.environ.get("CC_FUZZ_SEED", "20250101")
#: No 5xx, and every answer is described: its status, its content type and its body's schema.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
FUZZ_ADMIN, FUZZ_PASSWORD = "fuzz-admin-q7", "fuzz-secret-q7"


def load_spec() -> dict:
    return json.loads(SPEC_FILE.read_text(encoding="utf-8"))


def spec_operations(spec: dict) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in spec["paths"].items() for method in item if method in HTTP_METHODS}


def is_web_page(route) -> bool:
    """The web UI's pages, files and the JSON its scripts fetch serve our own pages, not API clients."""
    return bool(route.config.get("web_page") or getattr(route.callback, "web_page", False))


def app_operations(app) -> dict[tuple[str, str], object]:
    return {(route.method.upper(), BOTTLE_WILDCARD.sub(r"{\1}", route.rule)): route
            for route in app.routes if not is_web_page(route)}


@pytest.fixture
def app(site):
    from cc_backend.runtime import Runtime
    from cc_backend.server.app import make_app

    return make_app(Runtime(str(site / "config.json"), str(site / ".env")))


# --------------------------------------------------------------------------------------------------
# (a) coverage in both directions, (b) validity


@SQLITE_ONLY
def test_every_route_is_described_and_every_description_is_a_route(app, site):
    from cc_backend.runtime import Runtime
    from cc_backend.server.app import make_app

    mounted, described = set(app_operations(app)), spec_operations(load_spec())
    undocumented, phantom = sorted(mounted - described), sorted(described - mounted)
    assert not undocumented and not phantom, (
        "server/openapi.json is out of step with the routes of make_app():\n"
        + "".join(f"  mounted, not described: {m} {p}\n" for m, p in undocumented)
        + "".join(f"  described, not mounted: {m} {p}\n" for m, p in phantom))
    # --dev adds its helpers and nothing else; they are not part of the API.
    dev = set(app_operations(make_app(Runtime(str(site / "config.json"), str(site / ".env")), dev=True)))
    assert dev > mounted and all(path.startswith("/dev/") for _, path in dev - mounted)


@SQLITE_ONLY
def test_described_security_is_the_route_groups_admission(app):
    from cc_backend.server.auth import route_group

    spec = load_spec()
    wrong = []
    for (method, path), route in sorted(app_operations(app).items()):
        declared = spec["paths"][path][method.lower()].get("security")
        expected = GROUP_SECURITY[route_group(route)]
        if declared != expected:
            wrong.append(f"  {method} {path}: described {declared}, admitted by {expected}")
    assert not wrong, "security of these operations differs from server/auth.py:\n" + "\n".join(wrong)


def test_the_description_is_valid_openapi():
    from openapi_spec_validator import validate

    spec = load_spec()
    validate(spec)
    assert spec["openapi"].startswith("3.")
    schemes = spec["components"]["securitySchemes"]
    assert schemes["XAuthToken"] == {**schemes["XAuthToken"], "type": "apiKey", "in": "header", "name": "X-Auth-Token"}
    assert schemes["BearerJWT"]["scheme"] == "bearer"
    assert schemes["SessionCookie"] == {**schemes["SessionCookie"], "type": "apiKey", "in": "cookie", "name": "session"}
    # operationIds are unique, every operation answers something and names its tags
    ids = [op["operationId"] for item in spec["paths"].values() for m, op in item.items() if m in HTTP_METHODS]
    assert len(ids) == len(set(ids))
    for path, item in spec["paths"].items():
        for method, op in item.items():
            assert op["responses"] and op["tags"] and op["summary"], (method, path)


def test_start_job_schema_follows_the_archive_job_meta_schema():
    """The start_job body has the archive's job-meta fields (less stopTime, which start_job refuses) and no others."""
    from importlib.resources import files

    from cc_backend.jobs.store import JOB_KEYS

    meta = json.loads(files("cc_backend.archive").joinpath("schemas/job-meta.schema.json").read_text())
    body = load_spec()["components"]["schemas"]["StartJobRequest"]
    assert body["additionalProperties"] is False
    assert set(body["properties"]) == set(JOB_KEYS) == set(meta["properties"]) - {"stopTime"}


def test_the_description_ships_with_the_package():
    from importlib.resources import files

    shipped = files("cc_backend.server").joinpath("openapi.json")
    assert json.loads(shipped.read_text(encoding="utf-8")) == load_spec()


# --------------------------------------------------------------------------------------------------
# (c) served: the file as is, and the browsable page with or without Swagger UI's assets


@SQLITE_ONLY
def test_served_description_and_swagger_page(app_start):
    from cc_backend.server.routes_openapi import find_assets

    srv = app_start()
    r = srv.get("/api/openapi.json")  # no token: the description is public
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.content == SPEC_FILE.read_bytes()
    page = srv.get("/swagger/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/api/openapi.json" in page.text
    r = srv.get("/swagger")
    assert r.status_code == 301 and r.headers["location"].endswith("/swagger/")
    # run-tests.sh installs Swagger UI with npm; the server looks where this process looks
    if find_assets() is not None:
        assert "SwaggerUIBundle" in page.text
        js = srv.get("/swagger/swagger-ui-bundle.js")
        assert js.status_code == 200 and "javascript" in js.headers["content-type"] and len(js.content) > 100_000
    else:
        assert "npm ci" in page.text
    # In process, the WSGI path arrives decoded ("/swagger/../../pyproject.toml"): refused, not served.
    r = srv.get("/swagger/..%2f..%2fpyproject.toml")
    assert r.status_code == 403 and "[project]" not in r.text


def test_swagger_page_without_and_with_assets(tmp_path, monkeypatch):
    from cc_backend.server.app import make_app

    class FakeRuntime:
        class config:  # noqa: N801 - attribute bag
            class main:  # noqa: N801
                disable_authentication = False
                api_allowed_ips = None
                api_subjects = None
                max_request_body_size = 8 << 20
                trusted_proxies: list[str] = []

    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("CC_SWAGGER_UI_DIR", str(empty))
    app = make_app(FakeRuntime())
    status, headers, body = wsgi_call(app, "/swagger/")
    page = body.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "npm ci" in page and 'href="/api/openapi.json"' in page and "CC_SWAGGER_UI_DIR" in page
    assert wsgi_call(app, "/swagger/swagger-ui-bundle.js")[0] == 404

    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "swagger-ui-bundle.js").write_text("window.SwaggerUIBundle = function () {};\n")
    (dist / "swagger-ui.css").write_text("body {}\n")
    monkeypatch.setenv("CC_SWAGGER_UI_DIR", str(dist))
    app = make_app(FakeRuntime())
    status, _, body = wsgi_call(app, "/swagger/")
    assert status == 200 and b"SwaggerUIBundle" in body and b'url: "/api/openapi.json"' in body
    status, headers, body = wsgi_call(app, "/swagger/swagger-ui.css")
    assert status == 200 and headers["Content-Type"].startswith("text/css") and body == b"body {}\n"
    status, _, body = wsgi_call(app, "/swagger/../routes_openapi.py")
    assert status == 403 and b"import" not in body  # outside the assets folder: refused
    status, headers, body = wsgi_call(app, "/api/openapi.json")
    assert status == 200 and body == SPEC_FILE.read_bytes()


# --------------------------------------------------------------------------------------------------
# (d) fuzzing a real server: no request may produce a 5xx
#
# One pytest item per operation (schemathesis' parametrize over the shipped file) against one server
# for the module: ``start`` is per test and would start 51 servers, and schemathesis' fixture-based
# loader (``from_fixture``) does not run on pytest 9.2 (it sets ``request.node._nodeid``, which pytest
# no longer has). The module fixture builds the same site as conftest's ``site`` and starts the same
# ``Server`` as ``start``.


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory):
    """A server on SQLite and the peer archive with an admin+api user: (base URL, API token, session cookie, CSRF token)."""
    from peerdata import copy_archive
    from support.server import Server
    from support.site import write_site

    site = tmp_path_factory.mktemp("fuzz-site")
    write_site(site, {"addr": "127.0.0.1:0", "db": str(site / "job.db")}, copy_archive(site, "job-archive"),
               session_key="fuzz")
    assert cli(site, "-init-db").returncode == 0
    assert cli(site, "-add-user", f"{FUZZ_ADMIN}:admin,api:{FUZZ_PASSWORD}").returncode == 0
    token = cli(site, "-jwt", FUZZ_ADMIN).stdout.strip()
    server = Server(site, env={"CC_BCRYPT_ROUNDS": "4"})
    try:
        server.wait_ready()
        login = httpx.post(server.url + "/login", data={"username": FUZZ_ADMIN, "password": FUZZ_PASSWORD})
        assert login.status_code == 302, login.text
        cookie = login.cookies["session"]
        yield server.url, token, cookie, csrf_token(server, {"Cookie": f"session={cookie}"})
    finally:
        server.stop()
    log = (site / "server.log").read_text(errors="replace")
    if "Traceback" in log:  # each 5xx is logged with its traceback: show them beside the failed cases
        print(log[-20000:])


START = {"jobId": 123, "user": "u", "project": "p", "cluster": "fritz", "numNodes": 1, "startTime": 1700000000,
         "resources": [{"hostname": "f0101"}]}
#: Inputs the fuzzer once turned into 500s (numbers beyond 64 bits reached SQLite, wrong JSON types reached
#: the SQL or float(), a multipart part name with control characters); each must be a 400 now.
FORMER_SERVER_ERRORS = [
    ("GET", "/api/jobs/?start-time=6-78424391923582049090603417", None),
    ("GET", "/api/jobs/?page=19021932472100&items-per-page=1328362672570837678995680526336", None),
    ("GET", f"/api/jobs/?page={2**62}&items-per-page=4", None),
    ("GET", "/userapi/jobs/9223372036854775808", None),
    ("GET", "/api/jobs/metrics/9223372036854775808", None),
    ("DELETE", "/api/jobs/delete_job/9223372036854775808", None),
    ("POST", "/api/jobs/tag_job/9223372036854775808", [{"type": "app", "name": "x"}]),
    ("POST", "/api/jobs/stop_job/", {"jobId": -37277219464898174976, "startTime": 10**19 + 1, "stopTime": 5}),
    ("DELETE", "/api/jobs/delete_job/", {"jobId": 0, "cluster": "", "startTime": {}}),
    ("PATCH", "/api/jobs/edit_meta/", {"jobId": 0, "startTime": {}, "payload": {"key": "k", "value": "v"}}),
    ("POST", "/api/jobs/start_job/", {**START, "energy": [None, None]}),
    ("POST", "/api/jobs/start_job/", {**START, "partition": [1]}),
    ("POST", "/api/jobs/start_job/", {**START, "jobId": 1e300}),
]


@pytest.mark.parametrize("method,path,body", FORMER_SERVER_ERRORS, ids=lambda v: v if isinstance(v, str) else "")
def test_former_server_errors_are_bad_requests(fuzz_target, method, path, body):
    url, token, _, _ = fuzz_target
    r = httpx.request(method, url + path, json=body, headers={"X-Auth-Token": token})
    assert r.status_code == 400, r.text
    answer = r.json()
    if path.startswith("/api/jobs/metrics/"):  # upstream's {"data", "error"} shape
        assert answer["data"] is None and "out of range" in answer["error"]["message"], answer
    else:
        assert answer["status"] == "Bad Request" and answer["error"], answer


def test_unparsable_form_bodies_are_bad_requests(fuzz_target):
    url, _, cookie, csrf = fuzz_target
    control_name = (b'--b\r\nContent-Disposition: form-data; name="a\x01b"\r\n\r\nx\r\n--b--\r\n')
    r = httpx.put(url + "/config/users/", content=control_name, cookies={"session": cookie},
                  headers={"Content-Type": "multipart/form-data; boundary=b", "X-CSRF-Token": csrf})
    assert r.status_code == 400 and r.json()["status"] == "Bad Request"
    r = httpx.post(url + "/login", content=b"--b\r\n5488990--b--\r\n",
                   headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert r.status_code == 400 and r.headers["content-type"].startswith("text/html")  # the login page again


schema = schemathesis.openapi.from_path(SPEC_FILE, config=schemathesis.Config.from_dict({
    **({} if FUZZ_SEED == "random" else {"seed": int(FUZZ_SEED)}),  # the same inputs on every run unless asked
    "request-timeout": 30,
    # Security parameters come from the fixture (valid credentials); generated junk would only test the 401 path.
    "generation": {"max-examples": MAX_EXAMPLES, "mode": "all", "database": "none",
                   "with-security-parameters": False},
    "phases": {"stateful": {"enabled": False}},
}))


@schema.parametrize()
def test_no_request_makes_a_server_error(case, fuzz_target):
    url, token, cookie, csrf = fuzz_target
    path = case.operation.path
    if path == "/frontend/logs/" and shutil.which("journalctl") is None:
        pytest.skip("journalctl is not installed: the log viewer answers 503 by design")
    headers, cookies = {}, {}
    if path.startswith(("/api/", "/userapi/")):
        headers["X-Auth-Token"] = token
    elif path.startswith(("/config/", "/frontend/")):
        cookies["session"] = cookie  # not for /logout: it would end the session the other cases use
        headers["X-CSRF-Token"] = csrf
    case.call_and_validate(base_url=url, headers=headers, cookies=cookies, checks=CHECKS)

