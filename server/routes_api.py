"""REST routes of ``/api`` and ``/userapi`` (upstream ``internal/api/rest.go``), plus ``/healthz``.

Handlers parse the request, call one ``cc_backend`` function and return a dict or list (JsonPlugin
serialises it); errors are raised as :class:`~cc_backend.errors.CCError` subclasses. Authentication
happens before the handler runs (see :mod:`cc_backend.server.auth`); a handler that needs the caller
names a ``viewer`` parameter.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import bottle

from cc_backend.auth.security import Viewer, may_administer
from cc_backend.db.tables import JOB_STATES
from cc_backend.errors import CCError, Conflict, Forbidden, InvalidInput, NotFound, Unavailable
from cc_backend.server.requests import INT64_MAX, int64, json_body, query_int

if TYPE_CHECKING:
    from cc_backend.runtime import Runtime

log = logging.getLogger("cc_backend.server")


#: Query parameters of GET /api/jobs/ (upstream getJobs); anything else is a 400.
JOB_LIST_PARAMS = frozenset({"state", "cluster", "project", "start-time", "page", "items-per-page", "with-metadata"})


def mount(app: bottle.Bottle, runtime: Runtime) -> None:
    """Every /api, /userapi and health route of ``runtime`` on ``app``."""
    handlers = ApiHandlers(runtime)
    app.route("/healthz", "GET", handlers.healthz, auth=None)
    app.route("/api/clusters/", "GET", handlers.get_clusters)
    app.route("/api/users/", "GET", handlers.get_users)
    for prefix in ("/api", "/userapi"):
        app.route(f"{prefix}/jobs/", "GET", handlers.get_jobs)
        app.route(f"{prefix}/jobs/<id>", "GET", handlers.get_job)
        app.route(f"{prefix}/jobs/<id>", "POST", handlers.get_job_metrics_listed)
        app.route(f"{prefix}/jobs/metrics/<id>", "GET", handlers.get_job_metrics)
        app.route(f"{prefix}/jobs/report/<id>", "GET", handlers.get_job_report)


def mount_dev(app: bottle.Bottle) -> None:
    """Development-only helpers (``serve --dev``)."""

    def sleep(viewer: Viewer | None = None) -> dict[str, Any]:
        seconds = min(float(bottle.request.query.get("seconds", "1")), 30.0)
        time.sleep(seconds)
        return {"slept": seconds}

    app.route("/dev/sleep", "GET", sleep, auth=None)


def parse_job_list_query(query: bottle.FormsDict) -> tuple[Any, Any, bool]:
    """GET /api/jobs/ parameters as (JobFilter, Page, with_metadata); InvalidInput (400) otherwise."""
    from cc_backend.jobs.filter import JobFilter, Page

    flt: dict[str, Any] = {}
    page, per_page, with_metadata = 1, 25, False
    for key in query.keys():
        values = query.getall(key)
        if key not in JOB_LIST_PARAMS:
            raise InvalidInput(f"invalid query parameter: {key}", field=key)
        first = values[0]
        if key == "state":
            for state in values:
                if state not in JOB_STATES:
                    raise InvalidInput("invalid query parameter value: state", field="state")
            flt["state"] = list(values)
        elif key == "cluster":
            flt["cluster"] = {"eq": first}
        elif key == "project":
            flt["project"] = {"eq": first}
        elif key == "start-time":
            parts = first.split("-")
            if len(parts) != 2:
                raise InvalidInput("invalid query parameter value: startTime", field="start-time")
            try:
                flt["startTime"] = {"from": query_int("start-time", parts[0], 0),
                                    "to": query_int("start-time", parts[1], 0)}
            except InvalidInput:
                raise InvalidInput("invalid query parameter value: startTime", field="start-time") from None
        elif key == "page":
            page = query_int("page", first, 1)
        elif key == "items-per-page":
            per_page = query_int("items-per-page", first, 1)
        else:  # with-metadata: presence is enough
            with_metadata = True
    if page * per_page > INT64_MAX:  # the SQL OFFSET must fit in 64 bits too
        raise InvalidInput("invalid query parameter value: page (page * items-per-page is out of range)", field="page")
    return JobFilter.model_validate(flt), Page(page=page, itemsPerPage=per_page), with_metadata


class ApiHandlers:
    """The handlers of one runtime (database engine, archive, config)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def healthz(self) -> dict[str, Any]:
        """200 {"status": "ok"} when the database answers, else 503 in the error shape."""
        from sqlalchemy import text
        from sqlalchemy.exc import SQLAlchemyError

        try:
            with self.runtime.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            log.warning("health check: database does not answer: %s", exc)
            raise Unavailable("the database does not answer") from None
        return {"status": "ok"}

    def get_clusters(self, viewer: Viewer) -> dict[str, Any]:
        archive = self.runtime.archive
        names = archive.clusters()
        wanted = bottle.request.query.decode().get("cluster")
        if wanted is not None:
            if wanted not in names:
                raise InvalidInput(f"unknown cluster: {wanted}", field="cluster")
            names = [wanted]
        return {"clusters": [archive.load_cluster_raw(name) for name in names]}

    def get_users(self, viewer: Viewer) -> list[dict[str, Any]]:
        from cc_backend.auth.users import list_users

        if not may_administer(viewer):
            raise Forbidden("only admins are allowed to fetch a list of users")
        not_just_user = bottle.request.query.get("not-just-user") == "true"
        return [user.to_json() for user in list_users(self.runtime.engine, not_just_user=not_just_user)]

    def get_jobs(self, viewer: Viewer) -> dict[str, Any]:
        from cc_backend.jobs.query import list_jobs
        from cc_backend.metrics.jobdata import add_archived_statistics

        flt, page, with_metadata = parse_job_list_query(bottle.request.query.decode())  # decode: UTF-8 values
        jobs = list_jobs(self.runtime.engine, [flt], page=page, viewer=viewer)
        add_archived_statistics(self.runtime.archive, jobs)
        if not with_metadata:
            for job in jobs:
                job.pop("metaData", None)
        return {"jobs": jobs, "items": page.itemsPerPage, "page": page.page}

    def _job(self, id: str, viewer: Viewer) -> dict[str, Any]:  # noqa: A002 - the route's name
        """The job with database id ``id`` as the viewer may see it; upstream answers 422 when it is not found."""
        from cc_backend.jobs.query import get_job

        db_id = int64(id, "id")
        try:
            return get_job(self.runtime.engine, db_id, viewer=viewer)
        except NotFound as exc:
            raise Conflict(f"finding job with db id {db_id} failed: {exc.message}", field="id") from None

    def _visible_data(self, job: dict[str, Any], viewer: Viewer, **kwargs: Any) -> dict[str, Any]:
        from cc_backend.metrics.jobdata import visible_job_data

        return visible_job_data(self.runtime.archive, job, viewer=viewer,
                                resampling=self.runtime.config.main.resampling, live=self.runtime.metric_data, **kwargs)

    def get_job(self, id: str, viewer: Viewer) -> dict[str, Any]:  # noqa: A002 - the route's name
        """``{"Meta": job, "Data": JobData}``; Data only with ``all-metrics=true`` (every metric, native resolution)."""
        from cc_backend.metrics.jobdata import default_scopes

        job = self._job(id, viewer)
        query = bottle.request.query
        unknown = sorted(set(query.keys()) - {"all-metrics"})
        if unknown:
            raise InvalidInput(f"invalid query parameter: {unknown[0]}", field=unknown[0])
        data = None
        if query.get("all-metrics") == "true":
            data = self._visible_data(job, viewer, scopes=default_scopes(job), resolution=0)
        return {"Meta": job, "Data": data}

    def get_job_metrics_listed(self, id: str, viewer: Viewer) -> dict[str, Any]:  # noqa: A002
        """POST a JSON list of metric names: ``{"Meta": job, "Data": [{"name", "scope", "metric"}]}`` at native resolution."""
        from cc_backend.metrics.jobdata import as_metric_list, default_scopes

        job = self._job(id, viewer)
        metrics = json_body(required=False)
        if metrics is not None and (not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics)):
            raise InvalidInput("expected a JSON array of metric names", field="body")
        data = self._visible_data(job, viewer, metrics=metrics or None, scopes=default_scopes(job), resolution=0)
        return {"Meta": job, "Data": as_metric_list(data)}

    def get_job_metrics(self, id: str, viewer: Viewer) -> dict[str, Any]:  # noqa: A002
        """``?metric=a&scope=node``: ``{"data": {"jobMetrics": [...]}, "error": null}`` as upstream's GraphQL wrapper.

        The same series as GraphQL ``jobMetrics`` (default resolution, restricted metrics hidden).
        """
        try:
            return {"data": {"jobMetrics": self._job_metrics(id, viewer)}, "error": None}
        except CCError as exc:
            # upstream's body shape (clients read "error"), with an honest status instead of upstream's 200
            bottle.response.status = exc.status
            return {"data": None, "error": {"message": exc.message}}

    def get_job_report(self, id: str, viewer: Viewer) -> dict[str, Any]:  # noqa: A002 - the route's name
        """The job's efficiency report (:func:`cc_backend.jobs.report.efficiency_report`); 404 for a job the viewer may not see."""
        from cc_backend.jobs.query import get_job
        from cc_backend.jobs.report import runtime_report

        unknown = sorted(bottle.request.query.keys())
        if unknown:
            raise InvalidInput(f"invalid query parameter: {unknown[0]}", field=unknown[0])
        db_id = int64(id, "id", minimum=1)
        # unlike _job's upstream 422, a new route answers what it is: not found (another user's job too)
        return runtime_report(self.runtime, get_job(self.runtime.engine, db_id, viewer=viewer), viewer=viewer)

    def _job_metrics(self, id: str, viewer: Viewer) -> list[dict[str, Any]]:  # noqa: A002
        from cc_backend.metrics.jobdata import as_metric_list, check_scopes

        query = bottle.request.query.decode()
        unknown = sorted(set(query.keys()) - {"metric", "scope", "resolution"})
        if unknown:
            raise InvalidInput(f"invalid query parameter: {unknown[0]}", field=unknown[0])
        metrics = query.getall("metric") or None
        scopes = check_scopes(query.getall("scope") or None)
        resolution = query_int("resolution", query["resolution"], 0) if "resolution" in query else None
        job = self._job(id, viewer)
        return as_metric_list(self._visible_data(job, viewer, metrics=metrics, scopes=scopes, resolution=resolution))
