"""What the job view shows of one job besides its row: metric plots, polar and roofline values, energy, statistics tables."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cc_backend.archive.cluster import unit_text
from cc_backend.errors import InvalidInput, NotFound
from cc_backend.metrics.caches import archived_data
from cc_backend.metrics.jobdata import (
    SCOPES,
    check_scopes,
    hidden_metrics,
    is_archived,
    job_stats,
    node_series,
    scoped_job_stats,
    visible_job_data,
)
from cc_backend.metrics.resampling import default_resolution

if TYPE_CHECKING:

    from cc_backend.archive.cluster import MetricConfig, SubCluster, Unit
    from cc_backend.archive.fs import FileArchive
    from cc_backend.auth.security import Viewer
    from cc_backend.config.sections import ResamplingConfig
    from cc_backend.metrics.dispatch import MetricDispatch

#: Samples per series the first render aims at: enough to see the course, few enough to draw a 16-node,
#: 10-metric job in well under a second.
PLOT_POINTS = 600
#: Without main.resampling, a zoom that shows fewer samples than this loads finer ones.
REFINE_BELOW = 100
#: More series than this are drawn as a min/median/max band instead of one line each.
BAND_ABOVE = 8
#: The coarsest resolution (seconds per sample) the data endpoint serves.
MAX_RESOLUTION = 86_400
#: Roofline points at most (every n-th timestep beyond it): a canvas draws a few thousand points at once.
ROOFLINE_MAX_POINTS = 4000
#: Upstream's monitoringStatus values.
MONITORING_STATUS = {0: "disabled", 1: "running or archiving", 2: "archiving failed", 3: "archived"}

_PREFIX = {"": 1.0, "K": 1e3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}


def parse_db_id(text: str) -> int:
    """A job's database id from a URL; anything else is a job that does not exist."""
    if not text.isdigit() or len(text) > 18:
        raise NotFound(f"no job with id {text!r}", field="id")
    return int(text)


def parse_resolution(text: str | None) -> int | None:
    """The ``resolution`` query parameter: seconds per sample, 0 native, absent the first render's default."""
    if text is None or text == "":
        return None
    if not text.isdigit() or int(text) > MAX_RESOLUTION:
        raise InvalidInput(f"resolution must be a whole number of seconds from 0 to {MAX_RESOLUTION}, got {text!r}",
                           field="resolution")
    return int(text)


def subcluster_of(archive: FileArchive, job: Mapping[str, Any]) -> SubCluster | None:
    """The job's subcluster in cluster.json, or None when the cluster or subcluster is unknown."""
    cluster = archive.registry().find(job["cluster"])
    return cluster.find_sub_cluster(job.get("subCluster") or "") if cluster is not None else None


def first_render_resolution(job: Mapping[str, Any], resampling: ResamplingConfig | None) -> int:
    """Seconds per sample of the embedded plot data: about PLOT_POINTS samples over the job, never finer than the site's default."""
    duration = int(job.get("duration") or 0)
    return max(default_resolution(resampling), math.ceil(duration / PLOT_POINTS))


def selectable_metrics(archive: FileArchive, job: Mapping[str, Any], subcluster: SubCluster | None, *,
                       viewer: Viewer | None) -> list[str]:
    """The subcluster's metrics in cluster.json order that the viewer may see (restricted ones left out)."""
    if subcluster is None:
        return []
    hidden = hidden_metrics(archive.registry(), job["cluster"], job.get("subCluster"), viewer)
    return [m.name for m in subcluster.metric_config if m.name not in hidden]


def archived_scopes(archive: FileArchive, job: Mapping[str, Any], metrics: Iterable[str], *,
                    live: MetricDispatch | None = None) -> dict[str, list[str]]:
    """Per metric, the scopes a plot can show: node (derived when not archived) and every archived finer one.

    A job that is not archived can show (with ``live``) node and every scope down to the metric's native one.
    """
    if not is_archived(job):
        return _live_scopes(archive, job, metrics) if live is not None else {}
    try:
        archived = archived_data(archive, job)
    except NotFound:
        return {}
    out = {}
    for name in metrics:
        by_scope = archived.get(name)
        if isinstance(by_scope, Mapping) and by_scope:
            out[name] = ["node"] + [scope for scope in SCOPES if scope != "node" and scope in by_scope]
    return out


