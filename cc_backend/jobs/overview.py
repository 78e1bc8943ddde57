"""Aggregates over jobs for the command line (per-cluster overview); GraphQL statistics are jobs/statistics.py."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, func, select

from cc_backend.db.tables import job_table

if TYPE_CHECKING:
    from cc_backend.archive.fs import FileArchive
    from cc_backend.auth.security import Viewer


def jobs_per_cluster(engine: Engine, *, viewer: Viewer | None = None) -> dict[str, dict[str, int]]:
    """``{cluster: {"jobs": n, "running": m}}`` from the database, of the jobs ``viewer`` may see (all for None)."""
    from cc_backend.jobs.query import scope_condition

    J = job_table.c
    stmt = select(J.cluster, func.count(), func.sum((J.job_state == "running").cast(job_table.c.num_nodes.type)))
    scope = scope_condition(viewer)
    if scope is not None:
        stmt = stmt.where(scope)
    stmt = stmt.group_by(J.cluster)
    with engine.connect() as conn:
        return {c: {"jobs": int(n), "running": int(r or 0)} for c, n, r in conn.execute(stmt)}


def cluster_overview(archive: FileArchive, engine: Engine) -> list[dict[str, Any]]:
    """One row per archive cluster: subclusters, node lists, number of metrics and of jobs."""
    counts = jobs_per_cluster(engine)
    rows = []
    for cluster in archive.registry():
        rows.append({
            "cluster": cluster.name,
            "subClusters": ", ".join(sc.name for sc in cluster.sub_clusters),
            "nodes": ", ".join(sc.nodes for sc in cluster.sub_clusters),
            "metrics": len(cluster.metric_config),
            "jobs": counts.get(cluster.name, {}).get("jobs", 0),
            "running": counts.get(cluster.name, {}).get("running", 0),
        })
    return rows
