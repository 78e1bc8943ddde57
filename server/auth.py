"""Admission per route group (upstream ``internal/auth/auth.go``): JWTs for the APIs, session cookies for the web.

* ``/api/*``: an Ed25519 JWT in ``X-Auth-Token`` or ``Authorization: Bearer``, verified with
  ``JWT_PUBLIC_KEY``; the caller's IP must pass ``main.api-allowed-ips``; the roles must be exactly
  ``["api"]``, or two or more including both ``admin`` and ``api``.
* ``/userapi/*``: the same token; roles ``["api"]``, or ``api`` plus any of user/manager/support/admin.
* ``/config/*`` (group ``admin-session``): the signed ``session`` cookie of a logged-in administrator;
  a logged-in user without the admin role gets 403.
* ``/frontend/*`` (group ``session``): the session cookie of any logged-in user.
* Every failure is 401 ``{"status": "Unauthorized", "error": ...}``, as upstream's onfailure handler.
* Roles come from the token's ``roles`` claim (unknown names dropped) unless ``auth.jwts.validate-user``
  is set; then the user must exist in the database and its stored roles and projects are used.
* ``main.disable-authentication``: no checks at all, every request acts as :data:`DISABLED_AUTH_VIEWER`
  (an administrator with the ``api`` role), so handlers that check roles still work.

Session users are looked up in the database on every request: their stored roles and projects count,
and deleting a user ends their sessions at once.

Handlers receive the resulting :class:`~cc_backend.auth.security.Viewer` by naming a ``viewer`` parameter.
Routes choose their group by prefix; ``route.config["auth"]`` (``"api"``, ``"userapi"``, ``"session"``,
``"admin-session"`` or ``None``) overrides it, e.g. ``app.route("/healthz", callback=h, auth=None)``.

Cross-site request forgery: state-changing requests (not GET/HEAD/OPTIONS) of the session groups, and
of routes mounted with ``same_origin=True`` (login, logout), are refused with 403 when their ``Origin``
(or, without one, ``Referer``) names another host than the request's ``Host``. The HTTP middleware
already refuses ``Sec-Fetch-Site: cross-site``; the session cookie's ``SameSite=Lax`` is the last layer.
State changes of the session groups (``/config/*``, ``/frontend/*``) must also carry the session's CSRF
token (header ``X-CSRF-Token`` or form field ``csrf``, as the web UI's pages do), else 403 naming
``csrf``. Upstream's own Svelte frontend sends no such token; our web UI replaces it.
"""

from __future__ import annotations

import functools
import inspect
import ipaddress
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import bottle

from cc_backend.auth.keys import InvalidToken, load_public_key, verify_jwt
from cc_backend.auth.security import KNOWN_ROLES, Viewer, admits_api, admits_userapi, may_administer
from cc_backend.errors import Forbidden, Unauthorized
from cc_backend.server.requests import bearer_token

if TYPE_CHECKING:
    from cc_backend.auth.sessions import Session, SessionCodec
    from cc_backend.runtime import Runtime

log = logging.getLogger("cc_backend.server.auth")

#: Who every request is when main.disable-authentication is set.
DISABLED_AUTH_VIEWER = Viewer(username="", roles=("admin", "api"))

#: Name of the session cookie (upstream's gorilla/scs store calls it "session" too).
SESSION_COOKIE = "session"
#: Route groups admitted by the session cookie; the others by a JWT.
SESSION_GROUPS = frozenset({"session", "admin-session"})
#: GraphQL (/query): a JWT in the headers, else the session cookie (upstream's Auth middleware).
TOKEN_OR_SESSION = "token-or-session"
AUTH_GROUPS = frozenset({"api", "userapi", TOKEN_OR_SESSION}) | SESSION_GROUPS
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Where a session's state changes carry its CSRF token: a form field, or a header for fetch().
CSRF_FIELD = "csrf"
CSRF_HEADER = "HTTP_X_CSRF_TOKEN"




#: The WSGI environ key under which the HTTP middleware stores the request's client address.
CLIENT_IP_KEY = "cc_backend.client_ip"
#: The WSGI environ key under which admission leaves the authenticated user name (for the access log).
USER_KEY = "cc_backend.user"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def proxy_networks(entries: list[str]) -> tuple[Network, ...]:
    """main.trusted-proxies as networks (a single address is a /32 or /128; the config checked the syntax)."""
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _bare_ip(raw: str) -> str:
    """An address without port or brackets: "[::1]:80" -> "::1", "10.0.0.1:80" -> "10.0.0.1"."""
    raw = raw.strip()
    if raw.startswith("[") and "]" in raw:
        return raw[1:raw.index("]")]
    if raw.count(":") == 1:
        return raw.split(":")[0]
    return raw


