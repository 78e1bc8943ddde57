"""Analyses over many jobs (GraphQL jobsMetricStats, jobsFootprints, rooflineHeatmap): statistics, footprints, roofline."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine

from cc_backend.auth.security import Viewer
from cc_backend.errors import CCError, InvalidInput
from cc_backend.jobs.filter import JobFilter, OrderBy, Page
from cc_backend.jobs.query import list_jobs
from cc_backend.metrics.jobdata import hidden_metrics, is_archived, job_stats, node_series

if TYPE_CHECKING:
    from cc_backend.archive.cluster import ClusterRegistry
    from cc_backend.archive.fs import FileArchive
    from cc_backend.metrics.dispatch import MetricDispatch

#: Upstream's cap for footprints and the roofline heatmap (graph/util.go MAX_JOBS_FOR_ANALYSIS).
MAX_JOBS_FOR_ANALYSIS = 500
#: Upstream reads every matching job's meta.json for jobsMetricStats without a cap; each costs a file
#: read, so more than this many is refused (as upstream's metric histograms cap running jobs).
MAX_JOBS_FOR_METRIC_STATS = 5000
#: Largest heatmap (rows x cols) a request may ask for; the web UI asks for 50 x 50.
MAX_HEATMAP_TILES = 1_000_000
#: monitoringStatus values whose jobs have no metric data to analyse (disabled, archiving failed).
UNMONITORED = frozenset({0, 2})
ROOFLINE_METRICS = ("flops_any", "mem_bw")
_START_TIME_ASC = OrderBy(field="startTime", type="col", order="ASC")


def _matching_jobs(engine: Engine, filters: Sequence[JobFilter], viewer: Viewer | None, limit: int, what: str,
                   order: OrderBy | None = None) -> list[dict[str, Any]]:
    """The viewer's jobs matching ``filters``; InvalidInput naming ``filter`` when more than ``limit`` match."""
    jobs = list_jobs(engine, filters, order=order, page=Page(itemsPerPage=limit + 1, page=1), viewer=viewer,
                     with_tags=False)
    if len(jobs) > limit:
        raise InvalidInput(f"too many jobs matched for {what} (max {limit}); narrow the filter", field="filter")
    return jobs


class _HiddenMetrics:
    """Restricted metrics per (cluster, subcluster) for one viewer, looked up once per analysis."""

    def __init__(self, registry: ClusterRegistry, viewer: Viewer | None) -> None:
        self.registry, self.viewer = registry, viewer
        self._known: dict[tuple[str, str], frozenset[str]] = {}

    def of(self, job: dict[str, Any]) -> frozenset[str]:
        key = (job["cluster"], job.get("subCluster") or "")
        hidden = self._known.get(key)
        if hidden is None:
            hidden = self._known[key] = hidden_metrics(self.registry, key[0], key[1], self.viewer)
        return hidden


def jobs_metric_stats(engine: Engine, archive: FileArchive, filters: Sequence[JobFilter], metrics: Sequence[str] | None,
                      *, viewer: Viewer | None = None, live: MetricDispatch | None = None) -> list[dict[str, Any]]:
    """GraphQL ``jobsMetricStats``: per matching job (oldest first) its statistics of ``metrics``.

    Archived jobs' come from meta.json, the others' (running, or stopped and not yet archived) from the
    metric store through ``live``. Only jobs with statistics of every requested metric (that the viewer
    may see) are listed: as upstream, a job whose statistics cannot be loaded (no metric store, an
    unreadable meta.json) is left out, and upstream's web UI reads every requested metric of every
    listed job. The schema allows no null statistics to stand in for missing ones.
    """
    jobs = _matching_jobs(engine, filters, viewer, MAX_JOBS_FOR_METRIC_STATS, "jobsMetricStats", _START_TIME_ASC)
    hidden = _HiddenMetrics(archive.registry(), viewer)
    requested = None if metrics is None else list(dict.fromkeys(metrics))
    out = []
    for job in jobs:
        if not is_archived(job) and live is None:
            continue
        invisible = hidden.of(job)
        try:
            stats = job_stats(archive, job, requested, hidden=invisible, live=live)
        except (CCError, OSError, ValueError):  # one job's unreadable data must not fail the whole list
            continue
        if requested is None:
            complete = bool(stats)
        else:
            complete = len(stats) == sum(name not in invisible for name in requested)
        if not complete:
            continue
        out.append({
            "id": job["id"],
            "jobId": str(job["jobId"]),
            "startTime": job["startTime"],
            "duration": job["duration"],
            "cluster": job["cluster"],
            "subCluster": job["subCluster"],
            "numNodes": job["numNodes"],
            "numHWThreads": job["numHwthreads"],
            "numAccelerators": job["numAcc"],
            "stats": stats,
        })
    return out


