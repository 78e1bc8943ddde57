"""Web logins (upstream ``server.go``): ``/login`` (form and POST), ``/logout`` and ``/jwt-login``.

A successful login sets the signed ``session`` cookie (:class:`~cc_backend.server.auth.SessionCookies`)
and redirects (302) to the form's relative ``redirect`` target or ``/``. Failures show the login page
again with the reason: 400 for a missing user name, 401 for wrong credentials or a rejected token,
429 after :data:`~cc_backend.auth.sessions.MAX_FAILED_LOGINS` failures of one (client address, user name)
within 15 minutes, 503 when the LDAP server does not answer.

The rules (password check, LDAP, rate limit, redirect safety, login tokens) live in
:mod:`cc_backend.auth.sessions`; this module turns requests into calls and results into pages.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import bottle

from cc_backend.errors import CCError, Forbidden, InvalidInput
from cc_backend.server.requests import bearer_token, request_fields

if TYPE_CHECKING:
    from cc_backend.runtime import Runtime

log = logging.getLogger("cc_backend.server.sessions")

def login_page(message: str = "", *, username: str = "", redirect: str = "/") -> str:
    """The login form (``login.html``), with ``message`` (why the last attempt failed) above it."""
    return bottle.request.app.web.render("login.html", None, message=message, username=username, redirect=redirect)


def mount(app: bottle.Bottle, runtime: Runtime) -> None:
    """/login, /logout and /jwt-login of ``runtime`` on ``app``; one login rate limiter per app."""
    from cc_backend.server.auth import AuthPlugin, SessionCookies

    cookies = next((p.auth.cookies for p in app.plugins if isinstance(p, AuthPlugin)), None) or SessionCookies(runtime)
    handlers = SessionHandlers(runtime, cookies)
    app.route("/login", "GET", handlers.show_login, auth=None)
    app.route("/login", "POST", handlers.login, auth=None, same_origin=True)
    app.route("/logout", "POST", handlers.logout, auth=None, same_origin=True)
    # Cross-login portals link here (GET); a POST is a state change and gets the same-origin check.
    app.route("/jwt-login", "GET", handlers.jwt_login, auth=None)
    app.route("/jwt-login", "POST", handlers.jwt_login, auth=None, same_origin=True)


class SessionHandlers:
    """The login handlers of one runtime, sharing one :class:`~cc_backend.auth.sessions.LoginRateLimiter`."""

    def __init__(self, runtime: Runtime, cookies: Any) -> None:
        from cc_backend.auth.sessions import LoginRateLimiter

        self.runtime = runtime
        self.cookies = cookies
        self.limiter = LoginRateLimiter()

    # ---------------------------------------------------------------------------------- helpers

    @staticmethod
    def _page(status: int, message: str = "", **kwargs: Any) -> str:
        from cc_backend.server.web.render import CONTENT_SECURITY_POLICY

        response = bottle.response
        response.status = status
        response.content_type = "text/html; charset=utf-8"
        response.set_header("Cache-Control", "no-store")
        response.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return login_page(message, **kwargs)

    def _ldap(self) -> Any:
        if self.runtime.config.auth.ldap is None:
            return None
        from cc_backend.auth.ldap import ldap_directory

        return ldap_directory(self.runtime)

    def _start_session(self, user: Any, target: str) -> str:
        from cc_backend.auth.sessions import Session

        response = bottle.response
        response.add_header("Set-Cookie", self.cookies.issue(Session.of(user), bottle.request.environ))
        response.status = 302
        response.set_header("Location", target)
        response.set_header("Cache-Control", "no-store")
        log.info("login: %r (roles: %s, projects: %s)", user.username, ",".join(user.roles), ",".join(user.projects))
        return ""

    # ---------------------------------------------------------------------------------- routes

    def show_login(self) -> str:
        from cc_backend.auth.sessions import safe_redirect

        return self._page(200, redirect=safe_redirect(bottle.request.query.decode().get("redirect")))

    def login(self) -> str:
        """POST /login: form fields username, password, redirect."""
        from cc_backend.auth.sessions import TooManyAttempts, login, safe_redirect
        from cc_backend.server.auth import client_ip

        try:
            fields = request_fields()
        except InvalidInput as exc:
            return self._page(400, exc.message)
        username, password = fields.get("username") or "", fields.get("password") or ""
        target = safe_redirect(fields.get("redirect"))
        if not username:
            return self._page(400, "username: enter your user name", redirect=target)
        # X-Real-Ip/X-Forwarded-For count only from main.trusted-proxies: from anyone else they would
        # let an attacker pick a fresh address for every guess.
        address = client_ip(bottle.request.environ)
        try:
            self.cookies.codec()  # a missing SESSION_KEY is the admin's problem, not a failed attempt
            user = login(self.runtime.engine, self.limiter, address, username, password, ldap=self._ldap())
        except TooManyAttempts as exc:
            log.warning("login of %r from %s refused: too many failed attempts", username, address)
            bottle.response.set_header("Retry-After", str(exc.retry_after_s))
            return self._page(429, f"Too many failed logins for this user name from your address: {exc.message}.",
                              username=username, redirect=target)
        except Forbidden:
            log.warning("login of %r from %s failed: wrong user name or password", username, address)
            return self._page(401, "Wrong user name or password.", username=username, redirect=target)
        except CCError as exc:  # LDAP unreachable (503), configuration missing (500)
            log.error("login of %r failed: %s", username, exc.message)
            return self._page(exc.status, f"Login failed: {exc.message}", username=username, redirect=target)
        return self._start_session(user, target)

    def logout(self) -> str:
        """POST /logout: end the session (see SessionCookies.revoke), expire the cookie, back to the login page."""
        environ = bottle.request.environ
        if self.runtime.secrets.SESSION_KEY:
            self.cookies.revoke(environ)
        response = bottle.response
        response.add_header("Set-Cookie", self.cookies.expire(environ))
        response.status = 302
        response.set_header("Location", "/login")
        response.set_header("Cache-Control", "no-store")
        return ""

    def jwt_login(self) -> str:
        """/jwt-login: an HS256/HS512 token (Authorization: Bearer, or ?login-token=) starts a session."""
        from cc_backend.auth.sessions import safe_redirect, user_for_login_token, verify_cross_login_token

        query = bottle.request.query.decode()
        target = safe_redirect(query.get("redirect"))
        token = bearer_token(bottle.request.environ) or query.get("login-token")
        if not token:
            return self._page(401, "login-token: no login token given (use ?login-token=... or "
                                   "Authorization: Bearer ...)", redirect=target)
        jwts = self.runtime.config.auth.jwts
        try:
            self.cookies.codec()
            claims = verify_cross_login_token(token, self.runtime.secrets.CROSS_LOGIN_JWT_HS512_KEY)
            user = user_for_login_token(
                self.runtime.engine, claims,
                sync_user_on_login=bool(jwts and jwts.sync_user_on_login),
                update_user_on_login=bool(jwts and jwts.update_user_on_login))
        except (Forbidden, InvalidInput) as exc:
            log.warning("login with token failed: %s", exc.message)
            return self._page(401, f"Login with token failed: {exc.message}", redirect=target)
        except CCError as exc:
            log.error("login with token failed: %s", exc.message)
            return self._page(exc.status, f"Login with token failed: {exc.message}", redirect=target)
        return self._start_session(user, target)
