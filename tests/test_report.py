"""The efficiency report: every number against meta.json, data.json and cluster.json read here, verdicts, CLI, REST."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest
from support.cli import cli
from support.server import InProcess
from support.site import auth, main_section, token, write_site

HOUR = 3600
#: Generated jobs: (name, cluster, subcluster, hosts, hwthreads, accelerators, shared, duration, walltime,
#: per-host averages of each metric).
FRITZ8 = [f"f01{i:02d}" for i in range(11, 19)]
GENERATED = {
    "idle": ("fritz", "main", ["f0101"], 72, 0, "none", HOUR, 24 * HOUR,
             {"cpu_load": [0.3], "mem_used": [8.0], "flops_any": [0.5], "mem_bw": [0.2]}),
    "lowload": ("fritz", "main", ["f0104"], 72, 0, "none", 2 * HOUR, 2 * HOUR,
                {"cpu_load": [50.0], "mem_used": [100.0], "flops_any": [400.0], "mem_bw": [60.0]}),
    "busy": ("fritz", "main", ["f0102", "f0103"], 144, 0, "none", 2 * HOUR, 3 * HOUR,
             {"cpu_load": [70.0, 71.0], "mem_used": [100.0, 120.0], "flops_any": [1500.0, 1600.0],
              "mem_bw": [150.0, 160.0]}),
    "imbalanced": ("fritz", "main", FRITZ8, 576, 0, "none", 2 * HOUR, 2 * HOUR,
                   {"cpu_load": [70.0] + [0.2] * 7, "mem_used": [20.0] * 8, "flops_any": [1000.0] + [1.0] * 7,
                    "mem_bw": [100.0] + [0.5] * 7}),
    "gpu": ("alex", "a100", ["a0601"], 128, 8, "none", 2 * HOUR, 2 * HOUR,
            {"cpu_load": [120.0], "mem_used": [200.0], "flops_any": [2000.0], "mem_bw": [100.0],
             "acc_utilization": [30.0], "acc_mem_used": [312.0], "acc_power": [1000.0], "cpu_power": [300.0],
             "core_power": [250.0]}),
    "shared": ("fritz", "main", ["f0105"], 18, 0, "single_user", 2 * HOUR, 4 * HOUR,
               {"cpu_load": [17.0], "mem_used": [30.0], "flops_any": [300.0], "mem_bw": [40.0]}),
}
EMISSION = 317


def _meta_and_data(index: int, name: str) -> tuple[dict, dict]:
    cluster, sub, hosts, hwthreads, acc, shared, duration, walltime, metrics = GENERATED[name]
    units = {m["name"]: m["unit"] for m in _cluster_doc(_fixture_archive(), cluster)["metricConfig"]}
    statistics, data = {}, {}
    for metric, values in metrics.items():
        statistics[metric] = {"unit": units[metric], "avg": sum(values) / len(values), "min": min(values),
                              "max": max(values)}
        data[metric] = {"node": {"unit": units[metric], "timestep": 60, "series": [
            {"hostname": host, "statistics": {"avg": v, "min": v, "max": v}, "data": [v] * 10}
            for host, v in zip(hosts, values, strict=True)]}}
    meta = {"jobId": 7000 + index, "user": f"owner-{name}", "project": "reports", "cluster": cluster,
            "subCluster": sub, "partition": "main", "numNodes": len(hosts), "numHwthreads": hwthreads, "numAcc": acc,
            "shared": shared, "smt": 1, "jobState": "completed", "startTime": 1_700_000_000 + index * 10_000,
            "duration": duration, "walltime": walltime, "resources": [{"hostname": h} for h in hosts],
            "statistics": statistics}
    return meta, data


def _fixture_archive() -> Path:
    from peerdata import ARCHIVE

    return ARCHIVE


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The peer archive (emmy jobs 1403244, 1404397) plus the generated jobs, imported through the importer."""
    from peerdata import copy_archive

    from cc_backend.importer import import_job
    from cc_backend.runtime import Runtime

    folder = tmp_path_factory.mktemp("report")
    write_site(folder, main_section(f"sqlite:///{folder / 'job.db'}"), copy_archive(folder, "job-archive"))
    r = cli(folder, "-init-db")
    assert r.returncode == 0, r.stderr
    rt = Runtime(str(folder / "config.json"), str(folder / ".env"))
    for i, name in enumerate(GENERATED):
        meta, data = _meta_and_data(i, name)
        import_job(rt.engine, rt.archive, meta, data)
    rt.close()
    return folder


