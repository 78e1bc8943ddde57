"""Time the demo archive generator: 100,000 meta-only jobs by default.

    .venv/bin/python bench/demo_generate.py                 # 100k jobs, meta.json only
    .venv/bin/python bench/demo_generate.py --data --jobs 2000   # the default demo with data.json
    .venv/bin/python bench/demo_generate.py --dir /dev/shm  # separate generation from disk speed

Writes into a temporary directory (under --dir if given), prints jobs/s, size and file count, then removes it
(unless --keep).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from cc_backend.demo import generate_archive


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--data", action="store_true", help="also write data.json (default: meta_only)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=None, help="worker processes (default: CPUs + 1, at most 8)")
    ap.add_argument("--dir", default=None, help="parent directory of the temporary archive")
    ap.add_argument("--keep", action="store_true", help="keep the archive and print its path")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="cc-demo-bench-", dir=args.dir))
    root = tmp / "archive"
    try:
        t0 = time.perf_counter()
        summary = generate_archive(root, seed=args.seed, jobs=args.jobs, meta_only=not args.data,
                                   workers=args.workers)
        elapsed = time.perf_counter() - t0
        mode = "meta.json + data.json" if args.data else "meta_only"
        print(f"{summary.jobs} jobs ({mode}) in {elapsed:.1f} s: {summary.jobs / elapsed:,.0f} jobs/s")
        print(f"{summary.bytes_written / 1e6:.1f} MB in {summary.files_written} files; "
              f"clusters {summary.clusters}; {summary.users} users, {summary.projects} projects")
        print(f"states {summary.states}")
        if args.keep:
            print(f"kept: {root}")
    finally:
        if not args.keep:
            t1 = time.perf_counter()
            shutil.rmtree(tmp, ignore_errors=True)
            print(f"removed {tmp} in {time.perf_counter() - t1:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
