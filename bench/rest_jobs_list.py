"""GET /api/jobs/ (first page, cluster + state filter) on a 1,000,000-job SQLite database, real server.

The database: 10,000 generated demo jobs loaded with init-db, then copied 99 times with shifted job
ids and start times (plain SQL), so the value distributions stay realistic. Baseline in the same
run: GET /healthz. Usage:

    .venv/bin/python bench/rest_jobs_list.py [--keep DIR] [--requests 300]
"""

from __future__ import annotations

import argparse
import http.client
import json
import sqlite3
import statistics
import time
from pathlib import Path

from _support import Server, free_port, scratch_folder, user_token, write_config

COPIES = 100
SEED_JOBS = 10_000


def build(work: Path) -> None:
    from cc_backend.archive.fs import FileArchive
    from cc_backend.db.engine import make_engine
    from cc_backend.db.migrate import migrate
    from cc_backend.db.tables import job_table
    from cc_backend.demo import generate_archive
    from cc_backend.importer import init_db

    if (work / "job.db").exists():
        return
    generate_archive(work / "job-archive", seed=3, jobs=SEED_JOBS, meta_only=True)
    engine = make_engine(f"sqlite:///{work / 'job.db'}")
    migrate(engine)
    init_db(engine, FileArchive(work / "job-archive"))
    engine.dispose()
    cols = [c.name for c in job_table.columns if c.name != "id"]
    con = sqlite3.connect(work / "job.db")
    select = ", ".join("job_id + :shift" if c == "job_id" else "start_time - :dt" if c == "start_time"
                       else "submit_time - :dt" if c == "submit_time" else c for c in cols)
    from sqlalchemy.dialects import sqlite as sqlite_dialect
    from sqlalchemy.schema import CreateIndex

    indexes = [str(CreateIndex(ix).compile(dialect=sqlite_dialect.dialect())) for ix in job_table.indexes]
    with con:  # copy without the 54 indexes, then build them once
        for ix in job_table.indexes:
            con.execute(f"DROP INDEX {ix.name}")
        con.execute("CREATE TEMP TABLE seed AS SELECT * FROM job")
        for copy in range(1, COPIES):
            con.execute(f"INSERT INTO job ({', '.join(cols)}) SELECT {select} FROM seed",
                        {"shift": copy * 10_000_000, "dt": copy * 3 * 86400})
        for ddl in indexes:
            con.execute(ddl)
    con.execute("ANALYZE")
    con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", type=Path)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    with scratch_folder(args.keep, "ccbench-list-") as work:
        t = time.perf_counter()
        build(work)
        count = sqlite3.connect(work / "job.db").execute("SELECT COUNT(*) FROM job").fetchone()[0]
        print(f"database: {count:,} jobs (built or reused in {time.perf_counter() - t:.0f} s)")
        port = free_port()
        cli = write_config(work, {"addr": f"127.0.0.1:{port}"}, work / "job-archive")
        token = user_token(cli, work, "bench", "api", "pw")
        with Server(work, cli, port):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            headers = {"X-Auth-Token": token}

            def timed(path: str) -> list[float]:
                out = []
                for _ in range(args.requests):
                    t = time.perf_counter()
                    conn.request("GET", path, headers=headers)
                    response = conn.getresponse()
                    body = response.read()
                    assert response.status == 200, (response.status, body[:200])
                    out.append((time.perf_counter() - t) * 1000)
                return out

            base = timed("/healthz")
            path = "/api/jobs/?cluster=fritz&state=completed&page=1&items-per-page=25"
            listing = timed(path)
            conn.request("GET", path, headers=headers)
            jobs = json.loads(conn.getresponse().read())["jobs"]
        assert len(jobs) == 25 and all(j["cluster"] == "fritz" and j["jobState"] == "completed" for j in jobs)
        for label, values in (("GET /healthz (baseline)", base), (f"GET {path}", listing)):
            values.sort()
            print(f"{label:75s} p50 {statistics.median(values):6.1f} ms  p99 {values[int(0.99 * len(values))]:6.1f} ms")
        print("goal: p50 <= 20 ms for the job list")

if __name__ == "__main__":
    main()
