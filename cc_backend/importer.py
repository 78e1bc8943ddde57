"""init-db (rebuild the job tables from the archive) and import (add archived jobs), sharing one enrichment."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import IntegrityError

from cc_backend.archive.cluster import ClusterRegistry
from cc_backend.db.engine import inserted_id, is_sqlite
from cc_backend.db.tables import job_table, jobtag_table, tag_table
from cc_backend.errors import CCError, Conflict, InvalidInput
from cc_backend.jobs.footprint import compute_energy, compute_footprint, statistics_from_data
from cc_backend.jobs.model import MONITORING_ARCHIVED, job_to_row
from cc_backend.jobs.tags import check_tag_text

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from cc_backend.archive.fs import FileArchive

log = logging.getLogger(__name__)

BATCH_SIZE = 5000
BULK_MMAP_BYTES = 1 << 30
ROW_COLUMNS = tuple(c.name for c in job_table.columns)  # id first
META_KEYS = frozenset({
    "id", "jobId", "user", "project", "cluster", "subCluster", "partition", "arrayJobId", "numNodes",
    "numHwthreads", "numAcc", "shared", "monitoringStatus", "smt", "walltime", "jobState", "startTime",
    "submitTime", "requestedMemory", "duration", "resources", "metaData", "tags", "energy", "energyFootprint",
    "footprint", "concurrentJobs", "statistics", "exclusive", "stopTime",
})


@dataclass
class LoadSummary:
    """What an init-db or import run did."""

    jobs: int = 0
    tags: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    #: Jobs loaded without a part that the database cannot hold (a tag too long): (path, what was left out).
    notes: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds if self.seconds > 0 else 0.0


def enrich(job: dict[str, Any], registry: ClusterRegistry) -> dict[str, Any]:
    """Fill subcluster, footprint, energy footprint and energy from the job's statistics.

    As upstream's archiver (``internal/archiver``) and importer (``internal/importer``) do.
    """
    resources = job.get("resources") or []
    if not job.get("subCluster") and (not resources or not isinstance(resources[0], Mapping)):
        raise InvalidInput("missing required field 'resources'", field="resources")
    host = resources[0].get("hostname") if resources and isinstance(resources[0], Mapping) else None
    sub = registry.job_subcluster(job.get("cluster"), job.get("subCluster"), host)
    job["subCluster"] = sub.name
    job["footprint"] = compute_footprint(job, sub)
    job["energyFootprint"], job["energy"] = compute_energy(job, sub)
    return job


def _row_from_meta(job: dict[str, Any], registry: ClusterRegistry) -> dict[str, Any]:
    job.setdefault("monitoringStatus", MONITORING_ARCHIVED)
    if "exclusive" in job and "shared" not in job:
        raise InvalidInput("meta.json is archive version 2 ('exclusive'); migrate the archive to version 3",
                           field="exclusive")
    enrich(job, registry)
    return job_to_row(job)


# --- parallel parsing -----------------------------------------------------------------------------

_worker_registry: ClusterRegistry | None = None


def _init_worker(registry: ClusterRegistry) -> None:
    global _worker_registry
    _worker_registry = registry


_Parsed = tuple[list[tuple], list[tuple[int, str, str, str]], list[tuple[str, str]], list[tuple[str, str]]]


def _archived_tags(path: str, tags: Any, notes: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """(type, name, scope) of a meta.json's tags; one the tag table cannot hold is left out and noted."""
    out = []
    for i, tag in enumerate(tags if isinstance(tags, list) else ()):
        if not isinstance(tag, Mapping) or not tag.get("type") or not tag.get("name"):
            continue
        ttype, tname, scope = str(tag["type"]), str(tag["name"]), str(tag.get("scope") or "global")
        try:
            for key, value in (("type", ttype), ("name", tname), ("scope", scope)):
                check_tag_text(key, value, f"tags[{i}].{key}")
        except InvalidInput as exc:
            notes.append((path, f"loaded without tag {i}: {exc.message}"))
            continue
        out.append((ttype, tname, scope))
    return out


