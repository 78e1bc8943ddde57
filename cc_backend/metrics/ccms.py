"""A :class:`~cc_backend.metrics.repository.MetricRepository` speaking cc-metric-store's query API.

The same translation serves the built-in store (``query=store.query``, in process) and an external
cc-metric-store (``query=http_query(url, token)``): per host of the job and per requested scope it
asks for the metric at the coarser of its native and the requested scope, naming the topology ids
(hardware threads, cores, memory domains, sockets, accelerators) the job owns and letting the store
aggregate (``aggreg``) when going up. Answers become the job archive's ``JobData`` shape.
"""

from __future__ import annotations

import functools
import logging
import math
import operator
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from cc_backend.errors import CCError, NotFound
from cc_backend.jobs.footprint import go_round
from cc_backend.metrics.repository import JobData, MetricBackendError, job_range, job_subcluster
from cc_backend.metrics.resampling import resample
from cc_backend.metrics.samples import sample_list
from cc_backend.metrics.statistics import STATISTICS_SERIES_MIN, series_statistics

if TYPE_CHECKING:
    from cc_backend.archive.cluster import ClusterRegistry, MetricConfig, Topology

log = logging.getLogger("cc_backend.metrics")

_IS_SAMPLE = functools.partial(operator.is_not, None)

Query = Callable[[dict[str, Any]], dict[str, Any]]

#: Coarse (0) to fine; accelerators stand apart.
_RANK = {"node": 0, "socket": 1, "memoryDomain": 2, "core": 3, "hwthread": 4}


@dataclass(frozen=True, slots=True)
class _Planned:
    """One query of a request and how its answer entries map to series."""

    metric: str
    host: str
    scope: str
    #: Series ids of the answer entries in order (one entry when aggregated); None for node scope.
    ids: tuple[str | None, ...]
    query: dict[str, Any]


def _finite(value: Any) -> float | None:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value


class _HostTopology:
    """The ids of one host a job (or a whole node) owns, at every scope."""

    def __init__(self, topology: Topology, hwthreads: Sequence[int] | None, accelerators: Sequence[str] | None) -> None:
        self.topology = topology
        self.hwthreads = list(hwthreads) if hwthreads else list(topology.node)
        owned = set(self.hwthreads)
        self.owned = owned
        self.cores = [i for i, core in enumerate(topology.core) if owned.intersection(core)]
        self.sockets = [i for i, socket in enumerate(topology.socket) if owned.intersection(socket)]
        self.memory_domains = [i for i, md in enumerate(topology.memory_domain) if owned.intersection(md)]
        self.accelerators = [str(a) for a in accelerators] if accelerators is not None else []

    def native_ids(self, scope: str) -> list[int]:
        return {"hwthread": self.hwthreads, "core": self.cores, "memoryDomain": self.memory_domains,
                "socket": self.sockets}[scope]

    def ids_within(self, native: str, group_scope: str, group: int) -> list[int]:
        """The native-scope ids of this host inside one core, memory domain or socket."""
        groups = {"core": self.topology.core, "memoryDomain": self.topology.memory_domain,
                  "socket": self.topology.socket}[group_scope]
        threads = set(groups[group]) & self.owned
        if native == "hwthread":
            return [h for h in self.hwthreads if h in threads]
        children = {"core": self.topology.core, "memoryDomain": self.topology.memory_domain}[native]
        return [i for i in self.native_ids(native) if set(children[i]) & threads]

    def groups(self, scope: str) -> list[int]:
        return {"core": self.cores, "memoryDomain": self.memory_domains, "socket": self.sockets}[scope]


def result_scope(native: str, requested: str) -> str | None:
    """The scope a metric recorded at ``native`` is answered at when ``requested``; None if it cannot be.

    Upstream's rule: the coarser of the two (data never gets finer than it was recorded);
    accelerator metrics are per accelerator or per node, others have no accelerator scope.
    """
    if native == "accelerator":
        return "node" if requested == "node" else "accelerator"
    if requested == "accelerator" or native not in _RANK or requested not in _RANK:
        return None
    return requested if _RANK[requested] <= _RANK[native] else native


