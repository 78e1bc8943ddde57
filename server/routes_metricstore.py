"""REST routes of the built-in metric store (upstream ``internal/api/metricstore.go``, cc-metric-store's API).

* ``POST /api/write[/]?cluster=X``: InfluxDB line protocol into the store; 200 with an empty body, 400
  naming the first bad line (nothing of that body is stored).
* ``GET|POST /api/query[/]``: cc-metric-store's query request and answer, so that another cc-backend
  can use this server as an external cc-metric-store.
* ``POST /api/free[/]?to=EPOCH``: body ``[["cluster", "host", ...], ...]``; text ``buffers freed: N``.
* ``GET /api/debug[/]?selector=a:b``: the store's tree as JSON.
* ``GET /api/healthcheck[/]``: cc-metric-store's health check, body ``{"cluster", "nodes", "metric-names"}``,
  answer ``{host: {"State": "full"|"partial"|"failed", "HealthMetrics": "<JSON of missing/degraded>"}}``.
* ``POST|PUT /api/healthcheck[/]``: the node-state update of ``/api/nodestate/`` (upstream mounts it there).

What a request may hold (names, list lengths, times) is checked and bounded in the core, once for REST
and NATS; a request over a limit is a 400 naming the field (docs/live-monitoring.md lists the limits).

Admission is upstream's AuthMetricStoreAPI: a JWT with the roles ``["api"]``, or ``api`` plus any of
user, manager or admin (support alone does not do); ``main.api-allowed-ips`` does not apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import bottle
import orjson

from cc_backend.auth.security import Viewer
from cc_backend.errors import InvalidInput, Unauthorized
from cc_backend.server.requests import int64, json_body

if TYPE_CHECKING:
    from cc_backend.metricstore.store import MetricStore
    from cc_backend.runtime import Runtime

#: Largest line-protocol body of one /api/write (a collector's batch is far below; main.max-request-body-size
#: raises it, never lowers it). Enforced by the app's BodyLimit before the body is read.
WRITE_BODY_LIMIT = 64 * 1024 * 1024
WRITE_PATHS = ("/api/write", "/api/write/")
#: Roles that, together with ``api``, admit a token to the metric-store routes (upstream: not support).
_WITH_API = frozenset({"user", "manager", "admin"})


def admits_metricstore(viewer: Viewer) -> bool:
    """Upstream's AuthMetricStoreAPI: roles exactly ["api"], or api plus any of user/manager/admin."""
    roles = viewer.roles
    if len(roles) == 1:
        return roles[0] == "api"
    return "api" in roles and bool(_WITH_API & set(roles))


def mount(app: bottle.Bottle, runtime: Runtime) -> None:
    """The metric-store routes, each with and without the trailing slash (as upstream)."""
    h = MetricStoreHandlers(runtime)
    for path in ("/api/write", "/api/write/"):
        app.route(path, "POST", h.write, auth="userapi")
    for path in ("/api/query", "/api/query/"):
        app.route(path, ["GET", "POST"], h.query, auth="userapi")
    for path in ("/api/free", "/api/free/"):
        app.route(path, "POST", h.free, auth="userapi")
    for path in ("/api/debug", "/api/debug/"):
        app.route(path, "GET", h.debug, auth="userapi")
    for path in ("/api/healthcheck", "/api/healthcheck/"):
        app.route(path, "GET", h.health, auth="userapi")
        app.route(path, ["POST", "PUT"], h.node_state, auth="userapi")


def _admit(viewer: Viewer | None) -> None:
    # The "userapi" group has checked the token; support+api is admitted there but not here.
    if viewer is not None and viewer.username and not admits_metricstore(viewer):
        raise Unauthorized("unauthorized")


class MetricStoreHandlers:
    """Handlers over one runtime's metric store (created by the runtime on first use).

    They read the request and write the answer; what a request may hold is checked once, in the core
    (the store's write_lines, query, free and debug, :func:`cc_backend.nodes.parse_health_request` and
    :func:`cc_backend.nodes.update_node_states`), for REST and NATS alike.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @property
    def store(self) -> MetricStore:
        return self.runtime.metric_store

    def write(self, viewer: Viewer) -> str:
        _admit(viewer)
        environ = bottle.request.environ
        # Read the body ourselves: bottle would spool anything above 100 KB into a temporary file.
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        cluster = bottle.request.query.get("cluster") or None
        self.store.write_lines(body, cluster)
        bottle.response.content_type = "text/plain; charset=utf-8"
        return ""

    def query(self, viewer: Viewer) -> dict[str, Any]:
        _admit(viewer)
        return self.store.query(json_body())

    def free(self, viewer: Viewer) -> str:
        _admit(viewer)
        raw_to = bottle.request.query.get("to")
        if not raw_to:
            raise InvalidInput("'to' is a required query parameter", field="to")
        if len(raw_to) > 40:
            raise InvalidInput("'to' must be a time in Unix seconds", field="to")
        before = int64(raw_to, "to")
        freed = self.store.free(before, json_body())
        bottle.response.content_type = "text/plain; charset=utf-8"
        return f"buffers freed: {freed}\n"

    def debug(self, viewer: Viewer) -> dict[str, Any]:
        _admit(viewer)
        raw = bottle.request.query.get("selector", "")
        return self.store.debug(raw.split(":") if raw else None)

    def health(self, viewer: Viewer) -> dict[str, Any]:
        from cc_backend.nodes import parse_health_request

        _admit(viewer)
        cluster, nodes, metrics = parse_health_request(json_body())
        return cc_metric_store_health(self.store.health(cluster, nodes, metrics))

    def node_state(self, viewer: Viewer) -> str:
        from cc_backend.nodes import update_node_states

        _admit(viewer)
        update_node_states(self.runtime.engine, self.runtime.archive.registry(), json_body(),
                           health=self.runtime.metric_data.health)
        bottle.response.content_type = "text/plain; charset=utf-8"
        return ""


def cc_metric_store_health(healths: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """NodeHealth dicts in cc-metric-store's answer shape (HealthMetrics is a JSON string there)."""
    out: dict[str, Any] = {}
    for host, health in healths.items():
        details = health.get("metrics")
        out[host] = {"State": health.get("state", "failed"),
                     "HealthMetrics": orjson.dumps(details).decode() if details is not None else ""}
    return out

