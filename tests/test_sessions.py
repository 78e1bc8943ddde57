"""Web login building blocks: authentication (local and LDAP), rate limit, cookies, redirects, login tokens."""

from __future__ import annotations

import base64
import time

import jwt
import ldap_server as ldap
import pytest

from cc_backend.auth.ldap import LdapDirectory
from cc_backend.auth.sessions import (
    LoginRateLimiter,
    Session,
    SessionCodec,
    TooManyAttempts,
    authenticate,
    safe_redirect,
    verify_cross_login_token,
)
from cc_backend.auth.users import AuthSource, User, add_user
from cc_backend.errors import ConfigError, Forbidden


def test_local_login(engine):
    add_user(engine, "ann", password="s3cret", roles=["user"])
    assert authenticate(engine, "ann", "s3cret").username == "ann"
    for user, password in (("ann", "wrong"), ("ann", ""), ("nobody", "s3cret")):
        with pytest.raises(Forbidden, match="wrong user name or password"):
            authenticate(engine, user, password)


def test_ldap_login_through_authenticate(engine, ldap_server):
    from cc_backend.config import LdapConfig

    directory = LdapDirectory(LdapConfig.model_validate({
        "url": ldap_server.url, "user-base": ldap.PEOPLE, "search-dn": ldap.ADMIN_DN,
        "user-bind": f"uid={{username}},{ldap.PEOPLE}", "user-filter": "(objectclass=posixAccount)",
        "sync-user-on-login": True}), ldap.ADMIN_PASSWORD)
    user = authenticate(engine, "carol", "carol-pw", ldap=directory)
    assert user.auth_source == AuthSource.LDAP
    with pytest.raises(Forbidden):
        authenticate(engine, "carol", "bad", ldap=directory)


def test_rate_limit_five_failures_per_15_minutes_per_address_and_user():
    now = [1000.0]
    limiter = LoginRateLimiter(clock=lambda: now[0])
    for _ in range(5):
        limiter.check("10.0.0.1", "ann")
        limiter.failed("10.0.0.1", "ann")
    with pytest.raises(TooManyAttempts) as err:
        limiter.check("10.0.0.1", "ann")
    assert err.value.status == 429
    limiter.check("10.0.0.2", "ann")  # another address
    limiter.check("10.0.0.1", "bob")  # another user
    now[0] += 15 * 60 + 1
    limiter.check("10.0.0.1", "ann")  # the window has passed
    limiter.failed("10.0.0.1", "ann")
    limiter.succeeded("10.0.0.1", "ann")
    limiter.check("10.0.0.1", "ann")


def test_session_cookie_round_trip_forgery_and_expiry():
    codec = SessionCodec("a-session-key", max_age_seconds=3600)
    session = Session("ann", ("user", "manager"), ("p1",), 0)
    cookie = codec.encode(session)
    assert codec.decode(cookie) == session
    assert codec.decode(cookie[:-2] + "xx") is None
    assert SessionCodec("another-key", 3600).decode(cookie) is None
    assert codec.decode("garbage") is None
    fresh = Session.of(User(username="ann", roles=["user"], projects=[]))
    assert fresh.sid and fresh != Session.of(User(username="ann", roles=["user"], projects=[]))
    assert codec.decode(codec.encode(fresh)) == fresh
    # Cookies issued before sessions had an id still decode; a longer list is not ours.
    legacy = codec._serializer.dumps(["ann", ["user"], [], 0])
    assert codec.decode(legacy) == Session("ann", ("user",), (), 0, "")
    assert codec.decode(codec._serializer.dumps(["ann", ["user"], [], 0, "a", "b"])) is None
    expired = SessionCodec("a-session-key", max_age_seconds=1)
    old = expired.encode(session)
    time.sleep(2.1)
    assert expired.decode(old) is None
    with pytest.raises(ConfigError, match="SESSION_KEY"):
        SessionCodec("", 10)


@pytest.mark.parametrize("target,expected", [
    ("/monitoring/jobs/?cluster=fritz", "/monitoring/jobs/?cluster=fritz"),
    (None, "/"), ("", "/"), ("https://evil.org/", "/"), ("//evil.org/x", "/"), ("/\\evil.org", "/"),
    ("javascript:alert(1)", "/"), ("relative/path", "/"), ("/ok\r\nSet-Cookie: x", "/"),
])
def test_only_relative_redirects(target, expected):
    assert safe_redirect(target) == expected


def test_cross_login_tokens_hs256_and_hs512_only():
    secret = b"0123456789abcdef0123456789abcdef"
    key_b64 = base64.b64encode(secret).decode()
    for alg in ("HS256", "HS512"):
        token = jwt.encode({"sub": "ann", "roles": ["user"]}, secret, algorithm=alg)
        assert verify_cross_login_token(token, key_b64)["sub"] == "ann"
    with pytest.raises(Forbidden):
        verify_cross_login_token(jwt.encode({"sub": "ann"}, b"other-key-other-key-other-key-00", algorithm="HS256"), key_b64)
    with pytest.raises(Forbidden):
        verify_cross_login_token(jwt.encode({"sub": "ann", "exp": 1}, secret, algorithm="HS256"), key_b64)
    unsigned = jwt.encode({"sub": "ann"}, None, algorithm="none")
    with pytest.raises(Forbidden):
        verify_cross_login_token(unsigned, key_b64)
    with pytest.raises(Forbidden, match="disabled"):
        verify_cross_login_token("x", None)
