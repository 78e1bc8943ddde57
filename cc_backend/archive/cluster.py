"""Typed cluster.json: clusters, subclusters, metric configs with per-subcluster resolution, and the registry."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from cc_backend.archive.nodelist import WILDCARD, NodeList, parse_nodelist
from cc_backend.errors import ArchiveError, InvalidInput, NotFound

__all__ = [
    "SCOPES",
    "Accelerator",
    "Cluster",
    "ClusterRegistry",
    "MetricConfig",
    "MetricValue",
    "SubCluster",
    "SubClusterOverride",
    "Topology",
    "Unit",
    "assign_subcluster",
    "load_cluster_config",
]

#: Metric scopes cc-backend knows, coarse to fine (accelerator is special).
SCOPES: tuple[str, ...] = ("node", "socket", "memoryDomain", "core", "hwthread", "accelerator")
FOOTPRINT_STATS = frozenset({"avg", "min", "max"})
ENERGY_KINDS = frozenset({"power", "energy"})
AGGREGATIONS = frozenset({"sum", "avg", ""})


@dataclass(frozen=True, slots=True)
class Unit:
    base: str = ""
    prefix: str = ""

    @property
    def text(self) -> str:
        """``GB/s``: prefix and base as the pages show them."""
        return f"{self.prefix}{self.base}"

    def to_dict(self) -> dict[str, str]:
        # Go marshals prefix with omitempty
        return {"base": self.base, "prefix": self.prefix} if self.prefix else {"base": self.base}


def unit_text(unit: Unit | Mapping[str, Any] | None) -> str:
    """The text of a unit, given as a :class:`Unit` or in its JSON form (``{"base": "B/s", "prefix": "G"}``)."""
    if unit is None:
        return ""
    if isinstance(unit, Mapping):
        return f"{unit.get('prefix') or ''}{unit.get('base') or ''}"
    return unit.text


@dataclass(frozen=True, slots=True)
class MetricValue:
    unit: Unit
    value: float

    def to_dict(self) -> dict[str, Any]:
        return {"unit": self.unit.to_dict(), "value": self.value}


@dataclass(frozen=True, slots=True)
class Accelerator:
    id: str
    type: str
    model: str

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "type": self.type, "model": self.model}


@dataclass(frozen=True, slots=True)
class Topology:
    node: tuple[int, ...] = ()
    socket: tuple[tuple[int, ...], ...] = ()
    memory_domain: tuple[tuple[int, ...], ...] = ()
    die: tuple[tuple[int, ...], ...] = ()
    core: tuple[tuple[int, ...], ...] = ()
    accelerators: tuple[Accelerator, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "node": list(self.node),
            "socket": [list(s) for s in self.socket],
            "memoryDomain": [list(m) for m in self.memory_domain],
        }
        if self.die:
            out["die"] = [list(d) for d in self.die]
        out["core"] = [list(c) for c in self.core]
        if self.accelerators:
            out["accelerators"] = [a.to_dict() for a in self.accelerators]
        return out


@dataclass(frozen=True, slots=True)
class SubClusterOverride:
    """One entry of ``metricConfig[].subClusters``; ``None`` means "inherit from the cluster-level metric"."""

    name: str
    peak: float | None = None
    normal: float | None = None
    caution: float | None = None
    alert: float | None = None
    footprint: str | None = None
    energy: str | None = None
    lower_is_better: bool | None = None
    restrict: bool | None = None
    remove: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        for key, value in (
            ("peak", self.peak), ("normal", self.normal), ("caution", self.caution), ("alert", self.alert),
            ("footprint", self.footprint), ("energy", self.energy),
            ("lowerIsBetter", self.lower_is_better), ("restrict", self.restrict),
        ):
            if value is not None:
                out[key] = value
        if self.remove:
            out["remove"] = True
        return out


@dataclass(frozen=True, slots=True)
class MetricConfig:
    name: str
    unit: Unit
    scope: str
    timestep: int
    aggregation: str = ""
    peak: float = 0.0
    normal: float = 0.0
    caution: float = 0.0
    alert: float = 0.0
    footprint: str | None = None
    energy: str | None = None
    lower_is_better: bool = False
    restrict: bool = False
    tooltip: str | None = None
    sub_clusters: tuple[SubClusterOverride, ...] = ()

    def resolve(self, subcluster: str) -> MetricConfig | None:
        """This metric as seen by ``subcluster``: overrides applied, ``None`` if the subcluster removes it."""
        override = next((o for o in self.sub_clusters if o.name == subcluster), None)
        if override is None:
            return replace(self, sub_clusters=())
        if override.remove:
            return None
        return replace(
            self,
            sub_clusters=(),
            peak=_pick(override.peak, self.peak),
            normal=_pick(override.normal, self.normal),
            caution=_pick(override.caution, self.caution),
            alert=_pick(override.alert, self.alert),
            footprint=_pick(override.footprint, self.footprint),
            energy=_pick(override.energy, self.energy),
            lower_is_better=_pick(override.lower_is_better, self.lower_is_better),
            restrict=_pick(override.restrict, self.restrict),
        )

    def to_dict(self) -> dict[str, Any]:
        """Upstream JSON shape (``energy`` always present, ``footprint``/``subClusters`` only when set)."""
        out: dict[str, Any] = {
            "name": self.name,
            "unit": self.unit.to_dict(),
            "scope": self.scope,
            "timestep": self.timestep,
            "aggregation": self.aggregation,
            "peak": self.peak,
            "normal": self.normal,
            "caution": self.caution,
            "alert": self.alert,
            "energy": self.energy or "",
            "lowerIsBetter": self.lower_is_better,
            "restrict": self.restrict,
        }
        if self.footprint:
            out["footprint"] = self.footprint
        if self.tooltip is not None:
            out["tooltip"] = self.tooltip
        if self.sub_clusters:
            out["subClusters"] = [o.to_dict() for o in self.sub_clusters]
        return out


@dataclass(frozen=True, slots=True)
class SubCluster:
    name: str
    nodes: str
    nodelist: NodeList
    processor_type: str
    sockets_per_node: int
    cores_per_socket: int
    threads_per_core: int
    flop_rate_scalar: MetricValue
    flop_rate_simd: MetricValue
    memory_bandwidth: MetricValue
    topology: Topology
    #: Resolved metric configs of this subcluster, in cluster.json order, removed metrics dropped.
    metric_config: tuple[MetricConfig, ...] = ()
    #: Names of metrics with a footprint stat, in metric order.
    footprint: tuple[str, ...] = ()
    #: Names of metrics with an energy kind, in metric order.
    energy_footprint: tuple[str, ...] = ()
    metrics: Mapping[str, MetricConfig] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def metric(self, name: str) -> MetricConfig | None:
        return self.metrics.get(name)

    def to_dict(self) -> dict[str, Any]:
        """Upstream JSON shape after init: the file's keys plus resolved metricConfig/footprint/energyFootprint."""
        out: dict[str, Any] = {
            "name": self.name,
            "nodes": self.nodes,
            "processorType": self.processor_type,
            "socketsPerNode": self.sockets_per_node,
            "coresPerSocket": self.cores_per_socket,
            "threadsPerCore": self.threads_per_core,
            "flopRateScalar": self.flop_rate_scalar.to_dict(),
            "flopRateSimd": self.flop_rate_simd.to_dict(),
            "memoryBandwidth": self.memory_bandwidth.to_dict(),
            "topology": self.topology.to_dict(),
        }
        if self.metric_config:
            out["metricConfig"] = [m.to_dict() for m in self.metric_config]
        if self.footprint:
            out["footprint"] = list(self.footprint)
        if self.energy_footprint:
            out["energyFootprint"] = list(self.energy_footprint)
        return out


