"""Job metric data: LTTB, derived series, and the REST routes that return series (GET/POST /api/jobs/{id}, metrics)."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import httpx
import pytest
from peerdata import PEER
from support.cli import cli
from support.db import SQLITE_ONLY

from cc_backend.metrics.resampling import lttb
from cc_backend.metrics.statistics import node_scope_from, statistics_series

IMPORTER = PEER / "importer"


# --- pure functions -------------------------------------------------------------------------------

def test_lttb_keeps_endpoints_length_and_peaks():
    data = [math.sin(i / 50) for i in range(1000)]
    data[537] = 25.0  # a spike an average would flatten
    out = lttb(data, 100)
    assert len(out) == 100
    assert out[0] == data[0] and out[-1] == data[-1]
    assert 25.0 in out
    assert lttb(data[:50], 100) == data[:50]  # never upsamples


def test_lttb_skips_missing_samples_when_a_bucket_has_real_ones():
    data = [None if i % 3 == 0 else float(i) for i in range(1, 301)]
    out = lttb(data, 30)
    assert len(out) == 30
    assert all(v is not None for v in out[1:-1])


def test_statistics_series_per_timestep_ignores_missing():
    series = [{"data": [1.0, 4.0, None]}, {"data": [3.0, None, None]}, {"data": [2.0, 8.0]}]
    stats = statistics_series(series)
    assert stats == {"min": [1.0, 4.0, None], "median": [2.0, 6.0, None], "mean": [2.0, 6.0, None],
                     "max": [3.0, 8.0, None]}


def test_node_scope_from_core_sums_or_averages_per_host():
    core = {"unit": {"base": "F/s"}, "timestep": 60, "series": [
        {"hostname": "a", "id": "0", "data": [1.0, 2.0]}, {"hostname": "a", "id": "1", "data": [3.0, None]},
        {"hostname": "b", "id": "0", "data": [5.0, 6.0]}]}
    summed = node_scope_from(core, "sum")
    assert [(s["hostname"], s["data"]) for s in summed["series"]] == [("a", [4.0, 2.0]), ("b", [5.0, 6.0])]
    assert summed["series"][0]["statistics"] == {"min": 2.0, "avg": 3.0, "max": 4.0}
    averaged = node_scope_from(core, "avg")
    assert averaged["series"][0]["data"] == [2.0, 2.0]


# --- over HTTP ------------------------------------------------------------------------------------

@pytest.fixture
def served(app_start, site):
    """The app in process on the peer archive (two archived 32-node emmy jobs); a client with an admin+api token."""
    server = app_start()
    assert cli(site, "-add-user", "boss:admin,api:pw").returncode == 0
    headers = {"X-Auth-Token": cli(site, "-jwt", "boss").stdout.strip()}
    client = server.client(headers=headers)
    yield client, site
    client.close()


def emmy_job(client: httpx.Client) -> dict:
    jobs = client.get("/api/jobs/?cluster=emmy").json()["jobs"]
    return next(j for j in jobs if j["jobId"] == 1404397)


def archived_data(site_archive: Path, job: dict) -> dict:
    path = site_archive / job["cluster"] / str(job["jobId"] // 1000) / f"{job['jobId'] % 1000:03d}" / str(job["startTime"])
    gz = path / "data.json.gz"
    return json.loads(gzip.decompress(gz.read_bytes())) if gz.exists() else json.loads((path / "data.json").read_text())


def archive_root(site: Path) -> Path:
    return Path(json.loads((site / "config.json").read_text())["archive"]["path"])


@SQLITE_ONLY
def test_get_job_with_all_metrics_returns_the_archived_series(served):
    client, site = served
    job = emmy_job(client)
    plain = client.get(f"/api/jobs/{job['id']}").json()
    assert plain["Data"] is None and plain["Meta"]["jobId"] == 1404397
    r = client.get(f"/api/jobs/{job['id']}?all-metrics=true")
    assert r.status_code == 200
    data = r.json()["Data"]
    archived = archived_data(archive_root(site), job)
    assert set(data) == set(archived)
    flops = data["flops_any"]["node"]
    assert len(flops["series"]) == 32 and flops["timestep"] == 60
    assert flops["series"] == archived["flops_any"]["node"]["series"]
    # 32 series >= 8: min/median/mean/max per timestep are added
    stats = flops["statisticsSeries"]
    column = [s["data"][100] for s in archived["flops_any"]["node"]["series"] if s["data"][100] is not None]
    assert stats["max"][100] == max(column) and stats["min"][100] == min(column)
    assert client.get(f"/api/jobs/{job['id']}?bogus=1").status_code == 400


@SQLITE_ONLY
def test_post_job_lists_requested_metrics_at_node_scope(served):
    client, _ = served
    job = emmy_job(client)
    r = client.post(f"/api/jobs/{job['id']}", json=["mem_bw", "flops_any", "no_such_metric"])
    assert r.status_code == 200
    body = r.json()
    assert body["Meta"]["id"] == job["id"]
    assert [(d["name"], d["scope"], len(d["metric"]["series"])) for d in body["Data"]] == [
        ("flops_any", "node", 32), ("mem_bw", "node", 32)]
    assert client.post(f"/api/jobs/{job['id']}", json={"metric": "x"}).status_code == 400
    r = client.post("/api/jobs/999999", json=["mem_bw"])
    assert r.status_code == 422 and "999999" in r.json()["error"]


@SQLITE_ONLY
def test_job_metrics_route_selects_scopes_and_resamples(served):
    client, _ = served
    job = emmy_job(client)
    r = client.get(f"/api/jobs/metrics/{job['id']}?metric=flops_any&metric=cpu_load&scope=node")
    assert r.status_code == 200
    body = r.json()
    assert body["error"] is None
    metrics = body["data"]["jobMetrics"]
    assert [(m["name"], m["scope"], m["metric"]["timestep"]) for m in metrics] == [
        ("cpu_load", "node", 60), ("flops_any", "node", 60)]
    native = metrics[1]["metric"]["series"][0]["data"]
    coarse = client.get(f"/api/jobs/metrics/{job['id']}?metric=flops_any&scope=node&resolution=600").json()
    series = coarse["data"]["jobMetrics"][0]["metric"]
    assert series["timestep"] == 600
    assert len(series["series"][0]["data"]) == len(native) * 60 // 600
    assert series["series"][0]["data"][0] == native[0] and series["series"][0]["data"][-1] == native[-1]
    assert max(v for v in series["series"][0]["data"] if v is not None) == max(v for v in native if v is not None)
    bad = client.get(f"/api/jobs/metrics/{job['id']}?scope=galaxy")
    assert bad.status_code == 400 and bad.json() == {"data": None, "error": {"message": bad.json()["error"]["message"]}}
    assert "galaxy" in bad.json()["error"]["message"]
    missing = client.get("/api/jobs/metrics/999999")
    assert missing.status_code == 422 and missing.json()["data"] is None


@SQLITE_ONLY
def test_imported_job_round_trips_through_the_archive(served):
    """Upstream's A3 with the importer's case: what was archived comes back unchanged."""
    client, site = served
    meta, data = IMPORTER / "meta-fritzMinimal.input", IMPORTER / "data-fritzMinimal.json"
    r = cli(site, "--import-job", f"{meta}:{data}")
    assert r.returncode == 0, r.stderr
    job = next(j for j in client.get("/api/jobs/?cluster=fritz").json()["jobs"] if j["jobId"] == 398764)
    assert job["monitoringStatus"] == 3
    got = client.get(f"/api/jobs/{job['id']}?all-metrics=true").json()["Data"]
    original = json.loads(data.read_text())
    # one node: core scope where archived, else the coarsest archived scope
    assert got["flops_any"] == {"core": original["flops_any"]["core"] | {"statisticsSeries": got["flops_any"]["core"]["statisticsSeries"]}}
    assert got["mem_used"] == {"node": original["mem_used"]["node"]}
    assert got["mem_bw"] == {"node": original["mem_bw"]["node"]}


@SQLITE_ONLY
def test_running_job_has_no_series_yet(served):
    client, _ = served
    payload = {"jobId": 77, "user": "u", "project": "p", "cluster": "fritz", "partition": "main", "walltime": 60,
               "numNodes": 1, "shared": "none", "monitoringStatus": 1, "smt": 1,
               "resources": [{"hostname": "f0101"}], "startTime": 1700000000}
    assert client.post("/api/jobs/start_job/", json=payload).status_code == 201
    job = next(j for j in client.get("/api/jobs/?state=running").json()["jobs"] if j["jobId"] == 77)
    assert client.get(f"/api/jobs/{job['id']}?all-metrics=true").json()["Data"] == {}
    assert client.get(f"/api/jobs/metrics/{job['id']}").json() == {"data": {"jobMetrics": []}, "error": None}


@SQLITE_ONLY
def test_userapi_shows_series_of_own_jobs_only(served):
    client, site = served
    job = emmy_job(client)
    assert cli(site, "-add-user", f"{job['user']}:api,user:pw").returncode == 0
    assert cli(site, "-add-user", "stranger:api,user:pw").returncode == 0
    for name, status in ((job["user"], 200), ("stranger", 422)):
        token = cli(site, "-jwt", name).stdout.strip()
        r = client.get(f"/userapi/jobs/metrics/{job['id']}?metric=mem_bw&scope=node",
                       headers={"X-Auth-Token": token})
        assert r.status_code == status
        if status == 200:
            assert r.json()["data"]["jobMetrics"][0]["name"] == "mem_bw"


@SQLITE_ONLY
def test_job_list_carries_archived_statistics(served):
    """Upstream's GET /api/jobs/ adds meta.json's statistics to archived jobs; scripts read them there."""
    client, site = served
    for job in client.get("/api/jobs/?cluster=emmy").json()["jobs"]:
        meta_dir = (archive_root(site) / "emmy" / str(job["jobId"] // 1000) / f"{job['jobId'] % 1000:03d}"
                    / str(job["startTime"]))
        meta = json.loads((meta_dir / "meta.json").read_text())
        assert job["statistics"] == meta["statistics"] and job["statistics"]["flops_any"]["avg"] >= 0
