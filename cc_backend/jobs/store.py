"""Changing jobs: start, stop, tag, edit metadata, delete (the business logic of the REST job API, §4.2).

Plain functions shared by the REST handlers, NATS and GraphQL. Each raises the domain errors of
``cc_backend.errors`` with the upstream status in mind: InvalidInput (400), NotFound (404),
Conflict (422), Forbidden (403).

Differences from upstream, on purpose:

- ``start_job`` always inserts into ``job`` (upstream stages untagged jobs in ``job_cache`` until a
  commit worker runs), so a started job is at once visible to lists, stop_job and duplicate checks.
- The duplicate window is symmetric: ``|new.startTime - old.startTime| < 86400``. Upstream tests
  ``new - old < 86400``, which also rejects a job that started any time *before* an existing one
  with the same id (e.g. a late report of an older job once ids have wrapped).
- Duplicate check and insert run in one serialised transaction, safe across threads and processes
  (upstream uses an in-process mutex): SQLite ``BEGIN IMMEDIATE``, MySQL/MariaDB a named lock
  (``GET_LOCK``) per (cluster, jobId) plus READ COMMITTED, see ``_write_transaction``.
- Tags in start_job keep their scope (upstream creates them ``global``) and are checked against the
  viewer's write permission.
- Without ``startTime``, stop_job and the by-key functions take the newest job by start time (ties:
  highest id); upstream takes the highest id. Both agree unless an older job was inserted later.
- A tag (type, name) that exists with another scope than requested is a Conflict (upstream fails
  on the UNIQUE(tag_type, tag_name) constraint with a 500).
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from contextlib import contextmanager
from typing import Any, Iterator, Mapping

import orjson
from sqlalchemy import and_, delete, exists, insert, select, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from cc_backend.archive.cluster import ClusterRegistry
from cc_backend.db.engine import execute_hot, is_sqlite
from cc_backend.db.limits import check_int, check_text, int_range
from cc_backend.db.tables import JOB_STATES, job_table, jobtag_table, tag_table
from cc_backend.errors import Conflict, Forbidden, InvalidInput, NotFound
from cc_backend.jobs.model import MAX_TIME, job_to_row, row_to_job
from cc_backend.jobs.query import find_jobs, get_job, hosts_of_running_jobs, scope_condition, tags_for_jobs
from cc_backend.jobs.tags import attach_tag, check_tag_text, readable_tags_by_id, tag_dict
from cc_backend.auth.security import (Viewer, can_write_tag_scope, may_assign_tag_scope, may_delete_tag_scope,
                                 readable_tag_scopes)

log = logging.getLogger(__name__)

J = job_table.c
T = tag_table.c

#: Seconds within which a second start of the same jobId on the same cluster is a duplicate.
DUPLICATE_WINDOW = 86400
#: Seconds a MySQL start_job waits for the named lock of its (cluster, jobId).
LOCK_TIMEOUT = 60

#: Keys of the job JSON (§6.4); anything else in a start_job body is rejected (DisallowUnknownFields).
JOB_KEYS = frozenset({
    "id", "jobId", "user", "project", "cluster", "subCluster", "partition", "arrayJobId", "numNodes",
    "numHwthreads", "numAcc", "shared", "monitoringStatus", "smt", "walltime", "jobState", "startTime",
    "submitTime", "requestedMemory", "duration", "resources", "metaData", "tags", "energy", "energyFootprint",
    "footprint", "concurrentJobs", "statistics",
})
RESOURCE_KEYS = frozenset({"hostname", "hwthreads", "accelerators", "configuration"})
JOB_TAG_KEYS = frozenset({"id", "type", "name", "scope"})  # schema.Tag inside a job
API_TAG_KEYS = frozenset({"type", "name", "scope"})  # tag_job / DELETE bodies (APITag)
STOP_KEYS = frozenset({"jobId", "cluster", "startTime", "jobState", "stopTime"})
OMIT_TAGGED = ("none", "all", "user")
#: Tag types that do not protect a job from delete_jobs_before(omit_tagged="user").
AUTOMATIC_TAG_TYPES = ("app", "jobClass")

_BAD_HOSTNAME = re.compile(r"[\s/\\,\"\x00-\x1f\x7f]|\.\.")


# --- transactions ---------------------------------------------------------------------------------

class _Group:
    """One shared transaction: its connection, how many writers joined, and how it ended."""

    __slots__ = ("conn", "members", "done", "error")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.members = 0
        self.done = threading.Event()
        self.error: BaseException | None = None


class _GroupCommit:
    """Serialised SQLite writers of one database file that share commits (group commit).

    Every write of this process runs under one mutex, each in its own SAVEPOINT of a shared
    ``BEGIN IMMEDIATE`` transaction. The writer that finds nobody queued behind it commits for the
    whole group; everyone waits for that commit before returning, so a caller only ever reports
    what is durable. Why: each job row touches ~55 index pages, and committing them once per row
    capped start/stop at a few hundred requests/s (bench/rest_start_stop.py); with 8 clients a
    group of several writes now shares one commit. One failing writer rolls back only its savepoint.
    """

    MAX_GROUP = 64

    def __init__(self) -> None:
        self.mutex = threading.Lock()
        self._queue_lock = threading.Lock()
        self.queued = 0
        self.group: _Group | None = None
        self.savepoints = 0

    @contextmanager
    def write(self, engine: Engine) -> Iterator[Connection]:
        with self._queue_lock:
            self.queued += 1
        self.mutex.acquire()
        with self._queue_lock:
            self.queued -= 1
        try:
            group = self.group or self._begin(engine)
            group.members += 1
            self.savepoints += 1
            savepoint = f"w{self.savepoints}"
            raw = group.conn.connection.dbapi_connection
            assert raw is not None
            try:
                raw.execute(f"SAVEPOINT {savepoint}")
                yield group.conn
            except BaseException:
                try:
                    raw.execute(f"ROLLBACK TO {savepoint}")
                    raw.execute(f"RELEASE {savepoint}")
                except Exception as exc:  # the transaction itself is gone: the whole group fails
                    group.error = exc
                self._maybe_commit(group)
                raise
            raw.execute(f"RELEASE {savepoint}")
            self._maybe_commit(group)
        finally:
            self.mutex.release()
        group.done.wait()
        if group.error is not None:
            raise group.error

    def _begin(self, engine: Engine) -> _Group:
        conn = engine.connect()
        conn.execution_options(isolation_level="AUTOCOMMIT")
        try:
            conn.connection.dbapi_connection.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]
        except BaseException:
            conn.close()
            raise
        self.group = _Group(conn)
        return self.group

    def _maybe_commit(self, group: _Group) -> None:
        """Commit (or roll back a broken group) unless another writer is queued to join it."""
        with self._queue_lock:
            others_waiting = self.queued > 0
        if others_waiting and group.members < self.MAX_GROUP and group.error is None:
            return
        self.group = None
        conn = group.conn
        try:
            conn.connection.dbapi_connection.execute("COMMIT" if group.error is None else "ROLLBACK")  # type: ignore[union-attr]
        except BaseException as exc:
            group.error = group.error or exc
            try:
                if conn.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
                    conn.exec_driver_sql("ROLLBACK")
            except Exception:
                conn.invalidate()
        finally:
            conn.close()
            group.done.set()


_group_commits: dict[str, _GroupCommit] = {}
_group_commits_guard = threading.Lock()


def _group_commit(engine: Engine) -> _GroupCommit:
    """One group-commit writer per SQLite database file, shared by every engine of this process on it."""
    key = str(engine.url)
    with _group_commits_guard:
        return _group_commits.setdefault(key, _GroupCommit())


@contextmanager
def _write_transaction(engine: Engine, lock: str | None = None) -> Iterator[Connection]:
    """One write transaction in which check-then-write is safe against concurrent writers.

    SQLite: writers of this process are serialised by :class:`_GroupCommit` (each in a savepoint of
    a shared ``BEGIN IMMEDIATE`` transaction, which takes the database write lock before the first
    read, so other processes wait via busy_timeout). A writer sees every earlier writer's rows.

    MySQL/MariaDB: a ``SELECT ... FOR UPDATE`` on a row that does not exist yet only takes gap locks,
    which do not exclude each other, so two starts would both pass the check and then deadlock or
    both insert. Instead ``lock`` names a lock (``GET_LOCK``) held from before the check until after
    the commit; the transaction runs READ COMMITTED so the check sees what the previous holder
    committed. Without ``lock`` it is an ordinary transaction (callers lock rows with FOR UPDATE).
    """
    if is_sqlite(engine):
        with _group_commit(engine).write(engine) as conn:
            yield conn
        return
    with engine.connect() as conn:  # READ COMMITTED: set for every MySQL connection by make_engine
        name = None
        if lock is not None:
            db = engine.url.database or ""
            name = "ccb:" + hashlib.sha1(f"{db}\x00{lock}".encode()).hexdigest()  # names are <= 64 chars
            got = conn.execute(text("SELECT GET_LOCK(:n, :t)"), {"n": name, "t": LOCK_TIMEOUT}).scalar()
            if got != 1:
                raise Conflict(f"timed out after {LOCK_TIMEOUT} s waiting for a concurrent change of {lock}")
        try:
            yield conn
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            if name is not None:
                try:
                    # On the driver's cursor: through SQLAlchemy it would open a transaction that
                    # costs a COMMIT or ROLLBACK round trip more; a named lock is not transactional.
                    cursor = conn.connection.dbapi_connection.cursor()
                    cursor.execute("DO RELEASE_LOCK(%s)", (name,))
                    cursor.close()
                except Exception:
                    # Never hand a session that may still hold the lock back to the pool: closing
                    # it makes the server drop the lock. Keeps the original error, if any.
                    conn.invalidate()


# --- validation helpers ---------------------------------------------------------------------------

def _reject_unknown(doc: Mapping[str, Any], allowed: frozenset[str], prefix: str = "") -> None:
    for key in doc:
        if key not in allowed:
            raise InvalidInput(f"unknown field {prefix}{key!r}", field=f"{prefix}{key}")


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{what} must be a JSON object", field=what)
    return value


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
        _reject_unknown(_object(res, where), RESOURCE_KEYS, f"{where}.")
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
    for key, value in _object(meta, "metaData").items():
        if not isinstance(value, str):
            raise InvalidInput(f"metaData.{key} must be a string", field=f"metaData.{key}")


def _parse_tags(tags: Any, allowed: frozenset[str], what: str = "tags") -> list[tuple[str, str, str]]:
    """(type, name, scope) of each tag object; scope defaults to ``global``."""
    if tags is None:
        return []
    if not isinstance(tags, list):
        raise InvalidInput(f"{what} must be a list of tag objects", field=what)
    out = []
    for i, tag in enumerate(tags):
        where = f"{what}[{i}]"
        _reject_unknown(_object(tag, where), allowed, f"{where}.")
        ttype, tname, scope = tag.get("type"), tag.get("name"), tag.get("scope") or "global"
        for key, value in (("type", ttype), ("name", tname), ("scope", scope)):
            if not isinstance(value, str) or not value:
                raise InvalidInput(f"{where}.{key} must be a non-empty string", field=f"{where}.{key}")
            check_tag_text(key, value, f"{where}.{key}")
        out.append((ttype, tname, scope))
    return out


# --- tag helpers ----------------------------------------------------------------------------------

def _tag_by_name(conn: Connection, ttype: str, tname: str) -> tuple[int, str] | None:
    row = conn.execute(select(T.id, T.tag_scope).where(and_(T.tag_type == ttype, T.tag_name == tname))).first()
    return (int(row[0]), row[1]) if row is not None else None


def _attach_tags(conn: Connection, db_id: int, tags: list[tuple[str, str, str]], viewer: Viewer | None) -> None:
    """Create (if missing) and attach each tag after checking the viewer may write its scope."""
    for ttype, tname, scope in tags:
        _require_tag_write(viewer, ttype, tname, scope)
        found = _tag_by_name(conn, ttype, tname)
        if found is None:
            tag_id = int(conn.execute(insert(tag_table).values(tag_type=ttype, tag_name=tname, tag_scope=scope))
                         .inserted_primary_key[0])
        elif found[1] != scope:
            raise Conflict(f"tag {ttype}:{tname} already exists with scope {found[1]!r}, not {scope!r}",
                           field="scope")
        else:
            tag_id = found[0]
        attach_tag(conn, db_id, tag_id)


def _sync_archive_meta(conn: Connection, archive: Any, job: Mapping[str, Any], *, tags: bool = False,
                       meta_data: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """Rewrite meta.json of a non-running, archived job (upstream UpdateTags / UpdateMetadata).

    Returns the document as it was before (None when nothing was written), for undoing the rewrite.
    """
    if archive is None or job["jobState"] == "running":
        return None
    key = (job["cluster"], job["jobId"], job["startTime"])
    if not archive.exists(*key):
        return None
    meta = archive.load_meta(*key)
    original = dict(meta)  # shallow is enough: "tags" and "metaData" are replaced below, not changed in place
    if tags:
        meta["tags"] = [{"id": t["id"], "type": t["type"], "name": t["name"], "scope": t["scope"]}
                        for t in tags_for_jobs(conn, [job["id"]], None)[job["id"]]]
    if meta_data is not None:
        merged = dict(meta.get("metaData") or {})
        merged.update(meta_data)
        meta["metaData"] = merged
    archive.store_meta(meta)
    return original


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
    one serialised transaction (``_write_transaction``), so of concurrent identical starts exactly
    one succeeds. ``now`` is accepted for the callers' convenience and not used.
    """
    del now
    _reject_unknown(_object(payload, "body"), JOB_KEYS)
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
    tags = _parse_tags(job.get("tags"), JOB_TAG_KEYS)
    row = job_to_row(job)

    start = row["start_time"]
    with _write_transaction(engine, lock=f"start_job {row['cluster']} {row['job_id']}") as conn:
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
            _attach_tags(conn, db_id, tags, viewer)
            # Not limited by the viewer: the caller just created this job and named its tags.
            return get_job(conn, db_id)
    # the common case, built outside the writer lock: no second round trip for the job just written
    return row_to_job({**row, "id": db_id}, [])


