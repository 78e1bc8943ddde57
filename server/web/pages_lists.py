"""The users, projects, user, tags and analysis pages: aggregate views over the jobs a viewer may see."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import bottle

from cc_backend.auth.security import may_administer
from cc_backend.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from cc_backend.archive.cluster import Cluster
    from cc_backend.jobs.filter import JobFilter
    from cc_backend.server.web import PageContext, WebUI

#: Start time presets of the filter bars (upstream's URL filter presets), "" for any time.
START_TIME_PRESETS = {"": "Any time", "last6h": "Last 6 hours", "last24h": "Last 24 hours",
                      "last7d": "Last 7 days", "last30d": "Last 30 days"}
#: Longest name filter: a LIKE pattern, not a document.
MAX_NAME_FILTER = 200
RECENT_JOBS = 25
TOP_GROUPS = 10
#: The duration histogram's bin widths (upstream's numDurationBins choices) by label.
DURATION_BIN_LABELS = {"1m": "1 minute", "10m": "10 minutes", "1h": "1 hour", "6h": "6 hours", "12h": "12 hours"}


def mount(app: bottle.Bottle, ui: WebUI) -> None:
    app.route("/monitoring/users/", "GET", ui.page(users_list, min_role="manager"), auth=None)
    app.route("/monitoring/projects/", "GET", ui.page(projects_list, min_role="manager"), auth=None)
    app.route("/monitoring/user/<username>", "GET", ui.page(user_view), auth=None)
    app.route("/monitoring/tags/", "GET", ui.page(tags_view), auth=None)
    app.route("/monitoring/tags/<tag_id>/delete", "POST", ui.page(delete_tag, form=True), auth=None)
    app.route("/monitoring/analysis/<cluster>", "GET", ui.page(analysis_view, min_role="support"), auth=None)
    app.route("/monitoring/analysis/<cluster>/roofline", "GET", ui.page(analysis_roofline, min_role="support"),
              auth=None)


# ------------------------------------------------------------------------------ request parsing

def _query(name: str) -> str:
    return (bottle.request.query.getunicode(name) or "").strip()


def _common_filters(clusters: list[str]) -> tuple[list[JobFilter], dict[str, str]]:
    """The filter bar's cluster and start time from the URL, checked: (job filters, the chosen values)."""
    from cc_backend.jobs.filter import JobFilter

    cluster, start = _query("cluster"), _query("startTime")
    if cluster and cluster not in clusters:
        raise InvalidInput(f"cluster: no cluster {cluster!r} in the job archive", field="cluster")
    if start not in START_TIME_PRESETS:
        raise InvalidInput(f"startTime: use one of {', '.join(p for p in START_TIME_PRESETS if p)}", field="startTime")
    options = {"cluster": cluster, "start-time": start}
    chosen = {"cluster": cluster, "startTime": start}
    return [JobFilter.from_text_options(options)] if cluster or start else [], chosen


def _url(path: str, params: dict[str, str]) -> str:
    given = {key: value for key, value in params.items() if value}
    return path + ("?" + urlencode(given) if given else "")


# ------------------------------------------------------------------------------ users and projects

def users_list(ctx: PageContext) -> str:
    return _group_list(ctx, "USER")


def projects_list(ctx: PageContext) -> str:
    return _group_list(ctx, "PROJECT")


