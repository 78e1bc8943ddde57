"""``cc-backend report``: the efficiency report of one job, as text or JSON."""

from __future__ import annotations

import click

from cc_backend.commands.common import runtime, select_job


@click.command("report")
@click.argument("db_id", metavar="[JOB]", type=int, required=False)
@click.option("--job-id", type=int, default=None, help="Batch-system job id instead of the database id JOB.")
@click.option("--cluster", default=None, help="Cluster of --job-id.")
@click.option("--start-time", type=int, default=None, help="Start time (epoch s) of --job-id; default: the newest.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Plain text for people, JSON (the REST endpoint's body) for scripts.")
def report_cmd(db_id: int | None, job_id: int | None, cluster: str | None, start_time: int | None, fmt: str) -> None:
    """How well one job used its allocation: CPU load, memory, flops, bandwidth, GPUs, balance over nodes.

    JOB is the database id (the `id` column of `jobs list`); or give --job-id and --cluster (and
    --start-time when the batch system reused the id). Exit status: 0 printed, 2 bad arguments,
    3 no such job. See docs/report.md for what each check means.
    """
    from cc_backend.jobs.report import render_report_text, runtime_report

    rt = runtime()
    job = select_job(rt, db_id, job_id, cluster, start_time, argument="JOB")
    report = runtime_report(rt, job)
    if fmt == "json":
        from cc_backend.commands.output import emit_object

        emit_object(report, fmt)
    else:
        click.echo(render_report_text(report), nl=False)

