"""Benchmark: classify 100,000 synthetic archived jobs with all shipped job-class rules (goal >= 10,000 jobs/s)."""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from cc_backend.archive.cluster import load_cluster_config
from cc_backend.taggers.jobclasses import JobClassifier, job_environment, metric_environment

GOAL = 10_000
FRITZ = Path(__file__).resolve().parent.parent / "tests/fixtures/peer-data/archive/fritz/cluster.json"


def synthetic_jobs(count: int, seed: int = 14) -> list[dict]:
    rng = random.Random(seed)
    jobs = []
    for i in range(count):
        stats = {}
        for metric, peak in (("cpu_load", 72.0), ("mem_used", 256.0), ("flops_any", 5600.0), ("mem_bw", 350.0)):
            avg = rng.uniform(0.0, 1.3) * peak
            stats[metric] = {"min": avg * 0.5, "max": min(avg * 1.2, peak * 1.4), "avg": avg}
        jobs.append({"jobId": i, "shared": rng.choice(("none", "none", "none", "single_user")),
                     "duration": rng.randint(60, 86400), "numNodes": rng.randint(1, 16), "numHwthreads": 72,
                     "numAcc": 0, "jobState": "completed", "smt": 1, "statistics": stats})
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=100_000)
    args = parser.parse_args()
    subcluster = load_cluster_config(json.loads(FRITZ.read_text())).sub_cluster("main")
    classifier = JobClassifier()
    jobs = synthetic_jobs(args.jobs)
    metrics = tuple(sorted({m for r in classifier.ruleset.rules for m in r.metrics}))

    start = time.perf_counter()
    for job in jobs:
        job_environment(job)
        metric_environment(job, subcluster, metrics)
    floor = time.perf_counter() - start

    start = time.perf_counter()
    matched = sum(1 for job in jobs if classifier.classify(job, subcluster))
    elapsed = time.perf_counter() - start

    rate = len(jobs) / elapsed
    print(f"jobs: {len(jobs):,}  rules: {len(classifier.ruleset.rules)}  jobs with a class: {matched:,}")
    print(f"floor (building environments only): {len(jobs) / floor:,.0f} jobs/s")
    print(f"classify: {rate:,.0f} jobs/s ({elapsed:.2f} s)  goal >= {GOAL:,} jobs/s: {'OK' if rate >= GOAL else 'MISSED'}")


if __name__ == "__main__":
    main()
