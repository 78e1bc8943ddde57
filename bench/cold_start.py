"""Whole-process time of `cc-backend --help` and of `cc-backend jobs list --format json` on a 100k-job database.

Baseline in the same run: `python -c pass` (interpreter start-up). Usage:

    .venv/bin/python bench/cold_start.py [--keep DIR] [--runs 15]

A 100,000-job SQLite database is built first (demo generator, meta-only, then init-db) in DIR
(reused when DIR/job.db exists) or in a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent / "cc-backend"


def timed(cmd: list[str], runs: int, cwd: Path) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times)


def build_db(work: Path, jobs: int) -> Path:
    if (work / "job.db").exists():
        return work / "job.db"
    from cc_backend.archive.fs import FileArchive
    from cc_backend.db.engine import make_engine
    from cc_backend.db.migrate import migrate
    from cc_backend.demo import generate_archive
    from cc_backend.importer import init_db

    if not (work / "job-archive" / "version.txt").exists():
        generate_archive(work / "job-archive", seed=7, jobs=jobs, meta_only=True)
    engine = make_engine(f"sqlite:///{work / 'job.db'}")
    migrate(engine)
    init_db(engine, FileArchive(work / "job-archive"))
    engine.dispose()
    return work / "job.db"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", type=Path, help="build into (or reuse) this directory")
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="ccbench-cold-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        db = build_db(work, args.jobs)
        archive = work / "job-archive"
        (work / "config.json").write_text(json.dumps({
            "main": {"db": str(db.resolve())}, "archive": {"kind": "file", "path": str(archive)}}))
        env_cmds = {
            "python -c pass (baseline)": [sys.executable, "-c", "pass"],
            "cc-backend --help": [str(BIN), "--help"],
            "cc-backend jobs list --format json": [str(BIN), "jobs", "list", "--format", "json"],
        }
        goals = {"cc-backend --help": 0.3, "cc-backend jobs list --format json": 0.6}
        for label, cmd in env_cmds.items():
            median, best = timed(cmd, args.runs, work)
            goal = f"  (goal <= {goals[label]:.1f} s)" if label in goals else ""
            print(f"{label:40s} median {median * 1000:6.0f} ms, best {best * 1000:6.0f} ms{goal}")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