def _stop_request(payload: Mapping[str, Any], *,
                  need_job_id: bool) -> tuple[int | None, str | None, int | None, str, int]:
    _reject_unknown(_object(payload, "body"), STOP_KEYS)
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
    with _write_transaction(engine) as conn:
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


# --- tags -----------------------------------------------------------------------------------------

def _locked_job(conn: Connection, db_id: int, viewer: Viewer | None) -> dict[str, Any]:
    """The job, visible to the viewer, with its row locked on MySQL (SQLite holds the write lock)."""
    stmt = select(J.id).where(J.id == db_id)
    scope = scope_condition(viewer)
    if scope is not None:
        stmt = stmt.where(scope)
    if not is_sqlite(conn):
        stmt = stmt.with_for_update()
    if conn.execute(stmt).first() is None:
        raise NotFound(f"no job with id {db_id}", field="id")
    return get_job(conn, db_id, viewer=viewer)


def tag_job(engine: Engine, archive: Any, db_id: int, tags: Any, *, viewer: Viewer | None) -> dict[str, Any]:
    """Attach tags ``[{type, name, scope="global"}]`` to a job, creating missing ones; returns the job JSON.

    The viewer must be allowed to write each scope (else Forbidden). For a job that is not running
    and has a meta.json in ``archive`` (may be None), meta.json's tags are rewritten too.
    """
    parsed = _parse_tags(tags, API_TAG_KEYS)
    with _write_transaction(engine) as conn:
        _locked_job(conn, db_id, viewer)
        _attach_tags(conn, db_id, parsed, viewer)
        job = get_job(conn, db_id, viewer=viewer)
        _sync_archive_meta(conn, archive, job, tags=True)
        return job


