"""A :class:`~cc_backend.metrics.repository.MetricRepository` reading node metrics from Prometheus through PromQL templates.

Configured by a ``metric-store-external`` entry of ``kind: "prometheus"``: ``queries`` maps each
metric name of cluster.json to a PromQL template in which ``{host}`` is one hostname as is (for
``=`` matchers, one request per host), ``{hosts}`` a regex alternation of the escaped hostnames (for
``=~`` matchers, one request for all hosts) and ``{cluster}`` the cluster name. The label
``host-label`` (minus the suffix ``host-label-strip``) of each result series names its host; several
series of one host are combined by the metric's ``aggregation`` (sum, or avg).

What Prometheus gives and what it does not:

* **Node scope only.** Node exporters publish per-node values (or per-CPU ones without the
  cluster's socket/memory-domain/core topology), so every requested scope is answered at node
  scope; a template should aggregate to one series per host (``sum by (instance) (...)``).
* **Steps.** ``/api/v1/query_range`` is asked with ``step`` = the metric's timestep, or for a
  requested resolution the smallest multiple of the timestep at or above it: Prometheus evaluates
  the template at every step (its own sampling, no LTTB), which keeps long ranges cheap.
* **Points per request.** Prometheus refuses queries of more than 11,000 points per series, so
  longer ranges are split into requests of at most :data:`MAX_POINTS` steps, aligned to the same
  grid, and joined; the step is never coarsened behind the caller's back.
* **Gaps.** A step without a value is None. Prometheus looks back up to 5 minutes for the latest
  sample at each step, except after a staleness marker (a target or series that vanished from a
  scrape), so short scrape hiccups are bridged and vanished series leave gaps.
* **Hosts.** Without a host list (node data of a whole cluster) the hosts are the subclusters'
  node lists plus every host the ``{hosts}`` templates (asked with ``.+``) or placeholder-free
  templates report that belongs to the cluster by its node lists; with a ``*`` node list only the
  templates themselves (say, through ``{cluster}``) keep other clusters' hosts out. A ``{host}``
  template costs one request per host, so prefer ``{hosts}``.
* **Health.** A metric of a host is missing when its template has no value for the host within the
  last 5 timesteps; Prometheus' staleness handling drops a vanished series at the next scrape, so
  there is no "old sample" to report and ``degraded`` stays empty.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from cc_backend.config.sections import PROMETHEUS_PLACEHOLDER
from cc_backend.errors import NotFound
from cc_backend.metrics.repository import JobData, MetricBackendError, job_range, job_subcluster
from cc_backend.metrics.statistics import STATISTICS_SERIES_MIN, series_statistics, statistics_series

if TYPE_CHECKING:
    import httpx

    from cc_backend.archive.cluster import ClusterRegistry, MetricConfig, SubCluster

log = logging.getLogger("cc_backend.metrics")

#: Steps per query_range request; Prometheus refuses more than 11,000 points per series.
MAX_POINTS = 10_000
#: A metric of a host is healthy when it has a value within this many of its timesteps.
HEALTH_TIMESTEPS = 5
#: Parallel requests to one Prometheus server.
PARALLEL_REQUESTS = 4
#: Hosts per request of a ``{hosts}`` template, to keep the regex (and the answer) bounded.
HOSTS_PER_REQUEST = 500

# Hostnames are put into PromQL strings; anything beyond these characters could break out of them.
_SAFE_HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*\Z")
_ANY_HOST = ".+"

Series = dict[str, list[float | None]]


def host_regex(hosts: Iterable[str]) -> str:
    """A regex alternation matching exactly ``hosts`` (dots as ``[.]``, so no backslash needs quoting in PromQL strings)."""
    return "(" + "|".join(host.replace(".", "[.]") for host in hosts) + ")"


def render(template: str, *, cluster: str, host: str | None = None, hosts: Sequence[str] | None = None) -> str:
    """``template`` with ``{host}``, ``{hosts}`` and ``{cluster}`` filled in; ``hosts`` None matches any host."""
    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "host":
            return host if host is not None else _ANY_HOST
        if name == "hosts":
            if host is not None:
                return host_regex([host])
            return host_regex(hosts) if hosts is not None else _ANY_HOST
        if name == "cluster":
            return cluster
        return match.group(0)  # unknown placeholders are refused when the config is loaded

    return PROMETHEUS_PLACEHOLDER.sub(fill, template)


def _placeholders(template: str) -> set[str]:
    return {m.group(1) for m in PROMETHEUS_PLACEHOLDER.finditer(template)}


def _value(raw: Any) -> float | None:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def query_step(timestep: int, resolution: int) -> int:
    """The query_range step: the timestep, or the smallest multiple of it that is at least ``resolution``."""
    timestep = max(1, int(timestep))
    if resolution <= timestep:
        return timestep
    return -(-int(resolution) // timestep) * timestep


def time_chunks(start: int, end: int, step: int, max_points: int = MAX_POINTS) -> list[tuple[int, int]]:
    """``[start, end]`` as (first, last) step times of requests of at most ``max_points`` points, on one grid."""
    count = max(0, end - start) // step + 1
    chunks = []
    for first in range(0, count, max_points):
        last = min(count, first + max_points) - 1
        chunks.append((start + first * step, start + last * step))
    return chunks


class PrometheusRepository:
    """Job and node data, statistics and health from a Prometheus server at ``url``.

    ``queries`` maps metric names to PromQL templates (see the module docstring); ``registry`` is the
    cluster registry or a callable returning the current one. ``token`` is sent as a bearer token,
    ``username``/``password`` as basic authentication. ``max_points`` limits steps per request.
    """

    def __init__(self, registry: ClusterRegistry | Callable[[], ClusterRegistry], url: str, queries: Mapping[str, str], *,
                 host_label: str = "instance", host_label_strip: str = "", token: str | None = None,
                 username: str | None = None, password: str | None = None, timeout: float = 10.0,
                 max_points: int = MAX_POINTS, now: Callable[[], float] = time.time) -> None:
        self._registry = registry
        self.url = url.rstrip("/")
        self.queries = dict(queries)
        self.host_label = host_label
        self.host_label_strip = host_label_strip
        self.timeout = timeout
        self.max_points = max(1, min(int(max_points), 11_000))
        self.now = now
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._auth = (username, password or "") if username is not None else None
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, entry: Any, registry: ClusterRegistry | Callable[[], ClusterRegistry]) -> PrometheusRepository:
        """The repository of a ``metric-store-external`` entry of kind "prometheus"."""
        timeout = entry.timeout.total_seconds() if hasattr(entry.timeout, "total_seconds") else float(entry.timeout)
        return cls(registry, entry.url, entry.queries or {}, host_label=entry.host_label,
                   host_label_strip=entry.host_label_strip, token=entry.token, username=entry.username,
                   password=entry.password, timeout=timeout)

    @property
    def registry(self) -> ClusterRegistry:
        return self._registry() if callable(self._registry) else self._registry

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    # --- jobs ---------------------------------------------------------------------------------------

    def _job_configs(self, job: Mapping[str, Any], metrics: Sequence[str] | None) -> list[MetricConfig]:
        sub = job_subcluster(self.registry, job)
        names = [m.name for m in sub.metric_config] if metrics is None else list(dict.fromkeys(metrics))
        return [config for config in (sub.metric(name) for name in names) if config is not None and config.name in self.queries]

    def load_data(self, job: Mapping[str, Any], metrics: Sequence[str] | None, scopes: Sequence[str],
                  resolution: int = 0) -> JobData:
        start, end = job_range(job, self.now())
        hosts = [str(r.get("hostname")) for r in job.get("resources") or () if r.get("hostname")]
        configs = self._job_configs(job, metrics)
        fetched = self._fetch_all(job["cluster"], [(c, hosts) for c in configs], start, end, resolution)
        out: JobData = {}
        for config, (step, by_host) in zip(configs, fetched, strict=True):
            metric = _node_metric(config, step, [(h, by_host[h]) for h in hosts if h in by_host])
            if metric is not None:
                out[config.name] = {"node": metric}
        return out

    def load_stats(self, job: Mapping[str, Any], metrics: Sequence[str] | None) -> dict[str, dict[str, dict[str, float]]]:
        data = self.load_data(job, metrics, ["node"])
        return {name: {s["hostname"]: dict(s["statistics"]) for s in scopes["node"]["series"]} for name, scopes in data.items()}

    # --- nodes --------------------------------------------------------------------------------------

    def load_node_data(self, cluster: str, metrics: Sequence[str] | None, hosts: Sequence[str] | None,
                       scopes: Sequence[str], start: int, end: int, resolution: int = 0) -> dict[str, JobData]:
        found = self.registry.get(cluster)
        names = [m.name for m in found.metric_config] if metrics is None else list(dict.fromkeys(metrics))
        names = [name for name in names if name in self.queries and found.metric(name) is not None]
        if hosts is None:
            hosts = self._discover_hosts(cluster, names, start, end)
        subclusters = self._subclusters(cluster, hosts)
        requests: list[tuple[MetricConfig, list[str]]] = []
        for name in names:
            holders = [h for h in hosts if h in subclusters and subclusters[h].metric(name) is not None]
            config = subclusters[holders[0]].metric(name) if holders else None
            if config is not None:
                requests.append((config, holders))
        fetched = self._fetch_all(cluster, requests, start, end, resolution)
        out: dict[str, JobData] = {}
        for (config, holders), (step, by_host) in zip(requests, fetched, strict=True):
            for host in holders:
                if host in by_host:
                    metric = _node_metric(config, step, [(host, by_host[host])])
                    if metric is not None:
                        out.setdefault(host, {})[config.name] = {"node": metric}
        return out

    def _subclusters(self, cluster: str, hosts: Iterable[str]) -> dict[str, SubCluster]:
        out = {}
        for host in hosts:
            try:
                out[host] = self.registry.assign_subcluster(cluster, host)
            except NotFound:
                continue  # a host in no subcluster has no metric list
        return out

    def _discover_hosts(self, cluster: str, names: Sequence[str], start: int, end: int) -> list[str]:
        """Every host of ``cluster`` Prometheus has data of: the templates asked for any host, plus the subclusters' node lists."""
        found = self.registry.get(cluster)
        hosts: set[str] = set()
        for sub in found.sub_clusters:
            if not sub.nodelist.is_wildcard:
                hosts.update(sub.nodelist.expand())
        # A {host} template can only be asked per host, so only the other templates discover hosts.
        requests: list[tuple[MetricConfig, Sequence[str] | None]] = [
            (config, None) for config in (found.metric(n) for n in names if "host" not in _placeholders(self.queries[n]))
            if config is not None
        ]
        # One step per template is enough to learn who reports it.
        for _, by_host in self._fetch_all(cluster, requests, max(start, end - 1), end, 0):
            hosts.update(by_host)
        return sorted(h for h in hosts if h in self._subclusters(cluster, [h]))

    def health(self, cluster: str, hosts: Sequence[str], metrics: Sequence[str]) -> dict[str, dict[str, Any]]:
        found = self.registry.get(cluster)
        names = list(dict.fromkeys(metrics)) or [m.name for m in found.metric_config if m.name in self.queries]
        now = int(self.now())
        requests: list[tuple[MetricConfig, list[str]]] = []
        for name in names:
            config = found.metric(name)
            if config is not None and name in self.queries:
                requests.append((config, list(hosts)))
        windows = [(now - HEALTH_TIMESTEPS * max(1, config.timestep), now) for config, _ in requests]
        results = self._run(cluster, [(config, holders, first, last, 0)
                                      for (config, holders), (first, last) in zip(requests, windows, strict=True)])
        present: dict[str, set[str]] = {}
        for (config, _), (_, by_host) in zip(requests, results, strict=True):
            for host, data in by_host.items():
                if any(v is not None for v in data):
                    present.setdefault(host, set()).add(config.name)
        out: dict[str, dict[str, Any]] = {}
        for host in hosts:
            have = present.get(host, set())
            missing = [name for name in names if name not in have]
            state = "full" if not missing else ("failed" if len(missing) == len(names) else "partial")
            out[host] = {"state": state, "metrics": {"missing": missing, "degraded": []}}
        return out

    # --- fetching -----------------------------------------------------------------------------------

    def _fetch_all(self, cluster: str, requests: Sequence[tuple[MetricConfig, Sequence[str] | None]], start: int,
                   end: int, resolution: int) -> list[tuple[int, Series]]:
        """Per (metric, hosts) request: the step used and ``{host: data}`` on the grid ``start, start+step, ...``."""
        return self._run(cluster, [(config, hosts, start, end, resolution) for config, hosts in requests])

    def _run(self, cluster: str, asks: Sequence[tuple[MetricConfig, Sequence[str] | None, int, int, int]]) -> list[tuple[int, Series]]:
        """Per ask (metric, hosts or None for any, start, end, resolution): the step and ``{host: data}``."""
        calls: list[tuple[int, str, str, int, int, int]] = []  # (ask index, metric, promql, first, last, step)
        plans: list[tuple[int, int, int, set[str] | None]] = []  # (start, step, points, wanted hosts)
        for index, (config, hosts, start, end, resolution) in enumerate(asks):
            step = query_step(config.timestep, resolution)
            points = max(0, end - start) // step + 1
            wanted: set[str] | None = None
            if hosts is not None:
                wanted = set()
                for host in hosts:
                    if _SAFE_HOST.match(host):
                        wanted.add(host)
                    else:
                        log.warning("Prometheus %s: host %r has characters PromQL strings cannot carry; no data for it", self.url, host)
            plans.append((start, step, points, wanted))
            if wanted is not None and not wanted:
                continue
            for promql in self._promql(config.name, cluster, sorted(wanted) if wanted is not None else None):
                for first, last in time_chunks(start, end, step, self.max_points):
                    calls.append((index, config.name, promql, first, last, step))
        answers = self._parallel(calls)
        results: list[tuple[int, Series]] = [(step, {}) for _, step, _, _ in plans]
        for (index, _, _, _, _, _), answer in zip(calls, answers, strict=True):
            first_step, step, points, hosts_wanted = plans[index]
            _merge(results[index][1], answer, self._host_of, hosts_wanted, first_step, step, points, asks[index][0].aggregation)
        return results

    def _promql(self, metric: str, cluster: str, hosts: Sequence[str] | None) -> list[str]:
        template = self.queries[metric]
        used = _placeholders(template)
        if "host" in used:
            if hosts is None:
                raise MetricBackendError(f"Prometheus {self.url}: the query of {metric} needs a host ({{host}}); "
                                         "hosts cannot be discovered through it")
            return [render(template, cluster=cluster, host=host) for host in hosts]
        if "hosts" in used and hosts is not None:
            return [render(template, cluster=cluster, hosts=hosts[i:i + HOSTS_PER_REQUEST])
                    for i in range(0, len(hosts), HOSTS_PER_REQUEST)]
        return [render(template, cluster=cluster)]

    def _host_of(self, labels: Mapping[str, Any]) -> str | None:
        value = labels.get(self.host_label)
        if not isinstance(value, str):
            return None
        if self.host_label_strip and value.endswith(self.host_label_strip):
            value = value[: -len(self.host_label_strip)]
        return value

    def _parallel(self, calls: Sequence[tuple[int, str, str, int, int, int]]) -> list[list[Mapping[str, Any]]]:
        if len(calls) <= 1:
            return [self._query_range(metric, promql, first, last, step) for _, metric, promql, first, last, step in calls]
        with ThreadPoolExecutor(max_workers=min(PARALLEL_REQUESTS, len(calls))) as pool:
            futures = [pool.submit(self._query_range, metric, promql, first, last, step)
                       for _, metric, promql, first, last, step in calls]
            return [f.result() for f in futures]

    def _http(self) -> httpx.Client:
        import httpx

        with self._lock:
            if self._client is None:
                self._client = httpx.Client(timeout=self.timeout, headers=self._headers, auth=self._auth)
            return self._client

    def _query_range(self, metric: str, promql: str, first: int, last: int, step: int) -> list[Mapping[str, Any]]:
        """The matrix of one query_range request (POST form: host alternations make long URLs)."""
        import httpx

        endpoint = f"{self.url}/api/v1/query_range"
        form = {"query": promql, "start": str(first), "end": str(last), "step": str(step), "timeout": f"{self.timeout:g}s"}
        try:
            response = self._http().post(endpoint, data=form)
        except httpx.TimeoutException:
            raise MetricBackendError(f"Prometheus {self.url} did not answer the query of {metric} within {self.timeout:g} s "
                                     "(the entry's timeout)") from None
        except httpx.HTTPError as exc:
            raise MetricBackendError(f"Prometheus {self.url} cannot be reached: {exc or type(exc).__name__}") from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if isinstance(answer, Mapping) and answer.get("status") == "error":
            kind = answer.get("errorType")
            text = f"{kind}: {answer.get('error')}" if kind else str(answer.get("error"))
            raise MetricBackendError(f"Prometheus {self.url} refused the query of {metric} ({promql}): {text}")
        if response.status_code != 200:
            body = response.text.strip().replace("\n", " ")[:200]
            raise MetricBackendError(f"Prometheus {self.url} answered HTTP {response.status_code} to the query of {metric}: {body}")
        data = answer.get("data") if isinstance(answer, Mapping) else None
        if not isinstance(data, Mapping) or data.get("resultType") != "matrix" or not isinstance(data.get("result"), list):
            raise MetricBackendError(f"Prometheus {self.url} answered the query of {metric} with something that is not a "
                                     "range query result (is the URL a Prometheus server?)")
        warnings = answer.get("warnings")
        if warnings:
            log.warning("Prometheus %s: query of %s: %s", self.url, metric, "; ".join(map(str, warnings)))
        return [r for r in data["result"] if isinstance(r, Mapping)]


