"""The efficiency report of one job: how well it used what it allocated, with verdicts and actionable notes.

What ``cc-backend report``, ``GET /api/jobs/report/<id>``, the job view and the TUI show (seff/jobstats
style). Definitions, all per node and from the job's statistics (meta.json when archived, the live
metric backend while it runs):

- cores per node: sockets x cores per socket x threads per core of the subcluster (hardware threads
  of one node); cores allocated per node: ``numHwthreads / numNodes``, the whole node when the job
  recorded no hardware threads.
- CPU load: ``cpu_load`` avg (the average of the per-node averages) over the cores allocated per node.
- memory: ``mem_used`` max over the subcluster's ``mem_used`` peak (the node's memory).
- flops / memory bandwidth: ``flops_any`` / ``mem_bw`` avg over the metric's peak, scaled to the
  allocated share of the node; judged by the metric's own ``caution`` and ``alert`` levels.
- GPU utilisation: ``acc_utilization`` avg over 100 %; GPU memory: ``acc_mem_used`` max over its peak
  (only for jobs with accelerators). The peak is one GPU's; a node's value of a summed metric is the sum
  over the job's GPUs on the node, so the reference is the peak x GPUs per node (``numAcc / numNodes``).
- imbalance: the per-node ``cpu_load`` averages, busiest node over the mean (jobs of 2+ nodes).
- energy: the job's ``energy`` (kWh, computed at archiving; null when none was recorded); CO2 = kWh x the
  site's emission constant (g/kWh).
"""

from __future__ import annotations

import re
import textwrap
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cc_backend.archive.cluster import unit_text
from cc_backend.errors import CCError
from cc_backend.jobs.jobview import energy_summary, subcluster_of
from cc_backend.metrics.jobdata import hidden_metrics, is_archived, job_stats, scoped_job_stats

if TYPE_CHECKING:
    from cc_backend.archive.cluster import MetricConfig, SubCluster
    from cc_backend.archive.fs import FileArchive
    from cc_backend.auth.security import Viewer
    from cc_backend.metrics.dispatch import MetricDispatch
    from cc_backend.runtime import Runtime
    from cc_backend.taggers.jobclasses import JobClassifier

#: CPU load, GPU utilisation and (without site levels) flops/bandwidth below this share of the reference
#: are "bad": three quarters of what was allocated sat idle, the case seff and jobstats flag first.
LOAD_BAD = 0.25
#: Below this share "warn": a quarter or more of the allocation idle is worth a look, less is normal jitter.
LOAD_WARN = 0.75
#: CPU load above this share of the allocated cores is oversubscription: the factor of the shipped
#: ``highload`` job class (excessivecpuload_threshold_factor), so report and tag agree.
LOAD_OVER = 1.2
#: Memory (node or GPU) above this share of its peak is "warn": close to running out; the factor of the
#: shipped ``highMemoryUsage`` job class (highmemoryusage_threshold_factor).
MEMORY_WARN = 0.9
#: Busiest node over the mean node load above this is "bad": one node carries at least twice its share.
IMBALANCE_BAD = 2.0
#: Above this "warn": a quarter more than the mean on one node is past the noise of start-up phases.
IMBALANCE_WARN = 1.25
#: A node whose average load is below this share of the cores allocated per node counts as idle.
IDLE_NODE_SHARE = 0.1
#: A completed job that used less than this share of its walltime request gets a note: a closer request
#: lets the scheduler backfill it sooner.
WALLTIME_LOW = 0.5
#: At most this many host names in one sentence.
HOSTS_NAMED = 5

VERDICTS = ("good", "warn", "bad", "unknown")
_CHECK_METRICS = (("cpu_load", "cpu_load", "CPU load"), ("memory", "mem_used", "Memory"),
                  ("flops", "flops_any", "Flops"), ("mem_bw", "mem_bw", "Memory bandwidth"),
                  ("gpu_util", "acc_utilization", "GPU utilisation"), ("gpu_mem", "acc_mem_used", "GPU memory"))
