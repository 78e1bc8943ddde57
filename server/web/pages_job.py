"""The job view: ``/monitoring/job/<id>`` (metadata, tags, footprint, polar plot, roofline, energy, efficiency report, metric plots, statistics), its tag form and its plot data endpoint."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import bottle

from cc_backend.errors import CCError, InvalidInput

if TYPE_CHECKING:
    from cc_backend.auth.security import Viewer
    from cc_backend.runtime import Runtime
    from cc_backend.server.web import PageContext, WebUI

#: Plots per row the grid offers (Bootstrap's row-cols classes go up to 6).
MAX_PLOTS_PER_ROW = 6
#: Seconds between reloads of a running job's plots in the browser.
LIVE_REFRESH_SECONDS = 60
#: Hostnames listed before the rest fold away.
HOSTS_SHOWN = 8

log = logging.getLogger("cc_backend.server")


def mount(app: bottle.Bottle, ui: WebUI) -> None:
    app.route("/monitoring/job/<job_id>", "GET", ui.page(job_view), auth=None)
    app.route("/monitoring/job/<job_id>/tags", "POST", ui.page(change_tags, form=True), auth=None)
    data = plot_data_route(ui.runtime)
    app.route("/monitoring/job/<job_id>/data", "GET", data, auth="session", web_page=True)


def plot_data_route(runtime: Runtime) -> Any:
    def plot_data(job_id: str, viewer: Viewer) -> dict[str, Any]:
        """One metric at one scope and resolution, as the grid's plots take it (JSON; errors name the field)."""
        from cc_backend.jobs.jobview import one_plot, parse_db_id, parse_resolution
        from cc_backend.jobs.query import get_job

        bottle.response.set_header("Cache-Control", "no-store")
        query = bottle.request.query.decode()
        resolution = parse_resolution(query.get("resolution"))
        job = get_job(runtime.engine, parse_db_id(job_id), viewer=viewer)
        return one_plot(runtime.archive, job, query.get("metric"), query.get("scope") or "node", resolution,
                        viewer=viewer, resampling=runtime.config.main.resampling, live=runtime.metric_data)

    return plot_data


def _job(ctx: PageContext, job_id: str) -> dict[str, Any]:
    from cc_backend.jobs.jobview import parse_db_id
    from cc_backend.jobs.query import get_job

    return get_job(ctx.runtime.engine, parse_db_id(job_id), viewer=ctx.viewer)


def job_view(ctx: PageContext, job_id: str, *, tag_error: str | None = None) -> str:
    job = _job(ctx, job_id)
    return ctx.render("job.html", **job_context(ctx, job, tag_error=tag_error))


