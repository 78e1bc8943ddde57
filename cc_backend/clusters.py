"""Clusters as the GraphQL API shows them (subclusters, partitions, global metrics, allocated nodes), and back."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from cc_backend.archive.cluster import (
    Cluster,
    ClusterRegistry,
    MetricConfig,
    MetricValue,
    SubCluster,
    Topology,
    Unit,
    load_cluster_config,
)
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


#: Thresholds a subcluster may override; the GraphQL MetricConfig of a subcluster has them resolved.
_OVERRIDABLE = ("peak", "normal", "caution", "alert", "lowerIsBetter", "footprint")


def _merged_order(orders: list[list[str]]) -> list[str]:
    """One order of names that keeps every given order (each a subsequence of the same cluster.json list).

    A subcluster's resolved metrics follow the cluster-level order, so the cluster-level order rebuilt
    here must keep each subcluster's: otherwise its footprint bars would come out in another order.
    """
    first_seen = {name: i for i, name in enumerate(dict.fromkeys(n for order in orders for n in order))}
    after: dict[str, set[str]] = {name: set() for name in first_seen}
    waiting = dict.fromkeys(first_seen, 0)
    for order in orders:
        for before, later in zip(order, order[1:]):
            if later not in after[before]:
                after[before].add(later)
                waiting[later] += 1
    out: list[str] = []
    ready = sorted((n for n, count in waiting.items() if count == 0), key=first_seen.__getitem__)
    while ready:
        name = ready.pop(0)
        out.append(name)
        for later in after[name]:
            waiting[later] -= 1
            if waiting[later] == 0:
                ready.append(later)
        ready.sort(key=first_seen.__getitem__)
    # Contradicting orders cannot come from one cluster.json; should they, no metric is lost.
    return out + [name for name in first_seen if name not in out]


def cluster_from_graphql(info: dict[str, Any], footprint_stats: dict[str, str]) -> Cluster:
    """The inverse of :func:`cluster_info`: a GraphQL ``Cluster`` (subclusters with resolved metric configs)
    as a :class:`Cluster`, built through :func:`load_cluster_config` so the loader checks it.

    ``footprint_stats`` maps metric names to their footprint statistic (``avg``/``min``/``max``, from
    ``globalMetrics``), which the GraphQL MetricConfig lacks. A metric some subclusters lack is removed for
    those; thresholds that differ between subclusters become overrides. Not in the GraphQL type, so left
    unset: each metric's energy kind, restrict flag and tooltip, and a per-subcluster footprint statistic
    differing from the global one.
    """
    subclusters = info.get("subClusters") or []
    resolved: list[dict[str, dict[str, Any]]] = []
    for sc in subclusters:
        in_footprint = set(sc.get("footprint") or ())
        by_name = {}
        for mc in sc.get("metricConfig") or ():
            entry = {
                "name": mc["name"],
                "unit": {"base": (mc.get("unit") or {}).get("base") or "",
                         "prefix": (mc.get("unit") or {}).get("prefix") or ""},
                "scope": mc.get("scope") or "node",
                "aggregation": mc.get("aggregation") or "",
                "timestep": mc.get("timestep"),
                "peak": mc.get("peak") or 0,
                "normal": mc.get("normal") or 0,
                "caution": mc.get("caution") or 0,
                "alert": mc.get("alert") or 0,
                "lowerIsBetter": bool(mc.get("lowerIsBetter")),
                "footprint": (footprint_stats.get(mc["name"]) or "avg") if mc["name"] in in_footprint else None,
            }
            by_name[mc["name"]] = entry
        resolved.append(by_name)
    order = _merged_order([list(by_name) for by_name in resolved])
    metric_config = []
    for name in order:
        having = [(sc, by_name[name]) for sc, by_name in zip(subclusters, resolved) if name in by_name]
        base = dict(having[0][1])
        # A footprint at cluster level cannot be switched off by an override: set it there only when
        # every subcluster offering the metric has it, else per subcluster.
        if any(offered["footprint"] != base["footprint"] for _, offered in having):
            base["footprint"] = None
        overrides = []
        for sc, by_name in zip(subclusters, resolved):
            own = by_name.get(name)
            if own is None:
                overrides.append({"name": sc["name"], "remove": True})
                continue
            changed = {key: own[key] for key in _OVERRIDABLE if own[key] != base[key]}
            if changed:
                overrides.append({"name": sc["name"], **changed})
        document = {key: value for key, value in base.items() if value is not None}
        if overrides:
            document["subClusters"] = overrides
        metric_config.append(document)
    raw_subclusters = []
    for sc in subclusters:
        topology = {key: value for key, value in (sc.get("topology") or {}).items() if value is not None}
        raw = {key: sc.get(key) for key in ("name", "nodes", "numberOfNodes", "processorType", "socketsPerNode",
                                            "coresPerSocket", "threadsPerCore", "flopRateScalar", "flopRateSimd",
                                            "memoryBandwidth")}
        raw["topology"] = topology
        for key in ("flopRateScalar", "flopRateSimd", "memoryBandwidth"):
            if raw[key] is not None:
                unit = raw[key].get("unit") or {}
                raw[key] = {"unit": {"base": unit.get("base") or "", "prefix": unit.get("prefix") or ""},
                            "value": raw[key].get("value") or 0}
        raw_subclusters.append({key: value for key, value in raw.items() if value is not None})
    document = {"name": info["name"], "metricConfig": metric_config, "subClusters": raw_subclusters}
    return load_cluster_config(document, source=f"cluster {info['name']!r} from the server")
