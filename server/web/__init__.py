"""The web UI: server-rendered pages over the core (:class:`WebUI` and the page modules beside it)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import bottle

from cc_backend.auth.security import ROLE_LEVELS, Viewer, role_level
from cc_backend.errors import CCError, Forbidden, Unauthorized
from cc_backend.server.web.assets import IMMUTABLE, INSTALL_HINT, Assets
from cc_backend.server.web.render import CONTENT_SECURITY_POLICY, Renderer, menu

if TYPE_CHECKING:
    from cc_backend.runtime import Runtime
    from cc_backend.server.auth import Authenticator

log = logging.getLogger("cc_backend.server.web")

#: Where a site keeps its notice and its own imprint/privacy templates (relative to the working directory, as upstream).
VAR_DIR = Path("var")
CSRF_FIELD = "csrf"
CSRF_HEADER = "HTTP_X_CSRF_TOKEN"


class PageContext:
    """What a page handler gets: the viewer and helpers to render and to read the request."""

    def __init__(self, ui: WebUI, viewer: Viewer | None) -> None:
        self.ui = ui
        self.viewer = viewer
        self.runtime = ui.runtime

    @property
    def level(self) -> int:
        return role_level(self.viewer)

    def render(self, template: str, **context: Any) -> str:
        return self.ui.render(template, self.viewer, **context)


class WebUI:
    """The pages of one runtime: admission by session cookie, CSRF tokens, error pages, static files."""

    def __init__(self, runtime: Runtime, authenticator: Authenticator, assets: Assets | None = None) -> None:
        self.runtime = runtime
        self.auth = authenticator
        self.assets = assets or Assets()
        self.renderer = Renderer(self.assets, var_dir=VAR_DIR)
        if self.assets.missing:
            log.warning("web UI assets not installed (%s): pages render without styles and plots; run %s",
                        ", ".join(self.assets.missing), INSTALL_HINT)

    # ------------------------------------------------------------------------------ viewers

    def session_viewer(self, environ: dict[str, Any]) -> Viewer | None:
        """The logged-in user of this request, or None (never raises for a missing or stale cookie)."""
        from cc_backend.server.auth import DISABLED_AUTH_VIEWER

        if self.auth.disabled:
            return DISABLED_AUTH_VIEWER
        try:
            return self.auth.viewer_from_session(environ)
        except (Unauthorized, CCError):
            return None

    def csrf(self, environ: dict[str, Any]) -> str:
        """This session's CSRF token ("" without a session)."""
        return self.auth.csrf_token(environ)

    def check_csrf(self, environ: dict[str, Any], submitted: str | None) -> None:
        """Refuse (403) a state change whose form field or X-CSRF-Token header does not carry this session's token."""
        self.auth.check_csrf(environ, submitted)

    # ------------------------------------------------------------------------------ rendering

    def clusters(self) -> list[str]:
        try:
            return [cluster.name for cluster in self.runtime.archive.registry()]
        except CCError:
            return []

    def render(self, template: str, viewer: Viewer | None, **context: Any) -> str:
        environ = bottle.request.environ
        base = {
            "viewer": viewer,
            "level": role_level(viewer),
            "levels": ROLE_LEVELS,
            "menu": menu(viewer, self.clusters()),
            "csrf_token": self.csrf(environ) if viewer is not None else "",
            "path": bottle.request.path,
            "install_hint": INSTALL_HINT,
        }
        base.update(context)
        return self.renderer.render(template, **base)

    def error_page(self, status: int, message: str, viewer: Viewer | None = None) -> str:
        from cc_backend.server.app import reason

        response = bottle.response
        response.status = status
        _page_headers(response)
        return self.render("error.html", viewer, status=status, reason=reason(status), message=message)

    # ------------------------------------------------------------------------------ routes

    def page(self, handler: Callable[..., str], *, public: bool = False, min_role: str | None = None,
             form: bool = False) -> Callable[..., str]:
        """Wrap ``handler(ctx, **url_args)`` into a route callback.

        Not logged in: a redirect to /login that comes back here (``public`` pages render without a
        viewer). Below ``min_role``: a 403 page. ``form``: a state change that must carry the CSRF token.
        Core errors become error pages with their status and message; any other exception a logged 500.
        """

        @functools.wraps(handler)
        def callback(*args: Any, **kwargs: Any) -> str:
            request, response = bottle.request, bottle.response
            environ = request.environ
            viewer = self.session_viewer(environ)
            if viewer is None and not public:
                target = request.path + ("?" + request.query_string if request.query_string else "")
                response.set_header("Cache-Control", "no-store")
                bottle.redirect("/login?redirect=" + quote(target, safe="/"), 302)
            if viewer is not None and viewer.username:
                from cc_backend.server.auth import USER_KEY

                environ[USER_KEY] = viewer.username
            try:
                if min_role is not None and role_level(viewer) < ROLE_LEVELS[min_role]:
                    raise Forbidden(f"this page is for the role {min_role} and above")
                if form:
                    self.check_csrf(environ, request.forms.get(CSRF_FIELD))
                body = handler(PageContext(self, viewer), *args, **kwargs)
            except bottle.HTTPResponse:
                raise
            except CCError as exc:
                return self.error_page(exc.status, exc.message, viewer)
            except Exception:
                log.exception("unhandled error in %s %s", request.method, request.path)
                return self.error_page(500, "Something went wrong on the server; the log has the details.", viewer)
            _page_headers(response)
            return body

        callback.web_page = True  # type: ignore[attr-defined]  # HTML for browsers: not part of the OpenAPI description
        return callback

    def mount(self, app: bottle.Bottle) -> None:
        from cc_backend.server.web import pages_basic, pages_config, pages_job, pages_jobs, pages_lists

        app.route("/static/<prefix>/<file:path>", "GET", self.static_file, auth=None, web_page=True)
        app.route("/favicon.ico", "GET", lambda: bottle.redirect(self.assets.url("app", "favicon.svg"), 301),
                  auth=None, web_page=True)
        pages_basic.mount(app, self)
        pages_config.mount(app, self)
        pages_lists.mount(app, self)
        pages_jobs.mount(app, self)
        pages_job.mount(app, self)

    def static_file(self, prefix: str, file: str) -> Any:
        root = self.assets.locate(prefix)
        if root is None:
            return bottle.HTTPError(404, "no such asset")
        # static_file refuses paths that leave the root (../) and answers conditional requests.
        result = bottle.static_file(file, root=str(root))
        if isinstance(result, bottle.HTTPResponse) and result.status_code in (200, 304):
            result.set_header("Cache-Control", IMMUTABLE)
            if file.endswith(".js"):
                result.set_header("Content-Type", "text/javascript; charset=utf-8")
        return result


def _page_headers(response: Any) -> None:
    response.content_type = "text/html; charset=utf-8"
    response.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    # Pages carry one user's data: never stored by shared caches, always revalidated.
    response.set_header("Cache-Control", "no-store")
