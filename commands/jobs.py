"""``cc-backend jobs|clusters|tags``: read-only queries over the shared job query module."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import click

from cc_backend.commands.common import runtime
from cc_backend.commands.output import emit, emit_object, format_option

LIST_COLUMNS = ["id", "jobId", "cluster", "subCluster", "user", "project", "jobState", "start", "duration",
                "numNodes", "tags"]


def _fmt_duration(seconds: int) -> str:
    days, rest = divmod(int(seconds), 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return f"{days}d {h:02d}:{m:02d}:{s:02d}" if days else f"{h:02d}:{m:02d}:{s:02d}"


def _table_row(job: dict) -> dict:
    row = dict(job)
    row["start"] = time.strftime("%Y-%m-%d %H:%M", time.localtime(job["startTime"]))
    row["duration"] = _fmt_duration(job["duration"])
    row["tags"] = ",".join(f"{t['type']}:{t['name']}" for t in job["tags"])
    return row


def job_filter_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The job filter's options (those of `jobs list`), for every command that selects jobs."""
    for option in reversed(_FILTER_OPTIONS):
        command = option(command)
    return command


_FILTER_OPTIONS = [
    click.option("--cluster", help="Cluster name (`abc*`, `*abc`, `*abc*` match prefix, suffix, substring)."),
    click.option("--subcluster", help="Subcluster name (same patterns)."),
    click.option("--partition", help="Partition (same patterns)."),
    click.option("--user", help="User name (same patterns)."),
    click.option("--project", help="Project (same patterns)."),
    click.option("--job-name", help="Job name from the job's metadata (same patterns)."),
    click.option("--job-id", help="Batch-system job id (same patterns)."),
    click.option("--array-job-id", type=int, help="Array job id."),
    click.option("--state", "states", multiple=True, help="Job state; repeat for several (running, completed, ...)."),
    click.option("--start-time", help="last6h, last24h, last7d, last30d, or FROM..TO (epoch or ISO date)."),
    click.option("--duration", help="Range A..B in seconds or with s/m/h/d, e.g. 1h..12h."),
    click.option("--nodes", help="Range of node counts, e.g. 2..16 or 64.."),
    click.option("--hwthreads", help="Range of hardware-thread counts."),
    click.option("--accelerators", help="Range of accelerator counts."),
    click.option("--energy", help="Range of energy in kWh."),
    click.option("--tag", "tags", multiple=True, help="Tag id or type:name; repeat for several (any matches)."),
    click.option("--node", help="Hostname the job ran on (same patterns)."),
    click.option("--shared", type=click.Choice(["none", "single_user", "multi_user"]),
                 help="How the job shared its nodes."),
    click.option("--schedule", type=click.Choice(["interactive", "batch"]),
                 help="Interactive jobs (job name 'interactive') or batch jobs."),
    click.option("--metric", "metrics", multiple=True,
                 help="Footprint range NAME=A..B, e.g. flops_any=0..10 (average) or mem_used_max=100.."),
    click.option("--filter-json", help="A GraphQL JobFilter object (or list of them) as JSON, combined with the options."),
]


def filters_from_options(rt: Any, *, cluster, subcluster, partition, user, project, job_name, job_id, array_job_id,
                         states, start_time, duration, nodes, hwthreads, accelerators, energy, tags, node, shared,
                         schedule, metrics, filter_json) -> list[Any]:
    """The JobFilters of job_filter_options' values (the text options ANDed, plus --filter-json's)."""
    import orjson

    from cc_backend.jobs import filter as jf
    from cc_backend.jobs.tags import resolve_tag_ids

    options = {"cluster": cluster, "subcluster": subcluster, "partition": partition, "user": user,
               "project": project, "job-name": job_name, "job-id": job_id, "node": node, "state": states,
               "array-job-id": None if array_job_id is None else str(array_job_id), "start-time": start_time,
               "duration": duration, "nodes": nodes, "hwthreads": hwthreads, "accelerators": accelerators,
               "energy": energy, "tag": tags, "shared": shared, "schedule": schedule, "metric": metrics}
    flt = jf.JobFilter.from_text_options(options, tag_ids=lambda specs: resolve_tag_ids(rt.engine, specs))
    extra = []
    if filter_json:
        try:
            extra_raw = orjson.loads(filter_json)
        except orjson.JSONDecodeError as exc:
            raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--filter-json") from None
        extra = jf.parse_filters(extra_raw)
    return [flt] + extra


@click.group("jobs")
def jobs_group() -> None:
    """List and show jobs."""


@jobs_group.command("list")
@job_filter_options
@click.option("--sort", default="startTime:desc", show_default=True,
              help="Column or footprint value (foot.flops_any_avg), with :asc or :desc.")