def _shared_tag_id(conn: Connection, ttype: str, tname: str, scope: str) -> int | None:
    """Id of the global or admin tag (type, name, scope), or None."""
    return conn.execute(select(T.id).where(
        and_(T.tag_type == ttype, T.tag_name == tname, T.tag_scope == scope))).scalar()


def _require_tag_write(viewer: Viewer | None, ttype: str, tname: str, scope: str) -> None:
    if not can_write_tag_scope(viewer, scope):
        raise Forbidden(f"tag {ttype}:{tname}: cannot write tag scope {scope!r} with current authorization",
                        field="scope")


def remove_job_tags(engine: Engine, archive: Any, db_id: int, tags: Any, *, viewer: Viewer | None) -> dict[str, Any]:
    """Detach tags from a job; returns the job JSON with the remaining tags.

    As upstream only ``global`` and ``admin`` scopes are processed, private ones are skipped. A tag
    (type, name, scope) that does not exist is NotFound (upstream: 500); one that exists but is not
    attached is no error. meta.json of an archived, non-running job is rewritten.
    """
    parsed = _parse_tags(tags, API_TAG_KEYS)
    with _write_transaction(engine) as conn:
        _locked_job(conn, db_id, viewer)
        for ttype, tname, scope in parsed:
            if scope not in ("global", "admin"):
                continue
            tag_id = _shared_tag_id(conn, ttype, tname, scope)
            if tag_id is None:
                raise NotFound(f"tag {ttype}:{tname} with scope {scope} does not exist", field="tags")
            _require_tag_write(viewer, ttype, tname, scope)
            conn.execute(delete(jobtag_table).where(
                and_(jobtag_table.c.job_id == db_id, jobtag_table.c.tag_id == tag_id)))
        job = get_job(conn, db_id, viewer=viewer)
        _sync_archive_meta(conn, archive, job, tags=True)
        return job


