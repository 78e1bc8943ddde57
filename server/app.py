"""The bottle application factory: error shape, JSON output, and the HTTP middleware of upstream's server.go.

``make_app(runtime)`` returns a fresh :class:`CCApp` (a ``bottle.Bottle``); there is no module-level app.

Layers, outermost first:

* :class:`HttpMiddleware` (plain WSGI, wraps *every* response, also bottle's own 404/405/500):
  the client address (:func:`~cc_backend.server.auth.resolve_client_ip`), CSRF guard, CORS, security
  headers (+HSTS under TLS), gzip above 1 KiB, one access-log line at info: client, user (``-`` when
  not authenticated), method, path with credential-like query values redacted, status, bytes, duration.
* :class:`BodyLimit` (plain WSGI, every route): a request body above main.max-request-body-size is
  a 413 before any handler reads it (the metric store's /api/write takes up to 64 MiB).
* :class:`JsonPlugin` (bottle plugin on every route): dict/list results become orjson bodies,
  :class:`~cc_backend.errors.CCError` becomes ``{"status": <reason>, "error": <message>}`` with the
  exception's status, any other exception a logged 500 with a generic message.
* :class:`~cc_backend.server.auth.AuthPlugin`: JWT admission for ``/api/`` and ``/userapi/``,
  injects ``viewer`` into handlers that take it.
* ``app.default_error_handler``: bottle's HTTPError (no route, wrong method) in the same JSON shape
  under the API prefixes, upstream's 404 body for unknown endpoints there.
"""

from __future__ import annotations

import gzip
import io
import logging
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

import bottle
import orjson

from cc_backend.errors import CCError
from cc_backend.server.auth import CLIENT_IP_KEY, USER_KEY, Network, proxy_networks, resolve_client_ip

if TYPE_CHECKING:
    from cc_backend.runtime import Runtime
    from cc_backend.server.web import WebUI

log = logging.getLogger("cc_backend.server")
access_log = logging.getLogger("cc_backend.server.access")

#: Query parameters whose names contain one of these words are logged without their value.
SECRET_PARAMS = ("jwt", "token", "pass", "key", "secret", "auth", "session", "cookie", "credential", "signature")
#: Path prefixes whose errors are JSON (upstream's server.go NotFound handler).
API_PREFIXES = ("/api/", "/userapi/", "/frontend/", "/config/")
#: Responses at least this large are gzipped when the client accepts it.
GZIP_MIN_BYTES = 1024
_COMPRESSIBLE = ("application/json", "text/", "application/javascript", "image/svg+xml", "application/xml")

