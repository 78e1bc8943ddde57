"""Statistics of metric series: per-timestep ``statisticsSeries``, min/avg/max per series, node scope from finer scopes."""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cc_backend.jobs.footprint import go_round, load_job_stat, series_stats

#: Upstream adds min/median/mean/max per timestep when a metric has this many series or more.
STATISTICS_SERIES_MIN = 8


def _finite(values: Iterable[Any]) -> list[float]:
    return [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]


def statistics_series(series: Sequence[Mapping[str, Any]]) -> dict[str, list[float | None]]:
    """Per timestep over all series: min, median, mean and max (missing samples ignored)."""
    columns = [s.get("data") or [] for s in series]
    length = max((len(c) for c in columns), default=0)
    if length and all(len(c) == length and _without_nan(c) for c in columns):
        return _statistics_series_aligned(columns)
    mins: list[float | None] = []
    medians: list[float | None] = []
    means: list[float | None] = []
    maxs: list[float | None] = []
    for t in range(length):
        _append_timestep(mins, medians, means, maxs, sorted(_finite(c[t] for c in columns if t < len(c))))
    return {"min": mins, "median": medians, "mean": means, "max": maxs}


def _append_timestep(mins: list[float | None], medians: list[float | None], means: list[float | None],
                     maxs: list[float | None], values: list[Any]) -> None:
    """Append min, median, mean and max of one timestep's sorted samples (None for each when there are none)."""
    if not values:
        mins.append(None)
        medians.append(None)
        means.append(None)
        maxs.append(None)
        return
    count = len(values)
    mid = count // 2
    mins.append(values[0])
    medians.append(values[mid] if count % 2 else (values[mid - 1] + values[mid]) / 2)
    means.append(sum(values) / count)
    maxs.append(values[-1])


_is_sample = functools.partial(operator.is_not, None)


def _without_nan(data: Sequence[Any]) -> bool:
    """True if ``data`` holds numbers or None but no NaN (checked in C, not per sample in Python)."""
    try:
        total = sum(filter(_is_sample, data)) if None in data else sum(data)
    except TypeError:  # not numbers: the general path decides
        return False
    return not math.isnan(total)  # a NaN sample (or +inf with -inf) makes the sum NaN


def _statistics_series_aligned(columns: Sequence[Sequence[Any]]) -> dict[str, list[float | None]]:
    """:func:`statistics_series` for equally long series without NaN, with the same arithmetic and results.

    The general per-timestep loop costs ~0.3 s for a 64-node job's nine metrics; transposing with
    zip and sorting with map keeps the per-sample work in C. Timesteps with missing samples are
    filtered one by one (they are rare).
    """
    mins: list[float | None] = []
    medians: list[float | None] = []
    means: list[float | None] = []
    maxs: list[float | None] = []
    for column in zip(*columns):
        _append_timestep(mins, medians, means, maxs,
                         sorted(filter(_is_sample, column)) if None in column else sorted(column))
    return {"min": mins, "median": medians, "mean": means, "max": maxs}


def series_statistics(data: Sequence[Any]) -> dict[str, float]:
    """min/avg/max of one series, rounded as upstream (two decimals); zeros for a series without samples."""
    avg, low, high = series_stats({"data": data})
    return {"min": go_round(low or 0.0), "avg": go_round(avg), "max": go_round(high or 0.0)}


def node_scope_from(metric: Mapping[str, Any], aggregation: str) -> dict[str, Any]:
    """Node-scope series of a metric that was archived at a finer scope: per host, sum or average the series."""
    by_host: dict[str, list[Sequence[Any]]] = {}
    for s in metric.get("series") or ():
        by_host.setdefault(str(s.get("hostname")), []).append(s.get("data") or [])
    combine_avg = aggregation == "avg"
    series = []
    for host, columns in by_host.items():
        length = max(len(c) for c in columns)
        data: list[float | None] = []
        for t in range(length):
            values = _finite(c[t] for c in columns if t < len(c))
            if not values:
                data.append(None)
            else:
                total = sum(values)
                data.append(total / len(values) if combine_avg else total)
        series.append({"hostname": host, "statistics": series_statistics(data), "data": data})
    return {"unit": metric.get("unit"), "timestep": metric.get("timestep"), "series": series}


def entry_statistics(entry: Mapping[str, Any]) -> dict[str, float]:
    """``{avg, min, max}`` of a meta.json statistics entry, 0.0 for a missing value (as upstream)."""
    holder = {"statistics": {"_": entry}}
    return {stat: load_job_stat(holder, "_", stat) for stat in ("avg", "min", "max")}


def kept_series_statistics(series: Mapping[str, Any]) -> dict[str, float]:
    """A series' archived statistics as stored; derived (and rounded as upstream) when it has none."""
    stats = series.get("statistics")
    if isinstance(stats, Mapping) and all(isinstance(stats.get(k), (int, float)) for k in ("avg", "min", "max")):
        return {"avg": float(stats["avg"]), "min": float(stats["min"]), "max": float(stats["max"])}
    return series_statistics(series.get("data") or ())
