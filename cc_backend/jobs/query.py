"""The one job query: filters, permission scope, sorting and paging turned into SQL."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from sqlalchemy import JSON, Float, String, Text, and_, cast, func, or_, select, type_coerce
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql import ColumnElement

from cc_backend.auth.security import Viewer, readable_tag_scopes, sees_all_jobs
from cc_backend.db.engine import connection_for, execute_hot, rows_as_dicts
from cc_backend.db.tables import job_table, jobtag_table
from cc_backend.errors import InvalidInput, NotFound
from cc_backend.jobs.filter import JobFilter, OrderBy, Page, StringInput
from cc_backend.jobs.model import COLUMN_NAMES, KEY_TO_COLUMN, row_to_job

J = job_table.c
_FIND_SQL = f"SELECT {', '.join(c.name for c in job_table.columns)} FROM job"
# Upstream's Go driver stores JSON columns as BLOBs; LIKE and JSON functions need them as text.
RESOURCES_TEXT = cast(J.resources, Text)
DEFAULT_ORDER = OrderBy(field="startTime", type="col", order="DESC")


def string_condition(column: ColumnElement, spec: StringInput) -> list[ColumnElement]:
    conds: list[ColumnElement] = []
    if spec.eq is not None:
        conds.append(column == spec.eq)
    if spec.neq is not None:
        conds.append(column != spec.neq)
    if spec.contains is not None:
        conds.append(column.contains(spec.contains, autoescape=True))
    if spec.startsWith is not None:
        conds.append(column.startswith(spec.startsWith, autoescape=True))
    if spec.endsWith is not None:
        conds.append(column.endswith(spec.endsWith, autoescape=True))
    if spec.in_ is not None:
        conds.append(column.in_(spec.in_))
    return conds


def _json_text(column: ColumnElement, key: str) -> ColumnElement:
    return type_coerce(cast(column, Text), JSON)[key].as_string()


def _footprint_entry(key: str) -> ColumnElement:
    return cast(type_coerce(cast(J.footprint, Text), JSON)[key].as_float(), Float)


def footprint_value(name: str) -> ColumnElement:
    """A footprint value as a number, on SQLite and MySQL alike.

    ``flops_any_avg`` names one entry. A bare metric name (``mem_used``) takes whichever statistic the
    job has: the metric config's footprint stat for rows written here, ``_avg`` for rows written by
    upstream, which stores every footprint value under ``<metric>_avg``.
    """
    if re.search(r"_(avg|min|max)$", name):
        return _footprint_entry(name)
    return func.coalesce(*(_footprint_entry(f"{name}_{stat}") for stat in ("avg", "max", "min")))


def _node_condition(spec: StringInput) -> list[ColumnElement]:
    # Hostnames sit in the resources JSON, always serialised without spaces.
    conds: list[ColumnElement] = []
    if spec.eq is not None:
        conds.append(RESOURCES_TEXT.contains(f'"hostname":"{spec.eq}"', autoescape=True))
    if spec.neq is not None:
        conds.append(~RESOURCES_TEXT.contains(f'"hostname":"{spec.neq}"', autoescape=True))
    if spec.contains is not None:
        conds.append(RESOURCES_TEXT.contains(spec.contains, autoescape=True))
    if spec.startsWith is not None:
        conds.append(RESOURCES_TEXT.contains(f'"hostname":"{spec.startsWith}', autoescape=True))
    if spec.endsWith is not None:
        conds.append(RESOURCES_TEXT.contains(f'{spec.endsWith}"', autoescape=True))
    if spec.in_ is not None:
        conds.append(or_(*[RESOURCES_TEXT.contains(f'"hostname":"{h}"', autoescape=True) for h in spec.in_]))
    return conds


def filter_conditions(flt: JobFilter, now: int | None = None) -> list[ColumnElement]:
    """SQL conditions of one filter (combined with AND)."""
    conds: list[ColumnElement] = []
    if flt.tags:
        conds.append(J.id.in_(select(jobtag_table.c.job_id).where(jobtag_table.c.tag_id.in_(flt.tags))))
    if flt.dbId:
        conds.append(J.id.in_(flt.dbId))
    if flt.jobId is not None:
        conds += _job_id_condition(flt.jobId)
    if flt.arrayJobId is not None:
        conds.append(J.array_job_id == flt.arrayJobId)
    for spec, column in ((flt.user, J.hpc_user), (flt.project, J.project), (flt.cluster, J.cluster),
                         (flt.subCluster, J.subcluster), (flt.partition, J.cluster_partition)):
        if spec is not None:
            conds += string_condition(column, spec)
    if flt.jobName is not None:
        conds += string_condition(_json_text(J.meta_data, "jobName"), flt.jobName)
    for rng, column in ((flt.duration, J.duration), (flt.numNodes, J.num_nodes),
                        (flt.numAccelerators, J.num_acc), (flt.numHWThreads, J.num_hwthreads),
                        (flt.energy, J.energy)):
        if rng is not None:
            conds += _range_condition(column, rng.from_, rng.to)
    if flt.startTime is not None:
        lo, hi = flt.startTime.bounds(now)
        if lo is not None:
            conds.append(J.start_time >= lo)
        if hi is not None:
            conds.append(J.start_time <= hi)
    if flt.state:
        conds.append(J.job_state.in_(flt.state))
    for stat in flt.metricStats or ():
        conds += _range_condition(footprint_value(stat.metricName), stat.range.from_, stat.range.to)
    if flt.shared is not None:
        conds.append(J.shared == flt.shared)
    if flt.schedule == "interactive":
        conds.append(_json_text(J.meta_data, "jobName") == "interactive")
    elif flt.schedule == "batch":
        name = _json_text(J.meta_data, "jobName")
        conds.append(or_(name.is_(None), name != "interactive"))
    if flt.node is not None:
        conds += _node_condition(flt.node)
    return conds


def _range_condition(column: ColumnElement, lo: float, hi: float) -> list[ColumnElement]:
    """Upstream's range semantics: a bound of 0 is open (``{from: 2, to: 0}`` means at least 2)."""
    if lo and hi:
        return [column.between(lo, hi)]
    if lo:
        return [column >= lo]
    if hi:
        return [column <= hi]
    return []


