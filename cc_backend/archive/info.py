"""Summary of an archive per cluster (jobs, start-time span, size), like upstream's archive-manager."""

from __future__ import annotations

import os
import time
from typing import Any

from cc_backend.archive.fs import iter_meta_paths


def archive_info(root: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """One row per cluster; start times come from the directory names, sizes from the files."""
    stats: dict[str, dict[str, Any]] = {}
    root = os.fspath(root)
    for meta_path in iter_meta_paths(root):
        job_dir = os.path.dirname(meta_path)
        cluster = os.path.relpath(job_dir, root).split(os.sep)[0]
        start = int(os.path.basename(job_dir))
        entry = stats.setdefault(cluster, {"jobs": 0, "first": start, "last": start, "bytes": 0})
        entry["jobs"] += 1
        entry["first"] = min(entry["first"], start)
        entry["last"] = max(entry["last"], start)
        with os.scandir(job_dir) as it:
            entry["bytes"] += sum(e.stat().st_size for e in it if e.is_file())

    def fmt(ts: int) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))

    return [
        {"cluster": c, "jobs": s["jobs"], "first_start": fmt(s["first"]), "last_start": fmt(s["last"]),
         "megabytes": round(s["bytes"] / 1e6, 2)}
        for c, s in sorted(stats.items())
    ]
