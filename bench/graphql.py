"""GraphQL (POST /query) on a 1,000,000-job SQLite database, real server: the issue's three goals and concurrency.

Database: as bench/rest_jobs_list.py (10,000 demo jobs copied 100 times). An archived 64-node job with
node-scope data for every metric of its cluster is imported for jobMetrics. Baseline in the same run:
GET /healthz. Usage:

    .venv/bin/python bench/graphql.py [--keep DIR] [--requests 100] [--seconds 10]
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import multiprocessing
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rest_jobs_list import build

BIN = Path(sys.executable).parent / "cc-backend"
BIG_JOB_ID = 99_000_001
BIG_JOB_NODES = 64
BIG_JOB_SAMPLES = 720  # 12 hours at 60 s

JOBS_QUERY = """query($filter: [JobFilter!], $page: PageRequest, $order: OrderByInput) {
  jobs(filter: $filter, page: $page, order: $order) {
    items { id jobId user project cluster subCluster startTime duration walltime numNodes numHWThreads numAcc
            energy SMT shared partition arrayJobId monitoringStatus state
            tags { id type name scope } resources { hostname hwthreads accelerators }
            footprint { name stat value } metaData }
    hasNextPage
  }
}"""
STATS_BY_USER = """{ jobsStatistics(groupBy: USER) { id name totalJobs runningJobs shortJobs totalWalltime
  totalNodes totalNodeHours totalCores totalCoreHours totalAccs totalAccHours } }"""
STATS_HISTOGRAMS = """{ jobsStatistics { totalJobs totalWalltime histDuration { count value }
  histNumNodes { count value } } }"""
JOB_METRICS = """query($id: ID!) { jobMetrics(id: $id, scopes: [node]) { name scope
  metric { unit { base prefix } timestep series { hostname statistics { avg min max } data } } } }"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_big_job(work: Path) -> tuple[Path, Path]:
    """meta.json and data.json of a 64-node fritz job with node-scope series for every fritz metric."""
    cluster = json.loads((work / "job-archive" / "fritz" / "cluster.json").read_text())
    sub = cluster["subClusters"][0]
    hosts = [f"f{n:04d}" for n in range(1, BIG_JOB_NODES + 1)]
    start = 1_700_000_000
    meta = {"jobId": BIG_JOB_ID, "user": "benchuser", "project": "benchproject", "cluster": "fritz",
            "subCluster": sub["name"], "numNodes": BIG_JOB_NODES, "numHwthreads": BIG_JOB_NODES * 72,
            "shared": "none", "startTime": start, "duration": BIG_JOB_SAMPLES * 60, "walltime": 86400,
            "jobState": "completed", "monitoringStatus": 3,
            "resources": [{"hostname": h} for h in hosts], "statistics": {}}
    data: dict = {}
    for mc in cluster["metricConfig"]:
        name, peak = mc["name"], float(mc.get("peak") or 100)
        series = []
        for k, host in enumerate(hosts):
            values = [round(peak * (0.5 + 0.4 * math.sin((i + k) / 37.0)), 3) for i in range(BIG_JOB_SAMPLES)]
            series.append({"hostname": host, "statistics": {"avg": sum(values) / len(values), "min": min(values),
                                                            "max": max(values)}, "data": values})
        data[name] = {"node": {"unit": mc.get("unit", {"base": ""}), "timestep": 60, "series": series}}
        meta["statistics"][name] = {"unit": mc.get("unit", {"base": ""}), "avg": peak * 0.5, "min": 0.1 * peak,
                                    "max": 0.9 * peak}
    meta_path, data_path = work / "big-meta.json", work / "big-data.json"
    meta_path.write_text(json.dumps(meta))
    data_path.write_text(json.dumps(data))
    return meta_path, data_path