def plan_queries(metric: MetricConfig, host: str, topo: _HostTopology, requested: str, resolution: int,
                 has_accelerators: bool) -> list[_Planned]:
    """The cc-metric-store queries that give ``metric`` of ``host`` at ``requested`` (or its coarser native) scope."""
    native = metric.scope
    scope = result_scope(native, requested)
    if scope is None:
        return []
    base = {"metric": metric.name, "host": host, "resolution": resolution}

    def query(type_: str | None, ids: Sequence[Any] | None, aggreg: bool) -> dict[str, Any]:
        q = dict(base, aggreg=aggreg)
        if type_ is not None:
            q["type"] = type_
            q["type-ids"] = [str(i) for i in ids or ()]
        return q

    if native == "accelerator":
        if not has_accelerators or not topo.accelerators:
            return []
        if scope == "node":
            return [_Planned(metric.name, host, "node", (None,), query("accelerator", topo.accelerators, True))]
        return [_Planned(metric.name, host, "accelerator", tuple(topo.accelerators),
                         query("accelerator", topo.accelerators, False))]
    if native == "node":
        return [_Planned(metric.name, host, "node", (None,), query(None, None, False))]
    if scope == native:
        ids = topo.native_ids(native)
        return [_Planned(metric.name, host, scope, tuple(str(i) for i in ids), query(native, ids, False))] if ids else []
    if scope == "node":
        ids = topo.native_ids(native)
        return [_Planned(metric.name, host, "node", (None,), query(native, ids, True))] if ids else []
    planned = []
    for group in topo.groups(scope):
        ids = topo.ids_within(native, scope, group)
        if ids:
            planned.append(_Planned(metric.name, host, scope, (str(group),), query(native, ids, True)))
    return planned


def _samples(raw: Any) -> list[float | None]:
    """An answer's data with NaN (or anything else not a number) as None; checked in C when it is clean."""
    data = raw if isinstance(raw, list) else list(raw or ())
    try:
        total = sum(filter(_IS_SAMPLE, data)) if None in data else sum(data)
        clean = not math.isnan(total)  # a NaN sample makes the sum NaN
    except TypeError:  # not numbers: sorted out one by one
        clean = False
    return data if clean else [_finite(v) for v in data]


def _statistics_series(series: Sequence[Mapping[str, Any]]) -> dict[str, list[float | None]]:
    """min/median/mean/max per timestep over the series (missing samples ignored), with numpy.

    The same figures as :func:`cc_backend.metrics.statistics.statistics_series` (up to the order of
    the mean's additions), fast enough for a 64-node job over a day.
    """
    return _statistics_of_matrix(_matrix([np.array(s.get("data") or [], dtype=float) for s in series]))


def _matrix(rows: Sequence[np.ndarray]) -> np.ndarray:
    """One row per series, NaN-padded at the end to the longest (None in a list has become NaN already)."""
    length = max((len(r) for r in rows), default=0)
    if all(len(r) == length for r in rows):
        return np.vstack(rows) if rows else np.empty((0, 0))
    matrix = np.full((len(rows), length), np.nan)
    for row, data in zip(matrix, rows, strict=True):
        row[:len(data)] = data
    return matrix


