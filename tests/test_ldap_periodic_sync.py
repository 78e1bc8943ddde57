"""Periodic LDAP sync inside ``cc-backend serve`` (real server, real slapd) and the background task runner."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx
import ldap_server as ldap
import pytest
from support.cli import run_cli
from support.db import SQLITE_ONLY
from support.server import Server, free_port

from cc_backend.tasks import PeriodicTask, TaskRunner, server_tasks

LDAP_AUTH_SOURCE = 1


def wait_until(condition, timeout: float = 15, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


class Serve(Server):
    """``cc-backend --loglevel info serve`` on a free port of ``site`` (info: each sync run is logged)."""

    def __init__(self, site: Path) -> None:
        super().__init__(site, options=("--loglevel", "info"))
        self.wait_ready()

    def sync_runs(self) -> int:
        return self.output().count("task ldap-sync: ")


def configure_ldap(site: Path, url: str, **extra: object) -> None:
    config = json.loads((site / "config.json").read_text())
    config["auth"]["ldap"] = {"url": url, "user-base": ldap.PEOPLE, "search-dn": ldap.ADMIN_DN,
                              "user-bind": f"uid={{username}},{ldap.PEOPLE}",
                              "user-filter": "(&(objectclass=posixAccount))", **extra}
    (site / "config.json").write_text(json.dumps(config, indent=2))
    with open(site / ".env", "a") as env:
        env.write(f'LDAP_ADMIN_PASSWORD="{ldap.ADMIN_PASSWORD}"\n')
    r = run_cli("--config", str(site / "config.json"), "-migrate-db", cwd=site)
    assert r.returncode == 0, r.stderr


def db_users(site: Path) -> dict[str, dict]:
    """The users as ``cc-backend user list`` sees them: another process reading the same database."""
    r = run_cli("--config", str(site / "config.json"), "user", "list", "--format", "json", cwd=site)
    assert r.returncode == 0, r.stderr
    return {u["username"]: u for u in json.loads(r.stdout)}


@pytest.fixture
def serve(site):
    servers: list[Serve] = []

    def _serve() -> Serve:
        server = Serve(site)
        servers.append(server)
        return server

    yield _serve
    for server in servers:
        server.stop()


@pytest.fixture
def directory_user(ldap_server):
    """A user name to add to the shared slapd; removed again at teardown, whatever the test did."""
    uid = f"periodic{os.getpid() % 10000}"
    yield uid
    subprocess.run(["ldapdelete", "-x", "-H", ldap_server.url, "-D", ldap.ADMIN_DN, "-w", ldap.ADMIN_PASSWORD,
                    f"uid={uid},{ldap.PEOPLE}"], capture_output=True)


# --- the real server --------------------------------------------------------------------------------


@SQLITE_ONLY
def test_periodic_sync_adds_and_deletes(site, ldap_server, serve, directory_user):
    configure_ldap(site, ldap_server.url, **{"sync-interval": "1s", "sync-del-old-users": True})
    srv = serve()
    wait_until(lambda: srv.sync_runs() >= 1, what="the first LDAP sync run")
    assert {"alice", "bob", "carol", "dave"} <= set(db_users(site))

    ldap_server.add_user(directory_user, "Periodic Person", "pw")
    user = wait_until(lambda: db_users(site).get(directory_user), what=f"{directory_user} in the database")
    assert user["authSource"] == LDAP_AUTH_SOURCE and user["roles"] == ["user"] and user["name"] == "Periodic Person"
    assert f"1 added ({directory_user})" in srv.output()

    ldap_server.remove_user(directory_user)
    wait_until(lambda: directory_user not in db_users(site), what=f"{directory_user} to be deleted")
    assert f"1 deleted ({directory_user})" in srv.output()
    assert httpx.get(srv.url + "/healthz").status_code == 200
    assert srv.stop() == 0


@SQLITE_ONLY
def test_periodic_sync_keeps_vanished_users_without_sync_del_old_users(site, ldap_server, serve, directory_user):
    configure_ldap(site, ldap_server.url, **{"sync-interval": "1s"})  # sync-del-old-users defaults to false
    srv = serve()
    ldap_server.add_user(directory_user, "Periodic Person", "pw")
    wait_until(lambda: directory_user in db_users(site), what=f"{directory_user} in the database")

    ldap_server.remove_user(directory_user)
    runs = srv.sync_runs()
    wait_until(lambda: srv.sync_runs() >= runs + 2, what="two more sync runs")
    assert directory_user in db_users(site)
    assert f"deleted ({directory_user})" not in srv.output() and "0 deleted" in srv.output()
    assert srv.stop() == 0


@SQLITE_ONLY
def test_sync_errors_are_logged_and_the_server_keeps_running(site, serve):
    configure_ldap(site, f"ldap://127.0.0.1:{free_port()}", **{"sync-interval": "1s"})  # nothing listens there
    srv = serve()
    wait_until(lambda: srv.output().count("task ldap-sync failed") >= 2, what="two failed sync runs")
    assert httpx.get(srv.url + "/healthz").status_code == 200
    assert srv.stop() == 0


@SQLITE_ONLY
def test_a_hanging_sync_does_not_delay_shutdown(site, serve):
    """An LDAP server that accepts and never answers: the sync hangs (30 s receive timeout), SIGTERM does not."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(8)
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(hole.accept()[0]), daemon=True).start()
    try:
        configure_ldap(site, f"ldap://127.0.0.1:{hole.getsockname()[1]}", **{"sync-interval": "1s"})
        srv = serve()
        wait_until(lambda: accepted, what="the sync to connect")
        time.sleep(0.3)  # now it waits for the bind answer
        assert httpx.get(srv.url + "/healthz").status_code == 200
        started = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(timeout=20) == 0
        assert time.monotonic() - started < 8  # the grace for a running task is 2 s
        assert "abandoned: ldap-sync" in srv.output()
    finally:
        for conn in accepted:
            conn.close()
        hole.close()