def _parse_chunk(paths: Sequence[str]) -> _Parsed:
    """Parse meta.json files into row tuples (without id), tag tuples (row index, type, name, scope), errors
    (files skipped) and notes (parts of loaded jobs left out)."""
    registry = _worker_registry
    assert registry is not None
    rows: list[tuple] = []
    tags: list[tuple[int, str, str, str]] = []
    errors: list[tuple[str, str]] = []
    notes: list[tuple[str, str]] = []
    loads = orjson.loads
    columns = ROW_COLUMNS[1:]
    for path in paths:
        try:
            with open(path, "rb") as fh:
                job = loads(fh.read())
            if not isinstance(job, dict):
                raise InvalidInput("meta.json is not a JSON object")
            row = _row_from_meta(job, registry)
        except FileNotFoundError:
            errors.append((path, "meta.json is missing"))
            continue
        except orjson.JSONDecodeError as exc:
            errors.append((path, f"invalid JSON: {exc}"))
            continue
        except (CCError, TypeError, ValueError, KeyError, AttributeError) as exc:
            errors.append((path, str(exc)))
            continue
        tags.extend((len(rows), *tag) for tag in _archived_tags(path, job.get("tags"), notes))
        rows.append(tuple(row[c] for c in columns))
    return rows, tags, errors, notes


def _parse_subtree(top: str) -> _Parsed:
    """Walk one ``<cluster>/<jobId//1000>`` directory and parse the meta.json files below it."""
    from cc_backend.archive.fs import iter_meta_paths_below

    return _parse_chunk(list(iter_meta_paths_below(top, depth=2)))


def _subtrees(root: str) -> list[str]:
    """The ``<cluster>/<jobId//1000>`` directories: units of work small enough to balance, big enough to batch."""
    from cc_backend.archive.fs import subdirectories

    return [f"{root}/{c}/{a}" for c in subdirectories(root) for a in subdirectories(f"{root}/{c}")]


def _parallel_parse(root: str, registry: ClusterRegistry, workers: int) -> Iterable[tuple]:
    # Workers walk as well as parse: listing 100,000 job directories costs as much as parsing a third of them.
    tops = _subtrees(root)
    if workers <= 1 or len(tops) <= 1:
        _init_worker(registry)
        yield from map(_parse_subtree, tops)
        return
    import multiprocessing

    ctx = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(registry,)) as pool:
        yield from pool.imap_unordered(_parse_subtree, tops)


# --- bulk loading ---------------------------------------------------------------------------------

def _drop_job_indexes(conn: Connection) -> list:
    dropped = list(job_table.indexes)
    for index in dropped:
        index.drop(conn, checkfirst=True)
    return dropped


def _leave_wal(engine: Engine) -> bool:
    """Use a rollback journal for the rebuild if nobody else has the database open.

    In WAL mode every page of the rebuilt table and its 54 indexes is written twice (WAL, then
    checkpoint); a rollback journal only keeps the few original pages. Returns whether it switched.
    """
    with engine.connect() as conn:
        busy_timeout = conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one()
        conn.exec_driver_sql("PRAGMA busy_timeout=0")
        try:
            mode = conn.exec_driver_sql("PRAGMA journal_mode=DELETE").scalar()
        except Exception:  # another process holds the database: stay in WAL mode
            mode = "wal"
        finally:
            conn.exec_driver_sql(f"PRAGMA busy_timeout={int(busy_timeout)}")
    return str(mode).lower() == "delete"


