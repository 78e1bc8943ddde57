"""What the terminal UI's screens ask of their data: one small interface, served locally or by a remote server."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from cc_backend.errors import CCError

if TYPE_CHECKING:
    from cc_backend.archive.cluster import Cluster
    from cc_backend.jobs.filter import JobFilter, OrderBy


class SourceError(CCError):
    """The source cannot answer: unreachable server, rejected or expired token, wrong schema version.

    ``message`` is a sentence for the user (no traceback); the screens show it as it is.
    """

    status = 503


@dataclass(frozen=True)
class JobPage:
    """One page of jobs in the core's job shape (:func:`cc_backend.jobs.model.row_to_job`)."""

    jobs: list[dict[str, Any]]
    has_next: bool


@dataclass(frozen=True)
class Identity:
    """Who the source acts as: the screens offer only what the roles allow (the server checks again)."""

    username: str
    roles: tuple[str, ...] = ()
    projects: tuple[str, ...] = ()
    #: Shown in the header: "local: ./var/job.db" or "https://host as alice".
    where: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


GroupBy = Literal["USER", "PROJECT"]


class JobSource(Protocol):
    """The data of every screen. Jobs are the core's job dicts (``jobState``, ``numHwthreads``, ``footprint``
    as ``{"flops_any_avg": 1.2}``, ``tags`` as ``[{id, type, name, scope}]``); metric data and statistics
    have the GraphQL API's shapes. Errors are :class:`SourceError` (connection, authentication) or the
    core's :class:`CCError` (``InvalidInput``, ``NotFound``, ``Forbidden``) with a message naming the field.
    """

    identity: Identity

    def connect(self) -> None:
        """Check the source answers (schema version, server reachable, token accepted); SourceError if not."""

    def close(self) -> None: ...

    def clusters(self) -> list[Cluster]:
        """The clusters with their subclusters and resolved metric configs (thresholds, units, footprint)."""

    def resolve_tags(self, specs: list[str]) -> list[int]:
        """Tag ids of ``type:name`` specs (or ids as text) for the filter's ``tag:`` option."""

    def jobs(self, flt: JobFilter | None, order: OrderBy | None, page: int, per_page: int) -> JobPage:
        """Page ``page`` (from 1) of the matching jobs the identity may see."""

    def count_jobs(self, flt: JobFilter | None) -> int: ...

    def job(self, db_id: int) -> dict[str, Any]:
        """One job with metaData (jobScript, slurmInfo...) and tags; NotFound when it is not visible."""

    def job_metrics(self, job: dict[str, Any], metrics: list[str] | None, scopes: list[str] | None,
                    resolution: int | None) -> list[dict[str, Any]]:
        """GraphQL ``jobMetrics``: ``[{name, scope, metric: {unit, timestep, series: [{hostname, id, data,
        statistics}], statisticsSeries}}]`` resampled to ``resolution`` seconds per sample (None: the site's
        default, 0: the native data)."""

    def job_report(self, db_id: int) -> dict[str, Any]:
        """The job's efficiency report (:func:`cc_backend.jobs.report.efficiency_report`'s dict: checks,
        notes, summary); NotFound when the job is not visible."""

    def job_stats(self, job: dict[str, Any], metrics: list[str] | None) -> list[dict[str, Any]]:
        """GraphQL ``jobStats``: ``[{name, data: {min, avg, max}}]`` over the whole job."""

    def scoped_job_stats(self, job: dict[str, Any], metrics: list[str] | None,
                         scopes: list[str] | None) -> list[dict[str, Any]]:
        """GraphQL ``scopedJobStats``: ``[{name, scope, stats: [{hostname, id, data: {min, avg, max}}]}]``."""

    def group_statistics(self, group_by: GroupBy, flt: JobFilter | None) -> list[dict[str, Any]]:
        """GraphQL ``jobsStatistics(groupBy:)`` totals per user or project: ``[{id, name, totalJobs,
        runningJobs, totalUsers, totalWalltime, totalNodes, totalNodeHours, totalCores, totalCoreHours,
        totalAccs, totalAccHours}]`` (the same numbers the web UI and the API show)."""

    def tags(self) -> list[dict[str, Any]]:
        """Tags the identity may read with the number of its visible jobs carrying each: ``[{id, type, name,
        scope, count}]``."""

    def nodes(self, cluster: str) -> list[dict[str, Any]]:
        """GraphQL ``nodes`` items of a cluster (``hostname, subCluster, schedulerState, healthState,
        jobsRunning, cpusAllocated, memoryAllocated, gpusAllocated``); Forbidden for roles that see no nodes."""

    def add_tag(self, db_id: int, tag_type: str, tag_name: str, scope: str) -> list[dict[str, Any]]:
        """Attach the tag (created when missing) to the job; returns the job's tags afterwards."""

    def remove_tag(self, db_id: int, tag_id: int) -> list[dict[str, Any]]:
        """Detach the tag from the job; returns the job's tags afterwards."""
