"""How the terminal UI writes times, durations, numbers and job states (one place for every screen)."""

from __future__ import annotations

import math
import time
from typing import Any

from cc_backend.jobs.model import current_duration, duration_clock

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
    """The core's ``1d 02:03:04`` form; empty for no duration."""
    return "" if seconds is None else duration_clock(seconds)


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
    """The job's duration; a running job's grows with the clock (the core's rule)."""
    return current_duration(job, now)
