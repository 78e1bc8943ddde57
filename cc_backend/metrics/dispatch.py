"""Which metric backend serves which (sub)cluster, and the core's entry points to live metric data.

Upstream's ``metric-store-external`` lookup: an entry whose scope is ``"<cluster>-<subcluster>"``,
else ``"<cluster>"``, else ``"*"``, else the built-in store; without one there is no data and a
:class:`~cc_backend.metrics.repository.MetricBackendError` says so.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cc_backend.errors import NotFound
from cc_backend.metrics.repository import JobData, MetricBackendError, MetricRepository

if TYPE_CHECKING:
    from cc_backend.archive.cluster import ClusterRegistry
    from cc_backend.config import Config

#: The kind of an external entry that names none.
DEFAULT_KIND = "cc-metric-store"


class MetricDispatch:
    """Picks the repository per (sub)cluster; ``builtin_store`` is a store or a callable returning one (or None).

    ``registry`` may be the cluster registry or a callable returning the current one. Repositories
    are created on first use and kept.
    """

    def __init__(self, registry: ClusterRegistry | Callable[[], ClusterRegistry], config: Config | Any,
                 builtin_store: Any = None) -> None:
        self._registry = registry
        # a Config, or just its metric-store-external entries
        entries: Any = config.metric_store_external if hasattr(config, "metric_store_external") else config
        self.entries = {entry.scope: entry for entry in entries or ()}
        self._builtin = builtin_store
        self._repositories: dict[str, MetricRepository] = {}
        self._builtin_repository: tuple[int, MetricRepository] | None = None
        self._lock = threading.Lock()

    @property
    def registry(self) -> ClusterRegistry:
        return self._registry() if callable(self._registry) else self._registry

    def builtin_store(self) -> Any:
        store = self._builtin
        if store is not None and not hasattr(store, "query") and callable(store):
            store = store()
        return store

    # --- lookup -------------------------------------------------------------------------------------

    def repository_for(self, cluster: str, subcluster: str | None = None) -> MetricRepository:
        """The repository of ``cluster``/``subcluster`` by upstream's lookup order."""
        keys = ([f"{cluster}-{subcluster}"] if subcluster else []) + [cluster, "*"]
        for key in keys:
            entry = self.entries.get(key)
            if entry is not None:
                with self._lock:
                    repository = self._repositories.get(key)
                    if repository is None:
                        repository = self._repositories[key] = self._external(entry)
                return repository
        store = self.builtin_store()
        if store is None:
            raise MetricBackendError(f"no metric store for cluster {cluster}"
                                     + (f" (subcluster {subcluster})" if subcluster else ""))
        with self._lock:
            if self._builtin_repository is None or self._builtin_repository[0] != id(store):
                from cc_backend.metrics.ccms import builtin_repository

                self._builtin_repository = (id(store), builtin_repository(self._registry, store))
            return self._builtin_repository[1]

    def _external(self, entry: Any) -> MetricRepository:
        kind = getattr(entry, "kind", None) or DEFAULT_KIND
        if kind == "prometheus":
            from cc_backend.metrics.prometheus import PrometheusRepository

            return PrometheusRepository.from_config(entry, self._registry)
        if kind != DEFAULT_KIND:
            raise MetricBackendError(f"metric-store-external entry {entry.scope!r}: unknown kind {kind!r}")
        from cc_backend.metrics.ccms import external_repository

        return external_repository(self._registry, entry.url, entry.token or "", entry.timeout.total_seconds())

    def _subcluster_of_host(self, cluster: str, host: str) -> str:
        try:
            return self.registry.assign_subcluster(cluster, host).name
        except NotFound:
            return ""

    def _by_repository(self, cluster: str, hosts: Sequence[str]) -> list[tuple[MetricRepository, list[str]]]:
        """``hosts`` grouped by the repository of their subcluster (hosts in none use the cluster's)."""
        prefix = f"{cluster}-"
        if not any(scope.startswith(prefix) for scope in self.entries):
            # no entry for a subcluster of this cluster: every host has the cluster's repository (no lookups)
            return [(self.repository_for(cluster), list(hosts))] if hosts else []
        groups: dict[int, tuple[MetricRepository, list[str]]] = {}
        for host in hosts:
            repository = self.repository_for(cluster, self._subcluster_of_host(cluster, host) or None)
            groups.setdefault(id(repository), (repository, []))[1].append(host)
        return list(groups.values())

    # --- the core's entry points --------------------------------------------------------------------

    def job_repository(self, job: Mapping[str, Any]) -> MetricRepository:
        return self.repository_for(job["cluster"], job.get("subCluster") or None)

    def load_data(self, job: Mapping[str, Any], metrics: Sequence[str] | None = None,
                  scopes: Sequence[str] | None = None, resolution: int = 0) -> JobData:
        return self.job_repository(job).load_data(job, metrics, scopes or ["node"], resolution)

    def load_stats(self, job: Mapping[str, Any], metrics: Sequence[str] | None = None) -> dict[str, dict[str, dict[str, float]]]:
        return self.job_repository(job).load_stats(job, metrics)

    def load_node_data(self, cluster: str, metrics: Sequence[str] | None, hosts: Sequence[str] | None,
                       scopes: Sequence[str] | None, start: int, end: int, resolution: int = 0) -> dict[str, JobData]:
        scopes = list(scopes or ["node"])
        if hosts is None:
            return self.repository_for(cluster).load_node_data(cluster, metrics, None, scopes, start, end, resolution)
        out: dict[str, JobData] = {}
        for repository, group in self._by_repository(cluster, hosts):
            out.update(repository.load_node_data(cluster, metrics, group, scopes, start, end, resolution))
        return out

    def health(self, cluster: str, hosts: Sequence[str], metrics: Sequence[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for repository, group in self._by_repository(cluster, hosts):
            out.update(repository.health(cluster, group, metrics))
        return out