@pytest.fixture(scope="module")
def rt(site):
    from cc_backend.runtime import Runtime

    runtime = Runtime(str(site / "config.json"), str(site / ".env"))
    yield runtime
    runtime.close()


def _job(rt, job_id: int) -> dict:
    from cc_backend.jobs.query import find_jobs

    (job,) = find_jobs(rt.engine, job_id)
    return job


def _generated(rt, name: str) -> dict:
    return _job(rt, 7000 + list(GENERATED).index(name))


def _report(rt, job: dict, **kwargs) -> dict:
    from cc_backend.jobs.report import efficiency_report
    from cc_backend.taggers.jobclasses import JobClassifier

    return efficiency_report(rt.archive, job, classifier=JobClassifier(), **kwargs)


# --- expected values, from the files ---------------------------------------------------------------------


def _cluster_doc(archive: Path, cluster: str) -> dict:
    return json.loads((archive / cluster / "cluster.json").read_text())


def _job_dir(archive: Path, job: dict) -> Path:
    return archive / job["cluster"] / str(job["jobId"] // 1000) / f"{job['jobId'] % 1000:03d}" / str(job["startTime"])


def _files(site: Path, job: dict) -> tuple[dict, dict, dict]:
    """meta.json, data.json and cluster.json of the job, read from the site's archive."""
    archive = site / "job-archive"
    d = _job_dir(archive, job)
    data = json.loads(gzip.decompress((d / "data.json.gz").read_bytes())) if (d / "data.json.gz").exists() \
        else json.loads((d / "data.json").read_text())
    return json.loads((d / "meta.json").read_text()), data, _cluster_doc(archive, job["cluster"])


def _metric(cluster_doc: dict, sub: str, name: str) -> dict | None:
    """The metric config as subcluster ``sub`` sees it (its override applied), None when absent or removed."""
    for metric in cluster_doc["metricConfig"]:
        if metric["name"] == name:
            override = next((o for o in metric.get("subClusters") or [] if o["name"] == sub), {})
            if override.get("remove"):
                return None
            unit = metric["unit"]
            return {**metric, **{k: v for k, v in override.items() if k != "name"},
                    "unitText": unit.get("prefix", "") + unit.get("base", "")}
    return None


def _expected(site: Path, job: dict, meta_job: dict) -> dict[str, tuple[float | None, float | None]]:
    """(value, reference) of every check, from meta.json, data.json and cluster.json alone."""
    meta, data, cluster = _files(site, job)
    sub = next(s for s in cluster["subClusters"] if s["name"] == meta["subCluster"])
    cores = sub["socketsPerNode"] * sub["coresPerSocket"] * sub["threadsPerCore"]
    nodes = len(meta["resources"])
    per_node = meta_job["numHwthreads"] / nodes if meta_job["numHwthreads"] else cores
    share = per_node / cores
    stats = meta["statistics"]

    def gpus_per_node(config: dict) -> float:  # a summed metric's node value adds up the job's GPUs of the node
        return meta["numAcc"] / nodes if config.get("aggregation", "sum") == "sum" else 1

    out: dict[str, tuple[float | None, float | None]] = {}
    for key, name, stat, reference in (
            ("cpu_load", "cpu_load", "avg", lambda m: per_node), ("memory", "mem_used", "max", lambda m: m["peak"]),
            ("flops", "flops_any", "avg", lambda m: m["peak"] * share), ("mem_bw", "mem_bw", "avg", lambda m: m["peak"] * share),
            ("gpu_util", "acc_utilization", "avg", lambda m: 100.0), ("gpu_mem", "acc_mem_used", "max", lambda m: m["peak"] * gpus_per_node(m))):
        config = _metric(cluster, sub["name"], name)
        if config is None or (key.startswith("gpu") and not meta_job["numAcc"]):
            continue
        out[key] = (stats[name][stat] if name in stats else None, float(reference(config)))
    if nodes > 1:
        loads = [s["statistics"]["avg"] for s in data["cpu_load"]["node"]["series"]]
        out["imbalance"] = (max(loads) / (sum(loads) / len(loads)), 1.0)
    return out


def _check_numbers(site: Path, report: dict, job: dict) -> None:
    expected = _expected(site, job, job)
    assert [c["key"] for c in report["checks"]] == list(expected)
    for check in report["checks"]:
        value, reference = expected[check["key"]]
        assert check["value"] == pytest.approx(value, rel=1e-3), check
        assert check["reference"] == pytest.approx(reference), check
        assert check["ratio"] == pytest.approx(value / reference, abs=1e-4), check


# --- numbers -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("job_id", [1403244, 1404397])
def test_peer_jobs_numbers_are_those_of_the_archive_files(site, rt, job_id):
    job = _job(rt, job_id)
    report = _report(rt, job)
    meta, data, cluster = _files(site, job)
    sub = next(s for s in cluster["subClusters"] if s["name"] == "haswell")
    cores = sub["socketsPerNode"] * sub["coresPerSocket"] * sub["threadsPerCore"]
    assert report["allocation"] == {"nodes": 32, "coresPerNode": cores, "hwthreads": 32 * cores, "accelerators": 0,
                                    "exclusive": True}
    assert report["runtime"] == {"seconds": meta["duration"], "walltimeSeconds": meta["walltime"],
                                 "fractionOfWalltime": pytest.approx(meta["duration"] / meta["walltime"])}
    assert report["job"]["hosts"] == [r["hostname"] for r in meta["resources"]]
    assert report["job"]["jobId"] == job_id and report["job"]["subCluster"] == "haswell"
    _check_numbers(site, report, job)
    # peer numbers: load 18.4 on 4 cores is oversubscription, 37.5 GB of 32 GB is beyond the node's memory
    verdicts = {c["key"]: c["verdict"] for c in report["checks"]}
    assert verdicts == {"cpu_load": "warn", "memory": "warn", "flops": "good", "mem_bw": "good", "imbalance": "good"}
    loads = {s["hostname"]: s["statistics"]["avg"] for s in data["cpu_load"]["node"]["series"]}
    busiest = max(loads, key=loads.__getitem__)
    assert f"Busiest node {busiest} at load" in report["checks"][-1]["text"]
    assert report["energy"] is None  # the peer jobs carry no energy metrics
    assert [c["tag"] for c in report["jobClasses"]] == ["highmemory", "excessiveload", "memorybound"]
    assert report["notes"][-3:] == [c["hint"] for c in report["jobClasses"]]
    assert report["summary"].startswith(f"CPU load {meta['statistics']['cpu_load']['avg'] / cores * 100:.0f}% of the "
                                        "allocated cores; memory ")
    json.dumps(report)  # serialisable as it is


@pytest.mark.parametrize("name", list(GENERATED))
def test_generated_jobs_numbers_are_those_of_the_archive_files(site, rt, name):
    job = _generated(rt, name)
    report = _report(rt, job)
    _check_numbers(site, report, job)
    meta, _, cluster = _files(site, job)
    sub = next(s for s in cluster["subClusters"] if s["name"] == meta["subCluster"])
    assert report["allocation"]["coresPerNode"] == sub["socketsPerNode"] * sub["coresPerSocket"] * sub["threadsPerCore"]
    assert report["allocation"]["hwthreads"] == meta["numHwthreads"]
    assert report["allocation"]["exclusive"] is (meta["shared"] == "none")
    assert report["runtime"]["fractionOfWalltime"] == pytest.approx(meta["duration"] / meta["walltime"], abs=1e-4)


def test_shared_job_is_measured_against_its_share_of_the_node(rt):
    report = _report(rt, _generated(rt, "shared"))
    checks = {c["key"]: c for c in report["checks"]}
    assert checks["cpu_load"]["reference"] == 18.0 and checks["cpu_load"]["verdict"] == "good"
    # 18 of 72 cores: a quarter of fritz main's 5600 GF/s and 350 GB/s, and of its caution/alert levels
    assert checks["flops"]["reference"] == pytest.approx(1400.0) and checks["flops"]["verdict"] == "good"
    assert checks["mem_bw"]["reference"] == pytest.approx(87.5) and checks["mem_bw"]["verdict"] == "good"
    assert report["allocation"]["exclusive"] is False and report["job"]["exclusive"] is False
    assert report["notes"] == [] and report["jobClasses"] == []  # the class rules ask for shared == "none"


# --- verdicts and notes -----------------------------------------------------------------------------------


def test_idle_job_is_bad_and_says_what_to_do(rt):
    report = _report(rt, _generated(rt, "idle"))
    assert {c["key"]: c["verdict"] for c in report["checks"]} == {
        "cpu_load": "bad", "memory": "good", "flops": "bad", "mem_bw": "bad"}
    assert report["checks"][0]["text"] == ("Average load 0.3 on 72 cores allocated per node (0%): most of the "
                                           "allocated cores sat idle.")
    assert report["notes"][:3] == [
        "The job ran 01:00:00 of the 1d 00:00:00 requested (4%): a closer walltime request lets the scheduler "
        "start it sooner.",
        "The job kept about 0.3 of 72 allocated cores per node busy: request fewer cores, or check that the "
        "program runs in parallel (threads, MPI ranks).",
        "Few floating-point operations: the job may wait on I/O or communication, or its code is not "
        "compute-bound; a profile (e.g. LIKWID) shows where the time goes.",
    ]
    assert [c["tag"] for c in report["jobClasses"]] == ["lowutilization", "lowload"]  # rule files in name order
    assert report["notes"][3:] == [c["hint"] for c in report["jobClasses"]]
    assert report["summary"] == ("CPU load 0% of the allocated cores; memory 3% of the node; flops 0% of peak; "
                                 "memory bandwidth 0% of peak")


def test_busy_healthy_job_is_good_without_notes(rt):
    report = _report(rt, _generated(rt, "busy"))
    assert {c["key"]: c["verdict"] for c in report["checks"]} == {
        "cpu_load": "good", "memory": "good", "flops": "good", "mem_bw": "good", "imbalance": "good"}
    assert report["notes"] == [] and report["jobClasses"] == []
    assert report["checks"][-1]["text"] == "Busiest node f0103 at load 71, 1.01 times the mean 70.5 of 2 nodes."


def test_imbalanced_eight_node_job_names_the_busy_and_idle_nodes(rt):
    report = _report(rt, _generated(rt, "imbalanced"))
    checks = {c["key"]: c for c in report["checks"]}
    assert checks["imbalance"]["verdict"] == "bad"
    assert checks["imbalance"]["value"] == pytest.approx(70.0 / ((70.0 + 7 * 0.2) / 8), abs=1e-4)
    assert checks["imbalance"]["text"] == ("Busiest node f0111 at load 70, 7.84 times the mean 8.93 of 8 nodes; "
                                           "idle: f0112, f0113, f0114, f0115, f0116 and 2 more.")
    assert checks["cpu_load"]["verdict"] == "bad"
    # fritz's levels: flops alert 50 < 126 < caution 200, bandwidth alert 10 < 12.9 < caution 50
    assert checks["flops"]["verdict"] == "warn" and checks["mem_bw"]["verdict"] == "warn"
    assert "Requested 8 nodes, the load was on 1: run fewer nodes or spread the work (srun --ntasks-per-node)." \
        in report["notes"]
    assert report["summary"].endswith("busiest node 7.84x the mean load")
    assert report["energy"] is None  # fritz has power metrics, this job recorded none: unknown, not 0 kWh


def test_gpu_job_has_gpu_checks_and_energy(rt):
    job = _generated(rt, "gpu")
    report = _report(rt, job, emission_constant=EMISSION)
    checks = {c["key"]: c for c in report["checks"]}
    assert list(checks) == ["cpu_load", "memory", "flops", "mem_bw", "gpu_util", "gpu_mem"]
    assert checks["gpu_util"]["verdict"] == "warn" and checks["gpu_util"]["text"] == \
        "The GPUs were busy 30% of the time on average: partly idle."
    assert checks["gpu_mem"]["verdict"] == "warn" and checks["gpu_mem"]["unit"] == "GB"
    assert checks["gpu_util"]["unit"] == "%"
    assert checks["cpu_load"]["verdict"] == "good"
    assert any(n.startswith("The GPUs were busy 30% of the time: request fewer GPUs") for n in report["notes"])
    assert any(n.startswith("Memory use reached 98% of the GPU memory") for n in report["notes"])
    # energy: each power metric's avg W x nodes x hours / 1000, as meta.json and cluster.json give them
    cluster = _cluster_doc(_fixture_archive(), "alex")
    stats = GENERATED["gpu"][-1]
    kwh = sum(stats[m["name"]][0] * 1 * 2 / 1000 for m in cluster["metricConfig"] if m.get("energy") == "power")
    assert kwh == pytest.approx(3.1)
    assert report["energy"] == {"kwh": pytest.approx(kwh), "co2Grams": pytest.approx(kwh * EMISSION),
                                "emissionConstant": EMISSION}
    assert _report(rt, job)["energy"] == {"kwh": pytest.approx(kwh), "co2Grams": None, "emissionConstant": 0}


def test_gpu_memory_is_judged_against_the_gpus_of_a_node(rt):
    """acc_mem_used is summed over a node's GPUs, its peak is one GPU's: 312 GB on 8 x 40 GB is 98 %, not 780 %."""
    job = _generated(rt, "gpu")
    gpu_mem = {c["key"]: c for c in _report(rt, job)["checks"]}["gpu_mem"]
    assert (gpu_mem["value"], gpu_mem["reference"], gpu_mem["ratio"]) == (312.0, 320.0, 0.975)
    assert gpu_mem["referenceLabel"] == "memory of 8 GPUs"
    assert gpu_mem["text"] == "Peak memory 312 GB of 320 GB GPU memory (98%): close to running out."
    # half the GPUs of the node: half the memory to compare with
    half = {c["key"]: c for c in _report(rt, dict(job, numAcc=4))["checks"]}["gpu_mem"]
    assert (half["reference"], half["ratio"], half["verdict"]) == (160.0, 1.95, "warn")
    assert half["text"] == "Peak memory 312 GB of 160 GB GPU memory (195%): beyond the configured capacity."


def test_gpu_checks_need_accelerators(rt):
    job = dict(_generated(rt, "gpu"), numAcc=0)
    assert "gpu_util" not in [c["key"] for c in _report(rt, job)["checks"]]


def test_job_class_hint_becomes_a_note(rt):
    report = _report(rt, _generated(rt, "lowload"))
    assert report["jobClasses"] == [{"tag": "lowload", "hint": (
        "This job was detected as low CPU load: average cpu load 50 is below the threshold 61.2 (0.85).")}]
    assert report["notes"][-1] == report["jobClasses"][0]["hint"]
    assert report["checks"][0]["verdict"] == "warn"
    assert _report_without_classes(rt, _generated(rt, "lowload"))["jobClasses"] == []


def _report_without_classes(rt, job):
    from cc_backend.jobs.report import efficiency_report

    return efficiency_report(rt.archive, job)


def test_job_without_data_is_unknown_with_a_reason(rt):
    running = dict(_job(rt, 1403244), jobState="running", monitoringStatus=1)
    report = _report(rt, running)
    assert {c["verdict"] for c in report["checks"]} == {"unknown"}
    assert all(c["value"] is None and c["ratio"] is None for c in report["checks"])
    assert report["checks"][0]["text"] == ("No cpu_load statistics: the job is still running and no metric store "
                                           "is configured.")
    assert report["summary"] == "No metric data: the job is still running and no metric store is configured."
    assert report["jobClasses"] == [] and report["energy"] is None
    unknown = dict(_job(rt, 1403244), subCluster="nosuch")
    report = _report(rt, unknown)
    assert report["checks"] == [] and "not in the archive's cluster.json" in report["summary"]


def test_restricted_metrics_are_left_out_for_users(rt):
    from cc_backend.auth.security import Viewer

    viewer = Viewer(username="owner-busy", roles=("user",), projects=())
    report = _report(rt, _generated(rt, "busy"), viewer=viewer)
    assert [c["key"] for c in report["checks"]] == ["cpu_load", "memory", "flops", "mem_bw", "imbalance"]


# --- text --------------------------------------------------------------------------------------------------


def test_text_rendering_lines(rt):
    from cc_backend.jobs.report import render_report_text

    job = _generated(rt, "imbalanced")
    text = render_report_text(_report(rt, job))
    lines = text.splitlines()
    assert lines[0] == f"Efficiency report of job {job['jobId']} (id {job['id']}) on fritz/main"
    assert "Allocation  8 nodes x 72 cores, 576 hwthreads, exclusive" in lines
    assert "Runtime     02:00:00 of 02:00:00 walltime (100%)" in lines
    cpu = next(line for line in lines if line.startswith("CPU load"))
    assert re.fullmatch(r"CPU load +\[#\.{9}\]   12%  bad      8\.93 / 72 cores", cpu), cpu
    balance = next(line for line in lines if line.startswith("Load balance"))
    assert re.fullmatch(r"Load balance +\[ {10}\] +bad +7\.84x mean", balance), balance
    # long sentences wrap with a hanging indent under their bullet
    note = lines.index("  - Requested 8 nodes, the load was on 1: run fewer nodes or spread the work")
    assert lines[note + 1] == "    (srun --ntasks-per-node)."
    summary = next(i for i, line in enumerate(lines) if line.startswith("Summary: "))
    assert lines[summary].startswith("Summary: CPU load 12% of the allocated cores;")
    assert all(line.startswith(" " * 9) for line in lines[summary + 1:])
    assert " ".join(line.strip() for line in lines[summary:]) == "Summary: " + _report(rt, job)["summary"]
    assert "\x1b" not in text


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_text_fits_an_80_column_terminal(rt, name):
    from cc_backend.jobs.report import TEXT_WIDTH, render_report_text

    text = render_report_text(_report(rt, _generated(rt, name), emission_constant=EMISSION))
    assert TEXT_WIDTH == 76
    assert max(len(line) for line in text.splitlines()) <= TEXT_WIDTH, text
    gpu_line = "GPU memory        [##########]   98%  warn     312 / 320 GB"
    assert (gpu_line in text.splitlines()) is (name == "gpu")


# --- CLI -----------------------------------------------------------------------------------------------------


def test_cli_text_and_json(site, rt):
    from cc_backend.jobs.report import render_report_text

    job = _generated(rt, "gpu")
    r = cli(site, "report", str(job["id"]))
    assert r.returncode == 0, r.stderr
    assert r.stdout == render_report_text(_report(rt, job))
    r = cli(site, "report", "--job-id", str(job["jobId"]), "--cluster", "alex", "--format", "json")
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    assert body == json.loads(json.dumps(_report(rt, job)))
    assert [c["verdict"] for c in body["checks"]] == ["good", "good", "good", "good", "warn", "warn"]


def test_cli_errors(site):
    r = cli(site, "report", "999999")
    assert r.returncode == 3 and "no job with id 999999" in r.stderr
    r = cli(site, "report", "--job-id", "1403244", "--cluster", "fritz")
    assert r.returncode == 3 and "no job with jobId 1403244 on fritz" in r.stderr
    r = cli(site, "report")
    assert r.returncode == 2 and "--job-id and --cluster" in r.stderr
    r = cli(site, "report", "--job-id", "1403244")
    assert r.returncode == 2 and "--job-id needs --cluster" in r.stderr
    r = cli(site, "report", "1", "--job-id", "1403244", "--cluster", "emmy")
    assert r.returncode == 2 and "give either JOB or --job-id, not both" in r.stderr
    r = cli(site, "report", "--format", "csv", "1")
    assert r.returncode == 2 and "csv" in r.stderr


# --- REST ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app(site):
    app = InProcess(site)
    yield app
    app.stop()


def test_rest_owner_sees_the_report_of_own_job(site, rt, app):
    job = _generated(rt, "busy")
    r = app.get(f"/userapi/jobs/report/{job['id']}", headers=auth(token(site, ["user", "api"], sub="owner-busy")))
    assert r.status_code == 200, r.text
    assert r.json() == json.loads(json.dumps(_report(rt, job)))
    r = app.get(f"/api/jobs/report/{job['id']}", headers=auth(token(site, ["api"])))
    assert r.status_code == 200 and r.json()["job"]["user"] == "owner-busy"


def test_rest_other_users_job_bad_id_and_unknown_parameter(site, rt, app):
    job = _generated(rt, "busy")
    headers = auth(token(site, ["user", "api"], sub="owner-idle"))
    r = app.get(f"/userapi/jobs/report/{job['id']}", headers=headers)
    assert r.status_code == 404 and r.json()["error"] == f"no job with id {job['id']}"
    r = app.get("/userapi/jobs/report/99999", headers=headers)
    assert r.status_code == 404
    r = app.get("/userapi/jobs/report/abc", headers=headers)
    assert r.status_code == 400 and r.json()["error"] == "id must be an integer, got 'abc'"
    r = app.get("/api/jobs/report/0", headers=auth(token(site, ["api"])))
    assert r.status_code == 400 and r.json()["error"].startswith("id must be >= 1")
    r = app.get(f"/api/jobs/report/{job['id']}?format=text", headers=auth(token(site, ["api"])))
    assert r.status_code == 400 and r.json()["error"] == "invalid query parameter: format"
    assert app.get(f"/api/jobs/report/{job['id']}").status_code == 401



