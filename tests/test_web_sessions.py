"""Web logins over real HTTP: /login, /logout, /jwt-login, the session cookie, CSRF protection, rate limit, LDAP."""

from __future__ import annotations

import base64
import json
import re
import ssl
import time
from pathlib import Path

import httpx
import jwt as pyjwt
import ldap_server as ldap
from support.db import SQLITE_ONLY
from support.server import Requests, self_signed
from support.web import add_users, cookie_attributes, json_error, login, set_cookie

HS_SECRET = bytes(range(64))  # 64 bytes: long enough for HS512 without PyJWT's key-length warning
HS_KEY = base64.b64encode(HS_SECRET).decode()
FOREIGN = "https://evil.example"


# -------------------------------------------------------------------------------------------------- helpers


def edit_config(site: Path, section: str, **values: object) -> None:
    """Set ``config[section][key] = value`` (keys with - instead of _; nested dicts merged one level)."""
    config = json.loads((site / "config.json").read_text())
    target = config.setdefault(section, {})
    for key, value in values.items():
        key = key.replace("_", "-")
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            target[key].update(value)
        else:
            target[key] = value
    (site / "config.json").write_text(json.dumps(config, indent=2))


def add_env(site: Path, **values: str) -> None:
    with (site / ".env").open("a") as env:
        for key, value in values.items():
            env.write(f'{key}="{value}"\n')


def whoami(target: Requests, headers: dict[str, str], username: str, **kwargs) -> httpx.Response:
    """A /frontend/ request that needs a session: the caller's own API token."""
    return target.get("/frontend/jwt/", params={"username": username}, headers=headers, **kwargs)