def _job_id_condition(spec: StringInput) -> list[ColumnElement]:
    """Job ids are numbers: eq/neq/in compare numerically, the pattern operators on their text."""
    def number(value: str) -> int:
        try:
            return int(value)
        except ValueError:
            raise InvalidInput(f"jobId {value!r} is not a number", field="filter.jobId") from None

    conds: list[ColumnElement] = []
    if spec.eq is not None:
        conds.append(J.job_id == number(spec.eq))
    if spec.neq is not None:
        conds.append(J.job_id != number(spec.neq))
    if spec.in_ is not None:
        conds.append(J.job_id.in_([number(v) for v in spec.in_]))
    pattern = StringInput(contains=spec.contains, startsWith=spec.startsWith, endsWith=spec.endsWith)
    conds += string_condition(cast(J.job_id, String(20)), pattern)
    return conds


def scope_condition(viewer: Viewer | None) -> ColumnElement | None:
    """Restrict to the jobs the viewer may see (upstream ``internal/repository/job.go`` SecurityCheck)."""
    if sees_all_jobs(viewer):
        return None
    assert viewer is not None
    if viewer.has_role("manager") and viewer.projects:
        return or_(J.hpc_user == viewer.username, J.project.in_(viewer.projects))
    return J.hpc_user == viewer.username


def where_clause(filters: Sequence[JobFilter], viewer: Viewer | None, now: int | None = None) -> ColumnElement | None:
    conds: list[ColumnElement] = []
    for flt in filters:
        conds += filter_conditions(flt, now)
    scope = scope_condition(viewer)
    if scope is not None:
        conds.append(scope)
    return and_(*conds) if conds else None


def order_clause(order: OrderBy | None) -> list[ColumnElement]:
    order = order or DEFAULT_ORDER
    if order.type == "foot":
        expr: ColumnElement = footprint_value(order.field)
    else:
        column = KEY_TO_COLUMN.get(order.field, order.field)
        if column not in COLUMN_NAMES or column in ("resources", "meta_data", "footprint", "energy_footprint"):
            raise InvalidInput(f"cannot sort by {order.field!r}", field="order.field")
        expr = J[column]
    primary = expr.desc() if order.order == "DESC" else expr.asc()
    return [primary, J.id.desc() if order.order == "DESC" else J.id.asc()]


#: Job ids per tag query: SQLite allows 32,766 bound parameters per statement, and a page of every job
#: (GraphQL ``itemsPerPage: -1``, REST exports) can hold millions.
TAG_QUERY_CHUNK = 10_000


