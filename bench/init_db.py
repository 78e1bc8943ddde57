"""init-db throughput on a generated 100,000-job archive (meta.json only) into SQLite, against its floor.

The floor, measured in the same run on the same files: walk the archive and read + parse every
meta.json with orjson in one process, nothing else. Usage:

    .venv/bin/python bench/init_db.py [--jobs 100000] [--workers N] [--keep DIR] [--indexed-load]

``--indexed-load`` also loads the same rows into an empty job table twice, once with the 54 indexes
in place and once without them (the way init-db does it), to show why init-db drops them first.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from pathlib import Path

import orjson

from cc_backend.archive.fs import FileArchive, iter_meta_paths
from cc_backend.db.engine import make_engine
from cc_backend.db.migrate import migrate
from cc_backend.demo import generate_archive
from cc_backend.importer import init_db


def floor(root: Path) -> tuple[int, float]:
    started = time.perf_counter()
    n = 0
    loads = orjson.loads
    for path in iter_meta_paths(root):
        with open(path, "rb") as fh:
            loads(fh.read())
        n += 1
    return n, time.perf_counter() - started


def index_floor(db: Path) -> tuple[int, float]:
    """Drop the job indexes of a loaded database and create them again: SQLite's share of init-db, alone."""
    import sqlite3

    conn = sqlite3.connect(db, isolation_level=None)
    try:
        for pragma in ("journal_mode=DELETE", "temp_store=MEMORY", "cache_size=-2097152", "mmap_size=1073741824"):
            conn.execute(f"PRAGMA {pragma}")
        indexes = conn.execute("SELECT name, sql FROM sqlite_master WHERE type='index' AND tbl_name='job' "
                               "AND sql IS NOT NULL").fetchall()
        conn.execute("BEGIN")
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        conn.execute("COMMIT")
        started = time.perf_counter()
        conn.execute("BEGIN")
        for _, sql in indexes:
            conn.execute(sql)
        conn.execute("COMMIT")
        return len(indexes), time.perf_counter() - started
    finally:
        conn.close()


def indexed_load(db: Path) -> tuple[float, float]:
    """Seconds to insert the loaded job rows into an empty table with the indexes in place, and without them."""
    import sqlite3

    source = sqlite3.connect(db)
    rows = source.execute("SELECT * FROM job ORDER BY id").fetchall()
    table = source.execute("SELECT sql FROM sqlite_master WHERE type='table' AND name='job'").fetchone()[0]
    indexes = [sql for (sql,) in source.execute(
        "SELECT sql FROM sqlite_master WHERE type='index' AND tbl_name='job' AND sql IS NOT NULL")]
    source.close()
    seconds = []
    for with_indexes in (True, False):
        target = db.with_name("indexed-load.db")
        target.unlink(missing_ok=True)
        conn = sqlite3.connect(target, isolation_level=None)
        for pragma in ("journal_mode=DELETE", "temp_store=MEMORY", "cache_size=-2097152", "mmap_size=1073741824"):
            conn.execute(f"PRAGMA {pragma}")
        conn.execute(table)
        for sql in indexes if with_indexes else ():
            conn.execute(sql)
        insert = f"INSERT INTO job VALUES ({', '.join('?' * len(rows[0]))})"
        started = time.perf_counter()
        conn.execute("BEGIN")
        for i in range(0, len(rows), 5000):
            conn.executemany(insert, rows[i:i + 5000])
        conn.execute("COMMIT")
        seconds.append(time.perf_counter() - started)
        conn.close()
        target.unlink()
    return seconds[0], seconds[1]


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--keep", type=Path, default=None, help="generate into (or reuse) this directory")
    parser.add_argument("--indexed-load", action="store_true", help="also time a load with the indexes in place")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="ccbench-"))
    archive_root = work / "job-archive"
    try:
        if not (archive_root / "version.txt").exists():
            t = time.perf_counter()
            generate_archive(archive_root, seed=7, jobs=args.jobs, meta_only=True)
            print(f"generated {args.jobs:,} meta.json files in {time.perf_counter() - t:.1f} s")
        floor(archive_root)  # warm the page cache so both figures see the same cache state
        n, floor_s = floor(archive_root)
        db = work / "bench.db"
        db.unlink(missing_ok=True)
        engine = make_engine(f"sqlite:///{db}")
        migrate(engine)
        summary = init_db(engine, FileArchive(archive_root), workers=args.workers)
        engine.dispose()
        print(f"floor (walk + read + parse, 1 process): {n:,} jobs in {floor_s:.2f} s = {n / floor_s:,.0f} jobs/s")
        print(f"init-db into SQLite:                    {summary.jobs:,} jobs in {summary.seconds:.2f} s = "
              f"{summary.rate:,.0f} jobs/s ({len(summary.skipped)} skipped)")
        print(f"ratio init-db / floor: {summary.seconds / floor_s:.2f}x  (goal: >= 10,000 jobs/s, <= 2x floor)")
        n_indexes, index_s = index_floor(db)
        print(f"of which SQLite alone, CREATE INDEX x {n_indexes} on the loaded table: {index_s:.2f} s "
              f"(caps init-db at {summary.jobs / index_s:,.0f} jobs/s on this machine, before any parsing)")
        if args.indexed_load:
            with_indexes, without = indexed_load(db)
            print(f"the same rows into an empty table: {with_indexes:.2f} s with the {n_indexes} indexes in place, "
                  f"{without:.2f} s without them (+ {index_s:.2f} s to build them afterwards)")
        print("upstream Go reference: ~2,100 jobs/s (900,000 jobs in 430 s)")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