def delete_tags(engine: Engine, tags: Any, *, viewer: Viewer | None) -> tuple[int, int]:
    """Delete tags (and their job links) from the database; returns (deleted, requested).

    Only ``global``/``admin`` tags are processed; private and unknown tags are skipped and not counted.
    Archived meta.json files keep the tag (as upstream).
    """
    parsed = _parse_tags(tags, API_TAG_KEYS)
    deleted = 0
    with _write_transaction(engine) as conn:
        for ttype, tname, scope in parsed:
            if scope not in ("global", "admin"):
                continue
            tag_id = _shared_tag_id(conn, ttype, tname, scope)
            if tag_id is None:
                continue
            _require_tag_write(viewer, ttype, tname, scope)
            conn.execute(delete(jobtag_table).where(jobtag_table.c.tag_id == tag_id))
            conn.execute(delete(tag_table).where(T.id == tag_id))
            deleted += 1
    return deleted, len(parsed)


# --- tags by id (the web UI's GraphQL mutations) --------------------------------------------------


class _MetaRewrites:
    """The meta.json files a transaction rewrote, put back if the transaction does not commit.

    The archive is no part of the database transaction: without this, a mutation failing after a
    rewrite (a later meta.json unwritable, the commit refused) would leave those files changed.
    """

    def __init__(self, archive: Any) -> None:
        self.archive = archive
        self.originals: list[dict[str, Any]] = []

    def sync_tags(self, conn: Connection, job: Mapping[str, Any]) -> None:
        """Rewrite meta.json's tags of a non-running archived job to what the transaction holds (all scopes)."""
        original = _sync_archive_meta(conn, self.archive, job, tags=True)
        if original is not None:
            self.originals.append(original)

    def restore(self) -> None:
        for meta in reversed(self.originals):
            try:
                self.archive.store_meta(meta)
            except Exception:  # keep the error that made us restore; this one goes to the log
                log.exception("could not restore meta.json of job %s on %s", meta.get("jobId"), meta.get("cluster"))