def _group_list(ctx: PageContext, group_by: str) -> str:
    """A table per user or project: jobs, short jobs, walltime, core and accelerator hours; sortable, filterable."""
    from cc_backend.jobs.filter import parse_filters
    from cc_backend.jobs.listings import DEFAULT_GROUP_SORT, group_totals

    clusters = ctx.ui.clusters()
    filters, chosen = _common_filters(clusters)
    name = _query("name")
    if len(name) > MAX_NAME_FILTER:
        raise InvalidInput(f"name: at most {MAX_NAME_FILTER} characters", field="name")
    if name:
        filters += parse_filters({("user" if group_by == "USER" else "project"): {"contains": name}})
    sort = _query("sort") or DEFAULT_GROUP_SORT
    order = _query("order") or ("asc" if sort in ("id", "name") else "desc")
    if order not in ("asc", "desc"):
        raise InvalidInput("order: use asc or desc", field="order")
    rows = group_totals(ctx.runtime.engine, group_by, filters, ctx.viewer, sort=sort, descending=order == "desc",
                        short_duration=ctx.runtime.config.main.short_running_jobs_duration)
    path = "/monitoring/users/" if group_by == "USER" else "/monitoring/projects/"
    params = {**chosen, "name": name}

    def sort_link(column: str) -> str:
        # The column sorted now flips its direction; another starts in its natural one.
        if column == sort:
            direction = "asc" if order == "desc" else "desc"
        else:
            direction = "asc" if column in ("id", "name") else "desc"
        return _url(path, {**params, "sort": column, "order": direction})

    return ctx.render("lists.html", kind="users" if group_by == "USER" else "projects", rows=rows, clusters=clusters,
                      chosen=params, presets=START_TIME_PRESETS, sort=sort, order=order, sort_link=sort_link,
                      list_path=path, short_duration=ctx.runtime.config.main.short_running_jobs_duration)


# ------------------------------------------------------------------------------ one user

def user_view(ctx: PageContext, username: str) -> str:
    """A user's account, the statistics and histograms of their jobs, and their most recent jobs."""
    from dataclasses import replace

    from cc_backend.auth.security import may_look_up_user
    from cc_backend.auth.users import find_user
    from cc_backend.errors import Forbidden
    from cc_backend.jobs.filter import OrderBy, Page, parse_filters
    from cc_backend.jobs.query import list_jobs
    from cc_backend.jobs.statistics import DURATION_BINS, StatsOptions, job_statistics

    if not may_look_up_user(ctx.viewer, username):
        raise Forbidden("only admin, support and manager users may look at other users")
    clusters = ctx.ui.clusters()
    filters, chosen = _common_filters(clusters)
    duration_bins = _query("durationBins") or "1h"
    if duration_bins not in DURATION_BINS:
        raise InvalidInput(f"durationBins: use one of {', '.join(DURATION_BINS)}", field="durationBins")
    filters += parse_filters({"user": {"eq": username}})
    engine = ctx.runtime.engine
    account = find_user(engine, username)
    short_duration = ctx.runtime.config.main.short_running_jobs_duration
    options = StatsOptions(fields=frozenset({"totalJobs", "shortJobs", "runningJobs", "totalWalltime",
                                             "totalNodeHours", "totalCoreHours", "totalAccHours", "histDuration",
                                             "histNumNodes"}),
                           duration_bins=duration_bins, short_duration=short_duration)
    stats = job_statistics(engine, filters, ctx.viewer, options)[0]
    if account is None and stats["totalJobs"] == 0 and not chosen["cluster"] and not chosen["startTime"]:
        raise NotFound(f"no user {username!r} with jobs you may see", field="username")
    metrics = _metric_histograms(ctx, filters, chosen["cluster"] or None)
    if metrics:
        registry = ctx.runtime.archive.registry()
        hist = job_statistics(engine, filters, ctx.viewer, replace(options, fields=frozenset({"histMetrics"}),
                                                                    metrics=tuple(m["name"] for m in metrics),
                                                                    clusters=registry))[0]["histMetrics"]
    else:
        hist = []
    jobs = list_jobs(engine, filters, order=OrderBy(field="startTime", order="DESC"),
                     page=Page(itemsPerPage=RECENT_JOBS), viewer=ctx.viewer)
    plots = {"durationBins": DURATION_BINS[duration_bins][0], "histDuration": stats["histDuration"],
             "histNumNodes": stats["histNumNodes"], "histMetrics": hist, **_plot_settings(ctx)}
    is_admin = may_administer(ctx.viewer)
    return ctx.render("lists_user.html", username=username, account=account, show_access=is_admin, stats=stats,
                      jobs=jobs, plots=plots, clusters=clusters, chosen={**chosen, "durationBins": duration_bins},
                      presets=START_TIME_PRESETS, bin_labels=DURATION_BIN_LABELS, short_duration=short_duration,
                      all_jobs=_url("/monitoring/jobs/", {"user": username, "cluster": chosen["cluster"],
                                                          "startTime": chosen["startTime"]}))


