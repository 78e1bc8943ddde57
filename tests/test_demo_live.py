"""The live demo: a finished-only demo archive, the feeder against a real server, running jobs, the example configs."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.cli import EXE, cli
from support.server import Server
from support.site import main_section, token, write_site

from cc_backend.archive.paths import job_relpath
from cc_backend.demo import FINISHED_STATES, generate_archive
from cc_backend.demo.clusters import make_clusters
from cc_backend.demo.live import (
    LIVE_JOBID_BASE,
    SEEDED_JOBID_BASE,
    IdleSampler,
    JobSampler,
    LivePlanner,
    start_payload,
)

REPO = Path(__file__).resolve().parents[1]
NOW = 1_750_000_000
#: The feeder's tick in the live test, and the metrics' timestep in that site's cluster.json: one sample per tick.
TICK = 1
JOB_SECONDS = 8
SUBCLUSTERS = {(c, sc.name): sc for c, scs in make_clusters().items() for sc in scs}


# ------------------------------------------------------------------------------------ the archive and the models


def test_demo_archive_holds_finished_jobs_only(tmp_path: Path) -> None:
    summary = generate_archive(tmp_path / "archive", seed=2, jobs=300, now=NOW, meta_only=True)
    metas = [json.loads(p.read_text()) for p in (tmp_path / "archive").rglob("meta.json")]
    assert len(metas) == summary.jobs == 300
    states = {m["jobState"] for m in metas}
    assert states == set(FINISHED_STATES)
    assert not states & {"running", "pending", "suspended"}
    for meta in metas:
        assert meta["monitoringStatus"] == 3 and meta["statistics"]
        assert meta["startTime"] + meta["duration"] <= NOW


def test_live_jobs_use_free_hosts_and_the_generators_models() -> None:
    planner = LivePlanner(4, NOW, max_nodes=4)
    busy: set[str] = set()
    jobs = []
    for _ in range(30):
        job = planner.plan(NOW, 900, busy)
        assert job is not None
        assert not busy & set(job.hosts) and len(job.hosts) <= 4
        busy.update(job.hosts)
        jobs.append(job)
    assert {j.cluster for j in jobs} == {"fritz", "alex"}
    assert all(j.meta["jobState"] == "running" and j.meta["startTime"] == NOW for j in jobs)
    assert all(j.duration == min(900, j.meta["walltime"]) for j in jobs)
    for job in jobs:
        sc = SUBCLUSTERS[(job.cluster, job.sc.name)]
        sampler = JobSampler(job, random.Random(1))
        lines = sampler.lines(NOW + 600, 60)
        node = {}
        for line in lines:
            head, value, ts = line.split(" ")
            metric, *tags = head.split(",")
            tag = dict(t.split("=") for t in tags)
            assert tag["cluster"] == job.cluster and tag["hostname"] in job.hosts and int(ts) == NOW + 600
            if tag["type"] == "node":
                node[(metric, tag["hostname"])] = float(value.removeprefix("value="))
            else:
                assert tag["type"] in ("hwthread", "socket", "accelerator") and len(job.hosts) <= 2
        cores = len(start_payload(job, 1)["resources"][0]["hwthreads"])
        for host in job.hosts:
            assert 0 <= node[("cpu_load", host)] <= cores
            assert sc.sockets * sc.p_idle * 0.9 <= node[("cpu_power", host)] <= sc.sockets * sc.tdp
            assert 0 < node[("mem_used", host)] <= sc.mem_gb
            assert sc.clk_idle * 0.9 <= node[("clock", host)] <= sc.clk_max
            if job.cluster == "alex" and job.gpu_idx:
                assert 0 <= node[("acc_utilization", host)] <= 100
    idle = IdleSampler(random.Random(2)).lines("fritz", busy, NOW)
    idle_hosts = {line.split(",")[2].removeprefix("hostname=") for line in idle}
    fritz_hosts = {h for (c, _n), sc in SUBCLUSTERS.items() if c == "fritz" for h in sc.hosts}
    assert idle_hosts == fritz_hosts - busy


# ------------------------------------------------------------------------------------------ the example configs


@pytest.mark.parametrize("name", ["config-cc-metric-store.json", "config-prometheus.json", "config-nats.json"])
def test_live_monitoring_example_configs_load(name: str) -> None:
    from cc_backend.config import load_config

    path = REPO / "configs" / name
    config = load_config(path)
    raw = json.loads(path.read_text())
    assert config.archive.kind == "file"
    if "metric-store" in raw:
        assert config.metric_store is not None
    assert len(config.metric_store_external) == len(raw.get("metric-store-external", []))
    for entry, parsed in zip(raw.get("metric-store-external", []), config.metric_store_external):
        assert parsed.scope == entry["scope"] and parsed.url == entry["url"]


# ------------------------------------------------------------------------------------------------- a live site


def _site(folder: Path) -> Path:
    """A demo site (a few archived jobs) whose metrics have a timestep of TICK seconds."""
    archive = folder / "archive"
    generate_archive(archive, seed=3, jobs=12, now=int(time.time()), meta_only=True)
    for cluster in ("fritz", "alex"):
        path = archive / cluster / "cluster.json"
        doc = json.loads(path.read_text())
        for mc in doc["metricConfig"]:
            mc["timestep"] = TICK
        path.write_text(json.dumps(doc))
    write_site(folder, main_section(f"sqlite:///{folder / 'job.db'}"), archive)
    r = cli(folder, "init-db")
    assert r.returncode == 0, r.stderr
    return folder


class Live:
    def __init__(self, site: Path, server: Server, feeder: subprocess.Popen, jwt: str) -> None:
        self.site, self.server, self.feeder, self.jwt = site, server, feeder, jwt
        self.headers = {"Authorization": f"Bearer {jwt}"}

    def get(self, path: str, **params: Any) -> Any:
        r = httpx.get(self.server.url + path, params=params, headers=self.headers, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()

    def graphql(self, query: str) -> Any:
        r = httpx.post(self.server.url + "/query", json={"query": query}, headers=self.headers, timeout=30)
        assert r.status_code == 200, r.text
        body = r.json()
        assert not body.get("errors"), body
        return body["data"]

    def feeder_log(self) -> str:
        return (self.site / "feeder.log").read_text(errors="replace")

    def running(self) -> list[dict[str, Any]]:
        jobs = self.get("/api/jobs/", state="running", **{"items-per-page": 100})["jobs"]
        return [j for j in jobs if j["jobId"] >= LIVE_JOBID_BASE]

    def wait(self, what: str, check: Any, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = check()
            if got:
                return got
            assert self.feeder.poll() is None, f"feeder exited:\n{self.feeder_log()}"
            time.sleep(0.3)
        pytest.fail(f"no {what} within {timeout} s\nfeeder:\n{self.feeder_log()}\nserver:\n{self.server.output()[-3000:]}")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    site = _site(tmp_path_factory.mktemp("live"))
    server = Server(site)
    server.wait_ready()
    jwt = token(site, ["admin", "api"], sub="demo")
    log = open(site / "feeder.log", "wb")  # noqa: SIM115 - closed below
    feeder = subprocess.Popen(
        [str(EXE), "demo", "feed", "--url", server.url, "--jobs", "3", "--interval", str(TICK),
         "--job-minutes", str(JOB_SECONDS / 60), "--seed", "11", "--no-idle-load", "--max-nodes", "2",
         "--give-up", "30", "--node-states", "2"],
        cwd=site, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "CC_FEED_TOKEN": jwt})
    try:
        yield Live(site, server, feeder, jwt)
    finally:
        if feeder.poll() is None:
            feeder.kill()
            feeder.wait()
        log.close()
        server.stop()


def test_feeder_keeps_jobs_running_on_free_demo_hosts(live: Live) -> None:
    jobs = live.wait("3 running feeder jobs", lambda: (r := live.running()) and len(r) >= 3 and r)
    hosts = [r["hostname"] for job in jobs for r in job["resources"]]
    assert len(hosts) == len(set(hosts))  # free nodes only
    for job in jobs:
        sc = SUBCLUSTERS[(job["cluster"], job["subCluster"])]
        assert {r["hostname"] for r in job["resources"]} <= set(sc.hosts)
        assert job["monitoringStatus"] == 1 and job["numNodes"] == len(job["resources"]) <= 2
        assert job["metaData"]["jobScript"].startswith("#!/bin/bash") if "metaData" in job else True
        assert job["user"] and job["project"] and job["walltime"] >= JOB_SECONDS


def test_running_job_metrics_come_from_the_feeder(live: Live) -> None:
    # the newest job: the most of its run time is still ahead
    job = live.wait("a feeder job", lambda: (r := live.running()) and max(r, key=lambda j: j["startTime"]))
    # let it run a few ticks
    time.sleep(max(0.0, job["startTime"] + 5 * TICK + 0.5 - time.time()))
    data = live.graphql(
        f'{{ jobMetrics(id: "{job["id"]}", metrics: ["cpu_load", "cpu_power", "mem_used"], scopes: [node]) '
        "{ name scope metric { timestep series { hostname data statistics { min avg max } } } } }")["jobMetrics"]
    elapsed = time.time() - job["startTime"]
    by_name = {m["name"]: m for m in data if m["scope"] == "node"}
    assert set(by_name) == {"cpu_load", "cpu_power", "mem_used"}
    sc = SUBCLUSTERS[(job["cluster"], job["subCluster"])]
    hosts = [r["hostname"] for r in job["resources"]]
    cores = len(job["resources"][0]["hwthreads"])
    for name, metric in by_name.items():
        assert metric["metric"]["timestep"] == TICK
        series = metric["metric"]["series"]
        assert sorted(s["hostname"] for s in series) == sorted(hosts)
        for s in series:
            values = [v for v in s["data"] if v is not None]
            # one sample per tick since the start; the newest may not be written yet
            assert elapsed / TICK - 3 <= len(s["data"]) <= elapsed / TICK + 2, (len(s["data"]), elapsed)
            assert len(values) >= len(s["data"]) // 2  # a tick of a busy machine may come late
            low, high = {"cpu_load": (0, cores), "cpu_power": (sc.sockets * sc.p_idle * 0.9, sc.sockets * sc.tdp),
                         "mem_used": (0, sc.mem_gb)}[name]
            assert all(low <= v <= high for v in values), (name, values)
    # per-core samples (jobs of at most 2 nodes): one series per hwthread of the job, as a percentage
    fine = live.graphql(
        f'{{ jobMetrics(id: "{job["id"]}", metrics: ["cpu_user"], scopes: [core]) '
        "{ name scope metric { series { hostname id data } } } }")["jobMetrics"]
    [core] = [m for m in fine if m["scope"] == "core"]
    series = core["metric"]["series"]
    assert sorted((s["hostname"], int(s["id"])) for s in series) == sorted(
        (r["hostname"], c) for r in job["resources"] for c in r["hwthreads"])
    assert all(0 <= v <= 100 for s in series for v in s["data"] if v is not None)
    assert sum(1 for s in series for v in s["data"] if v is not None) >= len(series) * 3


def test_feeder_reports_node_states_and_the_server_adds_health(live: Live) -> None:
    job = live.wait("a feeder job", lambda: (r := live.running()) and max(r, key=lambda j: j["startTime"]))
    host = job["resources"][0]["hostname"]
    query = ('{ nodes(filter: [{hostname: {eq: "%s"}}]) { items { hostname cluster schedulerState healthState '
             "jobsRunning cpusAllocated healthData } } }")

    def reported() -> dict[str, Any] | None:
        items = live.graphql(query % host)["nodes"]["items"]
        return items[0] if items and items[0]["jobsRunning"] >= 1 else None

    node = live.wait(f"a node state of {host} with its job", reported, timeout=30)
    assert node["cluster"] == job["cluster"] and node["schedulerState"] in ("allocated", "mixed")
    assert node["cpusAllocated"] == len(job["resources"][0]["hwthreads"])
    assert node["healthState"] in ("full", "partial")  # the feeder writes every metric of its job's nodes
    # a node without a job gets no samples in this test (--no-idle-load): idle, and failed for the health check
    # (of fritz's 512 main nodes, the last ones are the least likely to have had one of the test's few jobs)
    busy = {r["hostname"] for j in live.running() for r in j["resources"]}
    idle_host = next(h for h in reversed(SUBCLUSTERS[("fritz", "main")].hosts) if h not in busy)
    [idle] = live.graphql(query % idle_host)["nodes"]["items"]
    assert idle["schedulerState"] == "idle" and idle["jobsRunning"] == 0 and idle["healthState"] == "failed"


def test_stopped_feeder_jobs_are_archived(live: Live) -> None:
    first = live.wait("a feeder job", lambda: (r := live.running()) and r[0])

    def archived() -> dict[str, Any] | None:
        meta = live.get(f"/api/jobs/{first['id']}")["Meta"]
        return meta if meta["jobState"] != "running" and meta["monitoringStatus"] == 3 else None

    meta = live.wait(f"archiving of job {first['id']}", archived, timeout=JOB_SECONDS + 60)
    assert meta["jobState"] in ("completed", "failed", "cancelled", "out_of_memory", "timeout")
    assert 0 < meta["duration"] <= JOB_SECONDS + 2
    folder = Path(live.site / "archive" / job_relpath(meta["cluster"], meta["jobId"], meta["startTime"]))
    on_disk = json.loads((folder / "meta.json").read_text())
    assert on_disk["jobState"] == meta["jobState"] and on_disk["monitoringStatus"] == 3
    stats = on_disk["statistics"]
    assert {"cpu_load", "mem_used", "flops_any"} <= set(stats)
    assert all(0 <= s["min"] <= s["avg"] <= s["max"] for s in stats.values())
    assert (folder / "data.json").exists() or (folder / "data.json.gz").exists()
    # and the feeder started another one in its place
    live.wait("a new feeder job", lambda: any(j["id"] > first["id"] for j in live.running()))


def test_sigterm_stops_the_feeder_and_its_jobs(live: Live) -> None:
    live.wait("running feeder jobs", live.running)
    live.feeder.send_signal(signal.SIGTERM)
    assert live.feeder.wait(timeout=30) == 0, live.feeder_log()
    assert live.running() == []
    assert "feeder done" in live.feeder_log()


def test_feeder_gives_up_when_no_server_answers(tmp_path: Path) -> None:
    from support.server import free_port

    t0 = time.monotonic()
    r = subprocess.run([str(EXE), "demo", "feed", "--url", f"http://127.0.0.1:{free_port()}", "--token", "x",
                        "--interval", "0.2", "--give-up", "2"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 1
    assert time.monotonic() - t0 < 30
    assert "GET /api/clusters/ failed" in r.stderr and "no answer from" in r.stderr


def test_start_jobs_seeds_running_jobs_without_a_server(tmp_path: Path) -> None:
    site = _site(tmp_path)
    r = cli(site, "demo", "start-jobs", "--jobs", "4", "--now", str(int(time.time())), "--format", "json")
    assert r.returncode == 0, r.stderr
    started = json.loads(r.stdout)["started"]
    assert len(started) == 4
    assert all(SEEDED_JOBID_BASE <= j["jobId"] < LIVE_JOBID_BASE for j in started)
    import sqlite3

    with sqlite3.connect(site / "job.db") as db:
        rows = db.execute("SELECT job_state, monitoring_status, start_time, walltime FROM job WHERE job_id >= ?",
                          (SEEDED_JOBID_BASE,)).fetchall()
    assert len(rows) == 4
    assert all(state == "running" and status == 1 and start + wt > time.time() - 60 for state, status, start, wt in rows)


def test_feeder_keeps_only_the_newest_refusals() -> None:
    """A server that refuses every batch (4xx) for a long time: the feeder's error list stays bounded."""
    from cc_backend.demo.feeder import MAX_ERRORS, Feeder, FeedOptions

    seen: list[bytes] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        seen.append(request.content)
        return httpx.Response(400, json={"status": "Bad Request", "error": f"line 1: refusal {len(seen)}"})

    client = httpx.Client(base_url="http://feeder.test", transport=httpx.MockTransport(refuse))
    feeder = Feeder(FeedOptions(url="http://feeder.test", token="t", idle_load=False), client=client)
    for i in range(MAX_ERRORS + 20):
        feeder.pending["fritz"] = [f"cpu_load,hostname=f0101 value={i} {NOW + i}"]
        feeder._write(NOW + i)
    assert len(seen) == MAX_ERRORS + 20 and feeder.pending["fritz"] == []  # a 4xx batch is not sent again
    assert len(feeder.stats.errors) == MAX_ERRORS
    assert "refusal 21" in feeder.stats.errors[0] and f"refusal {MAX_ERRORS + 20}" in feeder.stats.errors[-1]
    client.close()


def test_feeder_sends_lines_again_after_a_failed_request() -> None:
    """docs/live-monitoring.md: failed requests (no answer, 5xx) are retried; their lines wait for the next tick."""
    from cc_backend.demo.feeder import Feeder, FeedOptions

    answers = iter([httpx.ConnectError("down"), httpx.Response(503, text="busy"), httpx.Response(200)])
    bodies: list[bytes] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    client = httpx.Client(base_url="http://feeder.test", transport=httpx.MockTransport(flaky))
    feeder = Feeder(FeedOptions(url="http://feeder.test", token="t", idle_load=False), client=client)
    line = f"cpu_load,hostname=f0101 value=1 {NOW}"
    for tick in range(3):
        feeder.pending.setdefault("fritz", [])
        if tick == 0:
            feeder.pending["fritz"].append(line)
        feeder._write(NOW + tick)
    assert bodies == [line.encode()] * 3 and feeder.stats.failed_requests == 2 and feeder.stats.lines == 1
    assert feeder.pending["fritz"] == [] and feeder.stats.errors == []
    client.close()
