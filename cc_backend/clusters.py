"""Clusters as the GraphQL API shows them: subclusters, partitions, global metrics, allocated nodes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from cc_backend.archive.cluster import Cluster, ClusterRegistry, MetricConfig, MetricValue, SubCluster, Topology, Unit
from cc_backend.auth.security import Viewer, sees_restricted_metrics
from cc_backend.db.tables import job_table
from cc_backend.errors import InvalidInput
from cc_backend.jobs.query import hosts_of_running_jobs


def _unit(unit: Unit) -> dict[str, Any]:
    return {"base": unit.base, "prefix": unit.prefix}


def _metric_value(value: MetricValue) -> dict[str, Any]:
    # upstream never fills MetricValue.name (its resolver panics): null is the honest answer
    return {"name": None, "unit": _unit(value.unit), "value": value.value}


def _topology(topology: Topology) -> dict[str, Any]:
    # die and accelerators are optional in cluster.json: absent stays null, as upstream's nil slices
    return {
        "node": list(topology.node),
        "socket": [list(s) for s in topology.socket],
        "memoryDomain": [list(m) for m in topology.memory_domain],
        "die": [list(d) for d in topology.die] or None,
        "core": [list(c) for c in topology.core],
        "accelerators": [a.to_dict() for a in topology.accelerators] or None,
    }


def metric_config(metric: MetricConfig) -> dict[str, Any]:
    """A MetricConfig as the GraphQL type; overrides of a resolved config are already applied, so usually none."""
    return {
        "name": metric.name,
        "unit": _unit(metric.unit),
        "scope": metric.scope,
        "aggregation": metric.aggregation,
        "timestep": metric.timestep,
        "peak": metric.peak,
        "normal": metric.normal,
        "caution": metric.caution,
        "alert": metric.alert,
        "lowerIsBetter": metric.lower_is_better,
        "subClusters": [{"name": o.name, "peak": o.peak, "normal": o.normal, "caution": o.caution,
                         "alert": o.alert, "remove": o.remove} for o in metric.sub_clusters],
    }


def number_of_nodes(subcluster: SubCluster) -> int:
    """cluster.json's ``numberOfNodes`` when given, else the size of the nodelist (``*`` counts 0)."""
    given = subcluster.raw.get("numberOfNodes")
    if isinstance(given, int) and not isinstance(given, bool):
        return given
    return 0 if subcluster.nodelist.is_wildcard else subcluster.nodelist.count()


def subcluster_info(subcluster: SubCluster) -> dict[str, Any]:
    """A SubCluster as the GraphQL type, with its metric configs as resolved for it (removed ones left out)."""
    return {
        "name": subcluster.name,
        "nodes": subcluster.nodes,
        "numberOfNodes": number_of_nodes(subcluster),
        "processorType": subcluster.processor_type,
        "socketsPerNode": subcluster.sockets_per_node,
        "coresPerSocket": subcluster.cores_per_socket,
        "threadsPerCore": subcluster.threads_per_core,
        "flopRateScalar": _metric_value(subcluster.flop_rate_scalar),
        "flopRateSimd": _metric_value(subcluster.flop_rate_simd),
        "memoryBandwidth": _metric_value(subcluster.memory_bandwidth),
        "topology": _topology(subcluster.topology),
        "metricConfig": [metric_config(m) for m in subcluster.metric_config],
        "footprint": list(subcluster.footprint),
    }


def cluster_info(cluster: Cluster) -> dict[str, Any]:
    """A Cluster as the GraphQL type, without partitions (they need the database: :func:`partitions`)."""
    return {"name": cluster.name, "subClusters": [subcluster_info(sc) for sc in cluster.sub_clusters]}


def partitions(engine: Engine, cluster: str) -> list[str]:
    """The distinct batch partitions of the cluster's jobs, sorted; jobs without one are left out."""
    column = job_table.c.cluster_partition
    stmt = select(column).distinct().where(job_table.c.cluster == cluster, column.is_not(None), column != "")
    with engine.connect() as conn:
        return sorted(row[0] for row in conn.execute(stmt))


def global_metrics(registry: ClusterRegistry, viewer: Viewer | None) -> list[dict[str, Any]]:
    """Every metric once, with the subclusters of each cluster offering it; restricted ones only for those allowed.

    A metric counts as restricted if any cluster marks it so: where clusters disagree, hiding is the
    safe reading (upstream takes the flag of whichever cluster it loaded first).
    """
    restricted = {m.name for c in registry for m in c.metric_config if m.restrict}
    show_restricted = sees_restricted_metrics(viewer)
    out = []
    for item in registry.global_metric_list():
        if item["name"] in restricted and not show_restricted:
            continue
        out.append({
            "name": item["name"],
            "unit": {"base": item["unit"].get("base", ""), "prefix": item["unit"].get("prefix", "")},
            "scope": item["scope"],
            "footprint": item.get("footprint"),
            "availability": [{"cluster": a["cluster"], "subClusters": a["subclusters"]} for a in item["availability"]],
        })
    return out


def allocated_nodes(engine: Engine, registry: ClusterRegistry, cluster: str) -> list[dict[str, Any]]:
    """Per subcluster with running jobs, the number of distinct hosts those jobs run on (``[{name, count}]``)."""
    if cluster not in registry:
        raise InvalidInput(f"cluster {cluster!r} is not in the job archive", field="cluster")
    hosts = hosts_of_running_jobs(engine, job_table.c.subcluster, job_table.c.cluster == cluster)
    return [{"name": name, "count": len(found)} for name, found in hosts.items()]