def _metric_histograms(ctx: PageContext, filters: list[JobFilter], cluster: str | None) -> list[dict[str, Any]]:
    """Footprint metrics to histogram: those of the chosen cluster, else of every cluster (each once)."""
    from cc_backend.jobs.listings import footprint_metrics

    registry = ctx.runtime.archive.registry()
    seen: dict[str, dict[str, Any]] = {}
    for item in registry:
        if cluster and item.name != cluster:
            continue
        for metric in footprint_metrics(item, ctx.viewer):
            seen.setdefault(metric["name"], metric)
    return list(seen.values())


def _plot_settings(ctx: PageContext) -> dict[str, Any]:
    from cc_backend.ui_config import effective_ui_settings

    username = ctx.viewer.username if ctx.viewer is not None else None
    settings = effective_ui_settings(ctx.runtime.config.ui, ctx.runtime.engine, username)
    return {"colors": settings.get("plotConfiguration_colorScheme"),
            "lineWidth": settings.get("plotConfiguration_lineWidth")}


# ------------------------------------------------------------------------------ tags

def tags_view(ctx: PageContext) -> str:
    from cc_backend.jobs.listings import tag_overview

    groups = tag_overview(ctx.runtime.engine, ctx.viewer)
    # Upstream's tag page offers deletion to admins only; users detach their private tags on the job page.
    may_delete = may_administer(ctx.viewer)
    return ctx.render("lists_tags.html", groups=groups, may_delete=may_delete, deleted=_query("deleted"))


def delete_tag(ctx: PageContext, tag_id: str) -> str:
    from cc_backend.jobs.tags import delete_tags_by_id

    if not tag_id.isdigit() or len(tag_id) > 18:
        raise InvalidInput(f"id: {tag_id!r} is not a tag id", field="id")
    deleted = delete_tags_by_id(ctx.runtime.engine, ctx.runtime.archive, [int(tag_id)], viewer=ctx.viewer, field="id")
    bottle.redirect(f"/monitoring/tags/?deleted={deleted[0]}", 303)
    return ""  # not reached: redirect raises


# ------------------------------------------------------------------------------ analysis

@dataclass(frozen=True)
class _AnalysisScope:
    """The cluster and filters of an analysis request, checked."""

    cluster: Cluster
    filters: list[JobFilter]
    chosen: dict[str, str]
    partitions: list[str]


def _analysis_scope(ctx: PageContext, cluster: str) -> _AnalysisScope:
    from cc_backend.clusters import partitions
    from cc_backend.jobs.filter import JobFilter

    found = ctx.runtime.archive.registry().find(cluster)
    if found is None:
        raise NotFound(f"no cluster {cluster!r} in the job archive", field="cluster")
    start, subcluster, partition = _query("startTime"), _query("subCluster"), _query("partition")
    if start not in START_TIME_PRESETS:
        raise InvalidInput(f"startTime: use one of {', '.join(p for p in START_TIME_PRESETS if p)}", field="startTime")
    if subcluster and found.find_sub_cluster(subcluster) is None:
        raise InvalidInput(f"subCluster: {cluster} has no subcluster {subcluster!r}", field="subCluster")
    known_partitions = partitions(ctx.runtime.engine, cluster)
    if partition and partition not in known_partitions:
        raise InvalidInput(f"partition: no job of {cluster} ran in partition {partition!r}", field="partition")
    filters = [JobFilter.from_text_options({"cluster": cluster, "subcluster": subcluster, "partition": partition,
                                            "start-time": start})]
    return _AnalysisScope(found, filters, {"startTime": start, "subCluster": subcluster, "partition": partition},
                          known_partitions)