def _live_scopes(archive: FileArchive, job: Mapping[str, Any], metrics: Iterable[str]) -> dict[str, list[str]]:
    subcluster = subcluster_of(archive, job)
    if subcluster is None:
        return {}
    has_accelerators = int(job.get("numAcc") or 0) > 0
    out = {}
    for name in metrics:
        config = subcluster.metric(name)
        if config is None:
            continue
        if config.scope == "accelerator":
            if has_accelerators:
                out[name] = ["node", "accelerator"]
        elif config.scope in SCOPES:
            out[name] = list(SCOPES[:SCOPES.index(config.scope) + 1])
    return out


def _units_per_node(subcluster: SubCluster, scope: str) -> int:
    topology = subcluster.topology
    counts = {"socket": len(topology.socket), "memoryDomain": len(topology.memory_domain), "core": len(topology.core),
              "hwthread": len(topology.node), "accelerator": len(topology.accelerators)}
    return counts.get(scope) or 1


def thresholds(config: MetricConfig | None, subcluster: SubCluster | None, scope: str) -> dict[str, float] | None:
    """Peak, normal, caution and alert of a metric at ``scope``: node values shared among the node's units when summed."""
    if config is None or not config.peak:
        return None
    divisor = 1
    if scope != "node" and subcluster is not None and (config.aggregation or "sum") == "sum":
        divisor = _units_per_node(subcluster, scope)
    return {"peak": config.peak / divisor, "normal": config.normal / divisor, "caution": config.caution / divisor,
            "alert": config.alert / divisor, "lowerIsBetter": config.lower_is_better}


def _series_label(series: Mapping[str, Any], scope: str) -> str:
    host = str(series.get("hostname") or "")
    if scope == "node" or series.get("id") in (None, ""):
        return host
    return f"{host} {scope} {series.get('id')}"


def metric_plot(name: str, scope: str, metric: Mapping[str, Any], *, config: MetricConfig | None,
                subcluster: SubCluster | None) -> dict[str, Any]:
    """One plot of the grid: a line per series, or a min/median/max band for more than BAND_ABOVE series."""
    series = metric.get("series") or []
    plot: dict[str, Any] = {
        "metric": name, "scope": scope, "unit": unit_text(metric.get("unit")) or unit_text(config.unit if config else None),
        "timestep": int(metric.get("timestep") or 0), "nativeTimestep": int(config.timestep) if config else 0,
        "seriesCount": len(series), "thresholds": thresholds(config, subcluster, scope),
    }
    if len(series) > BAND_ABOVE:
        band = metric.get("statisticsSeries") or {}
        plot["band"] = {key: band.get(key) or [] for key in ("min", "median", "max")}
    else:
        plot["series"] = [{"label": _series_label(s, scope), "data": s.get("data") or []} for s in series]
    return plot


def job_plots(archive: FileArchive, job: Mapping[str, Any], metrics: Sequence[str], *, viewer: Viewer | None,
              resampling: ResamplingConfig | None, scope: str = "node", resolution: int | None = None,
              live: MetricDispatch | None = None) -> dict[str, dict[str, Any]]:
    """Plot data of ``metrics`` at ``scope`` as the viewer may see them (restricted and unknown metrics left out).

    ``resolution`` None is the first render's (about PLOT_POINTS samples per series); a job that is
    not archived is read from ``live``.
    """
    check_scopes([scope])
    if resolution is None:
        resolution = first_render_resolution(job, resampling)
    try:
        data = visible_job_data(archive, job, viewer=viewer, resampling=resampling, metrics=list(metrics),
                                scopes=[scope], resolution=resolution, live=live)
    except NotFound:  # archived status but no data file: no plots, not an error page
        return {}
    subcluster = subcluster_of(archive, job)
    archived = archived_data(archive, job) if data and is_archived(job) else {}
    plots = {}
    for name in metrics:
        by_scope = data.get(name)
        if not by_scope:
            continue
        shown = scope if scope in by_scope else next(iter(by_scope))
        config = subcluster.metric(name) if subcluster is not None else None
        plot = plots[name] = metric_plot(name, shown, by_scope[shown], config=config, subcluster=subcluster)
        plot["nativeTimestep"] = _native_timestep(archived.get(name), shown) or plot["nativeTimestep"]
    return plots


