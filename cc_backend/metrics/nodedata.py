"""Node and cluster metrics (``nodeMetrics``, ``nodeMetricsList``, ``clusterMetrics``) from the metric store.

The metric store does not exist yet: every node has no series, which is an empty result, not an
error; input and permissions are still checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cc_backend.auth.security import sees_nodes
from cc_backend.errors import Forbidden, InvalidInput
from cc_backend.metrics.jobdata import check_scopes

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from cc_backend.archive.cluster import ClusterRegistry
    from cc_backend.auth.security import Viewer


def check_node_metrics_access(viewer: Viewer | None) -> None:
    """Node and cluster metrics are for admin and support (upstream); everyone else gets Forbidden."""
    if not sees_nodes(viewer):
        raise Forbidden("only admin and support users may query node metrics")


def _check_time_range(start: int, end: int) -> None:
    if end < start:
        raise InvalidInput(f"'to' ({end}) lies before 'from' ({start})", field="to")


def node_metrics(registry: ClusterRegistry, cluster: str, *, viewer: Viewer | None, scopes: Sequence[str] | None = None,
                 start: int = 0, end: int = 0) -> list[dict[str, Any]]:
    """GraphQL ``nodeMetrics``: series per node of ``cluster`` between ``start`` and ``end``.

    Node series come only from the metric store; until it exists every node has none, which is an
    empty list (input and permission are still checked).
    """
    check_node_metrics_access(viewer)
    check_scopes(scopes)
    _check_time_range(start, end)
    registry.get(cluster)
    return []


def node_metrics_list(engine: Engine, registry: ClusterRegistry, cluster: str, subcluster: str, *, viewer: Viewer | None,
                      state_filter: str = "all", node_filter: str = "", scopes: Sequence[str] | None = None,
                      start: int = 0, end: int = 0, page: Any = None, resolution: int | None = None,
                      ) -> dict[str, Any]:
    """GraphQL ``nodeMetricsList``: a page of the subcluster's nodes with their series (none without a metric store).

    The nodes, their states and ``totalNodes`` are :func:`cc_backend.nodes.list_cluster_nodes`'s.
    """
    from cc_backend.nodes import list_cluster_nodes

    check_node_metrics_access(viewer)
    check_scopes(scopes)
    _check_time_range(start, end)
    if resolution is not None and resolution < 0:
        raise InvalidInput(f"resolution must be a non-negative number of seconds, got {resolution!r}", field="resolution")
    hosts, total = list_cluster_nodes(engine, registry, cluster, subcluster, state_filter=state_filter,
                                      node_filter=node_filter, page=page)
    offset = page.offset if page is not None else 0
    items = [{"host": h["host"], "subCluster": h["subCluster"], "nodeState": h["nodeState"],
              "metricHealth": h["healthState"], "metrics": []} for h in hosts]
    return {"items": items, "offset": offset, "limit": page.itemsPerPage if page is not None else None,
            "count": len(items), "totalNodes": total, "hasNextPage": offset + len(items) < total}


def cluster_metrics(registry: ClusterRegistry, cluster: str, *, viewer: Viewer | None, start: int = 0, end: int = 0) -> dict[str, Any]:
    """GraphQL ``clusterMetrics``: node series summed over the cluster; none without a metric store."""
    check_node_metrics_access(viewer)
    _check_time_range(start, end)
    registry.get(cluster)
    return {"nodeCount": 0, "metrics": []}
