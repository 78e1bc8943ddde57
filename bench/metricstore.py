"""Built-in metric store figures: memory vs the raw float32 floor, a 64-node job query, in-process ingestion rate.

Run: ``.venv/bin/python bench/metricstore.py [--nodes 1000] [--hours 24] [--batches 30] [--cpu]``.

(a) memory of ``nodes`` x 20 node-level metrics x ``hours`` at 60 s, measured three ways (the store's own
    estimate, tracemalloc, RSS delta) against ``nodes * 20 * samples * 4`` bytes (goal <= 1.5x);
(b) ``/api/query`` of a running 64-node job, 10 metrics over the whole window at node scope (median ms,
    goal <= 100 ms) against numpy slicing + ``tolist()`` of the same arrays;
(c) ``write_lines`` of 10,000-line batches (one sample per series per batch, as collectors send them),
    samples/s, against ``bytes.split`` of the same bodies (goal >= 1,000,000/s in process).
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cc_backend.archive.cluster import ClusterRegistry, load_cluster_config  # noqa: E402
from cc_backend.metricstore.store import MetricStore  # noqa: E402

#: The clock of every timing: wall time, or CPU time of this process with --cpu (steadier on a shared machine).
clock = time.perf_counter
METRICS = 20
STEP = 60
T0 = 1_700_000_040


def _registry(nodes: int) -> ClusterRegistry:
    doc = {
        "name": "bench",
        "metricConfig": [{"name": f"m{i:02d}", "unit": {"base": ""}, "scope": "node", "timestep": STEP,
                          "aggregation": "avg", "peak": 1, "normal": 1, "caution": 1, "alert": 1}
                         for i in range(METRICS)],
        "subClusters": [{"name": "main", "nodes": f"n[0000-{nodes - 1:04d}]", "processorType": "x",
                         "socketsPerNode": 1, "coresPerSocket": 1, "threadsPerCore": 1,
                         "topology": {"node": [0], "socket": [[0]], "memoryDomain": [[0]], "core": [[0]]}}],
    }
    return ClusterRegistry([load_cluster_config(doc, "bench")])


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _filled(nodes: int, template: np.ndarray) -> MetricStore:
    store = MetricStore(_registry(nodes))
    for n in range(nodes):
        host = f"n{n:04d}"
        for m in range(METRICS):
            store.load_buffer("bench", host, (), f"m{m:02d}", T0, STEP, template)
    return store


def bench_memory(nodes: int, hours: float) -> tuple[MetricStore, dict[str, np.ndarray]]:
    samples = int(hours * 3600 // STEP)
    floor = nodes * METRICS * samples * 4
    rng = np.random.default_rng(1)
    template = rng.random(samples, dtype=np.float32)  # shared input, so only the store's copies count
    # RSS first and without tracemalloc, whose own per-allocation bookkeeping would show up in RSS
    gc.collect()
    rss0 = _rss()
    t = clock()
    store = _filled(nodes, template)
    fill = clock() - t
    gc.collect()
    rss = _rss() - rss0
    tracemalloc.start()
    snap0 = tracemalloc.get_traced_memory()[0]
    traced_store = _filled(nodes, template)
    traced = tracemalloc.get_traced_memory()[0] - snap0
    tracemalloc.stop()
    traced_store.close()
    del traced_store
    gc.collect()
    print(f"(a) memory, {nodes} nodes x {METRICS} metrics x {hours:g} h at {STEP} s ({samples} samples/series), "
          f"filled in {fill:.1f} s")
    print(f"    raw float32 floor      {floor / 1e6:9.1f} MB")
    for name, value in (("store.memory_bytes()", store.memory_bytes()), ("tracemalloc", traced), ("RSS delta", rss)):
        print(f"    {name:22s} {value / 1e6:9.1f} MB  = {value / floor:.3f}x floor (goal <= 1.5x)")
    return store, {"template": template}


def bench_query(store: MetricStore, nodes: int, hours: float, repeat: int = 15) -> None:
    samples = int(hours * 3600 // STEP)
    hosts = [f"n{n:04d}" for n in range(min(64, nodes))]
    metrics = [f"m{m:02d}" for m in range(10)]
    end = T0 + (samples - 1) * STEP
    request: dict[str, Any] = {"cluster": "bench", "from": T0, "to": end, "with-stats": True, "with-data": True,
               "queries": [{"metric": m, "host": h, "resolution": 0} for h in hosts for m in metrics]}
    times = []
    for _ in range(repeat):
        t = clock()
        res = store.query(request)
        times.append(clock() - t)
        assert len(res["results"]) == len(hosts) * len(metrics)
        assert len(res["results"][0][0]["data"]) == samples
        del res  # freeing 921,600 floats is not part of answering
    arrays = [np.random.default_rng(2).random(samples, dtype=np.float32) for _ in range(len(request["queries"]))]
    floor = []
    for _ in range(repeat):
        t = clock()
        kept = [a[0:samples].astype(np.float64).tolist() for a in arrays]  # kept, as a response keeps them
        floor.append(clock() - t)
        del kept
    as_arrays, as_json = [], []
    for _ in range(repeat):
        t = clock()
        res = store.query(request, arrays=True)
        as_arrays.append(clock() - t)
        orjson.dumps(res, option=orjson.OPT_SERIALIZE_NUMPY)
        as_json.append(clock() - t)
        del res
    print(f"(b) query of a {len(hosts)}-node job, {len(metrics)} metrics, {hours:g} h at node scope "
          f"({len(hosts) * len(metrics) * samples:,} values)")
    print(f"    store.query median     {statistics.median(times) * 1e3:9.1f} ms (goal <= 100 ms)")
    print(f"    floor (slice+tolist)   {statistics.median(floor) * 1e3:9.1f} ms")
    print(f"    query(arrays=True)     {statistics.median(as_arrays) * 1e3:9.1f} ms (+ orjson.dumps: "
          f"{statistics.median(as_json) * 1e3:.1f} ms, what /api/query can do)")
    # What GraphQL jobMetrics of the running job costs before serialising: the repository's job-to-query
    # translation, the store query (arrays), JSON-ready series with statistics, and statisticsSeries.
    from cc_backend.metrics.ccms import builtin_repository

    repository = builtin_repository(_registry(nodes), store)
    job = {"id": 1, "cluster": "bench", "subCluster": "main", "jobState": "running", "startTime": T0,
           "numNodes": len(hosts), "resources": [{"hostname": h} for h in hosts]}
    repository.now = lambda: end + STEP
    full = []
    for _ in range(repeat):
        t = clock()
        data = repository.load_data(job, metrics, ["node"], 0)
        full.append(clock() - t)
        assert len(data) == len(metrics) and len(data[metrics[0]]["node"]["series"]) == len(hosts)
        del data
    print(f"    jobMetrics' data (repository.load_data, with statisticsSeries) "
          f"{statistics.median(full) * 1e3:.1f} ms (goal <= 100 ms)")


def bench_ingest(nodes: int, batches: int) -> None:
    hosts = [f"n{n:04d}" for n in range(min(nodes, 500))]
    per_batch_hosts = 10_000 // METRICS
    store = MetricStore(_registry(nodes))
    bodies = []
    for b in range(batches):
        ts = T0 + STEP * b
        chosen = [hosts[(b * per_batch_hosts + i) % len(hosts)] for i in range(per_batch_hosts)]
        lines = [f"m{m:02d},cluster=bench,hostname={h},type=node value={(b * 7 + i * 3 + m) % 1000 / 7:.4f} {ts}"
                 for i, h in enumerate(chosen) for m in range(METRICS)]
        bodies.append("\n".join(lines).encode())
    n_lines = sum(body.count(b"\n") + 1 for body in bodies)
    store.write_lines(bodies[0], None)  # warm the series-key cache like a long-running server

    def best_rate(work: Callable[[bytes], object], rounds: int = 3) -> float:
        """Lines per second of the best of ``rounds`` passes over every body (the least disturbed one)."""
        best = math.inf
        for _ in range(rounds):
            t = clock()
            for body in bodies:
                work(body)
            best = min(best, clock() - t)
        return n_lines / best

    assert sum(store.write_lines(body, None) for body in bodies) == n_lines
    rate = best_rate(lambda body: store.write_lines(body, None))
    store.add_write_listener(lambda samples: None)
    listener_rate = best_rate(lambda body: store.write_lines(body, None))
    store.remove_write_listener(store._listeners[0])
    journal_rate = None
    try:
        from cc_backend.metricstore.wal import WalWriter
    except ImportError:  # the WAL is another module; the figure is optional
        pass
    else:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            writer = WalWriter(tmp)
            store.set_journal(writer)
            journal_rate = best_rate(lambda body: store.write_lines(body, None))
            store.set_journal(None)
            writer.close()
    split_rate = best_rate(lambda body: body.split(b"\n"))
    fields_rate = best_rate(lambda body: [line.split(b" ") for line in body.split(b"\n")])
    print(f"(c) ingestion, {batches} batches of {n_lines // batches:,} lines (parse + write, one thread)")
    print(f"    write_lines            {rate:12,.0f} samples/s (goal >= 1,000,000)")
    print(f"    with a write listener  {listener_rate:12,.0f} samples/s (Sample tuples built for it)")
    if journal_rate is not None:
        print(f"    with the WAL journal   {journal_rate:12,.0f} samples/s (set_journal(WalWriter): bodies logged)")
    print(f"    floor body.split(\\n)   {split_rate:12,.0f} lines/s")
    print(f"    floor + line.split(' ') {fields_rate:11,.0f} lines/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--hours", type=float, default=24)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--cpu", action="store_true", help="time with CPU time of this process instead of wall time")
    args = parser.parse_args()
    global clock
    if args.cpu:
        clock = time.process_time
    print(f"timings in {'CPU' if args.cpu else 'wall'} seconds")
    store, _ = bench_memory(args.nodes, args.hours)
    bench_query(store, args.nodes, args.hours)
    del store
    gc.collect()
    bench_ingest(args.nodes, args.batches)


if __name__ == "__main__":
    main()
