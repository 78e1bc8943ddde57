"""Line-protocol ingestion over HTTP: samples/s a real ``cc-backend serve`` stores via POST /api/write.

A client process (persistent httpx connections, ``--threads`` threads) posts batches of ``--batch`` lines
(1,000 hosts x 10 node metrics per timestamp) for ``--seconds``. Baseline in the same run: the same client
against a sink, a second small process running the same WSGI server (cheroot) with an app that reads the
body and drops it, i.e. the client's and the HTTP layer's own ceiling. The server runs with a
``metric-store`` section, so every accepted sample also goes to the write-ahead log, as in production.
Afterwards one series is read back through /api/query and must hold the values last written. Usage:

    .venv/bin/python bench/ingest_http.py [--seconds 15] [--threads 2] [--batch 10000]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import threading
import time
from pathlib import Path

from _support import Server, cluster_json, free_port, make_site, wait_ready

METRICS = [f"m{i}" for i in range(10)]
HOSTS = 1000
TIMESTEP = 60
#: Distinct timestamps the client cycles through (the batches are built once, before timing).
TIMESTAMPS = 30
CLUSTER = cluster_json("ingest", [{"name": m, "unit": {"base": ""}, "scope": "node", "timestep": TIMESTEP,
                                   "aggregation": "avg", "peak": 100, "normal": 50, "caution": 10, "alert": 5}
                                  for m in METRICS], cores=4, threads_per_core=1)


def setup(work: Path) -> tuple[list[str], int, str]:
    port = free_port()
    cli, token = make_site(work, CLUSTER, {"addr": f"127.0.0.1:{port}"},
                           {"metric-store": {"retention-in-memory": "48h", "memory-cap": 4,
                                             "checkpoints": {"directory": str(work / "checkpoints")}}})
    return cli, port, token


def value(host: int, metric: int, step: int) -> float:
    return float((host * 7 + metric * 3 + step) % 1000) / 4


def batches(base: int, batch: int) -> list[bytes]:
    """The bodies, each ``batch`` lines; host x metric at one timestamp after the other."""
    lines: list[bytes] = []
    for step in range(TIMESTAMPS):
        ts = base + step * TIMESTEP
        for h in range(HOSTS):
            for j, m in enumerate(METRICS):
                lines.append(f"{m},hostname=host{h:04d},type=node value={value(h, j, step)} {ts}\n".encode())
    return [b"".join(lines[i:i + batch]) for i in range(0, len(lines), batch)]


def client(port: int, token: str, base: int, batch: int, threads: int, seconds: float, results) -> None:  # type: ignore[no-untyped-def]
    import httpx

    bodies = batches(base, batch)
    counts = [0] * threads
    errors: list[str] = []
    stop_at = [0.0]
    ready = threading.Barrier(threads + 1)
    go = threading.Event()

    def run(k: int) -> None:
        headers = {"X-Auth-Token": token, "Content-Type": "text/plain"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60) as http:
            http.post("/api/write?cluster=ingest", content=bodies[0])  # connect and warm up
            ready.wait()
            go.wait()
            i = k
            while time.perf_counter() < stop_at[0]:
                body = bodies[i % len(bodies)]
                r = http.post("/api/write?cluster=ingest", content=body)
                if r.status_code != 200:
                    errors.append(f"{r.status_code} {r.text[:200]}")
                    return
                counts[k] += body.count(b"\n")
                i += threads

    workers = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    ready.wait()
    began = time.perf_counter()
    stop_at[0] = began + seconds
    go.set()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - began
    results.put({"samples": sum(counts), "seconds": elapsed, "errors": errors[:3],
                 "bytes": sum(len(b) for b in bodies) // len(bodies)})


def sink(port: int) -> None:
    """A cheroot WSGI app that reads each request body and drops it: the HTTP layer's own ceiling."""
    from cheroot import wsgi

    def app(environ, start_response):  # type: ignore[no-untyped-def]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        stream = environ["wsgi.input"]
        while length > 0:
            chunk = stream.read(min(length, 1 << 20))
            if not chunk:
                break
            length -= len(chunk)
        start_response("200 OK", [("Content-Length", "0")])
        return [b""]

    wsgi.Server(("127.0.0.1", port), app, numthreads=16).start()  # ended with SIGKILL


