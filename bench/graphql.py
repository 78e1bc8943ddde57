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
import multiprocessing
import sqlite3
import statistics
import subprocess
import time
from pathlib import Path

from _support import JOB_FIELDS, Server, free_port, scratch_folder, user_token, write_big_job, write_config
from rest_jobs_list import build

BIG_JOB_ID = 99_000_001
BIG_JOB_NODES = 64

JOBS_QUERY = f"""query($filter: [JobFilter!], $page: PageRequest, $order: OrderByInput) {{
  jobs(filter: $filter, page: $page, order: $order) {{ items {{ {JOB_FIELDS} }} hasNextPage }}
}}"""
STATS_BY_USER = """{ jobsStatistics(groupBy: USER) { id name totalJobs runningJobs shortJobs totalWalltime
  totalNodes totalNodeHours totalCores totalCoreHours totalAccs totalAccHours } }"""
STATS_HISTOGRAMS = """{ jobsStatistics { totalJobs totalWalltime histDuration { count value }
  histNumNodes { count value } } }"""
JOB_METRICS = """query($id: ID!) { jobMetrics(id: $id, scopes: [node]) { name scope
  metric { unit { base prefix } timestep series { hostname statistics { avg min max } data } } } }"""


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
    with scratch_folder(args.keep, "ccbench-graphql-") as work:
        t = time.perf_counter()
        build(work)
        port = free_port()
        cli = write_config(work, {"addr": f"127.0.0.1:{port}"}, work / "job-archive")
        db = sqlite3.connect(work / "job.db")
        big = db.execute("SELECT id FROM job WHERE job_id = ?", (BIG_JOB_ID,)).fetchone()
        if big is None:
            cluster = json.loads((work / "job-archive" / "fritz" / "cluster.json").read_text())
            meta_path, data_path = write_big_job(work, cluster, job_id=BIG_JOB_ID, nodes=BIG_JOB_NODES,
                                                 user="benchuser", start=1_700_000_000, host_phase=1)
            subprocess.run([*cli, "--import-job", f"{meta_path}:{data_path}"], cwd=work, check=True,
                           capture_output=True)
            big = db.execute("SELECT id FROM job WHERE job_id = ?", (BIG_JOB_ID,)).fetchone()
        count = db.execute("SELECT COUNT(*) FROM job").fetchone()[0]
        now = db.execute("SELECT MAX(start_time) FROM job").fetchone()[0]
        db.close()
        print(f"database: {count:,} jobs (built or reused in {time.perf_counter() - t:.0f} s)")
        token = user_token(cli, work, "bench", "admin,api", "pw")
        with Server(work, cli, port):
            measure(port, token, big[0], count, now, args)


def measure(port: int, token: str, big_id: int, count: int, now: int, args: argparse.Namespace) -> None:
    """The figures against the server on ``port``; ``count`` jobs, the newest started at ``now``."""
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

    values, data = client.timed(args.requests // 2, JOB_METRICS, {"id": str(big_id)})
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

if __name__ == "__main__":
    main()