class Client:
    def __init__(self, port: int, token: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def send(self, query: str, variables: dict | None = None) -> tuple[int, bytes]:
        self.conn.request("POST", "/query", body=json.dumps({"query": query, "variables": variables or {}}),
                          headers=self.headers)
        response = self.conn.getresponse()
        return response.status, response.read()

    def post(self, query: str, variables: dict | None = None) -> dict:
        return self.check(*self.send(query, variables))

    @staticmethod
    def check(status: int, raw: bytes) -> dict:
        body = json.loads(raw)
        assert status == 200 and not body.get("errors"), (status, str(body)[:300])
        return body["data"]

    def timed(self, n: int, query: str, variables: dict | None = None) -> tuple[list[float], dict]:
        """Request to last byte of the answer; the client's JSON parsing (~60 ms for a job's metric data) is not timed."""
        out, data = [], {}
        for _ in range(n):
            t = time.perf_counter()
            status, raw = self.send(query, variables)
            out.append((time.perf_counter() - t) * 1000)
            data = self.check(status, raw)
        return out, data

    def healthz(self, n: int) -> list[float]:
        out = []
        for _ in range(n):
            t = time.perf_counter()
            self.conn.request("GET", "/healthz")
            self.conn.getresponse().read()
            out.append((time.perf_counter() - t) * 1000)
        return out


def jobs_variables(now: int) -> dict:
    return {"filter": [{"cluster": {"eq": "fritz"}}, {"state": ["completed"]},
                       {"startTime": {"from": now - 400 * 86400, "to": now}}],
            "order": {"field": "startTime", "type": "col", "order": "DESC"}, "page": {"itemsPerPage": 50, "page": 1}}


#: A request whose time is mostly SQLite's (a COUNT over ~300,000 index entries), for the concurrency figure:
#: SQLite releases the GIL, so such requests overlap on two cores unless the server serialises them.
COUNT_QUERY = "query($filter: [JobFilter!]) { jobs(filter: $filter, page: {itemsPerPage: 1, page: 1}) { count } }"


def _client_loop(args: tuple) -> int:
    port, token, seconds, query, variables = args
    client = Client(port, token)
    done, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        client.post(query, variables)
        done += 1
    return done


def throughput(port: int, token: str, clients: int, seconds: float, query: str, variables: dict) -> float:
    with multiprocessing.get_context("spawn").Pool(clients) as pool:
        started = time.perf_counter()
        done = sum(pool.map(_client_loop, [(port, token, seconds, query, variables)] * clients))
        return done / (time.perf_counter() - started)


def show(label: str, values: list[float], goal: str = "") -> None:
    values = sorted(values)
    print(f"{label:58s} p50 {statistics.median(values):8.1f} ms  p99 {values[int(0.99 * (len(values) - 1))]:8.1f} ms"
          f"  (n={len(values)}){'  goal: ' + goal if goal else ''}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", type=Path)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="ccbench-graphql-"))
    work.mkdir(parents=True, exist_ok=True)
    server = None
    try:
        t = time.perf_counter()
        build(work)
        port = free_port()
        (work / "config.json").write_text(json.dumps({
            "main": {"addr": f"127.0.0.1:{port}", "db": str(work / "job.db")},
            "archive": {"kind": "file", "path": str(work / "job-archive")}, "auth": {"jwts": {"max-age": "2h"}}}))
        if not (work / ".env").exists():
            keys = json.loads(subprocess.run([str(BIN), "gen-keypair", "--format", "json"], capture_output=True,
                                             text=True, check=True).stdout)
            (work / ".env").write_text("".join(f'{k}="{v}"\n' for k, v in keys.items()) + 'SESSION_KEY="bench"\n')
        cli = [str(BIN), "--config", str(work / "config.json")]
        db = sqlite3.connect(work / "job.db")
        big = db.execute("SELECT id FROM job WHERE job_id = ?", (BIG_JOB_ID,)).fetchone()
        if big is None:
            meta_path, data_path = write_big_job(work)
            subprocess.run([*cli, "--import-job", f"{meta_path}:{data_path}"], cwd=work, check=True,
                           capture_output=True)
            big = db.execute("SELECT id FROM job WHERE job_id = ?", (BIG_JOB_ID,)).fetchone()
        count = db.execute("SELECT COUNT(*) FROM job").fetchone()[0]
        now = db.execute("SELECT MAX(start_time) FROM job").fetchone()[0]
        db.close()
        print(f"database: {count:,} jobs (built or reused in {time.perf_counter() - t:.0f} s)")
        subprocess.run([*cli, "--del-user", "bench"], cwd=work, capture_output=True)
        subprocess.run([*cli, "--add-user", "bench:admin,api:pw"], cwd=work, check=True, capture_output=True)
        token = subprocess.run([*cli, "--jwt", "bench"], cwd=work, check=True, capture_output=True,
                               text=True).stdout.strip()
        server = subprocess.Popen([*cli, "serve"], cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(150):
            try:
                probe = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                probe.request("GET", "/healthz")
                probe.getresponse().read()
                break
            except OSError:
                time.sleep(0.2)
        client = Client(port, token)
        client.post("{ jobs(page: {itemsPerPage: 1, page: 1}) { hasNextPage } }")  # the engine is built on the first request

        show("GET /healthz (baseline)", client.healthz(args.requests))
        variables = jobs_variables(now)
        values, data = client.timed(args.requests, JOBS_QUERY, variables)
        items = data["jobs"]["items"]
        assert len(items) == 50 and all(j["cluster"] == "fritz" and j["state"] == "completed" for j in items)
        show("jobs: fritz + completed + startTime range, 50 newest", values, "p50 <= 30 ms")

        reps = max(3, args.requests // 20)
        values, data = client.timed(reps, STATS_BY_USER)
        assert sum(s["totalJobs"] for s in data["jobsStatistics"]) == count
        show(f"jobsStatistics groupBy USER ({len(data['jobsStatistics'])} users)", values, "<= 1000 ms")
        values, data = client.timed(reps, STATS_HISTOGRAMS)
        assert sum(p["count"] for p in data["jobsStatistics"][0]["histNumNodes"]) == count
        show("jobsStatistics with histDuration + histNumNodes", values, "<= 2000 ms")

        values, data = client.timed(args.requests // 2, JOB_METRICS, {"id": str(big[0])})
        metrics = data["jobMetrics"]
        assert metrics and all(len(m["metric"]["series"]) == BIG_JOB_NODES for m in metrics)
        show(f"jobMetrics: 64-node archived job, {len(metrics)} metrics, node scope", values, "<= 150 ms")
        print(f"{'  of which the first request (data.json read and parsed)':58s} {values[0]:8.1f} ms")

        count_variables = {"filter": [{"cluster": {"eq": "fritz"}}, {"state": ["completed"]}]}
        for label, query, query_variables in (("jobs page (50 jobs)", JOBS_QUERY, variables),
                                              ("jobs count (SQLite-bound)", COUNT_QUERY, count_variables)):
            one = throughput(port, token, 1, args.seconds, query, query_variables)
            eight = throughput(port, token, 8, args.seconds, query, query_variables)
            print(f"{label:28s} 1 client {one:7.1f} req/s, 8 clients {eight:7.1f} req/s ({eight / one:.2f}x; "
                  f"clients in separate processes on the same 2 cores)")
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