@click.option("--page", type=int, default=1, show_default=True, help="Page number, starting at 1.")
@click.option("--items-per-page", type=int, default=50, show_default=True, help="-1 for all.")
@click.option("--count", "only_count", is_flag=True, help="Print only the number of matching jobs.")
@format_option
def list_cmd(sort, page, items_per_page, only_count, fmt, **filter_options) -> None:
    """List jobs matching every given condition, newest first by default."""
    from cc_backend.jobs import filter as jf
    from cc_backend.jobs.query import count_jobs, list_jobs

    rt = runtime()
    filters = filters_from_options(rt, **filter_options)
    if only_count:
        n = count_jobs(rt.engine, filters)
        emit_object({"count": n}, fmt) if fmt != "table" else click.echo(n)
        return
    jobs = list_jobs(rt.engine, filters, order=jf.parse_sort(sort),
                     page=jf.parse_page({"itemsPerPage": items_per_page, "page": page}))
    if fmt == "table":
        emit([_table_row(j) for j in jobs], LIST_COLUMNS, fmt)
    else:
        emit(jobs, [c for c in jobs[0] if c not in ("resources", "metaData")] if jobs else LIST_COLUMNS,
             fmt, json_value=jobs)


@jobs_group.command("show")
@click.argument("job_ref")
@click.option("--cluster", help="Cluster, when JOB_REF is a batch-system job id.")
@click.option("--start-time", type=int, help="Start time, to pick one of several jobs with the same id.")
@click.option("--db-id", is_flag=True, help="JOB_REF is the database id (the `id` column of `jobs list`).")
@format_option
def show_cmd(job_ref, cluster, start_time, db_id, fmt) -> None:
    """Show one job by batch-system job id (newest match) or by database id."""
    from cc_backend.errors import InvalidInput, NotFound
    from cc_backend.jobs.query import find_jobs, get_job

    rt = runtime()
    if not job_ref.isdigit():
        raise InvalidInput(f"job id {job_ref!r} is not a number", field="JOB_REF")
    if db_id:
        job = get_job(rt.engine, int(job_ref))
    else:
        found = find_jobs(rt.engine, int(job_ref), cluster, start_time)
        if not found:
            raise NotFound(f"no job {job_ref}" + (f" on cluster {cluster}" if cluster else ""), field="JOB_REF")
        if len(found) > 1:
            click.echo(f"note: {len(found)} jobs have id {job_ref}; showing the newest "
                       "(use --cluster/--start-time to choose)", err=True)
        job = found[0]
    if fmt == "table":
        row = _table_row(job)
        row["resources"] = ", ".join(r["hostname"] for r in job["resources"])
        row["metaData"] = ", ".join(k for k in job["metaData"])
        emit_object({k: row[k] for k in job if k not in ("tags",)} | {"tags": row["tags"]}, fmt)
    else:
        emit_object(job, fmt) if fmt == "json" else emit([job], list(job), fmt)


@click.group("clusters")
def clusters_group() -> None:
    """Clusters of the job archive."""


@clusters_group.command("list")
@format_option
def clusters_list_cmd(fmt) -> None:
    """List clusters with their subclusters, node lists and job counts."""
    from cc_backend.jobs.overview import cluster_overview

    rt = runtime()
    rows = cluster_overview(rt.archive, rt.engine)
    emit(rows, ["cluster", "subClusters", "nodes", "metrics", "jobs"], fmt)


@click.group("tags")
def tags_group() -> None:
    """Job tags."""


@tags_group.command("list")
@format_option
def tags_list_cmd(fmt) -> None:
    """List tags with their scope and the number of jobs carrying them."""
    from cc_backend.jobs.tags import list_tags

    rows = list_tags(runtime().engine)
    emit(rows, ["id", "type", "name", "scope", "count"], fmt)


@tags_group.command("apply")
@click.option("--tagger", "names", multiple=True, type=click.Choice(["AppTagger", "JobClassTagger"]),
              help="Run only this tagger; repeat for both [default: both, AppTagger first].")
@job_filter_options
@format_option
def tags_apply_cmd(names, fmt, **filter_options) -> None:
    """Detect applications and job classes of existing jobs (all jobs, or those the filter options select).

    AppTagger tags app:<name> from the job script; JobClassTagger tags jobClass:<tag> and sets the
    job's message from the rules' hints (archived jobs only). Tags a job already has are kept. Rules
    come from ./var/tagger (see docs/taggers.md). A progress bar runs on a terminal; a summary follows.
    """
    from cc_backend.commands.actions import describe_tag_runs, run_taggers

    rt = runtime()
    summaries = run_taggers(rt, names or None, filters_from_options(rt, **filter_options))
    if fmt == "table":
        click.echo(describe_tag_runs(summaries))
    else:
        rows = [{**run, "tags": ",".join(f"{t}={n}" for t, n in run["tags"].items())} for run in summaries]
        emit(rows, ["tagger", "jobs", "tagged", "skipped", "failed", "tags", "seconds"], fmt, json_value=summaries)