_GPU_CHECKS = frozenset({"gpu_util", "gpu_mem"})


def cores_per_node(subcluster: SubCluster) -> int:
    """Hardware threads of one node: sockets x cores per socket x threads per core (the topology's count without those)."""
    product = subcluster.sockets_per_node * subcluster.cores_per_socket * subcluster.threads_per_core
    return product or len(subcluster.topology.node)


def _num(value: float) -> str:
    """A number as a sentence shows it: three significant digits, no trailing zeros."""
    if value == int(value) and abs(value) < 1e6:
        return str(int(value))
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def _pct(ratio: float) -> str:
    return f"{ratio * 100:.0f}%"


def _hosts(names: Sequence[str]) -> str:
    shown = ", ".join(names[:HOSTS_NAMED])
    return shown + (f" and {len(names) - HOSTS_NAMED} more" if len(names) > HOSTS_NAMED else "")


def _duration(seconds: int) -> str:
    days, rest = divmod(max(int(seconds), 0), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}d {clock}" if days else clock


def _no_data_reason(job: Mapping[str, Any], live: MetricDispatch | None) -> str | None:
    """Why the job cannot have statistics at all, or None when they may be read."""
    if is_archived(job) or live is not None:
        return None
    if job.get("jobState") == "running":
        return "the job is still running and no metric store is configured"
    return "the job was not archived (no metric data)"


def _statistics(archive: FileArchive, job: Mapping[str, Any], names: Sequence[str], hidden: frozenset[str],
                live: MetricDispatch | None) -> tuple[dict[str, dict[str, float]], str | None]:
    """``{metric: {avg, min, max}}`` of the job and, when there are none, why."""
    reason = _no_data_reason(job, live)
    if reason is not None:
        return {}, reason
    try:
        entries = job_stats(archive, job, names, hidden=hidden, live=live)
    except (CCError, OSError, ValueError) as exc:  # a broken or missing meta.json, an unreachable backend
        return {}, f"the job's statistics could not be read: {exc}"
    stats = {entry["name"]: entry["data"] for entry in entries}
    if not stats:
        return {}, "no statistics were recorded for this job"
    return stats, None


def _node_loads(archive: FileArchive, job: Mapping[str, Any], hidden: frozenset[str],
                live: MetricDispatch | None) -> dict[str, float]:
    """Average ``cpu_load`` of each node of the job (empty when unknown)."""
    if _no_data_reason(job, live) is not None:
        return {}
    try:
        scoped = scoped_job_stats(archive, job, ["cpu_load"], ["node"], registry=archive.registry(), hidden=hidden,
                                  live=live)
    except (CCError, OSError, ValueError):
        return {}
    loads: dict[str, float] = {}
    for entry in scoped:
        if entry["scope"] == "node":
            for stat in entry["stats"]:
                loads[str(stat.get("hostname") or "")] = float(stat["data"]["avg"])
    return loads


def _check(key: str, label: str, metric: str | None, unit: str, reference: float | None, reference_label: str,
           value: float | None = None) -> dict[str, Any]:
    ratio = round(value / reference, 4) if value is not None and reference else None
    return {"key": key, "label": label, "metric": metric, "value": value, "unit": unit, "reference": reference,
            "referenceLabel": reference_label, "ratio": ratio, "verdict": "unknown", "text": ""}


def _gpus_per_node(job: Mapping[str, Any]) -> float:
    """Accelerators the job holds on each node (a fraction when they are spread unevenly)."""
    accelerators, nodes = int(job.get("numAcc") or 0), int(job.get("numNodes") or 0)
    return accelerators / nodes if nodes else float(accelerators)


