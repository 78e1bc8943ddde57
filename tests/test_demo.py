"""Demo archive generator: layout, realism, consistency of statistics and series, determinism, speed."""

from __future__ import annotations

import gzip
import hashlib
import importlib
import importlib.util
import os
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from cc_backend.archive.paths import job_relpath
from cc_backend.demo import FINISHED_STATES, DemoSummary, cluster_configs, default_now, generate_archive
from cc_backend.errors import InvalidInput

SEED = 7
NOW = 1_750_000_000

# upstream configs/tagger/apps/*.txt: each line is a regex, applied as (?m)^[^#]*<line> to the lower-cased script
TAGGER_APPS = {
    "alf": ["alf"],
    "caracal": ["calc_rate", "qmdffgen", "dynamic", "evbopt", "black_box", "poly_qmdff"],
    "chroma": ["chroma", "qdp", "qmp"],
    "cp2k": ["cp2k"],
    "cpmd": ["cpmd"],
    "flame": ["flame"],
    "gromacs": ["gromacs", "gmx", "mdrun"],
    "julia": ["julia"],
    "lammps": [r"\blmp\s+"],
    "matlab": ["matlab"],
    "openfoam": ["openfoam"],
    "orca": ["orca"],
    "python": ["python", "pip", "anaconda", "conda"],
    "starccm": ["starccm+", "-podkey"],
    "turbomole": ["dscf", "grad", "ridft", "rdgrad", "ricc2", "statpt", "aoforce", "escf", "egrad", "odft"],
    "vasp": ["vasp_gam", "vasp_ncl", "vasp_std"],
}
_TAGGER_RE = {app: [re.compile(r"(?m)^[^#]*" + line) for line in lines] for app, lines in TAGGER_APPS.items()}

META_KEYS = {
    "jobId", "user", "project", "cluster", "subCluster", "partition", "arrayJobId", "numNodes", "numHwthreads",
    "numAcc", "shared", "monitoringStatus", "smt", "jobState", "submitTime", "startTime", "duration", "walltime",
    "requestedMemory", "resources", "metaData", "tags", "statistics", "energy",
}
REQUIRED_METRICS = {
    "flops_any", "flops_dp", "flops_sp", "mem_bw", "cpu_load", "cpu_user", "mem_used", "clock", "ipc",
    "cpu_power", "mem_power", "ib_recv", "ib_xmit", "nfs4_read", "nfs4_write",
}
GPU_METRICS = {"acc_utilization", "acc_mem_used", "acc_power"}


def _apps_in(script: str) -> set[str]:
    low = script.lower()
    return {app for app, regs in _TAGGER_RE.items() if any(r.search(low) for r in regs)}


def _load_archive(root: Path) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for dirpath, _dirs, files in os.walk(root):
        if "meta.json" in files:
            out.append((dirpath, orjson.loads(Path(dirpath, "meta.json").read_bytes())))
    out.sort(key=lambda x: x[0])
    return out


def _load_data(job_dir: str) -> tuple[dict[str, Any], str, int]:
    gz = Path(job_dir, "data.json.gz")
    if gz.exists():
        raw = gzip.decompress(gz.read_bytes())
        return orjson.loads(raw), "gz", len(raw)
    raw = Path(job_dir, "data.json").read_bytes()
    return orjson.loads(raw), "plain", len(raw)


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for dirpath, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(files):
            p = Path(dirpath, name)
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def _subclusters() -> dict[tuple[str, str], dict[str, Any]]:
    return {(c, sc["name"]): sc for c, doc in cluster_configs().items() for sc in doc["subClusters"]}


def _expand(nodelist: str) -> list[str]:
    m = re.fullmatch(r"([a-z]+)\[(.*)\]", nodelist)
    assert m, nodelist
    prefix, body = m.groups()
    hosts = []
    for rng in body.split(","):
        a, b = rng.split("-")
        hosts += [f"{prefix}{i:0{len(a)}d}" for i in range(int(a), int(b) + 1)]
    return hosts


