"""Job footprint, energy and node-scope statistics, as computed by archiving, import and init-db."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from cc_backend.archive.cluster import MetricConfig, SubCluster
from cc_backend.errors import InvalidInput

__all__ = [
    "compute_energy",
    "compute_footprint",
    "footprint_bars",
    "go_round",
    "load_job_stat",
    "statistics_from_data",
]


def go_round(value: float, digits: int = 2) -> float:
    """Round half away from zero like Go's ``math.Round(x*10^d)/10^d`` (Python's round() is half-to-even)."""
    scale = 10.0**digits
    scaled = value * scale
    # math.floor(x + 0.5) differs from Go's Round for x just below .5 (e.g. 0.49999999999999994).
    rounded = math.floor(abs(scaled))
    if abs(scaled) - rounded >= 0.5:
        rounded += 1
    return math.copysign(rounded, scaled) / scale


def load_job_stat(job: Mapping[str, Any], metric: str, stat: str) -> float:
    """``job["statistics"][metric][stat]``, or 0.0 when the job has no such statistic (as upstream)."""
    stats = (job.get("statistics") or {}).get(metric)
    if not isinstance(stats, Mapping):
        return 0.0
    value = stats.get(stat)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    return float(value)


# Per subcluster, what footprint and energy need from a job's statistics, worked out once: init-db
# calls these for every job of the archive. Keyed by id(); the value keeps the subcluster alive,
# so the id cannot be reused while the entry exists.
_plans: dict[int, tuple[SubCluster, tuple[tuple[str, str, str], ...], tuple[tuple[str, str, str], ...],
                        tuple[tuple[str, bool], ...]]] = {}


def _plan(subcluster: SubCluster) -> tuple:
    plan = _plans.get(id(subcluster))
    if plan is None or plan[0] is not subcluster:
        configured, upstream = [], []
        for name in subcluster.footprint:
            mc = subcluster.metric(name)
            stat = "avg" if mc is None or not mc.footprint else mc.footprint
            configured.append((f"{name}_{stat}", name, stat))
            upstream.append((f"{name}_avg", name, "avg"))
        energy = []
        for name in subcluster.energy_footprint:
            mc = subcluster.metric(name)
            energy.append((name, mc is not None and mc.energy == "power"))
        plan = _plans[id(subcluster)] = (subcluster, tuple(configured), tuple(upstream), tuple(energy))
    return plan


def _stat(stats: Any, metric: str, stat: str) -> float:
    entry = stats.get(metric) if type(stats) is dict else None
    if type(entry) is not dict:
        return load_job_stat({"statistics": stats}, metric, stat) if entry is not None else 0.0
    value = entry.get(stat)
    if type(value) is float or type(value) is int:
        return float(value)
    return load_job_stat({"statistics": stats}, metric, stat)


def compute_footprint(job: Mapping[str, Any], subcluster: SubCluster, *, upstream_avg_keys: bool = False) -> dict[str, float]:
    """``{"<metric>_<stat>": value}`` for every footprint metric of the job's (resolved) subcluster.

    The stat is the metric config's ``footprint`` (avg|min|max). ``upstream_avg_keys=True`` reproduces what
    upstream cc-backend actually stores: its stat lookup is inverted, so every key is ``<metric>_avg`` holding the
    average (e.g. ``mem_used_avg`` although mem_used is configured ``max``).
    """
    _, configured, upstream, _ = _plan(subcluster)
    stats = job.get("statistics") or {}
    return {key: _stat(stats, name, stat) for key, name, stat in (upstream if upstream_avg_keys else configured)}


def compute_energy(job: Mapping[str, Any], subcluster: SubCluster) -> tuple[dict[str, float], float]:
    """Per-metric energy in kWh and the job total, both rounded to 2 digits.

    ``power`` metrics: avg W x numNodes x duration h / 1000. ``energy`` metrics contribute 0 (not implemented
    upstream either).
    """
    energy_plan = _plan(subcluster)[3]
    if not energy_plan:
        return {}, 0.0
    num_nodes = _int_field(job, "numNodes")
    duration = _int_field(job, "duration")
    stats = job.get("statistics") or {}
    per_metric: dict[str, float] = {}
    total = 0.0
    for name, is_power in energy_plan:
        energy = 0.0
        if is_power:
            # Same operation order as upstream so results match bit for bit before rounding.
            raw = ((_stat(stats, name, "avg") * float(num_nodes)) * (float(duration) / 3600.0)) / 1000.0
            energy = go_round(raw, 2)
        per_metric[name] = energy
        total += energy
    return per_metric, go_round(total, 2)


def _int_field(job: Mapping[str, Any], key: str) -> int:
    value = job.get(key, 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(f"{key} must be a number, got {value!r}", field=key)
    return int(value)


def series_stats(series: Mapping[str, Any]) -> tuple[float, float | None, float | None]:
    """(avg, min, max) of one series; derived from its samples when it carries no statistics."""
    stats = series.get("statistics")
    if isinstance(stats, Mapping) and all(isinstance(stats.get(k), (int, float)) for k in ("avg", "min", "max")):
        return float(stats["avg"]), float(stats["min"]), float(stats["max"])
    values = [
        float(v)
        for v in series.get("data") or ()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)
    ]
    if not values:
        # A node without any sample adds nothing to the sum but still counts in numNodes, as upstream.
        return 0.0, None, None
    return math.fsum(values) / len(values), min(values), max(values)


def statistics_from_data(
    data: Mapping[str, Any],
    num_nodes: int,
    metric_configs: Mapping[str, MetricConfig] | Iterable[MetricConfig],
) -> dict[str, dict[str, Any]]:
    """Job statistics from node-scope series: avg = round(sum of series avgs / numNodes, 2), min of mins, max of maxes.

    Metrics without node scope are skipped. The unit comes from the metric config (cluster-level), falling back
    to the data's own unit for metrics the config does not know.
    """
    if isinstance(num_nodes, bool) or not isinstance(num_nodes, int) or num_nodes < 1:
        raise InvalidInput(f"numNodes must be a positive integer, got {num_nodes!r}", field="numNodes")
    configs = metric_configs if isinstance(metric_configs, Mapping) else {mc.name: mc for mc in metric_configs}
    out: dict[str, dict[str, Any]] = {}
    for metric, scopes in data.items():
        node = scopes.get("node") if isinstance(scopes, Mapping) else None
        if not isinstance(node, Mapping):
            continue
        total = 0.0
        lo: float | None = None
        hi: float | None = None
        for series in node.get("series") or ():
            avg, smin, smax = series_stats(series)
            total += avg
            if smin is not None:
                lo = smin if lo is None else min(lo, smin)
            if smax is not None:
                hi = smax if hi is None else max(hi, smax)
        mc = configs.get(metric)
        if mc is not None:
            unit = mc.unit.to_dict()
        else:
            raw_unit = node.get("unit")
            if not isinstance(raw_unit, Mapping):
                raw_unit = {}
            unit = {k: v for k, v in raw_unit.items() if k in ("base", "prefix") and v != ""}
            unit.setdefault("base", "")
        out[metric] = {
            "unit": unit,
            "avg": go_round(total / num_nodes, 2),
            "min": lo if lo is not None else 0.0,
            "max": hi if hi is not None else 0.0,
        }
    return out


#: How a footprint value compares with its metric's thresholds (upstream's JobFootprint colours).
FOOTPRINT_LEVELS = ("good", "caution", "alert", "above-peak")


def threshold_level(value: float, caution: float, alert: float, *, lower_is_better: bool = False) -> str:
    """``good``, ``caution`` or ``alert``: a value against a metric's thresholds (footprint bars, plot backgrounds).

    Higher is better: at or below alert is alert, at or below caution caution. Lower is better: at or
    above a (positive) alert is alert, at or above a (positive) caution caution.
    """
    if lower_is_better:
        return "alert" if value >= alert > 0 else "caution" if value >= caution > 0 else "good"
    return "alert" if value <= alert else "caution" if value <= caution else "good"


def footprint_bars(footprint: Mapping[str, Any] | None, subcluster: SubCluster) -> list[dict[str, Any]]:
    """One bar per footprint metric of ``subcluster``: the job's value against the metric's peak and thresholds.

    ``footprint`` is the job's stored footprint (``{"flops_any_avg": 12.3, ...}``); the key is
    ``<metric>_<stat>`` with the stat of the metric config, and ``<metric>_avg`` as upstream stores it.
    ``level`` is ``good`` (at or better than normal... caution), ``caution``, ``alert`` (at or below
    alert, or for lower-is-better metrics above it), or ``above-peak``; ``percent`` is the share of the peak
    (0-100) the bar fills. Metrics without a value are left out.
    """
    bars: list[dict[str, Any]] = []
    values = footprint or {}
    for key, name, stat in _plan(subcluster)[1]:
        value = values.get(key, values.get(f"{name}_avg"))
        mc = subcluster.metric(name)
        if mc is None or not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        peak = mc.peak or 0.0
        if peak and value > peak:
            level = "above-peak"
        else:
            level = threshold_level(value, mc.caution, mc.alert, lower_is_better=mc.lower_is_better)
        bars.append({"metric": name, "stat": stat, "value": float(value), "unit": mc.unit.text, "peak": peak,
                     "normal": mc.normal, "caution": mc.caution, "alert": mc.alert,
                     "lowerIsBetter": mc.lower_is_better, "level": level,
                     "percent": min(100.0, max(0.0, 100.0 * value / peak)) if peak else 0.0})
    return bars
