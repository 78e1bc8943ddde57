"""Archiving of stopped jobs and the job workers, against the real built-in metric store and its repository.

Samples are written as line protocol into a :class:`MetricStore`; the archiver reads them back through
the cc-metric-store repository the dispatch uses for the built-in store. Expected statistics are
computed here from the written values.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import orjson
import pytest
from sqlalchemy import select
from support.cli import cli
from support.server import free_port
from support.site import main_section, write_site

HOSTS = ("f0101", "f0102")  # fritz, subcluster main: 2 sockets x 36 cores, one hwthread per core
STEP = 60


def _now() -> int:
    return int(time.time()) // STEP * STEP


# --- what the test writes ----------------------------------------------------------------------------------

def node_values(metric: str, host_index: int, i: int) -> float:
    """Node-level samples (cpu_load, mem_used): distinct per host and time."""
    return {"cpu_load": 10.0 + host_index * 5 + (i % 7), "mem_used": 20.0 + host_index * 3 + (i % 5) * 0.5}[metric]


def hwthread_value(host_index: int, thread: int, i: int) -> float:
    return 1.0 + host_index + thread * 0.25 + (i % 3)


SOCKET_VALUES = {"cpu_power": (100.0, 120.0), "mem_power": (10.0, 15.0), "mem_bw": (30.0, 40.0)}


def write_samples(store, start: int, stop: int, hosts=HOSTS, *, threads: int = 72) -> list[int]:
    """Samples strictly between start and stop (so no boundary rule of the store matters); returns the times."""
    times = list(range(start + STEP, stop, STEP))
    lines = []
    for h, host in enumerate(hosts):
        for i, ts in enumerate(times):
            for metric in ("cpu_load", "mem_used"):
                lines.append(f"{metric},cluster=fritz,hostname={host},type=node value={node_values(metric, h, i)} {ts}")
            for metric, per_socket in SOCKET_VALUES.items():
                for socket, value in enumerate(per_socket):
                    lines.append(f"{metric},cluster=fritz,hostname={host},type=socket,type-id={socket} "
                                 f"value={value} {ts}")
            for t in range(threads):
                lines.append(f"flops_any,cluster=fritz,hostname={host},type=hwthread,type-id={t} "
                             f"value={hwthread_value(h, t, i)} {ts}")
    assert store.write_lines("\n".join(lines).encode(), "fritz") == len(lines)
    return times


def go_round(x: float) -> float:
    return math.floor(abs(x) * 100 + 0.5) / 100 * (1 if x >= 0 else -1)


def expected_statistics(n: int, hosts=HOSTS, threads: int = 72) -> dict[str, dict]:
    """Job statistics from the written samples: avg of the per-node averages, min of mins, max of maxes."""
    per_node: dict[str, list[list[float]]] = {"cpu_load": [], "mem_used": [], "flops_any": []}
    per_node.update({m: [] for m in SOCKET_VALUES})
    for h in range(len(hosts)):
        for metric in ("cpu_load", "mem_used"):
            per_node[metric].append([node_values(metric, h, i) for i in range(n)])
        per_node["flops_any"].append([sum(hwthread_value(h, t, i) for t in range(threads)) for i in range(n)])
        for metric, per_socket in SOCKET_VALUES.items():
            per_node[metric].append([sum(per_socket)] * n)
    out = {}
    for metric, series in per_node.items():
        avgs = [sum(s) / len(s) for s in series]
        out[metric] = {"avg": go_round(sum(avgs) / len(hosts)), "min": min(min(s) for s in series),
                       "max": max(max(s) for s in series)}
    return out


# --- fixtures ----------------------------------------------------------------------------------------------

@pytest.fixture
def live(tmp_path, db_url, peer_archive):
    """A Runtime on a fresh database and the peer archive, with a real built-in store installed."""
    from cc_backend.config import load_env
    from cc_backend.metricstore.store import MetricStore
    from cc_backend.runtime import Runtime

    site = write_site(tmp_path, main_section(db_url), peer_archive)
    rt = Runtime(str(site / "config.json"), str(site / ".env"))
    rt.__dict__["secrets"] = load_env(site / ".env", environ={})
    rt.metric_store = MetricStore(rt.archive.registry(), None)
    rt.site = site
    yield rt
    if rt.archiver is not None:
        rt.archiver.stop(10)
    rt.close()


def start(rt, job_id: int, start_time: int, hosts=HOSTS, **extra) -> dict:
    from cc_backend.jobs.store import start_job

    payload = {"jobId": job_id, "user": "alice", "project": "p1", "cluster": "fritz", "walltime": 86400,
               "numNodes": len(hosts), "numHwthreads": 72 * len(hosts), "startTime": start_time,
               "resources": [{"hostname": h, "hwthreads": list(range(72))} for h in hosts],
               "metaData": {"jobName": f"job{job_id}"}, **extra}
    return start_job(rt.engine, rt.archive.registry(), payload)


def stop(rt, job: dict, stop_time: int, state: str = "completed") -> dict:
    from cc_backend.jobs.store import stop_job

    return stop_job(rt.engine, {"jobId": job["jobId"], "cluster": "fritz", "startTime": job["startTime"],
                                "jobState": state, "stopTime": stop_time})


def row(rt, db_id: int) -> dict:
    from cc_backend.db.tables import job_table

    with rt.engine.connect() as conn:
        return dict(conn.execute(select(job_table).where(job_table.c.id == db_id)).one()._mapping)


def assert_archived(rt, job: dict, n: int) -> None:
    """DB columns and archive files of a job archived from write_samples() data with n samples per series."""
    from cc_backend.archive.validate import validate_data, validate_meta

    stored = row(rt, job["id"])
    assert stored["monitoring_status"] == 3
    meta = rt.archive.load_meta("fritz", job["jobId"], job["startTime"])
    data = rt.archive.load_data("fritz", job["jobId"], job["startTime"])
    validate_meta(meta)
    validate_data(data)
    expected = expected_statistics(n)
    for metric, stats in expected.items():
        got = meta["statistics"][metric]
        assert (got["avg"], got["min"], got["max"]) == pytest.approx((stats["avg"], stats["min"], stats["max"]),
                                                                     abs=1e-3), metric
    units = {m: meta["statistics"][m]["unit"] for m in ("cpu_load", "mem_used", "flops_any", "cpu_power")}
    assert units == {"cpu_load": {"base": ""}, "mem_used": {"base": "B", "prefix": "G"},
                     "flops_any": {"base": "Flops/s", "prefix": "G"}, "cpu_power": {"base": "W"}}  # cluster.json's
    assert meta["monitoringStatus"] == 3 and meta["jobState"] == "completed" and "id" not in meta
    footprint = orjson.loads(stored["footprint"])
    assert footprint == {"cpu_load_avg": expected["cpu_load"]["avg"], "mem_used_max": expected["mem_used"]["max"],
                         "flops_any_avg": expected["flops_any"]["avg"], "mem_bw_avg": expected["mem_bw"]["avg"]}
    duration = meta["duration"]
    cpu = go_round(220.0 * 2 * duration / 3600 / 1000)
    mem = go_round(25.0 * 2 * duration / 3600 / 1000)
    assert orjson.loads(stored["energy_footprint"]) == {"cpu_power": cpu, "mem_power": mem}
    assert float(stored["energy"]) == meta["energy"] == pytest.approx(go_round(cpu + mem))
    assert meta["footprint"] == footprint
    # node scope for every metric with data, core scope (<= 8 nodes) for the per-hwthread one
    assert set(data["flops_any"]) == {"node", "core"}
    assert len(data["flops_any"]["core"]["series"]) == 2 * 72
    assert {s["hostname"] for s in data["cpu_load"]["node"]["series"]} == set(HOSTS)


# --- archive_job -------------------------------------------------------------------------------------------

def test_stopped_two_node_job_is_archived(live):
    from cc_backend.jobs.archiving import archive_job

    t0 = _now() - 4 * 3600
    job = start(live, 101, t0)
    n = len(write_samples(live.metric_store, t0, t0 + 3600))
    stopped = stop(live, job, t0 + 3600)
    result = archive_job(live.engine, live.archive, live.metric_data, stopped)
    assert result["ok"] and result["reason"] is None and result["monitoringStatus"] == 3
    assert result["statistics"] == len(result["metrics"]) == 6  # the metrics written
    directory = live.archive.job_dir("fritz", 101, t0)
    assert result["files"] == sorted([str(directory / "meta.json"), str(directory / "data.json.gz")])
    assert_archived(live, stopped, n)
    # archiving again (by hand) gives the same result
    again = archive_job(live.engine, live.archive, live.metric_data, {"id": stopped["id"]})
    assert again["ok"] and again["footprint"] == result["footprint"] and again["energy"] == result["energy"]


def test_backend_failure_sets_status_2_and_logs_why(live, caplog):
    from cc_backend.jobs.archiving import archive_job
    from cc_backend.metrics.ccms import external_repository

    t0 = _now() - 7200
    job = stop(live, start(live, 102, t0), t0 + 600)
    unreachable = external_repository(live.archive.registry, f"http://127.0.0.1:{free_port()}", "token")
    with caplog.at_level(logging.ERROR, logger="cc_backend.jobs.archiving"):
        result = archive_job(live.engine, live.archive, unreachable, job)
    assert not result["ok"] and result["monitoringStatus"] == 2 and result["reason"]
    assert row(live, job["id"])["monitoring_status"] == 2
    [line] = [r.getMessage() for r in caplog.records if "archiving job" in r.getMessage()]
    assert f"job {job['id']} (jobId 102 on fritz) failed: {result['reason']}" in line
    assert not live.archive.exists("fritz", 102, t0)


def test_job_without_any_sample_fails_with_status_2(live, caplog):
    from cc_backend.jobs.archiving import archive_job

    t0 = _now() - 7200
    job = stop(live, start(live, 103, t0, hosts=("f0103",)), t0 + 600)
    with caplog.at_level(logging.ERROR, logger="cc_backend.jobs.archiving"):
        result = archive_job(live.engine, live.archive, live.metric_data, job)
    assert result["monitoringStatus"] == 2 and "no metric data" in result["reason"] and "f0103" in result["reason"]
    assert row(live, job["id"])["monitoring_status"] == 2
    assert "jobId 103 on fritz" in caplog.text


def test_running_job_is_left_alone(live):
    from cc_backend.jobs.archiving import archive_job

    job = start(live, 104, _now() - 600)
    result = archive_job(live.engine, live.archive, live.metric_data, job)
    assert not result["ok"] and result["reason"] == "the job is still running"
    assert row(live, job["id"])["monitoring_status"] == 1


def test_scopes_follow_upstreams_rule():
    from cc_backend.jobs.archiving import archive_scopes

    assert archive_scopes({"numNodes": 8, "numAcc": 0}) == ["node", "core"]
    assert archive_scopes({"numNodes": 9, "numAcc": 0}) == ["node"]
    assert archive_scopes({"numNodes": 64, "numAcc": 4}) == ["node", "accelerator"]


def test_energy_counters_are_the_difference_of_last_and_first_sample():
    from cc_backend.archive.cluster import MetricConfig, Unit
    from cc_backend.jobs.archiving import counter_energy_kwh

    entry = {"series": [{"hostname": "a", "data": [None, 1000.0, 2000.0, 4600.0]},
                        {"hostname": "b", "data": [0.0, None, 3600.0]},
                        {"hostname": "c", "data": [500.0, 100.0]}]}  # a reset: counts nothing
    kj = MetricConfig(name="energy", unit=Unit("J", "k"), scope="node", timestep=60, energy="energy")
    assert counter_energy_kwh(entry, kj) == pytest.approx((3600.0 + 3600.0) * 1000 / 3.6e6)
    wh = MetricConfig(name="energy", unit=Unit("Wh"), scope="node", timestep=60, energy="energy")
    assert counter_energy_kwh(entry, wh) == pytest.approx(7.2)
    watts = MetricConfig(name="energy", unit=Unit("W"), scope="node", timestep=60, energy="energy")
    assert counter_energy_kwh(entry, watts) == 0.0


# --- the queue ---------------------------------------------------------------------------------------------

def test_queue_drains_on_stop(live):
    from cc_backend.jobs.archiving import ArchiveQueue

    t0 = _now() - 4 * 3600
    jobs = []
    for k in range(3):
        job = start(live, 200 + k, t0 + k)
        jobs.append(stop(live, job, t0 + k + 3600))
    n = len(write_samples(live.metric_store, t0, t0 + 3600))
    queue = ArchiveQueue(live)
    queue.start()
    assert [queue.submit(j) for j in jobs] == [True, True, True]
    assert queue.stop(timeout=60) == 0
    assert queue.stats() == {"submitted": 3, "archived": 3, "failed": 0, "deferred": 0, "requeued": 0,
                             "ignored": 0, "pending": 0}
    assert_archived(live, jobs[0], n)
    assert {row(live, j["id"])["monitoring_status"] for j in jobs} == {3}
    assert not queue.submit(jobs[0])  # stopped: the job would stay at status 1 for the next start


def test_full_queue_defers_to_the_backlog_and_loses_nothing(live):
    from cc_backend.jobs.archiving import ArchiveQueue

    t0 = _now() - 4 * 3600
    jobs = [stop(live, start(live, 300 + k, t0 + k), t0 + k + 3600) for k in range(3)]
    write_samples(live.metric_store, t0, t0 + 3600)
    queue = ArchiveQueue(live, maxsize=1)
    assert [queue.submit(j) for j in jobs] == [True, True, True]
    assert not queue.submit(jobs[1])  # already queued
    assert queue.stats()["deferred"] == 2 and queue.pending() == 3
    assert {row(live, j["id"])["monitoring_status"] for j in jobs} == {1}  # still waiting
    queue.start()
    assert queue.wait_idle(60)
    assert queue.stop() == 0
    assert {row(live, j["id"])["monitoring_status"] for j in jobs} == {3}


def test_requeue_at_start_picks_up_stopped_jobs_at_status_1(live):
    from cc_backend.jobs.archiving import ArchiveQueue

    t0 = _now() - 4 * 3600
    left = stop(live, start(live, 400, t0), t0 + 3600)  # stopped while no archiver ran
    start(live, 401, t0)  # running: not archived
    disabled = stop(live, start(live, 402, t0 + 1, monitoringStatus=0), t0 + 3600)
    n = len(write_samples(live.metric_store, t0, t0 + 3600))
    queue = ArchiveQueue(live)
    live.archiver = queue
    assert queue.requeue_unarchived() == 1
    assert queue.requeue_unarchived() == 0  # already queued
    queue.start()
    assert queue.wait_idle(60)
    assert_archived(live, left, n)
    assert row(live, disabled["id"])["monitoring_status"] == 0
    assert queue.stats()["requeued"] == 1 and queue.stats()["archived"] == 1
    assert queue.requeue_unarchived() == 0  # nothing left at status 1


def test_rest_stop_job_archives_the_job(api):
    from cc_backend.jobs.archiving import ArchiveQueue
    from cc_backend.metricstore.store import MetricStore

    app, headers, _ = api
    rt = app.runtime
    rt.metric_store = MetricStore(rt.archive.registry(), None)
    queue = ArchiveQueue(rt)
    rt.archiver = queue
    queue.start()
    try:
        t0 = _now() - 4 * 3600
        n = len(write_samples(rt.metric_store, t0, t0 + 3600))
        body = {"jobId": 500, "user": "alice", "project": "p1", "cluster": "fritz", "walltime": 86400, "numNodes": 2,
                "numHwthreads": 144, "startTime": t0,
                "resources": [{"hostname": h, "hwthreads": list(range(72))} for h in HOSTS]}
        with app.client(headers=headers) as client:
            r = client.post("/api/jobs/start_job/", json=body)
            assert r.status_code == 201, r.text
            db_id = r.json()["id"]
            r = client.post("/api/jobs/stop_job/", json={"jobId": 500, "cluster": "fritz", "startTime": t0,
                                                         "jobState": "completed", "stopTime": t0 + 3600})
            assert r.status_code == 200, r.text
            answer = r.json()
            # the response is the stopped job as before: archiving happens afterwards
            assert (answer["id"], answer["jobState"], answer["duration"], answer["monitoringStatus"]) == \
                (db_id, "completed", 3600, 1)
            assert queue.wait_idle(60)
            assert_archived(rt, answer, n)
            r = client.get(f"/api/jobs/{db_id}")
            assert r.status_code == 200 and r.json()["Meta"]["monitoringStatus"] == 3
            # monitoring disabled: stopped, never queued
            r = client.post("/api/jobs/start_job/", json={**body, "jobId": 501, "monitoringStatus": 0})
            assert r.status_code == 201, r.text
            r = client.post("/api/jobs/stop_job/", json={"jobId": 501, "cluster": "fritz", "startTime": t0,
                                                         "stopTime": t0 + 3600})
            assert r.status_code == 200 and r.json()["monitoringStatus"] == 0
            assert queue.wait_idle(60) and queue.stats()["submitted"] == 1
            assert not rt.archive.exists("fritz", 501, t0)
    finally:
        queue.stop(10)
    assert queue.stats()["archived"] == 1


# --- workers -----------------------------------------------------------------------------------------------

def test_duration_worker_updates_running_jobs_only(live):
    from cc_backend.tasks import update_durations

    now = _now()
    a = start(live, 600, now - 1000)
    b = start(live, 601, now - 50, hosts=("f0103",))
    c = stop(live, start(live, 602, now - 5000, hosts=("f0104",)), now - 4995)
    assert update_durations(live.engine, now) == 2
    assert [row(live, j["id"])["duration"] for j in (a, b, c)] == [1000, 50, 5]


def test_walltime_stopper_marks_exactly_the_overdue_jobs_and_archives_them(live):
    from cc_backend.jobs.archiving import ArchiveQueue
    from cc_backend.tasks import stop_jobs_exceeding_walltime, walltime_task

    now = _now()
    overdue = start(live, 700, now - 5400, walltime=3600)          # 5400 > 3600 + 600
    in_grace = start(live, 701, now - 4000, walltime=3600, hosts=("f0103",))  # 4000 < 4200
    unlimited = start(live, 702, now - 90000, walltime=0, hosts=("f0104",))
    finished = stop(live, start(live, 703, now - 90000, walltime=60, hosts=("f0105",)), now - 89000)
    n = len(write_samples(live.metric_store, now - 5400, now - 1800))
    assert stop_jobs_exceeding_walltime(live.engine, 600, now=now - 10 ** 6) == []  # nobody overdue back then
    live.config.main.stop_jobs_exceeding_walltime = 600
    queue = ArchiveQueue(live)
    live.archiver = queue
    queue.start()
    task = walltime_task(live)
    assert task.interval == 86400 and 0 < task.first_delay <= 86400
    message = task.run()
    assert message.startswith("1 jobs exceeding their walltime by 600 s marked failed (fritz/700), 1 queued")
    assert queue.wait_idle(60)
    got = row(live, overdue["id"])
    assert (got["job_state"], got["duration"], got["monitoring_status"]) == ("failed", 3600, 3)
    for job, state in ((in_grace, "running"), (unlimited, "running"), (finished, "completed")):
        r = row(live, job["id"])
        assert (r["job_state"], r["monitoring_status"]) == (state, 1)
    meta = live.archive.load_meta("fritz", 700, overdue["startTime"])
    assert meta["jobState"] == "failed" and meta["duration"] == 3600
    # the archived window is [start, start + walltime]: the written samples end before it
    assert meta["statistics"]["cpu_load"]["avg"] == expected_statistics(n)["cpu_load"]["avg"]


def test_footprint_worker_updates_running_jobs(live):
    from cc_backend.tasks import footprint_task, update_running_footprints

    now = _now()
    running = start(live, 800, now - 3600)
    n = len(write_samples(live.metric_store, now - 3600, now))
    stopped = stop(live, start(live, 801, now - 3600, hosts=("f0103",)), now - 60)
    done, total, failed = update_running_footprints(live.engine, live.archive.registry(), live.metric_data)
    assert (done, total, failed) == (1, 1, 0)
    expected = expected_statistics(n)
    footprint = orjson.loads(row(live, running["id"])["footprint"])
    assert footprint == pytest.approx({"cpu_load_avg": expected["cpu_load"]["avg"],
                                       "mem_used_max": expected["mem_used"]["max"],
                                       "flops_any_avg": expected["flops_any"]["avg"],
                                       "mem_bw_avg": expected["mem_bw"]["avg"]}, abs=0.011)
    assert row(live, stopped["id"])["footprint"] is None
    assert footprint_task(live).run() == "1 of 1 running jobs' footprints updated, 0 failed"


def test_server_tasks_include_the_job_workers(live):
    from cc_backend.tasks import server_tasks

    assert [(t.name, t.interval) for t in server_tasks(live)] == [("duration-worker", 300), ("footprint-worker", 600)]
    live.config.main.stop_jobs_exceeding_walltime = 3600
    assert [t.name for t in server_tasks(live)][-1] == "stop-jobs-exceeding-walltime"


# --- the command -------------------------------------------------------------------------------------------

def test_cli_archives_a_job_from_the_checkpoints(live):
    from cc_backend.config.sections import MetricStoreConfig
    from cc_backend.metricstore.checkpoint import Checkpointer

    site: Path = live.site
    t0 = _now() - 4 * 3600
    job = stop(live, start(live, 900, t0), t0 + 3600)
    n = len(write_samples(live.metric_store, t0, t0 + 3600))
    config = MetricStoreConfig.model_validate({"retention-in-memory": "48h", "memory-cap": 8,
                                               "checkpoints": {"directory": str(site / "var" / "checkpoints")}})
    Checkpointer(live.metric_store, config).write_snapshot()
    raw = orjson.loads((site / "config.json").read_text())
    raw["metric-store"] = {"retention-in-memory": "48h", "memory-cap": 8,
                           "checkpoints": {"directory": str(site / "var" / "checkpoints")}}
    (site / "config.json").write_text(orjson.dumps(raw).decode())

    r = cli(site, "archive", "job", str(job["id"]))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"job {job['id']} (jobId 900 on fritz): archived, monitoring status 3" in r.stdout
    assert "built-in store restored from" in r.stdout and "2 hosts" in r.stdout
    assert "statistics of 6 metrics" in r.stdout and "meta.json" in r.stdout
    assert f"footprint: cpu_load_avg={expected_statistics(n)['cpu_load']['avg']}" in r.stdout
    assert_archived(live, job, n)

    r = cli(site, "archive", "job", "--job-id", "900", "--cluster", "fritz", "--format", "json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert orjson.loads(r.stdout)["ok"] is True
    assert cli(site, "archive", "job", "99999").returncode == 3
    running = start(live, 901, _now() - 60, hosts=("f0103",))
    assert cli(site, "archive", "job", str(running["id"])).returncode == 4
    empty = stop(live, start(live, 902, t0, hosts=("f0104",)), t0 + 60)
    r = cli(site, "archive", "job", str(empty["id"]))
    assert r.returncode == 1 and "NOT archived: no metric data" in r.stdout