@contextmanager
def _tag_transaction(engine: Engine, archive: Any) -> Iterator[tuple[Connection, _MetaRewrites]]:
    """A write transaction whose meta.json rewrites are undone when it fails or does not commit."""
    rewrites = _MetaRewrites(archive)
    try:
        with _write_transaction(engine) as conn:
            yield conn, rewrites
    except BaseException:
        rewrites.restore()
        raise


def _tag_text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{field} must be a non-empty string", field=field)
    return check_tag_text(field, value, field)


def create_tag(engine: Engine, tag_type: Any, tag_name: Any, scope: Any, *, viewer: Viewer | None) -> dict[str, Any]:
    """Create the tag (type, name, scope), or return the identical existing one: ``{id, type, name, scope}``.

    Scopes follow security.may_assign_tag_scope (else Forbidden). The table holds one tag per (type,
    name), so one that exists with another scope is a Conflict.
    """
    tag_type, tag_name, scope = _tag_text(tag_type, "type"), _tag_text(tag_name, "name"), _tag_text(scope, "scope")
    if not may_assign_tag_scope(viewer, scope):
        raise Forbidden(f"scope: not allowed to create tags with scope {scope!r}", field="scope")
    # The named lock (MySQL) makes concurrent creators of one tag wait instead of failing on UNIQUE.
    with _write_transaction(engine, lock=f"tag\x00{tag_type}\x00{tag_name}") as conn:
        row = conn.execute(select(T.id, T.tag_type, T.tag_name, T.tag_scope)
                           .where(and_(T.tag_type == tag_type, T.tag_name == tag_name))).first()
        if row is None:
            result = conn.execute(insert(tag_table).values(tag_type=tag_type, tag_name=tag_name, tag_scope=scope))
            return {"id": int(result.inserted_primary_key[0]), "type": tag_type, "name": tag_name, "scope": scope}
        existing = tag_dict(row)
        if existing["scope"] != scope:
            readable = readable_tag_scopes(viewer)
            # Another user's private scope is their username: not named to someone who cannot read it.
            other = repr(existing["scope"]) if readable is None or existing["scope"] in readable else "another scope"
            raise Conflict(f"scope: tag {tag_type}:{tag_name} already exists with scope {other}", field="scope")
        return existing


