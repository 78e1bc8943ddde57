"""Node states reported by the batch system (``POST /api/nodestate/``): node table and state history."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy import ColumnElement, Engine, RowMapping, and_, func, insert, select

from cc_backend.archive.cluster import ClusterRegistry
from cc_backend.auth.security import Viewer, sees_nodes
from cc_backend.db.engine import inserted_id
from cc_backend.db.limits import check_int, check_text
from cc_backend.db.tables import HEALTH_STATES, NODE_STATES, node_state_table, node_table
from cc_backend.errors import Forbidden, InvalidInput, NotFound
from cc_backend.jobs.filter import Page, StringInput
from cc_backend.jobs.query import string_condition  # the one StringInput-to-SQL rule of job and node filters

log = logging.getLogger("cc_backend.nodes")

#: ``health(cluster, hosts, metrics) -> {host: {"state", "metrics": {"missing", "degraded"}}}``: the metric
#: repository's health check (:class:`cc_backend.metrics.repository.MetricRepository`).
HealthCheck = Callable[[str, Sequence[str], Sequence[str]], Mapping[str, Mapping[str, Any]]]
#: Health states a metric repository may answer (the node_state table's health_state values).
_HEALTH_ANSWERS = frozenset({"full", "partial", "failed"})

NODE_KEYS = frozenset({"hostname", "states", "cpusAllocated", "memoryAllocated", "gpusAllocated", "jobsRunning"})
REQUEST_KEYS = frozenset({"cluster", "nodes"})
#: Keys of cc-metric-store's health-check request (``GET /api/healthcheck``, HealthCheckReq).
HEALTH_REQUEST_KEYS = frozenset({"cluster", "nodes", "metric-names"})
#: Most nodes one node-state report or health check may name (one report covers one cluster).
MAX_NODES = 100_000
#: Most scheduler state flags of one node, and metric names of one health check.
MAX_STATES = 64
MAX_METRICS = 1_000
#: Most host x metric pairs one health check may ask about (each is looked at under the store's lock).
MAX_HEALTH_PAIRS = 5_000_000
#: Longest state flag, host or metric name in a list.
MAX_NAME = 256


def scheduler_state(states: Sequence[str]) -> str:
    """One state from the scheduler's flags, by upstream's priority (idle and down together mean down)."""
    flags = {s.strip().lower() for s in states}
    if "allocated" in flags:
        return "allocated"
    if "reserved" in flags:
        return "reserved"
    if "idle" in flags:
        return "down" if "down" in flags else "idle"
    for state in ("down", "mixed"):
        if state in flags:
            return state
    return "unknown"


#: The node_state column of each count of a reported node.
COUNT_COLUMNS = {"cpusAllocated": node_state_table.c.cpus_allocated,
                 "memoryAllocated": node_state_table.c.memory_allocated,
                 "gpusAllocated": node_state_table.c.gpus_allocated, "jobsRunning": node_state_table.c.jobs_running}


def _count(node: Mapping[str, Any], key: str, where: str) -> int:
    value = node.get(key, 0)
    if type(value) is not int:
        raise InvalidInput(f"{where}.{key} must be a non-negative integer, got {value!r}", field=f"{where}.{key}")
    return check_int(COUNT_COLUMNS[key], value, f"{where}.{key}", minimum=0)


def _request_object(payload: Any, keys: frozenset[str], expected: str) -> dict[str, Any]:
    """A request body that must be a JSON object with only ``keys``; its ``cluster`` checked."""
    if not isinstance(payload, dict):
        raise InvalidInput(f"the request body must be a JSON object with {expected}", field="body")
    unknown = sorted(set(payload) - keys)
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0][:MAX_NAME]!r}", field=unknown[0][:MAX_NAME])
    cluster = payload.get("cluster")
    if not isinstance(cluster, str) or not cluster:
        raise InvalidInput("cluster must be a non-empty string", field="cluster")
    check_text(node_table.c.cluster, cluster, "cluster")
    return payload


def _list_item(item: Any, keys: frozenset[str], where: str) -> dict[str, Any]:
    """An object in a list of a request, with only ``keys``; InvalidInput naming ``where`` or its unknown key."""
    if not isinstance(item, dict):
        raise InvalidInput(f"{where} must be an object", field=where)
    unknown = sorted(set(item) - keys)
    if unknown:
        name = unknown[0][:MAX_NAME]
        raise InvalidInput(f"{where}: unknown field {name!r}", field=f"{where}.{name}")
    return item


def string_list(value: Any, field: str, *, most: int, longest: int = MAX_NAME) -> list[str]:
    """A list of at most ``most`` strings of at most ``longest`` characters; InvalidInput naming ``field``."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"{field} must be a list of strings", field=field)
    if len(value) > most:
        raise InvalidInput(f"{field} has {len(value)} items; at most {most}", field=field)
    for i, v in enumerate(value):
        if len(v) > longest:
            raise InvalidInput(f"{field}[{i}] is longer than {longest} characters", field=f"{field}[{i}]")
    return value


