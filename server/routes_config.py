"""Session-authenticated routes of the web frontend: ``/config/*`` (admins) and ``/frontend/*`` (any user).

Upstream's ``MountConfigAPIRoutes`` and ``MountFrontendAPIRoutes`` (``internal/api/rest.go``, ``user.go``,
``log.go``), with upstream's bodies (form fields; JSON objects of strings are accepted too), status
codes and response texts. Admission (session cookie, admin role for ``/config/``, the same-origin
check of state-changing requests) happens in :mod:`cc_backend.server.auth` before a handler runs; the
rules live in :mod:`cc_backend.auth.users`, :mod:`cc_backend.notice`, :mod:`cc_backend.ui_config` and
:mod:`cc_backend.journal`.

``/config/taggers/`` lists upstream's two taggers and ``/config/taggers/run/`` starts one over every job
(:mod:`cc_backend.taggers.service`). Upstream answers 409 for an unknown tagger name; here that is a 400
naming ``name`` (bad input), and 409 stays for a tagger that is already running.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import bottle

from cc_backend.auth.security import Viewer, may_administer, may_sign_token_for
from cc_backend.errors import Conflict, Forbidden, InvalidInput, NotFound
from cc_backend.server.requests import request_fields

if TYPE_CHECKING:
    from cc_backend.runtime import Runtime


def _text(body: str) -> str:
    bottle.response.content_type = "text/plain; charset=utf-8"
    return body


def mount(app: bottle.Bottle, runtime: Runtime) -> None:
    """Every /config and /frontend route of ``runtime`` on ``app``."""
    h = ConfigHandlers(runtime)
    app.route("/config/roles/", "GET", h.get_roles)
    app.route("/config/users/", ["POST", "PUT"], h.create_user)
    app.route("/config/users/", "GET", h.get_users)
    app.route("/config/users/", "DELETE", h.delete_user)
    app.route("/config/user/<username>", "POST", h.update_user)
    app.route("/config/notice/", "POST", h.edit_notice)
    app.route("/config/taggers/", "GET", h.get_taggers)
    app.route("/config/taggers/run/", "POST", h.run_tagger)
    app.route("/frontend/jwt/", "GET", h.get_jwt)
    app.route("/frontend/configuration/", "POST", h.update_configuration)
    app.route("/frontend/logs/", "GET", h.get_logs)


class ConfigHandlers:
    """The handlers of one runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    # ------------------------------------------------------------------------------ /config (admins)

    def get_roles(self, viewer: Viewer) -> list[str]:
        from cc_backend.auth.users import ASSIGNABLE_ROLES

        return list(ASSIGNABLE_ROLES)

    def get_users(self, viewer: Viewer) -> list[dict[str, Any]]:
        from cc_backend.auth.users import list_users

        not_just_user = bottle.request.query.get("not-just-user") == "true"
        return [user.to_json() for user in list_users(self.runtime.engine, not_just_user=not_just_user)]

    def create_user(self, viewer: Viewer) -> str:
        """Fields username, password, role, name, email, project (upstream's createUser)."""
        from cc_backend.auth.users import add_user

        fields = request_fields()
        role, project = fields.get("role") or "", fields.get("project") or ""
        user = add_user(self.runtime.engine, fields.get("username") or "", password=fields.get("password") or None,
                        roles=[role] if role else [], projects=[project] if project else [],
                        name=fields.get("name") or None, email=fields.get("email") or None,
                        allow_blank_password=False, require_manager_project=True)
        return _text(f"User {user.username} successfully created!\n")

    def delete_user(self, viewer: Viewer) -> str:
        from cc_backend.auth.users import delete_user

        username = request_fields().get("username")
        if not username:
            raise InvalidInput("username is required: the user to delete", field="username")
        if not delete_user(self.runtime.engine, username):
            raise Conflict(f"deleting user failed: no such user: {username!r}", field="username")
        return _text("")

    def update_user(self, username: str, viewer: Viewer) -> dict[str, str]:
        """The first non-empty of add-role, remove-role, add-project, remove-project (upstream's updateUser)."""
        from cc_backend.auth.users import change_access

        try:
            label = change_access(self.runtime.engine, username, request_fields())
        except NotFound as exc:  # upstream's /config answers 422 for an unknown user too
            raise Conflict(exc.message, field=exc.field) from None
        return {"msg": f"{label} Success"}

    def edit_notice(self, viewer: Viewer) -> str:
        """Field new-content (at most 10000 characters; empty clears the notice)."""
        from cc_backend.notice import write_notice

        content = request_fields().get("new-content")
        if content is None:
            raise InvalidInput("new-content is required (send it empty to clear the notice)", field="new-content")
        if write_notice(content):
            return _text("Update Notice Content Success")
        return _text("Empty Notice Content Success")

    def get_taggers(self, viewer: Viewer) -> list[dict[str, Any]]:
        return self.runtime.taggers.status()

    def run_tagger(self, viewer: Viewer) -> str:
        """Field name (AppTagger or JobClassTagger): run it over every job in the background."""
        name = request_fields().get("name")
        self.runtime.taggers.start_run(name)
        return _text(f"Tagger {name} started")

    # ------------------------------------------------------------------------------ /frontend (any user)

    def get_jwt(self, viewer: Viewer) -> str:
        """An API token for ?username= (non-admins only for themselves)."""
        from cc_backend.auth.keys import user_token

        username = request_fields().get("username")
        if not username:
            raise InvalidInput("username is required: the user to sign a token for", field="username")
        if not may_sign_token_for(viewer, username):
            raise Forbidden("only admins are allowed to sign JWTs not for themselves")
        token, _warnings = user_token(self.runtime, username)
        return _text(token)

    def update_configuration(self, viewer: Viewer) -> str:
        """Fields key and value (JSON text): one UI setting of the logged-in user."""
        from cc_backend.ui_config import set_user_ui_config

        if not viewer.username:
            raise Forbidden("UI settings belong to a logged-in user; main.disable-authentication is set, "
                            "so there is none")
        fields = request_fields()
        set_user_ui_config(self.runtime.engine, viewer.username, fields.get("key"), fields.get("value"))
        return _text("success")

    def get_logs(self, viewer: Viewer) -> list[dict[str, Any]]:
        """Query since, lines, level, search -> journal entries of main.systemd-unit (admins)."""
        from cc_backend.journal import JournalQuery, read_journal

        if not may_administer(viewer):
            raise Forbidden("only admins are allowed to view logs")
        q = bottle.request.query.decode()
        query = JournalQuery.parse(since=q.get("since"), lines=q.get("lines"), level=q.get("level"),
                                   search=q.get("search"))
        return read_journal(self.runtime.config.main.systemd_unit, query)