def job_context(ctx: PageContext, job: dict[str, Any], *, tag_error: str | None = None) -> dict[str, Any]:
    """Everything job.html shows, from the core's functions."""
    from cc_backend.auth.security import sees_nodes
    from cc_backend.jobs import jobview
    from cc_backend.jobs.footprint import footprint_bars
    from cc_backend.jobs.query import concurrent_jobs_of
    from cc_backend.metrics.jobdata import is_archived
    from cc_backend.ui_config import effective_ui_settings, metric_selection

    runtime, viewer = ctx.runtime, ctx.viewer
    archive, live = runtime.archive, runtime.metric_data
    settings = effective_ui_settings(runtime.config.ui, runtime.engine, viewer.username if viewer else None)
    cluster, sub = job["cluster"], job.get("subCluster")
    subcluster = jobview.subcluster_of(archive, job)
    available = jobview.selectable_metrics(archive, job, subcluster, viewer=viewer)
    archived = is_archived(job)
    scopes = jobview.archived_scopes(archive, job, available, live=live)
    selectable = [name for name in available if name in scopes] if archived else available
    plot_metrics = [m for m in metric_selection(settings, "metricConfig_jobViewPlotMetrics", cluster, sub)
                    if m in selectable]
    table_metrics = [m for m in metric_selection(settings, "metricConfig_jobViewTableMetrics", cluster, sub)
                     if m in selectable]
    resampling = runtime.config.main.resampling
    # A job not yet archived (running, or stopped and queued) shows what the metric store has.
    plots = jobview.job_plots(archive, job, plot_metrics, viewer=viewer, resampling=resampling, live=live)
    hidden_plots = [m for m in plot_metrics if m not in plots]
    per_row = settings.get("plotConfiguration_plotsPerRow")
    per_row = per_row if isinstance(per_row, int) and 1 <= per_row <= MAX_PLOTS_PER_ROW else 3
    polar = jobview.polar_values(archive, job, subcluster, viewer=viewer, live=live) \
        if settings.get("jobView_showPolarPlot", True) else None
    roofline = jobview.roofline(archive, job, subcluster, viewer=viewer, live=live) \
        if settings.get("jobView_showRoofline", True) else None
    statistics = jobview.statistics_tables(archive, job, table_metrics, viewer=viewer, live=live) \
        if settings.get("jobView_showStatTable", True) else None
    meta = dict(job.get("metaData") or {})
    hosts = [r.get("hostname") for r in job.get("resources") or () if isinstance(r, dict) and r.get("hostname")]
    accelerators = [a for r in job.get("resources") or () if isinstance(r, dict) for a in r.get("accelerators") or ()]
    data = {
        "job": {"id": job["id"], "cluster": cluster, "subCluster": sub, "numNodes": job.get("numNodes"),
                "running": job.get("jobState") == "running"},
        # seconds between reloads of a running job's plots (its series grow while the metric store fills)
        "refreshSeconds": LIVE_REFRESH_SECONDS,
        "plots": [plots[m] for m in plot_metrics if m in plots],
        "scopes": {m: scopes.get(m, ["node"]) for m in plots},
        "dataUrl": f"/monitoring/job/{job['id']}/data",
        "plotPoints": jobview.PLOT_POINTS,
        # upstream's main.resampling.trigger: fewer samples than this in view load finer ones
        "refineBelow": resampling.trigger if resampling is not None else jobview.REFINE_BELOW,
        "colors": settings.get("plotConfiguration_colorScheme") or None,
        "lineWidth": settings.get("plotConfiguration_lineWidth") or None,
        "polar": polar,
        "roofline": roofline,
        "settingKey": f"metricConfig_jobViewPlotMetrics:{cluster}" + (f":{sub}" if sub else ""),
        "tableSettingKey": f"metricConfig_jobViewTableMetrics:{cluster}" + (f":{sub}" if sub else ""),
    }
    footprint = footprint_bars(job.get("footprint"), subcluster) if subcluster is not None else []
    return {
        "job": job,
        "elapsed": max(0, int(time.time()) - int(job.get("startTime") or 0)),
        "panel_class": _panel_classes(footprint) if settings.get("plotConfiguration_colorBackground") else {},
        "job_name": meta.pop("jobName", None),
        "job_script": meta.pop("jobScript", None),
        "slurm_info": meta.pop("slurmInfo", None),
        "message": meta.pop("message", None),
        "other_meta": meta,
        "hosts": hosts,
        "node_links": sees_nodes(viewer),
        "hosts_shown": HOSTS_SHOWN,
        "accelerators": accelerators,
        "monitoring_status": jobview.MONITORING_STATUS.get(job.get("monitoringStatus"), str(job.get("monitoringStatus"))),
        "archived": archived,
        "running": job.get("jobState") == "running",
        "footprint": footprint,
        "energy": jobview.energy_summary(job, subcluster, runtime.config.main.emission_constant),
        **efficiency_report_of(runtime, job, viewer),
        "plot_metrics": [m for m in plot_metrics if m in plots],
        "missing_plots": hidden_plots,
        "available_metrics": selectable,
        "table_metrics": table_metrics,
        "per_row": per_row,
        "polar": polar,
        "roofline": roofline,
        "statistics": statistics,
        "concurrent": concurrent_jobs_of(runtime.engine, job, viewer=viewer),
        "tag_form": tag_form(ctx, job),
        "tag_error": tag_error,
        "data": data,
    }


