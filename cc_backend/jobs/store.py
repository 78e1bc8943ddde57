"""Changing jobs: start, stop, edit metadata, delete (upstream ``internal/api/job.go`` and ``internal/repository/job.go``); tag writes are in jobs/tags.py.

Plain functions shared by the REST handlers, NATS and GraphQL. Each raises the domain errors of
``cc_backend.errors`` with the upstream status in mind: InvalidInput (400), NotFound (404),
Conflict (422).

Differences from upstream, on purpose:

- ``start_job`` always inserts into ``job`` (upstream stages untagged jobs in ``job_cache`` until a
  commit worker runs), so a started job is at once visible to lists, stop_job and duplicate checks.
- The duplicate window is symmetric: ``|new.startTime - old.startTime| < 86400``. Upstream tests
  ``new - old < 86400``, which also rejects a job that started any time *before* an existing one
  with the same id (e.g. a late report of an older job once ids have wrapped).
- Duplicate check and insert run in one serialised transaction, safe across threads and processes
  (upstream uses an in-process mutex): SQLite ``BEGIN IMMEDIATE``, MySQL/MariaDB a named lock
  (``GET_LOCK``) per (cluster, jobId) plus READ COMMITTED, see ``jobs/transaction.write_transaction``.
- Tags in start_job keep their scope (upstream creates them ``global``) and are checked against the
  viewer's write permission.
- Without ``startTime``, stop_job and the by-key functions take the newest job by start time (ties:
  highest id); upstream takes the highest id. Both agree unless an older job was inserted later.
- A tag (type, name) that exists with another scope than requested is a Conflict (upstream fails
  on the UNIQUE(tag_type, tag_name) constraint with a 500).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import delete, exists, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from cc_backend.archive.cluster import ClusterRegistry
from cc_backend.auth.security import Viewer
from cc_backend.db.engine import execute_hot
from cc_backend.db.limits import check_int, check_text, int_range
from cc_backend.db.tables import JOB_STATES, job_table, jobtag_table, tag_table
from cc_backend.errors import Conflict, InvalidInput, NotFound
from cc_backend.jobs.model import MAX_TIME, job_to_row, json_object, reject_unknown, row_to_job
from cc_backend.jobs.query import find_jobs, get_job, hosts_of_running_jobs
from cc_backend.jobs.tags import attach_tags, parse_tags
from cc_backend.jobs.transaction import locked_job, sync_archive_meta, write_transaction

if TYPE_CHECKING:
    from cc_backend.archive.fs import FileArchive

J = job_table.c
T = tag_table.c

#: Seconds within which a second start of the same jobId on the same cluster is a duplicate.
DUPLICATE_WINDOW = 86400

#: Keys of the job JSON (archive/schemas/job-meta.schema.json, upstream cc-lib ``schema/job.go``); anything else in a start_job body is rejected (DisallowUnknownFields).
JOB_KEYS = frozenset({
    "id", "jobId", "user", "project", "cluster", "subCluster", "partition", "arrayJobId", "numNodes",
    "numHwthreads", "numAcc", "shared", "monitoringStatus", "smt", "walltime", "jobState", "startTime",
    "submitTime", "requestedMemory", "duration", "resources", "metaData", "tags", "energy", "energyFootprint",
    "footprint", "concurrentJobs", "statistics",
})
RESOURCE_KEYS = frozenset({"hostname", "hwthreads", "accelerators", "configuration"})
JOB_TAG_KEYS = frozenset({"id", "type", "name", "scope"})  # schema.Tag inside a job
STOP_KEYS = frozenset({"jobId", "cluster", "startTime", "jobState", "stopTime"})
OMIT_TAGGED = ("none", "all", "user")
#: Tag types that do not protect a job from delete_jobs_before(omit_tagged="user").
AUTOMATIC_TAG_TYPES = ("app", "jobClass")

_BAD_HOSTNAME = re.compile(r"[\s/\\,\"\x00-\x1f\x7f]|\.\.")


# --- validation helpers ---------------------------------------------------------------------------

def _opt_int(doc: Mapping[str, Any], key: str) -> int | None:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise InvalidInput(f"field {key!r} must be an integer, got {value!r}", field=key)
    return int(value)


def _opt_str(doc: Mapping[str, Any], key: str) -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"field {key!r} must be a string, got {value!r}", field=key)
    return value


def _check_resources(resources: Any) -> None:
    if not isinstance(resources, list) or not resources:
        raise InvalidInput("'resources' must be a non-empty list", field="resources")
    for i, res in enumerate(resources):
        where = f"resources[{i}]"
        reject_unknown(json_object(res, where), RESOURCE_KEYS, f"{where}.")
        host = res.get("hostname")
        if not isinstance(host, str) or not host or len(host) > 255 or _BAD_HOSTNAME.search(host):
            raise InvalidInput(f"{where}.hostname {host!r} is not a valid hostname", field=f"{where}.hostname")
        for key, kind in (("hwthreads", int), ("accelerators", str)):
            items = res.get(key)
            if items is not None and (not isinstance(items, list) or
                                      any(isinstance(v, bool) or not isinstance(v, kind) for v in items)):
                raise InvalidInput(f"{where}.{key} must be a list of {kind.__name__}", field=f"{where}.{key}")
        if res.get("configuration") is not None and not isinstance(res["configuration"], str):
            raise InvalidInput(f"{where}.configuration must be a string", field=f"{where}.configuration")


def _check_meta_data(meta: Any) -> None:
    if meta is None:
        return
    for key, value in json_object(meta, "metaData").items():
        if not isinstance(value, str):
            raise InvalidInput(f"metaData.{key} must be a string", field=f"metaData.{key}")


# --- start / stop ---------------------------------------------------------------------------------

# The hot statements of start/stop as plain SQL (see db.engine.execute_hot).
_DUPLICATE_SQL = ("SELECT id, start_time FROM job WHERE job_id = :job_id AND cluster = :cluster "
                  "AND start_time > :after AND start_time < :before LIMIT 1")
_INSERT_JOB_SQL = (f"INSERT INTO job ({', '.join(c.name for c in job_table.columns if c.name != 'id')}) "
                   f"VALUES ({', '.join(':' + c.name for c in job_table.columns if c.name != 'id')})")
_STOP_SQL = "UPDATE job SET job_state = :state, duration = :duration WHERE id = :id AND job_state = 'running'"


def start_job(engine: Engine, registry: ClusterRegistry, payload: Mapping[str, Any], *,
              viewer: Viewer | None = None, now: int | None = None) -> dict[str, Any]:
    """Validate and insert a running job; returns the stored job JSON (with ``id`` and tags).

    Upstream's sanity checks: known cluster; a given subCluster must exist, else it is assigned from
    ``resources[0].hostname``; non-empty ``user`` and ``resources``; ``numNodes >= 1`` and equal to
    the number of resources; ``numAcc``/``numHwthreads >= 0``. ``jobState`` is forced to running,
    ``shared`` defaults to none and ``monitoringStatus`` to 1.

    Duplicate: a job with the same jobId and cluster whose start time is less than 24 h away in
    *either* direction (upstream: ``new - old < 86400``) is a Conflict. The check and the insert are
    one serialised transaction (``jobs/transaction.write_transaction``), so of concurrent identical starts exactly
    one succeeds. ``now`` is accepted for the callers' convenience and not used.
    """
    del now
    reject_unknown(json_object(payload, "body"), JOB_KEYS)
    job = dict(payload)
    job.pop("id", None)
    job["jobState"] = "running"
    job["shared"] = job.get("shared") or "none"
    if job.get("monitoringStatus") is None:
        job["monitoringStatus"] = 1

    cluster_name = _opt_str(job, "cluster")
    if not cluster_name or cluster_name not in registry:
        raise InvalidInput(f"cluster {cluster_name!r} is not in the job archive", field="cluster")
    if not _opt_str(job, "user"):
        raise InvalidInput("'user' must not be empty", field="user")
    _check_resources(job.get("resources"))
    _check_meta_data(job.get("metaData"))
    job["subCluster"] = registry.job_subcluster(
        cluster_name, _opt_str(job, "subCluster"), job["resources"][0]["hostname"]).name
    num_nodes = _opt_int(job, "numNodes")
    if num_nodes is None or num_nodes < 1:
        raise InvalidInput(f"numNodes must be at least 1, got {num_nodes}", field="numNodes")
    if num_nodes != len(job["resources"]):
        raise InvalidInput(f"len(resources) does not equal numNodes ({len(job['resources'])} vs {num_nodes})",
                           field="numNodes")
    for key in ("numAcc", "numHwthreads"):
        value = _opt_int(job, key)
        if value is not None and value < 0:
            raise InvalidInput(f"{key} must not be negative, got {value}", field=key)
    job_id = _opt_int(job, "jobId")
    if job_id is None or job_id < 0:
        # negative ids have no archive directory (<jobId // 1000>/<jobId % 1000>)
        raise InvalidInput(f"jobId must be a non-negative integer, got {job.get('jobId')!r}", field="jobId")
    tags = parse_tags(job.get("tags"), JOB_TAG_KEYS)
    row = job_to_row(job)

    start = row["start_time"]
    with write_transaction(engine, lock=f"start_job {row['cluster']} {row['job_id']}") as conn:
        dup = execute_hot(conn, _DUPLICATE_SQL, {
            "job_id": row["job_id"], "cluster": row["cluster"],
            "after": start - DUPLICATE_WINDOW, "before": start + DUPLICATE_WINDOW}).fetchone()
        if dup is not None:
            raise Conflict(f"a job with that jobId, cluster and startTime already exists: dbid: {dup[0]}, "
                           f"jobid: {row['job_id']}, startTime: {dup[1]}", field="jobId")
        try:
            db_id = int(execute_hot(conn, _INSERT_JOB_SQL, row).lastrowid)
        except IntegrityError as exc:
            raise Conflict(f"a job with jobId {row['job_id']} on {row['cluster']} started at {start} "
                           f"already exists", field="jobId") from exc
        if tags:
            attach_tags(conn, db_id, tags, viewer)
            # Not limited by the viewer: the caller just created this job and named its tags.
            return get_job(conn, db_id)
    # the common case, built outside the writer lock: no second round trip for the job just written
    return row_to_job({**row, "id": db_id}, [])


def _stop_request(payload: Mapping[str, Any], *,
                  need_job_id: bool) -> tuple[int | None, str | None, int | None, str, int]:
    reject_unknown(json_object(payload, "body"), STOP_KEYS)
    job_id = _opt_int(payload, "jobId")
    if job_id is None and need_job_id:
        raise InvalidInput("the field 'jobId' is required", field="jobId")
    state = _opt_str(payload, "jobState") or "completed"
    if state not in JOB_STATES or state == "running":
        raise InvalidInput(f"invalid job state {state!r} for a stopped job", field="jobState")
    stop_time = _opt_int(payload, "stopTime")
    if stop_time is None:
        raise InvalidInput("the field 'stopTime' is required", field="stopTime")
    check_int(J.start_time, stop_time, "stopTime", minimum=0, maximum=MAX_TIME)
    return job_id, _opt_str(payload, "cluster"), _opt_int(payload, "startTime"), state, stop_time


def _stop(engine: Engine, job: Mapping[str, Any], state: str, stop_time: int, viewer: Viewer | None) -> dict[str, Any]:
    if stop_time < job["startTime"]:
        raise InvalidInput(f"stopTime {stop_time} must not be before startTime {job['startTime']}", field="stopTime")
    longest = int_range(J.duration)[1]
    if stop_time - job["startTime"] > longest:
        raise InvalidInput(f"stopTime {stop_time}: the job would have run {stop_time - job['startTime']} s, "
                           f"longer than the {longest} s a duration holds", field="stopTime")
    if job["jobState"] != "running":
        raise Conflict(f"jobId {job['jobId']} (id {job['id']}) on {job['cluster']}: job has already been stopped "
                       f"(state is: {job['jobState']})", field="jobState")
    with write_transaction(engine) as conn:
        # The state condition makes concurrent stops of one job safe: only one of them matches.
        done = execute_hot(conn, _STOP_SQL, {
            "id": job["id"], "state": state, "duration": stop_time - job["startTime"]}).rowcount
        if not done:
            raise Conflict(f"jobId {job['jobId']} (id {job['id']}) on {job['cluster']}: job has already been stopped",
                           field="jobState")
    # Only these two fields changed; the rest (tags included) is what was just read.
    return {**job, "jobState": state, "duration": stop_time - job["startTime"]}


def stop_job(engine: Engine, payload: Mapping[str, Any], *, viewer: Viewer | None = None) -> dict[str, Any]:
    """Stop a running job found by jobId (+cluster, +startTime); returns the updated job JSON.

    Sets ``job_state`` (default completed) and ``duration = stopTime - startTime``; the monitoring
    status is left as is (archiving is a separate step). Without startTime the newest matching job
    by start time is taken. Errors: jobId/stopTime missing or a bad state -> InvalidInput; no such
    job (or not visible to ``viewer``) -> NotFound; stopTime < startTime -> InvalidInput; job not
    running -> Conflict.
    """
    job_id, cluster, start_time, state, stop_time = _stop_request(payload, need_job_id=True)
    assert job_id is not None
    found = find_jobs(engine, job_id, cluster, start_time, viewer=viewer)
    if not found:
        raise NotFound(f"no job with jobId {job_id}" + (f" on {cluster}" if cluster else "")
                       + (f" started at {start_time}" if start_time is not None else ""), field="jobId")
    return _stop(engine, found[0], state, stop_time, viewer)


def stop_job_by_id(engine: Engine, db_id: int, payload: Mapping[str, Any], *,
                   viewer: Viewer | None = None) -> dict[str, Any]:
    """v1.0.0's ``/api/jobs/stop_job/{id}``: stop by database id (jobId/cluster/startTime, if given, must match)."""
    job_id, cluster, start_time, state, stop_time = _stop_request(payload, need_job_id=False)
    job = get_job(engine, db_id, viewer=viewer)
    for key, given in (("jobId", job_id), ("cluster", cluster), ("startTime", start_time)):
        if given is not None and given != job[key]:
            raise InvalidInput(f"{key} {given!r} does not match job {db_id} ({job[key]!r})", field=key)
    return _stop(engine, job, state, stop_time, viewer)


