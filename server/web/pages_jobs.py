"""The job list (``/monitoring/jobs/``), its row plots' data (``/monitoring/jobs/plots``) and the search bar (``/search``)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import bottle

from cc_backend.errors import InvalidInput
from cc_backend.jobs.presets import (
    PAGE_SIZES,
    JobListQuery,
    filters_for_query,
    list_url,
    query_values,
    sort_text,
)

if TYPE_CHECKING:
    from cc_backend.archive.cluster import ClusterRegistry
    from cc_backend.auth.security import Viewer
    from cc_backend.server.web import PageContext, WebUI

#: The configuration keys upstream's job list writes (MetricSelection.svelte, JobList.svelte).
METRICS_KEY = "metricConfig_jobListMetrics"
PAGE_SIZE_KEY = "plot_list_jobsPerPage"
DEFAULT_PAGE_SIZE = 50
#: Columns the header sorts by: (label, OrderBy field).
SORT_COLUMNS = (("Job id", "jobId"), ("Start", "startTime"), ("Duration", "duration"), ("Nodes", "numNodes"),
                ("Cores", "numHWThreads"), ("Accelerators", "numAcc"), ("Energy", "energy"), ("User", "user"),
                ("Project", "project"), ("Cluster", "cluster"))
JOB_STATES_SHOWN = ("running", "completed", "failed", "cancelled", "timeout", "out_of_memory", "preempted",
                    "node_fail", "boot_fail", "deadline", "stopped", "suspended", "pending")
#: Labels of the active-filter pills, by URL parameter.
PILL_LABELS = {
    "cluster": "Cluster", "subCluster": "Subcluster", "partition": "Partition", "state": "State", "user": "User",
    "project": "Project", "jobName": "Job name", "jobId": "Job id", "arrayJobId": "Array job", "dbId": "Database id",
    "tag": "Tag", "startTime": "Start", "duration": "Duration (s)", "numNodes": "Nodes", "numHWThreads": "HW threads",
    "numAccelerators": "Accelerators", "energy": "Energy (kWh)", "node": "Node", "shared": "Shared",
    "schedule": "Schedule", "stat": "Footprint",
}
START_TIME_PRESETS = (("last6h", "Last 6 hours"), ("last24h", "Last 24 hours"), ("last7d", "Last 7 days"),
                      ("last30d", "Last 30 days"))


def mount(app: bottle.Bottle, ui: WebUI) -> None:
    app.route("/monitoring/jobs/", "GET", ui.page(jobs_page), auth=None)
    app.route("/monitoring/jobs/plots", "GET", lambda viewer: row_plots(ui, viewer), auth="session", web_page=True)
    app.route("/search", "GET", ui.page(search), auth=None)


def _raw_pairs() -> list[tuple[str, str]]:
    return list(bottle.request.query.decode().allitems())


def _page_size(settings: dict[str, Any]) -> int:
    value = settings.get(PAGE_SIZE_KEY)
    try:
        size = int(value) if value is not None else DEFAULT_PAGE_SIZE
    except (TypeError, ValueError):
        return DEFAULT_PAGE_SIZE
    return size if size in PAGE_SIZES else DEFAULT_PAGE_SIZE


def _without(pairs: list[tuple[str, str]], name: str, value: str | None = None) -> list[tuple[str, str]]:
    """``pairs`` without parameter ``name`` (one value of it when ``value`` is given), back on page 1."""
    def dropped(key: str, v: str) -> bool:
        if key == "page" or not v.strip():
            return True
        if value is None:
            return key in (name, name + "Match")
        return key == name and v == value

    return [(k, v) for k, v in pairs if not dropped(k, v)]


def _pills(pairs: list[tuple[str, str]], tag_names: dict[int, str]) -> list[dict[str, str]]:
    """One removable pill per filter value in the URL (also when the URL did not parse)."""
    pills = []
    for name, value in pairs:
        if name not in PILL_LABELS or not value.strip():
            continue
        shown = tag_names.get(int(value), value) if name == "tag" and value.isdigit() else value
        pills.append({"label": PILL_LABELS[name], "value": shown, "remove": list_url(_without(pairs, name, value))})
    return pills


def _metric_units(registry: ClusterRegistry) -> dict[str, str]:
    from cc_backend.archive.cluster import unit_text

    return {item["name"]: unit_text(item["unit"]) for item in registry.global_metric_list()}


def _cluster_metrics(registry: ClusterRegistry, cluster: str | None) -> list[str]:
    """The metrics offered in the selection dialog: the cluster's, or every cluster's."""
    names: dict[str, None] = {}
    for found in registry:
        if cluster is None or found.name == cluster:
            names.update((m.name, None) for m in found.metric_config)
    return list(names)


def _row(job: dict[str, Any], registry: ClusterRegistry, now: int) -> dict[str, Any]:
    from cc_backend.jobs.footprint import footprint_bars
    from cc_backend.jobs.model import current_duration

    subcluster = None
    found = registry.find(job["cluster"])
    if found is not None:
        subcluster = found.find_sub_cluster(job.get("subCluster") or "")
    hosts = [r.get("hostname") for r in job.get("resources") or () if isinstance(r, dict)]
    return {
        "job": job,
        "name": (job.get("metaData") or {}).get("jobName") or "",
        "hosts": hosts,
        "duration": current_duration(job, now),
        "bars": footprint_bars(job.get("footprint"), subcluster) if subcluster is not None else [],
    }


def jobs_page(ctx: PageContext, notice: str | None = None, search_text: str | None = None) -> str:
    """The filter bar, the sortable and paged job table; the row plots load afterwards (``jobs.js``)."""
    from cc_backend.jobs.query import count_jobs, page_of_jobs
    from cc_backend.jobs.tags import list_tags
    from cc_backend.ui_config import effective_ui_settings, metric_selection

    runtime = ctx.runtime
    viewer = ctx.viewer
    pairs = _raw_pairs()
    settings = effective_ui_settings(runtime.config.ui, runtime.engine, viewer.username if viewer else None)
    page_size = _page_size(settings)
    registry = runtime.archive.registry()
    error = None
    try:
        query = JobListQuery.parse(pairs, page_size)
        _check_sortable(query)
    except InvalidInput as exc:
        # The page still renders, with the filter bar holding the bad value to correct.
        bottle.response.status = 400
        error, query = exc, JobListQuery.parse([], page_size)
    flt = query.filter
    cluster = flt.cluster.eq if flt.cluster is not None and flt.cluster.eq else None
    metrics_key = f"{METRICS_KEY}:{cluster}" if cluster else METRICS_KEY
    available = _cluster_metrics(registry, cluster)
    metrics = [m for m in metric_selection(settings, METRICS_KEY, cluster) if m in available]
    now = int(time.time())
    rows: list[dict[str, Any]] = []
    total, has_next = 0, False
    if error is None:
        filters = filters_for_query(flt)
        jobs, has_next = page_of_jobs(runtime.engine, filters, order=query.order, page=query.page, viewer=viewer,
                                      now=now)
        total = count_jobs(runtime.engine, filters, viewer=viewer, now=now) if jobs or query.page.page > 1 else 0
        rows = [_row(job, registry, now) for job in jobs]
    tags = list_tags(runtime.engine, viewer=viewer, with_counts=False)
    values = query_values(pairs)
    size = query.page.itemsPerPage
    pages = max(1, -(-total // size)) if total else 1
    keep = [(k, v) for k, v in pairs if k not in ("page", "sort") and v.strip()]
    current_sort = sort_text(query.order)
    footprint_metrics = sorted({bar["metric"] for row in rows for bar in row["bars"]}
                               | {name for c in registry for sc in c.sub_clusters for name in sc.footprint})
    return ctx.render(
        "jobs.html",
        rows=rows, total=total, has_next=has_next, page=query.page.page, pages=pages, page_size=size,
        page_sizes=PAGE_SIZES, error=error.message if error else None, error_field=error.field if error else None,
        notice=notice, search_text=search_text, values=values, pills=_pills(pairs, {t["id"]: f"{t['type']}:{t['name']}" for t in tags}),
        reset_url="/monitoring/jobs/", clusters=list(registry), tags=tags, states=JOB_STATES_SHOWN,
        start_presets=START_TIME_PRESETS, metrics=metrics, units=_metric_units(registry), available=available,
        metrics_key=metrics_key, page_size_key=PAGE_SIZE_KEY, cluster=cluster,
        sort=current_sort, sort_columns=SORT_COLUMNS, footprint_metrics=footprint_metrics,
        sort_url=lambda field: list_url(keep + [("sort", _toggled(current_sort, field))]),
        page_url=lambda number: list_url(keep + [("sort", current_sort)] * (current_sort != "startTime:desc")
                                         + [("page", str(number))] * (number != 1)),
        plot_data={"metrics": metrics, "ids": [row["job"]["id"] for row in rows],
                   "colors": settings.get("plotConfiguration_colorScheme"),
                   "lineWidth": settings.get("plotConfiguration_lineWidth"),
                   "colorBackground": bool(settings.get("plotConfiguration_colorBackground")),
                   "metricsKey": metrics_key, "pageSizeKey": PAGE_SIZE_KEY},
    )


def _toggled(current: str, field: str) -> str:
    """Sorting by ``field``: descending first, ascending when it is already descending."""
    return f"{field}:asc" if current == f"{field}:desc" else f"{field}:desc"


def _check_sortable(query: JobListQuery) -> None:
    from cc_backend.jobs.query import order_clause

    try:
        order_clause(query.order)
    except InvalidInput as exc:
        raise InvalidInput(f"sort: {exc.message}", field="sort") from None


def row_plots(ui: WebUI, viewer: Viewer) -> dict[str, Any]:
    """``GET /monitoring/jobs/plots?dbId=1&dbId=2&metric=flops_any&width=240``: the row plots' series (JSON)."""
    from cc_backend.metrics.listplots import job_list_plots
    from cc_backend.server.requests import int64

    query = bottle.request.query.decode()
    ids = [int64(v, "dbId", kind="a job database id (a whole number)") for v in query.getall("dbId")]
    try:
        width = int(query.get("width") or 300)
    except ValueError:
        raise InvalidInput("width: give the plot width in pixels (a whole number)", field="width") from None
    runtime = ui.runtime
    bottle.response.set_header("Cache-Control", "no-store")
    return job_list_plots(runtime.engine, runtime.archive, ids, query.getall("metric"), viewer=viewer, width=width,
                          resampling=runtime.config.main.resampling, live=runtime.metric_data)


def search(ctx: PageContext) -> str:
    """The header's search bar: to the answering page, or back to the job list with the reason."""
    from cc_backend.jobs.search import resolve_search

    text = bottle.request.query.decode().get("searchId")
    try:
        target = resolve_search(ctx.runtime.engine, ctx.viewer, text)
    except InvalidInput as exc:
        return jobs_page(ctx, notice=exc.message, search_text=text)
    bottle.redirect(target, 302)
    return ""

