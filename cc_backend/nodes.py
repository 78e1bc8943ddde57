"""Node states reported by the batch system (``POST /api/nodestate/``): node table and state history."""

from __future__ import annotations

import time
from typing import Any, Mapping, Sequence

import orjson
from sqlalchemy import Engine, and_, func, insert, select

from cc_backend.archive.cluster import ClusterRegistry
from cc_backend.db.tables import node_state_table, node_table
from cc_backend.errors import InvalidInput, NotFound

NODE_KEYS = frozenset({"hostname", "states", "cpusAllocated", "memoryAllocated", "gpusAllocated", "jobsRunning"})
REQUEST_KEYS = frozenset({"cluster", "nodes"})


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


def _count(node: Mapping[str, Any], key: str, where: str) -> int:
    value = node.get(key, 0)
    if type(value) is not int or value < 0:
        raise InvalidInput(f"{where}.{key} must be a non-negative integer, got {value!r}", field=f"{where}.{key}")
    return value


def parse_request(payload: Any) -> tuple[str, list[dict[str, Any]]]:
    """Validate ``{"cluster": ..., "nodes": [{hostname, states, cpusAllocated, ...}]}``."""
    if not isinstance(payload, dict):
        raise InvalidInput("expected a JSON object with cluster and nodes", field="body")
    unknown = sorted(set(payload) - REQUEST_KEYS)
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r}", field=unknown[0])
    cluster = payload.get("cluster")
    if not isinstance(cluster, str) or not cluster:
        raise InvalidInput("cluster must be a non-empty string", field="cluster")
    nodes = payload.get("nodes")
    if not isinstance(nodes, list):
        raise InvalidInput("nodes must be a list", field="nodes")
    parsed = []
    for i, node in enumerate(nodes):
        where = f"nodes[{i}]"
        if not isinstance(node, dict):
            raise InvalidInput(f"{where} must be an object", field=where)
        unknown = sorted(set(node) - NODE_KEYS)
        if unknown:
            raise InvalidInput(f"{where}: unknown field {unknown[0]!r}", field=f"{where}.{unknown[0]}")
        hostname = node.get("hostname")
        if not isinstance(hostname, str) or not hostname or "/" in hostname:
            raise InvalidInput(f"{where}.hostname must be a host name", field=f"{where}.hostname")
        states = node.get("states", [])
        if not isinstance(states, list) or not all(isinstance(s, str) for s in states):
            raise InvalidInput(f"{where}.states must be a list of strings", field=f"{where}.states")
        parsed.append({
            "hostname": hostname,
            "node_state": scheduler_state(states),
            "cpus_allocated": _count(node, "cpusAllocated", where),
            "memory_allocated": _count(node, "memoryAllocated", where),
            "gpus_allocated": _count(node, "gpusAllocated", where),
            "jobs_running": _count(node, "jobsRunning", where),
        })
    return cluster, parsed


def update_node_states(engine: Engine, registry: ClusterRegistry, payload: Any, *, now: int | None = None) -> int:
    """Record one state row per reported node (unknown nodes are added); returns the number of rows.

    Health needs the metric store, which is not built yet: down nodes are "full" and every other node
    "failed" with no health metrics, which is what upstream records when the metric store has no data.
    """
    cluster_name, nodes = parse_request(payload)
    cluster = registry.find(cluster_name)
    if cluster is None:
        raise InvalidInput(f"cluster {cluster_name!r} is not in the job archive", field="cluster")
    now = int(time.time()) if now is None else now
    with engine.begin() as conn:
        known = dict(conn.execute(
            select(node_table.c.hostname, node_table.c.id).where(node_table.c.cluster == cluster_name)).all())
        for node in nodes:
            if node["hostname"] not in known:
                try:
                    subcluster = registry.assign_subcluster(cluster_name, node["hostname"]).name
                except NotFound:
                    subcluster = ""
                result = conn.execute(insert(node_table).values(
                    hostname=node["hostname"], cluster=cluster_name, subcluster=subcluster))
                known[node["hostname"]] = int(result.inserted_primary_key[0])
        rows = [{
            "time_stamp": now, "node_id": known[n["hostname"]], "node_state": n["node_state"],
            "health_state": "full" if n["node_state"] == "down" else "failed",
            "health_metrics": None,
            **{k: n[k] for k in ("cpus_allocated", "memory_allocated", "gpus_allocated", "jobs_running")},
        } for n in nodes]
        if rows:
            conn.execute(insert(node_state_table), rows)
    return len(rows)


def current_node_states(engine: Engine, cluster: str | None = None) -> list[dict[str, Any]]:
    """The newest state of every node (optionally of one cluster), ordered by cluster and hostname."""
    latest = (select(node_state_table.c.node_id, func.max(node_state_table.c.time_stamp).label("ts"))
              .group_by(node_state_table.c.node_id).subquery())
    ns, n = node_state_table.c, node_table.c
    stmt = (select(n.hostname, n.cluster, n.subcluster, ns.node_state, ns.health_state, ns.health_metrics,
                   ns.cpus_allocated, ns.memory_allocated, ns.gpus_allocated, ns.jobs_running, ns.time_stamp)
            .join(latest, latest.c.node_id == n.id)
            .join(node_state_table, and_(ns.node_id == n.id, ns.time_stamp == latest.c.ts))
            .order_by(n.cluster, n.hostname, ns.id.desc()))
    if cluster is not None:
        stmt = stmt.where(n.cluster == cluster)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    with engine.connect() as conn:
        for row in conn.execute(stmt).mappings():
            key = (row["cluster"], row["hostname"])
            if key not in out:  # two rows with the same time stamp: the newest id wins
                item = dict(row)
                item["health_metrics"] = orjson.loads(item["health_metrics"]) if item["health_metrics"] else None
                out[key] = item
    return list(out.values())