def _statistics_of_matrix(matrix: np.ndarray) -> dict[str, list[float | None]]:
    if not np.isnan(matrix).any():  # the usual case, and numpy's NaN-aware reductions are several times slower
        figures = {"min": matrix.min(axis=0), "median": np.median(matrix, axis=0),
                   "mean": matrix.mean(axis=0, dtype=np.float64), "max": matrix.max(axis=0)}
        return {key: sample_list(values) for key, values in figures.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a timestep without any sample is all NaN
        figures = {"min": np.nanmin(matrix, axis=0), "median": np.nanmedian(matrix, axis=0),
                   "mean": np.nanmean(matrix, axis=0), "max": np.nanmax(matrix, axis=0)}
    return {key: sample_list(values) for key, values in figures.items()}


def _series(host: str, series_id: str | None, entry: Mapping[str, Any]) -> dict[str, Any]:
    raw = entry.get("data")
    # The built-in store answers with float32 arrays (NaN for gaps), an external one with JSON lists.
    data = sample_list(raw) if isinstance(raw, np.ndarray) else _samples(raw)
    stats = {key: _finite(entry.get(key)) for key in ("min", "avg", "max")}
    statistics = ({key: go_round(value) for key, value in stats.items()}  # type: ignore[arg-type]
                  if all(v is not None for v in stats.values()) else series_statistics(data))
    out: dict[str, Any] = {"hostname": host}
    if series_id is not None:
        out["id"] = series_id
    out["statistics"] = statistics
    out["data"] = data
    return out


class CCMetricStoreRepository:
    """Job and node data from a cc-metric-store query endpoint (``query``) and its health check (``health``).

    ``registry`` is the cluster registry or a callable returning the current one (cluster.json may
    be reloaded); ``hosts`` lists the hosts of a cluster the store knows (for node data without a
    host list; otherwise the request asks ``for-all-nodes``); ``name`` names the store in errors.
    """

    def __init__(self, registry: ClusterRegistry | Callable[[], ClusterRegistry], query: Query,
                 health: Query | None = None, *, hosts: Callable[[str], Sequence[str]] | None = None,
                 name: str = "metric store", now: Callable[[], float] = time.time) -> None:
        self._registry = registry
        self.query = query
        self.health_query = health
        self.hosts = hosts
        self.name = name
        self.now = now

    @property
    def registry(self) -> ClusterRegistry:
        return self._registry() if callable(self._registry) else self._registry

    # --- jobs ---------------------------------------------------------------------------------------

    def _job_plan(self, job: Mapping[str, Any], metrics: Sequence[str] | None, scopes: Sequence[str],
                  resolution: int) -> list[_Planned]:
        sub = job_subcluster(self.registry, job)
        names = [m.name for m in sub.metric_config] if metrics is None else list(dict.fromkeys(metrics))
        has_accelerators = int(job.get("numAcc") or 0) > 0 or any(r.get("accelerators") for r in job.get("resources") or ())
        planned: list[_Planned] = []
        for resource in job.get("resources") or ():
            topo = _HostTopology(sub.topology, resource.get("hwthreads"), resource.get("accelerators"))
            for name in names:
                config = sub.metric(name)  # None: unknown or removed for this subcluster
                if config is None:
                    continue
                for scope in dict.fromkeys(scopes):
                    planned.extend(plan_queries(config, str(resource.get("hostname")), topo, scope, resolution,
                                                has_accelerators))
        return _unique(planned)

    def load_data(self, job: Mapping[str, Any], metrics: Sequence[str] | None, scopes: Sequence[str],
                  resolution: int = 0) -> JobData:
        start, end = job_range(job, self.now())
        planned = self._job_plan(job, metrics, scopes or ["node"], resolution)
        sub = job_subcluster(self.registry, job)
        results = self._fetch(job["cluster"], planned, start, end, with_data=True)
        return self._assemble(planned, results, lambda name: sub.metric(name), resolution)

    def load_stats(self, job: Mapping[str, Any], metrics: Sequence[str] | None) -> dict[str, dict[str, dict[str, float]]]:
        start, end = job_range(job, self.now())
        planned = self._job_plan(job, metrics, ["node"], 0)
        results = self._fetch(job["cluster"], planned, start, end, with_data=False)
        out: dict[str, dict[str, dict[str, float]]] = {}
        for plan, entries in zip(planned, results, strict=True):
            if plan.scope != "node" or not entries or entries[0].get("error"):
                continue
            stats = {key: _finite(entries[0].get(key)) for key in ("min", "avg", "max")}
            if any(v is None for v in stats.values()):
                continue
            out.setdefault(plan.metric, {})[plan.host] = {k: go_round(v) for k, v in stats.items()}  # type: ignore[arg-type]
        return out

    # --- nodes --------------------------------------------------------------------------------------

    def load_node_data(self, cluster: str, metrics: Sequence[str] | None, hosts: Sequence[str] | None,
                       scopes: Sequence[str], start: int, end: int, resolution: int = 0) -> dict[str, JobData]:
        found = self.registry.get(cluster)
        if hosts is None:
            hosts = self._all_hosts(cluster, metrics)
        planned: list[_Planned] = []
        configs: dict[tuple[str, str], MetricConfig | None] = {}
        for host in hosts:
            try:
                sub = self.registry.assign_subcluster(cluster, host)
            except NotFound:
                continue  # a host outside every subcluster has no topology and no metric list
            topo = _HostTopology(sub.topology, None, [a.id for a in sub.topology.accelerators])
            names = [m.name for m in sub.metric_config] if metrics is None else list(dict.fromkeys(metrics))
            for name in names:
                config = configs[(host, name)] = sub.metric(name)
                if config is None:
                    continue
                for scope in dict.fromkeys(scopes or ["node"]):
                    planned.extend(plan_queries(config, host, topo, scope, resolution, True))
        planned = _unique(planned)
        results = self._fetch(found.name, planned, start, end, with_data=True)
        by_host: dict[str, list[tuple[_Planned, list[dict[str, Any]]]]] = {}
        for plan, entries in zip(planned, results, strict=True):
            by_host.setdefault(plan.host, []).append((plan, entries))
        out: dict[str, JobData] = {}
        for host, pairs in by_host.items():
            host_plans = [p for p, _ in pairs]
            host_results = [r for _, r in pairs]
            out[host] = self._assemble(host_plans, host_results, _config_lookup(configs, host), resolution)
        return out

    def _all_hosts(self, cluster: str, metrics: Sequence[str] | None) -> list[str]:
        """Every host of ``cluster`` the store knows: asked from ``hosts`` or with a ``for-all-nodes`` request."""
        if self.hosts is not None:
            return sorted(self.hosts(cluster))
        found = self.registry.get(cluster)
        names = list(metrics) if metrics else [m.name for m in found.metric_config]
        now = int(self.now())
        answer = self._call({"cluster": cluster, "from": now - 60, "to": now, "with-stats": False, "with-data": False,
                             "for-all-nodes": names, "queries": []})
        queries = answer.get("queries") if isinstance(answer, Mapping) else None
        if not isinstance(queries, list):
            return []
        return sorted({str(q.get("host") or q.get("hostname")) for q in queries
                       if isinstance(q, Mapping) and (q.get("host") or q.get("hostname"))})

    def health(self, cluster: str, hosts: Sequence[str], metrics: Sequence[str]) -> dict[str, dict[str, Any]]:
        if self.health_query is None:
            raise MetricBackendError(f"{self.name} offers no health check")
        answer = _guarded(self.name, "health check", self.health_query,
                          {"cluster": cluster, "nodes": list(hosts), "metric-names": list(metrics)})
        if not isinstance(answer, Mapping):
            raise MetricBackendError(f"{self.name}: the health check answered {type(answer).__name__}, not an object")
        return {str(host): _node_health(value) for host, value in answer.items()}

    # --- transport ----------------------------------------------------------------------------------

    def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        answer = _guarded(self.name, "query", self.query, request)
        if not isinstance(answer, Mapping):
            raise MetricBackendError(f"{self.name}: the query answered {type(answer).__name__}, not an object")
        return dict(answer)

    def _fetch(self, cluster: str, planned: Sequence[_Planned], start: int, end: int, *,
               with_data: bool) -> list[list[dict[str, Any]]]:
        if not planned:
            return []
        answer = self._call({"cluster": cluster, "from": start, "to": end, "with-stats": True, "with-data": with_data,
                             "queries": [p.query for p in planned]})
        results = answer.get("results")
        if not isinstance(results, list) or len(results) != len(planned):
            got = len(results) if isinstance(results, list) else type(results).__name__
            raise MetricBackendError(f"{self.name}: expected {len(planned)} query results, got {got}")
        out = []
        for plan, entries in zip(planned, results, strict=True):
            if not isinstance(entries, list):
                entries = []
            kept = [dict(e) for e in entries if isinstance(e, Mapping)]
            errors = [str(e["error"]) for e in kept if e.get("error")]
            if errors:  # partial errors are tolerated as upstream does: that series is left out
                log.debug("%s: %s on %s: %s", self.name, plan.metric, plan.host, errors[0])
            out.append(kept)
        return out

    def _assemble(self, planned: Sequence[_Planned], results: Sequence[list[dict[str, Any]]],
                  config_of: Callable[[str], MetricConfig | None], resolution: int) -> JobData:
        out: JobData = {}
        arrays: dict[int, list[np.ndarray]] = {}  # per metric (by id) the store's arrays, for statisticsSeries
        for plan, entries in zip(planned, results, strict=True):
            config = config_of(plan.metric)
            if config is None:
                continue
            for series_id, entry in zip(plan.ids, entries, strict=False):
                if entry.get("error"):
                    continue
                metric = out.setdefault(plan.metric, {}).get(plan.scope)
                if metric is None:
                    step = int(entry.get("resolution") or 0) or int(config.timestep)
                    metric = out[plan.metric][plan.scope] = {"unit": config.unit.to_dict(), "timestep": step,
                                                             "series": []}
                metric["series"].append(_series(plan.host, series_id, entry))
                if isinstance(entry.get("data"), np.ndarray):
                    arrays.setdefault(id(metric), []).append(entry["data"])
        for by_scope in out.values():
            for metric in by_scope.values():
                if resolution:
                    resample(metric, resolution, 0)  # the store may answer finer than asked
                    arrays.pop(id(metric), None)
                if len(metric["series"]) >= STATISTICS_SERIES_MIN:
                    held = arrays.get(id(metric))
                    metric["statisticsSeries"] = (_statistics_of_matrix(_matrix(held))
                                                  if held is not None and len(held) == len(metric["series"])
                                                  else _statistics_series(metric["series"]))
        return out


def _config_lookup(configs: Mapping[tuple[str, str], MetricConfig | None], host: str) -> Callable[[str], MetricConfig | None]:
    return lambda name: configs.get((host, name))


def _guarded(name: str, what: str, call: Query, request: dict[str, Any]) -> Any:
    """``call(request)``; a failure that is not one of ours becomes a MetricBackendError naming the store."""
    try:
        return call(request)
    except CCError:
        raise
    except Exception as exc:
        log.exception("%s: the %s failed", name, what)
        raise MetricBackendError(f"{name}: the {what} failed ({type(exc).__name__}: {exc})") from None


def _unique(planned: list[_Planned]) -> list[_Planned]:
    """Planned queries without repeats (two requested scopes may resolve to the same one)."""
    seen: set[tuple[str, str, str, tuple[str | None, ...]]] = set()
    out = []
    for plan in planned:
        key = (plan.metric, plan.host, plan.scope, plan.ids)
        if key not in seen:
            seen.add(key)
            out.append(plan)
    return out


def _node_health(value: Any) -> dict[str, Any]:
    """A node's health in the repository shape, from ours or cc-metric-store's ``{State, HealthMetrics}``."""
    if not isinstance(value, Mapping):
        return {"state": "failed", "metrics": {"missing": [], "degraded": []}}
    state = value.get("state", value.get("State"))
    metrics = value.get("metrics", value.get("HealthMetrics"))
    if isinstance(metrics, str):  # cc-metric-store may send the metric lists as a JSON document
        import json

        try:
            metrics = json.loads(metrics)
        except ValueError:
            metrics = {}
    metrics = metrics if isinstance(metrics, Mapping) else {}
    state = str(state).lower() if state is not None else "failed"
    if state not in ("full", "partial", "failed"):
        state = "failed"
    return {"state": state, "metrics": {"missing": list(metrics.get("missing") or ()),
                                        "degraded": list(metrics.get("degraded") or ())}}


# --- HTTP transport to an external cc-metric-store ----------------------------------------------------

def _http_call(method: str, url: str, token: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.request(method, url, json=body, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise MetricBackendError(f"metric store {url} cannot be reached: {exc or type(exc).__name__}") from None
    if response.status_code != 200:
        text = response.text.strip().replace("\n", " ")[:200]
        raise MetricBackendError(f"metric store {url} answered HTTP {response.status_code}: {text}")
    try:
        answer = response.json()
    except ValueError:
        raise MetricBackendError(f"metric store {url} answered something that is not JSON") from None
    if not isinstance(answer, dict):
        raise MetricBackendError(f"metric store {url} answered {type(answer).__name__}, not an object")
    return answer


def http_query(url: str, token: str, timeout: float = 10) -> Query:
    """The query transport of an external cc-metric-store: ``POST <url>/api/query`` with a bearer token."""
    endpoint = url.rstrip("/") + "/api/query"
    return lambda request: _http_call("POST", endpoint, token, request, timeout)


def http_health(url: str, token: str, timeout: float = 10) -> Query:
    """The health transport of an external cc-metric-store: ``GET <url>/api/healthcheck`` with a JSON body."""
    endpoint = url.rstrip("/") + "/api/healthcheck"
    return lambda request: _http_call("GET", endpoint, token, request, timeout)


def builtin_repository(registry: ClusterRegistry | Callable[[], ClusterRegistry], store: Any) -> CCMetricStoreRepository:
    """The repository of the built-in store: its query and health in process."""

    def health(request: dict[str, Any]) -> dict[str, Any]:
        return store.health(request["cluster"], request["nodes"], request["metric-names"])

    def query(request: dict[str, Any]) -> dict[str, Any]:
        return store.query(request, arrays=True)  # float32 arrays: no list round trip

    return CCMetricStoreRepository(registry, query, health, hosts=store.hosts, name="the built-in metric store")


def external_repository(registry: ClusterRegistry | Callable[[], ClusterRegistry], url: str, token: str,
                        timeout: float = 10) -> CCMetricStoreRepository:
    """The repository of an external cc-metric-store at ``url``."""
    return CCMetricStoreRepository(registry, http_query(url, token, timeout), http_health(url, token, timeout),
                                   name=f"metric store {url}")