def measure(port: int, token: str, base: int, args: argparse.Namespace) -> dict:
    results: multiprocessing.Queue = multiprocessing.Queue()
    proc = multiprocessing.Process(target=client, args=(port, token, base, args.batch, args.threads, args.seconds,
                                                         results))
    proc.start()
    out = results.get(timeout=args.seconds + 300)
    proc.join()
    if out["errors"]:
        raise SystemExit(f"errors: {out['errors']}")
    return out


def read_back(port: int, token: str, base: int) -> list:
    import httpx

    step = TIMESTAMPS - 1
    query = {"cluster": "ingest", "from": base + step * TIMESTEP, "to": base + step * TIMESTEP + TIMESTEP - 1,
             "queries": [{"metric": "m3", "host": "host0042", "resolution": TIMESTEP}]}
    r = httpx.post(f"http://127.0.0.1:{port}/api/query", json=query, headers={"X-Auth-Token": token}, timeout=30)
    r.raise_for_status()
    return r.json()["results"][0][0]["data"]


def read_back_all(port: int, token: str, base: int) -> dict:
    import httpx

    query = {"cluster": "ingest", "from": base - 3600, "to": base + 7200,
             "queries": [{"metric": "m3", "host": "host0042", "resolution": TIMESTEP}]}
    return httpx.post(f"http://127.0.0.1:{port}/api/query", json=query, headers={"X-Auth-Token": token},
                      timeout=30).json()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=10_000)
    args = parser.parse_args()
    base = (int(time.time()) - TIMESTAMPS * TIMESTEP) // TIMESTEP * TIMESTEP
    with tempfile.TemporaryDirectory(prefix="cc-ingest-") as tmp:
        work = Path(tmp)
        cli, port, token = setup(work)
        with Server(work, cli, port) as server:
            sink_port = free_port()
            sink_proc = multiprocessing.Process(target=sink, args=(sink_port,), daemon=True)
            sink_proc.start()
            try:
                wait_ready(sink_port, sink_proc.is_alive)  # the sink answers 200 to any path
                floor = measure(sink_port, token, base, args)
                ours = measure(port, token, base, args)
                data = read_back(port, token, base)
                if data != [value(42, 3, TIMESTAMPS - 1)]:
                    print("debug:", read_back_all(port, token, base))
            finally:
                sink_proc.kill()
                sink_proc.join(10)
        expected = value(42, 3, TIMESTAMPS - 1)
        ok = data == [expected]
        rate = ours["samples"] / ours["seconds"]
        floor_rate = floor["samples"] / floor["seconds"]
        print(f"batch: {args.batch} lines (~{ours['bytes'] / 1e6:.2f} MB), client threads: {args.threads}, "
              f"{args.seconds:.0f} s each")
        print(f"cc-backend /api/write : {rate:12,.0f} samples/s  ({ours['samples']:,} samples, "
              f"{ours['samples'] / args.batch / ours['seconds']:.1f} requests/s)")
        print(f"sink (read and drop)  : {floor_rate:12,.0f} samples/s  (client + HTTP floor)")
        print(f"cc-backend / sink     : {rate / floor_rate:12.2f}")
        print(f"goal >= 500,000 samples/s: {'met' if rate >= 500_000 else 'MISSED'}")
        print(f"read back host0042/m3 at the last timestamp: {data} (expected [{expected}]): {'ok' if ok else 'WRONG'}")
        if not ok:
            print(server.log_tail())
            sys.exit(1)


if __name__ == "__main__":
    main()
