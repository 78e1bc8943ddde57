"""The demo clusters (fritz: CPU, alex: GPU), their subclusters, metrics and cluster.json."""

from __future__ import annotations

from typing import Any, TypedDict

import orjson


class SubCluster:
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


class _Processor(TypedDict):
    """The processor arguments of ``SubCluster`` that the subclusters of one processor share."""

    processor: str
    sockets: int
    cores_per_socket: int
    clk_base: int
    clk_turbo: int
    clk_max: int
    clk_idle: int
    flops_per_cycle: int
    tdp: float
    p_idle: float
    dram_max: float
    dram_idle: float
    domains_per_socket: int
    ib: float


def make_clusters() -> dict[str, list[SubCluster]]:
    icx = _Processor(processor="Intel(R) Xeon(R) Platinum 8360Y CPU @ 2.40GHz", sockets=2, cores_per_socket=36,
               clk_base=2400, clk_turbo=3100, clk_max=3500, clk_idle=800, flops_per_cycle=32,
               tdp=250.0, p_idle=70.0, dram_max=40.0, dram_idle=8.0, domains_per_socket=2, ib=12500.0)
    spr = _Processor(processor="Intel(R) Xeon(R) Platinum 8470", sockets=2, cores_per_socket=52,
               clk_base=2000, clk_turbo=3000, clk_max=3800, clk_idle=800, flops_per_cycle=32,
               tdp=350.0, p_idle=95.0, dram_max=60.0, dram_idle=14.0, domains_per_socket=4, ib=12500.0)
    milan = _Processor(processor="AMD EPYC 7713 64-Core Processor", sockets=2, cores_per_socket=64,
                 clk_base=2000, clk_turbo=3000, clk_max=3675, clk_idle=1500, flops_per_cycle=16,
                 tdp=225.0, p_idle=85.0, dram_max=35.0, dram_idle=10.0, domains_per_socket=4, ib=25000.0)
    fritz = [
        SubCluster("main", mem_gb=256, mem_bw=350.0, prefix="f", width=4,
                    ranges=tuple((r * 100 + 1, r * 100 + 64) for r in range(1, 9)), **icx),
        SubCluster("spr1tb", mem_gb=1024, mem_bw=520.0, prefix="f", width=4,
                    ranges=((2101, 2148), (2201, 2248)), **spr),
        SubCluster("spr2tb", mem_gb=2048, mem_bw=500.0, prefix="f", width=4,
                    ranges=((2149, 2164), (2249, 2264)), removes=("mem_power",), **spr),
    ]
    alex = [
        SubCluster("a40", mem_gb=512, mem_bw=400.0, prefix="a", width=4, ranges=((101, 132), (201, 232)),
                    gpus=_A40_IDS, gpu_model="A40", gpu_mem=48.0, gpu_tdp=300.0, gpu_idle=30.0, **milan),
        SubCluster("a100", mem_gb=1024, mem_bw=400.0, prefix="a", width=4, ranges=((501, 510), (601, 610)),
                    gpus=_A100_IDS, gpu_model="A100", gpu_mem=40.0, gpu_tdp=400.0, gpu_idle=55.0, **milan),
    ]
    return {"fritz": fritz, "alex": alex}


# name -> (unit, native scope, aggregation, timestep, noise sigma)
METRICS: dict[str, tuple[dict[str, str], str, str, int, float]] = {
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
_CPU_METRICS = tuple(m for m in METRICS if not m.startswith("acc_"))
SIGMA = {m: v[4] for m, v in METRICS.items()}
ACC_METRICS = ("acc_utilization", "acc_mem_used", "acc_power")
_FOOTPRINT = {"cpu_load": "avg", "mem_used": "max", "flops_any": "avg", "mem_bw": "avg",
              "acc_utilization": "avg", "acc_mem_used": "max"}
_ENERGY = {"cpu_power": "power", "mem_power": "power", "acc_power": "power"}
_LOWER_IS_BETTER = frozenset({"mem_used"})


def _thresholds(sc: SubCluster, metric: str, gpu_cluster: bool) -> tuple[float, float, float, float]:
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


def metric_names(cluster: str) -> tuple[str, ...]:
    return _CPU_METRICS + (ACC_METRICS if cluster == "alex" else ())


def _cluster_json(name: str, scs: list[SubCluster]) -> dict[str, Any]:
    gpu = any(sc.gpus for sc in scs)
    mcs = []
    for metric in metric_names(name):
        unit, scope, agg, ts, _ = METRICS[metric]
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
    return {name: _cluster_json(name, scs) for name, scs in make_clusters().items()}
