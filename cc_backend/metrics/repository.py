"""The metric-data interface of running jobs and nodes, and which backend serves which (sub)cluster.

Archived jobs are read from the job archive (:mod:`cc_backend.metrics.jobdata`); everything live
(running jobs, node metrics, node health, and the data archiving takes from a stopped job) comes
from a :class:`MetricRepository`: the built-in metric store, an external cc-metric-store or a
Prometheus server, chosen per cluster and subcluster by upstream's ``metric-store-external`` rules.

Shapes are the job archive's (data.json) so that the front ends need not know where data came from:

* ``JobData``: ``{metric: {scope: {"unit": {"base", "prefix"?}, "timestep": s, "series": [{"hostname",
  "id"?, "data": [float | None], "statistics": {"min", "avg", "max"}}], "statisticsSeries"?}}}``;
  missing samples are None (NaN never leaves a repository).
* ``NodeHealth``: ``{"state": "full" | "partial" | "failed", "metrics": {"missing": [...], "degraded": [...]}}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from cc_backend.errors import CCError, NotFound

if TYPE_CHECKING:
    from cc_backend.archive.cluster import ClusterRegistry, SubCluster

JobData = dict[str, dict[str, dict[str, Any]]]


class MetricRepository(Protocol):
    """What the core needs from a metric backend. Times are Unix seconds; ``job`` is the core's job dict."""

    def load_data(self, job: Mapping[str, Any], metrics: Sequence[str] | None, scopes: Sequence[str],
                  resolution: int = 0) -> JobData:
        """The job's series between its start and now (running) or its stop (being archived).

        ``metrics`` None means every metric of the job's subcluster; ``resolution`` 0 the native
        timestep, else LTTB down to about that many seconds per sample. Metrics the backend does not
        have are left out, not errors; an unreachable backend raises :class:`MetricBackendError`.
        """
        ...

    def load_stats(self, job: Mapping[str, Any], metrics: Sequence[str] | None) -> dict[str, dict[str, dict[str, float]]]:
        """``{metric: {hostname: {"min", "avg", "max"}}}`` at node scope over the job's time so far."""
        ...

    def load_node_data(self, cluster: str, metrics: Sequence[str] | None, hosts: Sequence[str] | None,
                       scopes: Sequence[str], start: int, end: int, resolution: int = 0) -> dict[str, JobData]:
        """``{hostname: JobData}`` of ``hosts`` (None: every host the backend knows in ``cluster``)."""
        ...

    def health(self, cluster: str, hosts: Sequence[str], metrics: Sequence[str]) -> dict[str, dict[str, Any]]:
        """``{hostname: NodeHealth}``: a metric with no data is missing, one older than 5 timesteps degraded."""
        ...


class MetricBackendError(CCError):
    """A metric backend could not answer (unreachable, refused, malformed answer); the message says which."""

    status = 502


def job_range(job: Mapping[str, Any], now: float) -> tuple[int, int]:
    """``(start, end)`` of a job's data: up to ``now`` while it runs, else up to its stop."""
    start = int(job.get("startTime") or 0)
    if job.get("jobState") == "running":
        return start, max(start, int(now))
    return start, start + int(job.get("duration") or 0)


def job_subcluster(registry: ClusterRegistry, job: Mapping[str, Any]) -> SubCluster:
    """The job's subcluster; NotFound (field ``subCluster``) when its cluster or subcluster is unknown,
    for then there is no topology or metric list to build a query from."""
    resources = job.get("resources") or [{}]
    try:
        return registry.job_subcluster(job.get("cluster"), job.get("subCluster"), resources[0].get("hostname"))
    except Exception as exc:  # noqa: BLE001 - whatever the lookup raised, the job has no usable subcluster
        raise NotFound(f"job {job.get('id')}: {getattr(exc, 'message', exc)}", field="subCluster") from None