SECURITY_HEADERS = [
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Content-Security-Policy", "frame-ancestors 'none'; object-src 'none'; base-uri 'self'"),
]
HSTS = ("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
CORS_METHODS = "GET, POST, HEAD, OPTIONS"
CORS_HEADERS = "X-Requested-With, Content-Type, Authorization, Origin"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

NOT_FOUND_BODY = {"status": "Resource not found", "error": "the requested endpoint does not exist"}


def reason(status: int) -> str:
    """The HTTP reason phrase of ``status`` ("Unprocessable Entity"), as Go's http.StatusText."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown Status"


def error_body(status: int, message: str) -> bytes:
    """The one JSON error body of every API error."""
    return orjson.dumps({"status": reason(status), "error": message})


def is_api_path(path: str) -> bool:
    return path.startswith(API_PREFIXES)


# --------------------------------------------------------------------------------------------------
# bottle plugin: JSON results and the error shape
# --------------------------------------------------------------------------------------------------


class JsonPlugin:
    """Serialise dict/list results with orjson and turn exceptions into the JSON error shape."""

    name = "cc_json"
    api = 2

    def apply(self, callback: Callable[..., Any], route: bottle.Route) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            response = bottle.response
            try:
                result = callback(*args, **kwargs)
            except bottle.HTTPResponse:
                raise  # bottle.abort / redirect / HTTPError: handled by bottle and the error handler
            except CCError as exc:
                response.status = exc.status
                response.content_type = "application/json"
                return error_body(exc.status, exc.message)
            except Exception:
                log.exception("unhandled error in %s %s", bottle.request.method, bottle.request.path)
                response.status = 500
                response.content_type = "application/json"
                return error_body(500, "internal server error")
            if isinstance(result, (dict, list)):
                response.content_type = "application/json"
                return orjson.dumps(result, option=orjson.OPT_NON_STR_KEYS)
            return result

        return wrapper


def _error_handler(err: bottle.HTTPError) -> bytes | str:
    """bottle's own errors: no route (404), wrong method (405), uncaught exception (500)."""
    response = bottle.response
    if err.traceback:
        log.error("unhandled error in %s %s:\n%s", bottle.request.method, bottle.request.path, err.traceback)
    status = err.status_code
    if is_api_path(bottle.request.path):
        response.content_type = "application/json"
        if status == 404:
            return orjson.dumps(NOT_FOUND_BODY)
        message = err.body if isinstance(err.body, str) and err.body and status != 500 else reason(status).lower()
        return error_body(status, message)
    web = getattr(bottle.request.app, "web", None)
    if web is not None and bottle.request.method in ("GET", "HEAD"):
        message = "There is no page at this address." if status == 404 else reason(status)
        try:
            return web.error_page(status, message, web.session_viewer(bottle.request.environ))
        except Exception:
            log.exception("the error page of %s %s failed", bottle.request.method, bottle.request.path)
    response.content_type = "text/plain; charset=utf-8"
    return f"{status} {reason(status)}\n"


# --------------------------------------------------------------------------------------------------
# WSGI middleware
# --------------------------------------------------------------------------------------------------


class HttpMiddleware:
    """CSRF guard, CORS, security headers, gzip and the access log around any WSGI app."""

    def __init__(self, inner: Callable[..., Iterable[bytes]], trusted_proxies: tuple[Network, ...] = ()) -> None:
        self.inner = inner
        self.trusted_proxies = trusted_proxies

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.perf_counter()
        # Resolved once: admission (api-allowed-ips), the login rate limit and this log use it.
        environ[CLIENT_IP_KEY] = resolve_client_ip(environ, self.trusted_proxies)
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "")
        if method not in _SAFE_METHODS and environ.get("HTTP_SEC_FETCH_SITE", "").lower() == "cross-site":
            status, headers, body = "403 Forbidden", [("Content-Type", "application/json")], \
                error_body(403, "cross-site request refused")
        elif method == "OPTIONS" and environ.get("HTTP_ORIGIN") and environ.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD"):
            status, headers, body = self._preflight(environ)
        else:
            status, headers, body = self._call_inner(environ)
        headers = self._decorate(environ, status, headers)
        if environ.get("HTTP_ORIGIN"):
            headers.append(("Access-Control-Allow-Origin", "*"))
        body = self._maybe_gzip(environ, headers, body)
        _set(headers, "Content-Length", str(len(body)))
        start_response(status, headers)
        access_log.info('%s %s "%s %s%s" %s %d %.1fms', environ[CLIENT_IP_KEY], environ.get(USER_KEY) or "-",
                        method, path, "?" + loggable_query(environ["QUERY_STRING"]) if environ.get("QUERY_STRING") else "",
                        status.split(" ", 1)[0], len(body), (time.perf_counter() - started) * 1000)
        return [] if method == "HEAD" else [body]

    def _call_inner(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        captured: dict[str, Any] = {}
        chunks: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            captured["status"], captured["headers"] = status, list(headers)
            return chunks.append

        try:
            result = self.inner(environ, start_response)
            try:
                chunks.extend(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except Exception:  # bottle catches everything itself; this is the last line of defence
            log.exception("unhandled error in WSGI app")
            return "500 Internal Server Error", [("Content-Type", "application/json")], \
                error_body(500, "internal server error")
        return captured["status"], captured["headers"], b"".join(chunks)

    @staticmethod
    def _preflight(environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        requested = environ.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD", "").upper()
        if requested not in {"GET", "POST", "HEAD", "OPTIONS"}:
            return "405 Method Not Allowed", [], b""
        return "200 OK", [("Access-Control-Allow-Methods", CORS_METHODS),
                          ("Access-Control-Allow-Headers", CORS_HEADERS)], b""

    @staticmethod
    def _decorate(environ: dict[str, Any], status: str, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        names = {name.lower() for name, _ in headers}
        out = list(headers)
        out.extend(h for h in SECURITY_HEADERS if h[0].lower() not in names)
        if environ.get("wsgi.url_scheme") == "https" or environ.get("HTTP_X_FORWARDED_PROTO", "").lower() == "https":
            out.append(HSTS)
        return out

    @staticmethod
    def _maybe_gzip(environ: dict[str, Any], headers: list[tuple[str, str]], body: bytes) -> bytes:
        if len(body) <= GZIP_MIN_BYTES or "gzip" not in environ.get("HTTP_ACCEPT_ENCODING", "").lower():
            return body
        ctype = _get(headers, "Content-Type") or ""
        if _get(headers, "Content-Encoding") or not ctype.startswith(_COMPRESSIBLE):
            return body
        headers.append(("Content-Encoding", "gzip"))
        vary = _get(headers, "Vary")
        _set(headers, "Vary", f"{vary}, Accept-Encoding" if vary else "Accept-Encoding")
        return gzip.compress(body, compresslevel=5)


def _get(headers: list[tuple[str, str]], name: str) -> str | None:
    lname = name.lower()
    for key, value in headers:
        if key.lower() == lname:
            return value
    return None


def _set(headers: list[tuple[str, str]], name: str, value: str) -> None:
    lname = name.lower()
    headers[:] = [(k, v) for k, v in headers if k.lower() != lname]
    headers.append((name, value))


def loggable_query(query: str) -> str:
    """The query string with the values of parameters that may carry credentials replaced by REDACTED."""
    parts = []
    for part in query.split("&"):
        name, sep, _ = part.partition("=")
        if sep and any(word in unquote_plus(name).lower() for word in SECRET_PARAMS):
            part = f"{name}=REDACTED"
        parts.append(part)
    return "&".join(parts)


class BodyLimit:
    """Refuse request bodies above ``limit`` bytes with a 413 (JSON error shape), on every route.

    A Content-Length above the limit is refused before a byte of the body is read; cheroot then
    closes the connection instead of draining the body. A chunked body is decoded here, and refused
    as soon as its chunk sizes pass the limit: cheroot's own decoder would allocate whatever size a
    chunk header claims. It is handed on with a Content-Length, which bottle needs (it would decode
    the chunks a second time otherwise).
    """

    #: Longest chunk-size or trailer line read (hex size, extensions).
    MAX_LINE = 4096

    def __init__(self, inner: Callable[..., Iterable[bytes]], limit: int,
                 path_limits: dict[str, int] | None = None) -> None:
        self.inner = inner
        self.limit = limit
        #: Exact paths with their own (larger) limit, e.g. the metric store's /api/write.
        self.path_limits = path_limits or {}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        limit = self.path_limits.get(environ.get("PATH_INFO", ""), self.limit)
        length = environ.get("CONTENT_LENGTH")
        if length:
            if not length.isdigit():
                return self._refuse(start_response, 400, f"Content-Length {length[:40]!r} is not a number")
            if int(length) > limit:
                return self._too_large(start_response, limit)
        elif "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            try:
                body = self._read_chunked(environ["wsgi.input"], limit)
            except ValueError as exc:
                return self._refuse(start_response, 400, f"bad chunked request body: {exc}")
            if body is None:
                return self._too_large(start_response, limit)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            del environ["HTTP_TRANSFER_ENCODING"]
        return self.inner(environ, start_response)

    def _read_chunked(self, stream: Any, limit: int) -> bytes | None:
        """The decoded body, or None as soon as it would pass the limit (the rest is not read)."""
        raw = getattr(stream, "rfile", None)  # cheroot's ChunkedRFile decodes from the connection's rfile
        if raw is None:
            body = stream.read(limit + 1)
            return None if len(body) > limit else body
        parts: list[bytes] = []
        size = 0
        while True:
            line = raw.readline(self.MAX_LINE)
            try:
                chunk_size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise ValueError(f"chunk size {line[:20]!r}") from None
            if chunk_size <= 0:
                break
            size += chunk_size
            if size > limit:
                return None
            chunk = raw.read(chunk_size)
            if len(chunk) < chunk_size or raw.read(2) != b"\r\n":
                raise ValueError("chunk shorter than its size")
            parts.append(chunk)
        while raw.readline(self.MAX_LINE) not in (b"\r\n", b"\n", b""):  # trailer fields, ignored
            pass
        stream.closed = True  # cheroot must not read the terminated body again
        return b"".join(parts)

    def _too_large(self, start_response: Callable[..., Any], limit: int) -> list[bytes]:
        return self._refuse(start_response, 413, f"the request body is larger than the limit of {limit} "
                                                 "bytes (main.max-request-body-size)")

    @staticmethod
    def _refuse(start_response: Callable[..., Any], status: int, message: str) -> list[bytes]:
        start_response(f"{status} {reason(status)}", [("Content-Type", "application/json")])
        return [error_body(status, message)]


# --------------------------------------------------------------------------------------------------
# The application
# --------------------------------------------------------------------------------------------------


class CCApp(bottle.Bottle):
    """A bottle app whose WSGI entry point runs :class:`HttpMiddleware` around bottle."""

    web: WebUI  # set once by make_app (bottle refuses to redefine an attribute)

    def __init__(self, runtime: Runtime, *, dev: bool = False) -> None:
        super().__init__()
        self.uninstall("json")  # JsonPlugin serialises with orjson instead
        self.runtime = runtime
        self.dev = dev
        from cc_backend.server.routes_metricstore import WRITE_BODY_LIMIT, WRITE_PATHS

        limit = runtime.config.main.max_request_body_size
        write_limit = max(limit, WRITE_BODY_LIMIT)
        self._middleware = HttpMiddleware(BodyLimit(super().__call__, limit, dict.fromkeys(WRITE_PATHS, write_limit)),
                                          proxy_networks(runtime.config.main.trusted_proxies))

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        return self._middleware(environ, start_response)


def make_app(runtime: Runtime, *, dev: bool = False) -> CCApp:
    """Build the app for one :class:`~cc_backend.runtime.Runtime`: plugins first, then every route group."""
    from cc_backend.server import (
        routes_api,
        routes_config,
        routes_graphql,
        routes_jobs,
        routes_metricstore,
        routes_openapi,
        routes_session,
    )
    from cc_backend.server.auth import AuthPlugin
    from cc_backend.server.web import WebUI

    app = CCApp(runtime, dev=dev)
    app.default_error_handler = _error_handler  # type: ignore[method-assign]
    # bottle applies the first installed plugin outermost: errors and JSON wrap authentication.
    app.install(JsonPlugin())
    auth_plugin = AuthPlugin(runtime)
    app.install(auth_plugin)
    web = app.web = WebUI(runtime, auth_plugin.auth)
    routes_api.mount(app, runtime)
    routes_jobs.mount(app, runtime)
    routes_metricstore.mount(app, runtime)
    routes_session.mount(app, runtime)
    routes_config.mount(app, runtime)
    routes_openapi.mount(app, runtime)
    routes_graphql.mount(app, runtime)
    web.mount(app)
    if dev:
        routes_api.mount_dev(app)
    return app
