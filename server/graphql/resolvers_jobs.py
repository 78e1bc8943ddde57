"""Query.job, Query.jobs and the Job fields that need another lookup (userData, concurrentJobs)."""

from __future__ import annotations

from typing import Any

from tartiflette import Resolver

from cc_backend.jobs.filter import parse_filters, parse_order, parse_page
from cc_backend.jobs.query import concurrent_jobs_of, count_jobs, get_job, page_of_jobs
from cc_backend.server.graphql.common import SCHEMA_NAME, graphql_job, int_id, run_blocking, runtime_of, viewer_of

#: Upstream lists concurrent jobs only for jobs on shared nodes that ran longer than this (seconds).


@Resolver("Query.job", schema_name=SCHEMA_NAME)
async def resolve_job(parent: Any, args: dict, ctx: dict, info: Any) -> dict:
    job = await run_blocking(get_job, runtime_of(ctx).engine, int_id(args["id"]), viewer=viewer_of(ctx))
    return graphql_job(job)


@Resolver("Query.jobs", schema_name=SCHEMA_NAME)
async def resolve_jobs(parent: Any, args: dict, ctx: dict, info: Any) -> dict:
    filters = parse_filters(args.get("filter"))
    order = parse_order(args.get("order"))
    page = parse_page(args.get("page"))
    viewer = viewer_of(ctx)
    engine = runtime_of(ctx).engine
    jobs, has_next = await run_blocking(page_of_jobs, engine, filters, order=order, page=page, viewer=viewer)
    items_per_page = page.itemsPerPage if page else 50
    offset = (page.page - 1) * items_per_page if page and items_per_page != -1 else 0
    items = [graphql_job(job) for job in jobs]
    owners = {job["user"] for job in jobs}
    for item in items:
        item["_page_owners"] = owners  # lets userData load every owner of the page in one query
    return {
        "items": items,
        "offset": offset,
        "limit": items_per_page,
        "hasNextPage": has_next,
        "_count": (engine, filters, viewer),
    }


@Resolver("JobResultList.count", schema_name=SCHEMA_NAME)
async def resolve_jobs_count(parent: dict, args: dict, ctx: dict, info: Any) -> int:
    # A COUNT over every matching job costs more than the page itself: only when asked for.
    engine, filters, viewer = parent["_count"]
    return await run_blocking(count_jobs, engine, filters, viewer=viewer)


@Resolver("Job.userData", schema_name=SCHEMA_NAME)
async def resolve_user_data(parent: dict, args: dict, ctx: dict, info: Any) -> dict | None:
    from cc_backend.auth.users import find_users

    # One query per request, not per job: the owners of the whole page on the first call.
    known: dict = ctx.setdefault("users_by_name", {})
    username = parent["user"]
    if username not in known:
        wanted = (parent.get("_page_owners") or set()) | {username}
        found = await run_blocking(find_users, runtime_of(ctx).engine, wanted - known.keys())
        known.update({name: found.get(name) for name in wanted})
    user = known[username]
    if user is None:
        return None
    return {"username": user.username, "name": user.name or "", "email": user.email or ""}


@Resolver("Job.concurrentJobs", schema_name=SCHEMA_NAME)
async def resolve_concurrent_jobs(parent: dict, args: dict, ctx: dict, info: Any) -> dict | None:
    return await run_blocking(concurrent_jobs_of, runtime_of(ctx).engine, parent["_job"], viewer=viewer_of(ctx))