def _resolved_metrics(cluster: str, subcluster: str) -> dict[str, dict[str, Any]]:
    out = {}
    for mc in cluster_configs()[cluster]["metricConfig"]:
        ov = next((o for o in mc.get("subClusters", []) if o["name"] == subcluster), None)
        if ov and ov.get("remove"):
            continue
        out[mc["name"]] = {**mc, **(ov or {})}
    return out


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoSummary, list[tuple[str, dict[str, Any]]]]:
    root = tmp_path_factory.mktemp("demo") / "archive"
    calls: list[int] = []
    summary = generate_archive(root, seed=SEED, jobs=200, now=NOW, progress=calls.append)
    assert sum(calls) == 200 and all(c > 0 for c in calls)
    return root, summary, _load_archive(root)


@pytest.fixture(scope="module")
def big_meta(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, DemoSummary, list[tuple[str, dict[str, Any]]], float]:
    root = tmp_path_factory.mktemp("demo_meta") / "archive"
    t0 = time.perf_counter()
    summary = generate_archive(root, seed=SEED, jobs=5000, now=NOW, meta_only=True)
    elapsed = time.perf_counter() - t0
    return root, summary, _load_archive(root), elapsed


# ------------------------------------------------------------------------------------------------ layout


def test_version_and_cluster_json(small: Any) -> None:
    root, summary, _jobs = small
    assert (root / "version.txt").read_bytes() == b"3\n"
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["alex", "fritz"]
    for name in ("alex", "fritz"):
        doc = orjson.loads((root / name / "cluster.json").read_bytes())
        assert doc == cluster_configs()[name]
        assert doc["name"] == name
        names = {m["name"] for m in doc["metricConfig"]}
        assert REQUIRED_METRICS <= names
        assert (GPU_METRICS <= names) == (name == "alex")
        for mc in doc["metricConfig"]:
            assert set(mc) >= {"name", "unit", "scope", "timestep", "aggregation", "peak", "normal", "caution",
                               "alert"}
            assert mc["scope"] in {"node", "socket", "core", "hwthread", "accelerator", "memoryDomain"}
            assert mc["aggregation"] in {"sum", "avg"} and mc["timestep"] >= 1 and "base" in mc["unit"]
        mcs = doc["metricConfig"]
        assert {m["name"] for m in mcs if m.get("footprint")} >= {"flops_any", "mem_bw", "mem_used", "cpu_load"}
        assert {m["name"] for m in mcs if m.get("energy") == "power"} >= {"cpu_power", "mem_power"}
        assert any(o.get("remove") for m in mcs for o in m.get("subClusters", [])) == (name == "fritz")
        for sc in doc["subClusters"]:
            assert re.fullmatch(r"[a-z]+\[\d{4}-\d{4}(,\d{4}-\d{4})*\]", sc["nodes"])
            topo = sc["topology"]
            cores = sc["socketsPerNode"] * sc["coresPerSocket"] * sc["threadsPerCore"]
            assert topo["node"] == list(range(cores))
            assert sorted(t for s in topo["socket"] for t in s) == topo["node"]
            assert sorted(t for d in topo["memoryDomain"] for t in d) == topo["node"]
            assert sorted(t for c in topo["core"] for t in c) == topo["node"]
            if name == "alex":
                accs = topo["accelerators"]
                assert len(accs) == 8 and all(re.fullmatch(r"00000000:[0-9A-F]{2}:00\.0", a["id"]) for a in accs)
                assert {a["model"] for a in accs} <= {"A40", "A100"} and {a["type"] for a in accs} == {"Nvidia GPU"}
    fritz = cluster_configs()["fritz"]["subClusters"]
    assert {sc["socketsPerNode"] * sc["coresPerSocket"] for sc in fritz} == {72, 104}
    assert len({sc["processorType"] for sc in fritz}) == 2
    mem_peaks = {o["name"]: o["peak"] for m in cluster_configs()["fritz"]["metricConfig"]
                 if m["name"] == "mem_used" for o in m["subClusters"]}
    assert mem_peaks == {"spr1tb": 1024, "spr2tb": 2048}
    # the peer archive's alex uses these PCI ids for its A40 nodes
    alex = {sc["name"]: sc for sc in cluster_configs()["alex"]["subClusters"]}
    assert alex["a40"]["topology"]["accelerators"][0]["id"] == "00000000:01:00.0"