def forged_cookie(username: str, *, key: str = "abc", age_s: int = 0) -> dict[str, str]:
    """A session cookie signed like the server's (site .env: SESSION_KEY="abc"), optionally back-dated."""
    from itsdangerous import TimestampSigner, URLSafeTimedSerializer

    from cc_backend.auth.sessions import SESSION_SALT

    class BackDated(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - age_s

    serializer = URLSafeTimedSerializer(key, salt=SESSION_SALT, signer=BackDated)
    return {"Cookie": "session=" + serializer.dumps([username, ["admin"], [], 0])}


def hs_token(claims: dict, algorithm: str = "HS256", secret: bytes = HS_SECRET) -> str:
    return pyjwt.encode(claims, secret, algorithm=algorithm)


def self_signed_tls(site: Path) -> ssl.SSLContext:
    """cert.pem/key.pem for 127.0.0.1 in ``site``; the client context that trusts them."""
    self_signed(site)
    return ssl.create_default_context(cafile=str(site / "cert.pem"))


# -------------------------------------------------------------------------------------------------- tests


def test_login_cookie_logout_and_csrf(app_start, site):
    """The whole login flow, on SQLite and MariaDB."""
    add_env(site, CROSS_LOGIN_JWT_HS512_KEY=HS_KEY)
    srv = app_start()
    add_users(site, "boss:admin:boss-pw", "ann:user:ann-pw")

    # The form: only same-origin assets, the redirect target carried along (only if relative).
    r = srv.get("/login", params={"redirect": "/monitoring/jobs/"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert '<form method="post" action="/login"' in r.text and 'name="password" type="password"' in r.text
    assert 'name="redirect" value="/monitoring/jobs/"' in r.text
    assert not re.findall(r'(?:src|href)="(?![/#])', r.text)  # nothing from another origin
    assert 'name="redirect" value="/"' in srv.get("/login", params={"redirect": "//evil.org"}).text

    # Success: 302 to the relative target, a session cookie with the right attributes.
    r = srv.post("/login", data={"username": "ann", "password": "ann-pw",
                                         "redirect": "/monitoring/jobs/?cluster=fritz"})
    assert r.status_code == 302 and r.headers["location"] == "/monitoring/jobs/?cluster=fritz"
    attrs = cookie_attributes(set_cookie(r))
    assert attrs["session"] and attrs["Path"] == "/" and attrs["SameSite"] == "Lax" and "HttpOnly" in attrs
    assert attrs["Max-Age"] == str(168 * 3600)  # main.session-max-age default
    assert "Secure" not in attrs
    ann = {"Cookie": "session=" + attrs["session"]}
    r = whoami(srv, ann, "ann")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    claims = pyjwt.decode(r.text, options={"verify_signature": False})
    assert claims["sub"] == "ann" and claims["roles"] == ["user"]

    # Behind a TLS-terminating proxy the cookie is Secure.
    r = srv.post("/login", data={"username": "ann", "password": "ann-pw"}, headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in cookie_attributes(set_cookie(r)) and r.headers["location"] == "/"

    # Only relative redirects.
    for evil in ("//evil.org", "https://evil.org", "/\\evil.org", "javascript:alert(1)", "evil.org/x"):
        r = srv.post("/login", data={"username": "ann", "password": "ann-pw", "redirect": evil})
        assert r.status_code == 302 and r.headers["location"] == "/", evil

    # Failures: the page again with the reason, no cookie.
    for username, password in (("ann", "wrong"), ("ann", ""), ("nobody", "ann-pw")):
        r = srv.post("/login", data={"username": username, "password": password, "redirect": "/x"})
        assert r.status_code == 401 and r.headers["content-type"].startswith("text/html"), username
        assert "Wrong user name or password." in r.text and 'name="redirect" value="/x"' in r.text
        assert "set-cookie" not in r.headers
    r = srv.post("/login", data={"password": "ann-pw"})
    assert r.status_code == 400 and "username" in r.text and "set-cookie" not in r.headers
    r = srv.post("/login", data={"username": "<script>x</script>", "password": "p"})
    assert r.status_code == 401 and "<script>x" not in r.text and "&lt;script&gt;" in r.text

    # /config/: admin 200, user 403, anonymous 401 (JSON as the API groups).
    boss = login(srv, "boss", "boss-pw")
    assert srv.get("/config/roles/", headers=boss).json() == ["api", "user", "manager", "support", "admin"]
    assert "only admins" in json_error(srv.get("/config/roles/", headers=ann), 403, "Forbidden")
    assert "log in" in json_error(srv.get("/config/roles/"), 401, "Unauthorized")
    assert "log in" in json_error(whoami(srv, {}, "ann"), 401, "Unauthorized")

    # Cookies the server did not issue, or no longer honours.
    assert whoami(srv, forged_cookie("ann"), "ann").status_code == 200  # same key and format: accepted
    assert "invalid or expired" in json_error(whoami(srv, forged_cookie("ann", key="other-key"), "ann"), 401, "Unauthorized")
    tampered = {"Cookie": ann["Cookie"][:-3] + ("AAA" if not ann["Cookie"].endswith("AAA") else "BBB")}
    json_error(whoami(srv, tampered, "ann"), 401, "Unauthorized")
    json_error(whoami(srv, forged_cookie("ann", age_s=169 * 3600), "ann"), 401, "Unauthorized")  # older than max age
    json_error(whoami(srv, {"Cookie": "session=garbage"}, "ann"), 401, "Unauthorized")
    assert "no longer exists" in json_error(whoami(srv, forged_cookie("ghost"), "ghost"), 401, "Unauthorized")
    # The database decides the roles: a cookie claiming admin for ann gets ann's rights.
    assert srv.get("/config/roles/", headers=forged_cookie("ann")).status_code == 403

    # CSRF: cross-site POSTs are refused before anything happens.
    r = srv.post("/login", data={"username": "ann", "password": "ann-pw"}, headers={"Origin": FOREIGN})
    assert "evil.example" in json_error(r, 403, "Forbidden") and "set-cookie" not in r.headers
    r = srv.post("/login", data={"username": "ann", "password": "ann-pw"}, headers={"Referer": FOREIGN + "/x"})
    json_error(r, 403, "Forbidden")
    r = srv.post("/login", data={"username": "ann", "password": "ann-pw"}, headers={"Sec-Fetch-Site": "cross-site"})
    json_error(r, 403, "Forbidden")
    json_error(srv.post("/login", data={"username": "a"}, headers={"Origin": "null"}), 403, "Forbidden")
    r = srv.post("/login", data={"username": "ann", "password": "ann-pw"}, headers={"Origin": srv.url})
    assert r.status_code == 302  # same origin
    r = srv.post("/login", data={"username": "ann", "password": "ann-pw"},
                   headers={"Origin": "https://cc.example.org", "X-Forwarded-Host": "cc.example.org"})
    assert r.status_code == 302  # behind a reverse proxy that rewrites Host
    r = srv.request("DELETE", "/config/users/", data={"username": "ann"}, headers={**boss, "Origin": FOREIGN})
    json_error(r, 403, "Forbidden")
    r = srv.post("/config/notice/", data={"new-content": "x"}, headers={**boss, "Sec-Fetch-Site": "cross-site"})
    json_error(r, 403, "Forbidden")
    assert not (site / "var" / "notice.txt").exists()
    assert [u["username"] for u in srv.get("/config/users/", headers=boss).json()] == ["ann", "boss"]
    json_error(srv.post("/logout", headers={**ann, "Origin": FOREIGN}), 403, "Forbidden")
    assert whoami(srv, ann, "ann").status_code == 200

    # Logout: cookie expired in the browser, and the old cookie is refused from now on.
    r = srv.post("/logout", headers={**ann, "Origin": srv.url})
    assert r.status_code == 302 and r.headers["location"] == "/login"
    attrs = cookie_attributes(set_cookie(r))
    assert attrs["session"] == "" and attrs["Max-Age"] == "0" and "HttpOnly" in attrs
    assert "logged out" in json_error(whoami(srv, ann, "ann"), 401, "Unauthorized")
    assert whoami(srv, boss, "boss").status_code == 200  # other sessions live on

    # /jwt-login needs a known user unless auth.jwts.sync-user-on-login is set.
    now = int(time.time())
    r = srv.get("/jwt-login", params={"login-token": hs_token({"sub": "stranger", "exp": now + 60})})
    assert r.status_code == 401 and "unknown user" in r.text and "set-cookie" not in r.headers
    r = srv.get("/jwt-login", params={"login-token": hs_token({"sub": "ann", "exp": now + 60})})
    assert r.status_code == 302 and whoami(srv, {"Cookie": "session=" + cookie_attributes(set_cookie(r))["session"]},
                                           "ann").status_code == 200


@SQLITE_ONLY
def test_rate_limit_per_address_and_user(start, site):
    srv = start()
    add_users(site, "ann:user:ann-pw", "bob:user:bob-pw")
    for attempt in range(5):
        r = srv.post("/login", data={"username": "ann", "password": f"guess-{attempt}"})
        assert r.status_code == 401, attempt
    r = srv.post("/login", data={"username": "ann", "password": "ann-pw"})  # even the right password
    assert r.status_code == 429 and "Too many failed logins" in r.text and "try again in" in r.text
    assert 0 < int(r.headers["retry-after"]) <= 15 * 60 and "set-cookie" not in r.headers
    # X-Forwarded-For is the client's own claim: it does not buy a fresh address.
    r = srv.post("/login", data={"username": "ann", "password": "ann-pw"}, headers={"X-Forwarded-For": "10.9.9.9"})
    assert r.status_code == 429
    # Another user from the same address, and the same user from another address, are unaffected.
    assert srv.post("/login", data={"username": "bob", "password": "nope"}).status_code == 401
    login(srv, "bob", "bob-pw")
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2")) as other:
        r = other.post(srv.url + "/login", data={"username": "ann", "password": "ann-pw"})
        assert r.status_code == 302
        headers = {"Cookie": "session=" + cookie_attributes(set_cookie(r))["session"]}
    assert whoami(srv, headers, "ann").status_code == 200
    assert "too many failed attempts" in srv.output()


def test_rate_limit_counts_the_account_whatever_its_spelling(app_start, site):
    """MariaDB resolves PLAINUSER and 'plainuser ' to plainuser: every spelling draws on one count."""
    srv = app_start()
    add_users(site, "plainuser:user:right-pw")
    for spelling in ("PLAINUSER", "plainuser ", "PlainUser", " plainUSER", "plainuser"):
        r = srv.post("/login", data={"username": spelling, "password": "guess"})
        assert r.status_code == 401, spelling
    for spelling in ("plainuser", "PLAINUSER", "plainuser  "):
        r = srv.post("/login", data={"username": spelling, "password": "right-pw"})
        assert r.status_code == 429 and "Too many failed logins" in r.text, spelling
        assert "set-cookie" not in r.headers
    # Names of no account are counted together too, and other accounts are untouched.
    for spelling in ("Ghost", "GHOST", "ghost ", "gHost", "ghost"):
        assert srv.post("/login", data={"username": spelling, "password": "x"}).status_code == 401
    assert srv.post("/login", data={"username": "GhOsT", "password": "x"}).status_code == 429
    add_users(site, "other:user:other-pw")
    assert whoami(srv, login(srv, "other", "other-pw"), "other").status_code == 200


@SQLITE_ONLY
def test_every_login_gets_its_own_session(app_start, site):
    """Logins within one second (the signature's timestamp) must not share a cookie, nor a logout."""
    srv = app_start()
    add_users(site, "ann:user:ann-pw")
    cookies = []
    for _ in range(3):
        cookies.append(login(srv, "ann", "ann-pw"))
    assert len({c["Cookie"] for c in cookies}) == 3
    r = srv.post("/logout", headers={**cookies[0], "Origin": srv.url})
    assert r.status_code == 302
    assert "logged out" in json_error(whoami(srv, cookies[0], "ann"), 401, "Unauthorized")
    assert whoami(srv, cookies[1], "ann").status_code == 200  # the other logins live on
    # Log in again right after logging out: a new, live session.
    again = login(srv, "ann", "ann-pw")
    assert again["Cookie"] not in {c["Cookie"] for c in cookies}
    r = whoami(srv, again, "ann")
    assert r.status_code == 200 and pyjwt.decode(r.text, options={"verify_signature": False})["sub"] == "ann"


@SQLITE_ONLY
def test_jwt_login(app_start, site):
    add_env(site, CROSS_LOGIN_JWT_HS512_KEY=HS_KEY)
    edit_config(site, "auth", jwts={"sync-user-on-login": True, "update-user-on-login": True})
    srv = app_start()
    add_users(site, "boss:admin:boss-pw", "ann:user:ann-pw")
    boss = login(srv, "boss", "boss-pw")
    now = int(time.time())

    def users() -> dict[str, dict]:
        return {u["username"]: u for u in srv.get("/config/users/", headers=boss).json()}

    # HS256 in the query string: an unknown user is created (sync-user-on-login) with the token's valid roles.
    token = hs_token({"sub": "tok", "roles": ["manager", "wizard"], "name": "Token User", "exp": now + 60})
    r = srv.get("/jwt-login", params={"login-token": token, "redirect": "/monitoring/user/tok"})
    assert r.status_code == 302 and r.headers["location"] == "/monitoring/user/tok"
    tok = {"Cookie": "session=" + cookie_attributes(set_cookie(r))["session"]}
    assert whoami(srv, tok, "tok").status_code == 200
    assert users()["tok"] == {"username": "tok", "name": "Token User", "email": "", "roles": ["manager"],
                              "projects": [], "authSource": 2}

    # HS512 in the Authorization header: an existing user, name updated, roles from the database.
    token = hs_token({"sub": "ann", "roles": ["admin"], "name": {"values": ["Ann", "Example"]}}, "HS512")
    r = srv.post("/jwt-login", headers={"Authorization": f"Bearer {token}"}, params={"redirect": "https://evil.org"})
    assert r.status_code == 302 and r.headers["location"] == "/"
    ann = {"Cookie": "session=" + cookie_attributes(set_cookie(r))["session"]}
    assert users()["ann"]["name"] == "Ann Example" and users()["ann"]["roles"] == ["user"]
    assert srv.get("/config/roles/", headers=ann).status_code == 403

    # Refused: other algorithms, other keys, expired, unsigned, no subject, no token.
    from cryptography.hazmat.primitives.asymmetric import rsa

    claims = {"sub": "ann", "exp": now + 60}
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused = {
        "RS256": pyjwt.encode(claims, rsa_key, algorithm="RS256"),
        "none": pyjwt.encode(claims, None, algorithm="none"),
        "wrong key": hs_token(claims, secret=b"x" * 64),
        "expired": hs_token({"sub": "ann", "exp": now - 10}),
        "no sub": hs_token({"exp": now + 60}),
        "garbage": "a.b.c",
    }
    for name, token in refused.items():
        r = srv.get("/jwt-login", params={"login-token": token})
        assert r.status_code == 401 and "Login with token failed" in r.text, name
        assert "set-cookie" not in r.headers, name
    r = srv.get("/jwt-login")
    assert r.status_code == 401 and "no login token" in r.text
    # A POST is a state change: the same-origin rule applies.
    r = srv.post("/jwt-login", headers={"Authorization": f"Bearer {hs_token(claims)}", "Origin": FOREIGN})
    json_error(r, 403, "Forbidden")


@SQLITE_ONLY
def test_secure_cookie_over_tls(start, site):
    ctx = self_signed_tls(site)
    srv = start(https=True, verify=ctx, https_cert_file=str(site / "cert.pem"), https_key_file=str(site / "key.pem"),
                session_max_age="2h")
    add_users(site, "ann:user:ann-pw")
    r = srv.post("/login", data={"username": "ann", "password": "ann-pw"}, verify=ctx)
    assert r.status_code == 302
    attrs = cookie_attributes(set_cookie(r))
    assert "Secure" in attrs and "HttpOnly" in attrs and attrs["SameSite"] == "Lax" and attrs["Max-Age"] == "7200"
    assert whoami(srv, {"Cookie": "session=" + attrs["session"]}, "ann", verify=ctx).status_code == 200
    r = srv.post("/logout", verify=ctx)
    assert "Secure" in cookie_attributes(set_cookie(r))


@SQLITE_ONLY
def test_ldap_login(app_start, site, ldap_server):
    edit_config(site, "auth", ldap={
        "url": ldap_server.url, "user-base": ldap.PEOPLE, "search-dn": ldap.ADMIN_DN,
        "user-bind": f"uid={{username}},{ldap.PEOPLE}", "user-filter": "(&(objectclass=posixAccount))",
        "sync-user-on-login": True})
    add_env(site, LDAP_ADMIN_PASSWORD=ldap.ADMIN_PASSWORD)
    srv = app_start()
    add_users(site, "boss:admin:boss-pw", "carol:user:local-carol")  # carol: a local user shadowing LDAP
    boss = login(srv, "boss", "boss-pw")

    r = srv.post("/login", data={"username": "alice", "password": "wrong"})
    assert r.status_code == 401 and "Wrong user name or password." in r.text
    alice = login(srv, "alice", "alice-pw")  # unknown so far: created on login
    r = whoami(srv, alice, "alice")
    assert r.status_code == 200 and pyjwt.decode(r.text, options={"verify_signature": False})["sub"] == "alice"
    listed = {u["username"]: u for u in srv.get("/config/users/", headers=boss).json()}
    assert listed["alice"]["authSource"] == 1 and listed["alice"]["name"] == "Alice Admin"
    assert listed["alice"]["roles"] == ["user"]
    login(srv, "alice", "alice-pw")  # and again, now as a known LDAP user
    # A local user is checked against its own password, never against the directory.
    assert srv.post("/login", data={"username": "carol", "password": "carol-pw"}).status_code == 401
    login(srv, "carol", "local-carol")


@SQLITE_ONLY
def test_ldap_server_down_is_503(app_start, site):
    from support.server import free_port

    edit_config(site, "auth", ldap={
        "url": f"ldap://127.0.0.1:{free_port()}", "user-base": ldap.PEOPLE, "search-dn": ldap.ADMIN_DN,
        "user-bind": f"uid={{username}},{ldap.PEOPLE}", "user-filter": "(objectclass=posixAccount)",
        "sync-user-on-login": True})
    srv = app_start()
    r = srv.post("/login", data={"username": "alice", "password": "alice-pw"}, timeout=30)
    assert r.status_code == 503 and "LDAP server cannot be reached" in r.text and "set-cookie" not in r.headers
