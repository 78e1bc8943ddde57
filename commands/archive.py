"""``cc-backend archive``: information about the job archive, its validation against the schemas, and archiving a job by hand."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from cc_backend.commands.common import runtime
from cc_backend.commands.output import emit, emit_object, format_option

if TYPE_CHECKING:
    from cc_backend.runtime import Runtime


@click.group("archive")
def archive_group() -> None:
    """Job archive tools."""


@archive_group.command("info")
@format_option
def info_cmd(fmt: str) -> None:
    """Per cluster: number of archived jobs, first and last start time, size on disk."""
    from cc_backend.archive.info import archive_info

    rows = archive_info(runtime().archive.root)
    emit(rows, ["cluster", "jobs", "first_start", "last_start", "megabytes"], fmt)


@archive_group.command("validate")
@click.option("--path", "path", default=None, help="Archive directory (default: archive.path of the config).")
@format_option
def validate_cmd(path: str | None, fmt: str) -> None:
    """Validate version.txt, cluster.json, meta.json and data files against the archive JSON schemas.

    Exits with status 1 if any file is invalid.
    """
    from cc_backend.archive.validate import validate_archive

    root = path or runtime().config.archive.path
    problems = validate_archive(root)
    if problems or fmt != "table":
        emit([{"path": p, "problem": m} for p, m in problems], ["path", "problem"], fmt)
    if problems:
        # Not click's Exit: main() runs click outside standalone mode, where an Exit only returns its code.
        from cc_backend.errors import CCError

        raise CCError(f"{root}: {len(problems)} problem{'s' if len(problems) != 1 else ''}")
    if fmt == "table":
        click.echo(f"{root}: valid")


@archive_group.command("job")
@click.argument("db_id", metavar="[ID]", type=int, required=False)
@click.option("--job-id", type=int, default=None, help="Batch-system job id instead of the database ID.")
@click.option("--cluster", default=None, help="Cluster of --job-id.")
@click.option("--start-time", type=int, default=None, help="Start time (epoch s) of --job-id; default: the newest.")
@format_option
def job_cmd(db_id: int | None, job_id: int | None, cluster: str | None, start_time: int | None, fmt: str) -> None:
    """Archive one stopped job again by hand: load its metric data, write meta.json and data.json, update the database.

    The job is given by its database ID, or by --job-id and --cluster (and --start-time when the id was
    reused). Its metric data comes from the backend that serves its cluster: an external cc-metric-store
    or Prometheus is asked directly. The built-in store lives in the server process; this command reads
    the server's checkpoints and write-ahead log (metric-store.checkpoints.directory) into a store of
    its own, read-only for the server's files. What the server has not written there yet (samples
    accepted in the last moments, or everything without a metric-store section, which disables
    checkpoints) is missing. Exit status: 0 archived, 1 archiving failed (the job is then at
    monitoring status 2), 2 bad arguments, 3 no such job, 4 the job is still running.
    """
    from cc_backend.commands.common import select_job
    from cc_backend.errors import Conflict
    from cc_backend.jobs.archiving import archive_job

    rt = runtime()
    job = select_job(rt, db_id, job_id, cluster, start_time, argument="ID")
    if job["jobState"] == "running":
        raise Conflict(f"job {job['id']} (jobId {job['jobId']} on {job['cluster']}) is still running", field="ID")
    restored = _restore_builtin_store(rt, job)
    result = archive_job(rt.engine, rt.archive, rt.metric_data, job)
    result["restoredFromCheckpoints"] = restored
    if result["ok"]:  # the server's stop hook, when main.enable-job-taggers is set
        result["jobClasses"] = rt.taggers.on_job_archived(job["id"])
    if fmt == "table":
        click.echo(_describe(result))
    elif fmt == "json":
        emit_object(result, fmt)
    else:
        emit([result], list(result), fmt)
    if not result["ok"]:
        from cc_backend.errors import CCError

        raise CCError(f"job {job['id']} was not archived (monitoring status {result['monitoringStatus']}): "
                      f"{result['reason']}")


def _restore_builtin_store(rt: Runtime, job: dict[str, Any]) -> dict[str, Any] | None:
    """Fill this process's built-in store from the server's checkpoints when that store serves the job."""
    dispatch = rt.metric_data
    keys = ([f"{job['cluster']}-{job['subCluster']}"] if job.get("subCluster") else []) + [job["cluster"], "*"]
    if any(key in dispatch.entries for key in keys):
        return None  # an external backend: asked directly
    config = rt.config.metric_store
    if config is None:  # the server keeps no checkpoints without the section: there is nothing to read
        return {"directory": None, "hosts": 0, "files": 0, "walSamples": 0}
    from cc_backend.metricstore.checkpoint import Checkpointer

    restored = Checkpointer(rt.metric_store, config).restore(open_log=False)  # read-only: the server owns the log
    return {"directory": config.checkpoints.directory, "hosts": restored.hosts, "files": restored.files,
            "walSamples": restored.wal.samples}


def _describe(result: dict[str, Any]) -> str:
    lines = [f"job {result['id']} (jobId {result['jobId']} on {result['cluster']}): "
             + ("archived" if result["ok"] else f"NOT archived: {result['reason']}")
             + f", monitoring status {result['monitoringStatus']} [{result['seconds']:.2f} s]"]
    restored = result.get("restoredFromCheckpoints")
    if restored is not None and restored["directory"] is None:
        lines.append("built-in store: no metric-store section in the config, so the server writes no checkpoints "
                     "this command could read")
    elif restored is not None:
        lines.append(f"built-in store restored from {restored['directory']}: {restored['hosts']} hosts, "
                     f"{restored['files']} files, {restored['walSamples']} samples from the write-ahead log")
    if result["ok"]:
        lines.append(f"statistics of {result['statistics']} metrics: {', '.join(result['metrics'])}")
        if result.get("jobClasses"):
            lines.append(f"job classes tagged: {', '.join(result['jobClasses'])}")
        lines.extend(f"wrote {path}" for path in result["files"])
        footprint = ", ".join(f"{k}={v}" for k, v in result["footprint"].items()) or "none"
        lines.append(f"footprint: {footprint}")
        energy = ", ".join(f"{k}={v} kWh" for k, v in result["energyFootprint"].items())
        lines.append(f"energy: {result['energy']} kWh" + (f" ({energy})" if energy else ""))
    return "\n".join(lines)