def test_cluster_json_loads_with_archive_module(small: Any) -> None:
    if importlib.util.find_spec("cc_backend.archive.cluster") is None:
        pytest.skip("cc_backend.archive.cluster not available yet")
    mod = importlib.import_module("cc_backend.archive.cluster")
    if not hasattr(mod, "load_cluster_config") or not hasattr(mod, "assign_subcluster"):
        pytest.skip("cc_backend.archive.cluster has no load_cluster_config/assign_subcluster")
    load_cluster_config, assign_subcluster = mod.load_cluster_config, mod.assign_subcluster

    root, _summary, jobs = small
    clusters = {n: load_cluster_config(orjson.loads((root / n / "cluster.json").read_bytes()))
                for n in ("alex", "fritz")}
    for _d, meta in jobs:
        sc = assign_subcluster(clusters[meta["cluster"]], meta["resources"][0]["hostname"])
        assert sc.name == meta["subCluster"]


def test_validate_archive(small: Any) -> None:
    if importlib.util.find_spec("cc_backend.archive.validate") is None:
        pytest.skip("cc_backend.archive.validate does not exist yet: schema validation of the demo archive skipped")
    from cc_backend.archive.validate import validate_archive

    root, _summary, _jobs = small
    assert validate_archive(root) == []


# ------------------------------------------------------------------------------------------------ meta.json


def test_meta_json_shape(small: Any) -> None:
    root, _summary, jobs = small
    scs = _subclusters()
    assert len(jobs) == 200
    for job_dir, meta in jobs:
        assert set(meta) <= META_KEYS
        assert {"jobId", "user", "project", "cluster", "subCluster", "numNodes", "shared", "startTime", "jobState",
                "duration", "resources", "statistics"} <= set(meta)
        assert Path(job_dir) == root / job_relpath(meta["cluster"], meta["jobId"], meta["startTime"])
        assert meta["monitoringStatus"] == 3 and meta["smt"] == 1 and meta["energy"] == 0
        assert meta["jobState"] in FINISHED_STATES
        assert meta["shared"] in {"none", "single_user", "multi_user"}
        assert 0 < meta["submitTime"] <= meta["startTime"] <= NOW
        assert NOW - 31 * 86400 <= meta["startTime"]
        assert 0 < meta["duration"] <= meta["walltime"]
        if meta["jobState"] == "timeout":
            assert meta["duration"] == meta["walltime"]
        assert meta["startTime"] + meta["duration"] <= NOW  # finished before the archive's "now"
        sc = scs[(meta["cluster"], meta["subCluster"])]
        hosts = set(_expand(sc["nodes"]))
        cores = sc["socketsPerNode"] * sc["coresPerSocket"]
        res = meta["resources"]
        assert len(res) == meta["numNodes"] and len({r["hostname"] for r in res}) == len(res)
        assert all(r["hostname"] in hosts for r in res)
        assert meta["numHwthreads"] == sum(len(r["hwthreads"]) for r in res)
        for r in res:
            assert set(r["hwthreads"]) <= set(range(cores)) and len(set(r["hwthreads"])) == len(r["hwthreads"])
            if meta["shared"] == "none":
                assert r["hwthreads"] == list(range(cores))
        if meta["shared"] != "none":
            assert meta["numNodes"] == 1 and len(res[0]["hwthreads"]) < cores
        if meta["cluster"] == "alex":
            ids = [a["id"] for a in sc["topology"]["accelerators"]]
            assert meta["numAcc"] == sum(len(r["accelerators"]) for r in res) > 0
            for r in res:
                assert set(r["accelerators"]) <= set(ids)
                # the 16 cores next to each GPU
                near = [range(ids.index(a) * 16, ids.index(a) * 16 + 16) for a in r["accelerators"]]
                assert r["hwthreads"] == [c for cores_of_gpu in near for c in cores_of_gpu]
        else:
            assert "numAcc" not in meta and all("accelerators" not in r for r in res)
        assert set(meta["statistics"]) == set(_resolved_metrics(meta["cluster"], meta["subCluster"]))
        for st in meta["statistics"].values():
            assert set(st) == {"unit", "avg", "min", "max"} and 0 <= st["min"] <= st["avg"] <= st["max"]
        md = meta["metaData"]
        assert set(md) == {"jobName", "jobScript"}
        assert md["jobScript"].startswith("#!/bin/bash")
        assert f"#SBATCH --job-name={md['jobName']}\n" in md["jobScript"]
        assert f"#SBATCH --partition={meta['partition']}\n" in md["jobScript"]
        for tag in meta["tags"]:
            assert set(tag) == {"type", "name", "scope"}
    # the subcluster removing mem_power
    spr2 = [m for _d, m in jobs if m["subCluster"] == "spr2tb"]
    assert spr2 and all("mem_power" not in m["statistics"] for m in spr2)