@dataclass(frozen=True, slots=True)
class Cluster:
    name: str
    metric_config: tuple[MetricConfig, ...]
    sub_clusters: tuple[SubCluster, ...]
    #: The cluster.json document exactly as read, to be served as-is.
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)
    source: str = ""

    def sub_cluster(self, name: str) -> SubCluster:
        for sc in self.sub_clusters:
            if sc.name == name:
                return sc
        raise NotFound(f"subcluster {name!r} not found in cluster {self.name!r}", field="subCluster")

    def find_sub_cluster(self, name: str) -> SubCluster | None:
        return next((sc for sc in self.sub_clusters if sc.name == name), None)

    def metric(self, name: str) -> MetricConfig | None:
        """Cluster-level (unresolved) metric config."""
        return next((m for m in self.metric_config if m.name == name), None)

    @property
    def sub_cluster_names(self) -> list[str]:
        return [sc.name for sc in self.sub_clusters]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "metricConfig": [m.to_dict() for m in self.metric_config],
            "subClusters": [sc.to_dict() for sc in self.sub_clusters],
        }


def _pick(override: Any, inherited: Any) -> Any:
    return inherited if override is None else override


class _Reader:
    """Typed access to one cluster.json document; every error names the file and the key path."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, message: str) -> ArchiveError:
        return ArchiveError(f"{self.source}: {path}: {message}", field=path)

    def obj(self, value: Any, path: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(path, f"expected an object, got {_kind(value)}")
        return value

    def arr(self, value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(path, f"expected an array, got {_kind(value)}")
        return value

    def string(self, d: Mapping[str, Any], key: str, path: str) -> str:
        value = d.get(key, "")
        if not isinstance(value, str):
            raise self.fail(f"{path}.{key}", f"expected a string, got {_kind(value)}")
        return value

    def opt_string(self, d: Mapping[str, Any], key: str, path: str, allowed: frozenset[str] | None = None) -> str | None:
        value = d.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise self.fail(f"{path}.{key}", f"expected a string, got {_kind(value)}")
        if allowed is not None and value not in allowed:
            raise self.fail(f"{path}.{key}", f"{value!r} is not one of {sorted(allowed)}")
        return value

    def number(self, d: Mapping[str, Any], key: str, path: str) -> float:
        value = d.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(f"{path}.{key}", f"expected a number, got {_kind(value)}")
        # ints stay ints so to_dict() writes 104, not 104.0, like Go does
        return value

    def opt_number(self, d: Mapping[str, Any], key: str, path: str) -> float | None:
        return None if d.get(key) is None else self.number(d, key, path)

    def integer(self, d: Mapping[str, Any], key: str, path: str) -> int:
        value = d.get(key, 0)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(f"{path}.{key}", f"expected an integer, got {_kind(value)}")
        return value

    def boolean(self, d: Mapping[str, Any], key: str, path: str) -> bool | None:
        value = d.get(key)
        if value is None:
            return None
        if not isinstance(value, bool):
            raise self.fail(f"{path}.{key}", f"expected true or false, got {_kind(value)}")
        return value

    def unit(self, value: Any, path: str) -> Unit:
        if value is None:
            return Unit()
        d = self.obj(value, path)
        return Unit(base=self.string(d, "base", path), prefix=self.string(d, "prefix", path))

    def metric_value(self, d: Mapping[str, Any], key: str, path: str) -> MetricValue:
        raw = d.get(key)
        if raw is None:
            return MetricValue(Unit(), 0.0)
        sub = self.obj(raw, f"{path}.{key}")
        return MetricValue(self.unit(sub.get("unit"), f"{path}.{key}.unit"), self.number(sub, "value", f"{path}.{key}"))

    def int_list(self, value: Any, path: str) -> tuple[int, ...]:
        items = self.arr(value, path)
        for i, v in enumerate(items):
            # die lists are []*int upstream, so null entries are legal there
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                raise self.fail(f"{path}[{i}]", f"expected an integer, got {_kind(v)}")
        return tuple(items)

    def int_lists(self, d: Mapping[str, Any], key: str, path: str) -> tuple[tuple[int, ...], ...]:
        value = d.get(key)
        if value is None:
            return ()
        return tuple(self.int_list(v, f"{path}.{key}[{i}]") for i, v in enumerate(self.arr(value, f"{path}.{key}")))

    def topology(self, value: Any, path: str) -> Topology:
        if value is None:
            return Topology()
        d = self.obj(value, path)
        accs: list[Accelerator] = []
        for i, a in enumerate(self.arr(d.get("accelerators") or [], f"{path}.accelerators")):
            ap = f"{path}.accelerators[{i}]"
            a = self.obj(a, ap)
            accs.append(Accelerator(self.string(a, "id", ap), self.string(a, "type", ap), self.string(a, "model", ap)))
        return Topology(
            node=self.int_list(d.get("node") or [], f"{path}.node"),
            socket=self.int_lists(d, "socket", path),
            memory_domain=self.int_lists(d, "memoryDomain", path),
            die=self.int_lists(d, "die", path),
            core=self.int_lists(d, "core", path),
            accelerators=tuple(accs),
        )


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _load_metric(r: _Reader, raw: Any, path: str) -> MetricConfig:
    d = r.obj(raw, path)
    name = r.string(d, "name", path)
    if not name:
        raise r.fail(f"{path}.name", "must not be empty")
    timestep = r.integer(d, "timestep", path)
    if timestep < 1:
        raise r.fail(f"{path}.timestep", f"must be at least 1, got {timestep}")
    # An empty scope means "node" for backwards compatibility, as upstream.
    scope = r.string(d, "scope", path) or "node"
    if scope not in SCOPES:
        raise r.fail(f"{path}.scope", f"{scope!r} is not a valid scope ({', '.join(SCOPES)})")
    aggregation = r.string(d, "aggregation", path)
    if aggregation not in AGGREGATIONS:
        raise r.fail(f"{path}.aggregation", f"{aggregation!r} is not one of 'sum', 'avg'")
    overrides: list[SubClusterOverride] = []
    seen: set[str] = set()
    for i, o in enumerate(r.arr(d.get("subClusters") or [], f"{path}.subClusters")):
        op = f"{path}.subClusters[{i}]"
        o = r.obj(o, op)
        oname = r.string(o, "name", op)
        if not oname:
            raise r.fail(f"{op}.name", "must not be empty")
        if oname in seen:
            raise r.fail(f"{op}.name", f"duplicate override for subcluster {oname!r}")
        seen.add(oname)
        overrides.append(
            SubClusterOverride(
                name=oname,
                peak=r.opt_number(o, "peak", op),
                normal=r.opt_number(o, "normal", op),
                caution=r.opt_number(o, "caution", op),
                alert=r.opt_number(o, "alert", op),
                footprint=r.opt_string(o, "footprint", op, FOOTPRINT_STATS),
                energy=r.opt_string(o, "energy", op, ENERGY_KINDS),
                lower_is_better=r.boolean(o, "lowerIsBetter", op),
                restrict=r.boolean(o, "restrict", op),
                remove=bool(r.boolean(o, "remove", op)),
            )
        )
    tooltip = d.get("tooltip")
    return MetricConfig(
        name=name,
        unit=r.unit(d.get("unit"), f"{path}.unit"),
        scope=scope,
        timestep=timestep,
        aggregation=aggregation,
        peak=r.number(d, "peak", path),
        normal=r.number(d, "normal", path),
        caution=r.number(d, "caution", path),
        alert=r.number(d, "alert", path),
        footprint=r.opt_string(d, "footprint", path, FOOTPRINT_STATS),
        energy=r.opt_string(d, "energy", path, ENERGY_KINDS),
        lower_is_better=bool(r.boolean(d, "lowerIsBetter", path)),
        restrict=bool(r.boolean(d, "restrict", path)),
        tooltip=tooltip if isinstance(tooltip, str) else None,
        sub_clusters=tuple(overrides),
    )


def _load_subcluster(r: _Reader, raw: Any, path: str, metrics: tuple[MetricConfig, ...]) -> SubCluster:
    d = r.obj(raw, path)
    name = r.string(d, "name", path)
    if not name:
        raise r.fail(f"{path}.name", "must not be empty")
    nodes = r.string(d, "nodes", path)
    try:
        nodelist = parse_nodelist(nodes)
    except InvalidInput as exc:
        raise r.fail(f"{path}.nodes", exc.message) from None
    resolved = tuple(m for m in (mc.resolve(name) for mc in metrics) if m is not None)
    return SubCluster(
        name=name,
        nodes=nodes,
        nodelist=nodelist,
        processor_type=r.string(d, "processorType", path),
        sockets_per_node=r.integer(d, "socketsPerNode", path),
        cores_per_socket=r.integer(d, "coresPerSocket", path),
        threads_per_core=r.integer(d, "threadsPerCore", path),
        flop_rate_scalar=r.metric_value(d, "flopRateScalar", path),
        flop_rate_simd=r.metric_value(d, "flopRateSimd", path),
        memory_bandwidth=r.metric_value(d, "memoryBandwidth", path),
        topology=r.topology(d.get("topology"), f"{path}.topology"),
        metric_config=resolved,
        footprint=tuple(m.name for m in resolved if m.footprint),
        energy_footprint=tuple(m.name for m in resolved if m.energy),
        metrics={m.name: m for m in resolved},
        raw=d,
    )


def load_cluster_config(raw: Any, source: str = "cluster.json") -> Cluster:
    """Build a Cluster from a decoded cluster.json, applying upstream's load-time checks.

    Raises ArchiveError whose message starts with ``source`` and names the offending key path.
    """
    r = _Reader(source)
    d = r.obj(raw, "$")
    name = r.string(d, "name", "$")
    if not name:
        raise r.fail("$.name", "must not be empty")
    metric_raw = r.arr(d.get("metricConfig") or [], "$.metricConfig")
    if not metric_raw:
        raise r.fail("$.metricConfig", "must not be empty")
    sc_raw = r.arr(d.get("subClusters") or [], "$.subClusters")
    if not sc_raw:
        raise r.fail("$.subClusters", "must not be empty")
    metrics: list[MetricConfig] = []
    for i, m in enumerate(metric_raw):
        mc = _load_metric(r, m, f"$.metricConfig[{i}]")
        if any(prev.name == mc.name for prev in metrics):
            raise r.fail(f"$.metricConfig[{i}].name", f"duplicate metric {mc.name!r}")
        metrics.append(mc)
    metric_tuple = tuple(metrics)
    subclusters: list[SubCluster] = []
    for i, s in enumerate(sc_raw):
        sc = _load_subcluster(r, s, f"$.subClusters[{i}]", metric_tuple)
        if any(prev.name == sc.name for prev in subclusters):
            raise r.fail(f"$.subClusters[{i}].name", f"duplicate subcluster {sc.name!r}")
        subclusters.append(sc)
    return Cluster(name=name, metric_config=metric_tuple, sub_clusters=tuple(subclusters), raw=d, source=source)


def assign_subcluster(cluster: Cluster, hostname: str) -> SubCluster:
    """The subcluster whose nodelist contains ``hostname`` (first in file order); ``*`` only as first-subcluster fallback."""
    for sc in cluster.sub_clusters:
        if not sc.nodelist.is_wildcard and sc.nodelist.contains(hostname):
            return sc
    if cluster.sub_clusters and cluster.sub_clusters[0].nodes == WILDCARD:
        return cluster.sub_clusters[0]
    raise NotFound(f"no subcluster of cluster {cluster.name!r} contains host {hostname!r}", field="hostname")


class ClusterRegistry:
    """All clusters of one archive with the lookups the rest of the backend needs."""

    def __init__(self, clusters: Iterable[Cluster] = ()) -> None:
        self._clusters: dict[str, Cluster] = {}
        for c in clusters:
            if c.name in self._clusters:
                raise ArchiveError(f"cluster {c.name!r} is configured twice ({self._clusters[c.name].source}, {c.source})")
            self._clusters[c.name] = c

    def __iter__(self) -> Iterator[Cluster]:
        return iter(self._clusters.values())

    def __len__(self) -> int:
        return len(self._clusters)

    def __contains__(self, name: object) -> bool:
        return name in self._clusters

    def names(self) -> list[str]:
        return sorted(self._clusters)

    def find(self, cluster: str) -> Cluster | None:
        return self._clusters.get(cluster)

    def get(self, cluster: str) -> Cluster:
        try:
            return self._clusters[cluster]
        except KeyError:
            raise NotFound(f"unknown cluster {cluster!r}", field="cluster") from None

    def subcluster(self, cluster: str, subcluster: str) -> SubCluster:
        return self.get(cluster).sub_cluster(subcluster)

    def metric_config(self, cluster: str, subcluster: str, metric: str) -> MetricConfig | None:
        """Resolved config of ``metric`` on ``subcluster``; None if the metric is unknown or removed there."""
        return self.subcluster(cluster, subcluster).metric(metric)

    def assign_subcluster(self, cluster: str, hostname: str) -> SubCluster:
        return assign_subcluster(self.get(cluster), hostname)

    def job_subcluster(self, cluster: Any, subcluster: Any, hostname: Any) -> SubCluster:
        """The subcluster of a job: the one it names, or the one whose nodes include its first host.

        Input errors name the job field: ``cluster``, ``subCluster`` or ``resources[0].hostname``.
        """
        found = self._clusters.get(cluster) if isinstance(cluster, str) else None
        if found is None:
            raise InvalidInput(f"cluster {cluster!r} is not in the job archive", field="cluster")
        if subcluster:
            sc = found.find_sub_cluster(subcluster) if isinstance(subcluster, str) else None
            if sc is None:
                raise InvalidInput(f"subCluster {subcluster!r} is not part of cluster {found.name!r}",
                                   field="subCluster")
            return sc
        try:
            return assign_subcluster(found, hostname if isinstance(hostname, str) else "")
        except NotFound as exc:
            raise InvalidInput(exc.message, field="resources[0].hostname") from None

    def global_metric_list(self) -> list[dict[str, Any]]:
        """Upstream's GlobalMetricList: each metric once, with the subclusters of each cluster offering it."""
        items: dict[str, dict[str, Any]] = {}
        for c in self._clusters.values():
            for mc in c.metric_config:
                item = items.setdefault(
                    mc.name,
                    {"name": mc.name, "unit": mc.unit.to_dict(), "scope": mc.scope, "footprint": mc.footprint, "availability": []},
                )
                subs = []
                for sc in c.sub_clusters:
                    resolved = sc.metric(mc.name)
                    if resolved is None:
                        continue
                    subs.append(sc.name)
                    if resolved.footprint:
                        item["footprint"] = resolved.footprint
                item["availability"].append({"cluster": c.name, "subclusters": subs})
        out = []
        for item in items.values():
            if not item["footprint"]:
                del item["footprint"]
            out.append(item)
        return out