def analysis_view(ctx: PageContext, cluster: str) -> str:
    """Upstream's analysis view of one cluster: totals, top users and projects, histograms, footprints.

    The roofline heatmap, which reads every matching job's metric data, comes separately
    (:func:`analysis_roofline`), so that the page shows while it is computed.
    """
    from cc_backend.jobs.analysis import MAX_JOBS_FOR_ANALYSIS, jobs_footprints
    from cc_backend.jobs.filter import Page
    from cc_backend.jobs.listings import footprint_metrics
    from cc_backend.jobs.statistics import StatsOptions, job_statistics

    scope = _analysis_scope(ctx, cluster)
    engine, viewer, filters = ctx.runtime.engine, ctx.viewer, scope.filters
    top_by = _query("topBy") or "totalJobs"
    if top_by not in ("totalJobs", "totalNodeHours"):
        raise InvalidInput("topBy: use totalJobs or totalNodeHours", field="topBy")
    metrics = footprint_metrics(scope.cluster, viewer, scope.chosen["subCluster"] or None)
    names = [m["name"] for m in metrics]
    x_metric = _query("x") or ("flops_any" if "flops_any" in names else names[0] if names else "")
    y_metric = _query("y") or ("mem_bw" if "mem_bw" in names else names[-1] if names else "")
    for field, value in (("x", x_metric), ("y", y_metric)):
        if value and value not in names:
            raise InvalidInput(f"{field}: {value!r} is not a footprint metric of {cluster}", field=field)
    short_duration = ctx.runtime.config.main.short_running_jobs_duration
    totals = job_statistics(engine, filters, viewer, StatsOptions(
        fields=frozenset({"totalJobs", "shortJobs", "totalUsers", "totalWalltime", "totalNodeHours", "totalCoreHours",
                          "totalAccHours", "histDuration", "histNumNodes", "histNumCores", "histNumAccs",
                          "histMetrics"}),
        metrics=tuple(names), clusters=ctx.runtime.archive.registry(), short_duration=short_duration))[0]
    sort = "TOTALJOBS" if top_by == "totalJobs" else "TOTALNODEHOURS"
    top = {}
    for group in ("USER", "PROJECT"):
        top[group] = job_statistics(engine, filters, viewer, StatsOptions(
            fields=frozenset({"id", "name", "totalJobs", "totalNodeHours"}), group_by=group, sort_by=sort,
            page=Page(itemsPerPage=TOP_GROUPS), short_duration=short_duration))
    too_many = totals["totalJobs"] > MAX_JOBS_FOR_ANALYSIS
    footprints: dict[str, Any] = {}
    if not too_many and totals["totalJobs"]:
        footprints = jobs_footprints(engine, ctx.runtime.archive, filters, names, viewer=viewer)
    chosen = {**scope.chosen, "topBy": top_by, "x": x_metric, "y": y_metric}
    plots = {"histDuration": totals["histDuration"], "histNumNodes": totals["histNumNodes"],
             "histNumCores": totals["histNumCores"], "histNumAccs": totals["histNumAccs"],
             "histMetrics": totals["histMetrics"], "footprints": footprints, "metrics": metrics, "x": x_metric,
             "y": y_metric, "roofline": _url(f"/monitoring/analysis/{quote(cluster, safe='')}/roofline", scope.chosen),
             **_plot_settings(ctx)}
    return ctx.render("lists_analysis.html", cluster=cluster, subclusters=scope.cluster.sub_cluster_names,
                      totals=totals, top=top, top_by=top_by, plots=plots, too_many=too_many,
                      max_jobs=MAX_JOBS_FOR_ANALYSIS, partitions=scope.partitions, chosen=chosen,
                      presets=START_TIME_PRESETS, metrics=metrics, short_duration=short_duration)


def analysis_roofline(ctx: PageContext, cluster: str) -> str:
    """The roofline heatmap of the analysis view's jobs with the subclusters' ceilings, as a JSON data block."""
    from cc_backend.jobs.analysis import roofline_heatmap
    from cc_backend.jobs.listings import roofline_frame

    scope = _analysis_scope(ctx, cluster)
    frame = roofline_frame(scope.cluster, scope.chosen["subCluster"] or None)
    tiles = roofline_heatmap(ctx.runtime.engine, ctx.runtime.archive, scope.filters, rows=frame["rows"],
                             cols=frame["cols"], min_x=frame["minX"], min_y=frame["minY"], max_x=frame["maxX"],
                             max_y=frame["maxY"], viewer=ctx.viewer)
    return ctx.render("lists_roofline.html", roofline={**frame, "tiles": tiles})
