"""REST routes that change jobs, tags, users and node states (upstream ``internal/api/job.go``, ``node.go``).

Every handler parses the request, calls one function of :mod:`cc_backend.jobs.store` (or users, nodes)
and returns its result; the rules live there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import bottle

from cc_backend.auth.security import Viewer, may_administer
from cc_backend.errors import Forbidden, InvalidInput
from cc_backend.server.requests import int64, json_body, json_list, json_object, request_fields

if TYPE_CHECKING:
    from cc_backend.runtime import Runtime


def _job_key(body: dict[str, Any]) -> tuple[Any, str | None, int | None]:
    """jobId (required), cluster and startTime of a by-key body, type-checked before they reach the SQL."""
    if "jobId" not in body:
        raise InvalidInput("missing required field 'jobId'", field="jobId")
    for key, kinds in (("jobId", int), ("cluster", str), ("startTime", int)):
        value = body.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kinds)):
            raise InvalidInput(f"{key} must be {'a string' if kinds is str else 'an integer'}, got {value!r}",
                               field=key)
    return body["jobId"], body.get("cluster"), body.get("startTime")


def mount(app: bottle.Bottle, runtime: Runtime) -> None:
    """The job-changing routes; REST start/stop are left out when jobs arrive over NATS (api-subjects)."""
    h = JobHandlers(runtime)
    if runtime.config.main.api_subjects is None:
        app.route("/api/jobs/start_job/", ["POST", "PUT"], h.start_job)
        app.route("/api/jobs/stop_job/", ["POST", "PUT"], h.stop_job)
        app.route("/api/jobs/stop_job/<id>", ["POST", "PUT"], h.stop_job_by_id)  # v1.0 scripts
    app.route("/api/jobs/used_nodes", "GET", h.used_nodes)
    app.route("/api/jobs/tag_job/<id>", ["POST", "PATCH"], h.tag_job)
    app.route("/api/jobs/tag_job/<id>", "DELETE", h.untag_job)
    app.route("/api/jobs/edit_meta/<id>", "PATCH", h.edit_meta)
    app.route("/api/jobs/edit_meta/", "PATCH", h.edit_meta_by_job)
    app.route("/api/jobs/delete_job/", "DELETE", h.delete_job_by_key)
    app.route("/api/jobs/delete_job/<id>", "DELETE", h.delete_job)
    app.route("/api/jobs/delete_job_before/<ts>", "DELETE", h.delete_jobs_before)
    app.route("/api/tags/", "DELETE", h.delete_tags)
    app.route("/api/nodestate/", ["POST", "PUT"], h.node_state)  # /api/healthcheck too: routes_metricstore
    app.route("/api/user/<username>", "POST", h.edit_user)


class JobHandlers:
    """Handlers over one runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @property
    def engine(self) -> Any:
        return self.runtime.engine

    def start_job(self, viewer: Viewer) -> dict[str, Any]:
        from cc_backend.jobs.store import start_job

        job = start_job(self.engine, self.runtime.archive.registry(), json_object(), viewer=viewer)
        self.runtime.taggers.on_job_started(job)
        bottle.response.status = 201
        return {"msg": "success", "id": job["id"]}

    def _archive(self, job: dict[str, Any]) -> dict[str, Any]:
        """Hand a stopped job to the archiver (unless its monitoring is disabled); the response is the job as stopped."""
        archiver = getattr(self.runtime, "archiver", None)
        if archiver is not None and job.get("monitoringStatus") != 0:
            archiver.submit(job)
        return job

    def stop_job(self, viewer: Viewer) -> dict[str, Any]:
        from cc_backend.jobs.store import stop_job

        return self._archive(stop_job(self.engine, json_object(), viewer=viewer))

    def stop_job_by_id(self, id: str, viewer: Viewer) -> dict[str, Any]:  # noqa: A002
        from cc_backend.jobs.store import stop_job_by_id

        return self._archive(stop_job_by_id(self.engine, int64(id, "id"), json_object(), viewer=viewer))

    def used_nodes(self, viewer: Viewer) -> dict[str, Any]:
        from cc_backend.jobs.store import used_nodes

        ts = bottle.request.query.get("ts")
        if ts is None:
            raise InvalidInput("missing query parameter ts", field="ts")
        return {"usedNodes": used_nodes(self.engine, int64(ts, "ts"))}

    def tag_job(self, id: str, viewer: Viewer) -> dict[str, Any]:  # noqa: A002
        from cc_backend.jobs.tags import tag_job

        return tag_job(self.engine, self.runtime.archive, int64(id, "id"), json_list(), viewer=viewer)

    def untag_job(self, id: str, viewer: Viewer) -> dict[str, Any]:  # noqa: A002
        from cc_backend.jobs.tags import remove_job_tags

        return remove_job_tags(self.engine, self.runtime.archive, int64(id, "id"), json_list(), viewer=viewer)

    def edit_meta(self, id: str, viewer: Viewer) -> dict[str, Any]:  # noqa: A002
        from cc_backend.jobs.store import edit_meta

        body = json_object()
        key, value = _key_value(body, "")
        return edit_meta(self.engine, self.runtime.archive, int64(id, "id"), key, value, viewer=viewer)

    def edit_meta_by_job(self, viewer: Viewer) -> dict[str, Any]:
        from cc_backend.jobs.store import edit_meta_by_job

        body = json_object()
        unknown = sorted(set(body) - {"jobId", "cluster", "startTime", "payload"})
        if unknown:
            raise InvalidInput(f"unknown field {unknown[0]!r}", field=unknown[0])
        job_id, cluster, start_time = _job_key(body)
        payload = body.get("payload")
        if not isinstance(payload, dict):
            raise InvalidInput("payload must be an object with key and value", field="payload")
        key, value = _key_value(payload, "payload.")
        return edit_meta_by_job(self.engine, self.runtime.archive, job_id, cluster, start_time, key, value,
                                viewer=viewer)

    def delete_job(self, id: str, viewer: Viewer) -> dict[str, Any]:  # noqa: A002
        from cc_backend.jobs.store import delete_job

        db_id = delete_job(self.engine, int64(id, "id"))
        return {"msg": f"Successfully deleted job {db_id}"}

    def delete_job_by_key(self, viewer: Viewer) -> dict[str, Any]:
        from cc_backend.jobs.store import delete_job_by_key

        body = json_object()
        unknown = sorted(set(body) - {"jobId", "cluster", "startTime"})
        if unknown:
            raise InvalidInput(f"unknown field {unknown[0]!r}", field=unknown[0])
        db_id = delete_job_by_key(self.engine, *_job_key(body))
        return {"msg": f"Successfully deleted job {db_id}"}

    def delete_jobs_before(self, ts: str, viewer: Viewer) -> dict[str, Any]:
        from cc_backend.jobs.store import delete_jobs_before

        omit = bottle.request.query.get("omit-tagged", "none")
        if omit not in ("none", "all", "user"):
            raise InvalidInput("omit-tagged must be none, all or user", field="omit-tagged")
        count = delete_jobs_before(self.engine, int64(ts, "ts"), omit_tagged=omit)
        return {"msg": f"Successfully deleted {count} jobs"}

    def delete_tags(self, viewer: Viewer) -> str:
        from cc_backend.jobs.tags import delete_tags

        deleted, requested = delete_tags(self.engine, json_list(), viewer=viewer)
        bottle.response.content_type = "text/plain; charset=utf-8"
        return f"Deleted Tags from DB: {deleted} successfull of {requested} requested\n"

    def node_state(self, viewer: Viewer) -> str:
        from cc_backend.nodes import update_node_states

        update_node_states(self.engine, self.runtime.archive.registry(), json_body(), health=self.node_health)
        bottle.response.content_type = "text/plain; charset=utf-8"
        return ""

    def node_health(self, cluster: str, hosts: Sequence[str], metrics: Sequence[str]) -> Mapping[str, Any]:
        """The metric data's health check, looked up per call (a failing lookup makes the nodes "failed")."""
        return self.runtime.metric_data.health(cluster, hosts, metrics)

    def edit_user(self, username: str, viewer: Viewer) -> dict[str, Any]:
        from cc_backend.auth.users import change_access

        if not may_administer(viewer):
            raise Forbidden("only admins are allowed to change users")
        body = request_fields()  # form fields as upstream's r.FormValue, or a JSON object of strings
        return {"msg": f"{change_access(self.engine, username, body)} Success for user {username}"}


def _key_value(body: dict[str, Any], where: str) -> tuple[str, str]:
    unknown = sorted(set(body) - {"key", "value"})
    if unknown:
        raise InvalidInput(f"unknown field {where}{unknown[0]!r}", field=f"{where}{unknown[0]}")
    key, value = body.get("key"), body.get("value")
    if not isinstance(key, str) or not key:
        raise InvalidInput(f"{where}key must be a non-empty string", field=f"{where}key")
    if not isinstance(value, str):
        raise InvalidInput(f"{where}value must be a string", field=f"{where}value")
    return key, value
