"""The small per-row plots of job lists: node-scope series of many jobs at once, downsampled to the plot width."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cc_backend.archive.cluster import unit_text
from cc_backend.errors import CCError, InvalidInput
from cc_backend.jobs.filter import JobFilter
from cc_backend.jobs.footprint import threshold_level
from cc_backend.jobs.query import list_jobs
from cc_backend.metrics.jobdata import visible_job_data
from cc_backend.metrics.resampling import lttb
from cc_backend.metrics.statistics import STATISTICS_SERIES_MIN

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from cc_backend.archive.fs import FileArchive
    from cc_backend.auth.security import Viewer
    from cc_backend.config.sections import ResamplingConfig
    from cc_backend.metrics.dispatch import MetricDispatch

log = logging.getLogger("cc_backend.metrics.listplots")

#: Limits of one request: a page of the job list (up to 100 rows) and a reasonable number of columns.
MAX_JOBS = 100
MAX_METRICS = 12
MIN_WIDTH, MAX_WIDTH = 20, 4000
#: From this many nodes on, a plot shows the min/median/max band instead of one line per node.
BAND_FROM_NODES = STATISTICS_SERIES_MIN


def check_request(db_ids: Sequence[int], metrics: Sequence[str], width: int) -> None:
    """InvalidInput naming ``dbId``, ``metric`` or ``width`` when a request is beyond the limits."""
    if not db_ids:
        raise InvalidInput("dbId: give at least one job", field="dbId")
    if len(db_ids) > MAX_JOBS:
        raise InvalidInput(f"dbId: at most {MAX_JOBS} jobs per request, not {len(db_ids)}", field="dbId")
    if not metrics:
        raise InvalidInput("metric: give at least one metric", field="metric")
    if len(metrics) > MAX_METRICS:
        raise InvalidInput(f"metric: at most {MAX_METRICS} metrics per request, not {len(metrics)}", field="metric")
    if not MIN_WIDTH <= width <= MAX_WIDTH:
        raise InvalidInput(f"width: {width} is not between {MIN_WIDTH} and {MAX_WIDTH} pixels", field="width")


def _downsampled(data: Sequence[Any], points: int) -> list[Any]:
    return lttb(data, points) if len(data) > points else list(data)


def _average(series: Sequence[Mapping[str, Any]]) -> float | None:
    """The mean of the series' averages (the node-averaged value upstream colours the plot background by)."""
    averages = [s["statistics"]["avg"] for s in series if isinstance(s.get("statistics"), Mapping)
                and isinstance(s["statistics"].get("avg"), (int, float))]
    return sum(averages) / len(averages) if averages else None


def _plot(metric: Mapping[str, Any], width: int, thresholds: dict[str, Any] | None) -> dict[str, Any] | None:
    series = metric.get("series") or []
    if not series:
        return None
    timestep = int(metric.get("timestep") or 60)
    longest = max(len(s.get("data") or ()) for s in series)
    if not longest:
        return None
    spec: dict[str, Any] = {"unit": unit_text(metric.get("unit")), "nodes": len(series)}
    stats = metric.get("statisticsSeries")
    if len(series) >= BAND_FROM_NODES and isinstance(stats, Mapping) and stats.get("median"):
        spec["band"] = {key: _downsampled(stats.get(key) or [], width) for key in ("min", "median", "max")}
        points = len(spec["band"]["median"])
    else:
        spec["series"] = [{"label": s.get("hostname") or f"series {i + 1}", "data": _downsampled(s.get("data") or [], width)}
                          for i, s in enumerate(series)]
        points = max(len(s["data"]) for s in spec["series"])
    # LTTB keeps the first and last sample: the downsampled points span the same time.
    spec["timestep"] = timestep * (longest - 1) / (points - 1) if points > 1 else timestep
    if thresholds:
        spec["thresholds"] = thresholds
        average = _average(series)
        if average is not None:
            spec["level"] = threshold_level(average, thresholds["caution"], thresholds["alert"],
                                            lower_is_better=thresholds["lowerIsBetter"])
    return spec


def _thresholds(registry: Any, job: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    try:
        config = registry.metric_config(job["cluster"], job.get("subCluster") or "", name)
    except CCError:
        return None
    if config is None:
        return None
    return {"peak": config.peak, "normal": config.normal, "caution": config.caution, "alert": config.alert,
            "lowerIsBetter": config.lower_is_better}


def job_list_plots(engine: Engine, archive: FileArchive, db_ids: Sequence[int], metrics: Sequence[str], *,
                   viewer: Viewer | None, width: int, resampling: ResamplingConfig | None = None,
                   live: MetricDispatch | None = None) -> dict[str, Any]:
    """``{"plots": {dbId: {metric: spec | None}}}`` for the jobs the viewer may see among ``db_ids``.

    A spec is what ``plots.js`` ``timeSeries()`` draws: ``{timestep, unit, nodes, series: [{label,
    data}]}`` with one series per node, or ``band: {min, median, max}`` from :data:`BAND_FROM_NODES`
    nodes on; each series has at most ``width`` points (LTTB); ``level`` rates the job's average against
    the thresholds (upstream colours the plot's background by it). None: the job has no data for the metric
    (not archived and no metric store has it, metric not recorded or restricted; a job not archived yet reads
    the metric store through ``live``). Jobs the viewer may not see are
    left out, as if they did not exist.
    """
    ids = list(dict.fromkeys(db_ids))
    names = list(dict.fromkeys(metrics))
    check_request(ids, names, width)
    jobs = list_jobs(engine, [JobFilter(dbId=ids)], viewer=viewer, with_tags=False)
    registry = archive.registry()
    plots: dict[str, dict[str, Any]] = {}
    for job in jobs:
        try:
            data = visible_job_data(archive, job, viewer=viewer, resampling=resampling, metrics=names,
                                    scopes=["node"], resolution=0, live=live)
        except (CCError, OSError, ValueError) as exc:  # one broken data file must not blank the whole list
            log.warning("no plot data for job %s: %s", job["id"], exc)
            data = {}
        row: dict[str, Any] = {}
        for name in names:
            metric = (data.get(name) or {}).get("node")
            row[name] = _plot(metric, width, _thresholds(registry, job, name)) if metric else None
        plots[str(job["id"])] = row
    return {"plots": plots}