def tags_for_jobs(conn: Connection, job_ids: Iterable[int], viewer: Viewer | None) -> dict[int, list[dict]]:
    """Tags of many jobs (one query per 10,000 jobs), limited to the scopes the viewer may read."""
    ids = list(job_ids)
    out: dict[int, list[dict]] = {i: [] for i in ids}
    scopes = readable_tag_scopes(viewer)
    for first in range(0, len(ids), TAG_QUERY_CHUNK):
        chunk = ids[first:first + TAG_QUERY_CHUNK]
        # Plain SQL: this runs for every job list and every start/stop, and Core statement building
        # cost more than the query (see db.engine.execute_hot).
        params: dict[str, Any] = {f"j{i}": job_id for i, job_id in enumerate(chunk)}
        sql = ("SELECT jobtag.job_id, tag.id, tag.tag_type, tag.tag_name, tag.tag_scope FROM jobtag "
               "JOIN tag ON tag.id = jobtag.tag_id WHERE jobtag.job_id IN (" + ", ".join(":" + k for k in params) + ")")
        if scopes is not None:
            params.update({f"s{i}": scope for i, scope in enumerate(scopes)})
            sql += " AND tag.tag_scope IN (" + ", ".join(f":s{i}" for i in range(len(scopes))) + ")"
        sql += " ORDER BY jobtag.job_id, tag.tag_type, tag.tag_name"
        for job_id, tag_id, ttype, tname, tscope in execute_hot(conn, sql, params).fetchall():
            out[job_id].append({"id": tag_id, "type": ttype, "name": tname, "scope": tscope})
    return out


def list_jobs(
    bind: Engine | Connection,
    filters: Sequence[JobFilter] = (),
    *,
    order: OrderBy | None = None,
    page: Page | None = None,
    viewer: Viewer | None = None,
    with_tags: bool = True,
    now: int | None = None,
) -> list[dict[str, Any]]:
    """Jobs matching every filter that the viewer may see, as REST-shaped dicts."""
    limit = offset = None
    if page is not None and page.itemsPerPage != -1:
        limit, offset = page.itemsPerPage, (page.page - 1) * page.itemsPerPage
    return _select_jobs(bind, filters, order, limit, offset, viewer, with_tags, now)


def page_of_jobs(
    bind: Engine | Connection,
    filters: Sequence[JobFilter] = (),
    *,
    order: OrderBy | None = None,
    page: Page | None = None,
    viewer: Viewer | None = None,
    now: int | None = None,
) -> tuple[list[dict[str, Any]], bool]:
    """One page of :func:`list_jobs` and whether another page follows (one row more, not a second query)."""
    page = page or Page()
    if page.itemsPerPage == -1:
        return _select_jobs(bind, filters, order, None, None, viewer, True, now), False
    jobs = _select_jobs(bind, filters, order, page.itemsPerPage + 1, (page.page - 1) * page.itemsPerPage,
                        viewer, True, now)
    return jobs[:page.itemsPerPage], len(jobs) > page.itemsPerPage


def _select_jobs(bind: Engine | Connection, filters: Sequence[JobFilter], order: OrderBy | None,
                 limit: int | None, offset: int | None, viewer: Viewer | None, with_tags: bool,
                 now: int | None) -> list[dict[str, Any]]:
    stmt = select(job_table)
    where = where_clause(filters, viewer, now)
    if where is not None:
        stmt = stmt.where(where)
    stmt = stmt.order_by(*order_clause(order))
    if limit is not None:
        stmt = stmt.limit(limit).offset(offset or 0)
    with connection_for(bind) as conn:
        rows = conn.execute(stmt).mappings().all()
        tags = tags_for_jobs(conn, [r["id"] for r in rows], viewer) if with_tags else {}
    return [row_to_job(r, tags.get(r["id"], [])) for r in rows]


def count_jobs(bind: Engine | Connection, filters: Sequence[JobFilter] = (), *, viewer: Viewer | None = None,
               now: int | None = None) -> int:
    stmt = select(func.count()).select_from(job_table)
    where = where_clause(filters, viewer, now)
    if where is not None:
        stmt = stmt.where(where)
    with connection_for(bind) as conn:
        return int(conn.execute(stmt).scalar_one())


def get_job(bind: Engine | Connection, db_id: int, *, viewer: Viewer | None = None) -> dict[str, Any]:
    """One job by database id; a job the viewer may not see is reported as not found."""
    jobs = list_jobs(bind, [JobFilter(dbId=[db_id])], viewer=viewer)
    if not jobs:
        raise NotFound(f"no job with id {db_id}", field="id")
    return jobs[0]