def efficiency_report_of(runtime: Runtime, job: dict[str, Any], viewer: Viewer | None) -> dict[str, Any]:
    """``report`` (the core's efficiency report) or, when it cannot be computed, ``report_error`` saying why.

    The rest of the page does not depend on it, so a failure here is shown in its section instead of
    replacing the whole job view with an error page.
    """
    from cc_backend.jobs.report import runtime_report

    try:
        report = runtime_report(runtime, job, viewer=viewer)
    except CCError as exc:
        return {"report": None, "report_error": exc.message}
    except Exception:  # a bug or an unreadable file: the log has the traceback, the page the rest of the job
        log.exception("efficiency report of job %s failed", job.get("id"))
        return {"report": None, "report_error": "an internal error occurred (the server's log has the details)"}
    return {"report": report, "report_error": None}


def _panel_classes(footprint: list[dict[str, Any]]) -> dict[str, str]:
    """Plot backgrounds of metrics whose footprint is in the caution or alert range (upstream's colorBackground)."""
    classes = {"caution": "bg-warning-subtle", "alert": "bg-danger-subtle"}
    return {bar["metric"]: classes[bar["level"]] for bar in footprint if bar["level"] in classes}


def tag_form(ctx: PageContext, job: dict[str, Any]) -> dict[str, Any]:
    """The tags the viewer may add or remove here and the scopes a new tag can have (upstream's rules)."""
    from cc_backend.auth.security import may_assign_tag_scope
    from cc_backend.jobs.tags import list_tags

    viewer = ctx.viewer
    attached = {tag["id"] for tag in job.get("tags") or ()}
    addable = [tag for tag in list_tags(ctx.runtime.engine, viewer=viewer, with_counts=False)
               if tag["id"] not in attached and may_assign_tag_scope(viewer, tag["scope"])]
    scopes = []
    if viewer is not None and viewer.username:
        scopes.append({"value": viewer.username, "label": f"private ({viewer.username})"})
    for scope in ("global", "admin"):
        if may_assign_tag_scope(viewer, scope):
            scopes.append({"value": scope, "label": scope})
    removable = {tag["id"] for tag in job.get("tags") or () if may_assign_tag_scope(viewer, tag["scope"])}
    return {"addable": addable, "scopes": scopes, "removable": removable}


def change_tags(ctx: PageContext, job_id: str) -> str:
    """The tag form: ``action`` add (``tag`` id), create (``type``, ``name``, ``scope``) or remove (``tag`` id).

    Success goes back to the job (a redirect, so a reload does not post again); a refused change shows
    the job again with the message under the tags.
    """
    from cc_backend.jobs.tags import add_tags_to_job, create_tag, remove_tags_from_job

    job = _job(ctx, job_id)
    runtime, viewer = ctx.runtime, ctx.viewer
    forms = bottle.request.forms.decode()
    action = forms.get("action") or ""
    try:
        if action == "create":
            tag = create_tag(runtime.engine, forms.get("type"), forms.get("name"), forms.get("scope"), viewer=viewer)
            add_tags_to_job(runtime.engine, runtime.archive, job["id"], [tag["id"]], viewer=viewer)
        elif action in ("add", "remove"):
            raw = forms.get("tag") or ""
            if not raw.isdigit():
                raise InvalidInput("tag: choose a tag", field="tag")
            change = add_tags_to_job if action == "add" else remove_tags_from_job
            change(runtime.engine, runtime.archive, job["id"], [int(raw)], viewer=viewer)
        else:
            raise InvalidInput(f"action must be add, create or remove, got {action!r}", field="action")
    except CCError as exc:
        bottle.response.status = exc.status
        message = exc.message if not exc.field or exc.field in exc.message else f"{exc.field}: {exc.message}"
        return ctx.render("job.html", **job_context(ctx, _job(ctx, job_id), tag_error=message))
    bottle.redirect(f"/monitoring/job/{job['id']}#tags", 303)
    return ""
