"""How the terminal UI writes times, durations, numbers and job states (one place for every screen)."""

from __future__ import annotations

import math
import time
from typing import Any

#: Rich styles of job states; 16-colour names so they read in any terminal (NO_COLOR drops them).
STATE_STYLES = {
    "running": "bold green",
    "completed": "blue",
    "failed": "bold red",
    "cancelled": "yellow",
    "timeout": "yellow",
    "out_of_memory": "bold magenta",
    "node_fail": "red",
    "boot_fail": "red",
    "deadline": "yellow",
    "preempted": "cyan",
    "stopped": "cyan",
    "suspended": "cyan",
    "pending": "dim",
}
#: Styles of footprint levels (cc_backend.jobs.footprint.footprint_bars).
LEVEL_STYLES = {"good": "green", "caution": "yellow", "alert": "red", "above-peak": "magenta"}


def duration_text(seconds: int | float | None) -> str:
    """``1d 02:03:04`` / ``02:03:04``: as batch systems print wall times."""
    if seconds is None:
        return ""
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}d {clock}" if days else clock


def time_text(epoch: int | float | None) -> str:
    """Local time (the terminal's TZ) to the minute; empty for no time."""
    if not epoch:
        return ""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(int(epoch)))


def number_text(value: Any, digits: int = 2) -> str:
    """A measured value for a table cell: short, no exponent for everyday magnitudes, ``-`` for none."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "-"
    if isinstance(value, int) or float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.{digits}f}"


def elapsed(job: dict[str, Any], now: float) -> int:
    """The job's duration; a running job's grows with the clock."""
    if job.get("jobState") == "running":
        return max(0, int(now) - int(job.get("startTime") or 0))
    return int(job.get("duration") or 0)