def _rate_verdict(value: float, ratio: float | None, config: MetricConfig, share: float) -> str:
    """Flops and bandwidth: the site's alert/caution levels (scaled to the allocated share) when set, else LOAD_*."""
    if config.caution > config.alert > 0:
        return "bad" if value < config.alert * share else "warn" if value < config.caution * share else "good"
    if ratio is None:
        return "unknown"
    return "bad" if ratio < LOAD_BAD else "warn" if ratio < LOAD_WARN else "good"


def _metric_checks(subcluster: SubCluster, job: Mapping[str, Any], stats: Mapping[str, Mapping[str, float]],
                   hidden: frozenset[str], per_node: float, share: float, reason: str | None,
                   notes: list[str]) -> list[dict[str, Any]]:
    """Every check but imbalance, in report order, for the metrics the subcluster has (and the viewer may see)."""
    checks = []
    has_gpus = int(job.get("numAcc") or 0) > 0
    for key, metric, label in _CHECK_METRICS:
        config = subcluster.metric(metric)
        if config is None or metric in hidden or (key in _GPU_CHECKS and not has_gpus):
            continue
        stat = stats.get(metric)
        value = None if stat is None else float(stat["max" if key in ("memory", "gpu_mem") else "avg"])
        if key == "cpu_load":
            reference, ref_label = per_node, "cores allocated"
        elif key == "memory":
            reference, ref_label = config.peak, "node memory"
        elif key == "gpu_util":
            reference, ref_label = 100.0, "peak"
        elif key == "gpu_mem":
            gpus = _gpus_per_node(job) if (config.aggregation or "sum") == "sum" else 1
            reference, ref_label = config.peak * gpus, f"memory of {_num(gpus)} GPU{'s' if gpus != 1 else ''}"
        else:
            reference, ref_label = config.peak * share, "peak"
        unit = "%" if key == "gpu_util" else unit_text(config.unit)  # a share of 100 whatever cluster.json calls it
        check = _check(key, label, metric, unit, float(reference) if reference else None, ref_label, value)
        if value is None:
            check["text"] = f"No {metric} statistics: {reason or 'the metric was not recorded for this job'}."
        else:
            _judge(check, config, share, notes)
        checks.append(check)
    return checks


def _judge(check: dict[str, Any], config: MetricConfig, share: float, notes: list[str]) -> None:
    """Set verdict and text of a check with a value, and add its actionable note."""
    key, value, ratio, reference = check["key"], check["value"], check["ratio"], check["reference"]
    unit = f" {check['unit']}" if check["unit"] else ""
    if ratio is None:
        check["text"] = f"{check['label']} {_num(value)}{unit}: the subcluster defines no peak to compare with."
        return
    if key == "cpu_load":
        verdict = "bad" if ratio < LOAD_BAD else "warn" if ratio < LOAD_WARN or ratio > LOAD_OVER else "good"
        text = f"Average load {_num(value)} on {_num(reference)} cores allocated per node ({_pct(ratio)})"
        if ratio > LOAD_OVER:
            text += ": more busy threads than cores, the job oversubscribed them."
            notes.append("The load exceeded the allocated cores: match the threads and ranks "
                         "(OMP_NUM_THREADS, --ntasks-per-node) to the allocation.")
        elif verdict != "good":
            text += ": " + ("most" if verdict == "bad" else "part") + " of the allocated cores sat idle."
            notes.append(f"The job kept about {_num(value)} of {_num(reference)} allocated cores per node busy: "
                         "request fewer cores, or check that the program runs in parallel (threads, MPI ranks).")
        else:
            text += "."
    elif key in ("memory", "gpu_mem"):
        verdict = "warn" if ratio > MEMORY_WARN else "good"
        what = "node" if key == "memory" else "GPU"
        text = f"Peak memory {_num(value)}{unit} of {_num(reference)}{unit} {what} memory ({_pct(ratio)})"
        if verdict == "warn":
            text += ": beyond the configured capacity." if ratio > 1 else ": close to running out."
            state = "more than the configured peak" if ratio > 1 else "the job is close to running out"
            notes.append(f"Memory use reached {_pct(ratio)} of the {what} memory: {state}; request more memory "
                         "(or spread the data over more " + ("nodes)." if key == "memory" else "GPUs)."))
        else:
            text += "."
    elif key == "gpu_util":
        verdict = "bad" if ratio < LOAD_BAD else "warn" if ratio < LOAD_WARN else "good"
        text = f"The GPUs were busy {_pct(ratio)} of the time on average"
        text += "." if verdict == "good" else ": " + ("mostly" if verdict == "bad" else "partly") + " idle."
        if verdict != "good":
            notes.append(f"The GPUs were busy {_pct(ratio)} of the time: request fewer GPUs, or check that the "
                         "program uses all of them (and does not wait on the CPU or I/O).")
    else:
        verdict = _rate_verdict(value, ratio, config, share)
        what = "floating-point rate" if key == "flops" else "memory bandwidth"
        text = f"Average {what} {_num(value)}{unit}, {_pct(ratio)} of the peak {_num(reference)}{unit}"
        text += "." if verdict == "good" else ": " + ("very low" if verdict == "bad" else "low") + \
            " by the cluster's levels."
        if key == "flops" and verdict == "bad":
            notes.append("Few floating-point operations: the job may wait on I/O or communication, or its code is "
                         "not compute-bound; a profile (e.g. LIKWID) shows where the time goes.")
    check["verdict"], check["text"] = verdict, text


