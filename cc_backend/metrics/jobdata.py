"""Metric data of jobs: archived series selected by metric and scope, resampled with LTTB, summarised.

The one place where REST (``/api/jobs/{id}``, ``/api/jobs/metrics/{id}``), GraphQL (``jobMetrics``)
and the TUI get time series from (:func:`visible_job_data`). Shapes are upstream's: ``JobData`` is ``{metric: {scope: JobMetric}}``
and a ``JobMetric`` is ``{"unit", "timestep", "series": [{"hostname", "id"?, "statistics", "data"}],
"statisticsSeries"?}`` with ``null`` for missing samples.

Jobs that are not archived yet (running, or stopped and waiting for the archiver) are read from
the live metric backend (``live``, a :class:`~cc_backend.metrics.dispatch.MetricDispatch`); without
one they have no series, which is an empty result, not an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cc_backend.auth.security import sees_restricted_metrics
from cc_backend.errors import InvalidInput, NotFound
from cc_backend.jobs.footprint import go_round
from cc_backend.jobs.model import MONITORING_ARCHIVED
from cc_backend.metrics.caches import archived_data, data_file, shared_result
from cc_backend.metrics.resampling import DEFAULT_MINIMUM_POINTS, default_resolution, minimum_points_of, resample
from cc_backend.metrics.statistics import (
    STATISTICS_SERIES_MIN,
    entry_statistics,
    kept_series_statistics,
    node_scope_from,
    statistics_series,
)

if TYPE_CHECKING:
    from cc_backend.archive.cluster import ClusterRegistry
    from cc_backend.archive.fs import FileArchive
    from cc_backend.auth.security import Viewer
    from cc_backend.config.sections import ResamplingConfig
    from cc_backend.metrics.dispatch import MetricDispatch

#: Metric scopes from coarse to fine (upstream schema.MetricScope); accelerator stands apart.
SCOPES = ("node", "socket", "memoryDomain", "core", "hwthread", "accelerator")
_GRANULARITY = {"node": 0, "socket": 1, "memoryDomain": 2, "core": 3, "hwthread": 4, "accelerator": 5}


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
    archive: FileArchive,
    job: Mapping[str, Any],
    *,
    metrics: Sequence[str] | None = None,
    scopes: Sequence[str] | None = None,
    resolution: int = 0,
    minimum_points: int = DEFAULT_MINIMUM_POINTS,
    registry: ClusterRegistry | None = None,
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
    archived = archived_data(archive, job)
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


def _select_scopes(by_scope: Mapping[str, Any], scopes: Sequence[str] | None, registry: ClusterRegistry | None,
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


def _aggregation(registry: ClusterRegistry | None, job: Mapping[str, Any], metric: str) -> str:
    """The metric's aggregation in cluster.json ("sum" or "avg"); "sum" when unknown, as upstream."""
    if registry is None:
        return "sum"
    try:
        config = registry.metric_config(job["cluster"], job.get("subCluster") or "", metric)
    except Exception:  # an unknown cluster or subcluster only loses the aggregation hint
        return "sum"
    return (config.aggregation if config is not None else "") or "sum"


def add_archived_statistics(archive: FileArchive, jobs: Iterable[dict[str, Any]]) -> None:
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


def hidden_metrics(registry: ClusterRegistry, cluster: str, subcluster: str | None, viewer: Viewer | None) -> frozenset[str]:
    """Metrics the viewer may not see on that (sub)cluster: those its metricConfig marks ``restrict``."""
    if sees_restricted_metrics(viewer) or registry is None:
        return frozenset()
    found = registry.find(cluster)
    if found is None:
        return frozenset()
    sub = found.find_sub_cluster(subcluster or "")
    configs = sub.metric_config if sub is not None else found.metric_config
    return frozenset(m.name for m in configs if m.restrict)