def parse_health_request(payload: Any) -> tuple[str, list[str], list[str]]:
    """cc-metric-store's health check ``{"cluster", "nodes": [host], "metric-names": [metric]}``, checked."""
    request = _request_object(payload, HEALTH_REQUEST_KEYS, "cluster, nodes and metric-names")
    nodes = string_list(request.get("nodes", []), "nodes", most=MAX_NODES)
    metrics = string_list(request.get("metric-names", []), "metric-names", most=MAX_METRICS)
    if len(nodes) * len(metrics) > MAX_HEALTH_PAIRS:
        raise InvalidInput(f"nodes: {len(nodes)} nodes x {len(metrics)} metrics is more than {MAX_HEALTH_PAIRS} "
                           "pairs; ask in smaller parts", field="nodes")
    return request["cluster"], nodes, metrics


def parse_request(payload: Any) -> tuple[str, list[dict[str, Any]]]:
    """Validate ``{"cluster": ..., "nodes": [{hostname, states, cpusAllocated, ...}]}``."""
    request = _request_object(payload, REQUEST_KEYS, "cluster and nodes")
    nodes = request.get("nodes")
    if not isinstance(nodes, list):
        raise InvalidInput("nodes must be a list", field="nodes")
    if len(nodes) > MAX_NODES:
        raise InvalidInput(f"nodes has {len(nodes)} items; at most {MAX_NODES}", field="nodes")
    parsed = []
    for i, node in enumerate(nodes):
        where = f"nodes[{i}]"
        _list_item(node, NODE_KEYS, where)
        hostname = node.get("hostname")
        if not isinstance(hostname, str) or not hostname or "/" in hostname:
            raise InvalidInput(f"{where}.hostname must be a host name", field=f"{where}.hostname")
        check_text(node_table.c.hostname, hostname, f"{where}.hostname")
        states = string_list(node.get("states", []), f"{where}.states", most=MAX_STATES)
        parsed.append({
            "hostname": hostname,
            "node_state": scheduler_state(states),
            "cpus_allocated": _count(node, "cpusAllocated", where),
            "memory_allocated": _count(node, "memoryAllocated", where),
            "gpus_allocated": _count(node, "gpusAllocated", where),
            "jobs_running": _count(node, "jobsRunning", where),
        })
    return request["cluster"], parsed


def subclusters_of(registry: ClusterRegistry, cluster: str, hosts: Iterable[str]) -> dict[str, str]:
    """``{host: subcluster}`` by the cluster's nodelists; ``""`` for a host in none (or an unknown cluster)."""
    found = registry.find(cluster)
    out: dict[str, str] = {}
    for host in hosts:
        try:
            out[host] = registry.assign_subcluster(cluster, host).name if found is not None else ""
        except NotFound:
            out[host] = ""
    return out


