"""The header's search bar (upstream ``HandleSearchBar``): a search text resolved to the page that answers it.

Syntax as upstream: ``jobId:123``, ``jobName:abc``, ``projectId:p``, ``arrayJobId:7``, ``username:u``,
``name:Full Name``, or free text (a number is a job id; otherwise, for managers and above, a user
name, a user's real name or a project; else a job name). Unlike upstream, a search whose job list
holds exactly one job opens that job's page.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING
from urllib.parse import quote

from sqlalchemy import select

from cc_backend.auth.security import ROLE_LEVELS, Viewer
from cc_backend.db.tables import user_table
from cc_backend.errors import InvalidInput
from cc_backend.jobs.filter import Page
from cc_backend.jobs.presets import filter_from_query, list_url
from cc_backend.jobs.query import count_jobs, list_jobs

if TYPE_CHECKING:
    from sqlalchemy import Engine

#: Job-name and array-job searches look at the last 30 days, as upstream (a LIKE over every job is slow).
RECENT_SECONDS = 30 * 86400
KINDS = ("jobId", "jobName", "projectId", "arrayJobId", "username", "name")
USERS_LIST = "/monitoring/users/"


def _level(viewer: Viewer | None) -> int:
    if viewer is None:
        return ROLE_LEVELS["admin"]
    return max((ROLE_LEVELS.get(role, 0) for role in viewer.roles), default=0)


def _recent(now: int) -> tuple[str, str]:
    return "startTime", f"{now - RECENT_SECONDS}-{now}"


def _jobs_or_job(engine: Engine, viewer: Viewer | None, pairs: list[tuple[str, str]]) -> str:
    """The job list of these parameters, or the job's page when exactly one visible job matches."""
    flt = filter_from_query(pairs)
    found = list_jobs(engine, [flt], page=Page(itemsPerPage=2, page=1), viewer=viewer, with_tags=False)
    if len(found) == 1:
        return f"/monitoring/job/{found[0]['id']}"
    return list_url(pairs)


def _names_like(engine: Engine, text: str) -> list[str]:
    pattern = user_table.c.name.contains(text, autoescape=True)
    with engine.connect() as conn:
        return [row[0] for row in conn.execute(
            select(user_table.c.username).where(pattern).order_by(user_table.c.username).limit(100))]


def _users_page(usernames: list[str]) -> str:
    return list_url([("user", name) for name in usernames] + [("startTime", "last30d")], USERS_LIST)


def resolve_search(engine: Engine, viewer: Viewer | None, text: str | None, *, now: int | None = None) -> str:
    """The URL that answers the search ``text``; InvalidInput (field ``searchId``) when it is empty or malformed."""
    text = (text or "").strip()
    if not text:
        raise InvalidInput("searchId: the search is empty; type a job id, a job name, a project or a user",
                           field="searchId")
    now = int(time.time()) if now is None else now
    manager = _level(viewer) >= ROLE_LEVELS["manager"]
    parts = text.split(":")
    if len(parts) > 2:
        raise InvalidInput(f"searchId: {text!r} has more than one ':'; use TYPE:TEXT with one of "
                           f"{', '.join(KINDS)}", field="searchId")
    if len(parts) == 2:
        kind, term = parts[0].strip(), parts[1].strip()
        if not term:
            raise InvalidInput(f"searchId: nothing to search for after {kind}:", field="searchId")
        if kind == "jobId":
            return _jobs_or_job(engine, viewer, [("jobId", term)])
        if kind == "jobName":
            return _jobs_or_job(engine, viewer, [_recent(now), ("jobName", term)])
        if kind == "projectId":
            return _jobs_or_job(engine, viewer, [("projectMatch", "eq"), ("project", term)])
        if kind == "arrayJobId":
            return _jobs_or_job(engine, viewer, [_recent(now), ("arrayJobId", term)])
        if kind == "username":
            if manager:
                return _users_page([term])
            return _jobs_or_job(engine, viewer, [("user", term)])
        if kind == "name":
            if not manager:
                raise InvalidInput("searchId: searching users by name is for managers and above; "
                                   "search your jobs by jobId:, jobName: or projectId:", field="searchId")
            return _users_page(_names_like(engine, term) or ["NoUserNameFound"])
        raise InvalidInput(f"searchId: unknown search type {kind!r} (one of {', '.join(KINDS)})", field="searchId")
    if text.isdigit():
        return _jobs_or_job(engine, viewer, [("jobId", text)])
    if manager:
        if count_jobs(engine, [filter_from_query([("user", text), ("userMatch", "eq")])], viewer=viewer):
            return "/monitoring/user/" + quote(text, safe="")
        names = _names_like(engine, text)
        if names:
            return "/monitoring/user/" + quote(names[0], safe="")
        if count_jobs(engine, [filter_from_query([("project", text)])], viewer=viewer):
            return _jobs_or_job(engine, viewer, [("projectMatch", "eq"), ("project", text)])
    return _jobs_or_job(engine, viewer, [_recent(now), ("jobName", text)])
