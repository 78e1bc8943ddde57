"""Aggregate statistics over jobs (upstream's jobsStatistics): totals per group, histograms, metric histograms."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnClause, Integer, and_, case, distinct, func, literal_column, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from cc_backend.archive.cluster import ClusterRegistry
from cc_backend.auth.security import Viewer
from cc_backend.db.engine import connection_for
from cc_backend.db.tables import job_table
from cc_backend.errors import InvalidInput
from cc_backend.jobs.filter import JobFilter, Page
from cc_backend.jobs.query import footprint_value, where_clause

J = job_table.c

#: Aggregate -> the job column whose values form the groups.
GROUP_COLUMNS = {"USER": J.hpc_user, "PROJECT": J.project, "CLUSTER": J.cluster, "SUBCLUSTER": J.subcluster}
#: SortByAggregate -> the statistic sorted by (descending, as upstream).
SORT_FIELDS = {
    "TOTALWALLTIME": "totalWalltime", "TOTALJOBS": "totalJobs", "TOTALUSERS": "totalUsers",
    "TOTALNODES": "totalNodes", "TOTALNODEHOURS": "totalNodeHours", "TOTALCORES": "totalCores",
    "TOTALCOREHOURS": "totalCoreHours", "TOTALACCS": "totalAccs", "TOTALACCHOURS": "totalAccHours",
}
#: numDurationBins -> (bin width in seconds, number of bins); upstream's fixed ranges (1h: 48 bins = 2 days).
DURATION_BINS = {"1m": (60, 60), "10m": (600, 72), "1h": (3600, 48), "6h": (21600, 12), "12h": (43200, 14)}
DEFAULT_DURATION_BINS = "1h"
DEFAULT_METRIC_BINS = 10
#: More bins than any plot can show; the bound keeps one request from asking for millions of empty bins.
MAX_METRIC_BINS = 1000

TOTAL_FIELDS = ("totalUsers", "totalJobs", "runningJobs", "shortJobs", "totalWalltime", "totalNodes",
                "totalNodeHours", "totalCores", "totalCoreHours", "totalAccs", "totalAccHours")
RESOURCE_COUNTS = {"totalNodes": J.num_nodes, "totalCores": J.num_hwthreads, "totalAccs": J.num_acc}
RESOURCE_HOURS = {"totalNodeHours": J.num_nodes, "totalCoreHours": J.num_hwthreads, "totalAccHours": J.num_acc}
#: Totals computed in SQL as seconds and reported in hours.
HOUR_FIELDS = frozenset({"totalWalltime", "totalNodeHours", "totalCoreHours", "totalAccHours"})
HISTOGRAM_COLUMNS = {"histNumNodes": J.num_nodes, "histNumCores": J.num_hwthreads, "histNumAccs": J.num_acc}
HISTOGRAM_FIELDS = ("histDuration", *HISTOGRAM_COLUMNS)
TOTALS = frozenset({"id", "name", *TOTAL_FIELDS})
ALL_FIELDS = frozenset({*TOTALS, *HISTOGRAM_FIELDS, "histMetrics"})


@dataclass(frozen=True)
class StatsOptions:
    """What to compute: the requested JobsStatistics fields and the query's arguments, checked on creation."""

    #: JobsStatistics fields to compute (histograms only when asked for: they cannot be grouped).
    fields: frozenset[str] = TOTALS
    group_by: str | None = None
    sort_by: str | None = None
    page: Page | None = None
    duration_bins: str = DEFAULT_DURATION_BINS
    metric_bins: int = DEFAULT_METRIC_BINS
    metrics: tuple[str, ...] = ()
    #: Jobs shorter than this many seconds are short (main.short-running-jobs-duration).
    short_duration: int = 300
    #: The archive's clusters: metric peaks, units and footprint statistics for histMetrics.
    clusters: ClusterRegistry | None = field(default=None, compare=False)
    #: "Now" for running jobs' durations and named start-time ranges; the current time if None.
    now: int | None = None

    def __post_init__(self) -> None:
        if self.group_by is not None and self.group_by not in GROUP_COLUMNS:
            raise InvalidInput(f"groupBy must be one of {', '.join(GROUP_COLUMNS)}, got {self.group_by!r}",
                               field="groupBy")
        if self.sort_by is not None and self.sort_by not in SORT_FIELDS:
            raise InvalidInput(f"sortBy must be one of {', '.join(SORT_FIELDS)}, got {self.sort_by!r}",
                               field="sortBy")
        if self.duration_bins not in DURATION_BINS:
            raise InvalidInput(f"numDurationBins must be one of {', '.join(DURATION_BINS)}, "
                               f"got {self.duration_bins!r}", field="numDurationBins")
        if not 1 <= self.metric_bins <= MAX_METRIC_BINS:
            raise InvalidInput(f"numMetricBins must be between 1 and {MAX_METRIC_BINS}, got {self.metric_bins}",
                               field="numMetricBins")
        if self.group_by is not None and self.fields & {*HISTOGRAM_FIELDS, "histMetrics"}:
            raise InvalidInput("histograms are only computed without groupBy", field="groupBy")


