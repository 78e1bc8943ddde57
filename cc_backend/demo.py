"""Deterministic generator of a realistic demo job archive (archive format version 3).

``generate_archive(root)`` writes ``version.txt``, two clusters (``fritz``: a CPU cluster with Ice Lake and
Sapphire Rapids subclusters; ``alex``: a GPU cluster with 8x A40 and 8x A100 nodes) and ``jobs`` archived
jobs spread over the 30 days before ``now``:

* users and projects with Zipf-like activity (a few users run most jobs), NHR-style ids (``b112dc10``);
* all 12 job states (mostly ``completed``), heavy-tailed node counts and lognormal run times capped at the
  walltime, exclusive / ``single_user`` / ``multi_user`` jobs, array jobs, partitions;
* ``metaData.jobName`` / ``jobScript`` with real Slurm scripts (GROMACS, VASP, LAMMPS, OpenFOAM, PyTorch
  via torchrun, Python, CP2K, ORCA, WRF, MATLAB, Julia, STAR-CCM+, plain MPI binaries) that upstream's
  app tagger regexes detect;
* tags (global ``app:*``/``jobClass:*``, private ``scope=<user>``, ``scope=admin``);
* ``meta.json`` ``statistics`` for every metric, and -- unless ``meta_only`` -- ``data.json[.gz]`` with node
  scope series for every metric, core/socket scope for jobs with at most 2 nodes and accelerator scope for
  GPU jobs; application specific profiles plus idle, memory-bound, load-imbalanced and memory-leaking jobs.

Series follow one load model per job: value(t) = lo + span * shape(t) * (1 + sigma * z) per node and metric,
with levels from the application and the hardware (flops below peak, bandwidth below ``memoryBandwidth``,
``cpu_load`` <= cores, clock between idle and max clock, RAPL power between idle and TDP, GPU utilisation
0-100, ...) and noise cut at 3 sigma, so no value is ever clipped.  Per-series and job statistics are computed
from the written (rounded) samples as upstream's archiver does (job avg = round(sum of node avgs / numNodes, 2),
min of mins, max of maxes).  To bound the size, long or many-node jobs get a coarser timestep (a multiple of the
metric's cluster.json timestep), core/socket/accelerator series a coarser one still: a default demo (2,000
jobs) is ~75 MB.  Archived jobs are normally finished; a few running, pending and suspended ones are included so
that state filters have something to find (``monitoringStatus`` is 3 for all).

The output is a pure function of ``(seed, jobs, now, meta_only)``: every job draws from its own random
stream (seeded from the seed and the job's index), so neither the number of worker processes nor the chunking
changes a byte.  ``meta.json`` of a ``meta_only`` archive equals that of the full archive except for
``statistics``, which in ``meta_only`` mode are derived analytically from the same per-job load model instead
of from generated series.

Files are written atomically (temporary name in the job's own, freshly created directory + ``rename``) with
plain ``os.open``/``os.write``/``os.rename``: the same guarantee as :func:`cc_backend.fileutil.write_atomic`
without ``mkstemp``'s random names, ``fdopen`` and ``chmod`` per file, which matters at 100,000 files.
"""

from __future__ import annotations

import bisect
import gzip
import math
import multiprocessing
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from cc_backend.archive import ARCHIVE_VERSION
from cc_backend.archive.paths import job_relpath
from cc_backend.errors import InvalidInput
from cc_backend.fileutil import write_atomic

__all__ = [
    "DEFAULT_JOBS",
    "JOB_STATES",
    "DemoSummary",
    "default_now",
    "cluster_configs",
    "generate_archive",
]

DEFAULT_JOBS = 2000
#: Start times are spread over this many days before ``now``.
WINDOW_DAYS = 30
JOB_STATES = (
    "boot_fail", "cancelled", "completed", "deadline", "failed", "node_fail",
    "out_of_memory", "pending", "preempted", "running", "suspended", "timeout",
)
_STATE_WEIGHTS = (0.3, 7.5, 71.0, 0.3, 7.0, 0.6, 2.0, 1.0, 1.2, 3.5, 0.3, 4.5)
# Job i with i % _FORCE_PERIOD < 12 gets JOB_STATES[i % _FORCE_PERIOD]: every state shows up in small archives.
_FORCE_PERIOD = 97
_GZIP_THRESHOLD = 2000  # upstream: data.json > 2000 bytes is stored gzip'ed
_GZIP_LEVEL = 4
# Data budget per job (number of samples): keeps a default demo ~100 MB and fast to write.
_NODE_MAX_SAMPLES = 720  # at most 12 h at 60 s per node series; longer jobs get a coarser timestep
_NODE_BUDGET = 100_000  # all node scope series of one job together
_FINE_BUDGET = 24_000  # all core/socket scope series of one job together
_ACC_BUDGET = 20_000  # all accelerator scope series of one job together
_MIN_SAMPLES = 12
_SEED_STRIDE = 10**10


def default_now(seed: int) -> int:
    """The fixed "now" (epoch seconds) of a demo archive of ``seed`` when none is given."""
    return 1_735_732_800 + (seed % 101) * 86_400  # 2025-01-01 12:00 UTC + up to 100 days


def _mix(seed: int, stream: int, index: int) -> int:
    """Seed of the random stream ``stream`` of job ``index`` (distinct for all index < 10**10)."""
    return (seed * 16 + stream) * _SEED_STRIDE + index


def _r2(x: float) -> float:
    return round(x, 2)


# --------------------------------------------------------------------------------------------------- clusters


