"""The pages around the job views: home (``/``), ``/imprint`` and ``/privacy``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import bottle

if TYPE_CHECKING:
    from cc_backend.server.web import PageContext, WebUI


def mount(app: bottle.Bottle, ui: WebUI) -> None:
    app.route("/", "GET", ui.page(home), auth=None)
    app.route("/imprint", "GET", ui.page(imprint, public=True), auth=None)
    app.route("/privacy", "GET", ui.page(privacy, public=True), auth=None)


def home(ctx: PageContext) -> str:
    """The notice and the clusters with the viewer's running and total jobs."""
    from cc_backend.jobs.overview import jobs_per_cluster
    from cc_backend.notice import read_notice

    counts = jobs_per_cluster(ctx.runtime.engine, viewer=ctx.viewer)
    clusters = [{"name": name, "jobs": counts.get(name, {}).get("jobs", 0),
                 "running": counts.get(name, {}).get("running", 0)} for name in ctx.ui.clusters()]
    return ctx.render("home.html", notice=read_notice(), clusters=clusters)


def imprint(ctx: PageContext) -> str:
    return ctx.render("imprint.html")


def privacy(ctx: PageContext) -> str:
    return ctx.render("privacy.html")