def _visible_job_for_update(conn: Connection, db_id: int, viewer: Viewer | None) -> dict[str, Any]:
    try:
        return _locked_job(conn, db_id, viewer)
    except NotFound:
        raise NotFound(f"job: no job with id {db_id}", field="job") from None


def _require_assignable(viewer: Viewer | None, tags: list[dict[str, Any]], action: str) -> None:
    for tag in tags:
        if not may_assign_tag_scope(viewer, tag["scope"]):
            raise Forbidden(f"tagIds: not allowed to {action} tag {tag['id']} ({tag['type']}:{tag['name']}, "
                            f"scope {tag['scope']!r})", field="tagIds")


def add_tags_to_job(engine: Engine, archive: Any, db_id: int, tag_ids: list[int], *,
                    viewer: Viewer | None) -> list[dict[str, Any]]:
    """Attach existing tags by id to a job; returns the job's tags the viewer may read, after the change.

    The job must be visible to the viewer (else NotFound naming ``job``), each tag readable (else
    NotFound naming ``tagIds``) and of a scope the viewer may assign (else Forbidden). All or nothing;
    meta.json of an archived, non-running job gets the job's tags, as tag_job writes them.
    """
    with _tag_transaction(engine, archive) as (conn, rewrites):
        _visible_job_for_update(conn, db_id, viewer)
        tags = readable_tags_by_id(conn, tag_ids, viewer, lock="share")  # not deleted under us (MySQL)
        _require_assignable(viewer, tags, "add")
        for tag in tags:
            attach_tag(conn, db_id, tag["id"])
        job = get_job(conn, db_id, viewer=viewer)
        rewrites.sync_tags(conn, job)
        return job["tags"]