class _SubCluster:
    """Hardware of one subcluster plus the derived values the generator needs."""

    def __init__(
        self, name: str, processor: str, sockets: int, cores_per_socket: int, mem_gb: int, mem_bw: float,
        clk_base: int, clk_turbo: int, clk_max: int, clk_idle: int, flops_per_cycle: int,
        tdp: float, p_idle: float, dram_max: float, dram_idle: float, domains_per_socket: int,
        prefix: str, width: int, ranges: tuple[tuple[int, int], ...], ib: float,
        gpus: tuple[str, ...] = (), gpu_model: str = "", gpu_mem: float = 0.0, gpu_tdp: float = 0.0,
        gpu_idle: float = 0.0, removes: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.processor = processor
        self.sockets = sockets
        self.cores_per_socket = cores_per_socket
        self.cores = sockets * cores_per_socket
        self.mem_gb = mem_gb
        self.mem_bw = mem_bw
        self.clk_base, self.clk_turbo, self.clk_max, self.clk_idle = clk_base, clk_turbo, clk_max, clk_idle
        self.flops_dp_peak = round(self.cores * clk_base / 1000 * flops_per_cycle)  # GF/s, DP SIMD
        self.flops_scalar = round(self.cores * clk_base / 1000 * 4)  # 2 FMA ports, scalar
        self.tdp, self.p_idle, self.dram_max, self.dram_idle = tdp, p_idle, dram_max, dram_idle
        self.domains_per_socket = domains_per_socket
        self.ib = ib
        self.gpus = gpus
        self.gpu_model, self.gpu_mem, self.gpu_tdp, self.gpu_idle = gpu_model, gpu_mem, gpu_tdp, gpu_idle
        self.removes = frozenset(removes)
        self.nodelist = f"{prefix}[" + ",".join(f"{a:0{width}d}-{b:0{width}d}" for a, b in ranges) + "]"
        self.hosts = [f"{prefix}{n:0{width}d}" for a, b in ranges for n in range(a, b + 1)]
        self.full_hwthreads = orjson.Fragment(orjson.dumps(list(range(self.cores))))
        self.cores_per_gpu = self.cores // len(gpus) if gpus else 0

    def topology(self) -> dict[str, Any]:
        cps, c = self.cores_per_socket, self.cores
        dom = c // (self.sockets * self.domains_per_socket)
        topo: dict[str, Any] = {
            "node": list(range(c)),
            "socket": [list(range(s * cps, (s + 1) * cps)) for s in range(self.sockets)],
            "memoryDomain": [list(range(d * dom, (d + 1) * dom)) for d in range(c // dom)],
            "core": [[i] for i in range(c)],
        }
        if self.gpus:
            topo["accelerators"] = [{"id": g, "type": "Nvidia GPU", "model": self.gpu_model} for g in self.gpus]
        return topo

    def to_json(self) -> dict[str, Any]:
        gf = {"base": "F/s", "prefix": "G"}
        return {
            "name": self.name,
            "nodes": self.nodelist,
            "processorType": self.processor,
            "socketsPerNode": self.sockets,
            "coresPerSocket": self.cores_per_socket,
            "threadsPerCore": 1,
            "flopRateScalar": {"unit": gf, "value": self.flops_scalar},
            "flopRateSimd": {"unit": gf, "value": self.flops_dp_peak},
            "memoryBandwidth": {"unit": {"base": "B/s", "prefix": "G"}, "value": self.mem_bw},
            "topology": self.topology(),
        }


_A40_IDS = ("00000000:01:00.0", "00000000:25:00.0", "00000000:41:00.0", "00000000:61:00.0",
            "00000000:81:00.0", "00000000:A1:00.0", "00000000:C1:00.0", "00000000:E1:00.0")
_A100_IDS = ("00000000:0E:00.0", "00000000:13:00.0", "00000000:49:00.0", "00000000:4F:00.0",
             "00000000:90:00.0", "00000000:96:00.0", "00000000:CC:00.0", "00000000:D1:00.0")


def _make_clusters() -> dict[str, list[_SubCluster]]:
    icx = dict(processor="Intel(R) Xeon(R) Platinum 8360Y CPU @ 2.40GHz", sockets=2, cores_per_socket=36,
               clk_base=2400, clk_turbo=3100, clk_max=3500, clk_idle=800, flops_per_cycle=32,
               tdp=250.0, p_idle=70.0, dram_max=40.0, dram_idle=8.0, domains_per_socket=2, ib=12500.0)
    spr = dict(processor="Intel(R) Xeon(R) Platinum 8470", sockets=2, cores_per_socket=52,
               clk_base=2000, clk_turbo=3000, clk_max=3800, clk_idle=800, flops_per_cycle=32,
               tdp=350.0, p_idle=95.0, dram_max=60.0, dram_idle=14.0, domains_per_socket=4, ib=12500.0)
    milan = dict(processor="AMD EPYC 7713 64-Core Processor", sockets=2, cores_per_socket=64,
                 clk_base=2000, clk_turbo=3000, clk_max=3675, clk_idle=1500, flops_per_cycle=16,
                 tdp=225.0, p_idle=85.0, dram_max=35.0, dram_idle=10.0, domains_per_socket=4, ib=25000.0)
    fritz = [
        _SubCluster("main", mem_gb=256, mem_bw=350.0, prefix="f", width=4,
                    ranges=tuple((r * 100 + 1, r * 100 + 64) for r in range(1, 9)), **icx),
        _SubCluster("spr1tb", mem_gb=1024, mem_bw=520.0, prefix="f", width=4,
                    ranges=((2101, 2148), (2201, 2248)), **spr),
        _SubCluster("spr2tb", mem_gb=2048, mem_bw=500.0, prefix="f", width=4,
                    ranges=((2149, 2164), (2249, 2264)), removes=("mem_power",), **spr),
    ]
    alex = [
        _SubCluster("a40", mem_gb=512, mem_bw=400.0, prefix="a", width=4, ranges=((101, 132), (201, 232)),
                    gpus=_A40_IDS, gpu_model="A40", gpu_mem=48.0, gpu_tdp=300.0, gpu_idle=30.0, **milan),
        _SubCluster("a100", mem_gb=1024, mem_bw=400.0, prefix="a", width=4, ranges=((501, 510), (601, 610)),
                    gpus=_A100_IDS, gpu_model="A100", gpu_mem=40.0, gpu_tdp=400.0, gpu_idle=55.0, **milan),
    ]
    return {"fritz": fritz, "alex": alex}


# name -> (unit, native scope, aggregation, timestep, noise sigma)
_METRICS: dict[str, tuple[dict[str, str], str, str, int, float]] = {
    "cpu_load": ({"base": ""}, "node", "avg", 60, 0.01),
    "cpu_user": ({"base": ""}, "hwthread", "avg", 60, 0.008),
    "mem_used": ({"base": "B", "prefix": "G"}, "node", "sum", 60, 0.01),
    "flops_any": ({"base": "F/s", "prefix": "G"}, "hwthread", "sum", 60, 0.12),
    "flops_dp": ({"base": "F/s", "prefix": "G"}, "hwthread", "sum", 60, 0.12),
    "flops_sp": ({"base": "F/s", "prefix": "G"}, "hwthread", "sum", 60, 0.12),
    "mem_bw": ({"base": "B/s", "prefix": "G"}, "socket", "sum", 60, 0.08),
    "clock": ({"base": "Hz", "prefix": "M"}, "hwthread", "avg", 60, 0.01),
    "ipc": ({"base": "IPC"}, "hwthread", "avg", 60, 0.04),
    "cpu_power": ({"base": "W"}, "socket", "sum", 60, 0.02),
    "mem_power": ({"base": "W"}, "socket", "sum", 60, 0.03),
    "ib_recv": ({"base": "B/s", "prefix": "M"}, "node", "sum", 60, 0.25),
    "ib_xmit": ({"base": "B/s", "prefix": "M"}, "node", "sum", 60, 0.25),
    "nfs4_read": ({"base": "B/s", "prefix": "M"}, "node", "sum", 60, 0.2),
    "nfs4_write": ({"base": "B/s", "prefix": "M"}, "node", "sum", 60, 0.2),
    "acc_utilization": ({"base": ""}, "accelerator", "avg", 30, 0.04),
    "acc_mem_used": ({"base": "B", "prefix": "G"}, "accelerator", "sum", 30, 0.01),
    "acc_power": ({"base": "W"}, "accelerator", "sum", 30, 0.04),
}
_CPU_METRICS = tuple(m for m in _METRICS if not m.startswith("acc_"))
_SIGMA = {m: v[4] for m, v in _METRICS.items()}
_ACC_METRICS = ("acc_utilization", "acc_mem_used", "acc_power")
_FOOTPRINT = {"cpu_load": "avg", "mem_used": "max", "flops_any": "avg", "mem_bw": "avg",
              "acc_utilization": "avg", "acc_mem_used": "max"}
_ENERGY = {"cpu_power": "power", "mem_power": "power", "acc_power": "power"}
_LOWER_IS_BETTER = frozenset({"mem_used"})


def _thresholds(sc: _SubCluster, metric: str, gpu_cluster: bool) -> tuple[float, float, float, float]:
    """(peak, normal, caution, alert) of ``metric`` on ``sc``."""
    c, s = sc.cores, sc.sockets
    p_any = 2 * sc.flops_dp_peak
    t: dict[str, tuple[float, float, float, float]] = {
        "cpu_load": (c, c, 10, 5) if gpu_cluster else (c, c, c // 2, c // 4),
        "cpu_user": (100, 50, 20, 10),
        "mem_used": (sc.mem_gb, sc.mem_gb // 2, round(sc.mem_gb * 0.8), round(sc.mem_gb * 0.9)),
        "flops_any": (p_any, round(p_any * 0.1), round(p_any * 0.02), round(p_any * 0.005)),
        "flops_dp": (sc.flops_dp_peak, round(sc.flops_dp_peak * 0.1), round(sc.flops_dp_peak * 0.02),
                     round(sc.flops_dp_peak * 0.005)),
        "flops_sp": (p_any, round(p_any * 0.1), round(p_any * 0.02), round(p_any * 0.005)),
        "mem_bw": (sc.mem_bw, round(sc.mem_bw * 0.3), round(sc.mem_bw * 0.15), round(sc.mem_bw * 0.03)),
        "clock": (sc.clk_max, sc.clk_base, round(sc.clk_base * 0.75), round(sc.clk_base * 0.5)),
        "ipc": (4, 2, 1, 0.5),
        "cpu_power": (s * sc.tdp, round(s * sc.tdp * 0.8), round(s * sc.tdp * 0.4), round(s * sc.p_idle)),
        "mem_power": (s * sc.dram_max, round(s * sc.dram_max * 0.5), round(s * sc.dram_max * 0.25),
                      round(s * sc.dram_max * 0.1)),
        "ib_recv": (sc.ib, round(sc.ib * 0.1), round(sc.ib * 0.01), 1),
        "ib_xmit": (sc.ib, round(sc.ib * 0.1), round(sc.ib * 0.01), 1),
        "nfs4_read": (1000, 100, 10, 1),
        "nfs4_write": (1000, 100, 10, 1),
        "acc_utilization": (100, 80, 50, 20),
        "acc_mem_used": (sc.gpu_mem, sc.gpu_mem / 2, round(sc.gpu_mem * 0.2), round(sc.gpu_mem * 0.1)),
        "acc_power": (sc.gpu_tdp, round(sc.gpu_tdp * 0.6), round(sc.gpu_tdp * 0.3), sc.gpu_idle),
    }
    return t[metric]


def _metric_names(cluster: str) -> tuple[str, ...]:
    return _CPU_METRICS + (_ACC_METRICS if cluster == "alex" else ())


def _cluster_json(name: str, scs: list[_SubCluster]) -> dict[str, Any]:
    gpu = any(sc.gpus for sc in scs)
    mcs = []
    for metric in _metric_names(name):
        unit, scope, agg, ts, _ = _METRICS[metric]
        extra: dict[str, Any] = {}
        if metric in _FOOTPRINT:
            extra["footprint"] = _FOOTPRINT[metric]
        if metric in _ENERGY:
            extra["energy"] = _ENERGY[metric]
        if metric in _LOWER_IS_BETTER:
            extra["lowerIsBetter"] = True
        peak, normal, caution, alert = _thresholds(scs[0], metric, gpu)
        mc: dict[str, Any] = {"name": metric, "unit": unit, "scope": scope, "aggregation": agg, "timestep": ts,
                              "peak": peak, "normal": normal, "caution": caution, "alert": alert, **extra}
        overrides = []
        for sc in scs[1:]:
            if metric in sc.removes:
                overrides.append({"name": sc.name, "remove": True})
                continue
            t = _thresholds(sc, metric, gpu)
            if t != (peak, normal, caution, alert):
                overrides.append({"name": sc.name, "peak": t[0], "normal": t[1], "caution": t[2], "alert": t[3],
                                  **extra})
        if overrides:
            mc["subClusters"] = overrides
        mcs.append(mc)
    return {"name": name, "metricConfig": mcs, "subClusters": [sc.to_json() for sc in scs]}


def cluster_configs() -> dict[str, dict[str, Any]]:
    """The ``cluster.json`` documents of the demo clusters, by cluster name."""
    return {name: _cluster_json(name, scs) for name, scs in _make_clusters().items()}


# ------------------------------------------------------------------------------------------- applications

_UNIT_OF = {m: v[0] for m, v in _METRICS.items()}


@dataclass(frozen=True)
class _App:
    kind: str  # mpi | threads | serial | gpu
    eff: tuple[float, float]  # fraction of the busy cores' flops_any peak
    dp: tuple[float, float]  # share of DP in flops_any
    bw: tuple[float, float]  # fraction of the memory bandwidth
    mem: tuple[float, float]  # fraction of node (or allocated share of) memory
    ipc: tuple[float, float]
    vec: float  # how AVX heavy: lowers the clock
    comm: tuple[float, float]  # fraction of the IB link in multi-node runs
    pattern: str  # steady | scf | phases | epochs | bursty
    gpu: tuple[float, float, float, float, float, float] | None = None  # util lo/hi, mem lo/hi, power lo/hi
    clusters: tuple[tuple[str, float], ...] = (("fritz", 1.0),)
    tag: str | None = None  # app tag upstream's tagger would derive from the job script


_APPS: dict[str, _App] = {
    "gromacs": _App("mpi", (0.10, 0.22), (0.0, 0.08), (0.10, 0.25), (0.02, 0.06), (1.6, 2.3), 0.9, (0.08, 0.3),
                    "steady", (55, 92, 0.04, 0.15, 0.45, 0.75), (("fritz", 0.6), ("alex", 0.4)), "gromacs"),
    "vasp": _App("mpi", (0.06, 0.18), (0.9, 1.0), (0.30, 0.55), (0.15, 0.55), (1.1, 1.8), 0.8, (0.1, 0.35),
                 "scf", tag="vasp"),
    "lammps": _App("mpi", (0.03, 0.10), (0.85, 1.0), (0.10, 0.30), (0.02, 0.10), (1.2, 1.7), 0.3, (0.03, 0.15),
                   "steady", (70, 92, 0.05, 0.3, 0.5, 0.8), (("fritz", 0.75), ("alex", 0.25)), "lammps"),
    "openfoam": _App("mpi", (0.008, 0.025), (1.0, 1.0), (0.65, 0.90), (0.12, 0.40), (0.45, 0.8), 0.15,
                     (0.05, 0.2), "phases", tag="openfoam"),
    "starccm": _App("mpi", (0.01, 0.04), (1.0, 1.0), (0.50, 0.80), (0.10, 0.35), (0.6, 1.0), 0.2, (0.05, 0.2),
                    "steady", tag="starccm"),
    "wrf": _App("mpi", (0.02, 0.06), (0.0, 0.1), (0.45, 0.75), (0.12, 0.30), (0.7, 1.1), 0.4, (0.05, 0.2),
                "phases"),
    "cp2k": _App("mpi", (0.05, 0.15), (0.95, 1.0), (0.25, 0.50), (0.10, 0.45), (1.1, 1.7), 0.7, (0.1, 0.3),
                 "scf", tag="cp2k"),
    "orca": _App("threads", (0.02, 0.08), (1.0, 1.0), (0.10, 0.30), (0.05, 0.40), (1.2, 1.9), 0.5, (0.0, 0.0),
                 "phases", tag="orca"),
    "custom": _App("mpi", (0.005, 0.10), (0.5, 1.0), (0.05, 0.50), (0.02, 0.30), (0.6, 2.0), 0.5, (0.02, 0.2),
                   "steady"),
    "pytorch": _App("gpu", (0.001, 0.01), (0.3, 0.6), (0.02, 0.08), (0.05, 0.25), (0.8, 1.4), 0.3, (0.02, 0.2),
                    "epochs", (80, 98, 0.6, 0.95, 0.7, 0.95), (("alex", 1.0),), "python"),
    "python": _App("serial", (0.001, 0.02), (0.8, 1.0), (0.01, 0.08), (0.02, 0.40), (0.8, 1.6), 0.2, (0.0, 0.0),
                   "bursty", (5, 60, 0.05, 0.5, 0.2, 0.5), (("fritz", 0.75), ("alex", 0.25)), "python"),
    "matlab": _App("serial", (0.001, 0.01), (1.0, 1.0), (0.01, 0.05), (0.02, 0.20), (1.0, 2.0), 0.3, (0.0, 0.0),
                   "bursty", tag="matlab"),
    "julia": _App("threads", (0.01, 0.08), (0.9, 1.0), (0.05, 0.30), (0.02, 0.30), (1.0, 2.0), 0.4, (0.0, 0.0),
                  "steady", tag="julia"),
}

_DOMAINS: dict[str, tuple[float, dict[str, float]]] = {
    "md": (18, {"gromacs": 5, "lammps": 3, "python": 1}),
    "materials": (15, {"vasp": 6, "cp2k": 2, "lammps": 1, "python": 1}),
    "chemistry": (10, {"orca": 5, "cp2k": 3, "python": 2}),
    "cfd": (12, {"openfoam": 6, "starccm": 2, "custom": 2, "python": 1}),
    "climate": (6, {"wrf": 6, "python": 2, "custom": 1}),
    "ml": (20, {"pytorch": 8, "python": 3}),
    "data": (10, {"python": 5, "matlab": 2, "julia": 2}),
    "physics": (9, {"custom": 5, "julia": 2, "python": 2}),
}

_HEADER = (
    "#!/bin/bash -l\n"
    "#SBATCH --job-name={name}\n"
    "{res}"
    "#SBATCH --time={time}\n"
    "#SBATCH --partition={partition}\n"
    "#SBATCH --account={project}\n"
    "#SBATCH --output=%x.%j.out\n"
    "#SBATCH --export=NONE\n"
    "\n"
    "unset SLURM_EXPORT_ENV\n"
)

_BODIES: dict[str, tuple[str, ...]] = {
    "gromacs": (
        "module load gromacs/{gmxver}-impi-mkl\n"
        "cd $SLURM_SUBMIT_DIR\n"
        "export OMP_NUM_THREADS=1\n"
        "gmx_mpi grompp -f {mdp}.mdp -c {sys}_npt.gro -t {sys}_npt.cpt -p topol.top -o {sys}_{mdp}.tpr\n"
        "srun gmx_mpi mdrun -s {sys}_{mdp}.tpr -deffnm {sys}_{mdp} -maxh {maxh} -cpi -dlb yes\n",
    ),
    "gromacs-gpu": (
        "module load gromacs/{gmxver}-cuda12\n"
        "cd $SLURM_SUBMIT_DIR\n"
        "export OMP_NUM_THREADS=16\n"
        "srun gmx mdrun -s {sys}_{mdp}.tpr -deffnm {sys}_{mdp} -nb gpu -pme gpu -bonded gpu -update gpu "
        "-ntomp $OMP_NUM_THREADS -maxh {maxh} -cpi\n",
    ),
    "vasp": (
        "module load intel/2022.1.0 intelmpi/2021.6.0 mkl/2022.1.0 vasp6/6.4.2\n"
        "cd $SLURM_SUBMIT_DIR\n"
        "export OMP_NUM_THREADS=1\n"
        "cp INCAR.{step} INCAR\n"
        "cp KPOINTS.{step} KPOINTS\n"
        "srun vasp_{vbin} > vasp_{step}.out\n",
    ),
    "lammps": (
        "module load lammps/20230802-gcc11-openmpi-plumed\n"
        "cd $SLURM_SUBMIT_DIR\n"
        "srun lmp -in in.{sys} -log log.{sys} -var seed {num}\n",
    ),
    "lammps-gpu": (
        "module load lammps/20230802-gcc11-openmpi-kokkos-cuda\n"
        "cd $SLURM_SUBMIT_DIR\n"
        "srun lmp -k on g {gpn} -sf kk -pk kokkos newton on neigh full -in in.{sys} -log log.{sys}\n",
    ),
    "openfoam": (
        "module load openfoam/{foamver}\n"
        "source $FOAM_BASH\n"
        "cd cases/{sys}\n"
        "blockMesh > log.blockMesh 2>&1\n"
        "decomposePar -force > log.decomposePar 2>&1\n"
        "srun {solver} -parallel > log.{solver} 2>&1\n"
        "reconstructPar -latestTime > log.reconstructPar 2>&1\n",
    ),
    "starccm": (
        "module load star-ccm+/18.02.008-r8\n"
        "scontrol show hostnames $SLURM_JOB_NODELIST > hosts.txt\n"
        "starccm+ -batch run.java -np $SLURM_NTASKS -machinefile hosts.txt -mpi intel -power "
        "-podkey $PODKEY {sys}.sim\n",
    ),
    "wrf": (
        "module load netcdf-fortran/4.6.1-intel hdf5/1.14.1-intel-impi wrf/4.5.2-dmpar\n"
        "cd $WORK/wrf/{sys}\n"
        "ln -sf $WPS_DIR/met_em.d0* .\n"
        "srun ./real.exe\n"
        "srun ./wrf.exe\n",
    ),
    "cp2k": (
        "module load cp2k/2024.1-openmpi-scalapack-plumed\n"
        "cd $SLURM_SUBMIT_DIR\n"
        "export OMP_NUM_THREADS=2\n"
        "srun cp2k.psmp -i {sys}.inp -o {sys}.out\n",
    ),
    "orca": (
        "module load orca/5.0.4\n"
        "cp $SLURM_SUBMIT_DIR/{sys}.inp $TMPDIR/ && cd $TMPDIR\n"
        "$(which orca) {sys}.inp > $SLURM_SUBMIT_DIR/{sys}.out\n"
        "cp *.gbw *.xyz $SLURM_SUBMIT_DIR/\n",
    ),
    "custom": (
        "module load intel/2023.2.1 intelmpi/2021.10.0\n"
        "export I_MPI_PIN_DOMAIN=core\n"
        "cd $WORK/runs/{sys}\n"
        "srun ./bin/{sys} -n {num} -steps 10000 -o out_{num}\n",
    ),
    "pytorch": (
        "module load python/3.11-anaconda cuda/12.1.1 cudnn/8.9.2\n"
        "conda activate {env}\n"
        "export OMP_NUM_THREADS=8\n"
        "export NCCL_DEBUG=WARN\n"
        "cd $WORK/{sys}\n"
        "srun torchrun --nnodes=$SLURM_NNODES --nproc_per_node={gpn} --rdzv_id=$SLURM_JOB_ID "
        "--rdzv_backend=c10d --rdzv_endpoint=$(hostname):29500 train.py --config configs/{sys}.yaml "
        "--epochs {num} --batch-size {bs}\n",
        "module load python/3.11-anaconda cuda/12.1.1\n"
        "conda activate {env}\n"
        "cd $WORK/{sys}\n"
        "python train.py --model {sys} --epochs {num} --lr 3e-4 --batch-size {bs} --data $WORK/datasets/{ds}\n",
    ),
    "python": (
        "module load python/3.11-anaconda\n"
        "conda activate {env}\n"
        "export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK\n"
        "cd $WORK/{project}\n"
        "python {sys}.py --input $WORK/data/run{num} --output results/{sys}_{num}.npz\n",
    ),
    "python-gpu": (
        "module load python/3.11-anaconda cuda/12.1.1\n"
        "conda activate {env}\n"
        "cd $WORK/{project}\n"
        "python {sys}.py --device cuda --input $WORK/data/run{num}\n",
    ),
    "matlab": (
        "module load matlab/R2023b\n"
        "cd $WORK/{project}\n"
        "matlab -nodisplay -nosplash -batch \"{sys}({num})\"\n",
    ),
    "julia": (
        "module load julia/1.10.2\n"
        "export JULIA_NUM_THREADS=$SLURM_CPUS_PER_TASK\n"
        "cd $WORK/{project}\n"
        "julia --project=. {sys}.jl {num}\n",
    ),
}

# words for job names and scripts; none of them matches an app tagger regex of another application
_SYSTEMS: dict[str, tuple[str, ...]] = {
    "gromacs": ("lysozyme", "popc_bilayer", "abeta42", "spike_rbd", "gpcr_a2a", "villin", "kcsa_channel"),
    "vasp": ("Si_bulk", "TiO2_anatase", "LiCoO2", "MoS2_slab", "Fe3O4_111", "GaN_defect", "perovskite_MAPbI3"),
    "lammps": ("lj_melt", "polymer_melt", "eam_cu", "reaxff_hns", "rhodo", "silica_glass"),
    "openfoam": ("motorBike", "pitzDaily", "channel395", "damBreak", "airfoil2D", "heatExchanger"),
    "starccm": ("cooling_jacket", "intake_manifold", "wing_body", "pump_impeller"),
    "wrf": ("europe_12km", "bavaria_3km", "alps_1km", "conus_12km"),
    "cp2k": ("water_64", "zeolite_md", "nacl_interface", "mof_adsorption", "h2o_512_rpa"),
    "orca": ("caffeine_opt", "fe_porphyrin", "benzene_dlpno", "cu_complex_td", "ru_catalyst_freq"),
    "custom": ("heat3d", "lbm_solver", "nbody_sim", "mc_transport", "dns_channel", "spectral_solver"),
    "pytorch": ("resnet50", "vit_b16", "gpt2_medium", "unet3d", "bert_large", "llama2_7b_lora", "diffusion_xl"),
    "python": ("analyse_trajectories", "postprocess_fields", "fit_spectra", "train_xgboost", "mc_sampling",
               "feature_extraction", "jax_md_sim", "cupy_fft_bench"),
    "matlab": ("run_parameter_study", "solve_heat_eq", "process_images", "simulate_grid"),
    "julia": ("simulate_ising", "solve_ode_ensemble", "lattice_boltzmann", "optimize_portfolio"),
}
_JOBNAME_SUFFIX: dict[str, tuple[str, ...]] = {
    "gromacs": ("md", "prod", "equil", "npt"),
    "vasp": ("relax", "scf", "bands", "dos", "md"),
}
_ENVS = ("torch2", "pt21", "ml-env", "sci", "analysis", "jax")
_DATASETS = ("imagenet", "cifar100", "coco2017", "openwebtext", "brats2021")
_WALLTIMES_H = (0.5, 1, 2, 4, 6, 8, 10, 12, 24)
_WALLTIME_W = (4, 10, 10, 14, 8, 10, 5, 12, 27)
_MULTINODE = (2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64, 96, 128, 192, 256)
_PRIVATE_TAGS = (("project", "paper-draft"), ("campaign", "batch-a"), ("campaign", "batch-b"),
                 ("note", "rerun"), ("note", "baseline"), ("project", "thesis"))
_ADMIN_TAGS = (("admin", "contacted-user"), ("admin", "review"), ("support", "ticket-open"),
               ("admin", "allocation-check"))


def _cum(weights: Iterable[float]) -> list[float]:
    out, acc = [], 0.0
    for w in weights:
        acc += w
        out.append(acc)
    return out


def _pick(rng: random.Random, items: tuple[Any, ...] | list[Any], cum: list[float]) -> Any:
    return items[bisect.bisect_right(cum, rng.random() * cum[-1])]


_STATE_CUM = _cum(_STATE_WEIGHTS)
_WALLTIME_CUM = _cum(_WALLTIME_W)
_MULTINODE_CUM = _cum(n ** -1.15 * (1.0 if n & (n - 1) == 0 else 0.45) for n in _MULTINODE)
_MULTINODE_CUM_BIG = _cum(n ** -0.6 * (1.0 if n & (n - 1) == 0 else 0.45) for n in _MULTINODE)


# ---------------------------------------------------------------------------------------------------- world


class _User:
    __slots__ = ("name", "projects", "apps", "app_cum", "gpu", "big", "tags", "habit")

    def __init__(self, name: str, projects: list[str], apps: tuple[str, ...], app_w: list[float],
                 gpu: bool, big: bool, tags: tuple[tuple[str, str], ...], habit: float) -> None:
        self.name, self.projects, self.apps, self.app_cum = name, projects, apps, _cum(app_w)
        self.gpu, self.big, self.tags = gpu, big, tags
        self.habit = habit  # users mostly submit the same kind of job: the partition choice sticks


class _World:
    """Everything shared by all jobs of one archive: clusters, users, array structure, time warp."""

    def __init__(self, seed: int, n_jobs: int, now: int) -> None:
        self.seed, self.n, self.now = seed, n_jobs, now
        self.clusters = _make_clusters()
        self.sc = {(c, sc.name): sc for c, scs in self.clusters.items() for sc in scs}
        self.metrics = {
            (c, sc.name): tuple(m for m in _metric_names(c) if m not in sc.removes)
            for c, scs in self.clusters.items() for sc in scs
        }
        rng = random.Random(_mix(seed, 0, 0))
        self._make_people(rng)
        self._make_arrays(random.Random(_mix(seed, 0, 1)))
        self._make_warp()
        self.tagger_since = now - 12 * 86400
        self.jobid_base = 1_000_000 + (seed % 7) * 250_000

    # people
    def _make_people(self, rng: random.Random) -> None:
        domains = tuple(_DOMAINS)
        dom_cum = _cum(_DOMAINS[d][0] for d in domains)
        n_proj = rng.randint(45, 70)
        seen: set[str] = set()
        projects: list[tuple[str, str]] = []
        while len(projects) < n_proj:
            name = f"{rng.choice('bkv')}{rng.randint(100, 299)}{rng.choice('abcdefghprstuw')}{rng.choice('abcdefgh')}"
            if name not in seen:
                seen.add(name)
                projects.append((name, _pick(rng, domains, dom_cum)))
        proj_cum = _cum(1.0 / (k + 1) ** 0.8 for k in range(n_proj))
        n_users = rng.randint(150, 260)
        users: list[_User] = []
        taken: set[str] = set()
        for _ in range(n_users):
            pname, dom = _pick(rng, projects, proj_cum)
            while True:
                uname = f"{pname}{rng.randint(10, 99)}"
                if uname not in taken:
                    taken.add(uname)
                    break
            plist = [pname]
            if rng.random() < 0.25:
                other = _pick(rng, projects, proj_cum)[0]
                if other != pname:
                    plist.append(other)
            app_w = _DOMAINS[dom][1]
            names = tuple(app_w)
            napps = 1 if rng.random() < 0.55 else 2
            apps: list[str] = []
            while len(apps) < napps:
                a = _pick(rng, names, _cum(app_w[x] for x in names))
                if a not in apps:
                    apps.append(a)
            weights = [1.0] + [rng.uniform(0.1, 0.6) for _ in apps[1:]]
            tags = tuple(rng.sample(_PRIVATE_TAGS, 2))
            users.append(_User(uname, plist, tuple(apps), weights, rng.random() < 0.5, rng.random() < 0.12, tags,
                               rng.random()))
        rng.shuffle(users)
        self.users = users
        self.user_cum = _cum(1.0 / (k + 1) ** 1.05 for k in range(len(users)))

    def _make_arrays(self, rng: random.Random) -> None:
        leader = [0] * self.n
        i = 0
        while i < self.n:
            size = 1
            if rng.random() < 0.03:
                size = min(60, 2 + int(rng.expovariate(1 / 8)))
            for j in range(i, min(self.n, i + size)):
                leader[j] = i
            i += size
        self.leader = leader

    def array_size(self, lead: int) -> int:
        j = lead + 1
        while j < self.n and self.leader[j] == lead:
            j += 1
        return j - lead

    def _make_warp(self) -> None:
        """Inverse CDF of submissions over the window: more during working hours, less at weekends."""
        start = self.now - WINDOW_DAYS * 86400
        self.window_start = start - start % 3600
        hours = WINDOW_DAYS * 24
        diurnal = (0.35, 0.3, 0.28, 0.27, 0.27, 0.3, 0.4, 0.6, 0.85, 1.0, 1.0, 1.0,
                   0.95, 1.0, 1.0, 1.0, 0.95, 0.85, 0.7, 0.6, 0.55, 0.5, 0.45, 0.4)
        weights = []
        for h in range(hours):
            t = self.window_start + h * 3600
            local = (t // 3600 + 1) % 24  # CET
            weekday = (t // 86400 + 3) % 7  # 1970-01-01 was a Thursday; 5, 6 = Sat, Sun
            weights.append(diurnal[local] * (0.45 if weekday >= 5 else 1.0))
        self.warp_cum = _cum(weights)

    def submit_time(self, u: float) -> int:
        x = u * self.warp_cum[-1]
        h = bisect.bisect_right(self.warp_cum, x)
        h = min(h, len(self.warp_cum) - 1)
        lo = self.warp_cum[h - 1] if h else 0.0
        frac = (x - lo) / (self.warp_cum[h] - lo)
        return int(self.window_start + (h + frac) * 3600)


_WORLD_CACHE: dict[tuple[int, int, int], _World] = {}


def _world(seed: int, n_jobs: int, now: int) -> _World:
    key = (seed, n_jobs, now)
    w = _WORLD_CACHE.get(key)
    if w is None:
        _WORLD_CACHE.clear()
        w = _WORLD_CACHE[key] = _World(seed, n_jobs, now)
    return w


# ------------------------------------------------------------------------------------------------ jobs


class _Identity:
    """What all tasks of an array job share (and a plain job has alone)."""

    __slots__ = ("user", "project", "app", "cluster", "sc", "partition", "shared", "nodes", "alloc",
                 "gpus_per_node", "walltime", "name", "script", "jitter", "mem_req", "gpu_app", "submit_u")


# One generator per stream and process, re-seeded per job: seed() gives the same sequence as a new Random.
_RNG_IDENTITY = random.Random()
_RNG_JOB = random.Random()
_RNG_STATS = random.Random()


def _identity(w: _World, lead: int) -> _Identity:
    rng = _RNG_IDENTITY
    rng.seed(_mix(w.seed, 1, lead))
    ident = _Identity()
    user: _User = _pick(rng, w.users, w.user_cum)
    ident.user = user
    ident.submit_u = rng.random()
    ident.project = user.projects[0] if len(user.projects) == 1 or rng.random() < 0.8 else user.projects[1]
    app_name = _pick(rng, user.apps, user.app_cum)
    app = _APPS[app_name]
    ident.app = app_name
    if len(app.clusters) == 1:
        cluster = app.clusters[0][0]
    else:
        w_alex = dict(app.clusters)["alex"]
        p_alex = min(0.9, 2.1 * w_alex) if user.gpu else 0.2 * w_alex
        cluster = "alex" if rng.random() < p_alex else "fritz"
    ident.cluster = cluster
    ident.gpu_app = cluster == "alex"
    array = w.array_size(lead) > 1
    nodes, alloc, gpn = 1, 0, 0
    if cluster == "alex":
        sc_name = "a100" if rng.random() < (0.45 if app_name == "pytorch" else 0.25) else "a40"
        sc = w.sc[("alex", sc_name)]
        partition = sc_name
        if app_name == "pytorch":
            g = _pick(rng, (1, 2, 4, 8), _cum((35, 10, 20, 35)))
        elif app_name == "python":
            g = _pick(rng, (1, 2), _cum((85, 15)))
        else:
            g = _pick(rng, (1, 2, 4, 8), _cum((60, 15, 15, 10)))
        if g == 8:
            shared = "none"
            tail = (1, 2, 4, 8, 16)
            nodes = _pick(rng, tail, _cum((70, 15, 10, 4, 1 + 4 * user.big)))
            gpn = 8
        else:
            shared = "single_user" if array and rng.random() < 0.5 else "multi_user"
            gpn = g
        alloc = gpn * sc.cores_per_gpu
    else:
        r = rng.random()
        if rng.random() < 0.8:
            r = (user.habit + 0.1 * r) % 1.0
        kind = app.kind
        if kind == "mpi":
            if r < 0.45 or (user.big and r < 0.75):
                sc_name, partition = "main", "multinode"
                nodes = _pick(rng, _MULTINODE, _MULTINODE_CUM_BIG if user.big else _MULTINODE_CUM)
            elif r < 0.87:
                sc_name, partition = "main", "singlenode"
            elif r < 0.97:
                sc_name = partition = "spr1tb"
                nodes = _pick(rng, (1, 2, 4), _cum((70, 20, 10)))
            else:
                sc_name = partition = "spr2tb"
                nodes = _pick(rng, (1, 2), _cum((80, 20)))
            shared = "none"
        else:
            threads = kind == "threads"
            if r < (0.35 if threads else 0.6):
                sc_name, partition = "main", "shared"
                shared = "single_user" if array and rng.random() < 0.5 else "multi_user"
                opts = (4, 8, 12, 16, 18, 24, 36) if threads else (1, 1, 2, 4, 4, 8, 16)
                alloc = rng.choice(opts)
            elif r < (0.8 if threads else 0.85):
                sc_name, partition, shared = "main", "singlenode", "none"
            else:
                sc_name = partition = "spr1tb" if rng.random() < 0.75 else "spr2tb"
                shared = "none"
        sc = w.sc[("fritz", sc_name)]
        nodes = min(nodes, len(sc.hosts))
        if not alloc:
            alloc = sc.cores
    ident.sc, ident.partition, ident.shared = sc, partition, shared
    ident.nodes, ident.alloc, ident.gpus_per_node = nodes, alloc, gpn
    wt_h = _pick(rng, _WALLTIMES_H, _WALLTIME_CUM)
    ident.walltime = int(wt_h * 3600)
    if shared == "none":
        ident.mem_req = sc.mem_gb * 1000
    else:
        ident.mem_req = int(sc.mem_gb * 1000 * alloc / sc.cores)
    ident.jitter = rng.randrange(3)
    ident.name, ident.script = _script(rng, ident, app_name, sc)
    return ident


def _fmt_time(seconds: int) -> str:
    h, rest = divmod(seconds, 3600)
    return f"{h:02d}:{rest // 60:02d}:00"


def _script(rng: random.Random, ident: _Identity, app_name: str, sc: _SubCluster) -> tuple[str, str]:
    sys_name = rng.choice(_SYSTEMS[app_name])
    suffix = rng.choice(_JOBNAME_SUFFIX.get(app_name, ("",)))
    num = rng.randint(1, 400)
    if app_name in ("gromacs", "vasp"):
        job_name = f"{sys_name}_{suffix}"
    elif app_name in ("python", "matlab", "julia", "custom", "pytorch"):
        job_name = f"{sys_name}_{num}" if rng.random() < 0.5 else sys_name
    else:
        job_name = sys_name
    key = app_name
    if ident.gpu_app and app_name in ("gromacs", "lammps", "python"):
        key = f"{app_name}-gpu"
    body = rng.choice(_BODIES[key])
    if ident.gpus_per_node:
        res = f"#SBATCH --nodes={ident.nodes}\n#SBATCH --gres=gpu:{sc.name}:{ident.gpus_per_node}\n"
        if ident.shared == "none":
            res += "#SBATCH --exclusive\n"
    elif ident.shared != "none":
        res = f"#SBATCH --ntasks=1\n#SBATCH --cpus-per-task={ident.alloc}\n"
    elif _APPS[app_name].kind == "mpi":
        res = f"#SBATCH --nodes={ident.nodes}\n#SBATCH --ntasks-per-node={sc.cores}\n"
    else:
        res = f"#SBATCH --nodes=1\n#SBATCH --ntasks=1\n#SBATCH --cpus-per-task={sc.cores}\n"
    header = _HEADER.format(name=job_name, res=res, time=_fmt_time(ident.walltime), partition=ident.partition,
                            project=ident.project)
    # only the fields a template uses are drawn (fewer random draws, less formatting)
    fields: dict[str, Any] = {"sys": sys_name, "num": num, "project": ident.project}
    if "{mdp}" in body or "{step}" in body:
        fields["mdp"] = fields["step"] = suffix
    if "{maxh}" in body:
        fields["maxh"] = round(ident.walltime / 3600 * 0.95, 2)
    if "{gmxver}" in body:
        fields["gmxver"] = rng.choice(("2023.3-gcc11.2.0", "2024.1-gcc12.2.0"))
    if "{vbin}" in body:
        fields["vbin"] = rng.choice(("std", "std", "std", "gam", "ncl"))
    if "{foamver}" in body:
        fields["foamver"] = rng.choice(("2306", "v2212", "11"))
        fields["solver"] = rng.choice(("simpleFoam", "pimpleFoam", "interFoam", "rhoPimpleFoam", "buoyantSimpleFoam"))
    if "{env}" in body:
        fields["env"] = rng.choice(_ENVS)
    if "{bs}" in body:
        fields["bs"] = rng.choice((32, 64, 128, 256, 512))
        fields["ds"] = rng.choice(_DATASETS)
    fields["gpn"] = max(1, ident.gpus_per_node)
    text = body.format(**fields)
    return job_name, header + text


class _Job:
    """One generated job: its meta.json document plus the load model used for statistics and series."""

    __slots__ = ("index", "meta", "sc", "hosts", "hwthreads", "gpu_idx", "state", "duration", "app", "prof",
                 "metrics", "cluster")


def _make_job(w: _World, i: int, ident_cache: dict[int, _Identity]) -> _Job:
    lead = w.leader[i]
    ident = ident_cache.get(lead)
    if ident is None:
        if len(ident_cache) > 64:
            ident_cache.clear()
        ident = ident_cache[lead] = _identity(w, lead)
    rng = _RNG_JOB
    rng.seed(_mix(w.seed, 2, i))
    sc: _SubCluster = ident.sc
    app = _APPS[ident.app]
    now = w.now

    # state, walltime, duration
    k = i % _FORCE_PERIOD
    state = JOB_STATES[k] if k < 12 else _pick(rng, JOB_STATES, _STATE_CUM)
    walltime = ident.walltime
    frac = min(0.98, max(0.002, math.exp(rng.gauss(math.log(0.35), 0.9))))
    if state == "completed":
        duration = max(30, int(walltime * frac))
    elif state == "timeout":
        duration = walltime
    elif state == "failed":
        duration = rng.randint(5, 300) if rng.random() < 0.5 else max(30, int(walltime * frac))
    elif state == "boot_fail":
        duration = rng.randint(5, 300)
    elif state == "pending":
        duration = rng.randint(1, 30)
    elif state == "out_of_memory":
        duration = max(120, int(walltime * rng.uniform(0.05, 0.8)))
    elif state in ("running", "suspended"):
        duration = max(120, int(walltime * rng.uniform(0.02, 0.95)))
    else:  # cancelled, deadline, node_fail, preempted
        duration = max(30, int(walltime * rng.uniform(0.01, 0.95)))

    # times
    submit = w.submit_time((lead + ident.submit_u) / max(1, w.n))
    pos = i - lead
    wait = int(math.exp(rng.gauss(math.log(300), 1.3)) * (1 + math.log2(ident.nodes)))
    wait = min(wait, 3 * 86400) + pos * rng.randint(0, 120)
    start = submit + wait
    # jobs still running (or queued) at `now`, and finished jobs that would end after it, move back in time;
    # they keep a normal queue wait
    if state in ("running", "suspended"):
        start = now - duration
        submit = start - wait
    elif state == "pending":
        start = now - rng.randint(60, 1800)
        submit = start - wait
    elif start + duration > now - 30:
        start = now - 30 - duration - rng.randint(0, 3600)
        submit = start - wait
    submit = max(1, submit)

    # resources
    hosts_all = sc.hosts
    n_nodes = ident.nodes
    n_all = len(hosts_all)
    if n_nodes >= n_all:
        picked = list(range(n_all))
    else:
        # a contiguous stretch with a few holes, as Slurm allocates
        j = rng.randrange(n_all)
        slack = n_all - n_nodes
        picked = []
        while len(picked) < n_nodes:
            if slack and rng.random() < 0.12:
                slack -= 1
            else:
                picked.append(j % n_all)
            j += 1
        picked.sort()
    hosts = [hosts_all[x] for x in picked]
    gpu_idx: list[int] = []
    if ident.gpus_per_node:
        g = ident.gpus_per_node
        if g == len(sc.gpus):
            gpu_idx = list(range(g))
        else:
            off = rng.randrange(len(sc.gpus) // g) * g if len(sc.gpus) % g == 0 else rng.randrange(len(sc.gpus) - g + 1)
            gpu_idx = list(range(off, off + g))
        cpg = sc.cores_per_gpu
        hwt: Any = [c for gi in gpu_idx for c in range(gi * cpg, (gi + 1) * cpg)]
        if len(hwt) == sc.cores:
            hwt = sc.full_hwthreads
    elif ident.alloc < sc.cores:
        a = ident.alloc
        off = rng.randrange(sc.cores // a) * a if sc.cores % a == 0 else rng.randrange(sc.cores - a + 1)
        hwt = list(range(off, off + a))
    else:
        hwt = sc.full_hwthreads
    if gpu_idx:
        accs = [sc.gpus[x] for x in gpu_idx]
        resources = [{"hostname": h, "hwthreads": hwt, "accelerators": accs} for h in hosts]
    else:
        resources = [{"hostname": h, "hwthreads": hwt} for h in hosts]

    # load model
    prof = _profile(rng, ident, app, sc, state, duration, n_nodes)

    # tags
    tags: list[dict[str, str]] = []
    if start >= w.tagger_since and app.tag and state != "pending":
        tags.append({"type": "app", "name": app.tag, "scope": "global"})
    if start >= w.tagger_since and ident.shared == "none" and duration > 600 and prof.pathology_tag:
        tags.append({"type": "jobClass", "name": prof.pathology_tag, "scope": "global"})
    r = rng.random()
    if r < 0.035:
        t = ident.user.tags[0] if r < 0.025 else ident.user.tags[1]
        tags.append({"type": t[0], "name": t[1], "scope": ident.user.name})
    elif r < 0.05:
        t = rng.choice(_ADMIN_TAGS)
        tags.append({"type": t[0], "name": t[1], "scope": "admin"})

    job_id = w.jobid_base + 3 * i + (ident.jitter if lead == i else rng.randrange(3))
    meta: dict[str, Any] = {
        "jobId": job_id,
        "user": ident.user.name,
        "project": ident.project,
        "cluster": ident.cluster,
        "subCluster": sc.name,
        "partition": ident.partition,
    }
    if lead != i or w.array_size(lead) > 1:
        meta["arrayJobId"] = w.jobid_base + 3 * lead + ident.jitter
    meta["numNodes"] = n_nodes
    meta["numHwthreads"] = n_nodes * ident.alloc
    if gpu_idx:
        meta["numAcc"] = n_nodes * len(gpu_idx)
    meta.update({
        "shared": ident.shared,
        "monitoringStatus": 3,
        "smt": 1,
        "jobState": state,
        "submitTime": submit,
        "startTime": start,
        "duration": duration,
        "walltime": walltime,
        "requestedMemory": ident.mem_req * n_nodes,
        "resources": resources,
        "metaData": {"jobName": ident.name, "jobScript": ident.script},
        "tags": tags,
        "statistics": None,
        "energy": 0,
    })
    job = _Job()
    job.index, job.meta, job.sc, job.hosts, job.hwthreads = i, meta, sc, hosts, hwt
    job.gpu_idx, job.state, job.duration, job.app, job.prof = gpu_idx, state, duration, ident.app, prof
    job.cluster = ident.cluster
    job.metrics = w.metrics[(ident.cluster, sc.name)]
    return job


class _Prof:
    """Load model of one job (see ``_profile``)."""

    __slots__ = ("busy", "alloc", "imbalance_nodes", "eff", "dp", "bw", "mem", "ipc", "clk", "intensity",
                 "load_util", "background", "comm", "ib_single", "rd", "wr", "rd_window", "ckpt_period", "pattern",
                 "ramp", "period", "toggles", "susp_at", "mem_shape", "tau", "gpu_util", "gpu_mem", "gpu_pw",
                 "idle_gpus",
                 "pathology", "pathology_tag", "duration", "nodes", "sc", "ngpu")


def _u(rng: random.Random, r: tuple[float, float]) -> float:
    return rng.uniform(r[0], r[1])


def _profile(rng: random.Random, ident: _Identity, app: _App, sc: _SubCluster, state: str, duration: int,
             n_nodes: int) -> _Prof:
    p = _Prof()
    p.sc, p.nodes, p.duration = sc, n_nodes, duration
    a = ident.alloc
    p.alloc = a
    p.ngpu = ident.gpus_per_node
    # busy cores per node
    if app.kind == "gpu" or ident.gpus_per_node:
        busy = min(a, max(1, int(ident.gpus_per_node * rng.uniform(1.5, 8))))
    elif app.kind == "serial":
        busy = min(a, rng.choice((1, 1, 1, 2, 4)))
    elif app.kind == "threads":
        busy = max(1, int(a * rng.uniform(0.7, 1.0)))
    else:
        busy = a
    p.eff = _u(rng, app.eff)
    p.dp = _u(rng, app.dp)
    p.bw = _u(rng, app.bw)
    p.mem = _u(rng, app.mem)
    p.ipc = _u(rng, app.ipc)
    p.comm = _u(rng, app.comm) if n_nodes > 1 else 0.0
    p.ib_single = rng.uniform(0.05, 2.0)
    p.intensity = rng.uniform(0.75, 1.0)
    p.background = rng.uniform(0.2, 0.8)  # load of the other jobs on a shared node
    p.load_util = rng.uniform(0.97, 1.0)
    p.rd = rng.uniform(30, 600)
    p.wr = rng.uniform(20, 400)
    p.rd_window = rng.uniform(60, 600)
    p.ckpt_period = rng.uniform(1800, 4 * 3600)
    p.pattern = app.pattern
    p.ramp = rng.uniform(60, 400)
    p.period = rng.uniform(600, 2400) if app.pattern != "epochs" else rng.uniform(900, 3600)
    p.toggles = []
    if app.pattern == "bursty":
        t = 0.0
        while t < duration:
            t += rng.expovariate(1 / 1200)
            p.toggles.append(t)
    p.susp_at = duration * rng.uniform(0.3, 0.8) if state == "suspended" else None
    p.mem_shape = "oom" if state == "out_of_memory" else "plateau"
    p.tau = rng.uniform(60, 900)
    turbo = sc.clk_turbo - (sc.clk_turbo - sc.clk_base) * app.vec * rng.uniform(0.6, 1.0)
    p.clk = turbo
    if app.gpu and ident.gpus_per_node:
        gu = app.gpu
        p.gpu_util = rng.uniform(gu[0], gu[1])
        p.gpu_mem = rng.uniform(gu[2], gu[3])
        p.gpu_pw = rng.uniform(gu[4], gu[5])
    else:
        p.gpu_util, p.gpu_mem, p.gpu_pw = 0.0, 0.02, 0.0
    p.idle_gpus = 0
    p.imbalance_nodes = 0
    # pathologies
    p.pathology, p.pathology_tag = None, None
    r = rng.random()
    if state in ("boot_fail", "pending"):
        busy = 0
        p.pathology = "idle"
    elif r < 0.04:
        busy = 0
        p.pathology, p.pathology_tag = "idle", "lowutilization"
        p.gpu_util, p.gpu_pw, p.gpu_mem = 0.0, 0.0, 0.01
    elif r < 0.07 and not ident.gpus_per_node:
        p.pathology, p.pathology_tag = "membound", "memorybound"
        p.eff, p.bw, p.ipc = rng.uniform(0.004, 0.02), rng.uniform(0.82, 0.9), rng.uniform(0.35, 0.7)
        busy = a
    elif r < 0.11:
        p.pathology, p.pathology_tag = "imbalance", "lowload"
        if n_nodes > 1:
            p.imbalance_nodes = n_nodes - max(1, n_nodes // 8)  # these nodes idle
        elif ident.gpus_per_node > 1:
            p.idle_gpus = ident.gpus_per_node - 1
            busy = max(1, busy // ident.gpus_per_node)
        else:
            busy = max(1, int(a * rng.uniform(0.05, 0.35)))
    elif r < 0.13 and state != "out_of_memory":
        p.pathology, p.pathology_tag = "leak", "highmemory"
        p.mem_shape = "leak"
    p.busy = busy
    return p


# ------------------------------------------------------------------------------------------- load model


def _shape_values(kind: str, p: _Prof, times: list[float], ts: float) -> list[float]:
    """Shape (0..1) of ``kind`` at the sample ``times`` (right edges of intervals of length ``ts``)."""
    if kind == "load":
        # busy cores stay busy (MPI ranks spin while communicating); only bursty jobs and suspension idle them
        ramp, susp, tog = p.ramp, p.susp_at, p.toggles
        out = []
        for t in times:
            v = t / ramp if t < ramp else 1.0
            if tog and bisect.bisect_right(tog, t) % 2:
                v *= 0.06
            if susp is not None and t > susp:
                v = 0.0
            out.append(v)
        return out
    if kind == "act":
        ramp, period, pat, susp = p.ramp, p.period, p.pattern, p.susp_at
        tw = math.tau / period
        out = []
        tog = p.toggles
        for t in times:
            r = t / ramp if t < ramp else 1.0
            if pat == "steady":
                v = 0.96 + 0.04 * math.sin(t * tw)
            elif pat == "scf":
                v = 0.78 + 0.22 * (0.5 + 0.5 * math.cos(t * tw))
            elif pat == "phases":
                v = 0.35 if (t % period) < 90 else 0.98
            elif pat == "epochs":
                v = 0.3 if (t % period) < 0.06 * period else 0.97
            else:  # bursty
                v = 1.0 if bisect.bisect_right(tog, t) % 2 == 0 else 0.06
            if susp is not None and t > susp:
                v = 0.0
            out.append(r * v)
        return out
    if kind == "mem":
        d = max(1.0, float(p.duration))
        if p.mem_shape == "leak":
            return [0.12 + 0.88 * min(1.0, t / d) for t in times]
        if p.mem_shape == "oom":
            return [0.25 + 0.75 * min(1.0, t / d) ** 0.7 for t in times]
        tau = p.tau
        return [0.2 + 0.8 * (1.0 - math.exp(-t / tau)) for t in times]
    if kind == "rd":
        rw = p.rd_window
        return [max(0.0, min(t, rw) - max(t - ts, 0.0)) / ts if t - ts < rw else 0.0 for t in times]
    # wr: a checkpoint of ~40 s at every ckpt_period
    per = p.ckpt_period
    return [min(1.0, 40.0 / ts) if (t // per) != ((t - ts) // per) else 0.0 for t in times]


# metric -> shape kind
_SHAPE = {m: "act" for m in _METRICS}
_SHAPE.update({"cpu_load": "load", "cpu_user": "load", "mem_used": "mem", "acc_mem_used": "mem",
               "nfs4_read": "rd", "nfs4_write": "wr"})
_SHAPE_KINDS = ("load", "act", "mem", "rd", "wr")


_Model = tuple[float, float, float, float]


def _level(lo: float, hi: float, sig: float, cap: float) -> _Model:
    """(lo, span, sigma, max_span) with lo + max_span * (1 + 3 sigma) <= cap: noise is cut at 3 sigma."""
    max_span = max(0.0, (cap - lo) / (1 + 3 * sig))
    return (lo, min(max(0.0, hi - lo), max_span), sig, max_span)


def _node_model(p: _Prof, busy: int, metrics: tuple[str, ...]) -> dict[str, _Model]:
    """Per node CPU metric -> (lo, span, sigma, max_span): value(t) = lo + span * shape(t) * (1 + sigma * z)."""
    sc = p.sc
    a, c, s = p.alloc, sc.cores, sc.sockets
    fa, fb = a / c, busy / c
    p_any = 2 * sc.flops_dp_peak
    out: dict[str, _Model] = {}

    def put(metric: str, lo: float, hi: float, cap: float) -> None:
        sig = _SIGMA[metric]
        max_span = (cap - lo) / (1 + 3 * sig)
        if max_span < 0.0:
            max_span = 0.0
        span = hi - lo
        out[metric] = (lo, max_span if span > max_span else (span if span > 0.0 else 0.0), sig, max_span)

    put("cpu_load", 0.02, busy * p.load_util, float(a))
    put("cpu_user", 0.3, 100.0 * (busy * 0.985 + (a - busy) * 0.004) / a, 100.0)
    mem_cap = sc.mem_gb * fa * 0.99
    mem_hi = p.mem * sc.mem_gb * fa
    if p.mem_shape == "oom":
        mem_hi = mem_cap
    elif p.mem_shape == "leak":
        mem_hi = min(mem_cap * 0.97, max(mem_hi * 3, sc.mem_gb * fa * 0.6))
    put("mem_used", min(0.3 + 1.5 * fa, mem_hi), max(mem_hi, 0.3 + 1.5 * fa), mem_cap)
    flops = p_any * fb * p.eff
    put("flops_any", 0.0, flops, p_any * 0.85 * fa)
    bw = sc.mem_bw * p.bw * min(1.0, 2.5 * fb)
    put("mem_bw", 0.02 + 0.1 * fa, bw, sc.mem_bw * 0.92)
    put("clock", float(sc.clk_idle), (busy * p.clk + (a - busy) * sc.clk_idle) / a, float(sc.clk_max))
    put("ipc", 0.25, (busy * p.ipc + (a - busy) * 0.3) / a, 4.0)
    # RAPL power is physical: on a shared node it includes what the other jobs there burn (upstream #66)
    bg = p.background * (1.0 - fa)
    p_lo = s * sc.p_idle
    put("cpu_power", p_lo, p_lo + s * (sc.tdp - sc.p_idle) * min(1.0, fb * p.intensity + bg), s * sc.tdp)
    if "mem_power" in metrics:
        m_lo = s * sc.dram_idle
        put("mem_power", m_lo, m_lo + s * (sc.dram_max - sc.dram_idle) * min(1.0, bw / sc.mem_bw + 0.5 * bg),
            s * sc.dram_max)
    if p.nodes > 1 and busy:
        ib = sc.ib * p.comm
        put("ib_recv", 0.05, ib, sc.ib * 0.95)
        put("ib_xmit", 0.05, ib * 0.97, sc.ib * 0.95)
    else:
        put("ib_recv", 0.01, p.ib_single, sc.ib * 0.95)
        put("ib_xmit", 0.01, p.ib_single * 0.8, sc.ib * 0.95)
    put("nfs4_read", 0.02, p.rd, 950.0)
    put("nfs4_write", 0.01, p.wr, 950.0)
    return out


def _gpu_model(p: _Prof, idle: bool) -> dict[str, _Model]:
    sc = p.sc
    util = 0.0 if idle else p.gpu_util
    mem = sc.gpu_mem * (0.01 if idle else p.gpu_mem)
    out = {}
    for metric, lo, hi, cap in (
        ("acc_utilization", 0.0, util, 100.0),
        ("acc_mem_used", 0.3, max(0.3, mem), sc.gpu_mem * 0.99),
        ("acc_power", sc.gpu_idle, sc.gpu_idle + (sc.gpu_tdp - sc.gpu_idle) * p.gpu_pw * util / 100, sc.gpu_tdp),
    ):
        out[metric] = _level(lo, hi, _METRICS[metric][4], cap)
    return out


def _node_busy(p: _Prof, k: int) -> int:
    """Busy cores on the k-th node of the job (imbalance: the last nodes idle)."""
    if p.imbalance_nodes and k >= p.nodes - p.imbalance_nodes:
        return 0
    return p.busy


# ----------------------------------------------------------------------------------------- statistics only


def _times(duration: int, ts: int) -> list[float]:
    n = duration // ts
    if n < 1:
        return [float(max(1, duration))]
    return [float((k + 1) * ts) for k in range(n)]


def _coarse_ts(duration: int, ts: int, max_samples: int) -> int:
    n = max(1, duration // ts)
    return ts * -(-n // max(1, max_samples))


def _node_ts(job: _Job) -> int:
    """Timestep of the node scope CPU series of ``job`` (coarser for long and for many-node jobs)."""
    n_cpu = sum(1 for m in job.metrics if m not in _ACC_METRICS)
    max_node = max(_MIN_SAMPLES, min(_NODE_MAX_SAMPLES, _NODE_BUDGET // (job.prof.nodes * n_cpu)))
    return _coarse_ts(job.duration, 60, max_node)


def _model_stats(job: _Job, rng: random.Random) -> dict[str, Any]:
    """meta.json ``statistics`` from the load model alone (meta_only mode): no series are generated.

    Per metric, value(t) = lo + span * f_node * shape(t) * (1 + sigma * z) as in ``_job_data``; the shape's
    mean/min/max come from a coarse evaluation, the noise adds about two sigma to the extremes.
    """
    p: _Prof = job.prof
    dur = job.duration
    ts = _coarse_ts(dur, 60, 64 if p.toggles else 10)  # on/off phases need a finer look
    coarse = _times(dur, ts)
    nc = len(coarse)
    # the extremes sit at the start (ramp-up): look at it at the resolution of the node series too
    ts_node = _node_ts(job)
    head = [float(min((k + 1) * ts_node, dur)) for k in range(3)] if dur >= ts_node else [float(max(1, dur))]
    shp = {}
    for kind in ("load", "act", "mem"):
        v = _shape_values(kind, p, coarse + head, ts)
        c = v[:nc]
        shp[kind] = (sum(c) / nc, min(v), max(v))
    # input read during the first rd_window seconds, 40 s checkpoints every ckpt_period seconds
    rw, per = p.rd_window, p.ckpt_period
    shp["rd"] = (min(1.0, rw / max(1, dur)), 0.0 if dur > rw + ts_node else 1.0, min(1.0, rw / ts_node))
    n_ckpt = int(dur // per)
    shp["wr"] = (min(1.0, n_ckpt * 40.0 / max(1, dur)), 0.0, min(1.0, 40.0 / ts_node) if n_ckpt else 0.0)
    n = p.nodes
    gauss = rng.gauss
    fs = [gauss(1.0, 0.03) for _ in range(n if n < 8 else 8)]
    fmean = sum(fs) / len(fs)
    fmin, fmax = max(0.9, min(fs)), min(1.06, max(fs))
    idle_n = p.imbalance_nodes
    busy_model = _node_model(p, p.busy, job.metrics)
    idle_model = _node_model(p, 0, job.metrics) if idle_n else None
    w_busy = (n - idle_n) / n
    out: dict[str, Any] = {}
    for metric in job.metrics:
        if metric in _ACC_METRICS:
            continue
        if metric == "flops_dp" or metric == "flops_sp":
            out[metric] = None  # keeps metricConfig order; filled from flops_any below
            continue
        mean_s, min_s, max_s = shp[_SHAPE[metric]]
        lo, span, sig, max_span = busy_model[metric]
        if metric == "cpu_load" or metric == "cpu_user":
            f_mean = f_min = f_max = 1.0
        else:
            f_mean, f_min, f_max = fmean, fmin, fmax
        avg = lo + min(span * f_mean, max_span) * mean_s
        mn = lo + span * f_min * min_s * (1 - 2 * sig)
        mx = lo + min(span * f_max, max_span) * max_s * (1 + 2 * sig)
        if idle_model is not None:
            lo0, span0, sig0, _ = idle_model[metric]
            avg = w_busy * avg + (1 - w_busy) * (lo0 + span0 * mean_s)
            mn = min(mn, lo0 + span0 * min_s * (1 - 2 * sig0))
        out[metric] = _stat(metric, avg, mn, mx)
    st = out["flops_any"]
    dp, sp = p.dp / 2, 1 - p.dp
    out["flops_dp"] = _stat("flops_dp", st["avg"] * dp, st["min"] * dp, st["max"] * dp)
    out["flops_sp"] = _stat("flops_sp", st["avg"] * sp, st["min"] * sp, st["max"] * sp)
    if p.ngpu:
        idle_g = p.idle_gpus
        busy_m, idle_m = _gpu_model(p, False), _gpu_model(p, True)
        g = p.ngpu
        for metric in _ACC_METRICS:
            mean_s, min_s, max_s = shp[_SHAPE[metric]]
            lo_b, sp_b, sig, _ = busy_m[metric]
            lo_i, sp_i, _, _ = idle_m[metric]
            nb, ni = g - idle_g, idle_g
            lo = nb * lo_b + ni * lo_i  # a node with busy GPUs
            span = nb * sp_b + ni * sp_i
            lo0, span0 = g * lo_i, g * sp_i  # a node of an imbalanced job: its GPUs idle
            if metric == "acc_utilization":
                lo, span, lo0, span0 = lo / g, span / g, lo0 / g, span0 / g
            avg = w_busy * (lo + span * mean_s) + (1 - w_busy) * (lo0 + span0 * mean_s)
            mn = lo + span * min_s * (1 - 2 * sig)
            if idle_n:
                mn = min(mn, lo0 + span0 * min_s * (1 - 2 * sig))
            out[metric] = _stat(metric, avg, mn, lo + span * max_s * (1 + 1.5 * sig))
    return out


def _stat(metric: str, avg: float, mn: float, mx: float) -> dict[str, Any]:
    # int(x * 100 + 0.5) / 100 rounds non-negative values like round(x, 2), but 2-3x faster
    mn = int(mn * 100.0 + 0.5) / 100 if mn > 0.0 else 0.0
    avg = int(avg * 100.0 + 0.5) / 100 if avg > mn else mn
    mx = int(mx * 100.0 + 0.5) / 100 if mx > avg else avg
    return {"unit": _UNIT_OF[metric], "avg": avg, "min": mn, "max": mx}


# ------------------------------------------------------------------------------------------------ series

_NOISE_LEN = 1 << 15


def _noise_table() -> list[float]:
    r = random.Random(0x5EED)
    return [max(-3.0, min(3.0, r.gauss(0.0, 1.0))) for _ in range(_NOISE_LEN)]


_NOISE: list[float] = []


def _series(lo: float, span: float, sig: float, shape: list[float], off: int) -> list[float]:
    a = span * sig
    z = _NOISE[off: off + len(shape)]
    return [int((lo + s * (span + a * e)) * 100.0 + 0.5) / 100 for s, e in zip(shape, z)]


def _stats_of(data: list[Any]) -> dict[str, float]:
    vals = [v for v in data if v is not None] if None in data else data
    return {"min": min(vals), "avg": _r2(sum(vals) / len(vals)), "max": max(vals)}


def _job_data(job: _Job, rng: random.Random) -> tuple[dict[str, Any], dict[str, Any]]:
    """(data.json document, meta.json statistics) of ``job``."""
    global _NOISE
    if not _NOISE:
        _NOISE = _noise_table()
    p: _Prof = job.prof
    dur = job.duration
    n = p.nodes
    hosts = job.hosts
    metrics = job.metrics
    cpu_metrics = [m for m in metrics if m not in _ACC_METRICS]
    ts_node = _node_ts(job)
    times = _times(dur, ts_node)
    ns = len(times)
    shapes = {k: _shape_values(k, p, times, ts_node) for k in _SHAPE_KINDS}
    noff = _NOISE_LEN - ns - 1
    factors = [min(1.06, max(0.9, rng.gauss(1.0, 0.03))) for _ in range(min(n, 64))]

    # gaps: a collector outage on one node, or a failed node that stops reporting
    gap: tuple[int, int, int] | None = None
    if ns >= 6:
        if job.state == "node_fail":
            cut = max(1, ns - max(1, ns // 10))
            gap = (rng.randrange(n), cut, ns)
        elif rng.random() < 0.08:
            g0 = rng.randrange(1, ns - 2)
            gap = (rng.randrange(n), g0, min(ns - 1, g0 + rng.randint(1, max(1, ns // 20))))

    node_series: dict[str, list[dict[str, Any]]] = {m: [] for m in metrics}
    models: dict[int, dict[str, _Model]] = {}
    for k, host in enumerate(hosts):
        busy = _node_busy(p, k)
        model = models.get(busy)
        if model is None:
            model = models[busy] = _node_model(p, busy, metrics)
        f = factors[k % len(factors)]
        for metric in cpu_metrics:
            if metric == "flops_dp" or metric == "flops_sp":
                continue
            lo, span, sig, max_span = model[metric]
            sp = span if metric == "cpu_load" or metric == "cpu_user" else min(span * f, max_span)
            data: list[Any] = _series(lo, sp, sig, shapes[_SHAPE[metric]], rng.randrange(noff))
            node_series[metric].append({"hostname": host, "data": data})
        any_ = node_series["flops_any"][-1]["data"]
        dp_share = p.dp / 2
        dp = [int(v * dp_share * 100.0 + 0.5) / 100 for v in any_]
        node_series["flops_dp"].append({"hostname": host, "data": dp})
        sp_ = [int((v - 2 * d) * 100.0 + 0.5) / 100 if v > 2 * d else 0.0 for v, d in zip(any_, dp)]
        node_series["flops_sp"].append({"hostname": host, "data": sp_})
    if gap is not None:
        node, g0, g1 = gap
        for metric in cpu_metrics:
            d = node_series[metric][node]["data"]
            for x in range(g0, g1):
                d[x] = None

    doc: dict[str, Any] = {}
    for metric in cpu_metrics:
        ser = node_series[metric]
        for s in ser:
            s["statistics"] = _stats_of(s["data"])
        doc[metric] = {"node": _scope(metric, ts_node, ser)}

    # core and socket scope for small jobs
    if n <= 2:
        _fine_scopes(job, doc, rng)

    # accelerators
    if p.ngpu:
        _acc_scopes(job, doc, rng)

    stats: dict[str, Any] = {}
    for metric in metrics:
        ser = doc[metric]["node"]["series"]
        st = [s["statistics"] for s in ser]
        stats[metric] = {
            "unit": _UNIT_OF[metric],
            "avg": _r2(sum(x["avg"] for x in st) / n),
            "min": min(x["min"] for x in st),
            "max": max(x["max"] for x in st),
        }
    # reorder to metricConfig order
    return {m: doc[m] for m in metrics}, stats


def _scope(metric: str, ts: int, series: list[dict[str, Any]]) -> dict[str, Any]:
    return {"unit": _UNIT_OF[metric], "timestep": ts, "series": [
        {k: s[k] for k in ("hostname", "id", "statistics", "data") if k in s} for s in series]}


_CORE_METRICS = ("cpu_user", "flops_any", "flops_dp", "flops_sp", "clock", "ipc")
_SOCKET_METRICS = ("mem_bw", "cpu_power", "mem_power")


def _fine_scopes(job: _Job, doc: dict[str, Any], rng: random.Random) -> None:
    p: _Prof = job.prof
    sc = job.sc
    hwt = job.hwthreads
    if isinstance(hwt, orjson.Fragment):
        hwt = list(range(sc.cores))
    a = len(hwt)
    sockets = sorted({c // sc.cores_per_socket for c in hwt})
    sock_metrics = [m for m in _SOCKET_METRICS if m in job.metrics]
    n_series = p.nodes * (a * len(_CORE_METRICS) + len(sockets) * len(sock_metrics))
    max_s = max(_MIN_SAMPLES, min(_NODE_MAX_SAMPLES, _FINE_BUDGET // n_series))
    ts = _coarse_ts(job.duration, 60, max_s)
    times = _times(job.duration, ts)
    act = _shape_values("act", p, times, ts)
    load = _shape_values("load", p, times, ts)
    noff = _NOISE_LEN - len(times) - 1
    p_core = 2 * sc.flops_dp_peak / sc.cores
    core: dict[str, list[dict[str, Any]]] = {m: [] for m in _CORE_METRICS}
    sock: dict[str, list[dict[str, Any]]] = {m: [] for m in sock_metrics}
    dp_share = p.dp / 2
    idle_levels = (_level(0.05, 0.45, 0.2, 100.0), _level(0.0, 0.02, 0.2, 1.0),
                   _level(float(sc.clk_idle), float(sc.clk_idle), 0.0, float(sc.clk_max)), _level(0.2, 0.35, 0.1, 4.0))
    for k, host in enumerate(job.hosts):
        busy = _node_busy(p, k)
        model = _node_model(p, busy, job.metrics)
        for idx, c in enumerate(hwt):
            cid = str(c)
            b = idx < busy
            cf = rng.uniform(0.93, 1.05) if b else 1.0
            if b:
                levels = (
                    _level(0.3, 98.0 * cf, 0.008, 100.0),
                    _level(0.0, p_core * p.eff * cf, 0.12, p_core * 0.85),
                    _level(float(sc.clk_idle), p.clk * cf, 0.01, float(sc.clk_max)),
                    _level(0.25, p.ipc * cf, 0.04, 4.0),
                )
            else:
                levels = idle_levels
            any_: list[float] = []
            for metric, (lo, span, sig, _) in zip(("cpu_user", "flops_any", "clock", "ipc"), levels):
                d = _series(lo, span, sig, load if metric == "cpu_user" else act, rng.randrange(noff))
                if metric == "flops_any":
                    any_ = d
                core[metric].append({"hostname": host, "id": cid, "data": d})
            dp = [int(v * dp_share * 100.0 + 0.5) / 100 for v in any_]
            core["flops_dp"].append({"hostname": host, "id": cid, "data": dp})
            core["flops_sp"].append({"hostname": host, "id": cid, "data": [
                int((v - 2 * x) * 100.0 + 0.5) / 100 if v > 2 * x else 0.0 for v, x in zip(any_, dp)]})
        for s in sockets:
            in_s = [c for c in hwt if c // sc.cores_per_socket == s]
            share = len(in_s) / a
            busy_in = sum(1 for idx, c in enumerate(hwt) if idx < busy and c // sc.cores_per_socket == s)
            bshare = busy_in / busy if busy else share
            for metric in sock_metrics:
                lo, span, sig, _ = model[metric]
                d = _series(lo * share, span * bshare, sig, act, rng.randrange(noff))
                sock[metric].append({"hostname": host, "id": str(s), "data": d})
    for metric, ser in core.items():
        for s in ser:
            s["statistics"] = _stats_of(s["data"])
        doc[metric]["core"] = _scope(metric, ts, ser)
    for metric, ser in sock.items():
        for s in ser:
            s["statistics"] = _stats_of(s["data"])
        doc[metric]["socket"] = _scope(metric, ts, ser)


def _acc_scopes(job: _Job, doc: dict[str, Any], rng: random.Random) -> None:
    p: _Prof = job.prof
    sc = job.sc
    n_gpus = p.nodes * len(job.gpu_idx)
    max_s = max(_MIN_SAMPLES, min(_NODE_MAX_SAMPLES, _ACC_BUDGET // (n_gpus * len(_ACC_METRICS) * 2)))
    ts = _coarse_ts(job.duration, 30, max_s)
    times = _times(job.duration, ts)
    shapes = {k: _shape_values(k, p, times, ts) for k in ("act", "mem")}
    noff = _NOISE_LEN - len(times) - 1
    busy_m, idle_m = _gpu_model(p, False), _gpu_model(p, True)
    acc: dict[str, list[dict[str, Any]]] = {m: [] for m in _ACC_METRICS}
    node: dict[str, list[dict[str, Any]]] = {m: [] for m in _ACC_METRICS}
    g = len(job.gpu_idx)
    for k, host in enumerate(job.hosts):
        node_idle = _node_busy(p, k) == 0
        per: dict[str, list[list[float]]] = {m: [] for m in _ACC_METRICS}
        for j, gi in enumerate(job.gpu_idx):
            idle = node_idle or j >= g - p.idle_gpus
            model = idle_m if idle else busy_m
            for metric in _ACC_METRICS:
                lo, span, sig, _ = model[metric]
                d = _series(lo, span, sig, shapes[_SHAPE[metric]], rng.randrange(noff))
                per[metric].append(d)
                acc[metric].append({"hostname": host, "id": sc.gpus[gi], "data": d})
        for metric in _ACC_METRICS:
            cols = per[metric]
            if metric == "acc_utilization":
                agg = [int(sum(col) / g * 100.0 + 0.5) / 100 for col in zip(*cols)]
            else:
                agg = [int(sum(col) * 100.0 + 0.5) / 100 for col in zip(*cols)]
            node[metric].append({"hostname": host, "data": agg})
    for metric in _ACC_METRICS:
        for s in node[metric]:
            s["statistics"] = _stats_of(s["data"])
        for s in acc[metric]:
            s["statistics"] = _stats_of(s["data"])
        doc[metric] = {"node": _scope(metric, ts, node[metric]), "accelerator": _scope(metric, ts, acc[metric])}


# ------------------------------------------------------------------------------------------------ writing


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
    w = _world(seed, n_jobs, now)
    res = _ChunkResult()
    made: set[str] = set()
    idents: dict[int, _Identity] = {}
    dumps = orjson.dumps
    for i in range(lo, hi):
        job = _make_job(w, i, idents)
        meta = job.meta
        srng = _RNG_STATS
        srng.seed(_mix(seed, 3, i))
        if meta_only:
            meta["statistics"] = _model_stats(job, srng)
            data_doc = None
        else:
            data_doc, meta["statistics"] = _job_data(job, srng)
        rel = job_relpath(job.cluster, meta["jobId"], meta["startTime"])
        path = _mkdirs(root, rel, made)
        if data_doc is not None:  # data first: a job whose meta.json exists is complete
            raw = dumps(data_doc)
            if len(raw) > _GZIP_THRESHOLD:
                raw = gzip.compress(raw, compresslevel=_GZIP_LEVEL, mtime=0)
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


# -------------------------------------------------------------------------------------------------- API


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
    if jobs >= _SEED_STRIDE // 4:
        raise InvalidInput(f"jobs must be below {_SEED_STRIDE // 4}", field="jobs")
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