def test_states_users_and_distributions(small: Any, big_meta: Any) -> None:
    _root, summary, jobs = small
    states = Counter(m["jobState"] for _d, m in jobs)
    assert set(states) == set(FINISHED_STATES)
    assert summary.states == dict(sorted(states.items()))
    _root, big, bjobs, _t = big_meta
    metas = [m for _d, m in bjobs]
    states = Counter(m["jobState"] for m in metas)
    assert set(states) == set(FINISHED_STATES) and states.most_common(1)[0][0] == "completed"
    assert states["completed"] > 0.6 * len(metas) and min(states.values()) >= 20
    # users: ~100-300 of them, Zipf-like
    users = Counter(m["user"] for m in metas)
    assert 100 <= len(users) <= 300 and big.users == len(users)
    top = [c for _u, c in users.most_common()]
    assert sum(top[: len(top) // 10]) > 0.4 * len(metas)
    assert top[0] > 20 * top[len(top) // 2]
    projects_of: dict[str, set[str]] = {}
    for m in metas:
        projects_of.setdefault(m["user"], set()).add(m["project"])
    assert {len(p) for p in projects_of.values()} == {1, 2}
    assert big.projects == len({m["project"] for m in metas}) >= 30
    # job sizes: mostly one node, some tens to hundreds
    nodes = Counter(m["numNodes"] for m in metas)
    assert nodes[1] > 0.55 * len(metas)
    assert sum(c for n, c in nodes.items() if n >= 10) > 0.02 * len(metas)
    assert max(nodes) >= 100
    # durations: lognormal-ish and capped at the walltime
    durations = sorted(m["duration"] for m in metas if m["jobState"] == "completed")
    assert durations[len(durations) // 2] < sum(durations) / len(durations)
    assert all(m["duration"] <= m["walltime"] for m in metas)
    assert {m["shared"] for m in metas} == {"none", "single_user", "multi_user"}
    assert Counter(m["shared"] for m in metas)["none"] > 0.3 * len(metas)
    assert {(m["cluster"], m["partition"]) for m in metas} >= {
        ("fritz", "singlenode"), ("fritz", "multinode"), ("fritz", "shared"), ("fritz", "spr1tb"), ("fritz", "spr2tb"),
        ("alex", "a40"), ("alex", "a100")}
    # array jobs: arrayJobId is the jobId of the first task, all tasks share user and script
    arrays: dict[int, list[dict[str, Any]]] = {}
    for m in metas:
        if "arrayJobId" in m:
            arrays.setdefault(m["arrayJobId"], []).append(m)
    assert len(arrays) > 20
    by_id = {(m["cluster"], m["jobId"]) for m in metas}
    for aid, tasks in arrays.items():
        assert (tasks[0]["cluster"], aid) in by_id
        assert len({(t["user"], t["metaData"]["jobScript"]) for t in tasks}) == 1
    # tags: global app/jobClass, private (scope = owner), admin
    scopes = Counter()
    for m in metas:
        for t in m["tags"]:
            kind = t["scope"] if t["scope"] in ("global", "admin") else "private"
            if kind == "private":
                assert t["scope"] == m["user"]
            scopes[kind] += 1
    assert scopes["global"] > scopes["private"] > scopes["admin"] > 10
    tagged = sum(1 for m in metas if m["tags"])
    assert 0.1 * len(metas) < tagged < 0.7 * len(metas)
    assert {t["type"] for m in metas for t in m["tags"] if t["scope"] == "global"} == {"app", "jobClass"}
    # start times spread over the 30 days before now
    starts = sorted(m["startTime"] for m in metas)
    assert starts[-1] <= NOW and NOW - starts[0] > 28 * 86400
    days = Counter((NOW - s) // 86400 for s in starts)
    assert len(days) >= 30
    assert sum(big.clusters.values()) == big.jobs == 5000
    assert sum(sum(v.values()) for v in big.cluster_states.values()) == 5000


def test_job_scripts_are_detected_by_app_taggers(big_meta: Any) -> None:
    _root, _s, jobs, _t = big_meta
    seen: Counter[str] = Counter()
    for _d, meta in jobs:
        apps = _apps_in(meta["metaData"]["jobScript"])
        assert len(apps) <= 1, (meta["metaData"]["jobScript"], apps)
        app_tags = {t["name"] for t in meta["tags"] if t["type"] == "app"}
        if app_tags:
            assert app_tags == apps
        seen.update(apps)
        if "torchrun" in meta["metaData"]["jobScript"]:
            assert meta["cluster"] == "alex" and apps == {"python"}
    assert set(seen) >= {"gromacs", "vasp", "lammps", "openfoam", "python", "cp2k", "orca", "matlab", "julia"}
    scripts = "\n".join(m["metaData"]["jobScript"] for _d, m in jobs)
    for marker in ("gmx_mpi mdrun", "srun vasp_std", "srun lmp -in", "simpleFoam -parallel", "torchrun --nnodes",
                   "cp2k.psmp", "./wrf.exe", "#SBATCH --gres=gpu:a100:", "#SBATCH --cpus-per-task="):
        assert marker in scripts, marker


# ------------------------------------------------------------------------------------------------ data.json


def test_data_json_series_and_statistics(small: Any) -> None:
    _root, _summary, jobs = small
    scs = _subclusters()
    nulls = 0
    for job_dir, meta in jobs:
        data, kind, size = _load_data(job_dir)
        assert (kind == "gz") == (size > 2000)
        assert not (Path(job_dir, "data.json").exists() and Path(job_dir, "data.json.gz").exists())
        metrics = _resolved_metrics(meta["cluster"], meta["subCluster"])
        assert list(data) == list(metrics)
        sc = scs[(meta["cluster"], meta["subCluster"])]
        n = meta["numNodes"]
        hosts = [r["hostname"] for r in meta["resources"]]
        for name, scopes in data.items():
            mc = metrics[name]
            node = scopes["node"]
            assert node["unit"] == mc["unit"] and node["timestep"] % mc["timestep"] == 0
            assert [s["hostname"] for s in node["series"]] == hosts
            expected = {"node"}
            if n <= 2 and mc["scope"] == "hwthread":
                expected.add("core")
            if n <= 2 and mc["scope"] == "socket":
                expected.add("socket")
            if mc["scope"] == "accelerator":
                expected.add("accelerator")
            assert set(scopes) == expected, (name, set(scopes))
            for md in scopes.values():
                assert md["timestep"] % mc["timestep"] == 0 and md["unit"] == mc["unit"]
                for s in md["series"]:
                    vals = [v for v in s["data"] if v is not None]
                    nulls += len(s["data"]) - len(vals)
                    assert vals and all(v >= 0 for v in vals)
                    st = s["statistics"]
                    assert st["min"] == min(vals) and st["max"] == max(vals)
                    assert st["avg"] == round(sum(vals) / len(vals), 2)
                    assert len(s["data"]) <= max(1, meta["duration"] // md["timestep"])
            if "core" in scopes:
                assert len(scopes["core"]["series"]) == meta["numHwthreads"]
                assert [(s["hostname"], int(s["id"])) for s in scopes["core"]["series"]] == [
                    (r["hostname"], c) for r in meta["resources"] for c in r["hwthreads"]]
            if "accelerator" in scopes:
                assert [(s["hostname"], s["id"]) for s in scopes["accelerator"]["series"]] == [
                    (r["hostname"], a) for r in meta["resources"] for a in r["accelerators"]]
            # As upstream's archiver (internal/archiver): avg = round(sum of node averages / numNodes, 2),
            # min of mins, max of maxes.
            node_stats = [s["statistics"] for s in node["series"]]
            st = meta["statistics"][name]
            assert st["unit"] == mc["unit"]
            assert st["avg"] == round(sum(x["avg"] for x in node_stats) / n, 2)
            assert st["min"] == min(x["min"] for x in node_stats)
            assert st["max"] == max(x["max"] for x in node_stats)
        # physically plausible node values
        cores = sc["socketsPerNode"] * sc["coresPerSocket"]
        peaks = {k: v["peak"] for k, v in metrics.items()}
        mx = {k: max(s["statistics"]["max"] for s in v["node"]["series"]) for k, v in data.items()}
        mn = {k: min(s["statistics"]["min"] for s in v["node"]["series"]) for k, v in data.items()}
        assert mx["cpu_load"] <= meta["numHwthreads"] / n <= cores
        assert mx["cpu_user"] <= 100
        assert mx["mem_used"] <= peaks["mem_used"]
        assert mx["flops_any"] < 0.9 * peaks["flops_any"] and mx["flops_dp"] < peaks["flops_dp"]
        assert mx["mem_bw"] <= sc["memoryBandwidth"]["value"]
        assert cores and peaks["clock"] >= mx["clock"] and mn["clock"] >= 800
        assert 0.25 * peaks["cpu_power"] <= mn["cpu_power"] and mx["cpu_power"] <= peaks["cpu_power"]
        assert mx["ipc"] <= 4
        if meta["cluster"] == "alex":
            acc = data["acc_utilization"]["accelerator"]["series"]
            assert all(0 <= v <= 100 for s in acc for v in s["data"] if v is not None)
            for name in ("acc_mem_used", "acc_power"):
                series = data[name]["accelerator"]["series"]
                assert all(v <= peaks[name] for s in series for v in s["data"] if v is not None)
    assert nulls > 0


def _node_avgs(data: dict[str, Any], metric: str) -> list[float]:
    return [s["statistics"]["avg"] for s in data[metric]["node"]["series"]]


def test_pathological_jobs_present(small: Any) -> None:
    _root, _summary, jobs = small
    scs = _subclusters()
    found: Counter[str] = Counter()
    for job_dir, meta in jobs:
        if meta["duration"] < 1800 or meta["jobState"] == "boot_fail":
            continue
        data, _k, _s = _load_data(job_dir)
        st = meta["statistics"]
        sc = scs[(meta["cluster"], meta["subCluster"])]
        per_node = meta["numHwthreads"] / meta["numNodes"]
        if st["cpu_load"]["avg"] < 0.5 and st["flops_any"]["avg"] < 1:
            found["idle"] += 1
        flops_peak = _resolved_metrics(meta["cluster"], meta["subCluster"])["flops_any"]["peak"]
        if st["mem_bw"]["avg"] > 0.7 * sc["memoryBandwidth"]["value"] and st["flops_any"]["avg"] < 0.03 * flops_peak:
            found["memory-bound"] += 1
        loads = _node_avgs(data, "cpu_load")
        if len(loads) > 1 and max(loads) > 10 * max(0.05, min(loads)):
            found["imbalance-nodes"] += 1
        if "core" in data["cpu_user"] and meta["shared"] == "none" and meta["cluster"] == "fritz":
            core = [s["statistics"]["avg"] for s in data["cpu_user"]["core"]["series"]]
            idle_cores = sum(1 for c in core if c < 5)
            if max(core) > 80 and idle_cores > 0.5 * len(core) and 0.9 * per_node > st["cpu_load"]["avg"] > 0.5:
                found["imbalance-cores"] += 1
        mem = [v for v in data["mem_used"]["node"]["series"][0]["data"] if v is not None]
        if len(mem) > 10 and mem[-1] > 3 * mem[len(mem) // 10] and mem[-1] > 0.5 * mem[0] + max(mem) * 0.9:
            found["leak"] += 1
    assert {"idle", "memory-bound", "leak"} <= set(found), found
    assert found["imbalance-nodes"] + found["imbalance-cores"] > 0, found


# --------------------------------------------------------------------------------------------- determinism


def test_deterministic_and_seed_dependent(tmp_path: Path) -> None:
    a = generate_archive(tmp_path / "a", seed=3, jobs=40, workers=1)
    b = generate_archive(tmp_path / "b", seed=3, jobs=40, workers=2)
    c = generate_archive(tmp_path / "c", seed=4, jobs=40, workers=1)
    assert _tree_hash(tmp_path / "a") == _tree_hash(tmp_path / "b")
    assert _tree_hash(tmp_path / "a") != _tree_hash(tmp_path / "c")
    assert a.now == b.now == default_now(3) != c.now
    assert (a.clusters, a.states, a.bytes_written, a.files_written) == (
        b.clusters, b.states, b.bytes_written, b.files_written)


def test_meta_only_matches_full_archive_except_statistics(tmp_path: Path) -> None:
    generate_archive(tmp_path / "full", seed=5, jobs=60, now=NOW)
    generate_archive(tmp_path / "meta", seed=5, jobs=60, now=NOW, meta_only=True, workers=2)
    full = _load_archive(tmp_path / "full")
    meta = _load_archive(tmp_path / "meta")
    assert [os.path.relpath(d, tmp_path / "full") for d, _m in full] == [
        os.path.relpath(d, tmp_path / "meta") for d, _m in meta]
    for (_d1, m1), (d2, m2) in zip(full, meta):
        s1, s2 = m1.pop("statistics"), m2.pop("statistics")
        assert m1 == m2
        assert list(s1) == list(s2)
        # same load model: averages agree closely
        for name in ("cpu_load", "mem_used", "cpu_power"):
            assert s2[name]["avg"] == pytest.approx(s1[name]["avg"], rel=0.25, abs=0.5)
        assert os.listdir(d2) == ["meta.json"]


def test_meta_only_5000_jobs(big_meta: Any) -> None:
    root, summary, jobs, elapsed = big_meta
    assert summary.jobs == len(jobs) == 5000 and summary.meta_only
    files = [name for _dp, _dn, names in os.walk(root) for name in names]
    assert Counter(files) == {"meta.json": 5000, "cluster.json": 2, "version.txt": 1}
    assert summary.files_written == len(files)
    assert summary.bytes_written == sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    for _d, meta in jobs:
        assert set(meta["statistics"]) == set(_resolved_metrics(meta["cluster"], meta["subCluster"]))
        for st in meta["statistics"].values():
            assert 0 <= st["min"] <= st["avg"] <= st["max"]
    # generous bound for a loaded CI machine; bench/demo_generate.py measures 100,000 jobs
    assert elapsed < 60


def test_summary_and_now(small: Any) -> None:
    root, summary, jobs = small
    assert summary.root == root and summary.seed == SEED and summary.now == NOW and not summary.meta_only
    assert summary.jobs == 200 == sum(summary.clusters.values()) == sum(summary.subclusters.values())
    assert summary.clusters == dict(Counter(m["cluster"] for _d, m in jobs))
    fritz_states = Counter(m["jobState"] for _d, m in jobs if m["cluster"] == "fritz")
    assert summary.cluster_states["fritz"] == dict(sorted(fritz_states.items()))
    assert summary.users == len({m["user"] for _d, m in jobs})
    assert summary.projects == len({m["project"] for _d, m in jobs})
    on_disk = [p for p in root.rglob("*") if p.is_file()]
    assert summary.files_written == len(on_disk) == 3 + 2 * 200
    assert summary.bytes_written == sum(p.stat().st_size for p in on_disk)
    assert not [p for p in on_disk if p.name.endswith(".tmp")]


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(InvalidInput, match="not empty"):
        generate_archive(tmp_path / "full", jobs=1)
    with pytest.raises(InvalidInput):
        generate_archive(tmp_path / "neg", jobs=-1)
    with pytest.raises(InvalidInput):
        generate_archive(tmp_path / "seed", jobs=1, seed=-2)
    with pytest.raises(InvalidInput):
        generate_archive(tmp_path / "now", jobs=1, now=5)
    empty = generate_archive(tmp_path / "empty", jobs=0)
    assert empty.jobs == 0
    assert sorted(p.name for p in (tmp_path / "empty").iterdir()) == ["alex", "fritz", "version.txt"]


def test_generates_into_a_fresh_archive_with_only_version_txt(tmp_path):
    from cc_backend.demo import generate_archive

    root = tmp_path / "job-archive"
    root.mkdir()
    (root / "version.txt").write_text("3\n")
    summary = generate_archive(root, jobs=20, meta_only=True)
    assert summary.jobs == 20 and (root / "version.txt").read_text() == "3\n"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "version.txt").write_text("2\n")
    import pytest

    from cc_backend.errors import InvalidInput

    with pytest.raises(InvalidInput, match="not empty"):
        generate_archive(tmp_path / "other", jobs=5, meta_only=True)
