"""Metric series and statistics of a demo job from its load model (data.json, or statistics only)."""

from __future__ import annotations

import bisect
import math
import random
from typing import Any

import orjson

from cc_backend.demo.applications import UNIT_OF
from cc_backend.demo.base import ACC_BUDGET, FINE_BUDGET, MIN_SAMPLES, NODE_BUDGET, NODE_MAX_SAMPLES, r2
from cc_backend.demo.clusters import ACC_METRICS, METRICS, SIGMA, SubCluster
from cc_backend.demo.jobs import DemoJob, Prof


def _shape_values(kind: str, p: Prof, times: list[float], ts: float) -> list[float]:
    """Shape (0..1) of ``kind`` at the sample ``times`` (right edges of intervals of length ``ts``)."""
    if kind == "load":
        # busy cores stay busy (MPI ranks spin while communicating); only bursty jobs idle them
        ramp, tog = p.ramp, p.toggles
        out = []
        for t in times:
            v = t / ramp if t < ramp else 1.0
            if tog and bisect.bisect_right(tog, t) % 2:
                v *= 0.06
            out.append(v)
        return out
    if kind == "act":
        ramp, period, pat = p.ramp, p.period, p.pattern
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
_SHAPE = {m: "act" for m in METRICS}
_SHAPE.update({"cpu_load": "load", "cpu_user": "load", "mem_used": "mem", "acc_mem_used": "mem",
               "nfs4_read": "rd", "nfs4_write": "wr"})
_SHAPE_KINDS = ("load", "act", "mem", "rd", "wr")


_Model = tuple[float, float, float, float]


def _level(lo: float, hi: float, sig: float, cap: float) -> _Model:
    """(lo, span, sigma, max_span) with lo + max_span * (1 + 3 sigma) <= cap: noise is cut at 3 sigma."""
    max_span = max(0.0, (cap - lo) / (1 + 3 * sig))
    return (lo, min(max(0.0, hi - lo), max_span), sig, max_span)


def _node_model(p: Prof, busy: int, metrics: tuple[str, ...]) -> dict[str, _Model]:
    """Per node CPU metric -> (lo, span, sigma, max_span): value(t) = lo + span * shape(t) * (1 + sigma * z)."""
    sc = p.sc
    a, c, s = p.alloc, sc.cores, sc.sockets
    fa, fb = a / c, busy / c
    p_any = 2 * sc.flops_dp_peak
    out: dict[str, _Model] = {}

    def put(metric: str, lo: float, hi: float, cap: float) -> None:
        sig = SIGMA[metric]
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


def _gpu_model(p: Prof, idle: bool) -> dict[str, _Model]:
    sc = p.sc
    util = 0.0 if idle else p.gpu_util
    mem = sc.gpu_mem * (0.01 if idle else p.gpu_mem)
    out = {}
    for metric, lo, hi, cap in (
        ("acc_utilization", 0.0, util, 100.0),
        ("acc_mem_used", 0.3, max(0.3, mem), sc.gpu_mem * 0.99),
        ("acc_power", sc.gpu_idle, sc.gpu_idle + (sc.gpu_tdp - sc.gpu_idle) * p.gpu_pw * util / 100, sc.gpu_tdp),
    ):
        out[metric] = _level(lo, hi, METRICS[metric][4], cap)
    return out


def _node_busy(p: Prof, k: int) -> int:
    """Busy cores on the k-th node of the job (imbalance: the last nodes idle)."""
    if p.imbalance_nodes and k >= p.nodes - p.imbalance_nodes:
        return 0
    return p.busy




def _times(duration: int, ts: int) -> list[float]:
    n = duration // ts
    if n < 1:
        return [float(max(1, duration))]
    return [float((k + 1) * ts) for k in range(n)]


