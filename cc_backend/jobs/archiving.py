"""Archiving of stopped jobs: their metric data into the job archive, statistics, footprint and energy into the database.

Upstream ``internal/archiver`` (reference §9 steps 4-5), built from its description:

1. The job is read again from the database (metadata and tags may have changed since the stop).
2. Metrics are every metric of the job's subcluster (those ``remove``d there are not in its list);
   scopes are ``node``, plus ``core`` for jobs of up to 8 nodes, plus ``accelerator`` when the job
   has accelerators. The data of ``[startTime, startTime + duration]`` comes from the metric
   repository at native resolution.
3. Statistics per metric with node scope: avg = round(sum of series avgs / numNodes, 2), min of the
   series mins, max of the series maxes, unit from the metric config
   (:func:`cc_backend.jobs.footprint.statistics_from_data`, shared with the importer).
4. meta.json and data.json[.gz] are written atomically (temp file + rename) by the archive's
   :meth:`~cc_backend.archive.fs.FileArchive.import_job`, which validates them against the archive
   schemas when the archive does so; data.json first, meta.json last.
5. One transaction sets ``footprint``, ``energy_footprint``, ``energy`` and ``monitoring_status = 3``.

Any failure sets ``monitoring_status = 2`` and logs the job, its cluster and why; nothing raises into
the caller. Differences from upstream, on purpose:

- A job for which the backend has no sample at all fails (status 2, "no metric data") instead of
  being archived with an empty data.json.
- Energy of ``energy``-type metrics (cumulative counters, e.g. in J or Wh): upstream stores 0 (not
  implemented). Here each node contributes its last minus its first sample, converted to kWh from
  the metric's unit; a unit that is not an energy unit contributes 0, as upstream. ``power`` metrics
  are upstream's rule (:func:`cc_backend.jobs.footprint.compute_energy`).

:class:`ArchiveQueue` is the server's archiver: a worker thread, a bounded queue fed by stop events,
the stopped jobs still at status 1 queued again at start, and a drain on shutdown.
"""

from __future__ import annotations

import collections
import logging
import math
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import select, update

from cc_backend.db.tables import job_table
from cc_backend.errors import CCError, Conflict, InvalidInput
from cc_backend.jobs.footprint import compute_energy, compute_footprint, go_round, statistics_from_data
from cc_backend.jobs.model import MONITORING_ARCHIVED

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from cc_backend.archive.cluster import MetricConfig, SubCluster
    from cc_backend.archive.fs import FileArchive
    from cc_backend.metrics.repository import JobData, MetricRepository
    from cc_backend.runtime import Runtime

__all__ = [
    "CORE_SCOPE_MAX_NODES",
    "MONITORING_DISABLED",
    "MONITORING_FAILED",
    "MONITORING_PENDING",
    "ArchiveQueue",
    "archive_job",
    "archive_scopes",
    "counter_energy_kwh",
    "job_statistics_from_stats",
]

log = logging.getLogger(__name__)

J = job_table.c

#: monitoringStatus values (upstream schema.MonitoringStatus*); 3 is MONITORING_ARCHIVED.
MONITORING_DISABLED = 0
MONITORING_PENDING = 1  # running, or stopped and waiting to be archived
MONITORING_FAILED = 2

#: Jobs of up to this many nodes are archived with core scope as well (upstream's rule).
CORE_SCOPE_MAX_NODES = 8

