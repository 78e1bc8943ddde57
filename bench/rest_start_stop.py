"""start_job + stop_job throughput of a real server process, from 8 concurrent clients in another process.

Baseline in the same run: the same clients against GET /healthz (the server's ceiling without real
work). Afterwards every job must be in the database with state "completed". Usage:

    .venv/bin/python bench/rest_start_stop.py [--db sqlite|mysql] [--clients 8] [--seconds 15]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

from _support import Server, cluster_json, free_port, make_site

CLUSTER = cluster_json("benchcluster", [{"name": "load_one", "unit": {"base": ""}, "scope": "node", "timestep": 60,
                                         "aggregation": "avg", "peak": 8, "normal": 0, "caution": 0, "alert": 0}],
                       cores=4, threads_per_core=2)


def setup(work: Path, db: str) -> tuple[dict, str]:
    port = free_port()
    main = {"addr": f"127.0.0.1:{port}", "api-allowed-ips": ["*"]}
    mysql_db = None
    if db == "mysql":
        import pymysql

        mysql_db = f"ccbench_{uuid.uuid4().hex[:10]}"
        conn = pymysql.connect(host="127.0.0.1", user="root", password="")
        conn.cursor().execute(f"CREATE DATABASE {mysql_db} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        conn.close()
        main.update({"db-driver": "mysql", "db": f"mysql+pymysql://root@127.0.0.1:3306/{mysql_db}"})
    cli, token = make_site(work, CLUSTER, main)
    return {"port": port, "mysql_db": mysql_db, "cli": cli}, token


def client_process(port: int, token: str, clients: int, seconds: float, mode: str, results) -> None:  # type: ignore[no-untyped-def]
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"X-Auth-Token": token, "Content-Type": "application/json", "Accept": "application/json"}
        mine: list[float] = []
        bad: list[str] = []
        i = 0
        while time.monotonic() < deadline:
            i += 1
            if mode == "healthz":
                requests = [("GET", "/healthz", None, 200)]
            else:
                job_id = index * 10_000_000 + i
                start = 1_700_000_000 + i
                host = f"host{(index * 997 + i) % 10000:04d}"
                requests = [
                    ("POST", "/api/jobs/start_job/", {
                        "jobId": job_id, "user": f"user{index}", "project": "bench", "cluster": "benchcluster",
                        "partition": "main", "walltime": 3600, "numNodes": 1, "numHwthreads": 8, "shared": "none",
                        "monitoringStatus": 0, "smt": 1, "startTime": start,
                        "resources": [{"hostname": host, "hwthreads": list(range(8))}],
                        "metaData": {"jobName": "bench", "jobScript": "#!/bin/bash\nsrun ./a.out\n"}}, 201),
                    ("POST", "/api/jobs/stop_job/", {
                        "jobId": job_id, "cluster": "benchcluster", "startTime": start,
                        "jobState": "completed", "stopTime": start + 600}, 200),
                ]
            for method, path, body, expected in requests:
                t = time.perf_counter()
                try:
                    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
                    response = conn.getresponse()
                    payload = response.read()
                    if response.status != expected:
                        bad.append(f"{method} {path}: {response.status} {payload[:200]!r}")
                except (OSError, http.client.HTTPException) as exc:
                    bad.append(f"{method} {path}: {exc}")
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                mine.append(time.perf_counter() - t)
        with lock:
            latencies.extend(mine)
            errors.extend(bad)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results.put((latencies, errors, time.perf_counter() - started))


def run_clients(port: int, token: str, clients: int, seconds: float, mode: str) -> tuple[list[float], list[str], float]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=client_process, args=(port, token, clients, seconds, mode, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def report(label: str, latencies: list[float], errors: list[str], elapsed: float) -> None:
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    print(f"{label:28s} {len(latencies) / elapsed:8.0f} req/s   p50 {p(0.50):6.1f} ms   p99 {p(0.99):6.1f} ms   "
          f"errors {len(errors)}")
    for err in errors[:5]:
        print("   ", err)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "mysql"], default="sqlite")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=15)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ccbench-rest-"))
    info: dict = {}
    try:
        info, token = setup(work, args.db)
        prefix = os.environ.get("CC_BENCH_SERVER_PREFIX", "").split()  # e.g. "py-spy record -o prof.svg --"
        # py-spy (CC_BENCH_SERVER_PREFIX) writes its profile on SIGINT.
        with Server(work, info["cli"], info["port"], prefix, stop_signal=signal.SIGINT):
            print(f"database: {args.db}, {args.clients} clients in a separate process, {args.seconds:.0f} s each")
            report("GET /healthz (baseline)",
                   *run_clients(info["port"], token, args.clients, args.seconds / 3, "healthz"))
            latencies, errors, elapsed = run_clients(info["port"], token, args.clients, args.seconds, "jobs")
            report("start_job + stop_job", latencies, errors, elapsed)
            print("goal: >= 500 req/s, p99 <= 50 ms, 0 errors")
            out = subprocess.run([*info["cli"], "jobs", "list", "--count", "--state", "completed"], cwd=work,
                                 capture_output=True, text=True)
            running = subprocess.run([*info["cli"], "jobs", "list", "--count", "--state", "running"], cwd=work,
                                     capture_output=True, text=True)
            expected = (len(latencies) - len(errors)) // 2
            print(f"jobs completed in the database: {out.stdout.strip()} (expected about {expected}), "
                  f"still running: {running.stdout.strip()}")
    finally:
        if info.get("mysql_db"):
            import pymysql

            conn = pymysql.connect(host="127.0.0.1", user="root", password="")
            conn.cursor().execute(f"DROP DATABASE IF EXISTS {info['mysql_db']}")
            conn.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