def _imbalance(job: Mapping[str, Any], loads: Mapping[str, float], per_node: float, notes: list[str]) -> dict[str, Any]:
    """Busiest node over the mean node load; names the busiest and the idle nodes."""
    check = _check("imbalance", "Load balance", None, "", 1.0, "balanced")
    nodes = int(job.get("numNodes") or 0)
    if not loads:
        check["text"] = "No per-node cpu_load data: the balance between nodes is unknown."
        return check
    mean = sum(loads.values()) / len(loads)
    idle_below = IDLE_NODE_SHARE * per_node
    if mean < idle_below:
        check["text"] = f"No node carried load (mean load {_num(mean)}): there is no balance to judge."
        return check
    busiest = max(loads, key=lambda host: loads[host])
    idle = [host for host in loads if loads[host] < idle_below]
    value = loads[busiest] / mean
    check["value"] = round(value, 4)
    check["ratio"] = round(value, 4)
    verdict = check["verdict"] = "bad" if value > IMBALANCE_BAD else "warn" if value > IMBALANCE_WARN else "good"
    text = (f"Busiest node {busiest} at load {_num(loads[busiest])}, {_num(value)} times the mean {_num(mean)} "
            f"of {len(loads)} nodes")
    text += f"; idle: {_hosts(idle)}." if idle else "."
    check["text"] = text
    busy = len(loads) - len(idle)
    if verdict != "good":
        if idle:
            notes.append(f"Requested {nodes or len(loads)} nodes, the load was on {busy}: run fewer nodes or spread "
                         "the work (srun --ntasks-per-node).")
        else:
            least = min(loads, key=lambda host: loads[host])
            notes.append(f"The load was uneven over the {len(loads)} nodes (busiest {busiest} at {_num(loads[busiest])}, "
                         f"least busy {least} at {_num(loads[least])}): check how the work is distributed.")
    return check


def _runtime(job: Mapping[str, Any], notes: list[str]) -> dict[str, Any]:
    seconds = int(job.get("duration") or 0)
    if job.get("jobState") == "running":
        seconds = max(seconds, int(time.time()) - int(job.get("startTime") or 0))  # the row's is refreshed only now and then
    walltime = int(job.get("walltime") or 0)
    fraction = round(seconds / walltime, 4) if walltime > 0 else None
    if fraction is not None and fraction < WALLTIME_LOW and job.get("jobState") == "completed":
        notes.append(f"The job ran {_duration(seconds)} of the {_duration(walltime)} requested ({_pct(fraction)}): "
                     "a closer walltime request lets the scheduler start it sooner.")
    return {"seconds": seconds, "walltimeSeconds": walltime, "fractionOfWalltime": fraction}


