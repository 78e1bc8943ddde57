"""Running jobs of the live demo: planned on free hosts from the archive's models, as start_job payloads and as metric samples.

``LivePlanner`` draws jobs from the same users, applications and load profiles as the archive generator
(``jobs.make_job`` with a ``LiveStart``), ``start_payload`` turns one into a REST ``start_job`` body, and
``JobSampler`` / ``IdleSampler`` give InfluxDB line-protocol samples of a job's hosts (or of an idle host) at
a point in time from the generator's node, core, socket and GPU models (``series``). ``start_running_jobs``
inserts running jobs straight into a database, for sites without a feeder (tests, screenshots).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import orjson

from cc_backend.demo.base import mix
from cc_backend.demo.clusters import ACC_METRICS, METRICS, SubCluster, make_clusters, metric_names
from cc_backend.demo.jobs import DemoJob, LiveStart, Prof, _World, make_job
from cc_backend.demo.series import (
    _SHAPE,
    _SHAPE_KINDS,
    CORE_LEVEL_METRICS,
    _gpu_model,
    _Model,
    _node_busy,
    _node_model,
    _shape_values,
    core_levels,
    socket_shares,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from cc_backend.archive.cluster import ClusterRegistry

#: Identities (users, applications, job sizes) the live jobs of one planner cycle through.
LIVE_POOL = 10_000
#: Live jobs get jobIds from here on: above every archived job's id (at most ~3,000,000).
LIVE_JOBID_BASE = 9_000_000
#: ``start_running_jobs`` uses this range, so its jobs never collide with a feeder's.
SEEDED_JOBID_BASE = 8_000_000
#: Fine scopes (hwthread, socket, accelerator series) are written for jobs of at most this many nodes.
FINE_SCOPE_NODES = 2

#: Final states of live jobs and their weights (the rest ran to the planned end: completed).
_END_STATES = (("completed", 86.0), ("failed", 7.0), ("cancelled", 5.0), ("out_of_memory", 2.0))


class LivePlanner:
    """Plans running jobs of the demo clusters: a job for a start time and run time on the hosts that are free."""

    def __init__(self, seed: int, now: int, *, max_nodes: int = 16, clusters: Iterable[str] | None = None) -> None:
        self.world = _World(seed, LIVE_POOL, now)
        self.rng = random.Random(mix(seed, 7, 0))
        self.next_index = self.rng.randrange(LIVE_POOL)
        self.max_nodes = max_nodes
        self.clusters = set(clusters) if clusters is not None else set(self.world.clusters)
        self._idents: dict[int, Any] = {}

    def plan(self, start: int, duration: int, busy: set[str]) -> DemoJob | None:
        """A job starting at ``start`` for ``duration`` s (capped at its walltime) on hosts not in ``busy``.

        None when no candidate of the next 200 identities fits (all their clusters' hosts busy).
        """
        for _ in range(200):
            i = self.next_index
            self.next_index = (i + 1) % LIVE_POOL
            job = make_job(self.world, i, self._idents, LiveStart(start, duration, busy, self.max_nodes))
            if job is not None and job.cluster in self.clusters:
                return job
        return None

    def end_state(self, job: DemoJob) -> str:
        """The state the job ends in: timeout when it ran its whole walltime, else mostly completed."""
        if job.duration >= job.meta["walltime"]:
            return "timeout"
        r = self.rng.random() * sum(w for _s, w in _END_STATES)
        for state, weight in _END_STATES:
            r -= weight
            if r < 0:
                return state
        return "completed"


def _hwthreads(job: DemoJob) -> list[int]:
    hwt = job.hwthreads
    return list(range(job.sc.cores)) if isinstance(hwt, orjson.Fragment) else list(hwt)


def start_payload(job: DemoJob, job_id: int) -> dict[str, Any]:
    """The REST ``start_job`` body of ``job`` under ``job_id`` (what a Slurm adapter sends: no statistics or tags)."""
    meta = job.meta
    hwt = _hwthreads(job)
    resources = []
    for res in meta["resources"]:
        one: dict[str, Any] = {"hostname": res["hostname"], "hwthreads": hwt}
        if "accelerators" in res:
            one["accelerators"] = list(res["accelerators"])
        resources.append(one)
    body: dict[str, Any] = {key: meta[key] for key in (
        "user", "project", "cluster", "subCluster", "partition", "numNodes", "numHwthreads", "shared", "smt",
        "walltime", "submitTime", "startTime", "requestedMemory") if key in meta}
    if "numAcc" in meta:
        body["numAcc"] = meta["numAcc"]
    body["jobId"] = job_id
    body["resources"] = resources
    body["metaData"] = dict(meta["metaData"])
    return body


def _noise(rng: random.Random) -> float:
    e = rng.gauss(0.0, 1.0)
    return -3.0 if e < -3.0 else (3.0 if e > 3.0 else e)


def _value(model: _Model, shape: float, e: float, factor: float = 1.0) -> float:
    """One sample of the generator's load model: lo + span * shape * (1 + sigma * z), rounded to 2 digits."""
    lo, span, sig, max_span = model
    sp = min(span * factor, max_span)
    return int((lo + shape * (sp + sp * sig * e)) * 100.0 + 0.5) / 100


def _line(metric: str, cluster: str, host: str, value: float, ts: int, kind: str = "node", type_id: str = "") -> str:
    if kind == "node":
        return f"{metric},cluster={cluster},hostname={host},type=node value={value} {ts}"
    return f"{metric},cluster={cluster},hostname={host},type={kind},type-id={type_id} value={value} {ts}"


class JobSampler:
    """Samples of one running job's hosts over time, from the job's load profile (``job.prof``)."""

    def __init__(self, job: DemoJob, rng: random.Random, *, fine_scopes: bool = True) -> None:
        self.job = job
        self.rng = rng
        p: Prof = job.prof
        self.start = int(job.meta["startTime"])
        self.cpu_metrics = [m for m in job.metrics if m not in ACC_METRICS]
        self.models = [_node_model(p, _node_busy(p, k), job.metrics) for k in range(len(job.hosts))]
        self.factors = [min(1.06, max(0.9, rng.gauss(1.0, 0.03))) for _ in job.hosts]
        self.fine = fine_scopes and len(job.hosts) <= FINE_SCOPE_NODES
        hwt = _hwthreads(job)
        self.hwthreads = hwt
        self.core_speed = [rng.uniform(0.93, 1.05) for _ in hwt]
        self.socket_metrics = [m for m in ("mem_bw", "cpu_power", "mem_power")
                               if m in job.metrics and METRICS[m][1] == "socket"]
        self.gpu = (_gpu_model(p, False), _gpu_model(p, True)) if p.ngpu else None

    def lines(self, ts: int, interval: int) -> list[str]:
        """Line-protocol lines of every host of the job at epoch second ``ts`` (``interval``: seconds since the last)."""
        job, p, rng = self.job, self.job.prof, self.rng
        t = float(max(1, ts - self.start))
        shape = {kind: _shape_values(kind, p, [t], max(1, interval))[0] for kind in _SHAPE_KINDS}
        cluster = job.cluster
        out: list[str] = []
        for k, host in enumerate(job.hosts):
            model, f = self.models[k], self.factors[k]
            for metric in self.cpu_metrics:
                if metric in ("flops_dp", "flops_sp"):
                    continue
                factor = 1.0 if metric in ("cpu_load", "cpu_user") else f
                value = _value(model[metric], shape[_SHAPE[metric]], _noise(rng), factor)
                if metric == "flops_any":
                    dp = int(value * p.dp / 2 * 100.0 + 0.5) / 100
                    out.append(_line("flops_dp", cluster, host, dp, ts))
                    out.append(_line("flops_sp", cluster, host, max(0.0, round(value - 2 * dp, 2)), ts))
                out.append(_line(metric, cluster, host, value, ts))
            busy = _node_busy(p, k)
            if self.fine:
                out += self._fine_lines(host, busy, model, shape, ts)
            if self.gpu is not None:
                out += self._gpu_lines(host, busy == 0, shape, ts)
        return out

    def _fine_lines(self, host: str, busy: int, model: dict[str, _Model], shape: dict[str, float],
                    ts: int) -> list[str]:
        """Per-hwthread and per-socket samples: where a collector measures these metrics (their cluster.json scope)."""
        job, p, rng = self.job, self.job.prof, self.rng
        out: list[str] = []
        for idx, c in enumerate(self.hwthreads):
            b = idx < busy
            levels = core_levels(p, b, self.core_speed[idx] if b else 1.0)
            cid = str(c)
            for metric, level in zip(CORE_LEVEL_METRICS, levels):
                value = _value(level, shape["load"] if metric == "cpu_user" else shape["act"], _noise(rng))
                out.append(_line(metric, job.cluster, host, value, ts, "hwthread", cid))
                if metric == "flops_any":
                    dp = int(value * p.dp / 2 * 100.0 + 0.5) / 100
                    out.append(_line("flops_dp", job.cluster, host, dp, ts, "hwthread", cid))
                    out.append(_line("flops_sp", job.cluster, host, max(0.0, round(value - 2 * dp, 2)), ts,
                                     "hwthread", cid))
        for s, share, bshare in socket_shares(job.sc, self.hwthreads, busy):
            for metric in self.socket_metrics:
                lo, span, sig, max_span = model[metric]
                value = _value((lo * share, span * bshare, sig, max_span * bshare), shape["act"], _noise(rng))
                out.append(_line(metric, job.cluster, host, value, ts, "socket", str(s)))
        return out

    def _gpu_lines(self, host: str, node_idle: bool, shape: dict[str, float], ts: int) -> list[str]:
        """Per-GPU samples and their node aggregate (average utilisation, summed memory and power)."""
        assert self.gpu is not None
        job, p, rng = self.job, self.job.prof, self.rng
        busy_m, idle_m = self.gpu
        g = len(job.gpu_idx)
        totals = dict.fromkeys(ACC_METRICS, 0.0)
        out: list[str] = []
        for j, gi in enumerate(job.gpu_idx):
            model = idle_m if node_idle or j >= g - p.idle_gpus else busy_m
            for metric in ACC_METRICS:
                value = _value(model[metric], shape[_SHAPE[metric]], _noise(rng))
                totals[metric] += value
                if self.fine:
                    out.append(_line(metric, job.cluster, host, value, ts, "accelerator", job.sc.gpus[gi]))
        for metric, total in totals.items():
            value = total / g if metric == "acc_utilization" else total
            out.append(_line(metric, job.cluster, host, round(value, 2), ts))
        return out


def _idle_profile(sc: SubCluster) -> Prof:
    """The load profile of a node without a job: OS daemons, page cache, idle clocks and power."""
    p = Prof()
    p.sc, p.nodes, p.duration, p.alloc, p.busy, p.ngpu = sc, 1, 86400, sc.cores, 0, 0
    p.eff, p.dp, p.bw, p.mem, p.ipc, p.clk = 0.0, 1.0, 0.005, 0.012, 0.3, float(sc.clk_idle)
    p.intensity, p.background, p.load_util, p.comm, p.ib_single = 0.0, 0.0, 1.0, 0.0, 0.05
    p.rd, p.wr, p.rd_window, p.ckpt_period = 0.5, 0.3, 1.0, 1e12
    p.pattern, p.ramp, p.period, p.toggles, p.mem_shape, p.tau = "steady", 1.0, 1800.0, [], "plateau", 1.0
    p.gpu_util, p.gpu_mem, p.gpu_pw, p.idle_gpus = 0.0, 0.01, 0.0, 0
    p.imbalance_nodes, p.pathology, p.pathology_tag = 0, "idle", None
    return p


class IdleSampler:
    """Node-scope samples of hosts without a running job: a little background load, so every node reports."""

    def __init__(self, rng: random.Random, clusters: Iterable[str] | None = None) -> None:
        self.rng = rng
        self.hosts: dict[str, list[tuple[str, SubCluster]]] = {}
        self.models: dict[tuple[str, str], tuple[dict[str, _Model], dict[str, _Model] | None]] = {}
        wanted = set(clusters) if clusters is not None else None
        for cluster, scs in make_clusters().items():
            if wanted is not None and cluster not in wanted:
                continue
            for sc in scs:
                p = _idle_profile(sc)
                metrics = tuple(m for m in metric_names(cluster) if m not in ACC_METRICS and m not in sc.removes)
                gpu = None
                if sc.gpus:
                    p.ngpu = len(sc.gpus)
                    gpu = _gpu_model(p, True)
                self.models[(cluster, sc.name)] = (_node_model(p, 0, metrics), gpu)
                self.hosts.setdefault(cluster, []).extend((h, sc) for h in sc.hosts)

    def lines(self, cluster: str, busy: set[str], ts: int) -> list[str]:
        """Samples at ``ts`` of every host of ``cluster`` that is not in ``busy``."""
        rng = self.rng
        out: list[str] = []
        for host, sc in self.hosts.get(cluster, ()):
            if host in busy:
                continue
            model, gpu = self.models[(cluster, sc.name)]
            for metric, level in model.items():
                value = _value(level, 1.0 if metric not in ("nfs4_read", "nfs4_write") else 0.0, _noise(rng))
                if metric == "flops_any":
                    out.append(_line("flops_dp", cluster, host, round(value / 2, 2), ts))
                    out.append(_line("flops_sp", cluster, host, 0.0, ts))
                out.append(_line(metric, cluster, host, value, ts))
            if gpu is not None:
                g = len(sc.gpus)
                for metric, level in gpu.items():
                    value = sum(_value(level, 1.0, _noise(rng)) for _ in range(g))
                    out.append(_line(metric, cluster, host, round(value / g if metric == "acc_utilization" else value, 2),
                                     ts))
        return out


def start_running_jobs(engine: Engine, registry: ClusterRegistry, jobs: int, *, now: int, seed: int = 1,
                       max_nodes: int = 16) -> list[dict[str, Any]]:
    """Insert ``jobs`` running jobs (started up to a few hours before ``now``) into the database; returns them.

    Through the core's ``start_job``, with the checks of the REST API; monitoring status 1 and no metric data (no
    feeder writes any): for sites that need running jobs without a live demo, e.g. tests of the job lists.
    """
    from cc_backend.jobs.store import start_job

    planner = LivePlanner(seed, now, max_nodes=max_nodes, clusters=[c for c in make_clusters() if c in registry])
    busy: set[str] = set()
    started = []
    for k in range(jobs):
        job = planner.plan(now, 1, busy)
        if job is None:
            break
        # it has run for a part of its walltime already
        ran = int(job.meta["walltime"] * planner.rng.uniform(0.05, 0.9))
        job.meta["startTime"] -= ran
        job.meta["submitTime"] = max(1, job.meta["submitTime"] - ran)
        busy.update(job.hosts)
        payload = start_payload(job, SEEDED_JOBID_BASE + seed % 1000 * 1000 + k)
        started.append(start_job(engine, registry, payload))
    return started