def node_health(registry: ClusterRegistry, cluster: str, nodes: Sequence[Mapping[str, Any]],
                health: HealthCheck | None, subclusters: Mapping[str, str] | None = None,
                ) -> dict[str, tuple[str, str | None]]:
    """``{hostname: (health_state, health_metrics JSON)}`` of reported nodes, as upstream's updateNodeStates.

    Down nodes are "full" (nothing is expected of them). The others are checked against the metrics
    of their subcluster, one ``health`` call per subcluster; a node the metric data has no answer for
    (no subcluster, no ``health``, the backend failed) is "failed" without health metrics.
    """
    out: dict[str, tuple[str, str | None]] = {}
    by_subcluster: dict[str, list[str]] = {}
    if subclusters is None:
        subclusters = subclusters_of(registry, cluster, [n["hostname"] for n in nodes])
    for node in nodes:
        host = node["hostname"]
        if node["node_state"] == "down":
            out[host] = ("full", None)
            continue
        out[host] = (NO_METRIC_DATA, None)
        if health is not None and subclusters[host]:
            by_subcluster.setdefault(subclusters[host], []).append(host)
    for subcluster, hosts in by_subcluster.items():
        metrics = [m.name for m in registry.subcluster(cluster, subcluster).metric_config]
        assert health is not None
        try:
            answers = health(cluster, hosts, metrics)
        except Exception as exc:  # noqa: BLE001 - an unreachable or broken backend must not lose the states
            log.warning("health check of %d nodes of %s/%s failed: %s", len(hosts), cluster, subcluster, exc)
            continue
        for host in hosts:
            answer = answers.get(host) if isinstance(answers, Mapping) else None
            if not isinstance(answer, Mapping) or answer.get("state") not in _HEALTH_ANSWERS:
                continue
            details = answer.get("metrics")
            out[host] = (answer["state"], orjson.dumps(details).decode() if details is not None else None)
    return out


def update_node_states(engine: Engine, registry: ClusterRegistry, payload: Any, *, now: int | None = None,
                       health: HealthCheck | None = None) -> int:
    """Record one state row per reported node (unknown nodes are added); returns the number of rows.

    ``health`` is the metric data's health check (see :func:`node_health`); without it every node
    that is not down is "failed", which is what upstream records when the metric store has no data.
    The check runs before the transaction: it may ask a remote metric store.
    """
    cluster_name, nodes = parse_request(payload)
    cluster = registry.find(cluster_name)
    if cluster is None:
        raise InvalidInput(f"cluster {cluster_name!r} is not in the job archive", field="cluster")
    now = int(time.time()) if now is None else now
    subclusters = subclusters_of(registry, cluster_name, {n["hostname"]: None for n in nodes})
    healths = node_health(registry, cluster_name, nodes, health, subclusters)
    with engine.begin() as conn:
        known = dict(conn.execute(
            select(node_table.c.hostname, node_table.c.id).where(node_table.c.cluster == cluster_name)).all())
        for node in nodes:
            if node["hostname"] not in known:
                result = conn.execute(insert(node_table).values(
                    hostname=node["hostname"], cluster=cluster_name, subcluster=subclusters[node["hostname"]]))
                known[node["hostname"]] = inserted_id(result)
        rows = [{
            "time_stamp": now, "node_id": known[n["hostname"]], "node_state": n["node_state"],
            "health_state": healths[n["hostname"]][0], "health_metrics": healths[n["hostname"]][1],
            **{k: n[k] for k in ("cpus_allocated", "memory_allocated", "gpus_allocated", "jobs_running")},
        } for n in nodes]
        if rows:
            conn.execute(insert(node_state_table), rows)
    return len(rows)


def current_node_states(engine: Engine, cluster: str | None = None) -> list[dict[str, Any]]:
    """The newest state of every node (optionally of one cluster), ordered by cluster and hostname."""
    stmt = _current_state_query(()).order_by(node_table.c.cluster, node_table.c.hostname)
    if cluster is not None:
        stmt = stmt.where(node_table.c.cluster == cluster)
    keys = ("hostname", "cluster", "subcluster", "node_state", "health_state", "cpus_allocated",
            "memory_allocated", "gpus_allocated", "jobs_running", "time_stamp")
    with engine.connect() as conn:
        rows = conn.execute(stmt).mappings().all()
    return [{**{key: row[key] for key in keys},
             "health_metrics": orjson.loads(row["health_metrics"]) if row["health_metrics"] else None}
            for row in rows]


