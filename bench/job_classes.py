"""Benchmark: classify 100,000 archived jobs with all shipped job-class rules (goal >= 10,000 jobs/s).

A temporary archive on fritz's cluster.json gets N meta.json files with statistics drawn at random around
the rules' thresholds (so every rule fires on some jobs and not on others); the database is built from
it with init-db. Printed, in one run:

- floor: reading the statistics alone (load meta.json of every job through the archive)
- classify: read + evaluate all shipped rules per job (the per-job work of JobClassTagger) -> the goal
- the tagger end to end (`JobTaggers.run`, database batches, tags and messages written): a first run
  that tags, and a second run over the same jobs that finds nothing new to write
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
from pathlib import Path

from cc_backend.archive.fs import FileArchive
from cc_backend.db.engine import make_engine
from cc_backend.db.migrate import ensure_schema
from cc_backend.importer import init_db
from cc_backend.taggers.jobclasses import JobClassifier
from cc_backend.taggers.service import JobTaggers

GOAL = 10_000
FIXTURES = Path(__file__).resolve().parent.parent / "tests/fixtures/peer-data/archive"
METRICS = (("cpu_load", 72.0, "", ""), ("mem_used", 256.0, "G", "B"), ("flops_any", 5600.0, "G", "F/s"),
           ("mem_bw", 350.0, "G", "B/s"))


def synthetic_meta(i: int, rng: random.Random) -> dict:
    nodes = rng.randint(1, 16)
    stats = {}
    for metric, peak, prefix, base in METRICS:
        avg = rng.uniform(0.0, 1.3) * peak
        stats[metric] = {"min": round(avg * 0.5, 2), "max": round(min(avg * 1.2, peak * 1.4), 2),
                         "avg": round(avg, 2), "unit": {"base": base, **({"prefix": prefix} if prefix else {})}}
    start = 1_700_000_000 + i * 37
    return {"jobId": 100_000 + i, "user": f"user{i % 97}", "project": f"p{i % 13}", "cluster": "fritz",
            "subCluster": "main", "partition": "singlenode", "arrayJobId": 0, "numNodes": nodes,
            "numHwthreads": 72 * nodes, "numAcc": 0, "shared": rng.choice(("none", "none", "none", "single_user")),
            "monitoringStatus": 3, "smt": 1, "jobState": "completed", "startTime": start,
            "duration": rng.randint(60, 86400), "walltime": 86400,
            "resources": [{"hostname": f"f{1000 + (i + n) % 900:04d}"} for n in range(nodes)],
            "statistics": stats, "tags": [], "metaData": {"jobName": f"job{i}"}}


def build_archive(root: Path, count: int) -> FileArchive:
    shutil.copytree(FIXTURES / "fritz", root / "fritz", ignore=shutil.ignore_patterns("[0-9]*"))
    (root / "version.txt").write_text("3\n")
    archive = FileArchive(str(root))
    rng = random.Random(14)
    for i in range(count):
        meta = synthetic_meta(i, rng)
        directory = archive.job_dir("fritz", meta["jobId"], meta["startTime"])
        directory.mkdir(parents=True)
        (directory / "meta.json").write_text(json.dumps(meta))
    return archive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--keep", metavar="DIR", help="build the site in DIR and keep it")
    args = parser.parse_args()
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-job-classes-"))
    try:
        started = time.perf_counter()
        archive = build_archive(folder / "archive", args.jobs)
        engine = make_engine(f"sqlite:///{folder / 'job.db'}")
        ensure_schema(engine)
        init_db(engine, archive)
        print(f"site: {args.jobs:,} archived fritz jobs built in {time.perf_counter() - started:.1f} s ({folder})")

        from cc_backend.jobs.query import list_jobs

        jobs = list_jobs(engine, [])
        registry = archive.registry()
        classifier = JobClassifier()

        start = time.perf_counter()
        for job in jobs:
            archive.load_meta(job["cluster"], job["jobId"], job["startTime"])["statistics"]
        floor = time.perf_counter() - start

        start = time.perf_counter()
        matched = 0
        for job in jobs:
            stats = archive.load_meta(job["cluster"], job["jobId"], job["startTime"])["statistics"]
            subcluster = registry.subcluster(job["cluster"], job["subCluster"])
            matched += bool(classifier.classify({**job, "statistics": stats}, subcluster))
        elapsed = time.perf_counter() - start
        rate = len(jobs) / elapsed
        print(f"rules: {len(classifier.ruleset.rules)}  jobs with a class: {matched:,} of {len(jobs):,}")
        print(f"floor (reading the statistics alone): {len(jobs) / floor:,.0f} jobs/s ({floor:.2f} s)")
        print(f"classify (read + all rules): {rate:,.0f} jobs/s ({elapsed:.2f} s)  goal >= {GOAL:,} jobs/s: "
              f"{'OK' if rate >= GOAL else 'MISSED'}")

        taggers = JobTaggers(lambda: engine, lambda: archive, enabled=True, job_class_site=folder / "no-site-rules")
        for label in ("first run (tags and messages written)", "second run (nothing new to write)"):
            summary = taggers.run("JobClassTagger")
            print(f"JobClassTagger.run, {label}: {summary.jobs / summary.seconds:,.0f} jobs/s "
                  f"({summary.jobs:,} jobs, {summary.tagged:,} tagged, {summary.seconds:.1f} s)")
        engine.dispose()
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