def footprint_of(footprint: dict[str, Any], metric: str) -> float | None:
    """The job's footprint value of ``metric``: ``<metric>_avg``, else ``_max``, else ``_min``; None without one.

    The Python side of jobs.query.footprint_value (the same keys in the same order), for rows already read.
    """
    value = footprint.get(f"{metric}_avg")
    if value is None:
        value = next((footprint[f"{metric}_{stat}"] for stat in ("max", "min") if f"{metric}_{stat}" in footprint), None)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def jobs_footprints(engine: Engine, archive: FileArchive, filters: Sequence[JobFilter], metrics: Sequence[str],
                    *, viewer: Viewer | None = None) -> dict[str, Any]:
    """GraphQL ``jobsFootprints``: per metric the matching jobs' footprint values, with each job's time weights.

    Values come from the job table's footprint column (null where a job has none, or the metric is
    restricted for the viewer); unmonitored jobs are left out; more than 500 jobs is an error, as
    upstream. The time weights are upstream's: ``duration / 60 * numNodes`` (node *minutes*, despite
    the name), and likewise for accelerators and hardware threads, 1.0 where a job has none.
    """
    jobs = _matching_jobs(engine, filters, viewer, MAX_JOBS_FOR_ANALYSIS, "jobsFootprints")
    hidden = _HiddenMetrics(archive.registry(), viewer)
    columns: list[list[float | None]] = [[] for _ in metrics]
    node_hours: list[float] = []
    acc_hours: list[float] = []
    core_hours: list[float] = []
    for job in jobs:
        if job["monitoringStatus"] in UNMONITORED:
            continue
        footprint = job.get("footprint") or {}
        invisible = hidden.of(job)
        for column, metric in zip(columns, metrics):
            column.append(None if metric in invisible else footprint_of(footprint, metric))
        minutes = job["duration"] / 60.0
        node_hours.append(minutes * job["numNodes"])
        acc_hours.append(minutes * job["numAcc"] if job["numAcc"] > 0 else 1.0)
        core_hours.append(minutes * job["numHwthreads"] if job["numHwthreads"] > 0 else 1.0)
    return {
        "timeWeights": {"nodeHours": node_hours, "accHours": acc_hours, "coreHours": core_hours},
        "metrics": [{"metric": metric, "data": column} for metric, column in zip(metrics, columns)],
    }


def _heatmap_bounds_known(rows: int, cols: int, min_x: float, min_y: float, max_x: float, max_y: float) -> bool:
    """Check the heatmap's arguments; False when a bound is not positive, i.e. not known yet.

    Upstream's web UI asks with ``maxY: -1`` before it knows the peak; upstream's logarithm of it is
    NaN, which drops every sample, so the answer is an all-zero heatmap rather than an error.
    """
    for name, count in (("rows", rows), ("cols", cols)):
        if count < 1:
            raise InvalidInput(f"{name} must be at least 1, got {count}", field=name)
    if rows * cols > MAX_HEATMAP_TILES:
        raise InvalidInput(f"rows x cols must not exceed {MAX_HEATMAP_TILES}, got {rows * cols}", field="rows")
    bounds = (("minX", min_x), ("minY", min_y), ("maxX", max_x), ("maxY", max_y))
    for name, value in bounds:
        if not math.isfinite(value):
            raise InvalidInput(f"{name} must be a finite number, got {value}", field=name)
    if any(value <= 0 for _, value in bounds):
        return False
    if min_x >= max_x:
        raise InvalidInput(f"minX ({min_x}) must be less than maxX ({max_x})", field="minX")
    if min_y >= max_y:
        raise InvalidInput(f"minY ({min_y}) must be less than maxY ({max_y})", field="minY")
    return True


def roofline_heatmap(engine: Engine, archive: FileArchive, filters: Sequence[JobFilter], *, rows: int, cols: int,
                     min_x: float, min_y: float, max_x: float, max_y: float,
                     viewer: Viewer | None = None, live: MetricDispatch | None = None) -> list[list[float]]:
    """GraphQL ``rooflineHeatmap``: counts of node samples per tile, ``rows`` x ``cols``, row 0 at ``min_y``.

    Each sample of the node-scope flops_any and mem_bw series of the matching jobs (at most 500; jobs
    not archived yet read from the metric store through ``live``) is a point x = log10(flops / membw) (arithmetic intensity), y = log10(flops), binned
    linearly in log space between the given bounds; samples outside are dropped. Unlike upstream,
    which pairs the two metrics' series by position, series are paired by hostname, and a job whose
    data cannot be read is skipped instead of failing the whole heatmap.
    """
    if not _heatmap_bounds_known(rows, cols, min_x, min_y, max_x, max_y):
        return [[0.0] * cols for _ in range(rows)]
    jobs = _matching_jobs(engine, filters, viewer, MAX_JOBS_FOR_ANALYSIS, "rooflineHeatmap")
    registry = archive.registry()
    hidden = _HiddenMetrics(registry, viewer)
    lx, ly, hx, hy = math.log10(min_x), math.log10(min_y), math.log10(max_x), math.log10(max_y)
    x_span, y_span = hx - lx, hy - ly
    tiles = [[0.0] * cols for _ in range(rows)]
    log10 = math.log10
    for job in jobs:
        if job["monitoringStatus"] in UNMONITORED or hidden.of(job) & set(ROOFLINE_METRICS):
            continue
        try:
            series = node_series(archive, job, ROOFLINE_METRICS, registry=registry, live=live)
        except (CCError, OSError, ValueError):
            continue
        if len(series) < len(ROOFLINE_METRICS):
            continue
        bandwidth = {s.get("hostname"): s.get("data") or () for s in series["mem_bw"].get("series") or ()}
        for node in series["flops_any"].get("series") or ():
            membw = bandwidth.get(node.get("hostname"))
            if membw is None:
                continue
            for flops, bw in zip(node.get("data") or (), membw):
                # None (missing) and non-positive samples have no logarithm; upstream drops them as NaN.
                if flops is None or bw is None or not (flops > 0 and bw > 0):
                    continue
                x, y = log10(flops / bw), log10(flops)
                if not (lx <= x < hx and ly <= y <= hy):
                    continue
                # upstream's arithmetic, so samples on tile edges land in the same tile
                col, row = int((x - lx) / x_span * cols), int((y - ly) / y_span * rows)
                if col < cols and row < rows:
                    tiles[row][col] += 1.0
    return tiles