def job_statistics(engine: Engine | Connection, filters: Sequence[JobFilter], viewer: Viewer | None,
                   options: StatsOptions) -> list[dict[str, Any]]:
    """JobsStatistics of the jobs the viewer may see that match every filter, as dicts keyed by field name.

    Without ``group_by`` one dict for all jobs (id and name ""), with it one per group (sorted, paged).
    Only the fields in ``options.fields`` are computed, each by SQL aggregation.
    """
    now = int(time.time()) if options.now is None else options.now
    where = where_clause(filters, viewer, now)
    # Metric names are checked whenever the clusters are at hand, not only when histMetrics is asked for.
    checks_metrics = bool(options.metrics) and ("histMetrics" in options.fields or options.clusters is not None)
    metric_scales = _metric_scales(options, filters) if checks_metrics else {}
    with connection_for(engine) as conn:
        if options.group_by is not None:
            return _grouped_totals(conn, where, options, now)
        stats: dict[str, Any] = {"id": "", "name": ""}
        stats.update(_overall_totals(conn, where, options, now))
        if "histDuration" in options.fields:
            stats["histDuration"] = _duration_histogram(conn, where, options.duration_bins, now)
        for name, column in HISTOGRAM_COLUMNS.items():
            if name in options.fields:
                stats[name] = _value_histogram(conn, where, column)
        if "histMetrics" in options.fields:
            stats["histMetrics"] = [_metric_histogram(conn, where, metric, metric_scales[metric], options.metric_bins)
                                    for metric in options.metrics]
        return [stats]


# --- totals -----------------------------------------------------------------------------------------
#
# Every total is summed in two statements instead of one with a CASE on job_state per row: one over the
# jobs that are not running (their stored duration), grouped by (cluster, job_state, group) so that
# SQLite walks the covering index jobs_cluster_jobstate_<group>_stats in order instead of sorting a
# million rows, and one over the running jobs (duration = now - start_time), few and found by an index
# on job_state. The groups' parts are added up in Python; there are at most
# as many as users or projects, so sorting and paging them here costs nothing next to the scan.

RUNNING: ColumnClause[str] = literal_column("'running'")  # a literal, not a parameter: SQLite matches partial indexes by text

#: Columns grouped by ahead of the group itself, to follow the order of the covering indexes.
_INDEX_ORDER = (J.cluster, J.job_state)


def _index_ordered(group: ColumnElement) -> tuple[ColumnElement, ...]:
    return (*_INDEX_ORDER, group) if group is not J.cluster else _INDEX_ORDER


def _sums(wanted: Iterable[str], duration: ColumnElement, short_duration: int) -> list[ColumnElement]:
    """SUM expressions (labelled by field) of the wanted totals for jobs whose duration is ``duration``."""
    sums: list[ColumnElement] = []
    for name in wanted:
        if name == "totalJobs":
            sums.append(func.count().label(name))
        elif name == "shortJobs":
            sums.append(func.sum(case((duration < short_duration, 1), else_=0)).label(name))
        elif name == "totalWalltime":
            sums.append(func.sum(duration).label(name))
        elif name in RESOURCE_HOURS:
            sums.append(func.sum(duration * RESOURCE_HOURS[name]).label(name))
        elif name in RESOURCE_COUNTS:
            sums.append(func.sum(RESOURCE_COUNTS[name]).label(name))
    return sums