# --- queries of the GraphQL node views (admin and support only) ------------------------------------

#: Which node state column ``nodeStatesTimed`` counts, by its ``type`` argument.
STATE_KINDS = {"node": "node_state", "health": "health_state"}
_NODE_FILTER_KEYS = frozenset({"hostname", "cluster", "subCluster", "schedulerState", "healthState", "timeStart"})
_STRING_FILTER_COLUMNS = {"hostname": node_table.c.hostname, "cluster": node_table.c.cluster,
                          "subCluster": node_table.c.subcluster}
#: Sort keys of ``nodes(order:)``: the Node type's field names (any other field sorts by hostname).
NODE_ORDER_COLUMNS = {
    "hostname": node_table.c.hostname, "cluster": node_table.c.cluster, "subCluster": node_table.c.subcluster,
    "schedulerState": node_state_table.c.node_state, "healthState": node_state_table.c.health_state,
    "jobsRunning": node_state_table.c.jobs_running, "cpusAllocated": node_state_table.c.cpus_allocated,
    "memoryAllocated": node_state_table.c.memory_allocated, "gpusAllocated": node_state_table.c.gpus_allocated,
    "timeStamp": node_state_table.c.time_stamp,
}


@dataclass(frozen=True)
class NodeFilter:
    """One GraphQL NodeFilter: text matches on the node, a state, and the earliest time stamp of a state."""

    strings: Mapping[str, StringInput] = field(default_factory=dict)
    scheduler_state: str | None = None
    health_state: str | None = None
    time_start: int | None = None

    def conditions(self) -> list[ColumnElement]:
        ns = node_state_table.c
        conds: list[ColumnElement] = []
        for key, spec in self.strings.items():
            conds += string_condition(_STRING_FILTER_COLUMNS[key], spec)
        if self.scheduler_state is not None:
            conds.append(ns.node_state == self.scheduler_state)
        if self.health_state is not None:
            conds.append(ns.health_state == self.health_state)
        if self.time_start is not None:
            conds.append(ns.time_stamp >= self.time_start)
        return conds


def check_node_access(viewer: Viewer | None) -> None:
    """Node states are for admin and support (upstream's AccessCheck); everyone else gets Forbidden."""
    if not sees_nodes(viewer):
        raise Forbidden("only admin and support users may query node states")


def parse_node_filters(raw: Any) -> list[NodeFilter]:
    """GraphQL ``[NodeFilter!]`` dicts, checked; InvalidInput names ``filter[i].<key>``."""
    if raw is None:
        return []
    items = [raw] if isinstance(raw, dict) else raw
    if not isinstance(items, list):
        raise InvalidInput("filter must be a list of node filters", field="filter")
    parsed = []
    for i, item in enumerate(items):
        where = f"filter[{i}]"
        _list_item(item, _NODE_FILTER_KEYS, where)
        strings = {}
        for key in _STRING_FILTER_COLUMNS:
            if item.get(key) is not None:
                try:
                    strings[key] = StringInput.model_validate(item[key])
                except ValidationError as exc:
                    error = exc.errors()[0]
                    path = ".".join([where, key, *(str(p).rstrip("_") for p in error["loc"])])
                    raise InvalidInput(f"{path}: {error['msg']}", field=path) from None
        for key, allowed in (("schedulerState", NODE_STATES), ("healthState", HEALTH_STATES)):
            value = item.get(key)
            if value is not None and value not in allowed:
                raise InvalidInput(f"{where}.{key} must be one of {', '.join(allowed)}, got {value!r}",
                                   field=f"{where}.{key}")
        time_start = item.get("timeStart")
        if time_start is not None and (type(time_start) is not int or time_start < 0):
            raise InvalidInput(f"{where}.timeStart must be epoch seconds, got {time_start!r}",
                               field=f"{where}.timeStart")
        parsed.append(NodeFilter(strings=strings, scheduler_state=item.get("schedulerState"),
                                 health_state=item.get("healthState"), time_start=time_start))
    return parsed


