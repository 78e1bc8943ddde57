"""``cc-backend demo``: write a realistic demo job archive (generate), keep live jobs running on a server (feed), seed running jobs (start-jobs)."""

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


def _job_seconds(value: str) -> tuple[float, float]:
    """``MIN[-MAX]`` minutes (decimals allowed) as seconds."""
    try:
        parts = [float(p) for p in value.split("-")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2) or min(parts) <= 0 or parts[0] > parts[-1]:
        raise click.BadParameter(f"{value!r}: give minutes as MIN or MIN-MAX, e.g. 10-30 or 0.1", param_hint="--job-minutes")
    return parts[0] * 60, parts[-1] * 60


@demo_group.command("feed")
@click.option("--url", required=True, help="Base URL of the server, e.g. http://localhost:8080.")
@click.option("--token", required=True, envvar="CC_FEED_TOKEN",
              help="API token (JWT) of a user with the api role (or the environment variable CC_FEED_TOKEN).")
@click.option("--jobs", type=click.IntRange(0), default=8, show_default=True, help="Jobs kept running.")
@click.option("--interval", type=click.FloatRange(0.1), default=60.0, show_default=True,
              help="Seconds between samples (and between checks for jobs to stop and start).")
@click.option("--job-minutes", default="10-30", show_default=True,
              help="Run time of a job in minutes, MIN or MIN-MAX (decimals allowed, e.g. 0.1 for tests).")
@click.option("--seed", type=int, default=None, help="Same seed, same sequence of jobs (default: random).")
@click.option("--max-nodes", type=click.IntRange(1), default=16, show_default=True, help="Largest job in nodes.")
@click.option("--clusters", default=None, help="Comma-separated clusters to use (default: fritz,alex).")
@click.option("--idle-load/--no-idle-load", default=True, show_default=True,
              help="Write background load for the nodes without a job, so that every node reports.")
@click.option("--fine-scopes/--no-fine-scopes", default=True, show_default=True,
              help="Also write per-hwthread, per-socket and per-GPU samples of jobs with at most 2 nodes.")
@click.option("--node-states", type=click.FloatRange(0), default=300.0, show_default=True,
              help="Seconds between reports of every node's state to /api/nodestate/ (0: none).")
@click.option("--keep-jobs", is_flag=True, help="Leave the running jobs running on exit (default: stop them).")
@click.option("--give-up", type=click.FloatRange(1), default=300.0, show_default=True,
              help="Exit with 1 when the server has not answered for this many seconds.")
def feed_cmd(url: str, token: str, jobs: int, interval: float, job_minutes: str, seed: int | None, max_nodes: int,
             clusters: str | None, idle_load: bool, fine_scopes: bool, node_states: float, keep_jobs: bool,
             give_up: float) -> None:
    """Keep demo jobs running on a server: start, feed metrics, stop.

    Starts jobs of the demo clusters' users and applications through the REST API (start_job), writes
    their metrics every INTERVAL seconds to /api/write in InfluxDB line protocol, from the load models
    of `demo generate`, and stops them after their run time (stop_job), so that the server archives
    them; then starts new ones. Every NODE_STATES seconds it reports each node's state (allocated,
    mixed or idle) to /api/nodestate/. Failed requests are logged and retried. SIGTERM or Ctrl-C stops the
    feeder's jobs and exits; `./startDemo.sh` runs it next to the server.
    """
    import logging
    import signal

    from cc_backend.commands.main import LOGLEVEL_GIVEN
    from cc_backend.demo.feeder import Feeder, FeedOptions

    if not click.get_current_context().find_root().meta.get(LOGLEVEL_GIVEN, True):
        # one line per job started or stopped is what a demo wants to see (--loglevel warn hides them)
        logging.getLogger().setLevel(logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request would drown the feeder's own
    options = FeedOptions(url=url, token=token, jobs=jobs, interval=interval, job_seconds=_job_seconds(job_minutes),
                          seed=seed, max_nodes=max_nodes, idle_load=idle_load, fine_scopes=fine_scopes,
                          stop_jobs_on_exit=not keep_jobs, give_up=give_up, node_states=node_states,
                          clusters=[c.strip() for c in clusters.split(",") if c.strip()] if clusters else None)
    feeder = Feeder(options)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: feeder.stop())
    raise SystemExit(feeder.run())


@demo_group.command("start-jobs")
@click.option("--jobs", type=click.IntRange(0), default=8, show_default=True, help="Number of running jobs.")
@click.option("--now", type=int, default=None, help="The time they run at, epoch seconds (default: now).")
@click.option("--seed", type=int, default=1, show_default=True, help="Same seed (and --now), same jobs.")
@format_option
def start_jobs_cmd(jobs: int, now: int | None, seed: int, fmt: str) -> None:
    """Insert running jobs of the demo clusters into the database, without a server.

    The demo archive holds finished jobs only. For a site that needs running jobs but no live demo
    (tests, screenshots) this adds JOBS of them, started some time before NOW, with monitoring status 1
    and no metric data. `cc-backend demo feed` starts jobs with data instead.
    """
    import time

    from cc_backend.commands.common import runtime
    from cc_backend.demo.live import start_running_jobs

    rt = runtime()
    started = start_running_jobs(rt.engine, rt.archive.registry(), jobs, now=int(time.time()) if now is None else now,
                                 seed=seed)
    if fmt == "json":
        emit_object({"started": [{"id": j["id"], "jobId": j["jobId"], "cluster": j["cluster"]} for j in started]}, fmt)
        return
    click.echo(f"started {len(started)} jobs: " + ", ".join(f"{j['jobId']} ({j['cluster']})" for j in started))