def remove_tags_from_job(engine: Engine, archive: Any, db_id: int, tag_ids: list[int], *,
                         viewer: Viewer | None) -> list[dict[str, Any]]:
    """Detach tags by id from a job; returns the job's remaining tags the viewer may read.

    Same rules as add_tags_to_job; a tag that is not attached is no error. meta.json is rewritten.
    """
    with _tag_transaction(engine, archive) as (conn, rewrites):
        _visible_job_for_update(conn, db_id, viewer)
        tags = readable_tags_by_id(conn, tag_ids, viewer)
        _require_assignable(viewer, tags, "remove")
        if tags:
            conn.execute(delete(jobtag_table).where(and_(
                jobtag_table.c.job_id == db_id, jobtag_table.c.tag_id.in_([t["id"] for t in tags]))))
        job = get_job(conn, db_id, viewer=viewer)
        rewrites.sync_tags(conn, job)
        return job["tags"]


def delete_tags_by_id(engine: Engine, archive: Any, tag_ids: list[int], *, viewer: Viewer | None,
                      field: str = "tagIds") -> list[int]:
    """Delete tags by id with their job links and drop them from archived jobs' meta.json; returns the ids.

    Each tag must be readable (else NotFound naming ``field``) and deletable by the viewer
    (security.may_delete_tag_scope, else Forbidden). All or nothing. Unlike delete_tags (REST, as
    upstream) the archive follows, so a later init-db does not bring the tag back.
    """
    with _tag_transaction(engine, archive) as (conn, rewrites):
        tags = readable_tags_by_id(conn, tag_ids, viewer, field=field, lock="update")
        for tag in tags:
            if not may_delete_tag_scope(viewer, tag["scope"]):
                raise Forbidden(f"{field}: not allowed to delete tag {tag['id']} ({tag['type']}:{tag['name']}, "
                                f"scope {tag['scope']!r})", field=field)
        ids = [tag["id"] for tag in tags]
        if not ids:
            return []
        # Running jobs have no meta.json yet; they are archived with the tags the database has then.
        archived = conn.execute(
            select(J.id, J.cluster, J.job_id, J.start_time, J.job_state).distinct()
            .join(jobtag_table, jobtag_table.c.job_id == J.id)
            .where(jobtag_table.c.tag_id.in_(ids), J.job_state != "running")
        ).all()
        conn.execute(delete(jobtag_table).where(jobtag_table.c.tag_id.in_(ids)))
        conn.execute(delete(tag_table).where(T.id.in_(ids)))
        for job_id, cluster, batch_id, start_time, state in archived:
            rewrites.sync_tags(conn, {"id": job_id, "cluster": cluster, "jobId": batch_id,
                                      "startTime": start_time, "jobState": state})
        return ids


# --- metadata -------------------------------------------------------------------------------------

def _edit_meta(engine: Engine, archive: Any, db_id: int, key: Any, value: Any, viewer: Viewer | None) -> dict[str, Any]:
    if not isinstance(key, str) or not key:
        raise InvalidInput("'key' must be a non-empty string", field="key")
    if not isinstance(value, str):
        raise InvalidInput("'value' must be a string", field="value")
    with _write_transaction(engine) as conn:
        job = _locked_job(conn, db_id, viewer)
        meta = dict(job["metaData"] or {})
        meta[key] = value
        document = check_text(J.meta_data, orjson.dumps(meta).decode(), "value")
        conn.execute(update(job_table).where(J.id == db_id).values(meta_data=document))
        job["metaData"] = meta
        _sync_archive_meta(conn, archive, job, meta_data={key: value})
        return job


def edit_meta(engine: Engine, archive: Any, db_id: int, key: Any, value: Any, *,
              viewer: Viewer | None = None) -> dict[str, Any]:
    """Set one metaData key of a job (DB and, for non-running archived jobs, meta.json); returns the job JSON.

    Unknown or invisible job -> NotFound; key/value not strings -> InvalidInput.
    """
    return _edit_meta(engine, archive, db_id, key, value, viewer)


def edit_meta_by_job(engine: Engine, archive: Any, job_id: Any, cluster: str | None, start_time: int | None,
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
    "delete_job", "delete_job_by_key", "delete_jobs_before", "delete_tags", "edit_meta",
    "edit_meta_by_job", "remove_job_tags", "start_job", "stop_job", "stop_job_by_id", "tag_job", "used_nodes",
]