def _latest_state_ids() -> Any:
    """The id of each node's newest state row (the highest id breaks a tie of time stamps)."""
    ns = node_state_table.c
    newest = select(ns.node_id, func.max(ns.time_stamp).label("ts")).group_by(ns.node_id).subquery()
    return (select(func.max(ns.id).label("id"))
            .join(newest, and_(ns.node_id == newest.c.node_id, ns.time_stamp == newest.c.ts))
            .group_by(ns.node_id).subquery())


def _current_state_query(filters: Sequence[NodeFilter]) -> Any:
    """Nodes joined to their newest state, filtered on that newest state (not on any older one)."""
    n, ns = node_table.c, node_state_table.c
    latest = _latest_state_ids()
    stmt = (select(n.id, n.hostname, n.cluster, n.subcluster, n.meta_data, ns.node_state, ns.health_state,
                   ns.health_metrics, ns.jobs_running, ns.cpus_allocated, ns.memory_allocated,
                   ns.gpus_allocated, ns.time_stamp)
            .select_from(node_table)
            .join(node_state_table, ns.node_id == n.id)
            .join(latest, latest.c.id == ns.id))
    for flt in filters:
        stmt = stmt.where(*flt.conditions())
    return stmt


def _json_object(text: Any) -> Any:
    """A JSON column as a value; empty or missing as ``{}`` (upstream answers empty maps, not null)."""
    if text is None or text == "" or text == b"":
        return {}
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}


def _graphql_node(row: RowMapping) -> dict[str, Any]:
    return {
        "id": row["id"],
        "hostname": row["hostname"],
        "cluster": row["cluster"],
        "subCluster": row["subcluster"],
        "jobsRunning": row["jobs_running"],
        "cpusAllocated": row["cpus_allocated"],
        "memoryAllocated": row["memory_allocated"],
        "gpusAllocated": row["gpus_allocated"],
        "schedulerState": row["node_state"],
        "healthState": row["health_state"],
        "metaData": _json_object(row["meta_data"]),
        "healthData": _json_object(row["health_metrics"]),
        "timeStamp": row["time_stamp"],
    }


def _node_order(order: Mapping[str, Any] | None) -> list[ColumnElement]:
    """Sort by a Node field; anything else sorts by hostname, as upstream, which ignores ``order`` on node
    lists and whose web UI always sends a job column there (``startTime``)."""
    n = node_table.c
    field = order.get("field") if order else None
    column = NODE_ORDER_COLUMNS.get(field) if field is not None else None
    if column is None or order is None:
        return [n.hostname, n.cluster]
    direction = order.get("order") or "ASC"
    if direction not in ("ASC", "DESC"):
        raise InvalidInput(f"order.order must be ASC or DESC, got {direction!r}", field="order.order")
    # hostname and cluster keep the order of equal keys stable
    return [column.desc() if direction == "DESC" else column.asc(), n.hostname, n.cluster]


def query_nodes(engine: Engine, filters: Sequence[NodeFilter] = (), order: Mapping[str, Any] | None = None,
                ) -> list[dict[str, Any]]:
    """Every node with its newest state matching ``filters``, as GraphQL ``Node`` dicts (hostname order by default)."""
    stmt = _current_state_query(filters).order_by(*_node_order(order))
    with engine.connect() as conn:
        return [_graphql_node(row) for row in conn.execute(stmt).mappings()]


def get_node(engine: Engine, node_id: int) -> dict[str, Any]:
    """One node by id with its newest state; NotFound if there is no such node or it never reported a state."""
    stmt = _current_state_query(()).where(node_table.c.id == node_id)
    with engine.connect() as conn:
        row = conn.execute(stmt).mappings().first()
    if row is None:
        raise NotFound(f"no node with id {node_id}", field="id")
    return _graphql_node(row)


#: ``stateFilter`` of the node list besides a scheduler state: every node, or those that never reported one.
ALL_NODES, NOT_IN_DB = "all", "notindb"
#: Health of a node without metric data: what upstream records when the metric store has none.
NO_METRIC_DATA = "failed"