#: Joules per kWh, and the factors of the unit prefixes an energy counter may use.
_J_PER_KWH = 3.6e6
_PREFIX = {"": 1.0, "m": 1e-3, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def archive_scopes(job: Mapping[str, Any]) -> list[str]:
    """node, plus core for jobs of up to 8 nodes, plus accelerator when the job has accelerators."""
    scopes = ["node"]
    if int(job.get("numNodes") or 0) <= CORE_SCOPE_MAX_NODES:
        scopes.append("core")
    if int(job.get("numAcc") or 0) > 0:
        scopes.append("accelerator")
    return scopes


def _has_samples(data: Mapping[str, Any]) -> bool:
    for scopes in data.values():
        for entry in (scopes or {}).values():
            for series in entry.get("series") or ():
                if any(v is not None for v in series.get("data") or ()):
                    return True
    return False


def counter_energy_kwh(entry: Mapping[str, Any] | None, config: MetricConfig) -> float:
    """kWh of an ``energy``-type metric: per node series the last minus the first sample, summed.

    The unit decides the conversion (J or Wh with an optional prefix); any other unit gives 0 (upstream
    stores 0 for every energy-type metric). A counter that went backwards (reset) counts nothing.
    """
    base = config.unit.base
    factor = _PREFIX.get(config.unit.prefix)
    if factor is None or base not in ("J", "Wh") or not entry:
        return 0.0
    total = 0.0
    for series in entry.get("series") or ():
        samples = [v for v in series.get("data") or () if v is not None and math.isfinite(v)]
        if len(samples) >= 2 and samples[-1] > samples[0]:
            total += samples[-1] - samples[0]
    total *= factor
    return total / _J_PER_KWH if base == "J" else total / 1000.0


def _energy(job: Mapping[str, Any], subcluster: SubCluster, data: Mapping[str, Any]) -> tuple[dict[str, float], float]:
    per_metric, total = compute_energy(job, subcluster)
    counters = [name for name in subcluster.energy_footprint
                if (mc := subcluster.metric(name)) is not None and mc.energy == "energy"]
    if not counters:
        return per_metric, total
    for name in counters:
        mc = subcluster.metric(name)
        assert mc is not None
        per_metric[name] = go_round(counter_energy_kwh((data.get(name) or {}).get("node"), mc), 2)
    return per_metric, go_round(sum(per_metric.values()), 2)


def _finite_statistics(statistics: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    # JSON has no NaN and the footprint columns refuse it: a backend's NaN statistic becomes 0 as upstream's zero value.
    for stats in statistics.values():
        for key in ("min", "avg", "max"):
            value = stats.get(key)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                stats[key] = 0.0
    return statistics


def _json_map(value: Mapping[str, float]) -> str | None:
    return orjson.dumps(value).decode() if value else None


def _set_status(engine: Engine, db_id: int, status: int) -> None:
    from cc_backend.jobs.transaction import write_transaction

    with write_transaction(engine) as conn:
        conn.execute(update(job_table).where(J.id == db_id).values(monitoring_status=status))


def archive_job(engine: Engine, archive: FileArchive, repository: MetricRepository,
                job: Mapping[str, Any]) -> dict[str, Any]:
    """Archive one stopped job; returns what was done. Never raises: a failure sets monitoring status 2.

    The result: ``{"id", "jobId", "cluster", "ok", "monitoringStatus", "reason" (None when ok),
    "statistics" (count), "metrics" (names with node data), "files" (paths written), "footprint",
    "energyFootprint", "energy", "seconds"}``. A job that is still running is left alone (``ok`` False,
    status unchanged): it is archived when it stops.
    """
    started = time.perf_counter()
    db_id = job.get("id")
    result: dict[str, Any] = {
        "id": db_id, "jobId": job.get("jobId"), "cluster": job.get("cluster"), "ok": False,
        "monitoringStatus": job.get("monitoringStatus"), "reason": None, "statistics": 0, "metrics": [],
        "files": [], "footprint": {}, "energyFootprint": {}, "energy": 0.0, "seconds": 0.0,
    }
    try:
        if not isinstance(db_id, int) or isinstance(db_id, bool):
            raise InvalidInput(f"the job has no database id: {db_id!r}", field="id")
        from cc_backend.jobs.query import get_job

        fresh = get_job(engine, db_id)
        result.update(jobId=fresh["jobId"], cluster=fresh["cluster"], monitoringStatus=fresh["monitoringStatus"])
        if fresh["jobState"] == "running":
            result["reason"] = "the job is still running"
            log.warning("archiving job %s (jobId %s on %s) skipped: the job is still running",
                        db_id, fresh["jobId"], fresh["cluster"])
            return result
        _archive(engine, archive, repository, fresh, result)
        result["ok"] = True
        result["monitoringStatus"] = MONITORING_ARCHIVED
    except Exception as exc:  # noqa: BLE001 - whatever went wrong, the job is marked and the caller goes on
        reason = exc.message if isinstance(exc, CCError) else f"{type(exc).__name__}: {exc}"
        result["reason"] = reason
        log.error("archiving job %s (jobId %s on %s) failed: %s", db_id, result["jobId"], result["cluster"], reason,
                  exc_info=not isinstance(exc, CCError))
        if isinstance(db_id, int) and not isinstance(db_id, bool):
            try:
                _set_status(engine, db_id, MONITORING_FAILED)
                result["monitoringStatus"] = MONITORING_FAILED
            except Exception as again:  # noqa: BLE001 - the database itself may be what failed
                log.error("archiving job %s: could not set monitoring status 2 either: %s", db_id, again)
    finally:
        result["seconds"] = time.perf_counter() - started
    return result


def _archive(engine: Engine, archive: FileArchive, repository: MetricRepository, job: dict[str, Any],
             result: dict[str, Any]) -> None:
    registry = archive.registry()
    subcluster = registry.subcluster(job["cluster"], job["subCluster"])
    metrics = [mc.name for mc in subcluster.metric_config]
    data: JobData = repository.load_data(job, metrics, archive_scopes(job), 0)
    if not _has_samples(data):
        raise Conflict(f"no metric data between {job['startTime']} and {job['startTime'] + job['duration']} "
                       f"for {', '.join(r['hostname'] for r in job['resources'][:4])}"
                       + (" ..." if len(job["resources"]) > 4 else ""), field="metrics")
    num_nodes = int(job.get("numNodes") or len(job["resources"]))
    statistics = _finite_statistics(statistics_from_data(data, num_nodes, subcluster.metrics))
    meta = {key: value for key, value in job.items() if key != "id"}
    meta["statistics"] = statistics
    meta["monitoringStatus"] = MONITORING_ARCHIVED
    meta["footprint"] = compute_footprint(meta, subcluster)
    meta["energyFootprint"], meta["energy"] = _energy(meta, subcluster, data)
    meta["tags"] = [{"type": t["type"], "name": t["name"], "scope": t.get("scope") or "global"}
                    for t in job.get("tags") or ()]
    if not meta.get("metaData"):
        meta.pop("metaData", None)
    directory = archive.import_job(meta, data)
    result["files"] = sorted(str(p) for p in directory.iterdir() if p.name in ("meta.json", "data.json", "data.json.gz"))
    from cc_backend.jobs.transaction import write_transaction

    with write_transaction(engine) as conn:
        done = conn.execute(update(job_table).where(J.id == job["id"], J.job_state != "running").values(
            footprint=_json_map(meta["footprint"]), energy_footprint=_json_map(meta["energyFootprint"]),
            energy=meta["energy"], monitoring_status=MONITORING_ARCHIVED)).rowcount
        if not done:
            raise Conflict(f"job {job['id']} was deleted or restarted while it was archived", field="id")
    result.update(statistics=len(statistics), metrics=sorted(statistics), footprint=meta["footprint"],
                  energyFootprint=meta["energyFootprint"], energy=meta["energy"])
    log.info("archived job %s (jobId %s on %s): %d metrics, %s", job["id"], job["jobId"], job["cluster"],
             len(statistics), directory)


def job_statistics_from_stats(stats: Mapping[str, Mapping[str, Mapping[str, float]]], hosts: Sequence[str],
                              subcluster: SubCluster) -> dict[str, dict[str, Any]]:
    """A running job's statistics from ``load_stats`` (``{metric: {host: {min, avg, max}}}``) over its hosts.

    Like archiving: avg = round(sum of host avgs / number of hosts, 2), min of the mins, max of the maxes
    (upstream's footprint worker starts min at 0, so its min is never above 0; here it is the real one).
    """
    out: dict[str, dict[str, Any]] = {}
    count = max(1, len(hosts))
    for metric, per_host in stats.items():
        mc = subcluster.metric(metric)
        if mc is None:
            continue
        total, lo, hi, seen = 0.0, math.inf, -math.inf, False
        for host in hosts:
            s = per_host.get(host)
            if not s:
                continue
            avg, smin, smax = s.get("avg"), s.get("min"), s.get("max")
            if isinstance(avg, (int, float)) and math.isfinite(avg):
                total += avg
                seen = True
            if isinstance(smin, (int, float)) and math.isfinite(smin):
                lo = min(lo, smin)
            if isinstance(smax, (int, float)) and math.isfinite(smax):
                hi = max(hi, smax)
        if not seen:
            continue
        out[metric] = {"unit": mc.unit.to_dict(), "avg": go_round(total / count, 2),
                       "min": go_round(lo, 2) if lo != math.inf else 0.0,
                       "max": go_round(hi, 2) if hi != -math.inf else 0.0}
    return out


# --- the server's archiver ------------------------------------------------------------------------

class ArchiveQueue:
    """The archiver of a server: one worker thread archiving the jobs that stop_job and NATS stop events submit.

    - ``submit(job)`` never blocks. The queue holds up to ``maxsize`` jobs (128, as upstream's channel);
      when it is full the job's id goes to a backlog of ids instead (re-read from the database when its
      turn comes), so a burst of stops costs memory for ids only. Until it is archived the job stays at
      monitoring status 1; if the process ends first, :meth:`requeue_unarchived` at the next start
      queues it again.
    - ``requeue_unarchived()``: stopped jobs (job_state != running) still at monitoring status 1.
    - ``stop(timeout=60)`` drains queue and backlog within ``timeout`` s, then stops; what is left stays
      at status 1 for the next start.
    - Counters: ``submitted``, ``archived``, ``failed``, ``deferred`` (went to the backlog because the
      queue was full), ``requeued``, ``ignored`` (monitoring disabled, already queued, or stopped queue).

    The repository is ``runtime.metric_data`` unless one is given.
    """

    def __init__(self, runtime: Runtime, *, maxsize: int = 128, repository: MetricRepository | None = None) -> None:
        self.runtime = runtime
        self.repository = repository
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize)
        self._backlog: collections.deque[int] = collections.deque()
        self._pending: set[int] = set()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._busy = False
        self._closing = False
        self._abort = False
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.submitted = 0
        self.archived = 0
        self.failed = 0
        self.deferred = 0
        self.requeued = 0
        self.ignored = 0
        self.last_results: collections.deque[dict[str, Any]] = collections.deque(maxlen=32)

    # -- producers -----------------------------------------------------------------------------------

    def submit(self, job: Mapping[str, Any]) -> bool:
        """Queue a stopped job for archiving; False if it is not queued (monitoring disabled, already queued, stopped)."""
        db_id = job.get("id")
        with self._lock:
            if (self._closing or not isinstance(db_id, int) or job.get("monitoringStatus") == MONITORING_DISABLED
                    or db_id in self._pending):
                self.ignored += 1
                return False
            self._pending.add(db_id)
            self.submitted += 1
            try:
                self._queue.put_nowait(dict(job))
            except queue.Full:
                self.deferred += 1
                self._backlog.append(db_id)
                if self.deferred == 1 or self.deferred % 1000 == 0:
                    log.warning("archive queue full (%d jobs): job %s waits in the backlog (%d deferred so far)",
                                self._queue.maxsize, db_id, self.deferred)
        self._wake.set()
        return True

    def requeue_unarchived(self) -> int:
        """Queue the stopped jobs still at monitoring status 1 (left over by a crash or a full queue); returns how many."""
        engine = self.runtime.engine
        with engine.connect() as conn:
            ids = list(conn.execute(select(J.id).where(J.job_state != "running", J.monitoring_status == MONITORING_PENDING)
                                    .order_by(J.id)).scalars())
        added = 0
        with self._lock:
            for db_id in ids:
                if db_id not in self._pending:
                    self._pending.add(db_id)
                    self._backlog.append(db_id)
                    added += 1
            self.requeued += added
        if added:
            log.info("archiver: %d stopped jobs not yet archived are queued again", added)
            self._wake.set()
        return added

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the archive queue was already started")
        self._thread = threading.Thread(target=self._run, name="archiver", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> int:
        """Archive what is queued (up to ``timeout`` s), then end the worker; returns how many jobs are left."""
        with self._lock:
            self._closing = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                self._abort = True  # after the job in progress
                self._wake.set()
                self._thread.join(5.0)
        left = self.pending()
        if left:
            log.warning("archiver stopped with %d jobs not archived; they stay at monitoring status 1 and are "
                        "queued again at the next start", left)
        return left

    def pending(self) -> int:
        """Jobs queued or in the backlog, plus the one being archived."""
        with self._lock:
            return len(self._pending)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until nothing is queued or being archived; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"submitted": self.submitted, "archived": self.archived, "failed": self.failed,
                    "deferred": self.deferred, "requeued": self.requeued, "ignored": self.ignored,
                    "pending": len(self._pending)}

    # -- the worker ----------------------------------------------------------------------------------

    def _next(self) -> dict[str, Any] | int | None:
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            return self._backlog.popleft() if self._backlog else None

    def _run(self) -> None:
        while not self._abort:
            item = self._next()
            if item is None:
                with self._lock:
                    if self._closing:
                        return
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            db_id = item if isinstance(item, int) else item["id"]
            with self._lock:
                self._busy = True
            try:
                self._archive_one(db_id)
            finally:
                with self._idle:
                    self._pending.discard(db_id)
                    self._busy = False
                    self._idle.notify_all()

    def _archive_one(self, db_id: int) -> None:
        repository: Any = self.repository
        if repository is None:
            try:
                repository = self.runtime.metric_data
            except Exception as exc:  # noqa: BLE001 - no backend: the job is marked as failed like any other failure
                repository = _Unavailable(f"no metric data backend: {exc}")
        # archive_job re-reads the job, so an id from the backlog and a submitted dict are the same
        result = archive_job(self.runtime.engine, self.runtime.archive, repository, {"id": db_id})
        if result["ok"]:
            self.runtime.taggers.on_job_archived(db_id)
        self.last_results.append(result)
        with self._lock:
            if result["ok"]:
                self.archived += 1
            else:
                self.failed += 1


class _Unavailable:
    """A repository that fails every call with the reason there is none (archive_job turns that into status 2)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def load_data(self, *args: Any, **kwargs: Any) -> JobData:
        from cc_backend.metrics.repository import MetricBackendError

        raise MetricBackendError(self.reason)