def _trusted(ip: str, networks: tuple[Network, ...]) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if addr.version == 6 and addr.ipv4_mapped:  # a dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d
        addr = addr.ipv4_mapped
    return any(addr in net for net in networks)


def resolve_client_ip(environ: dict[str, Any], trusted: tuple[Network, ...]) -> str:
    """The client's address: the peer's, unless the peer is a trusted proxy (main.trusted-proxies).

    From a trusted proxy: the right-most X-Forwarded-For entry that is not itself a trusted proxy
    (entries further left were written by the client or by proxies we do not know, and can be
    forged); all entries trusted: the left-most. Without X-Forwarded-For, X-Real-Ip. X-Forwarded-For
    comes first, unlike upstream's order, because behind a chain of proxies X-Real-Ip names only the
    previous hop, and a proxy that appends to X-Forwarded-For may pass a client's X-Real-Ip through.
    """
    peer = _bare_ip(environ.get("REMOTE_ADDR", ""))
    if not trusted or not _trusted(peer, trusted):
        return peer
    hops = [hop for hop in (_bare_ip(h) for h in environ.get("HTTP_X_FORWARDED_FOR", "").split(",")) if hop]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            return hop
    if hops:
        return hops[0]
    return _bare_ip(environ.get("HTTP_X_REAL_IP", "")) or peer


def client_ip(environ: dict[str, Any]) -> str:
    """The request's client address, as the HTTP middleware resolved it (else the peer's: no proxy trusted)."""
    ip = environ.get(CLIENT_IP_KEY)
    return ip if ip is not None else _bare_ip(environ.get("REMOTE_ADDR", ""))


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


def request_is_tls(environ: dict[str, Any]) -> bool:
    """The client talked HTTPS to us, or to the reverse proxy in front of us (X-Forwarded-Proto)."""
    return environ.get("wsgi.url_scheme") == "https" or environ.get("HTTP_X_FORWARDED_PROTO", "").lower() == "https"


def cookie_value(environ: dict[str, Any], name: str) -> str | None:
    """The first cookie called ``name``; tolerant of malformed neighbours (SimpleCookie stops at them)."""
    for part in environ.get("HTTP_COOKIE", "").split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value.strip().strip('"') or None
    return None


def _host_port(netloc: str, default_port: int) -> tuple[str, int] | None:
    try:
        parts = urlsplit("//" + netloc.strip())
        return (parts.hostname or "").lower(), parts.port or default_port
    except ValueError:  # a port that is not a number
        return None


