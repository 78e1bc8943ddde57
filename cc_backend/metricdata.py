"""Metric data of jobs: archived series selected by metric and scope, resampled with LTTB, summarised.

The one place where REST (``/api/jobs/{id}``, ``/api/jobs/metrics/{id}``), GraphQL (``jobMetrics``)
and the TUI get time series from. Shapes are upstream's: ``JobData`` is ``{metric: {scope: JobMetric}}``
and a ``JobMetric`` is ``{"unit", "timestep", "series": [{"hostname", "id"?, "statistics", "data"}],
"statisticsSeries"?}`` with ``null`` for missing samples.

Running jobs will come from the metric store (a later part); until it exists they have no series,
which is an empty result, not an error.
"""

from __future__ import annotations

import functools
import math
import operator
import threading
from collections import OrderedDict
from typing import Any, Iterable, Mapping, Sequence

from cc_backend.auth.security import sees_nodes, sees_restricted_metrics
from cc_backend.errors import Forbidden, InvalidInput, NotFound
from cc_backend.jobs.footprint import go_round, load_job_stat, series_stats
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
    if length and all(len(c) == length and _without_nan(c) for c in columns):
        return _statistics_series_aligned(columns)
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
        values = sorted(filter(_is_sample, column)) if None in column else sorted(column)
        if not values:
            mins.append(None), medians.append(None), means.append(None), maxs.append(None)
            continue
        count = len(values)
        mid = count // 2
        mins.append(values[0])
        medians.append(values[mid] if count % 2 else (values[mid - 1] + values[mid]) / 2)
        means.append(sum(values) / count)
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


class _WeightedCache:
    """An LRU map bounded by the summed weight of its values (bytes of a file, samples of a result).

    A value heavier than the whole bound is not kept. Values are shared: callers must not modify them.
    """

    def __init__(self, max_weight: int) -> None:
        self.max_weight = max_weight
        self._entries: OrderedDict[tuple, tuple[int, dict[str, Any]]] = OrderedDict()
        self._weight = 0
        self._lock = threading.Lock()

    def get(self, key: tuple) -> dict[str, Any] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: tuple, weight: int, value: dict[str, Any]) -> None:
        if weight > self.max_weight:
            return
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = (weight, value)
            self._weight += weight
            while self._weight > self.max_weight and len(self._entries) > 1:
                _, (old, _) = self._entries.popitem(last=False)
                self._weight -= old


#: Parsed data.json files by path and modification time, bounded by their size on disk. Parsing a
#: 64-node job's data.json.gz costs tens of milliseconds; job pages ask for the same job's metrics
#: several times (plots, statistics, roofline).
_files = _WeightedCache(128 << 20)


def _data_file(archive: Any, job: Mapping[str, Any]) -> tuple[str, Any]:
    """(path, stat) of the job's data file; NotFound when the archive has none."""
    path = archive.data_path(job["cluster"], job["jobId"], job["startTime"])
    if path is None:
        raise NotFound(f"job {job['jobId']} on {job['cluster']} started at {job['startTime']} has no archived metric data")
    return str(path), path.stat()


def _archived_data(archive: Any, job: Mapping[str, Any]) -> dict[str, Any]:
    path, stat = _data_file(archive, job)
    key = (path, stat.st_mtime)
    doc = _files.get(key)
    if doc is None:
        doc = archive.load_data(job["cluster"], job["jobId"], job["startTime"])
        _files.put(key, stat.st_size, doc)
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
        chosen = {scope: _copy_metric(m) for scope, m in _select_scopes(by_scope, scopes, registry, job, name).items()}
        for metric in chosen.values():
            if resolution:
                resample(metric, resolution, minimum_points)
            if not metric.get("statisticsSeries") and len(metric.get("series") or ()) >= STATISTICS_SERIES_MIN:
                metric["statisticsSeries"] = statistics_series(metric["series"])
        out[name] = chosen
    return out