def _merge(into: Series, result: Sequence[Mapping[str, Any]], host_of: Callable[[Mapping[str, Any]], str | None],
           wanted: set[str] | None, start: int, step: int, points: int, aggregation: str) -> None:
    """Put one answer's series on the grid, combining several series of one host by ``aggregation``."""
    counts: dict[str, list[int]] = {}
    for series in result:
        host = host_of(series.get("metric") or {})
        if host is None or (wanted is not None and host not in wanted):
            continue
        data = into.get(host)
        if data is None:
            data = into[host] = [None] * points
        count = counts.setdefault(host, [0] * points)
        for pair in series.get("values") or ():
            try:
                ts, raw = pair
                index = round((float(ts) - start) / step)
            except (TypeError, ValueError):
                continue
            value = _value(raw)
            if value is None or not 0 <= index < points:
                continue
            previous = data[index]
            if count[index] and previous is not None:
                # a running mean when averaging, a sum otherwise
                data[index] = previous + (value - previous) / (count[index] + 1) if aggregation == "avg" else previous + value
            else:
                data[index] = value
            count[index] += 1


def _node_metric(config: MetricConfig, step: int, series: Sequence[tuple[str, list[float | None]]]) -> dict[str, Any] | None:
    """The JobData entry of one metric at node scope; None when no host has data."""
    if not series:
        return None
    out: dict[str, Any] = {
        "unit": config.unit.to_dict(),
        "timestep": step,
        "series": [{"hostname": host, "statistics": series_statistics(data), "data": data} for host, data in series],
    }
    if len(out["series"]) >= STATISTICS_SERIES_MIN:
        out["statisticsSeries"] = statistics_series(out["series"])
    return out