def _energy(job: Mapping[str, Any], subcluster: SubCluster | None, emission_constant: int) -> dict[str, Any] | None:
    summary = energy_summary(job, subcluster, emission_constant)
    if summary is None or not summary["total"]:  # energy metrics configured but none recorded: unknown, not zero
        return None
    return {"kwh": summary["total"], "co2Grams": summary.get("co2_grams"), "emissionConstant": emission_constant}


def _job_classes(classifier: JobClassifier | None, job: Mapping[str, Any], subcluster: SubCluster | None,
                 stats: Mapping[str, Mapping[str, float]]) -> list[dict[str, str]]:
    if classifier is None or subcluster is None or not stats:
        return []
    # the rules read meta.json's statistics; only those the viewer may see, so hints cannot leak hidden values
    return [{"tag": tag, "hint": hint} for tag, hint in classifier.classify({**job, "statistics": stats}, subcluster)]


def _summary(checks: Sequence[Mapping[str, Any]], reason: str | None, subcluster: SubCluster | None) -> str:
    if subcluster is None:
        return "No report: the job's cluster or subcluster is not in the archive's cluster.json."
    parts = []
    for check in checks:
        ratio = check["ratio"]
        if ratio is None:
            continue
        if check["key"] == "imbalance":
            parts.append(f"busiest node {_num(ratio)}x the mean load")
        elif check["key"] == "cpu_load":
            parts.append(f"CPU load {_pct(ratio)} of the allocated cores")
        elif check["key"] == "memory":
            parts.append(f"memory {_pct(ratio)} of the node")
        else:
            parts.append(f"{check['label'].lower().replace('gpu', 'GPU')} {_pct(ratio)} of peak")
    if not parts:
        return f"No metric data: {reason or 'none of the checked metrics was recorded'}."
    return "; ".join(parts)


def efficiency_report(archive: FileArchive, job: Mapping[str, Any], *, classifier: JobClassifier | None = None,
                      emission_constant: int = 0, live: MetricDispatch | None = None,
                      viewer: Viewer | None = None) -> dict[str, Any]:
    """The report of ``job`` (as ``jobs.query.get_job`` returns it); see the module docstring for the definitions.

    Never raises for a job without data: checks get verdict "unknown" and a text saying why.
    """
    subcluster = subcluster_of(archive, job)
    stats: dict[str, dict[str, float]] = {}
    loads: dict[str, float] = {}
    reason: str | None = None
    hidden: frozenset[str] = frozenset()
    if subcluster is not None:
        hidden = hidden_metrics(archive.registry(), job["cluster"], job.get("subCluster"), viewer)
        stats, reason = _statistics(archive, job, [m.name for m in subcluster.metric_config], hidden, live)
        if reason is None and int(job.get("numNodes") or 0) > 1 and "cpu_load" not in hidden:
            loads = _node_loads(archive, job, hidden, live)
    return report_from_data(job, subcluster, stats, node_loads=loads, reason=reason, hidden=hidden,
                            classifier=classifier, emission_constant=emission_constant)


