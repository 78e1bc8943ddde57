"""Web logins: password check (local or LDAP), login rate limit, signed session cookies, cross-login tokens."""

from __future__ import annotations

import base64
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import urlsplit

from cc_backend.errors import Forbidden, InvalidInput
from cc_backend.users import AuthSource, User, check_password, find_user

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from cc_backend.ldap import LdapDirectory

MAX_FAILED_LOGINS = 5
FAILED_LOGIN_WINDOW_S = 15 * 60
SESSION_SALT = "cc-backend-session"


class TooManyAttempts(Forbidden):
    """Too many failed logins for this address and user name."""

    status = 429


def authenticate(engine: "Engine", username: str, password: str, *, ldap: "LdapDirectory | None" = None) -> User:
    """The user whose password this is: local users by bcrypt, LDAP users by binding as them.

    Unknown users log in through LDAP only when ``sync-user-on-login`` is configured (they are created).
    Every failure gives the same message, so a caller cannot tell unknown users from wrong passwords.
    """
    user = find_user(engine, username)
    if user is not None and user.auth_source == AuthSource.LOCAL:
        if check_password(user, password):
            return user
        raise Forbidden("wrong user name or password", field="password")
    if ldap is not None and (user is not None and user.auth_source == AuthSource.LDAP or user is None):
        from cc_backend.ldap import login

        try:
            return login(engine, ldap, username, password)
        except Forbidden:
            pass
    raise Forbidden("wrong user name or password", field="password")


class LoginRateLimiter:
    """At most ``limit`` failed logins per (address, user name) within ``window`` seconds (upstream: 5 / 15 min)."""

    def __init__(self, limit: int = MAX_FAILED_LOGINS, window: float = FAILED_LOGIN_WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        now = self.clock()
        failures = self._failures.setdefault(key, deque())
        while failures and now - failures[0] > self.window:
            failures.popleft()
        return failures

    def check(self, address: str, username: str) -> None:
        """Raise TooManyAttempts while the (address, user) pair is blocked."""
        with self._lock:
            failures = self._recent((address, username))
            if len(failures) >= self.limit:
                retry = int(self.window - (self.clock() - failures[0])) + 1
                raise TooManyAttempts(f"too many failed logins; try again in {retry} s", field="username")

    def failed(self, address: str, username: str) -> None:
        with self._lock:
            self._recent((address, username)).append(self.clock())

    def succeeded(self, address: str, username: str) -> None:
        with self._lock:
            self._failures.pop((address, username), None)


@dataclass(frozen=True)
class Session:
    """What a session cookie carries (as upstream: user name, roles, projects, auth source)."""

    username: str
    roles: tuple[str, ...]
    projects: tuple[str, ...]
    auth_source: int

    @classmethod
    def of(cls, user: User) -> "Session":
        return cls(user.username, tuple(user.roles), tuple(user.projects), int(user.auth_source))


class SessionCodec:
    """Signs session cookies with SESSION_KEY (itsdangerous: HMAC-SHA1 with key derivation, timestamped)."""

    def __init__(self, session_key: str, max_age_seconds: float | None) -> None:
        if not session_key:
            from cc_backend.errors import ConfigError

            raise ConfigError("SESSION_KEY is not set (in .env or the environment); it is required for web logins")
        from itsdangerous import URLSafeTimedSerializer

        self._serializer = URLSafeTimedSerializer(session_key, salt=SESSION_SALT)
        self.max_age = max_age_seconds or None  # 0 or None: sessions do not expire, as upstream

    def encode(self, session: Session) -> str:
        return self._serializer.dumps([session.username, list(session.roles), list(session.projects),
                                       session.auth_source])

    def decode(self, cookie: str) -> Session | None:
        """The session, or None for a cookie that is forged, expired or malformed."""
        from itsdangerous import BadSignature

        try:
            username, roles, projects, source = self._serializer.loads(cookie, max_age=self.max_age)
            return Session(str(username), tuple(roles), tuple(projects), int(source))
        except (BadSignature, ValueError, TypeError):
            return None


def safe_redirect(target: str | None, default: str = "/") -> str:
    """Only same-site relative paths: ``//evil.org``, ``https://evil.org`` and ``/\\evil.org`` become ``default``."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    if any(ch in target for ch in "\r\n\t"):
        return default
    return target


def verify_cross_login_token(token: str, hs_key_b64: str | None) -> dict[str, Any]:
    """Claims of a ``/jwt-login`` token signed with CROSS_LOGIN_JWT_HS512_KEY (HS256 or HS512 only)."""
    import jwt

    if not hs_key_b64:
        raise Forbidden("login tokens are disabled (CROSS_LOGIN_JWT_HS512_KEY is not set)", field="login-token")
    try:
        key = base64.b64decode(hs_key_b64, validate=True)
    except ValueError:
        key = hs_key_b64.encode()
    try:
        claims = jwt.decode(token, key, algorithms=["HS256", "HS512"], options={"require": ["sub"]})
    except jwt.PyJWTError as exc:
        raise Forbidden(f"invalid login token: {exc}", field="login-token") from None
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise InvalidInput("login token has no subject", field="login-token")
    return claims