def visible_job_data(
    archive: FileArchive,
    job: Mapping[str, Any],
    *,
    viewer: Viewer | None,
    resampling: ResamplingConfig | None = None,
    metrics: Sequence[str] | None = None,
    scopes: Sequence[str] | None = None,
    resolution: int | None = None,
    live: MetricDispatch | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """The job's ``JobData`` as ``viewer`` may see it: restricted metrics left out, shared (read-only).

    What every front end shows of a job's series (GraphQL ``jobMetrics``, the REST job routes).
    ``resolution`` None is upstream's default (the largest of ``main.resampling.resolutions``, given
    as ``resampling``), 0 the native one; ``main.resampling.minimum-points`` applies either way.
    Unknown metric names are skipped (as upstream); a job that is not archived is read from ``live``
    (no series without it).
    """
    if resolution is None:
        resolution = default_resolution(resampling)
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 0:
        raise InvalidInput(f"resolution must be a non-negative number of seconds, got {resolution!r}", field="resolution")
    scopes = check_scopes(scopes)
    if not is_archived(job):
        if live is None:
            return {}
        data = live_job_data(live, job, metrics, scopes, resolution)
        return _without(data, hidden_metrics(archive.registry(), job["cluster"], job.get("subCluster"), viewer))
    registry = archive.registry()
    minimum_points = minimum_points_of(resampling)
    # remembered per data file, request and cluster registry
    path, stat = data_file(archive, job)
    key = (path, stat.st_mtime, None if metrics is None else tuple(metrics),
           None if scopes is None else tuple(scopes), resolution, minimum_points, id(registry))
    data = shared_result(key, lambda: load_job_data(archive, job, metrics=metrics, scopes=scopes, resolution=resolution,
                                                    minimum_points=minimum_points, registry=registry))
    return _without(data, hidden_metrics(registry, job["cluster"], job.get("subCluster"), viewer))


def _without(data: dict[str, Any], hidden: frozenset[str]) -> dict[str, Any]:
    return {name: by_scope for name, by_scope in data.items() if name not in hidden} if hidden else data


def live_job_data(live: MetricDispatch, job: Mapping[str, Any], metrics: Sequence[str] | None,
                  scopes: Sequence[str] | None, resolution: int) -> dict[str, dict[str, dict[str, Any]]]:
    """A not yet archived job's ``JobData`` from the live backend.

    Scopes None means node scope as upstream; ``resolution`` 0 is native, else LTTB to about that
    many seconds per sample. Not cached: a running job's series grow with every write.
    """
    return live.load_data(job, metrics, scopes or ["node"], resolution)


def _live_stats(live: MetricDispatch, job: Mapping[str, Any], metrics: Sequence[str] | None) -> dict[str, dict[str, float]]:
    """Node-averaged ``{metric: {avg, min, max}}`` of a job from the live backend (mean of averages, extremes of extremes)."""
    out = {}
    for name, by_host in live.load_stats(job, metrics).items():
        values = [v for v in by_host.values() if isinstance(v, Mapping)]
        if not values:
            continue
        out[name] = {"avg": go_round(sum(v["avg"] for v in values) / len(values)),
                     "min": go_round(min(v["min"] for v in values)), "max": go_round(max(v["max"] for v in values))}
    return out


def job_stats(archive: FileArchive, job: Mapping[str, Any], metrics: Sequence[str] | None = None, *,
              hidden: frozenset[str] = frozenset(), live: MetricDispatch | None = None) -> list[dict[str, Any]]:
    """GraphQL ``jobStats``: node-averaged ``[{name, data: {avg, min, max}}]`` from the archived meta.json.

    ``metrics`` None means every metric with statistics (sorted by name); names the job has no
    statistics for are skipped rather than reported as zeros; a job that is not archived is read
    from ``live`` (none without it).
    """
    if not is_archived(job):
        if live is None:
            return []
        statistics: Any = _live_stats(live, job, metrics)
    else:
        statistics = archive.load_meta(job["cluster"], job["jobId"], job["startTime"]).get("statistics")
    if not isinstance(statistics, Mapping):
        return []
    names = sorted(statistics) if metrics is None else list(dict.fromkeys(metrics))
    out = []
    for name in names:
        entry = statistics.get(name)
        if name in hidden or not isinstance(entry, Mapping):
            continue
        out.append({"name": name, "data": entry_statistics(entry)})
    return out


def scoped_job_stats(
    archive: FileArchive,
    job: Mapping[str, Any],
    metrics: Sequence[str] | None = None,
    scopes: Sequence[str] | None = None,
    *,
    registry: ClusterRegistry | None = None,
    hidden: frozenset[str] = frozenset(),
    live: MetricDispatch | None = None,
) -> list[dict[str, Any]]:
    """GraphQL ``scopedJobStats``: per metric and scope, ``{hostname, id, data: {avg, min, max}}`` of each series.

    Scopes are chosen as in :func:`load_job_data` (node derived from a finer scope when asked for);
    sorted by metric name, then from coarse to fine scope. A job that is not archived is read from
    ``live`` at native resolution (none without it).
    """
    scopes = check_scopes(scopes)
    if not is_archived(job):
        if live is None:
            return []
        archived: Mapping[str, Any] = live_job_data(live, job, metrics, scopes, 0)
        scopes = None  # the backend already answered at the requested (or coarser native) scopes
    else:
        archived = archived_data(archive, job)
    names = sorted(archived) if metrics is None else sorted(m for m in set(metrics) if m in archived)
    out = []
    for name in names:
        by_scope = archived[name]
        if name in hidden or not isinstance(by_scope, Mapping) or not by_scope:
            continue
        chosen = _select_scopes(by_scope, scopes, registry, job, name)
        for scope in sorted(chosen, key=lambda s: _GRANULARITY.get(s, 99)):
            stats = [{"hostname": s.get("hostname"), "id": s.get("id"), "data": kept_series_statistics(s)}
                     for s in chosen[scope].get("series") or ()]
            out.append({"name": name, "scope": scope, "stats": stats})
    return out


def node_series(archive: FileArchive, job: Mapping[str, Any], metrics: Sequence[str], *,
                registry: ClusterRegistry | None = None, live: MetricDispatch | None = None) -> dict[str, dict[str, Any]]:
    """Node-scope metrics of an archived job at native resolution, shared and unchanged (read-only).

    For analyses over many jobs (roofline): no copies, no resampling, no statisticsSeries. A metric
    archived only at a finer scope is summed or averaged per node; missing metrics are left out.
    A job that is not archived is read from ``live`` (none without it).
    """
    if not is_archived(job):
        if live is None:
            return {}
        data = live_job_data(live, job, list(metrics), ["node"], 0)
        return {name: data[name]["node"] for name in metrics if "node" in data.get(name, {})}
    archived = archived_data(archive, job)
    out = {}
    for name in metrics:
        by_scope = archived.get(name)
        if not isinstance(by_scope, Mapping) or not by_scope:
            continue
        chosen = _select_scopes(by_scope, ["node"], registry, job, name)
        if "node" in chosen:
            out[name] = chosen["node"]
    return out