def init_db(
    engine: Engine,
    archive: FileArchive,
    *,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> LoadSummary:
    """Flush job, tag and jobtag and rebuild them from every meta.json of the archive.

    Unlike upstream, tag scopes from meta.json are kept. Broken meta.json files are reported and skipped.
    """
    started = time.perf_counter()
    registry = archive.registry()
    workers = workers or min(os.cpu_count() or 1, 4)
    summary = LoadSummary()
    seen: set[tuple[int, str, int]] = set()
    tag_ids: dict[tuple[str, str], int] = {}
    jobtags: list[dict] = []
    new_tags: list[dict] = []
    key_idx = (ROW_COLUMNS.index("job_id") - 1, ROW_COLUMNS.index("cluster") - 1, ROW_COLUMNS.index("start_time") - 1)
    next_id = 1

    rollback_journal = is_sqlite(engine) and _leave_wal(engine)
    with engine.begin() as conn:
        conn.execute(delete(jobtag_table))
        conn.execute(delete(tag_table))
        conn.execute(delete(job_table))
        dropped = _drop_job_indexes(conn)
        raw = conn.connection.dbapi_connection
        assert raw is not None  # the connection was just used, so it is not invalidated
        cursor = raw.cursor()
        if is_sqlite(engine):
            # Rebuilding 54 indexes dominates init-db; memory-mapped reads make each index build
            # about a third faster (bench/init_db.py); the page cache is main.db-config's.
            cursor.execute(f"PRAGMA mmap_size={BULK_MMAP_BYTES}")
            cursor.execute("PRAGMA threads=2")
        placeholder = "?" if is_sqlite(engine) else "%s"
        insert_sql = (f"INSERT INTO job ({', '.join(ROW_COLUMNS)}) VALUES "
                      f"({', '.join([placeholder] * len(ROW_COLUMNS))})")
        pending: list[tuple] = []
        insert_seconds = 0.0
        for rows, tags, errors, notes in _parallel_parse(os.fspath(archive.root), registry, workers):
            summary.skipped.extend(errors)
            summary.notes.extend(notes)
            index_map: dict[int, int] = {}
            for i, row in enumerate(rows):
                key = (row[key_idx[0]], row[key_idx[1]], row[key_idx[2]])
                if key in seen:
                    summary.skipped.append((f"{key[1]}/{key[0]}/{key[2]}", "duplicate job (jobId, cluster, startTime)"))
                    continue
                seen.add(key)
                index_map[i] = next_id
                pending.append((next_id, *row))
                next_id += 1
            for row_index, ttype, tname, tscope in tags:
                if row_index not in index_map:
                    continue
                tag_id = tag_ids.get((ttype, tname))
                if tag_id is None:
                    tag_id = tag_ids[(ttype, tname)] = len(tag_ids) + 1
                    new_tags.append({"id": tag_id, "tag_type": ttype, "tag_name": tname, "tag_scope": tscope})
                jobtags.append({"job_id": index_map[row_index], "tag_id": tag_id})
            if len(pending) >= BATCH_SIZE:
                t = time.perf_counter()
                cursor.executemany(insert_sql, pending)
                insert_seconds += time.perf_counter() - t
                pending.clear()
            if progress is not None:
                progress(len(rows) + len(errors))
        if pending:
            cursor.executemany(insert_sql, pending)
        cursor.close()
        merged = _insert_tags(conn, new_tags, summary.notes) if new_tags else {}
        if merged:
            jobtags = [{"job_id": jt["job_id"], "tag_id": merged.get(jt["tag_id"], jt["tag_id"])} for jt in jobtags]
        if jobtags:
            conn.execute(insert(jobtag_table), _unique(jobtags))
        loaded_at = time.perf_counter()
        for index in dropped:
            index.create(conn)
        log.info("init-db: rows loaded in %.2f s (%.2f s of it inserting), %d indexes rebuilt in %.2f s",
                 loaded_at - started, insert_seconds, len(dropped), time.perf_counter() - loaded_at)
        if is_sqlite(engine):
            conn.exec_driver_sql("PRAGMA mmap_size=0")
    if rollback_journal:
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    summary.jobs = next_id - 1
    summary.tags = len(tag_ids) - len(merged)
    summary.seconds = time.perf_counter() - started
    for path, reason in summary.skipped:
        log.warning("skipped %s: %s", path, reason)
    for path, what in summary.notes:
        log.warning("%s: %s", path, what)
    return summary


def _insert_tags(conn: Connection, new_tags: list[dict], notes: list[tuple[str, str]]) -> dict[int, int]:
    """Insert the tags; returns {tag id: id of the tag kept} for tags the database holds as one.

    Tags are told apart exactly here, but a case-insensitive MariaDB collation (utf8mb4_unicode_ci,
    as installation.md creates the database) compares "Gromacs" and "gromacs " equal, and the
    UNIQUE(tag_type, tag_name) index would abort the whole load. Those are merged into the first
    one and reported. SQLite compares exactly (BINARY): one bulk insert.
    """
    if is_sqlite(conn):
        conn.execute(insert(tag_table), new_tags)
        return {}
    try:
        with conn.begin_nested():
            conn.execute(insert(tag_table), new_tags)
        return {}
    except IntegrityError:
        pass
    merged: dict[int, int] = {}
    for tag in new_tags:
        try:
            with conn.begin_nested():
                conn.execute(insert(tag_table).values(**tag))
        except IntegrityError:
            kept = conn.execute(select(tag_table.c.id, tag_table.c.tag_name).where(
                tag_table.c.tag_type == tag["tag_type"], tag_table.c.tag_name == tag["tag_name"])).one()
            merged[tag["id"]] = kept[0]
            notes.append((f"tag {tag['tag_type']}:{tag['tag_name']!r}",
                          f"merged into {tag['tag_type']}:{kept[1]!r}, which the database's collation compares equal"))
    return merged


def _unique(jobtags: list[dict]) -> list[dict]:
    seen: set[tuple[int, int]] = set()
    out = []
    for jt in jobtags:
        key = (jt["job_id"], jt["tag_id"])
        if key not in seen:
            seen.add(key)
            out.append(jt)
    return out


# --- import ---------------------------------------------------------------------------------------

def parse_import_spec(spec: str) -> list[tuple[str, str]]:
    """``meta.json:data.json[,meta:data...]`` as upstream's -import-job takes it."""
    pairs = []
    for item in spec.split(","):
        meta, sep, data = item.partition(":")
        if not sep or not meta or not data:
            raise InvalidInput(f"{item!r}: expected META.json:DATA.json", field="import-job")
        pairs.append((meta, data))
    return pairs


def _read_json_file(path: str, what: str) -> Any:
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise InvalidInput(f"{what} {path}: {exc.strerror}", field=what) from None
    if path.endswith(".gz"):
        import gzip

        raw = gzip.decompress(raw)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"{what} {path}: invalid JSON: {exc}", field=what) from None


