"""Path rules of the file archive: ``<cluster>/<jobId//1000>/<jobId%1000:03d>/<startTime>/``."""

from __future__ import annotations

from pathlib import Path

from cc_backend.errors import InvalidInput


def check_path_component(value: str, field: str) -> str:
    """Reject a name that could escape the archive directory (``/``, ``\\``, ``..``, empty)."""
    if not isinstance(value, str) or not value or "/" in value or "\\" in value or ".." in value or "\x00" in value:
        raise InvalidInput(f"{field} {value!r} is not a valid name: it must not be empty or contain '/', '\\' or '..'", field=field)
    return value


def job_relpath(cluster: str, job_id: int, start_time: int) -> str:
    """Relative directory of one job, e.g. ``emmy/1403/244/1608923076``."""
    check_path_component(cluster, "cluster")
    job_id = int(job_id)
    return f"{cluster}/{job_id // 1000}/{job_id % 1000:03d}/{int(start_time)}"


def job_dir(root: str | Path, cluster: str, job_id: int, start_time: int) -> Path:
    return Path(root) / job_relpath(cluster, job_id, start_time)
