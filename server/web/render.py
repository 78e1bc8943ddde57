"""Jinja2 rendering of the web UI's pages: the environment, the filters and what every page receives.

Autoescaping is on for every template: job names, job scripts, tags and user names are text. Data for
scripts travels in ``<script type="application/json">`` blocks (:func:`json_script`), never as code,
so the Content-Security-Policy can forbid inline scripts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, TemplateNotFound, select_autoescape
from markupsafe import Markup

from cc_backend.auth.security import ROLE_LEVELS, Viewer, role_level

if TYPE_CHECKING:
    from cc_backend.server.web.assets import Assets

#: Templates a site may override with its own file of the same name in ``var/`` (upstream's var/*.tmpl).
SITE_OVERRIDABLE = ("imprint.html", "privacy.html")

#: The Content-Security-Policy of every page: no inline script, no eval, nothing from other origins.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; object-src 'none'; "
    "base-uri 'self'"
)

_JSON_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026",
                 0x2028: "\\u2028", 0x2029: "\\u2029"}


def json_script(value: Any, element_id: str) -> Markup:
    """``value`` as a JSON data block that no string inside it can close (``</script>`` is escaped)."""
    text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY).decode()
    return Markup('<script type="application/json" id="{}">{}</script>').format(
        element_id, Markup(text.translate(_JSON_ESCAPES)))


def format_duration(seconds: int | float | None) -> str:
    """The core's ``1d 02:03:04`` form; "-" when unknown."""
    from cc_backend.jobs.model import duration_clock

    return "-" if seconds is None else duration_clock(seconds)


def time_element(epoch: int | float | None) -> Markup:
    """A ``<time>`` in UTC; ``app.js`` shows it in the browser's local time with UTC on hover."""
    if not epoch:
        return Markup("-")
    when = dt.datetime.fromtimestamp(int(epoch), dt.UTC)
    utc = when.strftime("%Y-%m-%d %H:%M UTC")
    return Markup('<time datetime="{}" data-epoch="{}" title="{}">{}</time>').format(
        when.isoformat(), int(epoch), utc, utc)


def format_number(value: float | int | None, digits: int = 2) -> str:
    """Numbers as the job list shows them: SI prefixes above a thousand, ``digits`` decimals."""
    if value is None:
        return "-"
    magnitude = abs(value)
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if magnitude >= factor:
            return f"{value / factor:.{digits}f} {prefix}"
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.{digits}f}"


class SiteLoader(FileSystemLoader):
    """A site's own ``var/imprint.html`` and ``var/privacy.html``; nothing else in ``var/`` is a template."""

    def get_source(self, environment: Environment, template: str) -> tuple[str, str | None, Callable[[], bool] | None]:
        if template not in SITE_OVERRIDABLE:
            raise TemplateNotFound(template)
        return super().get_source(environment, template)


def make_environment(var_dir: Path | None = None) -> Environment:
    loaders: list[Any] = []
    if var_dir is not None:
        loaders.append(SiteLoader(str(var_dir)))
    loaders.append(PackageLoader("cc_backend.server.web", "templates"))
    env = Environment(loader=ChoiceLoader(loaders), autoescape=select_autoescape(default=True, default_for_string=True),
                      trim_blocks=True, lstrip_blocks=True, auto_reload=False)
    env.filters["duration"] = format_duration
    env.filters["time"] = time_element
    env.filters["number"] = format_number
    env.globals["json_script"] = json_script
    return env


def csrf_token(session_key: str, session_id: str, username: str) -> str:
    """The token state-changing forms carry: tied to one login session, unguessable without SESSION_KEY."""
    message = f"csrf\0{username}\0{session_id}".encode()
    return hmac.new(session_key.encode(), message, hashlib.sha256).hexdigest()[:32]



def menu(viewer: Viewer | None, clusters: list[str]) -> list[dict[str, Any]]:
    """The header's entries for this viewer (upstream's Header.svelte, filtered by role level)."""
    level = role_level(viewer)
    items: list[dict[str, Any]] = []
    if viewer is None:
        return items
    if level == ROLE_LEVELS["user"] or (level >= ROLE_LEVELS["user"] and viewer.username):
        items.append({"title": "My Jobs", "href": f"/monitoring/user/{viewer.username}", "icon": "bar-chart-line"})
    items.append({"title": "Jobs" if level > ROLE_LEVELS["user"] else "Job Search", "href": "/monitoring/jobs/",
                  "icon": "card-list"})
    if level >= ROLE_LEVELS["manager"]:
        items.append({"title": "Users", "href": "/monitoring/users/", "icon": "people-fill"})
        items.append({"title": "Projects", "href": "/monitoring/projects/", "icon": "folder"})
    items.append({"title": "Tags", "href": "/monitoring/tags/", "icon": "tags"})
    if level >= ROLE_LEVELS["support"] and clusters:
        items.append({"title": "Analysis", "icon": "graph-up",
                      "children": [{"title": c, "href": f"/monitoring/analysis/{c}"} for c in clusters]})
    return items


class Renderer:
    """Renders templates with what every page needs (viewer, menu, assets, CSRF token)."""

    def __init__(self, assets: Assets, *, var_dir: Path | None = None) -> None:
        self.assets = assets
        self.env = make_environment(var_dir)
        self.env.globals["asset"] = assets.url
        self.env.globals["assets_missing"] = assets.missing

    def render(self, template: str, **context: Any) -> str:
        return self.env.get_template(template).render(**context)