def _native_timestep(by_scope: Any, scope: str) -> int:
    """The archived timestep of a metric at ``scope`` (a derived node scope has its source's), 0 when unknown."""
    if not isinstance(by_scope, Mapping) or not by_scope:
        return 0
    metric = by_scope.get(scope)
    if isinstance(metric, Mapping):
        return int(metric.get("timestep") or 0)
    return max(int(m.get("timestep") or 0) for m in by_scope.values() if isinstance(m, Mapping))


def one_plot(archive: FileArchive, job: Mapping[str, Any], metric: str | None, scope: str | None,
             resolution: int | None, *, viewer: Viewer | None, resampling: ResamplingConfig | None,
             live: MetricDispatch | None = None) -> dict[str, Any]:
    """The data endpoint's answer: one metric at one scope; a metric the job does not have (for the viewer) is InvalidInput."""
    if not metric:
        raise InvalidInput("metric is required: the name of one of the job's metrics", field="metric")
    check_scopes([scope or "node"])
    if not is_archived(job) and live is None:
        still = "is still running and no metric store is configured" if job.get("jobState") == "running" \
            else "was not archived"
        raise NotFound(f"job {job['id']} has no metric data: it {still}", field="metric")
    plots = job_plots(archive, job, [metric], viewer=viewer, resampling=resampling, scope=scope or "node",
                      resolution=resolution, live=live)
    if metric not in plots:
        if not is_archived(job):
            raise NotFound(f"metric {metric!r}: the metric store has no data of job {job['id']} yet", field="metric")
        raise InvalidInput(f"metric {metric!r}: this job has no such metric", field="metric")
    return plots[metric]


def polar_values(archive: FileArchive, job: Mapping[str, Any], subcluster: SubCluster | None, *,
                 viewer: Viewer | None, live: MetricDispatch | None = None) -> dict[str, Any] | None:
    """The polar plot: per footprint metric, the job's average and maximum as a share of the metric's peak."""
    if subcluster is None or (not is_archived(job) and live is None):
        return None
    hidden = hidden_metrics(archive.registry(), job["cluster"], job.get("subCluster"), viewer)
    names = [name for name in subcluster.footprint if name not in hidden]
    try:
        stats = {entry["name"]: entry["data"] for entry in job_stats(archive, job, names, live=live)}
    except NotFound:
        return None
    out: dict[str, Any] = {"metrics": [], "units": [], "peaks": [], "avg": [], "max": []}
    for name in names:
        config = subcluster.metric(name)
        if config is None or not config.peak or name not in stats:
            continue
        out["metrics"].append(name)
        out["units"].append(unit_text(config.unit))
        out["peaks"].append(config.peak)
        out["avg"].append(round(stats[name]["avg"] / config.peak, 4))
        out["max"].append(round(stats[name]["max"] / config.peak, 4))
    return out if len(out["metrics"]) >= 3 else None


def _scaled(value: float, unit: Unit | Mapping[str, Any] | None, prefix: str = "G") -> float:
    """``value`` in ``unit`` expressed with ``prefix`` (GFLOP/s, GB/s), so the roofline compares like with like."""
    given = unit.get("prefix", "") if isinstance(unit, Mapping) else unit.prefix if unit is not None else ""
    return value * _PREFIX.get(given or "", 1.0) / _PREFIX[prefix]


