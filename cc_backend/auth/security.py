"""Who may see and do what: the one set of role rules every front end uses (upstream ``cc-lib schema/user.go`` roles, ``internal/repository/job.go`` SecurityCheck, ``internal/auth/auth.go``)."""

from __future__ import annotations

from dataclasses import dataclass

ROLE_LEVELS = {"anonymous": 0, "api": 1, "user": 2, "manager": 3, "support": 4, "admin": 5}
#: Role names a user or a token can hold (a token's unknown role names are dropped).
KNOWN_ROLES = frozenset(role for role in ROLE_LEVELS if role != "anonymous")


@dataclass(frozen=True)
class Viewer:
    """The identity a request or command acts as."""

    username: str
    roles: tuple[str, ...] = ()
    projects: tuple[str, ...] = ()

    def has_role(self, role: str) -> bool:
        return role in self.roles

    @property
    def is_admin_like(self) -> bool:
        """admin, support and api-only users see every job; api plus user or manager sees as user or manager."""
        roles = set(self.roles)
        return bool({"admin", "support"} & roles) or roles == {"api"}


#: The CLI acts as a local administrator.
SYSTEM = Viewer(username="", roles=("admin", "api"))


def sees_all_jobs(viewer: Viewer | None) -> bool:
    return viewer is None or viewer.is_admin_like


def readable_tag_scopes(viewer: Viewer | None) -> tuple[str, ...] | None:
    """Scopes whose tags the viewer may see; None means every scope."""
    if viewer is None:
        return None
    scopes = ["global", viewer.username]
    if {"admin", "support"} & set(viewer.roles):
        scopes.append("admin")
    return tuple(scopes)


def can_write_tag_scope(viewer: Viewer | None, scope: str) -> bool:
    if viewer is None:
        return True
    roles = set(viewer.roles)
    if scope == "global":
        return bool({"admin", "support", "api"} & roles)
    if scope == "admin":
        return bool({"admin", "api"} & roles)
    return scope == viewer.username


def may_assign_tag_scope(viewer: Viewer | None, scope: str) -> bool:
    """Whether the viewer may create tags of ``scope`` and attach them to or detach them from jobs.

    Upstream's GraphQL rule: ``admin`` scope for admins, ``global`` for admins and support, a private
    scope for the user it names. Stricter than can_write_tag_scope (the REST rule), which
    also lets an api token write global and admin tags: the web UI is not a batch-system adapter.
    """
    if viewer is None:
        return True
    if scope == "admin":
        return viewer.has_role("admin")
    if scope == "global":
        return viewer.has_role("admin") or viewer.has_role("support")
    return bool(viewer.username) and scope == viewer.username


def may_delete_tag_scope(viewer: Viewer | None, scope: str) -> bool:
    """Whether the viewer may delete tags of ``scope``: admins shared ones, anyone their private ones (upstream)."""
    if viewer is None:
        return True
    if scope in ("global", "admin"):
        return viewer.has_role("admin")
    return bool(viewer.username) and scope == viewer.username


def sees_nodes(viewer: Viewer | None) -> bool:
    """Node states and node or cluster metrics are for admin and support (upstream's AccessCheck)."""
    return viewer is None or bool({"admin", "support"} & set(viewer.roles))


def sees_restricted_metrics(viewer: Viewer | None) -> bool:
    """admin, support and api-only users see metrics marked ``restrict``; user and manager do not (upstream ``internal/graph/schema.resolvers.go``, a metric config's ``restrict``)."""
    return viewer is None or viewer.is_admin_like


def may_look_up_user(viewer: Viewer | None, username: str) -> bool:
    """Anyone may look up themselves; admin, support and manager anyone (upstream FetchUserInCtx)."""
    return viewer is None or viewer.username == username or bool({"admin", "support", "manager"} & set(viewer.roles))


# --- admission and administration (upstream internal/auth/auth.go, internal/api/rest.go) -----------

def admits_api(viewer: Viewer) -> bool:
    """``/api/*``: roles exactly ["api"], or two or more including both admin and api."""
    roles = viewer.roles
    if len(roles) == 1:
        return roles[0] == "api"
    return len(roles) >= 2 and "admin" in roles and "api" in roles


def admits_userapi(viewer: Viewer) -> bool:
    """``/userapi/*``: roles ["api"], or api plus any of user/manager/support/admin."""
    roles = viewer.roles
    if len(roles) == 1:
        return roles[0] == "api"
    return len(roles) >= 2 and "api" in roles and bool({"user", "manager", "support", "admin"} & set(roles))


def may_administer(viewer: Viewer | None) -> bool:
    """Admins only: the configuration API (``/config/*``), the user list and user changes, the server's logs."""
    return viewer is None or viewer.has_role("admin")


def may_sign_token_for(viewer: Viewer | None, username: str) -> bool:
    """An API token for ``username``: admins for anyone, everyone else for themselves (upstream getJWT)."""
    return may_administer(viewer) or (viewer is not None and bool(viewer.username) and viewer.username == username)



def offers_own_token(viewer: Viewer | None) -> bool:
    """The settings page offers a user their own API token only with the api role (upstream's config page)."""
    return viewer is not None and bool(viewer.username) and viewer.has_role("api")


def role_level(viewer: Viewer | None) -> int:
    """Upstream's auth level: the highest role's rank (anonymous 0 ... admin 5); menus and pages are shown by it."""
    if viewer is None:
        return 0
    return max((ROLE_LEVELS.get(role, 0) for role in viewer.roles), default=0)
