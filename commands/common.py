"""Helpers shared by the commands: the Runtime of the current invocation, the job a command names."""

from __future__ import annotations

from typing import Any

import click

from cc_backend.runtime import Runtime


def runtime() -> Runtime:
    """The Runtime the root group created (config, database, archive)."""
    obj = click.get_current_context().find_root().obj
    if not isinstance(obj, Runtime):  # a command invoked directly, e.g. from a test
        obj = Runtime()
        click.get_current_context().find_root().obj = obj
    return obj


def select_job(rt: Runtime, db_id: int | None, job_id: int | None, cluster: str | None, start_time: int | None, *,
               argument: str) -> dict[str, Any]:
    """The job of a command's database-id ``argument`` or its --job-id/--cluster/--start-time (the newest match)."""
    from cc_backend.errors import InvalidInput, NotFound
    from cc_backend.jobs.query import find_jobs, get_job

    if db_id is not None and job_id is not None:
        raise InvalidInput(f"give either {argument} or --job-id, not both", field=argument)
    if db_id is not None:
        return get_job(rt.engine, db_id)
    if job_id is None:
        raise InvalidInput(f"give the job's database id {argument}, or --job-id and --cluster", field=argument)
    if not cluster:
        raise InvalidInput("--job-id needs --cluster", field="cluster")
    found = find_jobs(rt.engine, job_id, cluster, start_time)
    if not found:
        raise NotFound(f"no job with jobId {job_id} on {cluster}"
                       + (f" started at {start_time}" if start_time is not None else ""), field="job-id")
    return found[0]
