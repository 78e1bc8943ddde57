"""Metric data of jobs: archived series selected by metric and scope, resampled with LTTB, summarised.

The one place where REST (``/api/jobs/{id}``, ``/api/jobs/metrics/{id}``), GraphQL (``jobMetrics``)
and the TUI get time series from. Shapes are upstream's: ``JobData`` is ``{metric: {scope: JobMetric}}``
and a ``JobMetric`` is ``{"unit", "timestep", "series": [{"hostname", "id"?, "statistics", "data"}],
"statisticsSeries"?}`` with ``null`` for missing samples.

Running jobs will come from the metric store (a later part); until it exists they have no series,
which is an empty result, not an error.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import Any, Iterable, Mapping, Sequence

from cc_backend.errors import InvalidInput, NotFound
from cc_backend.jobs.footprint import go_round, series_stats
from cc_backend.jobs.model import MONITORING_ARCHIVED

#: Metric scopes from coarse to fine (upstream schema.MetricScope); accelerator stands apart.
SCOPES = ("node", "socket", "memoryDomain", "core", "hwthread", "accelerator")
_GRANULARITY = {"node": 0, "socket": 1, "memoryDomain": 2, "core": 3, "hwthread": 4, "accelerator": 5}
#: Upstream adds min/median/mean/max per timestep when a metric has this many series or more.
STATISTICS_SERIES_MIN = 8
DEFAULT_MINIMUM_POINTS = 1000


def check_scopes(scopes: Iterable[str] | None) -> list[str] | None:
    """Validated scope names (InvalidInput naming ``scope`` for an unknown one)."""
    if scopes is None:
        return None
    out = []
    for scope in scopes:
        if scope not in _GRANULARITY:
            raise InvalidInput(f"unknown metric scope {scope!r} (one of {', '.join(SCOPES)})", field="scope")
        out.append(scope)
    return out


def default_scopes(job: Mapping[str, Any]) -> list[str]:
    """Upstream's REST choice: core scope for single-node jobs, node scope otherwise."""
    return ["core"] if int(job.get("numNodes") or 0) == 1 else ["node"]


# --------------------------------------------------------------------------------------------------
# Resampling
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Derived series
# --------------------------------------------------------------------------------------------------


def _finite(values: Iterable[Any]) -> list[float]:
    return [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]


def statistics_series(series: Sequence[Mapping[str, Any]]) -> dict[str, list[float | None]]:
    """Per timestep over all series: min, median, mean and max (missing samples ignored)."""
    columns = [s.get("data") or [] for s in series]
    length = max((len(c) for c in columns), default=0)
    mins: list[float | None] = []
    medians: list[float | None] = []
    means: list[float | None] = []
    maxs: list[float | None] = []
    for t in range(length):
        values = sorted(_finite(c[t] for c in columns if t < len(c)))
        if not values:
            mins.append(None), medians.append(None), means.append(None), maxs.append(None)
            continue
        mid = len(values) // 2
        median = values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2
        mins.append(values[0])
        medians.append(median)
        means.append(sum(values) / len(values))
        maxs.append(values[-1])
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


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


class _DataCache:
    """Parsed data.json files by path and modification time, bounded by their compressed size.

    Parsing a 64-node job's data.json.gz costs tens of milliseconds; job pages ask for the same
    job's metrics several times (plots, statistics, roofline).
    """

    def __init__(self, max_bytes: int = 128 << 20) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, float], tuple[int, dict[str, Any]]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, float]) -> dict[str, Any] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: tuple[str, float], size: int, doc: dict[str, Any]) -> None:
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = (size, doc)
            self._bytes += size
            while self._bytes > self.max_bytes and len(self._entries) > 1:
                _, (old_size, _) = self._entries.popitem(last=False)
                self._bytes -= old_size


_cache = _DataCache()


def _archived_data(archive: Any, job: Mapping[str, Any]) -> dict[str, Any]:
    cluster, job_id, start = job["cluster"], job["jobId"], job["startTime"]
    path = archive.data_path(cluster, job_id, start)
    if path is None:
        raise NotFound(f"job {job_id} on {cluster} started at {start} has no archived metric data")
    stat = path.stat()
    key = (str(path), stat.st_mtime)
    doc = _cache.get(key)
    if doc is None:
        doc = archive.load_data(cluster, job_id, start)
        _cache.put(key, stat.st_size, doc)
    return doc


