"""Node and cluster metrics (``nodeMetrics``, ``nodeMetricsList``, ``clusterMetrics``) from the live metric backend.

``live`` is a :class:`~cc_backend.metrics.dispatch.MetricDispatch`; without one every node has no
series, which is an empty result, not an error; input and permissions are checked either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cc_backend.auth.security import sees_nodes
from cc_backend.errors import Forbidden, InvalidInput, NotFound
from cc_backend.jobs.footprint import go_round
from cc_backend.metrics.jobdata import as_metric_list, check_scopes

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from cc_backend.archive.cluster import ClusterRegistry
    from cc_backend.auth.security import Viewer
    from cc_backend.metrics.dispatch import MetricDispatch


def check_node_metrics_access(viewer: Viewer | None) -> None:
    """Node and cluster metrics are for admin and support (upstream); everyone else gets Forbidden."""
    if not sees_nodes(viewer):
        raise Forbidden("only admin and support users may query node metrics")


def _check_time_range(start: int, end: int) -> None:
    if end < start:
        raise InvalidInput(f"'to' ({end}) lies before 'from' ({start})", field="to")


def _subcluster_name(registry: ClusterRegistry, cluster: str, host: str) -> str:
    try:
        return registry.assign_subcluster(cluster, host).name
    except NotFound:
        return ""


def node_metrics(registry: ClusterRegistry, cluster: str, *, viewer: Viewer | None, scopes: Sequence[str] | None = None,
                 start: int = 0, end: int = 0, nodes: Sequence[str] | None = None, metrics: Sequence[str] | None = None,
                 live: MetricDispatch | None = None) -> list[dict[str, Any]]:
    """GraphQL ``nodeMetrics``: series per node of ``cluster`` between ``start`` and ``end``, sorted by host.

    ``nodes`` None means every node the backend has data of; ``metrics`` None every metric of the
    node's subcluster; ``scopes`` None node scope.
    """
    check_node_metrics_access(viewer)
    scopes = check_scopes(scopes)
    _check_time_range(start, end)
    registry.get(cluster)
    if live is None:
        return []
    data = live.load_node_data(cluster, metrics, nodes, scopes or ["node"], start, end)
    return [{"host": host, "subCluster": _subcluster_name(registry, cluster, host), "nodeState": "",
             "metricHealth": "", "metrics": as_metric_list(data[host])} for host in sorted(data)]


def node_metrics_list(engine: Engine, registry: ClusterRegistry, cluster: str, subcluster: str, *, viewer: Viewer | None,
                      state_filter: str = "all", node_filter: str = "", scopes: Sequence[str] | None = None,
                      start: int = 0, end: int = 0, page: Any = None, resolution: int | None = None,
                      metrics: Sequence[str] | None = None, live: MetricDispatch | None = None,
                      ) -> dict[str, Any]:
    """GraphQL ``nodeMetricsList``: a page of the subcluster's nodes with their series (none without ``live``).

    The nodes, their states and ``totalNodes`` are :func:`cc_backend.nodes.list_cluster_nodes`'s.
    """
    from cc_backend.nodes import list_cluster_nodes

    check_node_metrics_access(viewer)
    scopes = check_scopes(scopes)
    _check_time_range(start, end)
    if resolution is not None and resolution < 0:
        raise InvalidInput(f"resolution must be a non-negative number of seconds, got {resolution!r}", field="resolution")
    hosts, total = list_cluster_nodes(engine, registry, cluster, subcluster, state_filter=state_filter,
                                      node_filter=node_filter, page=page)
    data = {}
    if live is not None and hosts:
        data = live.load_node_data(cluster, metrics, [h["host"] for h in hosts], scopes or ["node"], start, end,
                                   resolution or 0)
    offset = page.offset if page is not None else 0
    items = [{"host": h["host"], "subCluster": h["subCluster"], "nodeState": h["nodeState"],
              "metricHealth": h["healthState"], "metrics": as_metric_list(data.get(h["host"], {}))} for h in hosts]
    return {"items": items, "offset": offset, "limit": page.itemsPerPage if page is not None else None,
            "count": len(items), "totalNodes": total, "hasNextPage": offset + len(items) < total}


def cluster_metrics(registry: ClusterRegistry, cluster: str, *, viewer: Viewer | None, start: int = 0, end: int = 0,
                    metrics: Sequence[str] | None = None, live: MetricDispatch | None = None) -> dict[str, Any]:
    """GraphQL ``clusterMetrics``: per metric, the node-scope series of every node summed per timestep.

    ``nodeCount`` is the number of nodes with data; missing samples count as nothing, a timestep no
    node has a sample for is null; sums are rounded to two decimals as upstream.
    """
    check_node_metrics_access(viewer)
    _check_time_range(start, end)
    found = registry.get(cluster)
    if live is None:
        return {"nodeCount": 0, "metrics": []}
    names = list(metrics) if metrics is not None else [m.name for m in found.metric_config]
    data = live.load_node_data(cluster, names, None, ["node"], start, end)
    sums: dict[str, list[float | None]] = {}
    info: dict[str, tuple[Any, int]] = {}
    for by_metric in data.values():
        for name, by_scope in by_metric.items():
            metric = by_scope.get("node")
            if metric is None:
                continue
            info.setdefault(name, (metric.get("unit"), int(metric.get("timestep") or 0)))
            total = sums.setdefault(name, [])
            for series in metric.get("series") or ():
                values = series.get("data") or []
                if len(total) < len(values):
                    total.extend([None] * (len(values) - len(total)))
                for i, value in enumerate(values):
                    if value is not None:
                        total[i] = value if total[i] is None else total[i] + value
    out = [{"name": name, "unit": info[name][0], "timestep": info[name][1],
            "data": [None if v is None else go_round(v) for v in sums[name]]} for name in sorted(sums)]
    return {"nodeCount": len(data), "metrics": out}
