"""The settings page (``/config``): everyone's plot and list settings and API token; user administration and the notice for admins."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import bottle

if TYPE_CHECKING:
    from cc_backend.server.web import PageContext, WebUI

#: What each role means, beside the radio buttons of the "add user" form (upstream's wording).
ROLE_HINTS = {
    "api": "allowed to use the REST API only",
    "user": "sees their own jobs (as if created by an LDAP sync)",
    "manager": "sees the jobs of their projects; needs a project",
    "support": "sees all jobs and the analysis views",
    "admin": "everything, including this administration",
}


def mount(app: bottle.Bottle, ui: WebUI) -> None:
    app.route("/config", "GET", ui.page(config_page), auth=None)


def config_page(ctx: PageContext) -> str:
    """The cards the viewer's roles allow; the changes go through /frontend/ and /config/ from config.js."""
    from cc_backend.auth.security import ROLE_LEVELS, may_administer, may_sign_token_for, offers_own_token
    from cc_backend.ui_config import effective_ui_settings
    from cc_backend.ui_settings import (
        COLOR_SCHEMES,
        LINE_WIDTH_RANGE,
        PLOTS_PER_ROW_RANGE,
        color_scheme_name,
        css_colors,
    )

    assert ctx.viewer is not None
    username = ctx.viewer.username
    settings = effective_ui_settings(ctx.runtime.config.ui, ctx.runtime.engine, username)
    scheme = settings.get("plotConfiguration_colorScheme")
    current_scheme = color_scheme_name(scheme)
    context: dict[str, Any] = {
        "settings": settings,
        # The radio values are the JSON text upstream's frontend stores (JSON.stringify of the list).
        "color_schemes": [(name, colors, _json_text(colors)) for name, colors in COLOR_SCHEMES.items()],
        "current_scheme": current_scheme,
        # A scheme saved by upstream's frontend or by hand: shown, and kept unless another is chosen.
        "custom_scheme": css_colors(scheme) if current_scheme is None else [],
        "custom_scheme_json": _json_text(scheme) if current_scheme is None else "",
        "line_width_range": LINE_WIDTH_RANGE,
        "plots_per_row_range": PLOTS_PER_ROW_RANGE,
        # Upstream offers the own token only to api users: for anyone else it would not open /api/.
        "own_token": offers_own_token(ctx.viewer) and may_sign_token_for(ctx.viewer, username),
        "can_save": bool(username),
        "support_options": ctx.level >= ROLE_LEVELS["support"],
        "admin": may_administer(ctx.viewer),
    }
    if context["admin"]:
        context.update(_admin_context(ctx))
    return ctx.render("config.html", **context)


def _json_text(value: Any) -> str:
    import orjson

    return orjson.dumps(value).decode()


def _admin_context(ctx: PageContext) -> dict[str, Any]:
    from cc_backend.auth.users import ASSIGNABLE_ROLES, AuthSource, list_users
    from cc_backend.notice import MAX_NOTICE_LENGTH, read_notice

    taggers = ctx.runtime.taggers
    return {
        "taggers": [{**t, "last": taggers.last_runs.get(t["name"])} for t in taggers.status()],
        "taggers_enabled": taggers.enabled,
        "users": [user.to_json() for user in list_users(ctx.runtime.engine)],
        "roles": [(role, ROLE_HINTS.get(role, "")) for role in ASSIGNABLE_ROLES],
        "auth_sources": {int(source): source.label for source in AuthSource},
        "notice": read_notice(),
        "max_notice_length": MAX_NOTICE_LENGTH,
    }