def _copy_metric(metric: Mapping[str, Any]) -> dict[str, Any]:
    """A copy deep enough that resampling and derived series never touch the cached document."""
    out = dict(metric)
    out["series"] = [dict(s) for s in metric.get("series") or ()]
    if isinstance(metric.get("statisticsSeries"), Mapping):
        out["statisticsSeries"] = dict(metric["statisticsSeries"])
    return out


def is_archived(job: Mapping[str, Any]) -> bool:
    return job.get("jobState") != "running" and job.get("monitoringStatus") == MONITORING_ARCHIVED


def load_job_data(
    archive: Any,
    job: Mapping[str, Any],
    *,
    metrics: Sequence[str] | None = None,
    scopes: Sequence[str] | None = None,
    resolution: int = 0,
    minimum_points: int = DEFAULT_MINIMUM_POINTS,
    registry: Any = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """The job's ``JobData``: ``metrics`` (None: all) at ``scopes`` (None: every archived scope).

    For each metric, the requested scopes that were archived are returned; node scope is derived
    from a finer archived scope when asked for; when none of the requested scopes exist the
    coarsest archived scope is returned rather than nothing. Series are downsampled with LTTB when
    ``resolution`` is coarser than the archived timestep and they have at least ``minimum_points``
    samples. Metrics with eight or more series get ``statisticsSeries``.
    """
    scopes = check_scopes(scopes)
    if not is_archived(job):
        return {}
    archived = _archived_data(archive, job)
    wanted = list(archived) if metrics is None else [m for m in dict.fromkeys(metrics) if m in archived]
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name in wanted:
        by_scope = archived[name]
        if not isinstance(by_scope, Mapping) or not by_scope:
            continue
        if scopes is None:
            chosen = {scope: _copy_metric(m) for scope, m in by_scope.items()}
        else:
            chosen = {scope: _copy_metric(by_scope[scope]) for scope in scopes if scope in by_scope}
            if "node" in scopes and "node" not in chosen:
                finest = min(by_scope, key=lambda s: _GRANULARITY.get(s, 99))
                chosen["node"] = node_scope_from(by_scope[finest], _aggregation(registry, job, name))
            if not chosen:
                coarsest = min(by_scope, key=lambda s: _GRANULARITY.get(s, 99))
                chosen = {coarsest: _copy_metric(by_scope[coarsest])}
        for metric in chosen.values():
            if resolution:
                resample(metric, resolution, minimum_points)
            if not metric.get("statisticsSeries") and len(metric.get("series") or ()) >= STATISTICS_SERIES_MIN:
                metric["statisticsSeries"] = statistics_series(metric["series"])
        out[name] = chosen
    return out


def _aggregation(registry: Any, job: Mapping[str, Any], metric: str) -> str:
    """The metric's aggregation in cluster.json ("sum" or "avg"); "sum" when unknown, as upstream."""
    if registry is None:
        return "sum"
    try:
        config = registry.metric_config(job["cluster"], job.get("subCluster") or "", metric)
    except Exception:  # an unknown cluster or subcluster only loses the aggregation hint
        return "sum"
    return (config.aggregation if config is not None else "") or "sum"


def add_archived_statistics(archive: Any, jobs: Iterable[dict[str, Any]]) -> None:
    """Set ``statistics`` of archived jobs from their meta.json, as upstream's job list does.

    A job whose meta.json is missing or has no statistics keeps none; a list never fails for it.
    """
    for job in jobs:
        if not is_archived(job):
            continue
        try:
            meta = archive.load_meta(job["cluster"], job["jobId"], job["startTime"])
        except (NotFound, OSError, ValueError):
            continue
        stats = meta.get("statistics")
        if isinstance(stats, Mapping) and stats:
            job["statistics"] = stats


def as_metric_list(data: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``JobData`` as upstream's list of ``JobMetricWithName`` (name, scope, metric), sorted by name then scope."""
    out = []
    for name in sorted(data):
        for scope in sorted(data[name], key=lambda s: _GRANULARITY.get(s, 99)):
            out.append({"name": name, "scope": scope, "metric": data[name][scope]})
    return out