def _summed_totals(conn: Connection, where: ColumnElement | None, options: StatsOptions, now: int,
                   wanted: list[str]) -> dict[Any, dict[str, int]]:
    """group id (None without grouping) -> {total: seconds or count} of the summable totals in ``wanted``."""
    group = GROUP_COLUMNS[options.group_by] if options.group_by else None
    summed = [name for name in wanted if name not in ("totalUsers", "runningJobs")]
    if "runningJobs" in wanted and "totalJobs" not in summed:
        summed.append("totalJobs")  # the running part's job count is runningJobs
    if group is None and "totalJobs" not in summed:
        summed.append("totalJobs")  # a row per part even without any other total: zero jobs is a total too
    parts = (  # (running?, condition, duration, grouped by)
        (False, J.job_state != RUNNING, J.duration, _index_ordered(group) if group is not None else ()),
        (True, J.job_state == RUNNING, now - J.start_time, (group,) if group is not None else ()),
    )
    totals: dict[Any, dict[str, int]] = {}
    for running, state_condition, duration, group_by in parts:
        columns = [group.label("group_id")] if group is not None else []
        stmt = select(*columns, *_sums(summed, duration, options.short_duration)).select_from(job_table)
        stmt = stmt.where(state_condition if where is None else and_(where, state_condition))
        if group_by:
            stmt = stmt.group_by(*group_by)
        for row in conn.execute(stmt).mappings():
            entry = totals.setdefault(row["group_id"] if group is not None else None, dict.fromkeys(wanted, 0))
            for name in summed:
                # MySQL sums integers as DECIMAL; SUM over no rows (or only NULLs) is NULL
                value = int(row[name] or 0)
                if name in entry:
                    entry[name] += value
                if running and name == "totalJobs" and "runningJobs" in entry:
                    entry["runningJobs"] += value
    return totals


def _distinct_users(conn: Connection, where: ColumnElement | None, group: ColumnElement | None) -> dict[Any, int]:
    columns = [group.label("group_id")] if group is not None else []
    stmt = select(*columns, func.count(distinct(J.hpc_user)).label("users")).select_from(job_table)
    if where is not None:
        stmt = stmt.where(where)
    if group is not None:
        stmt = stmt.group_by(group)
    rows = conn.execute(stmt).mappings()
    return {(row["group_id"] if group is not None else None): int(row["users"]) for row in rows}


def _in_hours(totals: dict[str, int]) -> dict[str, int]:
    return {name: _hours(value) if name in HOUR_FIELDS else value for name, value in totals.items()}


def _hours(seconds: int) -> int:
    """Seconds to whole hours, rounded half up on every database (upstream rounds on MySQL, truncates on SQLite)."""
    return math.floor(seconds / 3600 + 0.5)


def _overall_totals(conn: Connection, where: ColumnElement | None, options: StatsOptions, now: int) -> dict[str, int]:
    wanted = [f for f in TOTAL_FIELDS if f in options.fields]
    if not wanted:
        return {}
    totals = _summed_totals(conn, where, options, now, wanted).get(None, dict.fromkeys(wanted, 0))
    if "totalUsers" in wanted:
        totals["totalUsers"] = _distinct_users(conn, where, None).get(None, 0)
    return _in_hours(totals)