# --- metadata -------------------------------------------------------------------------------------

def _edit_meta(engine: Engine, archive: FileArchive, db_id: int, key: Any, value: Any, viewer: Viewer | None) -> dict[str, Any]:
    if not isinstance(key, str) or not key:
        raise InvalidInput("'key' must be a non-empty string", field="key")
    if not isinstance(value, str):
        raise InvalidInput("'value' must be a string", field="value")
    with write_transaction(engine) as conn:
        job = locked_job(conn, db_id, viewer)
        meta = dict(job["metaData"] or {})
        meta[key] = value
        document = check_text(J.meta_data, orjson.dumps(meta).decode(), "value")
        conn.execute(update(job_table).where(J.id == db_id).values(meta_data=document))
        job["metaData"] = meta
        sync_archive_meta(conn, archive, job, meta_data={key: value})
        return job


def edit_meta(engine: Engine, archive: FileArchive, db_id: int, key: Any, value: Any, *,
              viewer: Viewer | None = None) -> dict[str, Any]:
    """Set one metaData key of a job (DB and, for non-running archived jobs, meta.json); returns the job JSON.

    Unknown or invisible job -> NotFound; key/value not strings -> InvalidInput.
    """
    return _edit_meta(engine, archive, db_id, key, value, viewer)


def edit_meta_by_job(engine: Engine, archive: FileArchive, job_id: Any, cluster: str | None, start_time: int | None,
                     key: Any, value: Any, *, viewer: Viewer | None = None) -> dict[str, Any]:
    """edit_meta for the job found by jobId (+cluster, +startTime; newest first).

    Not found -> Conflict (upstream answers 422 here).
    """
    jid = _opt_int({"jobId": job_id}, "jobId")
    if jid is None:
        raise InvalidInput("the field 'jobId' is required", field="jobId")
    found = find_jobs(engine, jid, cluster, start_time, viewer=viewer)
    if not found:
        raise Conflict(f"finding job failed: no job with jobId {jid}", field="jobId")
    return _edit_meta(engine, archive, found[0]["id"], key, value, viewer)


