"""Archiving throughput: stopped 8-node jobs archived per second from the built-in metric store.

Every job runs 2 h on 8 fritz nodes (subcluster main: 72 cores, 19 metrics of node, socket and
hwthread scope at 60 s), so archiving loads node and core scope (jobs of up to 8 nodes) of every
metric, computes statistics, writes meta.json + data.json.gz and updates the database
(``cc_backend.jobs.archiving.archive_job``). The jobs share the same 8 nodes and time window: the
store holds one window of data, each job reads it in full.

Floor in the same run: writing the same meta.json + data.json.gz files (``FileArchive.import_job``)
without loading any metric data. Also printed: the time of ``load_data`` alone. Usage:

    .venv/bin/python bench/archiving.py [--jobs 30] [--nodes 8] [--hours 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FRITZ = ROOT / "tests" / "fixtures" / "peer-data" / "archive" / "fritz" / "cluster.json"
STEP = 60


def make_archive(root: Path) -> None:
    (root / "fritz").mkdir(parents=True)
    (root / "version.txt").write_text("3\n")
    shutil.copyfile(FRITZ, root / "fritz" / "cluster.json")


def fill_store(store, subcluster, hosts: list[str], start: int, samples: int) -> int:  # type: ignore[no-untyped-def]
    """Plausible random series at every metric's native scope; returns the number of values."""
    rng = np.random.default_rng(42)
    topo = subcluster.topology
    levels = {"node": [()], "socket": [("socket", str(i)) for i in range(len(topo.socket))],
              "hwthread": [("hwthread", str(t)) for t in topo.node],
              "core": [("core", str(i)) for i in range(len(topo.core))],
              "memoryDomain": [("memoryDomain", str(i)) for i in range(len(topo.memory_domain))]}
    total = 0
    for host in hosts:
        for mc in subcluster.metric_config:
            for path in levels[mc.scope]:
                data = (rng.random(samples, dtype=np.float32) * (mc.peak or 100.0) / max(1, len(levels[mc.scope])))
                total += store.load_buffer("fritz", host, path, mc.name, start, mc.timestep, data)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--hours", type=float, default=2.0)
    args = parser.parse_args()

    from cc_backend.archive.fs import FileArchive
    from cc_backend.db.engine import make_engine
    from cc_backend.db.migrate import migrate
    from cc_backend.jobs.archiving import archive_job, archive_scopes
    from cc_backend.jobs.store import start_job, stop_job
    from cc_backend.metrics.ccms import builtin_repository
    from cc_backend.metricstore.store import MetricStore

    work = Path(tempfile.mkdtemp(prefix="ccb-bench-archiving-"))
    try:
        make_archive(work / "archive")
        make_archive(work / "floor")
        archive = FileArchive(work / "archive")
        floor_archive = FileArchive(work / "floor")
        registry = archive.registry()
        subcluster = registry.subcluster("fritz", "main")
        engine = make_engine(f"sqlite:///{work / 'job.db'}")
        migrate(engine)

        duration = int(args.hours * 3600)
        t0 = (int(time.time()) - duration - 3600) // STEP * STEP
        hosts = [f"f01{i:02d}" for i in range(1, args.nodes + 1)]
        store = MetricStore(registry, None)
        began = time.perf_counter()
        values = fill_store(store, subcluster, hosts, t0, duration // STEP + 1)
        print(f"store filled: {args.nodes} nodes x {len(subcluster.metric_config)} metrics x {args.hours:g} h at "
              f"{STEP} s, {values:,} values in {time.perf_counter() - began:.1f} s", file=sys.stderr)

        jobs = []
        for k in range(args.jobs):
            job = start_job(engine, registry, {
                "jobId": 1000 + k, "user": "bench", "project": "bench", "cluster": "fritz", "walltime": 86400,
                "numNodes": len(hosts), "numHwthreads": 72 * len(hosts), "startTime": t0,
                "resources": [{"hostname": h, "hwthreads": list(range(72))} for h in hosts]})
            jobs.append(stop_job(engine, {"jobId": 1000 + k, "cluster": "fritz", "startTime": t0,
                                          "stopTime": t0 + duration}))
        repository = builtin_repository(registry, store)
        scopes = archive_scopes(jobs[0])

        # metric loading alone
        load_times = []
        for job in jobs[: min(10, len(jobs))]:
            began = time.perf_counter()
            data = repository.load_data(job, [mc.name for mc in subcluster.metric_config], scopes, 0)
            load_times.append(time.perf_counter() - began)
        series = sum(len(entry["series"]) for scoped in data.values() for entry in scoped.values())

        # the real thing
        began = time.perf_counter()
        results = [archive_job(engine, archive, repository, job) for job in jobs]
        archive_seconds = time.perf_counter() - began
        failed = [r for r in results if not r["ok"]]
        if failed:
            sys.exit(f"{len(failed)} jobs failed to archive: {failed[0]['reason']}")
        data_file = Path(results[0]["files"][0])
        size = data_file.stat().st_size

        # floor: the same files, written without loading anything
        meta = archive.load_meta("fritz", jobs[0]["jobId"], t0)
        data = archive.load_data("fritz", jobs[0]["jobId"], t0)
        began = time.perf_counter()
        for k in range(len(jobs)):
            floor_archive.import_job({**meta, "jobId": 1000 + k}, data)
        floor_seconds = time.perf_counter() - began

        n = len(jobs)
        print(f"archiving {n} jobs of {args.nodes} nodes x {args.hours:g} h at {STEP} s, "
              f"{len(subcluster.metric_config)} metrics, scopes {'+'.join(scopes)} ({series} series per job, "
              f"data file {size / 1e6:.2f} MB):")
        print(f"  archive_job:            {n / archive_seconds:7.2f} jobs/s  ({1000 * archive_seconds / n:7.1f} ms/job)")
        print(f"    of which load_data:   {1000 * statistics.median(load_times):7.1f} ms/job (median of {len(load_times)})")
        print(f"  floor (files only):     {n / floor_seconds:7.2f} jobs/s  ({1000 * floor_seconds / n:7.1f} ms/job)")
        print(json.dumps({"jobs": n, "nodes": args.nodes, "jobs_per_s": round(n / archive_seconds, 2),
                          "floor_jobs_per_s": round(n / floor_seconds, 2),
                          "load_data_ms": round(1000 * statistics.median(load_times), 1),
                          "data_file_bytes": size}))
        engine.dispose()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
