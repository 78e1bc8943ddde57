"""Named periodic background tasks in threads of the server process (upstream ``internal/taskmanager``)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import select, update

from cc_backend.db.tables import job_table
from cc_backend.errors import CCError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from cc_backend.archive.cluster import ClusterRegistry
    from cc_backend.runtime import Runtime

log = logging.getLogger("cc_backend.tasks")

J = job_table.c

#: How long ``serve`` waits on shutdown for a task that is running right now before it abandons it.
#: Short on purpose: an LDAP search may hang for its 30 s timeout, and stopping must not wait for it.
STOP_GRACE_S = 2.0


@dataclass
class PeriodicTask:
    """``run()`` every ``interval`` seconds; what it returns (if not None) is logged as the run's result.

    The first run comes one ``interval`` after start, as with gocron's DurationJob upstream, unless
    ``first_delay`` says otherwise.
    """

    name: str
    interval: float
    run: Callable[[], Any]
    first_delay: float | None = None
    runs: int = field(default=0, init=False)
    failures: int = field(default=0, init=False)
    last_error: str | None = field(default=None, init=False)


class TaskRunner:
    """Runs each task in its own daemon thread, so one slow task delays no other one and none delays exit."""

    def __init__(self, tasks: Iterable[PeriodicTask], *, clock: Callable[[], float] = time.monotonic) -> None:
        self.tasks = list(tasks)
        names = [t.name for t in self.tasks]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate task names: {', '.join(duplicates)}")
        for task in self.tasks:
            if not task.interval > 0:
                raise ValueError(f"task {task.name}: the interval must be positive, got {task.interval!r}")
        self.clock = clock
        #: Set by stop(); a long task may poll it (or wait on it) to end early.
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        if self._threads:
            raise RuntimeError("the task runner was already started")
        from datetime import timedelta

        from cc_backend.config import format_go_duration

        for task in self.tasks:
            thread = threading.Thread(target=self._loop, args=(task,), name=f"task-{task.name}", daemon=True)
            self._threads.append(thread)
            thread.start()
            log.info("task %s scheduled every %s", task.name, format_go_duration(timedelta(seconds=task.interval)))

    def stop(self, timeout: float = 0.0) -> list[str]:
        """Let no task start again; wait up to ``timeout`` s for running ones. Returns the names still running."""
        self.stopping.set()
        deadline = self.clock() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - self.clock()))
        busy = [t.name.removeprefix("task-") for t in self._threads if t.is_alive()]
        if busy:
            log.warning("still running at shutdown, abandoned: %s", ", ".join(busy))
        return busy

    def _loop(self, task: PeriodicTask) -> None:
        due = self.clock() + (task.interval if task.first_delay is None else task.first_delay)
        while not self.stopping.wait(max(0.0, due - self.clock())):
            self.run_once(task)
            # Fixed rate; a run that overran its interval skips the missed runs instead of
            # starting them back to back.
            due += task.interval
            now = self.clock()
            if due <= now:
                due = now + task.interval

    @staticmethod
    def run_once(task: PeriodicTask) -> None:
        """One run: the result or the error is logged; an exception never leaves this function."""
        started = time.monotonic()
        try:
            result = task.run()
        except Exception as exc:  # noqa: BLE001 - a failing run must not end the loop
            task.failures += 1
            message = f"{type(exc).__name__}: {exc}" if not isinstance(exc, CCError) else str(exc)
            # The traceback once per distinct error: a directory that is down for a day at a
            # short interval should not fill the journal with identical tracebacks.
            show_traceback = not isinstance(exc, CCError) and message != task.last_error
            task.last_error = message
            log.error("task %s failed: %s", task.name, message, exc_info=show_traceback)
            return
        task.runs += 1
        task.last_error = None
        elapsed = time.monotonic() - started
        if result is None:
            log.info("task %s: done [%.2f s]", task.name, elapsed)
        else:
            log.info("task %s: %s [%.2f s]", task.name, result, elapsed)


def _names(names: list[str], limit: int = 10) -> str:
    if not names:
        return ""
    shown = ", ".join(names[:limit]) + (f", ... {len(names) - limit} more" if len(names) > limit else "")
    return f" ({shown})"


def ldap_sync_task(runtime: Runtime) -> PeriodicTask:
    """``auth.ldap.sync-interval``: :func:`cc_backend.auth.ldap.sync_users`, honouring ``sync-del-old-users``."""
    from cc_backend.auth.ldap import ldap_directory, sync_users

    directory = ldap_directory(runtime)
    if not directory.admin_password:
        # Upstream only warns as well: LDAP logins still work, only the synchronisation fails.
        log.warning("auth.ldap.sync-interval is set but LDAP_ADMIN_PASSWORD is not: every LDAP sync will fail")

    def run() -> str:
        result = sync_users(runtime.engine, directory)
        return (f"{len(result.added)} added{_names(result.added)}, {len(result.updated)} updated"
                f"{_names(result.updated)}, {len(result.removed)} deleted{_names(result.removed)}")

    interval = directory.config.sync_interval
    assert interval is not None
    return PeriodicTask("ldap-sync", interval.total_seconds(), run)


# --- job workers (upstream internal/taskmanager: updateDurationService, updateFootprintService, stop-jobs) ------

def update_durations(engine: Engine, now: int | None = None) -> int:
    """``duration = now - start_time`` of every running job (upstream's duration worker); returns how many rows."""
    from cc_backend.jobs.transaction import write_transaction

    now = int(time.time()) if now is None else now
    with write_transaction(engine) as conn:
        return int(conn.execute(update(job_table).where(J.job_state == "running", J.start_time <= now)
                                .values(duration=now - J.start_time)).rowcount)


def stop_jobs_exceeding_walltime(engine: Engine, grace: int, now: int | None = None) -> list[dict[str, Any]]:
    """Mark running jobs as failed that ran ``grace`` s beyond their walltime; returns them as stopped.

    Which jobs, as upstream: ``walltime > 0`` and ``now - start_time > walltime + grace``. What is set
    differs on purpose: upstream sets duration 0 and monitoring status 2 (never archived; its code
    carries a FIXME asking for the walltime). Here the duration is the walltime, the latest moment
    the batch system let the job run, and the monitoring status is left as is, so the caller can have
    the jobs archived with their data of ``[start, start + walltime]`` (see :func:`walltime_task`):
    those with data become status 3, those without status 2 as upstream.
    """
    from cc_backend.jobs.filter import JobFilter
    from cc_backend.jobs.query import list_jobs
    from cc_backend.jobs.transaction import write_transaction

    now = int(time.time()) if now is None else now
    overdue = (J.job_state == "running", J.walltime > 0, (now - J.start_time) > J.walltime + grace)
    with write_transaction(engine) as conn:
        ids = list(conn.execute(select(J.id).where(*overdue).order_by(J.id)).scalars())
        if not ids:
            return []
        for chunk in range(0, len(ids), 500):
            conn.execute(update(job_table).where(J.id.in_(ids[chunk:chunk + 500]), *overdue)
                         .values(job_state="failed", duration=J.walltime))
    return list_jobs(engine, [JobFilter(dbId=ids)])


def update_running_footprints(engine: Engine, registry: ClusterRegistry, repository: Any) -> tuple[int, int, int]:
    """Footprints of running jobs from the metric backend's statistics (upstream's footprint worker).

    Per job ``repository.load_stats(job, metrics of its subcluster)`` over its time so far, combined
    over its hosts as archiving does (:func:`cc_backend.jobs.archiving.job_statistics_from_stats`);
    the updates of one cluster are one transaction, and a job that stopped meanwhile is not touched
    (the archiver writes its final footprint). Returns (updated, running jobs, failed).
    """
    from cc_backend.jobs.archiving import job_statistics_from_stats
    from cc_backend.jobs.footprint import compute_footprint
    from cc_backend.jobs.model import row_to_job
    from cc_backend.jobs.transaction import write_transaction

    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(job_table).where(J.job_state == "running"))]
    by_cluster: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_cluster.setdefault(row["cluster"], []).append(row_to_job(row))
    updated = failed = 0
    for cluster, jobs in by_cluster.items():
        changes: list[tuple[int, str | None]] = []
        for job in jobs:
            try:
                sub = registry.subcluster(cluster, job["subCluster"])
                stats = repository.load_stats(job, [mc.name for mc in sub.metric_config])
                hosts = [r["hostname"] for r in job["resources"]]
                footprint = compute_footprint({"statistics": job_statistics_from_stats(stats, hosts, sub)}, sub)
            except Exception as exc:  # noqa: BLE001 - one job's backend error must not stop the others
                failed += 1
                log.warning("footprint of running job %s (jobId %s on %s) not updated: %s", job["id"], job["jobId"],
                            cluster, exc)
                continue
            changes.append((job["id"], orjson.dumps(footprint).decode() if footprint else None))
        if changes:
            with write_transaction(engine) as conn:
                for db_id, document in changes:
                    updated += conn.execute(update(job_table).where(J.id == db_id, J.job_state == "running")
                                            .values(footprint=document)).rowcount
    return updated, len(rows), failed