def test_a_failed_search_deletes_nobody(engine, ldap_server):
    """A search that fails (here: a user-base that does not exist) is an error, not an empty directory."""
    from cc_backend.auth.ldap import LdapDirectory, sync_users
    from cc_backend.auth.users import find_user
    from cc_backend.config import LdapConfig
    from cc_backend.errors import CCError

    settings = {"url": ldap_server.url, "search-dn": ldap.ADMIN_DN, "user-bind": f"uid={{username}},{ldap.PEOPLE}",
                "user-filter": "(&(objectclass=posixAccount))", "sync-del-old-users": True}
    good = LdapDirectory(LdapConfig.model_validate({**settings, "user-base": ldap.PEOPLE}), ldap.ADMIN_PASSWORD)
    bad = LdapDirectory(LdapConfig.model_validate({**settings, "user-base": f"ou=gone,{ldap.SUFFIX}"}),
                        ldap.ADMIN_PASSWORD)
    assert "alice" in sync_users(engine, good).added
    with pytest.raises(CCError, match="noSuchObject"):
        sync_users(engine, bad)
    assert find_user(engine, "alice") is not None


# --- which tasks serve runs -------------------------------------------------------------------------


def _runtime(tmp_path: Path, ldap_section: dict | None, **main: object):  # type: ignore[no-untyped-def]
    from cc_backend.runtime import Runtime

    config = {"main": {"db": str(tmp_path / "job.db"), **main}, "auth": {"jwts": {"max-age": "1h"}}}
    if ldap_section is not None:
        config["auth"]["ldap"] = {"url": "ldap://127.0.0.1:1", "user-base": ldap.PEOPLE, "search-dn": ldap.ADMIN_DN,
                                  "user-bind": f"uid={{username}},{ldap.PEOPLE}", "user-filter": "(uid=*)",
                                  **ldap_section}
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / ".env").write_text("")
    return Runtime(str(tmp_path / "config.json"), str(tmp_path / ".env"))


def test_server_tasks_follow_the_configuration(tmp_path, caplog, monkeypatch):
    monkeypatch.delenv("LDAP_ADMIN_PASSWORD", raising=False)

    def ldap_tasks(runtime):
        return [task for task in server_tasks(runtime) if task.name == "ldap-sync"]

    assert ldap_tasks(_runtime(tmp_path, None)) == []
    assert ldap_tasks(_runtime(tmp_path, {})) == []
    assert ldap_tasks(_runtime(tmp_path, {"sync-interval": "0"})) == []
    with caplog.at_level(logging.WARNING, logger="cc_backend.tasks"):
        [task] = ldap_tasks(_runtime(tmp_path, {"sync-interval": "24h"}))
    assert task.name == "ldap-sync" and task.interval == 86400
    assert "LDAP_ADMIN_PASSWORD is not" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cc_backend.tasks"):
        assert ldap_tasks(_runtime(tmp_path, {"sync-interval": "1h"}, **{"disable-authentication": True})) == []
    assert "disable-authentication" in caplog.text