def import_job(engine: Engine, archive: FileArchive, meta: dict[str, Any], data: dict[str, Any], *,
               validate: bool = False, source: str = "meta.json") -> dict[str, Any]:
    """Archive one finished job (meta.json + data.json) and insert it with its tags; returns the job row."""
    unknown = sorted(set(meta) - META_KEYS)
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r}", field=unknown[0])
    if "exclusive" in meta:
        raise InvalidInput("'exclusive' is archive version 2; version 3 uses 'shared' (none, single_user, "
                           "multi_user)", field="exclusive")
    if validate:
        from cc_backend.archive.validate import validate_data, validate_meta

        validate_meta(meta)
        validate_data(data)
    registry = archive.registry()
    meta = dict(meta)
    meta.setdefault("shared", "none")
    meta["monitoringStatus"] = MONITORING_ARCHIVED
    num_nodes = meta.get("numNodes")
    resources = meta.get("resources")
    if isinstance(resources, list) and isinstance(num_nodes, int) and num_nodes != len(resources):
        raise InvalidInput(f"numNodes {num_nodes} does not match the {len(resources)} resources", field="numNodes")
    enrich(meta, registry)
    if not meta.get("statistics"):
        sub = registry.subcluster(meta["cluster"], meta["subCluster"])
        meta["statistics"] = statistics_from_data(data, int(meta.get("numNodes") or len(resources or [])),
                                                  sub.metrics)
        enrich(meta, registry)
    row = job_to_row(meta)
    tags = meta.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(tag, Mapping) for tag in tags):
        raise InvalidInput("tags must be a list of tag objects", field="tags")
    with engine.begin() as conn:
        exists = conn.execute(
            select(job_table.c.id).where(job_table.c.job_id == row["job_id"], job_table.c.cluster == row["cluster"],
                                         job_table.c.start_time == row["start_time"])
        ).first()
        if exists is not None:
            raise Conflict(f"job {row['job_id']} on {row['cluster']} started at {row['start_time']} "
                           f"is already in the database (id {exists[0]})", field="jobId")
        db_id = inserted_id(conn.execute(insert(job_table).values(**row)))
        from cc_backend.jobs.tags import attach_tag, ensure_tag

        for i, tag in enumerate(tags):
            attach_tag(conn, db_id, ensure_tag(conn, tag.get("type", ""), tag.get("name", ""),
                                               tag.get("scope") or "global", field=f"tags[{i}]"))
        # Files last: if writing them fails, the transaction rolls the rows back and nothing is left behind.
        archive.import_job(meta, data)
    row["id"] = db_id
    return row


def import_files(engine: Engine, archive: FileArchive, pairs: Sequence[tuple[str, str]], *, validate: bool = False) -> LoadSummary:
    """Import several meta/data file pairs; stops at the first error, naming the file (earlier ones stay)."""
    started = time.perf_counter()
    summary = LoadSummary()
    for meta_path, data_path in pairs:
        meta = _read_json_file(meta_path, "meta")
        data = _read_json_file(data_path, "data")
        if not isinstance(meta, dict):
            raise InvalidInput(f"{meta_path}: not a JSON object", field="meta")
        try:
            import_job(engine, archive, meta, data, validate=validate, source=meta_path)
        except CCError as exc:
            raise type(exc)(f"{meta_path}: {exc.message}", field=exc.field) from None
        summary.jobs += 1
    summary.seconds = time.perf_counter() - started
    return summary