def check_same_origin(environ: dict[str, Any]) -> None:
    """Refuse (403) a request whose Origin, or without one Referer, names another host than Host.

    Browsers send Origin with every cross-origin POST, so a forged form submission from another site
    always names that site. Requests with neither header come from scripts (curl), which CSRF cannot
    drive. ``X-Forwarded-Host`` counts too: a reverse proxy may rewrite Host, and a browser cannot set
    that header on a cross-site request.
    """
    source = environ.get("HTTP_ORIGIN") or environ.get("HTTP_REFERER")
    if not source:
        return
    header = "Origin" if environ.get("HTTP_ORIGIN") else "Referer"
    if source.strip() == "null":
        raise Forbidden(f"cross-site request refused: {header} is null (sandboxed or privacy-restricted page)")
    parts = urlsplit(source.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Forbidden(f"cross-site request refused: {header} {source!r} is not an http(s) URL")
    default_port = 443 if parts.scheme == "https" else 80
    claimed = _host_port(parts.netloc.rpartition("@")[2], default_port)
    hosts = [environ.get("HTTP_HOST", ""), environ.get("HTTP_X_FORWARDED_HOST", "").split(",")[0]]
    if claimed is not None and any(h and _host_port(h, default_port) == claimed for h in hosts):
        return
    raise Forbidden(f"cross-site request refused: {header} {parts.scheme}://{parts.netloc} does not match "
                    f"Host {environ.get('HTTP_HOST', '')!r}")


class SessionCookies:
    """The signed ``session`` cookie of one runtime: read it, issue it, expire it.

    The cookie is HttpOnly, SameSite=Lax, Path=/, Secure when the request came over TLS, and lives
    ``main.session-max-age`` (0: until the browser closes; the server then never expires it, as upstream).

    The cookie carries the session itself, so logging out cannot delete it on the server. Logged-out
    cookies are therefore remembered (in memory, until they would have expired anyway) and refused:
    a copy taken before the logout stops working too. A restart forgets them; changing SESSION_KEY
    ends every session.
    """

    #: Upper bound of remembered logged-out cookies; the oldest are forgotten first.
    MAX_REVOKED = 100_000

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._codec: SessionCodec | None = None
        self._lock = threading.Lock()
        self._revoked: OrderedDict[str, float] = OrderedDict()  # cookie -> time.monotonic() of the logout

    @property
    def max_age_s(self) -> int | None:
        age = self.runtime.config.main.session_max_age
        return int(age.total_seconds()) if age else None

    def codec(self) -> SessionCodec:
        """The signer; ConfigError (500, naming SESSION_KEY) when no key is configured."""
        if self._codec is None:
            with self._lock:
                if self._codec is None:
                    from cc_backend.auth.sessions import SessionCodec

                    self._codec = SessionCodec(self.runtime.secrets.SESSION_KEY or "", self.max_age_s)
        return self._codec

    def read(self, environ: dict[str, Any]) -> Session | None:
        """The request's session; None without a cookie, Unauthorized for a forged, expired or broken one."""
        raw = cookie_value(environ, SESSION_COOKIE)
        if raw is None:
            return None
        session = self.codec().decode(raw)
        if session is None:
            raise Unauthorized("unauthorized: the session cookie is invalid or expired; log in again")
        with self._lock:
            if raw in self._revoked:
                raise Unauthorized("unauthorized: this session was logged out; log in again")
        return session

    def revoke(self, environ: dict[str, Any]) -> None:
        """Refuse the request's session cookie from now on (logout)."""
        raw = cookie_value(environ, SESSION_COOKIE)
        if raw is None or self.codec().decode(raw) is None:
            return  # nothing valid to end; junk must not fill the list
        now = time.monotonic()
        with self._lock:
            self._revoked[raw] = now
            self._revoked.move_to_end(raw)
            # A cookie older than the maximum age is refused by its signature anyway.
            horizon = now - self.max_age_s if self.max_age_s else None
            while self._revoked and (len(self._revoked) > self.MAX_REVOKED or
                                     (horizon is not None and next(iter(self._revoked.values())) < horizon)):
                self._revoked.popitem(last=False)

    def _attributes(self, environ: dict[str, Any]) -> str:
        return "; Path=/; HttpOnly; SameSite=Lax" + ("; Secure" if request_is_tls(environ) else "")

    def issue(self, session: Session, environ: dict[str, Any]) -> str:
        """The Set-Cookie value that starts ``session``."""
        max_age = f"; Max-Age={self.max_age_s}" if self.max_age_s else ""
        return f"{SESSION_COOKIE}={self.codec().encode(session)}{max_age}{self._attributes(environ)}"

    def expire(self, environ: dict[str, Any]) -> str:
        """The Set-Cookie value that makes the browser drop the session cookie."""
        return f"{SESSION_COOKIE}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT{self._attributes(environ)}"


def token_from(environ: dict[str, Any]) -> str | None:
    token = environ.get("HTTP_X_AUTH_TOKEN")
    if token:
        return token.strip()
    return bearer_token(environ)


VERIFIED_TOKEN_CACHE = 1024


class Authenticator:
    """Turns a request into a Viewer for one runtime; the decoded public key is cached."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.cookies = SessionCookies(runtime)
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
            from cc_backend.auth.users import find_user

            user = find_user(self.runtime.engine, username)
            if user is None:
                raise Unauthorized(f"unknown user {username!r}")
            return Viewer(username=user.username, roles=tuple(user.roles), projects=tuple(user.projects))
        raw = claims.get("roles")
        roles = tuple(r for r in raw if isinstance(r, str) and r in KNOWN_ROLES) if isinstance(raw, list) else ()
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

    def viewer_from_session(self, environ: dict[str, Any]) -> Viewer:
        """The logged-in user, with the roles and projects the database holds now."""
        from cc_backend.auth.users import find_user

        session = self.cookies.read(environ)
        if session is None:
            raise Unauthorized("unauthorized: not logged in (log in at /login first)")
        user = find_user(self.runtime.engine, session.username)
        if user is None:
            raise Unauthorized(f"unauthorized: the user {session.username!r} of this session no longer exists")
        return Viewer(username=user.username, roles=tuple(user.roles), projects=tuple(user.projects))

    def csrf_token(self, environ: dict[str, Any]) -> str:
        """The CSRF token of the request's session ("" without a session)."""
        from cc_backend.server.web.render import csrf_token

        key = self.runtime.secrets.SESSION_KEY
        session = self.cookies.read(environ) if key else None
        if session is None:
            return ""
        return csrf_token(key or "", session.sid, session.username)

    def check_csrf(self, environ: dict[str, Any], submitted: str | None) -> None:
        """Refuse (403, field ``csrf``) a state change that does not carry its session's CSRF token.

        The token comes from the form field ``csrf`` (``submitted``) or the ``X-CSRF-Token`` header.
        """
        import hmac

        if self.disabled:
            return
        expected = self.csrf_token(environ)
        given = submitted or environ.get(CSRF_HEADER) or ""
        if not expected or not hmac.compare_digest(expected, given):
            raise Forbidden("csrf: the form is stale or came from another site; reload the page and try again",
                            field=CSRF_FIELD)

    def admit(self, group: str, environ: dict[str, Any]) -> Viewer:
        """The viewer of a request to route group ``group`` (one of :data:`AUTH_GROUPS`).

        Raises Unauthorized (401), or Forbidden (403) for a logged-in non-admin in ``admin-session``.
        """
        if self.disabled:
            return DISABLED_AUTH_VIEWER
        if group in SESSION_GROUPS:
            viewer = self.viewer_from_session(environ)
            if group == "admin-session" and not may_administer(viewer):
                raise Forbidden(f"only admins are allowed to use the configuration API (user {viewer.username!r} "
                                f"has roles: {', '.join(viewer.roles) or 'none'})")
            return viewer
        if group == TOKEN_OR_SESSION:
            if token_from(environ) is not None:
                return self.viewer_from_token(environ)
            return self.viewer_from_session(environ)
        viewer = self.viewer_from_token(environ)
        if group == "api":
            ip = client_ip(environ)
            if not ip_allowed(self.runtime.config.main.api_allowed_ips, ip):
                raise Unauthorized(f"unknown ip: {ip}")
            if not admits_api(viewer):
                raise Unauthorized("unauthorized")
        elif not admits_userapi(viewer):
            raise Unauthorized("unauthorized")
        return viewer


def route_group(route: bottle.Route) -> str | None:
    if "auth" in route.config:
        return route.config["auth"]
    if route.rule.startswith("/api/"):
        return "api"
    if route.rule.startswith("/userapi/"):
        return "userapi"
    if route.rule.startswith("/config/"):
        return "admin-session"
    if route.rule.startswith("/frontend/"):
        return "session"
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


def _form_csrf() -> str | None:
    """The ``csrf`` form field, if the body is a form (a body bottle cannot parse carries none)."""
    if "X-CSRF-Token" in bottle.request.headers:
        return None
    try:
        return bottle.request.forms.get(CSRF_FIELD)
    except Exception:  # noqa: BLE001 - a broken body is the handler's 400 to report, not a token
        return None


class AuthPlugin:
    """Admission per route group and the same-origin check; passes the Viewer to handlers with a ``viewer`` parameter."""

    name = "cc_auth"
    api = 2

    def __init__(self, runtime: Runtime) -> None:
        self.auth = Authenticator(runtime)

    def apply(self, callback: Callable[..., Any], route: bottle.Route) -> Callable[..., Any]:
        group = route_group(route)
        if group is not None and group not in AUTH_GROUPS:
            raise ValueError(f"route {route.method} {route.rule}: unknown auth group {group!r} "
                             f"(known: {', '.join(sorted(AUTH_GROUPS))})")
        same_origin = bool(route.config.get("same_origin", group in SESSION_GROUPS))
        wants_viewer = takes_viewer(route.callback)
        if group is None and not wants_viewer and not same_origin:
            return callback
        auth = self.auth

        @functools.wraps(callback)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            environ = bottle.request.environ
            if same_origin and environ.get("REQUEST_METHOD", "GET") not in SAFE_METHODS:
                check_same_origin(environ)
            if group is None:
                viewer = DISABLED_AUTH_VIEWER if auth.disabled else None
            else:
                viewer = auth.admit(group, environ)
                if viewer.username:
                    environ[USER_KEY] = viewer.username
                if group in SESSION_GROUPS and environ.get("REQUEST_METHOD", "GET") not in SAFE_METHODS:
                    auth.check_csrf(environ, _form_csrf())
            if wants_viewer:
                kwargs["viewer"] = viewer
            return callback(*args, **kwargs)

        return wrapper