def list_cluster_nodes(engine: Engine, registry: ClusterRegistry, cluster: str, subcluster: str, *,
                       state_filter: str = ALL_NODES, node_filter: str = "", page: Page | None = None,
                       ) -> tuple[list[dict[str, Any]], int]:
    """One page of the hosts of a cluster's subcluster (all subclusters for ``""``), sorted by hostname,
    and how many hosts matched in all: the node list view (GraphQL ``nodeMetricsList``).

    The hosts are those of cluster.json's nodelists (a ``*`` nodelist names none) and those that
    reported a state; each with its newest scheduler state, or ``notindb`` if it never reported one.
    ``state_filter`` is ``all``, ``notindb`` or a scheduler state; ``node_filter`` a part of the hostname.
    Page items are ``{"host", "subCluster", "nodeState", "healthState"}``.
    """
    if state_filter not in (ALL_NODES, NOT_IN_DB, *NODE_STATES):
        raise InvalidInput(f"stateFilter must be one of {ALL_NODES}, {NOT_IN_DB}, {', '.join(NODE_STATES)}, "
                           f"got {state_filter!r}", field="stateFilter")
    found = registry.get(cluster)
    subclusters = [found.sub_cluster(subcluster)] if subcluster else list(found.sub_clusters)
    hosts: dict[str, dict[str, Any]] = {}
    for sc in subclusters:
        if not sc.nodelist.is_wildcard:
            for host in sc.nodelist.expand():
                hosts.setdefault(host, {"host": host, "subCluster": sc.name, "nodeState": NOT_IN_DB,
                                        "healthState": NO_METRIC_DATA})
    stmt = _current_state_query(()).where(node_table.c.cluster == cluster)
    if subcluster:
        stmt = stmt.where(node_table.c.subcluster == subcluster)
    with engine.connect() as conn:
        for row in conn.execute(stmt).mappings():
            hosts[row["hostname"]] = {"host": row["hostname"], "subCluster": row["subcluster"],
                                      "nodeState": row["node_state"], "healthState": row["health_state"]}
    matched = sorted((h for h in hosts.values() if node_filter in h["host"]
                      and state_filter in (ALL_NODES, h["nodeState"])), key=lambda h: h["host"])
    return list(page.of(matched) if page is not None else matched), len(matched)


def count_node_states(engine: Engine, filters: Sequence[NodeFilter] = ()) -> list[dict[str, Any]]:
    """Nodes per scheduler state, then per health state, of the newest states (``[{state, count}]``, by name)."""
    current = _current_state_query(filters).subquery()
    out = []
    with engine.connect() as conn:
        for column in (current.c.node_state, current.c.health_state):
            rows = conn.execute(select(column, func.count()).group_by(column).order_by(column)).all()
            out += [{"state": state, "count": int(count)} for state, count in rows]
    return out


def count_node_states_timed(engine: Engine, filters: Sequence[NodeFilter] = (), kind: str = "node",
                            ) -> list[dict[str, Any]]:
    """Per state, the number of nodes reported in it at each report time: ``[{state, counts, times}]``.

    ``kind`` is "node" (scheduler states) or "health". Every state row counts, so a node reported
    twice at one time stamp counts twice; a state missing from a report has no point there (not 0),
    as upstream.
    """
    if kind not in STATE_KINDS:
        raise InvalidInput(f"type must be one of {', '.join(STATE_KINDS)}, got {kind!r}", field="type")
    n, ns = node_table.c, node_state_table.c
    column = getattr(ns, STATE_KINDS[kind])
    stmt = (select(column, ns.time_stamp, func.count())
            .select_from(node_state_table).join(node_table, ns.node_id == n.id))
    for flt in filters:
        stmt = stmt.where(*flt.conditions())
    stmt = stmt.group_by(column, ns.time_stamp).order_by(column, ns.time_stamp)
    series: dict[str, dict[str, list[int]]] = {}
    with engine.connect() as conn:
        for state, stamp, count in conn.execute(stmt):
            entry = series.setdefault(state, {"state": state, "counts": [], "times": []})
            entry["counts"].append(int(count))
            entry["times"].append(int(stamp))
    return list(series.values())
