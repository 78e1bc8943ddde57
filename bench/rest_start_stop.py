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
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

BIN = Path(sys.executable).parent / "cc-backend"
CLUSTER = {
    "name": "benchcluster",
    "metricConfig": [{"name": "load_one", "unit": {"base": ""}, "scope": "node", "timestep": 60,
                      "aggregation": "avg", "peak": 8, "normal": 0, "caution": 0, "alert": 0}],
    "subClusters": [{"name": "sc1", "nodes": "host[0000-9999]", "processorType": "x", "socketsPerNode": 1,
                     "coresPerSocket": 4, "threadsPerCore": 2, "flopRateScalar": {"unit": {"base": "F/s"}, "value": 1},
                     "flopRateSimd": {"unit": {"base": "F/s"}, "value": 1},
                     "memoryBandwidth": {"unit": {"base": "B/s"}, "value": 1},
                     "topology": {"node": list(range(8)), "core": [[i] for i in range(8)]}}],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup(work: Path, db: str) -> tuple[dict, str]:
    (work / "archive" / "benchcluster").mkdir(parents=True)
    (work / "archive" / "version.txt").write_text("3\n")
    (work / "archive" / "benchcluster" / "cluster.json").write_text(json.dumps(CLUSTER))
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
    else:
        main["db"] = str(work / "job.db")
    config = {"main": main, "archive": {"kind": "file", "path": str(work / "archive")},
              "auth": {"jwts": {"max-age": "2h"}}}
    (work / "config.json").write_text(json.dumps(config))
    out = subprocess.run([str(BIN), "gen-keypair", "--format", "json"], capture_output=True, text=True, check=True)
    keys = json.loads(out.stdout)
    (work / ".env").write_text("".join(f'{k}="{v}"\n' for k, v in keys.items()) + 'SESSION_KEY="bench"\n')
    cli = [str(BIN), "--config", str(work / "config.json")]
    subprocess.run([*cli, "-migrate-db"], cwd=work, check=True, capture_output=True)
    subprocess.run([*cli, "-add-user", "bench:api:benchpw"], cwd=work, check=True, capture_output=True,
                   env={**os.environ, "CC_BCRYPT_ROUNDS": "4"})
    token = subprocess.run([*cli, "-jwt", "bench"], cwd=work, check=True, capture_output=True, text=True).stdout.strip()
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
    server = None
    info: dict = {}
    try:
        info, token = setup(work, args.db)
        prefix = os.environ.get("CC_BENCH_SERVER_PREFIX", "").split()  # e.g. "py-spy record -o prof.svg --"
        # The server's log (one access line per request at its default level) goes to a file: a pipe that
        # nobody reads fills up after a few thousand requests and then blocks the server's writes.
        server_log = open(work / "server.log", "wb")  # noqa: SIM115 - the process writes it until the end
        server = subprocess.Popen([*prefix, *info["cli"], "serve"], cwd=work, stdout=subprocess.DEVNULL,
                                  stderr=server_log)
        deadline = time.monotonic() + 30
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", info["port"], timeout=1)
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit(f"server did not start: {(work / 'server.log').read_text(errors='replace')}")
            time.sleep(0.2)
        print(f"database: {args.db}, {args.clients} clients in a separate process, {args.seconds:.0f} s each")
        report("GET /healthz (baseline)", *run_clients(info["port"], token, args.clients, args.seconds / 3, "healthz"))
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
        if server is not None:
            server.send_signal(signal.SIGINT)  # py-spy (CC_BENCH_SERVER_PREFIX) writes its profile on SIGINT
            server.wait(60)
        if info.get("mysql_db"):
            import pymysql

            conn = pymysql.connect(host="127.0.0.1", user="root", password="")
            conn.cursor().execute(f"DROP DATABASE IF EXISTS {info['mysql_db']}")
            conn.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
