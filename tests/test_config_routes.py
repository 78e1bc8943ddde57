"""The session-authenticated routes over real HTTP: /config/* (admins) and /frontend/* (any logged-in user)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from support.db import SQLITE_ONLY
from support.server import InProcess
from support.web import add_users, json_error, login

ROLES = ["api", "user", "manager", "support", "admin"]

#: A stand-in for journalctl: prints its arguments as one journal record, plus records to parse.
FAKE_JOURNALCTL = """#!/bin/sh
printf '{"__REALTIME_TIMESTAMP":"1700000000000000","PRIORITY":"3","MESSAGE":"args: %s","_SYSTEMD_UNIT":"cc.service"}\\n' "$*"
printf 'this line is not JSON\\n'
printf '{"MESSAGE":[104,105],"PRIORITY":"x"}\\n'
"""


@pytest.fixture
def web(app_start, site, tmp_path_factory, monkeypatch):
    """The app in process with a PATH that has no journalctl; (app, admin headers, user headers)."""
    srv = app_start()
    monkeypatch.setenv("PATH", str(tmp_path_factory.mktemp("empty-path")))
    add_users(site, "boss:admin:boss-pw", "ann:user:ann-pw")
    return srv, login(srv, "boss", "boss-pw"), login(srv, "ann", "ann-pw")


def users_of(app: InProcess, admin: dict, **params) -> dict[str, dict]:
    r = app.get("/config/users/", headers=admin, params=params)
    assert r.status_code == 200
    return {u["username"]: u for u in r.json()}


def text(r: httpx.Response, status: int = 200) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("text/plain")
    return r.text


@SQLITE_ONLY
def test_config_access(web):
    app, admin, user = web
    routes = [("GET", "/config/roles/"), ("GET", "/config/users/"), ("POST", "/config/users/"),
              ("PUT", "/config/users/"), ("DELETE", "/config/users/"), ("POST", "/config/user/ann"),
              ("POST", "/config/notice/")]
    for method, path in routes:
        assert "log in" in json_error(app.request(method, path), 401, "Unauthorized"), path
        assert "only admins" in json_error(app.request(method, path, headers=user), 403, "Forbidden"), path
    for method, path in (("GET", "/frontend/jwt/"), ("POST", "/frontend/configuration/"), ("GET", "/frontend/logs/")):
        json_error(app.request(method, path), 401, "Unauthorized")
    r = app.get("/config/roles/", headers=admin)
    assert r.status_code == 200 and r.json() == ROLES
    # Unknown routes and methods answer in the API error shape.
    assert app.get("/config/nope/", headers=admin).json()["status"] == "Resource not found"
    json_error(app.get("/config/notice/", headers=admin), 405, "Method Not Allowed")


@SQLITE_ONLY
def test_config_users(web):
    app, admin, user = web
    create = {"username": "mia", "password": "mia-pw", "role": "manager", "project": "proj1",
              "name": "Mia Manager", "email": "mia@example.org"}
    # A user cannot create users; nothing happens.
    json_error(app.post("/config/users/", data=create, headers=user), 403, "Forbidden")
    assert "mia" not in users_of(app, admin)

    assert text(app.post("/config/users/", data=create, headers=admin)) == "User mia successfully created!\n"
    assert users_of(app, admin)["mia"] == {"username": "mia", "name": "Mia Manager", "email": "mia@example.org",
                                           "roles": ["manager"], "projects": ["proj1"], "authSource": 0}
    login(app, "mia", "mia-pw")  # the password works
    # PUT and a JSON body work too; an API user may have no password.
    r = app.put("/config/users/", json={"username": "svc", "role": "api"}, headers=admin)
    assert text(r) == "User svc successfully created!\n"
    assert users_of(app, admin)["svc"]["roles"] == ["api"]
    assert set(users_of(app, admin, **{"not-just-user": "true"})) == {"boss", "mia", "svc"}  # ann is ["user"]

    bad = {
        "duplicate": (dict(create), 422, "already exists"),
        "no username": ({"password": "p", "role": "user"}, 400, "username"),
        "long username": ({"username": "u" * 101, "password": "p", "role": "user"}, 400, "between 1 and 100"),
        "blank password": ({"username": "x1", "role": "user"}, 400, "blank password"),
        "no role": ({"username": "x2", "password": "p"}, 400, "role"),
        "bad role": ({"username": "x3", "password": "p", "role": "wizard"}, 400, "no valid option"),
        "manager without project": ({"username": "x4", "password": "p", "role": "manager"}, 400, "require a project"),
        "project for a user": ({"username": "x5", "password": "p", "role": "user", "project": "p1"}, 400, "only managers"),
        "non-string JSON": (None, 400, "must be a string"),
    }
    for name, (form, status, message) in bad.items():
        if form is None:
            r = app.post("/config/users/", json={"username": "x6", "password": 5, "role": "user"}, headers=admin)
        else:
            r = app.post("/config/users/", data=form, headers=admin)
        reason = "Bad Request" if status == 400 else "Unprocessable Entity"
        assert message in json_error(r, status, reason), name
    assert not {"x1", "x2", "x3", "x4", "x5", "x6"} & set(users_of(app, admin))

    # Roles and projects, one change per request (upstream's answers).
    def update(**form: str) -> httpx.Response:
        return app.post("/config/user/mia", data=form, headers=admin)

    assert update(**{"add-role": "support"}).json() == {"msg": "Add Role Success"}
    assert update(**{"add-project": "proj2"}).json() == {"msg": "Add Project Success"}
    assert users_of(app, admin)["mia"]["roles"] == ["manager", "support"]
    assert users_of(app, admin)["mia"]["projects"] == ["proj1", "proj2"]
    assert "still has assigned project" in json_error(update(**{"remove-role": "manager"}), 422, "Unprocessable Entity")
    assert update(**{"remove-project": "proj1"}).json() == {"msg": "Remove Project Success"}
    assert update(**{"remove-project": "proj2"}).json() == {"msg": "Remove Project Success"}
    assert update(**{"remove-role": "manager"}).json() == {"msg": "Remove Role Success"}
    mia = users_of(app, admin)["mia"]
    assert mia["roles"] == ["support"] and mia["projects"] == []
    assert "adding role failed" in json_error(update(**{"add-role": "wizard"}), 422, "Unprocessable Entity")
    assert "already has role" in json_error(update(**{"add-role": "support"}), 422, "Unprocessable Entity")
    assert "not a manager" in json_error(update(**{"add-project": "p"}), 422, "Unprocessable Entity")
    assert "no operation specified" in json_error(update(), 400, "Bad Request")
    r = app.post("/config/user/ghost", data={"add-role": "user"}, headers=admin)
    assert "no such user" in json_error(r, 422, "Unprocessable Entity")
    assert app.post("/config/user/mia", json={"add-role": "api"}, headers=admin).json() == {"msg": "Add Role Success"}

    # Delete: form body (as upstream's frontend sends it); the user is gone.
    r = app.request("DELETE", "/config/users/", data={"username": "mia"}, headers=admin)
    assert r.status_code == 200 and r.text == ""
    assert "mia" not in users_of(app, admin)
    r = app.post("/login", data={"username": "mia", "password": "mia-pw"})
    assert r.status_code == 401
    assert "no such user" in json_error(app.request("DELETE", "/config/users/", data={"username": "mia"},
                                                      headers=admin), 422, "Unprocessable Entity")
    assert "username" in json_error(app.request("DELETE", "/config/users/", headers=admin), 400, "Bad Request")


@SQLITE_ONLY
def test_config_notice(web, site):
    app, admin, _ = web
    notice = site / "var" / "notice.txt"

    def post(**form: str) -> httpx.Response:
        return app.post("/config/notice/", data=form, headers=admin)

    assert text(post(**{"new-content": "Maintenance on Friday, 8:00–12:00"})) == "Update Notice Content Success"
    assert notice.read_text(encoding="utf-8") == "Maintenance on Friday, 8:00–12:00"
    assert stat.S_IMODE(notice.stat().st_mode) == 0o644
    assert "10000" in json_error(post(**{"new-content": "x" * 10001}), 400, "Bad Request")
    assert "new-content" in json_error(post(), 400, "Bad Request")
    assert notice.read_text(encoding="utf-8") == "Maintenance on Friday, 8:00–12:00"  # unchanged by refusals
    assert text(post(**{"new-content": "y" * 10000})) == "Update Notice Content Success"
    assert text(post(**{"new-content": ""})) == "Empty Notice Content Success"
    assert notice.read_text() == ""
    assert sorted(p.name for p in notice.parent.iterdir() if p.name.startswith(".notice")) == []  # no temp files left


@SQLITE_ONLY
def test_frontend_jwt_and_configuration(web, site):
    from sqlalchemy import create_engine

    from cc_backend.auth.keys import load_public_key, verify_jwt
    from cc_backend.config import load_env
    from cc_backend.db.tables import configuration_table

    app, admin, user = web
    public = load_public_key(load_env(site / ".env", environ={}).JWT_PUBLIC_KEY)

    # /frontend/jwt/: one's own token; admins any user's; 404 for unknown users.
    r = app.get("/frontend/jwt/", params={"username": "ann"}, headers=user)
    claims = verify_jwt(text(r), public)
    assert claims["sub"] == "ann" and claims["roles"] == ["user"] and claims["exp"] - claims["iat"] == 2 * 3600
    r = app.get("/frontend/jwt/", params={"username": "boss"}, headers=user)
    assert "not for themselves" in json_error(r, 403, "Forbidden")
    assert verify_jwt(text(app.get("/frontend/jwt/", params={"username": "ann"}, headers=admin)), public)["sub"] == "ann"
    assert "no such user" in json_error(app.get("/frontend/jwt/", params={"username": "ghost"}, headers=admin),
                                        404, "Not Found")
    assert "username" in json_error(app.get("/frontend/jwt/", headers=user), 400, "Bad Request")

    # /frontend/configuration/: the logged-in user's own row, replaced on the second write.
    def configure(headers: dict, **form) -> httpx.Response:
        return app.post("/frontend/configuration/", data=form, headers=headers)

    assert text(configure(user, key="plotConfiguration_lineWidth", value="3")) == "success"
    assert text(configure(user, key="plotConfiguration_lineWidth", value="4")) == "success"
    r = app.post("/frontend/configuration/", json={"key": "jobList_usePaging", "value": "true"}, headers=user)
    assert text(r) == "success"
    assert text(configure(admin, key="plotConfiguration_lineWidth", value="1")) == "success"
    assert "value" in json_error(configure(user, key="k", value="{not json"), 400, "Bad Request")
    assert "key" in json_error(configure(user, value="1"), 400, "Bad Request")
    assert "value" in json_error(configure(user, key="k"), 400, "Bad Request")
    engine = create_engine(f"sqlite:///{site / 'job.db'}")
    with engine.connect() as conn:
        rows = sorted(tuple(r) for r in conn.execute(select(configuration_table)))
    engine.dispose()
    assert rows == [("ann", "jobList_usePaging", "true"), ("ann", "plotConfiguration_lineWidth", "4"),
                    ("boss", "plotConfiguration_lineWidth", "1")]


@SQLITE_ONLY
def test_frontend_logs_without_journalctl(web):
    app, admin, user = web
    assert "only admins" in json_error(app.get("/frontend/logs/", headers=user), 403, "Forbidden")
    error = json_error(app.get("/frontend/logs/", headers=admin), 503, "Service Unavailable")
    assert "journalctl is not installed" in error
    # Parameters are checked first, whether or not journalctl exists.
    assert "'lines'" in json_error(app.get("/frontend/logs/", params={"lines": "0"}, headers=admin),
                                   400, "Bad Request")


@SQLITE_ONLY
def test_frontend_logs(app_start, site, tmp_path_factory, monkeypatch):
    fake = tmp_path_factory.mktemp("fakebin")
    (fake / "journalctl").write_text(FAKE_JOURNALCTL)
    os.chmod(fake / "journalctl", 0o755)
    srv = app_start(systemd_unit="cc.service")
    monkeypatch.setenv("PATH", str(fake))
    add_users(site, "boss:admin:boss-pw")
    admin = login(srv, "boss", "boss-pw")

    def logs(**params: str) -> httpx.Response:
        return srv.get("/frontend/logs/", params=params, headers=admin)

    r = logs()
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == [
        {"timestamp": "1700000000000000", "priority": 3, "unit": "cc.service",
         "message": "args: --output=json --no-pager -n 200 --since=1 hour ago -u cc.service"},
        {"timestamp": "", "priority": 6, "message": "hi", "unit": ""},  # byte-array message, bad priority
    ]
    r = logs(since="2024-01-31 12:00:00", lines="5000", level="3", search="login failed")
    assert r.json()[0]["message"] == ("args: --output=json --no-pager -n 1000 --since=2024-01-31 12:00:00 "
                                      "-u cc.service --priority=3 --grep=login failed")
    for params, name in (({"since": "1 hour ago; rm -rf /"}, "since"), ({"since": "--help"}, None),
                         ({"lines": "-3"}, "lines"), ({"lines": "ten"}, "lines"), ({"level": "8"}, "level"),
                         ({"level": "err"}, "level"), ({"search": "a|b"}, "search"), ({"search": "$(id)"}, "search")):
        r = logs(**params)
        if name is None:  # "--help" passes upstream's whitelist; it cannot become an option (--since=--help)
            assert r.status_code == 200 and "--since=--help" in r.json()[0]["message"]
            continue
        assert f"'{name}'" in json_error(r, 400, "Bad Request"), params


@SQLITE_ONLY
def test_disabled_authentication(app_start, site):
    srv = app_start(disable_authentication=True)
    # No session needed: everyone acts as an administrator.
    r = srv.post("/config/users/", data={"username": "ann", "password": "ann-pw", "role": "user"})
    assert text(r) == "User ann successfully created!\n"
    r = srv.get("/config/users/")
    assert r.status_code == 200 and [u["username"] for u in r.json()] == ["ann"]
    assert srv.get("/config/roles/").json() == ROLES
    assert text(srv.get("/frontend/jwt/", params={"username": "ann"})).count(".") == 2
    r = srv.post("/frontend/configuration/", data={"key": "k", "value": "1"})
    assert "disable-authentication" in json_error(r, 403, "Forbidden")
    # Cross-site protection does not depend on authentication.
    json_error(srv.post("/config/notice/", data={"new-content": "x"},
                          headers={"Origin": "https://evil.example"}), 403, "Forbidden")
    assert not Path(site / "var" / "notice.txt").exists()


@SQLITE_ONLY
def test_session_state_changes_need_the_csrf_token(web, site):
    """A logged-in browser's cookie alone changes nothing: the page's CSRF token must come along."""
    app, admin, user = web
    bare = {"Cookie": admin["Cookie"]}
    for method, path, form in (("POST", "/config/notice/", {"new-content": "forged"}),
                               ("POST", "/config/users/", {"username": "eve", "password": "p", "role": "admin"}),
                               ("DELETE", "/config/users/", {"username": "ann"}),
                               ("POST", "/config/user/ann", {"add-role": "admin"})):
        error = json_error(app.request(method, path, data=form, headers=bare), 403, "Forbidden")
        assert error.startswith("csrf:"), (path, error)
        error = json_error(app.request(method, path, data=form, headers={**bare, "X-CSRF-Token": "0" * 32}),
                           403, "Forbidden")
        assert error.startswith("csrf:"), (path, error)
    r = app.post("/frontend/configuration/", data={"key": "plotConfiguration_lineWidth", "value": "2"},
                 headers={"Cookie": user["Cookie"]})
    assert json_error(r, 403, "Forbidden").startswith("csrf:")
    # Nothing happened.
    assert not (site / "var" / "notice.txt").exists()
    assert set(users_of(app, admin)) == {"boss", "ann"}
    assert users_of(app, admin)["ann"]["roles"] == ["user"]
    # Another session's token does not fit this one.
    other_session = login(app, "boss", "boss-pw")
    r = app.post("/config/notice/", data={"new-content": "x"},
                 headers={**bare, "X-CSRF-Token": other_session["X-CSRF-Token"]})
    assert json_error(r, 403, "Forbidden").startswith("csrf:")
    # The token as the form field csrf works as the header does; reading (GET) needs none.
    r = app.post("/config/notice/", data={"new-content": "hello", "csrf": admin["X-CSRF-Token"]}, headers=bare)
    assert text(r) == "Update Notice Content Success"
    assert app.get("/frontend/jwt/", params={"username": "ann"}, headers={"Cookie": user["Cookie"]}).status_code == 200