def _grouped_totals(conn: Connection, where: ColumnElement | None, options: StatsOptions,
                    now: int) -> list[dict[str, Any]]:
    assert options.group_by is not None
    sort_field = SORT_FIELDS.get(options.sort_by or "")
    wanted = [f for f in TOTAL_FIELDS if f in options.fields or f == sort_field]
    by_user = options.group_by == "USER"
    # Grouped by user, every group has one user; otherwise the users are counted per group.
    users_wanted = "totalUsers" in wanted and not by_user
    summed = [name for name in wanted if name != "totalUsers"] or ["totalJobs"]  # the groups, even with no total
    totals = _summed_totals(conn, where, options, now, summed)
    users = _distinct_users(conn, where, GROUP_COLUMNS[options.group_by]) if users_wanted else {}
    for group_id, entry in totals.items():
        if "totalUsers" in wanted:
            entry["totalUsers"] = 1 if by_user else users.get(group_id, 0)
    order = sorted(totals)
    if sort_field is not None:
        # Descending as upstream; groups with equal totals stay in id order.
        order.sort(key=lambda group_id: totals[group_id][sort_field], reverse=True)
    page = options.page
    if page is not None and page.itemsPerPage != -1:
        order = order[(page.page - 1) * page.itemsPerPage:page.page * page.itemsPerPage]
    names = _display_names(conn, order) if by_user else {}
    out = []
    for group_id in order:
        stats: dict[str, Any] = {"id": group_id, "name": names.get(group_id) or group_id}
        stats.update({name: value for name, value in _in_hours(totals[group_id]).items() if name in options.fields})
        out.append(stats)
    return out


def _display_names(conn: Connection, usernames: list[str]) -> dict[str, str]:
    """hpc_user.name of the users that have one (looked up for the result rows only, not joined per job)."""
    from cc_backend.auth.users import find_users

    return {name: user.name for name, user in find_users(conn, usernames).items() if user.name}


# --- histograms -------------------------------------------------------------------------------------

class _FloorOfNonNegative(FunctionElement):
    """FLOOR(x) as an integer for x >= 0: SQLite may be built without FLOOR(), and MySQL's CAST rounds."""

    type = Integer()
    name = "floor_of_non_negative"
    inherit_cache = True


@compiles(_FloorOfNonNegative)
def _floor_by_truncation(element: _FloorOfNonNegative, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS INTEGER)"


@compiles(_FloorOfNonNegative, "mysql")
@compiles(_FloorOfNonNegative, "mariadb")
def _floor_mysql(element: _FloorOfNonNegative, compiler: Any, **kw: Any) -> str:
    return f"FLOOR({compiler.process(element.clauses, **kw)})"


def _count_by_bin(conn: Connection, bin_expr: ColumnElement, conditions: list[ColumnElement | None],
                  weight: ColumnElement | None = None) -> dict[int, int]:
    """Jobs (or the sum of ``weight``) per value of ``bin_expr`` among the rows meeting every condition."""
    # Grouped by the label: MySQL's ONLY_FULL_GROUP_BY accepts it, and the expression is written once.
    stmt = select(bin_expr.label("bin_value"), (func.count() if weight is None else func.sum(weight)).label("jobs"))
    present = [c for c in conditions if c is not None]
    if present:
        stmt = stmt.where(and_(*present))
    stmt = stmt.group_by(literal_column("bin_value"))
    return {int(value): int(count) for value, count in conn.execute(stmt)}