def report_from_data(job: Mapping[str, Any], subcluster: SubCluster | None, stats: Mapping[str, Mapping[str, float]],
                     *, node_loads: Mapping[str, float] | None = None, reason: str | None = None,
                     hidden: frozenset[str] = frozenset(), classifier: JobClassifier | None = None,
                     emission_constant: int = 0) -> dict[str, Any]:
    """The report from data already gathered: ``stats`` ``{metric: {avg, min, max}}`` (what the viewer may see),
    ``node_loads`` the average ``cpu_load`` of each node, ``reason`` why there are no statistics.

    :func:`efficiency_report` gathers them from the archive and the live backend; a client of a server's
    GraphQL API (the terminal UI with a token without the api role) gathers the same from there.
    """
    nodes = int(job.get("numNodes") or 0)
    hwthreads = int(job.get("numHwthreads") or 0)
    exclusive = (job.get("shared") or "none") == "none"
    node_cores = cores_per_node(subcluster) if subcluster is not None else 0
    # without recorded hardware threads the job is taken to hold whole nodes (peer archives omit numHwthreads)
    per_node = hwthreads / nodes if hwthreads and nodes else float(node_cores)
    share = min(per_node / node_cores, 1.0) if node_cores and per_node else 1.0
    notes: list[str] = []
    runtime = _runtime(job, notes)
    checks: list[dict[str, Any]] = []
    if subcluster is not None:
        checks = _metric_checks(subcluster, job, stats, hidden, per_node, share, reason, notes)
        if nodes > 1 and subcluster.metric("cpu_load") is not None and "cpu_load" not in hidden:
            checks.append(_imbalance(job, node_loads or {}, per_node, notes))
    job_classes = _job_classes(classifier, job, subcluster, stats)
    notes.extend(entry["hint"] for entry in job_classes if entry["hint"])
    return {
        "job": {
            "id": job.get("id"), "jobId": job.get("jobId"), "cluster": job.get("cluster"),
            "subCluster": job.get("subCluster"), "user": job.get("user"), "project": job.get("project"),
            "jobState": job.get("jobState"), "startTime": job.get("startTime"), "duration": job.get("duration"),
            "walltime": job.get("walltime"), "numNodes": nodes, "numHwthreads": hwthreads,
            "numAcc": int(job.get("numAcc") or 0), "exclusive": exclusive,
            "hosts": [str(r.get("hostname")) for r in job.get("resources") or () if isinstance(r, Mapping)],
        },
        "allocation": {"nodes": nodes, "coresPerNode": node_cores,
                       "hwthreads": hwthreads or nodes * node_cores, "accelerators": int(job.get("numAcc") or 0),
                       "exclusive": exclusive},
        "runtime": runtime,
        "checks": checks,
        "energy": _energy(job, subcluster, emission_constant),
        "jobClasses": job_classes,
        "notes": notes,
        "summary": _summary(checks, reason, subcluster),
    }


def runtime_report(runtime: Runtime, job: Mapping[str, Any], *, viewer: Viewer | None = None) -> dict[str, Any]:
    """:func:`efficiency_report` with what a front end's runtime holds: the site's job-class rules, emission
    constant and live metric data (for running jobs)."""
    taggers = getattr(runtime, "taggers", None)
    classifier = taggers.job_classes() if taggers is not None and hasattr(taggers, "job_classes") else None
    if classifier is None:
        from cc_backend.taggers.jobclasses import JobClassifier

        classifier = JobClassifier()
    return efficiency_report(runtime.archive, job, classifier=classifier,
                             emission_constant=runtime.config.main.emission_constant, live=runtime.metric_data,
                             viewer=viewer)


# --- plain text ----------------------------------------------------------------------------------------

BAR_WIDTH = 10
#: Lines of the text report stay within this many columns: an 80-column terminal (and the TUI tab) shows
#: them without wrapping mid-word; 76 leaves room for the TUI tab's padding and scroll bar.
TEXT_WIDTH = 76


def _bar(ratio: float | None) -> str:
    """``[###.......]``: the share of the reference, capped at full (the percentage tells the rest)."""
    if ratio is None:
        return "[" + " " * BAR_WIDTH + "]"
    filled = min(BAR_WIDTH, max(0, round(ratio * BAR_WIDTH)))
    return "[" + "#" * filled + "." * (BAR_WIDTH - filled) + "]"


