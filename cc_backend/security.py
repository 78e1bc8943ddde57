"""Who may see which jobs and tags: the one permission check every front end uses (upstream §7.2)."""

from __future__ import annotations

from dataclasses import dataclass

ROLE_LEVELS = {"anonymous": 0, "api": 1, "user": 2, "manager": 3, "support": 4, "admin": 5}


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