def _duration_histogram(conn: Connection, where: ColumnElement | None, bins: str, now: int) -> list[dict[str, int]]:
    """Upstream's fixed bins: bin i holds durations in [(i-1)·width, i·width) and reports ``value`` i·width seconds.

    Durations beyond the last bin are left out, as upstream does.
    """
    width, count = DURATION_BINS[bins]
    # Finished jobs: counted per stored duration first, in the order of the covering index
    # (job_state, duration, start_time), so that only the distinct durations are sorted into bins, not
    # every job (~3x faster on SQLite).
    per_duration = select(J.duration, func.count().label("jobs")).where(
        J.job_state != RUNNING if where is None else and_(where, J.job_state != RUNNING)
    ).group_by(J.job_state, J.duration).subquery()
    counts = _count_by_bin(conn, per_duration.c.duration // width + 1, [], weight=per_duration.c.jobs)
    # Running jobs (duration now - start_time): few, binned directly; one that starts "in the future"
    # (clock skew) has no bin.
    running_duration = now - J.start_time
    running = _count_by_bin(conn, running_duration // width + 1, [where, J.job_state == RUNNING, running_duration >= 0])
    for index, jobs in running.items():
        counts[index] = counts.get(index, 0) + jobs
    return [{"value": i * width, "count": counts.get(i, 0)} for i in range(1, count + 1)]


def _value_histogram(conn: Connection, where: ColumnElement | None, column: ColumnElement) -> list[dict[str, int]]:
    """Jobs per distinct value (number of nodes, hardware threads, accelerators); a missing value counts as 0."""
    # Grouped by the bare column, which SQLite reads in the order of its index (no sort of every job).
    stmt = select(column, func.count()).group_by(column)
    if where is not None:
        stmt = stmt.where(where)
    counts: dict[int, int] = {}
    for value, jobs in conn.execute(stmt):
        counts[int(value or 0)] = counts.get(int(value or 0), 0) + int(jobs)
    return [{"value": value, "count": counts[value]} for value in sorted(counts)]


@dataclass(frozen=True)
class _MetricScale:
    peak: float
    unit: str
    stat: str | None


def _named_values(filters: Sequence[JobFilter], attribute: str) -> set[str] | None:
    """Names a filter restricts to by ``eq``/``in`` (None: not restricted that way)."""
    named: set[str] | None = None
    for flt in filters:
        spec = getattr(flt, attribute)
        if spec is None:
            continue
        values = {spec.eq} if spec.eq is not None else set(spec.in_) if spec.in_ is not None else None
        if values is not None:
            named = values if named is None else named & values
    return named


def _metric_scales(options: StatsOptions, filters: Sequence[JobFilter]) -> dict[str, _MetricScale]:
    """Peak, unit and footprint statistic of each requested metric on the (sub)clusters the filters can match.

    The peak is the largest one the metric has there, subcluster overrides included (upstream takes the
    cluster-level peak only, which cuts off jobs on subclusters with a higher peak).
    """
    if options.clusters is None:
        raise ValueError("metric histograms need the archive's clusters (StatsOptions.clusters)")
    cluster_names = _named_values(filters, "cluster")
    subcluster_names = _named_values(filters, "subCluster")
    clusters = [c for c in options.clusters if cluster_names is None or c.name in cluster_names]
    scales = {}
    for metric in options.metrics:
        peaks, units, stats = [], [], []
        for cluster in clusters:
            cluster_level = cluster.metric(metric)
            if cluster_level is not None:
                units.append(cluster_level.unit.prefix + cluster_level.unit.base)
                stats.append(cluster_level.footprint)
            for sub in cluster.sub_clusters:
                resolved = sub.metric(metric)
                if resolved is None or (subcluster_names is not None and sub.name not in subcluster_names):
                    continue
                peaks.append(resolved.peak)
                units.append(resolved.unit.prefix + resolved.unit.base)
                stats.append(resolved.footprint)
        if not peaks:
            where = f" on cluster {', '.join(sorted(cluster_names))}" if cluster_names is not None else ""
            raise InvalidInput(f"metrics: unknown metric {metric!r}{where}", field="metrics")
        scales[metric] = _MetricScale(peak=max(peaks), unit=units[0],
                                      stat=next((s for s in stats if s), None))
    return scales


def _metric_histogram(conn: Connection, where: ColumnElement | None, metric: str, scale: _MetricScale,
                      bins: int) -> dict[str, Any]:
    """Jobs per bin of the metric's footprint value; ``bins`` equal bins from 0 to the peak (the peak in the last).

    Jobs without the value or with a value outside [0, peak] are left out, as upstream does.
    """
    peak = scale.peak
    counts: dict[int, int] = {}
    if peak > 0:
        value = footprint_value(metric)
        bin_expr = case((value >= peak, bins), else_=_FloorOfNonNegative(value * bins / peak) + 1)
        counts = _count_by_bin(conn, bin_expr, [where, value.between(0, peak)])
    # Integer bounds (the schema's Int), spread over the whole range (upstream steps by int(peak)/bins and
    # so ends short of the peak).
    data = [{"bin": i, "count": counts.get(i, 0), "min": math.floor(peak * (i - 1) / bins),
             "max": math.floor(peak * i / bins)} for i in range(1, bins + 1)]
    return {"metric": metric, "unit": scale.unit, "stat": scale.stat, "data": data}
