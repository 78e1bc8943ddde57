"""``cc-backend demo generate``: write a realistic demo job archive."""

from __future__ import annotations

from pathlib import Path

import click

from cc_backend.commands.output import emit_object, format_option, progress_bar


@click.group("demo")
def demo_group() -> None:
    """Demo data."""


@demo_group.command("generate")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), required=False)
@click.option("--jobs", type=int, default=None, help="Number of jobs (default 2000, or 100000 with --meta-only).")
@click.option("--seed", type=int, default=1, show_default=True, help="Same seed (and --now) gives the same archive.")
@click.option("--now", type=int, default=None,
              help="End of the 30-day window of start times, epoch seconds (default: fixed by the seed).")
@click.option("--meta-only", is_flag=True, help="Write meta.json only (no metric data): for benchmarks.")
@click.option("--workers", type=int, default=None, help="Processes (the output does not depend on it).")
@format_option
def generate_cmd(directory: Path | None, jobs: int | None, seed: int, now: int | None, meta_only: bool,
                 workers: int | None, fmt: str) -> None:
    """Write a job archive into DIRECTORY (new or empty; default: archive.path of the config).

    Two clusters (a CPU cluster with two processor generations and a GPU cluster), users and
    projects with skewed activity, jobs of every state, metric time series with statistics, job
    scripts of real applications, and some pathological jobs. Then load it with `cc-backend init-db`.
    """
    from cc_backend.commands.common import runtime
    from cc_backend.demo import DEFAULT_JOBS, generate_archive

    root = directory or Path(runtime().config.archive.path)
    if jobs is None:
        jobs = 100_000 if meta_only else DEFAULT_JOBS
    bar = progress_bar("demo", total=jobs)
    summary = generate_archive(root, seed=seed, jobs=jobs, meta_only=meta_only, now=now, workers=workers,
                               progress=bar.update if bar is not None else None)
    if bar is not None:
        bar.close()
    if fmt == "json":
        emit_object({k: (str(v) if isinstance(v, Path) else v) for k, v in summary.__dict__.items()}, fmt)
        return
    click.echo(f"wrote {summary.jobs:,} jobs ({summary.files_written:,} files, "
               f"{summary.bytes_written / 1e6:,.1f} MB) to {summary.root} in {summary.seconds:.1f} s")
    click.echo("clusters: " + ", ".join(f"{c} {n:,}" for c, n in sorted(summary.clusters.items())))
    click.echo(f"users: {summary.users}, projects: {summary.projects}")
    click.echo("states: " + ", ".join(f"{s} {n:,}" for s, n in sorted(summary.states.items(), key=lambda x: -x[1])))