# --- delete ---------------------------------------------------------------------------------------

def delete_job(engine: Engine, db_id: int) -> int:
    """Delete one job (and its tag links) from the database; the archive is untouched. Not found -> Conflict (422)."""
    with engine.begin() as conn:
        conn.execute(delete(jobtag_table).where(jobtag_table.c.job_id == db_id))
        if not conn.execute(delete(job_table).where(J.id == db_id)).rowcount:
            raise Conflict(f"deleting job failed: no job with id {db_id}", field="id")
    return db_id


def delete_job_by_key(engine: Engine, job_id: Any, cluster: str | None = None, start_time: int | None = None) -> int:
    """Delete the job found by jobId (+cluster, +startTime; newest first); returns its database id."""
    jid = _opt_int({"jobId": job_id}, "jobId")
    if jid is None:
        raise InvalidInput("the field 'jobId' is required", field="jobId")
    found = find_jobs(engine, jid, cluster, start_time)
    if not found:
        raise Conflict(f"finding job failed: no job with jobId {jid}", field="jobId")
    return delete_job(engine, found[0]["id"])


def delete_jobs_before(engine: Engine, ts: int, omit_tagged: str = "none") -> int:
    """Delete every job started before ``ts``; returns how many. Database only.

    ``omit_tagged``: ``none`` deletes all, ``all`` keeps jobs with any tag, ``user`` keeps jobs with a
    tag whose type is not one of the automatic ``app``/``jobClass`` types.
    """
    if omit_tagged not in OMIT_TAGGED:
        raise InvalidInput(f"omit-tagged must be one of {', '.join(OMIT_TAGGED)}, got {omit_tagged!r}",
                           field="omit-tagged")
    if isinstance(ts, bool) or not isinstance(ts, int):
        raise InvalidInput(f"timestamp must be an integer, got {ts!r}", field="ts")
    conds = [J.start_time < ts]
    JT = jobtag_table.c
    if omit_tagged == "all":
        conds.append(~exists().where(JT.job_id == J.id))
    elif omit_tagged == "user":
        conds.append(~exists().where(JT.job_id == J.id, JT.tag_id == T.id,
                                     T.tag_type.notin_(AUTOMATIC_TAG_TYPES)))
    with engine.begin() as conn:
        ids = list(conn.execute(select(J.id).where(*conds)).scalars())
        for i in range(0, len(ids), 5000):
            chunk = ids[i:i + 5000]
            conn.execute(delete(jobtag_table).where(JT.job_id.in_(chunk)))
            conn.execute(delete(job_table).where(J.id.in_(chunk)))
    return len(ids)


# --- nodes ----------------------------------------------------------------------------------------

def used_nodes(engine: Engine, ts: int) -> dict[str, list[str]]:
    """Hostnames in use by running jobs that started before ``ts``, per cluster (sorted)."""
    if isinstance(ts, bool) or not isinstance(ts, int):
        raise InvalidInput(f"ts must be an integer, got {ts!r}", field="ts")
    hosts = hosts_of_running_jobs(engine, J.cluster, J.start_time < ts)
    return {cluster: sorted(found) for cluster, found in hosts.items()}


__all__ = [
    "delete_job", "delete_job_by_key", "delete_jobs_before", "edit_meta", "edit_meta_by_job", "start_job",
    "stop_job", "stop_job_by_id", "used_nodes",
]