def _select_scopes(by_scope: Mapping[str, Any], scopes: Sequence[str] | None, registry: Any,
                   job: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The archived metrics of ``name`` at the requested scopes, not copied (see :func:`load_job_data`).

    A node scope derived from a finer archived scope is computed here; without any requested scope
    archived, the coarsest archived one stands in.
    """
    if scopes is None:
        return dict(by_scope)
    chosen = {scope: by_scope[scope] for scope in scopes if scope in by_scope}
    if "node" in scopes and "node" not in chosen:
        finest = min(by_scope, key=lambda s: _GRANULARITY.get(s, 99))
        chosen["node"] = node_scope_from(by_scope[finest], _aggregation(registry, job, name))
    if not chosen:
        coarsest = min(by_scope, key=lambda s: _GRANULARITY.get(s, 99))
        chosen = {coarsest: by_scope[coarsest]}
    return chosen


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


# --------------------------------------------------------------------------------------------------
# Shared results, statistics and visibility (GraphQL jobMetrics, jobStats, scopedJobStats, analyses)
# --------------------------------------------------------------------------------------------------


def default_resolution(resampling: Any) -> int:
    """Upstream's default resolution of metric plots: the largest of ``main.resampling.resolutions``, else native (0)."""
    resolutions = getattr(resampling, "resolutions", None) if resampling is not None else None
    return max(resolutions) if resolutions else 0


def minimum_points_of(resampling: Any) -> int:
    """Series shorter than this are never resampled: ``main.resampling.minimum-points`` or upstream's 1000."""
    return resampling.minimum_points if resampling is not None else DEFAULT_MINIMUM_POINTS


def _sample_count(data: Mapping[str, Mapping[str, Any]]) -> int:
    total = 0
    for by_scope in data.values():
        for metric in by_scope.values():
            total += sum(len(s.get("data") or ()) for s in metric.get("series") or ())
            stats = metric.get("statisticsSeries")
            if isinstance(stats, Mapping):
                total += sum(len(v) for v in stats.values() if isinstance(v, list))
    return total


#: Finished ``JobData`` results by request, bounded by their number of samples (upstream caches LoadData
#: too). A plot page asks for the same job's metrics again on every reload; resampling and
#: statisticsSeries of a 64-node job cost far more than the lookup.
_results = _WeightedCache(4_000_000)


def load_job_data_shared(
    archive: Any,
    job: Mapping[str, Any],
    *,
    metrics: Sequence[str] | None = None,
    scopes: Sequence[str] | None = None,
    resolution: int = 0,
    minimum_points: int = DEFAULT_MINIMUM_POINTS,
    registry: Any = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """:func:`load_job_data`, remembered per data file, request and cluster registry: treat the result as read-only."""
    scopes = check_scopes(scopes)
    if not is_archived(job):
        return {}
    path, stat = _data_file(archive, job)
    key = (path, stat.st_mtime, None if metrics is None else tuple(metrics),
           None if scopes is None else tuple(scopes), resolution, minimum_points, id(registry))
    data = _results.get(key)
    if data is None:
        data = load_job_data(archive, job, metrics=metrics, scopes=scopes, resolution=resolution,
                             minimum_points=minimum_points, registry=registry)
        _results.put(key, _sample_count(data), data)
    return data


def hidden_metrics(registry: Any, cluster: str, subcluster: str | None, viewer: Any) -> frozenset[str]:
    """Metrics the viewer may not see on that (sub)cluster: those its metricConfig marks ``restrict``."""
    if sees_restricted_metrics(viewer) or registry is None:
        return frozenset()
    found = registry.find(cluster)
    if found is None:
        return frozenset()
    sub = found.find_sub_cluster(subcluster or "")
    configs = sub.metric_config if sub is not None else found.metric_config
    return frozenset(m.name for m in configs if m.restrict)


def job_metric_list(
    archive: Any,
    job: Mapping[str, Any],
    *,
    viewer: Any = None,
    metrics: Sequence[str] | None = None,
    scopes: Sequence[str] | None = None,
    resolution: int = 0,
    minimum_points: int = DEFAULT_MINIMUM_POINTS,
) -> list[dict[str, Any]]:
    """GraphQL ``jobMetrics``: the job's series as ``JobMetricWithName`` items, restricted metrics left out.

    Unknown metric names are skipped (as upstream); a job that is not archived has no series yet.
    """
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 0:
        raise InvalidInput(f"resolution must be a non-negative number of seconds, got {resolution!r}", field="resolution")
    registry = archive.registry()
    data = load_job_data_shared(archive, job, metrics=metrics, scopes=scopes, resolution=resolution,
                                minimum_points=minimum_points, registry=registry)
    hidden = hidden_metrics(registry, job["cluster"], job.get("subCluster"), viewer)
    if hidden:
        data = {name: by_scope for name, by_scope in data.items() if name not in hidden}
    return as_metric_list(data)


def _statistics_of(entry: Mapping[str, Any]) -> dict[str, float]:
    """``{avg, min, max}`` of a meta.json statistics entry, 0.0 for a missing value (as upstream)."""
    holder = {"statistics": {"_": entry}}
    return {stat: load_job_stat(holder, "_", stat) for stat in ("avg", "min", "max")}


def job_stats(archive: Any, job: Mapping[str, Any], metrics: Sequence[str] | None = None, *,
              hidden: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """GraphQL ``jobStats``: node-averaged ``[{name, data: {avg, min, max}}]`` from the archived meta.json.

    ``metrics`` None means every metric with statistics (sorted by name); names the job has no
    statistics for are skipped rather than reported as zeros; a job that is not archived has none yet.
    """
    if not is_archived(job):
        return []
    meta = archive.load_meta(job["cluster"], job["jobId"], job["startTime"])
    statistics = meta.get("statistics")
    if not isinstance(statistics, Mapping):
        return []
    names = sorted(statistics) if metrics is None else list(dict.fromkeys(metrics))
    out = []
    for name in names:
        entry = statistics.get(name)
        if name in hidden or not isinstance(entry, Mapping):
            continue
        out.append({"name": name, "data": _statistics_of(entry)})
    return out


def _series_statistics_kept(series: Mapping[str, Any]) -> dict[str, float]:
    """A series' archived statistics as stored; derived (and rounded as upstream) when it has none."""
    stats = series.get("statistics")
    if isinstance(stats, Mapping) and all(isinstance(stats.get(k), (int, float)) for k in ("avg", "min", "max")):
        return {"avg": float(stats["avg"]), "min": float(stats["min"]), "max": float(stats["max"])}
    return series_statistics(series.get("data") or ())


def scoped_job_stats(
    archive: Any,
    job: Mapping[str, Any],
    metrics: Sequence[str] | None = None,
    scopes: Sequence[str] | None = None,
    *,
    registry: Any = None,
    hidden: frozenset[str] = frozenset(),
) -> list[dict[str, Any]]:
    """GraphQL ``scopedJobStats``: per metric and scope, ``{hostname, id, data: {avg, min, max}}`` of each series.

    Scopes are chosen as in :func:`load_job_data` (node derived from a finer scope when asked for);
    sorted by metric name, then from coarse to fine scope.
    """
    scopes = check_scopes(scopes)
    if not is_archived(job):
        return []
    archived = _archived_data(archive, job)
    names = sorted(archived) if metrics is None else sorted(m for m in set(metrics) if m in archived)
    out = []
    for name in names:
        by_scope = archived[name]
        if name in hidden or not isinstance(by_scope, Mapping) or not by_scope:
            continue
        chosen = _select_scopes(by_scope, scopes, registry, job, name)
        for scope in sorted(chosen, key=lambda s: _GRANULARITY.get(s, 99)):
            stats = [{"hostname": s.get("hostname"), "id": s.get("id"), "data": _series_statistics_kept(s)}
                     for s in chosen[scope].get("series") or ()]
            out.append({"name": name, "scope": scope, "stats": stats})
    return out


def node_series(archive: Any, job: Mapping[str, Any], metrics: Sequence[str], *,
                registry: Any = None) -> dict[str, dict[str, Any]]:
    """Node-scope metrics of an archived job at native resolution, shared and unchanged (read-only).

    For analyses over many jobs (roofline): no copies, no resampling, no statisticsSeries. A metric
    archived only at a finer scope is summed or averaged per node; missing metrics are left out.
    """
    if not is_archived(job):
        return {}
    archived = _archived_data(archive, job)
    out = {}
    for name in metrics:
        by_scope = archived.get(name)
        if not isinstance(by_scope, Mapping) or not by_scope:
            continue
        chosen = _select_scopes(by_scope, ["node"], registry, job, name)
        if "node" in chosen:
            out[name] = chosen["node"]
    return out


# --------------------------------------------------------------------------------------------------
# Node metrics (nodeMetrics, nodeMetricsList, clusterMetrics): from the metric store, which does not exist yet
# --------------------------------------------------------------------------------------------------

def check_node_metrics_access(viewer: Any) -> None:
    """Node and cluster metrics are for admin and support (upstream); everyone else gets Forbidden."""
    if not sees_nodes(viewer):
        raise Forbidden("only admin and support users may query node metrics")


def _check_time_range(start: int, end: int) -> None:
    if end < start:
        raise InvalidInput(f"'to' ({end}) lies before 'from' ({start})", field="to")


def node_metrics(registry: Any, cluster: str, *, viewer: Any, scopes: Sequence[str] | None = None,
                 start: int = 0, end: int = 0) -> list[dict[str, Any]]:
    """GraphQL ``nodeMetrics``: series per node of ``cluster`` between ``start`` and ``end``.

    Node series come only from the metric store; until it exists every node has none, which is an
    empty list (input and permission are still checked).
    """
    check_node_metrics_access(viewer)
    check_scopes(scopes)
    _check_time_range(start, end)
    registry.get(cluster)
    return []


def node_metrics_list(engine: Any, registry: Any, cluster: str, subcluster: str, *, viewer: Any,
                      state_filter: str = "all", node_filter: str = "", scopes: Sequence[str] | None = None,
                      start: int = 0, end: int = 0, page: Any = None, resolution: int | None = None,
                      ) -> dict[str, Any]:
    """GraphQL ``nodeMetricsList``: a page of the subcluster's nodes with their series (none without a metric store).

    The nodes, their states and ``totalNodes`` are :func:`cc_backend.nodes.list_cluster_nodes`'s.
    """
    from cc_backend.nodes import list_cluster_nodes

    check_node_metrics_access(viewer)
    check_scopes(scopes)
    _check_time_range(start, end)
    if resolution is not None and resolution < 0:
        raise InvalidInput(f"resolution must be a non-negative number of seconds, got {resolution!r}", field="resolution")
    hosts, total = list_cluster_nodes(engine, registry, cluster, subcluster, state_filter=state_filter,
                                      node_filter=node_filter, page=page)
    offset = page.offset if page is not None else 0
    items = [{"host": h["host"], "subCluster": h["subCluster"], "nodeState": h["nodeState"],
              "metricHealth": h["healthState"], "metrics": []} for h in hosts]
    return {"items": items, "offset": offset, "limit": page.itemsPerPage if page is not None else None,
            "count": len(items), "totalNodes": total, "hasNextPage": offset + len(items) < total}


def cluster_metrics(registry: Any, cluster: str, *, viewer: Any, start: int = 0, end: int = 0) -> dict[str, Any]:
    """GraphQL ``clusterMetrics``: node series summed over the cluster; none without a metric store."""
    check_node_metrics_access(viewer)
    _check_time_range(start, end)
    registry.get(cluster)
    return {"nodeCount": 0, "metrics": []}
