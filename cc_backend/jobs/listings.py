"""What the list and analysis pages show: totals per user or project in any order, the tag overview, roofline frames."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cc_backend.auth.security import Viewer, sees_restricted_metrics
from cc_backend.errors import InvalidInput
from cc_backend.jobs.filter import JobFilter
from cc_backend.jobs.statistics import StatsOptions, job_statistics
from cc_backend.jobs.tags import list_tags

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from cc_backend.archive.cluster import Cluster

#: The columns of the users and projects tables, in order; every one is sortable.
GROUP_COLUMNS = ("id", "name", "totalJobs", "shortJobs", "totalWalltime", "totalCoreHours", "totalAccHours")
#: Upstream's list view sorts by jobs, most first.
DEFAULT_GROUP_SORT = "totalJobs"
#: Upstream's analysis view: intensity from 0.01 to 1000 FLOP/byte, performance from 1 GFLOP/s to the peak.
ROOFLINE_X = (0.01, 1000.0)
ROOFLINE_MIN_Y = 1.0
ROOFLINE_TILES = 50


def group_totals(engine: Engine, group_by: str, filters: Sequence[JobFilter], viewer: Viewer | None, *,
                 sort: str = DEFAULT_GROUP_SORT, descending: bool = True, short_duration: int = 300,
                 now: int | None = None) -> list[dict[str, Any]]:
    """Totals per user or project (``group_by`` USER or PROJECT) of the viewer's matching jobs, sorted by any column.

    Ties keep the group id order, whichever the direction, so a table reads the same on every load.
    """
    if sort not in GROUP_COLUMNS:
        raise InvalidInput(f"sort must be one of {', '.join(GROUP_COLUMNS)}, got {sort!r}", field="sort")
    options = StatsOptions(fields=frozenset(GROUP_COLUMNS), group_by=group_by, short_duration=short_duration, now=now)
    rows = job_statistics(engine, filters, viewer, options)
    rows.sort(key=lambda row: row["id"])
    rows.sort(key=lambda row: row[sort], reverse=descending)  # stable: ties stay in id order
    return rows


def tag_overview(engine: Engine, viewer: Viewer | None) -> list[dict[str, Any]]:
    """The tags the viewer may read, grouped by type: ``[{type, tags: [{id, type, name, scope, count}]}]``.

    As upstream's tag page: admin and support see every tag; others see their private tags and the
    shared ones that are on at least one of their visible jobs (unused shared tags are noise to them).
    """
    sees_every_tag = viewer is None or bool({"admin", "support"} & set(viewer.roles))
    groups: dict[str, list[dict[str, Any]]] = {}
    for tag in list_tags(engine, viewer=viewer, with_counts=True):
        if not sees_every_tag and tag["scope"] in ("global", "admin") and tag["count"] == 0:
            continue
        groups.setdefault(tag["type"], []).append(tag)
    return [{"type": tag_type, "tags": groups[tag_type]} for tag_type in sorted(groups)]


def roofline_frame(cluster: Cluster, subcluster: str | None = None) -> dict[str, Any]:
    """Bounds of the roofline heatmap and each subcluster's ceilings (GFLOP/s, GB/s) for the analysis view."""
    subs = [sc for sc in cluster.sub_clusters if subcluster is None or sc.name == subcluster]
    ceilings: list[dict[str, Any]] = [{"name": sc.name, "scalar": sc.flop_rate_scalar.value,
                                       "simd": sc.flop_rate_simd.value, "bandwidth": sc.memory_bandwidth.value}
                                      for sc in subs]
    peak = max((sc.flop_rate_simd.value for sc in subs), default=0.0)
    # Headroom above the highest ceiling, so that it is drawn inside the plot.
    max_y = max(peak * 2, ROOFLINE_MIN_Y * 10)
    return {"minX": ROOFLINE_X[0], "maxX": ROOFLINE_X[1], "minY": ROOFLINE_MIN_Y, "maxY": max_y,
            "rows": ROOFLINE_TILES, "cols": ROOFLINE_TILES, "ceilings": ceilings}


def footprint_metrics(cluster: Cluster, viewer: Viewer | None, subcluster: str | None = None) -> list[dict[str, Any]]:
    """The metrics with a footprint statistic on the cluster (or one subcluster) the viewer may see, with unit and peak."""
    show_restricted = sees_restricted_metrics(viewer)
    found: dict[str, dict[str, Any]] = {}
    for sc in cluster.sub_clusters:
        if subcluster is not None and sc.name != subcluster:
            continue
        for name in sc.footprint:
            metric = sc.metric(name)
            if metric is None or (metric.restrict and not show_restricted):
                continue
            entry = found.setdefault(name, {"name": name, "unit": metric.unit.text,
                                            "stat": metric.footprint, "peak": metric.peak})
            entry["peak"] = max(entry["peak"], metric.peak)
    return list(found.values())