def _coarse_ts(duration: int, ts: int, max_samples: int) -> int:
    n = max(1, duration // ts)
    return ts * -(-n // max(1, max_samples))


def _node_ts(job: DemoJob) -> int:
    """Timestep of the node scope CPU series of ``job`` (coarser for long and for many-node jobs)."""
    n_cpu = sum(1 for m in job.metrics if m not in ACC_METRICS)
    max_node = max(MIN_SAMPLES, min(NODE_MAX_SAMPLES, NODE_BUDGET // (job.prof.nodes * n_cpu)))
    return _coarse_ts(job.duration, 60, max_node)


def model_stats(job: DemoJob, rng: random.Random) -> dict[str, Any]:
    """meta.json ``statistics`` from the load model alone (meta_only mode): no series are generated.

    Per metric, value(t) = lo + span * f_node * shape(t) * (1 + sigma * z) as in ``job_data``; the shape's
    mean/min/max come from a coarse evaluation, the noise adds about two sigma to the extremes.
    """
    p: Prof = job.prof
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
        if metric in ACC_METRICS:
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
        for metric in ACC_METRICS:
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
    return {"unit": UNIT_OF[metric], "avg": avg, "min": mn, "max": mx}



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
    return {"min": min(vals), "avg": r2(sum(vals) / len(vals)), "max": max(vals)}


def job_data(job: DemoJob, rng: random.Random) -> tuple[dict[str, Any], dict[str, Any]]:
    """(data.json document, meta.json statistics) of ``job``."""
    global _NOISE
    if not _NOISE:
        _NOISE = _noise_table()
    p: Prof = job.prof
    dur = job.duration
    n = p.nodes
    hosts = job.hosts
    metrics = job.metrics
    cpu_metrics = [m for m in metrics if m not in ACC_METRICS]
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
            "unit": UNIT_OF[metric],
            "avg": r2(sum(x["avg"] for x in st) / n),
            "min": min(x["min"] for x in st),
            "max": max(x["max"] for x in st),
        }
    # reorder to metricConfig order
    return {m: doc[m] for m in metrics}, stats


def _scope(metric: str, ts: int, series: list[dict[str, Any]]) -> dict[str, Any]:
    return {"unit": UNIT_OF[metric], "timestep": ts, "series": [
        {k: s[k] for k in ("hostname", "id", "statistics", "data") if k in s} for s in series]}


_CORE_METRICS = ("cpu_user", "flops_any", "flops_dp", "flops_sp", "clock", "ipc")
_SOCKET_METRICS = ("mem_bw", "cpu_power", "mem_power")
#: The metrics ``core_levels`` models, in its order (flops_dp and flops_sp are shares of flops_any).
CORE_LEVEL_METRICS = ("cpu_user", "flops_any", "clock", "ipc")


def core_levels(p: Prof, busy: bool, cf: float) -> tuple[_Model, _Model, _Model, _Model]:
    """Models of ``CORE_LEVEL_METRICS`` on one core: a busy one (``cf``: its speed factor, ~0.93-1.05) or an idle one."""
    sc = p.sc
    if not busy:
        return (_level(0.05, 0.45, 0.2, 100.0), _level(0.0, 0.02, 0.2, 1.0),
                _level(float(sc.clk_idle), float(sc.clk_idle), 0.0, float(sc.clk_max)), _level(0.2, 0.35, 0.1, 4.0))
    p_core = 2 * sc.flops_dp_peak / sc.cores
    return (
        _level(0.3, 98.0 * cf, 0.008, 100.0),
        _level(0.0, p_core * p.eff * cf, 0.12, p_core * 0.85),
        _level(float(sc.clk_idle), p.clk * cf, 0.01, float(sc.clk_max)),
        _level(0.25, p.ipc * cf, 0.04, 4.0),
    )


def socket_shares(sc: SubCluster, hwt: list[int], busy: int) -> list[tuple[int, float, float]]:
    """(socket, share of the job's cores, share of its busy cores) for the sockets the cores ``hwt`` are on.

    The first ``busy`` cores of ``hwt`` are the busy ones; a socket's series is the node model's level times the
    first share plus its span times the second.
    """
    a = len(hwt)
    out = []
    for s in sorted({c // sc.cores_per_socket for c in hwt}):
        share = sum(1 for c in hwt if c // sc.cores_per_socket == s) / a
        busy_in = sum(1 for idx, c in enumerate(hwt) if idx < busy and c // sc.cores_per_socket == s)
        out.append((s, share, busy_in / busy if busy else share))
    return out


def _fine_scopes(job: DemoJob, doc: dict[str, Any], rng: random.Random) -> None:
    p: Prof = job.prof
    sc = job.sc
    hwt = job.hwthreads
    if isinstance(hwt, orjson.Fragment):
        hwt = list(range(sc.cores))
    a = len(hwt)
    sockets = sorted({c // sc.cores_per_socket for c in hwt})
    sock_metrics = [m for m in _SOCKET_METRICS if m in job.metrics]
    n_series = p.nodes * (a * len(_CORE_METRICS) + len(sockets) * len(sock_metrics))
    max_s = max(MIN_SAMPLES, min(NODE_MAX_SAMPLES, FINE_BUDGET // n_series))
    ts = _coarse_ts(job.duration, 60, max_s)
    times = _times(job.duration, ts)
    act = _shape_values("act", p, times, ts)
    load = _shape_values("load", p, times, ts)
    noff = _NOISE_LEN - len(times) - 1
    core: dict[str, list[dict[str, Any]]] = {m: [] for m in _CORE_METRICS}
    sock: dict[str, list[dict[str, Any]]] = {m: [] for m in sock_metrics}
    dp_share = p.dp / 2
    for k, host in enumerate(job.hosts):
        busy = _node_busy(p, k)
        model = _node_model(p, busy, job.metrics)
        for idx, c in enumerate(hwt):
            cid = str(c)
            b = idx < busy
            levels = core_levels(p, b, rng.uniform(0.93, 1.05) if b else 1.0)
            any_: list[float] = []
            for metric, (lo, span, sig, _) in zip(CORE_LEVEL_METRICS, levels):
                d = _series(lo, span, sig, load if metric == "cpu_user" else act, rng.randrange(noff))
                if metric == "flops_any":
                    any_ = d
                core[metric].append({"hostname": host, "id": cid, "data": d})
            dp = [int(v * dp_share * 100.0 + 0.5) / 100 for v in any_]
            core["flops_dp"].append({"hostname": host, "id": cid, "data": dp})
            core["flops_sp"].append({"hostname": host, "id": cid, "data": [
                int((v - 2 * x) * 100.0 + 0.5) / 100 if v > 2 * x else 0.0 for v, x in zip(any_, dp)]})
        for s, share, bshare in socket_shares(sc, hwt, busy):
            for metric in sock_metrics:
                lo, span, sig, _ = model[metric]
                d = _series(lo * share, span * bshare, sig, act, rng.randrange(noff))
                sock[metric].append({"hostname": host, "id": str(s), "data": d})
    for metric, ser in core.items():
        for one in ser:
            one["statistics"] = _stats_of(one["data"])
        doc[metric]["core"] = _scope(metric, ts, ser)
    for metric, ser in sock.items():
        for one in ser:
            one["statistics"] = _stats_of(one["data"])
        doc[metric]["socket"] = _scope(metric, ts, ser)


def _acc_scopes(job: DemoJob, doc: dict[str, Any], rng: random.Random) -> None:
    p: Prof = job.prof
    sc = job.sc
    n_gpus = p.nodes * len(job.gpu_idx)
    max_s = max(MIN_SAMPLES, min(NODE_MAX_SAMPLES, ACC_BUDGET // (n_gpus * len(ACC_METRICS) * 2)))
    ts = _coarse_ts(job.duration, 30, max_s)
    times = _times(job.duration, ts)
    shapes = {k: _shape_values(k, p, times, ts) for k in ("act", "mem")}
    noff = _NOISE_LEN - len(times) - 1
    busy_m, idle_m = _gpu_model(p, False), _gpu_model(p, True)
    acc: dict[str, list[dict[str, Any]]] = {m: [] for m in ACC_METRICS}
    node: dict[str, list[dict[str, Any]]] = {m: [] for m in ACC_METRICS}
    g = len(job.gpu_idx)
    for k, host in enumerate(job.hosts):
        node_idle = _node_busy(p, k) == 0
        per: dict[str, list[list[float]]] = {m: [] for m in ACC_METRICS}
        for j, gi in enumerate(job.gpu_idx):
            idle = node_idle or j >= g - p.idle_gpus
            model = idle_m if idle else busy_m
            for metric in ACC_METRICS:
                lo, span, sig, _ = model[metric]
                d = _series(lo, span, sig, shapes[_SHAPE[metric]], rng.randrange(noff))
                per[metric].append(d)
                acc[metric].append({"hostname": host, "id": sc.gpus[gi], "data": d})
        for metric in ACC_METRICS:
            cols = per[metric]
            if metric == "acc_utilization":
                agg = [int(sum(col) / g * 100.0 + 0.5) / 100 for col in zip(*cols)]
            else:
                agg = [int(sum(col) * 100.0 + 0.5) / 100 for col in zip(*cols)]
            node[metric].append({"hostname": host, "data": agg})
    for metric in ACC_METRICS:
        for s in node[metric]:
            s["statistics"] = _stats_of(s["data"])
        for s in acc[metric]:
            s["statistics"] = _stats_of(s["data"])
        doc[metric] = {"node": _scope(metric, ts, node[metric]), "accelerator": _scope(metric, ts, acc[metric])}
