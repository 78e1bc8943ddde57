"""Writing a demo archive: worker processes over chunks of jobs, atomic files, the summary."""

from __future__ import annotations

import gzip
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from cc_backend.archive.paths import job_relpath
from cc_backend.demo.base import (
    ARCHIVE_VERSION,
    DEFAULT_JOBS,
    GZIP_LEVEL,
    GZIP_THRESHOLD,
    SEED_STRIDE,
    WINDOW_DAYS,
    default_now,
    mix,
)
from cc_backend.demo.clusters import cluster_configs
from cc_backend.demo.jobs import RNG_STATS, Identity, make_job, world
from cc_backend.demo.series import job_data, model_stats
from cc_backend.errors import InvalidInput
from cc_backend.fileutil import write_atomic


def _write_file(path: str, data: bytes) -> None:
    """Atomic write into a directory this process owns: temporary name, then rename."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    os.rename(tmp, path)


def _mkdirs(root: str, rel: str, made: set[str]) -> str:
    """Create ``root/rel`` (``cluster/lvl1/lvl2/start``), remembering which parents exist already."""
    parent, _, _leaf = rel.rpartition("/")
    if parent not in made:
        lvl1 = parent.rpartition("/")[0]
        if lvl1 not in made:
            os.makedirs(f"{root}/{lvl1}", exist_ok=True)
            made.add(lvl1)
        try:
            os.mkdir(f"{root}/{parent}")
        except FileExistsError:
            pass
        made.add(parent)
    path = f"{root}/{rel}"
    try:
        os.mkdir(path)
    except FileExistsError:
        pass
    return path


@dataclass
class _ChunkResult:
    clusters: Counter[str] = field(default_factory=Counter)
    states: Counter[tuple[str, str]] = field(default_factory=Counter)
    subclusters: Counter[str] = field(default_factory=Counter)
    users: set[str] = field(default_factory=set)
    projects: set[str] = field(default_factory=set)
    bytes: int = 0
    files: int = 0
    jobs: int = 0


def _run_chunk(args: tuple[str, int, int, int, bool, int, int]) -> _ChunkResult:
    root, seed, n_jobs, now, meta_only, lo, hi = args
    w = world(seed, n_jobs, now)
    res = _ChunkResult()
    made: set[str] = set()
    idents: dict[int, Identity] = {}
    dumps = orjson.dumps
    for i in range(lo, hi):
        job = make_job(w, i, idents)
        assert job is not None  # only live jobs can be refused
        meta = job.meta
        srng = RNG_STATS
        srng.seed(mix(seed, 3, i))
        if meta_only:
            meta["statistics"] = model_stats(job, srng)
            data_doc = None
        else:
            data_doc, meta["statistics"] = job_data(job, srng)
        rel = job_relpath(job.cluster, meta["jobId"], meta["startTime"])
        path = _mkdirs(root, rel, made)
        if data_doc is not None:  # data first: a job whose meta.json exists is complete
            raw = dumps(data_doc)
            if len(raw) > GZIP_THRESHOLD:
                raw = gzip.compress(raw, compresslevel=GZIP_LEVEL, mtime=0)
                _write_file(path + "/data.json.gz", raw)
            else:
                _write_file(path + "/data.json", raw)
            res.bytes += len(raw)
            res.files += 1
        blob = dumps(meta)
        _write_file(path + "/meta.json", blob)
        res.bytes += len(blob)
        res.files += 1
        res.clusters[job.cluster] += 1
        res.states[(job.cluster, job.state)] += 1
        res.subclusters[f"{job.cluster}/{job.sc.name}"] += 1
        res.users.add(meta["user"])
        res.projects.add(meta["project"])
        res.jobs += 1
    return res


@dataclass
class DemoSummary:
    """What ``generate_archive`` wrote."""

    root: Path
    seed: int
    now: int
    meta_only: bool
    jobs: int
    #: jobs per cluster
    clusters: dict[str, int]
    #: jobs per job state (all clusters)
    states: dict[str, int]
    #: jobs per cluster and job state
    cluster_states: dict[str, dict[str, int]]
    #: jobs per ``cluster/subCluster``
    subclusters: dict[str, int]
    #: distinct users / projects that own at least one job
    users: int
    projects: int
    #: bytes and files written (version.txt, cluster.json, meta.json, data.json[.gz])
    bytes_written: int
    files_written: int
    seconds: float = 0.0


def _check_root(root: Path) -> None:
    if root.exists():
        if not root.is_dir():
            raise InvalidInput(f"{root} exists and is not a directory", field="root")
        # An archive freshly made by `cc-backend init` holds only version.txt ("3"): that counts as empty.
        entries = [e.name for e in os.scandir(root) if not e.name.startswith(".")]
        fresh_archive = entries == ["version.txt"] and (root / "version.txt").read_text().strip() == "3"
        if entries and not fresh_archive:
            raise InvalidInput(f"{root} is not empty: the demo archive needs a new or empty directory", field="root")
    else:
        root.mkdir(parents=True)


def generate_archive(
    root: str | os.PathLike[str],
    *,
    seed: int = 1,
    jobs: int = DEFAULT_JOBS,
    meta_only: bool = False,
    progress: Callable[[int], None] | None = None,
    now: int | None = None,
    workers: int | None = None,
) -> DemoSummary:
    """Write a demo job archive (format version 3) with ``jobs`` jobs into the new or empty directory ``root``.

    ``seed`` selects the archive (same seed, jobs and now => byte-identical files); ``now`` (epoch seconds)
    is the end of the 30-day window of start times, by default ``default_now(seed)``.  ``meta_only`` writes
    only ``meta.json`` (with statistics) per job.  ``progress`` is called with the number of jobs finished
    since its previous call (the calls add up to ``jobs``; fits ``tqdm.update``).  ``workers`` processes
    (default: one more than the CPUs available, at most 8) share the work; the output does not depend on it.
    """
    t0 = time.perf_counter()
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 0:
        raise InvalidInput(f"jobs must be a non-negative integer, not {jobs!r}", field="jobs")
    if jobs >= SEED_STRIDE // 4:
        raise InvalidInput(f"jobs must be below {SEED_STRIDE // 4}", field="jobs")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidInput(f"seed must be a non-negative integer, not {seed!r}", field="seed")
    if now is None:
        now = default_now(seed)
    if isinstance(now, bool) or not isinstance(now, int) or now < (WINDOW_DAYS + 2) * 86400:
        raise InvalidInput(f"now must be an epoch time in seconds, not {now!r}", field="now")
    root_path = Path(root)
    _check_root(root_path)
    root_str = os.fspath(root_path.resolve())

    written = 0
    files = 0
    version = f"{ARCHIVE_VERSION}\n".encode()
    write_atomic(root_path / "version.txt", version)
    written += len(version)
    files += 1
    for name, doc in cluster_configs().items():
        blob = orjson.dumps(doc, option=orjson.OPT_INDENT_2)
        write_atomic(root_path / name / "cluster.json", blob)
        written += len(blob)
        files += 1

    chunk = 1000 if meta_only else 10
    tasks = [(root_str, seed, jobs, now, meta_only, lo, min(jobs, lo + chunk)) for lo in range(0, jobs, chunk)]
    if workers is None:
        try:
            cpus = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - not on Linux
            cpus = os.cpu_count() or 1
        # one more than CPUs: ext4 metadata work blocks now and then, an extra process keeps the CPUs busy
        workers = max(1, min(8, cpus + 1))
    workers = max(1, min(int(workers), len(tasks) or 1))

    total = _ChunkResult()

    def merge(r: _ChunkResult) -> None:
        total.clusters.update(r.clusters)
        total.states.update(r.states)
        total.subclusters.update(r.subclusters)
        total.users |= r.users
        total.projects |= r.projects
        total.bytes += r.bytes
        total.files += r.files
        total.jobs += r.jobs
        if progress is not None:
            progress(r.jobs)

    if workers == 1:
        for task in tasks:
            merge(_run_chunk(task))
    else:
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
        with ctx.Pool(workers) as pool:
            for r in pool.imap_unordered(_run_chunk, tasks):
                merge(r)

    states: Counter[str] = Counter()
    cluster_states: dict[str, dict[str, int]] = {}
    for (cl, st), cnt in sorted(total.states.items()):
        states[st] += cnt
        cluster_states.setdefault(cl, {})[st] = cnt
    return DemoSummary(
        root=root_path,
        seed=seed,
        now=now,
        meta_only=meta_only,
        jobs=total.jobs,
        clusters=dict(sorted(total.clusters.items())),
        states=dict(sorted(states.items())),
        cluster_states=cluster_states,
        subclusters=dict(sorted(total.subclusters.items())),
        users=len(total.users),
        projects=len(total.projects),
        bytes_written=written + total.bytes,
        files_written=files + total.files,
        seconds=time.perf_counter() - t0,
    )
