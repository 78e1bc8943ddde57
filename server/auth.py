"""JWT admission for the API route groups (upstream ``internal/auth/auth.go`` AuthAPI / AuthUserAPI).

* ``/api/*``: an Ed25519 JWT in ``X-Auth-Token`` or ``Authorization: Bearer``, verified with
  ``JWT_PUBLIC_KEY``; the caller's IP must pass ``main.api-allowed-ips``; the roles must be exactly
  ``["api"]``, or two or more including both ``admin`` and ``api``.
* ``/userapi/*``: the same token; roles ``["api"]``, or ``api`` plus any of user/manager/support/admin.
* Every failure is 401 ``{"status": "Unauthorized", "error": ...}``, as upstream's onfailure handler.
* Roles come from the token's ``roles`` claim (unknown names dropped) unless ``auth.jwts.validate-user``
  is set; then the user must exist in the database and its stored roles and projects are used.
* ``main.disable-authentication``: no checks at all, every request acts as :data:`DISABLED_AUTH_VIEWER`
  (an administrator with the ``api`` role), so handlers that check roles still work.

Handlers receive the resulting :class:`~cc_backend.security.Viewer` by naming a ``viewer`` parameter.
Routes choose their group by prefix; ``route.config["auth"]`` (``"api"``, ``"userapi"`` or ``None``)
overrides it, e.g. ``app.route("/healthz", callback=h, auth=None)``.
"""

from __future__ import annotations

import functools
import inspect
import ipaddress
import logging
import threading
import time
from collections import OrderedDict
from typing import Any, Callable

import bottle

from cc_backend.errors import CCError
from cc_backend.keys import InvalidToken, load_public_key, verify_jwt
from cc_backend.security import ROLE_LEVELS, Viewer

log = logging.getLogger("cc_backend.server.auth")

#: Who every request is when main.disable-authentication is set.
DISABLED_AUTH_VIEWER = Viewer(username="", roles=("admin", "api"))

_VALID_ROLES = frozenset(r for r in ROLE_LEVELS if r != "anonymous")


class Unauthorized(CCError):
    """Authentication or admission failed (upstream answers 401 for both)."""

    status = 401


def admits_api(roles: tuple[str, ...]) -> bool:
    """``/api/*``: roles exactly ["api"], or >= 2 roles including both admin and api."""
    if len(roles) == 1:
        return roles[0] == "api"
    return len(roles) >= 2 and "admin" in roles and "api" in roles


def admits_userapi(roles: tuple[str, ...]) -> bool:
    """``/userapi/*``: roles ["api"], or api plus any of user/manager/support/admin."""
    if len(roles) == 1:
        return roles[0] == "api"
    return len(roles) >= 2 and "api" in roles and bool({"user", "manager", "support", "admin"} & set(roles))


def client_ip(environ: dict[str, Any]) -> str:
    """X-Real-Ip, else the first X-Forwarded-For entry, else the peer address (without port)."""
    raw = environ.get("HTTP_X_REAL_IP") or environ.get("HTTP_X_FORWARDED_FOR", "").split(",")[0] \
        or environ.get("REMOTE_ADDR", "")
    raw = raw.strip()
    if raw.startswith("[") and "]" in raw:  # [v6]:port
        return raw[1:raw.index("]")]
    if raw.count(":") == 1:  # v4:port
        return raw.split(":")[0]
    return raw


def ip_allowed(allowed: list[str] | None, ip: str) -> bool:
    """main.api-allowed-ips: unset = anyone (documented config semantics), "*" first = anyone, else exact IPs."""
    if allowed is None:
        return True
    if allowed and allowed[0] == "*":
        return True
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip in allowed
    for entry in allowed:
        try:
            if ipaddress.ip_address(entry) == addr:
                return True
        except ValueError:
            continue
    return False