def seconds_until(hour: int, minute: int = 0, now: float | None = None) -> float:
    """Seconds from ``now`` to the next local ``hour:minute`` (upstream runs its daily jobs at local times)."""
    import datetime as dt

    current = dt.datetime.fromtimestamp(time.time() if now is None else now).astimezone()
    target = current.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if target <= current:
        target += dt.timedelta(days=1)
    return (target - current).total_seconds()


def duration_task(runtime: Runtime) -> PeriodicTask:
    """``cron.duration-worker`` (5m): :func:`update_durations`."""
    interval = runtime.config.cron.duration_worker.total_seconds()
    return PeriodicTask("duration-worker", interval,
                        lambda: f"{update_durations(runtime.engine)} running jobs updated")


def footprint_task(runtime: Runtime) -> PeriodicTask:
    """``cron.footprint-worker`` (10m): :func:`update_running_footprints` with ``runtime.metric_data``."""

    def run() -> str:
        repository = runtime.metric_data
        done, running, failed = update_running_footprints(runtime.engine, runtime.archive.registry(), repository)
        return f"{done} of {running} running jobs' footprints updated, {failed} failed"

    return PeriodicTask("footprint-worker", runtime.config.cron.footprint_worker.total_seconds(), run)


def walltime_task(runtime: Runtime) -> PeriodicTask:
    """``main.stop-jobs-exceeding-walltime`` > 0: daily at 03:00 local time, :func:`stop_jobs_exceeding_walltime`.

    Stopped jobs whose monitoring is not disabled go to the archiver (``runtime.archiver``); without one
    they stay at monitoring status 1 and the next server start queues them.
    """
    grace = runtime.config.main.stop_jobs_exceeding_walltime

    def run() -> str:
        jobs = stop_jobs_exceeding_walltime(runtime.engine, grace)
        archiver = getattr(runtime, "archiver", None)
        queued = 0
        if archiver is not None:
            queued = sum(1 for job in jobs if job["monitoringStatus"] != 0 and archiver.submit(job))
        names = [f"{j['cluster']}/{j['jobId']}" for j in jobs]
        return f"{len(jobs)} jobs exceeding their walltime by {grace} s marked failed{_names(names)}, {queued} queued for archiving"

    return PeriodicTask("stop-jobs-exceeding-walltime", 86400.0, run, first_delay=seconds_until(3))


def server_tasks(runtime: Runtime) -> list[PeriodicTask]:
    """The background tasks ``serve`` runs for this configuration.

    Always the duration and footprint workers (``cron``); the walltime stopper when
    ``main.stop-jobs-exceeding-walltime`` > 0; the LDAP sync when ``auth.ldap.sync-interval`` is set.
    """
    config = runtime.config
    tasks = [duration_task(runtime), footprint_task(runtime)]
    if config.main.stop_jobs_exceeding_walltime > 0:
        tasks.append(walltime_task(runtime))
    ldap = config.auth.ldap
    if ldap is not None and ldap.sync_interval:  # unset or "0" disables the periodic sync
        if config.main.disable_authentication:
            log.warning("auth.ldap.sync-interval is ignored: main.disable-authentication is set")
        else:
            tasks.append(ldap_sync_task(runtime))
    return tasks