def _value_text(check: Mapping[str, Any]) -> str:
    """``value / reference unit``: short enough for the check's line; the sentence below names the reference."""
    if check["value"] is None:
        return "-"
    if check["key"] == "imbalance":
        return f"{_num(check['value'])}x mean"
    unit = f" {check['unit']}" if check["unit"] else ""
    if check["key"] == "cpu_load":
        unit = " cores"
    reference = f" / {_num(check['reference'])}" if check["reference"] else ""
    return f"{_num(check['value'])}{reference}{unit}"


_NUMBER_AND_WORD = re.compile(r"(\d) (?=\S)")


def _wrapped(text: str, first: str, rest: str) -> list[str]:
    """``text`` wrapped at :data:`TEXT_WIDTH`; a number stays on the line of the word after it (``112 GF/s``)."""
    glued = _NUMBER_AND_WORD.sub("\\1\0", text)
    lines = textwrap.wrap(glued, TEXT_WIDTH, initial_indent=first, subsequent_indent=rest, break_on_hyphens=False)
    return [line.replace("\0", " ") for line in lines]


def render_report_text(report: Mapping[str, Any]) -> str:
    """The report as aligned plain text (what the CLI prints and the TUI shows): no colours, one check a block,
    no line wider than :data:`TEXT_WIDTH` (long sentences wrap with a hanging indent)."""
    job, alloc, run = report["job"], report["allocation"], report["runtime"]
    where = f"{job['cluster']}/{job['subCluster']}" if job.get("subCluster") else str(job["cluster"])
    lines = _wrapped(f"Efficiency report of job {job['jobId']} (id {job['id']}) on {where}", "", "  ")
    if report.get("origin"):  # set by a client that computed the report itself: says what it could not know
        lines += _wrapped(f"({report['origin']})", "", " ")
    lines.append("")
    walltime = ""
    if run["walltimeSeconds"]:
        walltime = f" of {_duration(run['walltimeSeconds'])} walltime"
        if run["fractionOfWalltime"] is not None:
            walltime += f" ({_pct(run['fractionOfWalltime'])})"
    gpus = f", {alloc['accelerators']} accelerators" if alloc["accelerators"] else ""
    nodes = f"{alloc['nodes']} node{'s' if alloc['nodes'] != 1 else ''}"
    facts = [("User", f"{job['user']} (project {job['project']})"), ("State", str(job["jobState"])),
             ("Runtime", _duration(run["seconds"]) + walltime),
             ("Allocation", f"{nodes} x {alloc['coresPerNode']} cores, {alloc['hwthreads']} hwthreads{gpus}, "
                            + ("exclusive" if alloc["exclusive"] else "shared"))]
    energy = report.get("energy")
    if energy:
        text = f"{energy['kwh']:.2f} kWh"
        if energy.get("co2Grams") is not None:
            text += f", about {energy['co2Grams']:.0f} g CO2 at {energy['emissionConstant']} g/kWh"
        facts.append(("Energy", text))
    for name, value in facts:
        lines += _wrapped(value, f"{name:<12}", " " * 12)
    checks = report["checks"]
    if checks:
        lines.append("")
        label_width = max(len(c["label"]) for c in checks)
        indent = " " * (label_width + 2)
        for check in checks:
            percent = "" if check["ratio"] is None or check["key"] == "imbalance" else _pct(check["ratio"])
            bar = _bar(None if check["key"] == "imbalance" else check["ratio"])
            lines.append(f"{check['label']:<{label_width}}  {bar} {percent:>5}  {check['verdict']:<7}  "
                         f"{_value_text(check)}".rstrip())
            lines += _wrapped(check["text"], indent, indent)
    if report["notes"]:
        lines += ["", "Notes"]
        for note in report["notes"]:
            lines += _wrapped(note, "  - ", "    ")
    if report["jobClasses"]:
        lines += [""] + _wrapped("Job classes: " + ", ".join(entry["tag"] for entry in report["jobClasses"]), "",
                                 " " * 13)
    lines += [""] + _wrapped(f"Summary: {report['summary']}", "", " " * 9)
    return "\n".join(lines) + "\n"