def token_from(environ: dict[str, Any]) -> str | None:
    token = environ.get("HTTP_X_AUTH_TOKEN")
    if token:
        return token.strip()
    header = environ.get("HTTP_AUTHORIZATION", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return None


VERIFIED_TOKEN_CACHE = 1024


class Authenticator:
    """Turns a request into a Viewer for one runtime; the decoded public key is cached."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self._key: Any = None
        self._lock = threading.Lock()
        # Batch-system adapters send the same token with every request; an Ed25519 check costs
        # ~0.6 ms, a dict lookup nothing. Expiry is still checked on every hit.
        self._verified: OrderedDict[str, dict[str, Any]] = OrderedDict()

    @property
    def disabled(self) -> bool:
        return bool(self.runtime.config.main.disable_authentication)

    def public_key(self) -> Any:
        if self._key is None:
            with self._lock:
                if self._key is None:
                    b64 = self.runtime.secrets.JWT_PUBLIC_KEY
                    if not b64:
                        raise Unauthorized("JWT authentication is not configured (JWT_PUBLIC_KEY is unset)")
                    self._key = load_public_key(b64)
        return self._key

    def viewer_from_token(self, environ: dict[str, Any]) -> Viewer:
        token = token_from(environ)
        if token is None:
            raise Unauthorized("unauthorized: no token given")
        claims = self._verified_claims(token)
        username = claims.get("sub")
        if not isinstance(username, str) or not username:
            raise Unauthorized("token has no subject (sub)")
        jwts = self.runtime.config.auth.jwts
        if jwts is not None and jwts.validate_user:
            from cc_backend.users import find_user

            user = find_user(self.runtime.engine, username)
            if user is None:
                raise Unauthorized(f"unknown user {username!r}")
            return Viewer(username=user.username, roles=tuple(user.roles), projects=tuple(user.projects))
        raw = claims.get("roles")
        roles = tuple(r for r in raw if isinstance(r, str) and r in _VALID_ROLES) if isinstance(raw, list) else ()
        return Viewer(username=username, roles=roles)

    def _verified_claims(self, token: str) -> dict[str, Any]:
        with self._lock:
            claims = self._verified.get(token)
            if claims is not None:
                self._verified.move_to_end(token)
        if claims is not None:
            exp = claims.get("exp")
            if not isinstance(exp, (int, float)) or exp > time.time():
                return claims
            with self._lock:
                self._verified.pop(token, None)
        try:
            claims = verify_jwt(token, self.public_key())
        except InvalidToken as exc:
            raise Unauthorized(exc.message) from None
        with self._lock:
            self._verified[token] = claims
            while len(self._verified) > VERIFIED_TOKEN_CACHE:
                self._verified.popitem(last=False)
        return claims

    def admit(self, group: str, environ: dict[str, Any]) -> Viewer:
        """The viewer of a request to route group ``group`` ("api" or "userapi"); raises Unauthorized."""
        if self.disabled:
            return DISABLED_AUTH_VIEWER
        viewer = self.viewer_from_token(environ)
        if group == "api":
            ip = client_ip(environ)
            if not ip_allowed(self.runtime.config.main.api_allowed_ips, ip):
                raise Unauthorized(f"unknown ip: {ip}")
            if not admits_api(viewer.roles):
                raise Unauthorized("unauthorized")
        elif not admits_userapi(viewer.roles):
            raise Unauthorized("unauthorized")
        return viewer


def route_group(route: bottle.Route) -> str | None:
    if "auth" in route.config:
        return route.config["auth"]
    if route.rule.startswith("/api/"):
        return "api"
    if route.rule.startswith("/userapi/"):
        return "userapi"
    return None


def takes_viewer(callback: Callable[..., Any]) -> bool:
    """Whether the handler names a ``viewer`` parameter.

    (bottle's ``Route.get_callback_args`` guesses the undecorated function from closure cells and
    can loop forever on closures; ``inspect.signature`` follows ``functools.wraps`` instead.)
    """
    try:
        return "viewer" in inspect.signature(callback).parameters
    except (TypeError, ValueError):
        return False


class AuthPlugin:
    """Admission per route group; passes the Viewer to handlers with a ``viewer`` parameter."""

    name = "cc_auth"
    api = 2

    def __init__(self, runtime: Any) -> None:
        self.auth = Authenticator(runtime)

    def apply(self, callback: Callable[..., Any], route: bottle.Route) -> Callable[..., Any]:
        group = route_group(route)
        wants_viewer = takes_viewer(route.callback)
        if group is None and not wants_viewer:
            return callback
        auth = self.auth

        @functools.wraps(callback)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if group is None:
                viewer = DISABLED_AUTH_VIEWER if auth.disabled else None
            else:
                viewer = auth.admit(group, bottle.request.environ)
            if wants_viewer:
                kwargs["viewer"] = viewer
            return callback(*args, **kwargs)

        return wrapper
