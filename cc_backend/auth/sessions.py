"""Web logins: password check (local or LDAP), login rate limit, signed session cookies, cross-login tokens."""

from __future__ import annotations

import base64
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cc_backend.auth.users import (
    ASSIGNABLE_ROLES,
    AuthSource,
    User,
    add_user,
    check_password,
    find_user,
    get_user,
    update_user,
)
from cc_backend.errors import CCError, Conflict, Forbidden, InvalidInput

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from cc_backend.auth.ldap import LdapDirectory

log = logging.getLogger(__name__)

MAX_FAILED_LOGINS = 5
FAILED_LOGIN_WINDOW_S = 15 * 60
SESSION_SALT = "cc-backend-session"


class TooManyAttempts(Forbidden):
    """Too many failed logins for this address and user name."""

    status = 429

    def __init__(self, message: str, *, field: str | None = None, retry_after_s: int = 0) -> None:
        super().__init__(message, field=field)
        self.retry_after_s = retry_after_s


class DirectoryUnavailable(CCError):
    """The LDAP server does not answer; the password could not be checked."""

    status = 503


def authenticate(engine: Engine, username: str, password: str, *, ldap: LdapDirectory | None = None) -> User:
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
        from ldap3.core.exceptions import LDAPException

        from cc_backend.auth.ldap import login

        try:
            return login(engine, ldap, username, password)
        except Forbidden:
            pass
        except LDAPException as exc:
            log.warning("LDAP login of %r: the directory does not answer: %s", username, exc)
            raise DirectoryUnavailable("the LDAP server cannot be reached; try again later") from None
    raise Forbidden("wrong user name or password", field="password")


def account_key(engine: Engine, username: str) -> str:
    """The account a login name means, as the database resolves it: the key of the login rate limit.

    MariaDB compares user names without regard to case or trailing blanks, so ``PLAINUSER`` and
    ``plainuser `` log in as ``plainuser``; counting them apart would give every spelling five guesses.
    Names of no account are normalised the same way, so guesses at them are counted together too.
    """
    user = find_user(engine, username)
    return user.username if user is not None else username.strip().casefold()


def login(engine: Engine, limiter: LoginRateLimiter, address: str, username: str, password: str, *,
          ldap: LdapDirectory | None = None) -> User:
    """One login attempt from ``address``: the rate limit per (address, account), then the password check.

    Raises TooManyAttempts while the pair is blocked (even for the right password), Forbidden for a
    wrong password (counted), DirectoryUnavailable when LDAP does not answer (not counted).
    """
    account = account_key(engine, username)
    limiter.check(address, account)
    try:
        user = authenticate(engine, username, password, ldap=ldap)
    except Forbidden:
        limiter.failed(address, account)
        raise
    limiter.succeeded(address, account)
    return user


class LoginRateLimiter:
    """At most ``limit`` failed logins per (address, account) within ``window`` seconds (upstream: 5 / 15 min)."""

    #: Entries without a failure inside the window are dropped once the table has this many keys.
    SWEEP_MIN_KEYS = 4096

    def __init__(self, limit: int = MAX_FAILED_LOGINS, window: float = FAILED_LOGIN_WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()
        self._sweep_at = self.SWEEP_MIN_KEYS

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
                raise TooManyAttempts(f"too many failed logins; try again in {retry} s", field="username",
                                      retry_after_s=retry)

    def failed(self, address: str, username: str) -> None:
        with self._lock:
            self._recent((address, username)).append(self.clock())
            if len(self._failures) >= self._sweep_at:
                self._sweep()

    def _sweep(self) -> None:
        # Guesses at many user names would otherwise grow the table for ever (upstream sweeps hourly).
        now = self.clock()
        stale = [key for key, times in self._failures.items() if not times or now - times[-1] > self.window]
        for key in stale:
            del self._failures[key]
        self._sweep_at = max(self.SWEEP_MIN_KEYS, 2 * len(self._failures))

    def succeeded(self, address: str, username: str) -> None:
        with self._lock:
            self._failures.pop((address, username), None)


@dataclass(frozen=True)
class Session:
    """What a session cookie carries: user name, roles, projects, auth source (as upstream), and an id.

    The id is random per login. Without it two logins of one user within the same second (the
    signature's timestamp resolution) got byte-identical cookies, and logging out of one ended both.
    Cookies from before the id existed decode with ``sid=""``.
    """

    username: str
    roles: tuple[str, ...]
    projects: tuple[str, ...]
    auth_source: int
    sid: str = ""

    @classmethod
    def of(cls, user: User) -> Session:
        return cls(user.username, tuple(user.roles), tuple(user.projects), int(user.auth_source),
                   secrets.token_urlsafe(16))


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
                                       session.auth_source, session.sid])

    def decode(self, cookie: str) -> Session | None:
        """The session, or None for a cookie that is forged, expired or malformed."""
        from itsdangerous import BadSignature

        try:
            # itsdangerous annotates max_age as int but only compares it with the age in seconds, so a
            # lifetime with fractional seconds (session.json's Go durations) works as it is.
            username, roles, projects, source, *sid = self._serializer.loads(
                cookie, max_age=self.max_age)  # type: ignore[arg-type]
            if len(sid) > 1:
                return None
            return Session(str(username), tuple(roles), tuple(projects), int(source), str(sid[0]) if sid else "")
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


def _token_name(claims: dict[str, Any]) -> str | None:
    """The display name of a login token: a string, or upstream's ``{"values": [...]}`` (joined by blanks)."""
    raw = claims.get("name")
    if isinstance(raw, str):
        return raw.strip() or None
    if isinstance(raw, dict) and isinstance(raw.get("values"), list):
        return " ".join(str(v) for v in raw["values"]).strip() or None
    return None


def user_for_login_token(engine: Engine, claims: dict[str, Any], *, sync_user_on_login: bool = False,
                         update_user_on_login: bool = False) -> User:
    """The user a verified ``/jwt-login`` token logs in (``auth.jwts`` sync/update-user-on-login).

    Existing users keep the roles and projects of the database, whatever the token claims. Unknown
    users are created only with ``sync_user_on_login`` (auth source "token", the token's valid roles,
    or "user" if it names none); ``update_user_on_login`` copies the token's name, as upstream's
    UpdateUser does.
    """
    username = claims["sub"]
    user = find_user(engine, username)
    name = _token_name(claims)
    if user is None:
        if not sync_user_on_login:
            raise Forbidden(f"unknown user {username!r} (auth.jwts.sync-user-on-login is not set)", field="login-token")
        raw_roles = claims.get("roles")
        roles = [r for r in raw_roles if isinstance(r, str) and r.lower() in ASSIGNABLE_ROLES] \
            if isinstance(raw_roles, list) else []
        roles = list(dict.fromkeys(r.lower() for r in roles)) or ["user"]
        try:
            user = add_user(engine, username, roles=roles, name=name, auth_source=AuthSource.TOKEN)
            log.info("user %r created from a login token (roles %s)", username, ",".join(roles))
        except Conflict:  # created by a concurrent login of the same user
            user = get_user(engine, username)
        return user
    if update_user_on_login and name and name != user.name:
        user = update_user(engine, username, name=name)
    return user