def find_jobs(bind: Engine | Connection, job_id: int, cluster: str | None = None, start_time: int | None = None,
              *, viewer: Viewer | None = None) -> list[dict[str, Any]]:
    """Jobs by batch-system id (ids repeat across clusters and over time), newest first."""
    if sees_all_jobs(viewer):
        # stop_job's lookup, once per request of every batch-system adapter: plain SQL
        sql = _FIND_SQL + " WHERE job_id = :job_id"
        params: dict[str, Any] = {"job_id": job_id}
        if cluster is not None:
            sql += " AND cluster = :cluster"
            params["cluster"] = cluster
        if start_time is not None:
            sql += " AND start_time = :start_time"
            params["start_time"] = start_time
        sql += " ORDER BY start_time DESC, id DESC"
        with connection_for(bind) as conn:
            rows = rows_as_dicts(execute_hot(conn, sql, params))
            tags = tags_for_jobs(conn, [r["id"] for r in rows], viewer)
        return [row_to_job(r, tags[r["id"]]) for r in rows]
    conds: list[ColumnElement] = [J.job_id == job_id]
    if cluster is not None:
        conds.append(J.cluster == cluster)
    if start_time is not None:
        conds.append(J.start_time == start_time)
    scope = scope_condition(viewer)
    if scope is not None:
        conds.append(scope)
    stmt = select(job_table).where(and_(*conds)).order_by(J.start_time.desc(), J.id.desc())
    with connection_for(bind) as conn:
        rows = conn.execute(stmt).mappings().all()
        tags = tags_for_jobs(conn, [r["id"] for r in rows], viewer)
    return [row_to_job(r, tags[r["id"]]) for r in rows]


#: Seconds at either end of a job that do not count as overlap (upstream: jobs merely touching at the
#: start or end are not "concurrent").
CONCURRENCY_SLACK_START = 10
CONCURRENCY_SLACK_END = 200
#: Jobs up to this long (seconds) have no concurrent jobs listed (upstream's rule).
CONCURRENT_MIN_DURATION = 600


def concurrent_jobs(bind: Engine | Connection, job: dict[str, Any], *, viewer: Viewer | None = None,
                    now: int | None = None) -> dict[str, Any]:
    """Jobs that ran on one of ``job``'s nodes at the same time (for shared nodes), as upstream's JobLinkResultList.

    Only meaningful, as upstream, for jobs with ``shared != "none"`` that ran longer than 10 minutes;
    the caller decides. ``listQuery`` is the job-list URL query that shows them all.
    """
    start = int(job["startTime"])
    stop = start + int(job.get("duration") or 0)
    if job.get("jobState") == "running":
        stop = int(time.time()) if now is None else now
    hosts = [r["hostname"] for r in job.get("resources") or () if isinstance(r, dict) and r.get("hostname")]
    if not hosts:
        return {"listQuery": "", "items": [], "count": 0}
    overlap = or_(
        and_(J.job_state != "running", J.start_time < stop - CONCURRENCY_SLACK_END,
             (J.start_time + J.duration) > start + CONCURRENCY_SLACK_START),
        and_(J.job_state == "running", J.start_time < stop - CONCURRENCY_SLACK_END),
    )
    conds = [J.cluster == job["cluster"], J.id != job["id"], overlap,
             or_(*[RESOURCES_TEXT.contains(f'"hostname":"{h}"', autoescape=True) for h in hosts])]
    scope = scope_condition(viewer)
    if scope is not None:
        conds.append(scope)
    stmt = select(J.id, J.job_id).where(and_(*conds)).order_by(J.id)
    with connection_for(bind) as conn:
        rows = conn.execute(stmt).all()
    items = [{"id": r[0], "jobId": r[1]} for r in rows]
    list_query = "&".join(f"jobId={item['jobId']}" for item in items)
    return {"listQuery": list_query, "items": items, "count": len(items)}


def hosts_of_running_jobs(bind: Engine | Connection, key: ColumnElement,
                          *conditions: ColumnElement) -> dict[Any, set[str]]:
    """Per value of ``key`` (cluster, subcluster), in its order, the hostnames that running jobs use."""
    stmt = select(key, J.resources).where(J.job_state == "running", *conditions).order_by(key)
    hosts: dict[Any, set[str]] = {}
    with connection_for(bind) as conn:
        for value, resources in conn.execute(stmt):
            found = hosts.setdefault(value, set())
            # text, or bytes where upstream's Go driver stored a BLOB: orjson reads both
            for resource in orjson.loads(resources) if resources else ():
                if isinstance(resource, dict) and isinstance(resource.get("hostname"), str) and resource["hostname"]:
                    found.add(resource["hostname"])
    return hosts



def concurrent_jobs_of(bind: Engine | Connection, job: dict[str, Any], *, viewer: Viewer | None) -> dict[str, Any] | None:
    """:func:`concurrent_jobs` of a shared job that ran longer than 10 minutes; None otherwise (GraphQL's Job.concurrentJobs)."""
    if (job.get("shared") or "none") == "none" or int(job.get("duration") or 0) <= CONCURRENT_MIN_DURATION:
        return None
    return concurrent_jobs(bind, job, viewer=viewer)