# --- the task runner --------------------------------------------------------------------------------


def counting_task(name: str, interval: float, *, fail: int = 0) -> tuple[PeriodicTask, list[float]]:
    """A task recording the times of its runs; its first ``fail`` runs raise."""
    times: list[float] = []

    def run() -> str:
        times.append(time.monotonic())
        if len(times) <= fail:
            raise RuntimeError("boom")
        return f"run {len(times)}"

    return PeriodicTask(name, interval, run), times


def test_runner_runs_each_task_at_its_interval_until_stopped():
    fast, fast_times = counting_task("fast", 0.02)
    slow, slow_times = counting_task("slow", 3600)
    runner = TaskRunner([fast, slow])
    started = time.monotonic()
    runner.start()
    wait_until(lambda: len(fast_times) >= 5, 5, "five runs")
    assert runner.stop(timeout=1) == []
    count = len(fast_times)
    time.sleep(0.1)
    assert len(fast_times) == count  # nothing runs after stop()
    assert fast_times[0] - started >= 0.015  # the first run comes one interval after start, as upstream
    gaps = [b - a for a, b in zip(fast_times, fast_times[1:])]
    assert min(gaps) >= 0.01
    assert slow_times == [] and fast.runs == count and fast.failures == 0
    with pytest.raises(RuntimeError):
        runner.start()


def test_stop_wakes_a_long_interval_at_once():
    task, times = counting_task("daily", 86400)
    runner = TaskRunner([task])
    runner.start()
    started = time.monotonic()
    assert runner.stop(timeout=5) == []
    assert time.monotonic() - started < 1 and times == []


def test_a_failing_run_does_not_end_the_loop(caplog):
    task, times = counting_task("flaky", 0.01, fail=3)
    runner = TaskRunner([task])
    with caplog.at_level(logging.INFO, logger="cc_backend.tasks"):
        runner.start()
        wait_until(lambda: task.runs >= 2, 5, "runs after the failures")
        runner.stop(timeout=1)
    assert task.failures == 3 and task.last_error is None
    assert caplog.text.count("task flaky failed: RuntimeError: boom") == 3
    assert caplog.text.count("Traceback") == 1  # the same error again: no second traceback
    assert "task flaky: run 4" in caplog.text


def test_a_config_error_is_logged_without_traceback(caplog):
    from cc_backend.errors import ConfigError

    def run() -> None:
        raise ConfigError("LDAP_ADMIN_PASSWORD is not set")

    task = PeriodicTask("cfg", 1, run)
    with caplog.at_level(logging.ERROR, logger="cc_backend.tasks"):
        TaskRunner.run_once(task)
    assert "task cfg failed: LDAP_ADMIN_PASSWORD is not set" in caplog.text and "Traceback" not in caplog.text
    assert task.failures == 1 and task.last_error == "LDAP_ADMIN_PASSWORD is not set"


def test_stop_does_not_wait_for_a_hanging_run_beyond_its_timeout():
    release = threading.Event()
    entered = threading.Event()

    def hang() -> None:
        entered.set()
        release.wait(30)

    runner = TaskRunner([PeriodicTask("hang", 3600, hang, first_delay=0)])
    runner.start()
    try:
        assert entered.wait(5)
        started = time.monotonic()
        assert runner.stop(timeout=0.1) == ["hang"]
        assert time.monotonic() - started < 1
    finally:
        release.set()


def test_an_overrunning_task_skips_missed_runs():
    times: list[float] = []

    def slow() -> None:
        times.append(time.monotonic())
        if len(times) == 1:
            time.sleep(0.25)  # five intervals

    runner = TaskRunner([PeriodicTask("slow", 0.05, slow, first_delay=0)])
    runner.start()
    wait_until(lambda: len(times) >= 3, 5, "three runs")
    runner.stop(timeout=1)
    assert times[1] - times[0] >= 0.25 + 0.04  # one interval after the long run ended, not at once
    assert times[2] - times[1] >= 0.04


def test_invalid_tasks_are_refused():
    noop = lambda: None  # noqa: E731
    with pytest.raises(ValueError, match="duplicate task names: a"):
        TaskRunner([PeriodicTask("a", 1, noop), PeriodicTask("a", 2, noop)])
    with pytest.raises(ValueError, match="positive"):
        TaskRunner([PeriodicTask("zero", 0, noop)])
