"""Resampling of metric series: LTTB downsampling and the resolution defaults of ``main.resampling``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cc_backend.config.sections import ResamplingConfig

#: Upstream's ``main.resampling.minimum-points`` when the section is absent.
DEFAULT_MINIMUM_POINTS = 1000


def lttb(data: Sequence[float | None], target: int) -> list[float | None]:
    """Largest-Triangle-Three-Buckets downsampling of equally spaced samples to ``target`` points.

    Keeps the first and last sample and, per bucket, the sample spanning the largest triangle with
    the previous pick and the next bucket's mean, so peaks survive (unlike averaging). Missing
    samples (None) are never picked while a bucket has a real one.
    """
    n = len(data)
    if target >= n or target < 3:
        return list(data)
    every = (n - 2) / (target - 2)
    out: list[float | None] = [data[0]]
    a = 0
    for i in range(target - 2):
        start = int(i * every) + 1
        end = min(int((i + 1) * every) + 1, n - 1)
        next_start, next_end = end, min(int((i + 2) * every) + 1, n)
        xs = [x for x in range(next_start, next_end) if data[x] is not None and not math.isnan(data[x])]  # type: ignore[arg-type]
        if xs:
            avg_x = sum(xs) / len(xs)
            avg_y = sum(data[x] for x in xs) / len(xs)  # type: ignore[misc]
        else:
            avg_x, avg_y = (next_start + next_end - 1) / 2, None
        ay = data[a]
        best, best_area = start, -1.0
        for j in range(start, end):
            y = data[j]
            if y is None or math.isnan(y):
                continue
            if ay is None or math.isnan(ay) or avg_y is None:
                area = abs(y)  # no reference points: keep the most extreme sample
            else:
                area = abs((a - avg_x) * (y - ay) - (a - j) * (avg_y - ay))
            if area > best_area:
                best, best_area = j, area
        out.append(data[best])
        a = best
    out.append(data[-1])
    return out


def resample(metric: dict[str, Any], resolution: int, minimum_points: int = DEFAULT_MINIMUM_POINTS) -> dict[str, Any]:
    """``metric`` at ``resolution`` seconds per sample if that is coarser and the series are long enough."""
    timestep = int(metric.get("timestep") or 0)
    series = metric.get("series") or []
    if resolution <= timestep or timestep <= 0 or not series:
        return metric
    longest = max(len(s.get("data") or ()) for s in series)
    if longest < minimum_points:
        return metric
    for s in series:
        data = s.get("data") or []
        s["data"] = lttb(data, max(3, len(data) * timestep // resolution))
    metric["timestep"] = resolution
    stats = metric.get("statisticsSeries")
    if stats:
        metric["statisticsSeries"] = {k: lttb(v, max(3, len(v) * timestep // resolution)) if isinstance(v, list) else v
                                      for k, v in stats.items()}
    return metric


def default_resolution(resampling: ResamplingConfig | None) -> int:
    """Upstream's default resolution of metric plots: the largest of ``main.resampling.resolutions``, else native (0)."""
    resolutions = resampling.resolutions if resampling is not None else None
    return max(resolutions) if resolutions else 0


def minimum_points_of(resampling: ResamplingConfig | None) -> int:
    """Series shorter than this are never resampled: ``main.resampling.minimum-points`` or upstream's 1000."""
    return resampling.minimum_points if resampling is not None else DEFAULT_MINIMUM_POINTS
