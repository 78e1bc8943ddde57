"""Named periodic background tasks in threads of the server process (upstream ``internal/taskmanager``)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cc_backend.errors import CCError

if TYPE_CHECKING:
    from cc_backend.runtime import Runtime

log = logging.getLogger("cc_backend.tasks")

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


def server_tasks(runtime: Runtime) -> list[PeriodicTask]:
    """The background tasks ``serve`` runs for this configuration (so far: the LDAP sync)."""
    config = runtime.config
    tasks = []
    ldap = config.auth.ldap
    if ldap is not None and ldap.sync_interval:  # unset or "0" disables the periodic sync
        if config.main.disable_authentication:
            log.warning("auth.ldap.sync-interval is ignored: main.disable-authentication is set")
        else:
            tasks.append(ldap_sync_task(runtime))
    return tasks