def roofline(archive: FileArchive, job: Mapping[str, Any], subcluster: SubCluster | None, *,
             viewer: Viewer | None, live: MetricDispatch | None = None) -> dict[str, Any] | None:
    """The job's roofline: flops_any over arithmetic intensity (flops_any / mem_bw) per timestep and node, with the ceilings.

    Points carry ``t``, the share of the job's course (0 start, 1 end), for their colour. None when the
    job lacks either metric (or the viewer may not see one).
    """
    if subcluster is None or (not is_archived(job) and live is None):
        return None
    hidden = hidden_metrics(archive.registry(), job["cluster"], job.get("subCluster"), viewer)
    if {"flops_any", "mem_bw"} & hidden:
        return None
    try:
        data = node_series(archive, job, ["flops_any", "mem_bw"], registry=archive.registry(), live=live)
    except NotFound:
        return None
    if "flops_any" not in data or "mem_bw" not in data:
        return None
    flops_unit, bw_unit = data["flops_any"].get("unit"), data["mem_bw"].get("unit")
    bandwidth = {s.get("hostname"): s.get("data") or [] for s in data["mem_bw"].get("series") or ()}
    pairs: list[tuple[list[Any], list[Any]]] = []
    for series in data["flops_any"].get("series") or ():
        bw_data = bandwidth.get(series.get("hostname"))
        if bw_data:
            pairs.append((series.get("data") or [], bw_data))
    length = max((min(len(f), len(b)) for f, b in pairs), default=0)
    step = max(1, math.ceil(length * len(pairs) / ROOFLINE_MAX_POINTS))
    xs: list[float] = []
    ys: list[float] = []
    ts: list[float] = []
    for flops, bw in pairs:
        for i in range(0, min(len(flops), len(bw)), step):
            f, b = flops[i], bw[i]
            if not isinstance(f, (int, float)) or not isinstance(b, (int, float)) or not f > 0 or not b > 0:
                continue  # NaN and missing samples fail the comparisons too
            gflops = _scaled(f, flops_unit)
            xs.append(round(gflops / _scaled(b, bw_unit), 4))
            ys.append(round(gflops, 3))
            ts.append(round(i / (length - 1), 3) if length > 1 else 0.0)
    return {
        "x": xs, "y": ys, "t": ts,
        "ceilings": {
            "scalar": _scaled(subcluster.flop_rate_scalar.value, subcluster.flop_rate_scalar.unit),
            "simd": _scaled(subcluster.flop_rate_simd.value, subcluster.flop_rate_simd.unit),
            "bandwidth": _scaled(subcluster.memory_bandwidth.value, subcluster.memory_bandwidth.unit),
        },
    }


def energy_summary(job: Mapping[str, Any], subcluster: SubCluster | None, emission_constant: int) -> dict[str, Any] | None:
    """Energy per energy metric and in total (kWh, computed at archiving), and CO2 when the site set an emission constant."""
    footprint = job.get("energyFootprint") or {}
    total = job.get("energy") or 0.0
    if not footprint and not total:
        return None
    parts = []
    for name, kwh in footprint.items():
        config = subcluster.metric(name) if subcluster is not None else None
        parts.append({"metric": name, "kwh": float(kwh or 0.0), "kind": (config.energy if config else None) or "power"})
    out: dict[str, Any] = {"parts": parts, "total": float(total)}
    if emission_constant > 0:
        out["co2_grams"] = float(total) * emission_constant
        out["emission_constant"] = emission_constant
    return out


def statistics_tables(archive: FileArchive, job: Mapping[str, Any], metrics: Sequence[str], *,
                      viewer: Viewer | None, live: MetricDispatch | None = None) -> dict[str, Any]:
    """The statistics table: min/avg/max per node of each metric, and per finer scope (core, socket, accelerator) apart.

    ``nodes`` is ``[{hostname, values: {metric: {min, avg, max}}}]``; ``finer`` is ``[{metric, scope, unit,
    rows: [{hostname, id, min, avg, max}]}]``.
    """
    if not is_archived(job) and live is None:
        return {"metrics": [], "nodes": [], "finer": []}
    registry = archive.registry()
    hidden = hidden_metrics(registry, job["cluster"], job.get("subCluster"), viewer)
    try:
        scoped = scoped_job_stats(archive, job, metrics, list(SCOPES), registry=registry, hidden=hidden, live=live)
    except NotFound:
        return {"metrics": [], "nodes": [], "finer": []}
    subcluster = subcluster_of(archive, job)
    configs = {name: subcluster.metric(name) if subcluster is not None else None for name in metrics}
    units = {name: unit_text(config.unit) if config is not None else "" for name, config in configs.items()}
    shown = [name for name in metrics if any(entry["name"] == name for entry in scoped)]
    hosts: dict[str, dict[str, Any]] = {}
    finer = []
    for entry in scoped:
        if entry["scope"] == "node":
            for stat in entry["stats"]:
                host = str(stat.get("hostname") or "")
                hosts.setdefault(host, {})[entry["name"]] = stat["data"]
        else:
            finer.append({"metric": entry["name"], "scope": entry["scope"], "unit": units.get(entry["name"], ""),
                          "rows": [{"hostname": s.get("hostname"), "id": s.get("id"), **s["data"]}
                                   for s in entry["stats"]]})
    nodes = [{"hostname": host, "values": values} for host, values in hosts.items()]
    return {"metrics": [{"name": name, "unit": units.get(name, "")} for name in shown], "nodes": nodes,
            "finer": finer}

