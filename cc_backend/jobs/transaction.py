"""Write transactions of jobs and tags: serialised writers (SQLite group commit, MySQL named locks), a visible job locked for a change, and meta.json kept in step with the database."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, text
from sqlalchemy.engine import Connection, Engine

from cc_backend.auth.security import Viewer
from cc_backend.db.engine import is_sqlite
from cc_backend.db.tables import job_table
from cc_backend.errors import Conflict, NotFound
from cc_backend.jobs.query import get_job, scope_condition, tags_for_jobs

if TYPE_CHECKING:
    from cc_backend.archive.fs import FileArchive

log = logging.getLogger(__name__)

J = job_table.c

#: Seconds a MySQL writer waits for the named lock of its change (e.g. start_job's (cluster, jobId)).
LOCK_TIMEOUT = 60


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


def group_commit(engine: Engine) -> _GroupCommit:
    """One group-commit writer per SQLite database file, shared by every engine of this process on it."""
    key = str(engine.url)
    with _group_commits_guard:
        return _group_commits.setdefault(key, _GroupCommit())


@contextmanager
def write_transaction(engine: Engine, lock: str | None = None) -> Iterator[Connection]:
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
        with group_commit(engine).write(engine) as conn:
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
                    raw = conn.connection.dbapi_connection
                    assert raw is not None  # not invalidated: the failure handling below covers that too
                    cursor = raw.cursor()
                    cursor.execute("DO RELEASE_LOCK(%s)", (name,))
                    cursor.close()
                except Exception:
                    # Never hand a session that may still hold the lock back to the pool: closing
                    # it makes the server drop the lock. Keeps the original error, if any.
                    conn.invalidate()


def locked_job(conn: Connection, db_id: int, viewer: Viewer | None) -> dict[str, Any]:
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


def sync_archive_meta(conn: Connection, archive: FileArchive, job: Mapping[str, Any], *, tags: bool = False,
                       meta_data: Mapping[str, str] | None = None,
                       job_tags: list[dict[str, Any]] | None = None) -> dict[str, Any] | None:
    """Rewrite meta.json of a non-running, archived job (upstream UpdateTags / UpdateMetadata).

    ``job_tags`` are the job's tags as the transaction holds them, when the caller read them already
    (batch writers); else they are read here. Returns the document as it was before (None when nothing
    was written), for undoing the rewrite.
    """
    if archive is None or job["jobState"] == "running":
        return None
    key = (job["cluster"], job["jobId"], job["startTime"])
    if not archive.exists(*key):
        return None
    meta = archive.load_meta(*key)
    original = dict(meta)  # shallow is enough: "tags" and "metaData" are replaced below, not changed in place
    if tags:
        if job_tags is None:
            job_tags = tags_for_jobs(conn, [job["id"]], None)[job["id"]]
        meta["tags"] = [{"id": t["id"], "type": t["type"], "name": t["name"], "scope": t["scope"]} for t in job_tags]
    if meta_data is not None:
        merged = dict(meta.get("metaData") or {})
        merged.update(meta_data)
        meta["metaData"] = merged
    archive.store_meta(meta)
    return original


class MetaRewrites:
    """The meta.json files a transaction rewrote, put back if the transaction does not commit.

    The archive is no part of the database transaction: without this, a mutation failing after a
    rewrite (a later meta.json unwritable, the commit refused) would leave those files changed.
    """

    def __init__(self, archive: FileArchive) -> None:
        self.archive = archive
        self.originals: list[dict[str, Any]] = []

    def sync_tags(self, conn: Connection, job: Mapping[str, Any]) -> None:
        """Rewrite meta.json's tags of a non-running archived job to what the transaction holds (all scopes)."""
        original = sync_archive_meta(conn, self.archive, job, tags=True)
        if original is not None:
            self.originals.append(original)

    def restore(self) -> None:
        for meta in reversed(self.originals):
            try:
                self.archive.store_meta(meta)
            except Exception:  # keep the error that made us restore; this one goes to the log
                log.exception("could not restore meta.json of job %s on %s", meta.get("jobId"), meta.get("cluster"))


@contextmanager
def rewriting_transaction(engine: Engine, archive: FileArchive) -> Iterator[tuple[Connection, MetaRewrites]]:
    """A write transaction whose meta.json rewrites are undone when it fails or does not commit."""
    rewrites = MetaRewrites(archive)
    try:
        with write_transaction(engine) as conn:
            yield conn, rewrites
    except BaseException:
        rewrites.restore()
        raise
