"""GraphQL metric queries over HTTP: jobMetrics, jobStats, scopedJobStats, job analyses, node and cluster metrics.

The site holds the peer archive's two archived 32-node emmy jobs (init-db), with emmy's cluster.json
changed so that ``ipc`` is restricted and flops_any/mem_bw have footprints, plus one running job.
"""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import httpx
import pytest
from peerdata import copy_archive
from support.cli import cli
from support.db import module_database
from support.graphql import GraphQLSite, add_users
from support.server import Server
from support.site import main_section, write_site

OWNER = "emmyUser6"  # owns both emmy jobs
#: gqladmin is the GraphQLSite client's default user.
#: The owner also holds "api" for /userapi; api with user still sees as a user.
USERS = {"gqladmin": ["admin", "api"], "mxsupport": ["support"], OWNER: ["user", "api"], "mxstranger": ["user"]}
EMMY_JOBS = (1403244, 1404397)
RUNNING_JOB_ID = 4242
#: Default resolution of this site: the largest of main.resampling.resolutions.
DEFAULT_RESOLUTION = 600

JOB_METRICS = """query ($id: ID!, $metrics: [String!], $scopes: [MetricScope!], $resolution: Int) {
  jobMetrics(id: $id, metrics: $metrics, scopes: $scopes, resolution: $resolution) {
    name scope
    metric { unit { base prefix } timestep
             series { hostname id statistics { avg min max } data }
             statisticsSeries { mean median min max } }
  }
}"""
JOB_STATS = "query ($id: ID!, $metrics: [String!]) { jobStats(id: $id, metrics: $metrics) { name data { avg min max } } }"
SCOPED_STATS = """query ($id: ID!, $metrics: [String!], $scopes: [MetricScope!]) {
  scopedJobStats(id: $id, metrics: $metrics, scopes: $scopes) { name scope stats { hostname id data { avg min max } } }
}"""


def _prepare_archive(folder: Path) -> Path:
    archive = copy_archive(folder, "job-archive")
    cluster_file = archive / "emmy" / "cluster.json"
    cluster = json.loads(cluster_file.read_text())
    for metric in cluster["metricConfig"]:
        if metric["name"] == "ipc":
            metric["restrict"] = True
        if metric["name"] in ("flops_any", "mem_bw"):
            metric["footprint"] = "avg"
    cluster_file.write_text(json.dumps(cluster, indent=2))
    return archive


@pytest.fixture(scope="module", params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def metrics_site(request, tmp_path_factory) -> GraphQLSite:
    folder = tmp_path_factory.mktemp(f"graphql-metrics-{request.param}")
    archive = _prepare_archive(folder)
    with module_database(request, folder) as db_url:
        main = main_section(db_url)
        main["resampling"] = {"minimum-points": 600, "trigger": 30, "resolutions": [DEFAULT_RESOLUTION, 300, 60]}
        write_site(folder, main, archive, validate_user=True)
        r = cli(folder, "--init-db")
        assert r.returncode == 0, r.stderr
        tokens = add_users(folder, USERS)
        server = Server(folder)
        server.wait_ready()
        try:
            _start_running_job(server.url, tokens["gqladmin"])
            yield GraphQLSite(server=server, site=folder, tokens=tokens)
        finally:
            server.stop()


def _start_running_job(url: str, token: str) -> None:
    payload = {"jobId": RUNNING_JOB_ID, "user": OWNER, "project": "no project", "cluster": "emmy",
               "partition": "work", "walltime": 3600, "numNodes": 1, "shared": "none", "monitoringStatus": 1,
               "smt": 1, "resources": [{"hostname": "w1127"}], "startTime": 1700000000}
    r = httpx.post(url + "/api/jobs/start_job/", json=payload, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 201, r.text


# --- helpers --------------------------------------------------------------------------------------

def _jobs(site: GraphQLSite) -> dict[int, dict]:
    """jobId -> {id, startTime, duration, numNodes, user} of every job on the site."""
    data = site.query("{ jobs(page: {itemsPerPage: -1, page: 1}) { items { id jobId user startTime duration numNodes state } } }")
    return {j["jobId"]: j for j in data["jobs"]["items"]}


def _job_dir(site: GraphQLSite, job_id: int) -> Path:
    archive = Path(json.loads((site.site / "config.json").read_text())["archive"]["path"])
    level = archive / "emmy" / str(job_id // 1000) / f"{job_id % 1000:03d}"
    return next(level.iterdir())


def _archived_data(site: GraphQLSite, job_id: int) -> dict:
    return json.loads(gzip.decompress((_job_dir(site, job_id) / "data.json.gz").read_bytes()))


def _meta(site: GraphQLSite, job_id: int) -> dict:
    return json.loads((_job_dir(site, job_id) / "meta.json").read_text())


def _db_id(site: GraphQLSite, job_id: int) -> str:
    return _jobs(site)[job_id]["id"]


def _finite_column(series: list[dict], t: int) -> list[float]:
    return [s["data"][t] for s in series if t < len(s["data"]) and s["data"][t] is not None]


def _error_codes(errors: list[dict]) -> list[str]:
    return [(e.get("extensions") or {}).get("code") for e in errors]


# --- jobMetrics -----------------------------------------------------------------------------------

def test_job_metrics_at_native_resolution_are_the_archived_series(metrics_site):
    site = metrics_site
    archived = _archived_data(site, 1404397)
    data = site.query(JOB_METRICS, {"id": _db_id(site, 1404397), "scopes": ["node"], "resolution": 0})["jobMetrics"]
    assert sorted(m["name"] for m in data) == sorted(archived)
    assert [m["name"] for m in data] == sorted(m["name"] for m in data)  # sorted by name, as the REST route
    for item in data:
        assert item["scope"] == "node"
        source, metric = archived[item["name"]]["node"], item["metric"]
        assert metric["timestep"] == source["timestep"] == 60
        assert metric["unit"] == {"base": source["unit"]["base"], "prefix": source["unit"].get("prefix")}
        assert [s["hostname"] for s in metric["series"]] == [s["hostname"] for s in source["series"]]
        assert [s["data"] for s in metric["series"]] == [s["data"] for s in source["series"]]  # nulls included
        for got, want in zip(metric["series"], source["series"]):
            # as archived: ipc's series carry no statistics in this archive
            expected = {k: float(want["statistics"][k]) for k in ("avg", "min", "max")} if "statistics" in want else None
            assert got["statistics"] == expected
    # 32 series (>= 8): min/median/mean/max per timestep over the nodes
    flops = next(m["metric"] for m in data if m["name"] == "flops_any")
    source = archived["flops_any"]["node"]["series"]
    stats = flops["statisticsSeries"]
    assert len(stats["max"]) == len(source[0]["data"])
    for t in (0, 100, 777, len(source[0]["data"]) - 1):
        column = sorted(_finite_column(source, t))
        assert stats["max"][t] == column[-1] and stats["min"][t] == column[0]
        mid = len(column) // 2
        assert stats["median"][t] == (column[mid] if len(column) % 2 else (column[mid - 1] + column[mid]) / 2)
        assert math.isclose(stats["mean"][t], sum(column) / len(column))
    assert any(v is None for s in flops["series"] for v in s["data"])  # missing samples come back as null


def test_job_metrics_resample_to_the_default_or_the_requested_resolution(metrics_site):
    site = metrics_site
    job_id = _db_id(site, 1403244)
    native = site.query(JOB_METRICS, {"id": job_id, "metrics": ["mem_bw"], "resolution": 0})["jobMetrics"][0]["metric"]
    length = len(native["series"][0]["data"])
    assert length == 1441
    default = site.query(JOB_METRICS, {"id": job_id, "metrics": ["mem_bw"]})["jobMetrics"][0]["metric"]
    assert default["timestep"] == DEFAULT_RESOLUTION
    for coarse, fine in zip(default["series"], native["series"]):
        assert len(coarse["data"]) == length * 60 // DEFAULT_RESOLUTION < length
        assert coarse["data"][0] == fine["data"][0] and coarse["data"][-1] == fine["data"][-1]
        # LTTB picks samples, it never invents them: peaks survive
        assert set(v for v in coarse["data"] if v is not None) <= set(fine["data"])
    assert len(default["statisticsSeries"]["mean"]) == length * 60 // DEFAULT_RESOLUTION
    finer = site.query(JOB_METRICS, {"id": job_id, "metrics": ["mem_bw"], "resolution": 300})["jobMetrics"][0]["metric"]
    assert finer["timestep"] == 300 and len(finer["series"][0]["data"]) == length * 60 // 300


def test_job_metrics_select_metrics_and_skip_unknown_ones(metrics_site):
    site = metrics_site
    job_id = _db_id(site, 1404397)
    data = site.query(JOB_METRICS, {"id": job_id, "metrics": ["mem_bw", "no_such_metric", "cpu_load"], "scopes": ["node"]})
    assert [(m["name"], m["scope"], len(m["metric"]["series"])) for m in data["jobMetrics"]] == [
        ("cpu_load", "node", 32), ("mem_bw", "node", 32)]
    # a scope that was not archived: the coarsest archived one stands in (as the REST API)
    data = site.query(JOB_METRICS, {"id": job_id, "metrics": ["mem_bw"], "scopes": ["core"]})
    assert [(m["name"], m["scope"]) for m in data["jobMetrics"]] == [("mem_bw", "node")]


def test_restricted_metrics_are_hidden_from_users(metrics_site):
    site = metrics_site
    job_id = _db_id(site, 1404397)
    for user, sees_ipc in (("gqladmin", True), ("mxsupport", True), (OWNER, False)):
        names = {m["name"] for m in site.query(JOB_METRICS, {"id": job_id, "resolution": 0}, user=user)["jobMetrics"]}
        assert ("ipc" in names) is sees_ipc and "flops_any" in names, user
        stats = site.query(JOB_STATS, {"id": job_id}, user=user)["jobStats"]
        assert ("ipc" in {s["name"] for s in stats}) is sees_ipc, user
        scoped = site.query(SCOPED_STATS, {"id": job_id, "metrics": ["ipc", "mem_bw"]}, user=user)["scopedJobStats"]
        assert [s["name"] for s in scoped] == (["ipc", "mem_bw"] if sees_ipc else ["mem_bw"]), user



def test_rest_job_metrics_are_graphqls_with_restricted_metrics_hidden(metrics_site):
    """REST serves a job's series as jobMetrics does: default resolution, and ``ipc`` hidden from a user token."""
    site = metrics_site
    job_id = _db_id(site, 1404397)

    def series(items: list[dict]) -> list[tuple]:
        return [(m["name"], m["scope"], m["metric"]["timestep"], [s["data"] for s in m["metric"]["series"]])
                for m in items]

    for user, prefix, sees_ipc in (("gqladmin", "/api", True), (OWNER, "/userapi", False)):
        headers = {"Authorization": f"Bearer {site.tokens[user]}"}
        graphql = site.query(JOB_METRICS, {"id": job_id, "scopes": ["node"]}, user=user)["jobMetrics"]
        assert ("ipc" in {m["name"] for m in graphql}) is sees_ipc, user
        r = httpx.get(f"{site.url}{prefix}/jobs/metrics/{job_id}", params={"scope": "node"}, headers=headers, timeout=30)
        assert r.status_code == 200, r.text
        assert series(r.json()["data"]["jobMetrics"]) == series(graphql), user
        assert {m["metric"]["timestep"] for m in graphql} == {DEFAULT_RESOLUTION}

        r = httpx.get(f"{site.url}{prefix}/jobs/{job_id}", params={"all-metrics": "true"}, headers=headers, timeout=30)
        assert r.status_code == 200, r.text
        assert ("ipc" in r.json()["Data"]) is sees_ipc and "flops_any" in r.json()["Data"], user
        r = httpx.post(f"{site.url}{prefix}/jobs/{job_id}", json=["ipc", "flops_any"], headers=headers, timeout=30)
        assert r.status_code == 200, r.text
        assert [m["name"] for m in r.json()["Data"]] == (["flops_any", "ipc"] if sees_ipc else ["flops_any"]), user


def test_other_users_jobs_are_not_visible(metrics_site):
    site = metrics_site
    job_id = _db_id(site, 1404397)
    for query, variables in ((JOB_METRICS, {"id": job_id}), (JOB_STATS, {"id": job_id}), (SCOPED_STATS, {"id": job_id})):
        errors = site.errors(query, variables, user="mxstranger")
        assert _error_codes(errors) == ["NotFound"] and job_id in errors[0]["message"]
    assert site.errors(JOB_METRICS, {"id": "999999"})[0]["extensions"]["code"] == "NotFound"


def test_running_job_has_no_metrics_yet(metrics_site):
    site = metrics_site
    running = _jobs(site)[RUNNING_JOB_ID]
    assert running["state"] == "running"
    assert site.query(JOB_METRICS, {"id": running["id"]}, user=OWNER) == {"jobMetrics": []}
    assert site.query(JOB_STATS, {"id": running["id"]}) == {"jobStats": []}
    assert site.query(SCOPED_STATS, {"id": running["id"]}) == {"scopedJobStats": []}


# --- jobStats and scopedJobStats ------------------------------------------------------------------

def test_job_stats_are_the_archived_statistics(metrics_site):
    site = metrics_site
    meta = _meta(site, 1403244)["statistics"]
    job_id = _db_id(site, 1403244)
    stats = site.query(JOB_STATS, {"id": job_id, "metrics": ["mem_bw", "flops_any", "not_archived"]})["jobStats"]
    assert stats == [{"name": name, "data": {k: float(meta[name][k]) for k in ("avg", "min", "max")}}
                     for name in ("mem_bw", "flops_any")]
    everything = site.query(JOB_STATS, {"id": job_id})["jobStats"]
    assert [s["name"] for s in everything] == sorted(meta)


def test_scoped_job_stats_per_node(metrics_site):
    site = metrics_site
    archived = _archived_data(site, 1404397)
    data = site.query(SCOPED_STATS, {"id": _db_id(site, 1404397), "metrics": ["flops_any", "clock"],
                                     "scopes": ["node"]})["scopedJobStats"]
    assert [(d["name"], d["scope"]) for d in data] == [("clock", "node"), ("flops_any", "node")]
    for item in data:
        source = archived[item["name"]]["node"]["series"]
        assert [(s["hostname"], s["id"]) for s in item["stats"]] == [(s["hostname"], None) for s in source]
        assert [s["data"] for s in item["stats"]] == [
            {k: float(s["statistics"][k]) for k in ("avg", "min", "max")} for s in source]


# --- analyses over jobs ---------------------------------------------------------------------------

def test_jobs_metric_stats_lists_each_job_with_its_statistics(metrics_site):
    site = metrics_site
    query = """query ($filter: [JobFilter!], $metrics: [String!]) { jobsMetricStats(filter: $filter, metrics: $metrics) {
      id jobId startTime duration cluster subCluster numNodes numHWThreads numAccelerators stats { name data { avg min max } } } }"""
    result = site.query(query, {"filter": [{"cluster": {"eq": "emmy"}}], "metrics": ["flops_any", "ipc"]})["jobsMetricStats"]
    jobs = _jobs(site)
    # oldest first; the running job has no statistics (without a metric store) and is left out, as upstream
    assert [int(r["jobId"]) for r in result] == [1403244, 1404397]
    for row in result[:2]:
        job_id = int(row["jobId"])
        meta = _meta(site, job_id)
        assert row["id"] == int(jobs[job_id]["id"]) and row["startTime"] == meta["startTime"]
        assert (row["duration"], row["numNodes"], row["cluster"], row["subCluster"]) == (
            meta["duration"], 32, "emmy", "haswell")
        assert row["stats"] == [{"name": name, "data": {k: float(meta["statistics"][name][k]) for k in ("avg", "min", "max")}}
                                for name in ("flops_any", "ipc")]
    running = site.query(query, {"filter": [{"state": ["running"]}], "metrics": ["flops_any"]})["jobsMetricStats"]
    assert running == []
    # a job without statistics of one of the requested metrics is left out too (the web UI reads each one)
    assert site.query(query, {"filter": [{"cluster": {"eq": "emmy"}}],
                              "metrics": ["flops_any", "nosuchmetric"]})["jobsMetricStats"] == []
    every_metric = site.query(query, {"filter": [{"cluster": {"eq": "emmy"}}]})["jobsMetricStats"]
    assert [int(r["jobId"]) for r in every_metric] == [1403244, 1404397]
    assert [s["name"] for s in every_metric[0]["stats"]] == sorted(_meta(site, 1403244)["statistics"])
    as_owner = site.query(query, {"filter": [{"state": ["completed"]}], "metrics": ["flops_any", "ipc"]}, user=OWNER)
    assert [[s["name"] for s in r["stats"]] for r in as_owner["jobsMetricStats"]] == [["flops_any"], ["flops_any"]]
    assert site.query(query, {"metrics": ["flops_any"]}, user="mxstranger") == {"jobsMetricStats": []}


def test_analysis_caps_the_number_of_jobs(metrics_site):
    """More matching jobs than an analysis reads is an error naming the filter (caps of 500/5000 lowered to 1 here)."""
    from cc_backend.db.engine import make_engine
    from cc_backend.errors import InvalidInput
    from cc_backend.jobs.analysis import _matching_jobs

    config = json.loads((metrics_site.site / "config.json").read_text())["main"]
    engine = make_engine(config["db"] if config.get("db-driver") == "mysql" else f"sqlite:///{config['db']}")
    try:
        with pytest.raises(InvalidInput) as exc:
            _matching_jobs(engine, [], None, 1, "rooflineHeatmap")
        assert exc.value.field == "filter" and "max 1" in str(exc.value)
        assert len(_matching_jobs(engine, [], None, 3, "rooflineHeatmap")) == 3
    finally:
        engine.dispose()


def test_jobs_footprints_come_from_the_footprint_column(metrics_site):
    site = metrics_site
    query = """query ($filter: [JobFilter!], $metrics: [String!]!) { jobsFootprints(filter: $filter, metrics: $metrics) {
      timeWeights { nodeHours accHours coreHours } metrics { metric data } } }"""
    result = site.query(query, {"filter": [{"state": ["completed"]}],
                                "metrics": ["flops_any", "mem_bw", "cpu_load"]})["jobsFootprints"]
    jobs = sorted((_meta(site, job_id) for job_id in EMMY_JOBS), key=lambda m: -m["startTime"])  # newest first
    assert [m["metric"] for m in result["metrics"]] == ["flops_any", "mem_bw", "cpu_load"]
    assert result["metrics"][0]["data"] == [m["statistics"]["flops_any"]["avg"] for m in jobs]
    assert result["metrics"][1]["data"] == [m["statistics"]["mem_bw"]["avg"] for m in jobs]
    assert result["metrics"][2]["data"] == [None, None]  # cpu_load has no footprint in cluster.json
    # upstream's weights: duration / 60 x nodes (node minutes), 1.0 without accelerators
    assert result["timeWeights"]["nodeHours"] == [m["duration"] / 60 * 32 for m in jobs]
    assert result["timeWeights"]["accHours"] == [1.0, 1.0]
    empty = site.query("{ jobsFootprints(metrics: [\"flops_any\"]) { timeWeights { nodeHours } metrics { data } } }",
                       user="mxstranger")
    assert empty == {"jobsFootprints": {"timeWeights": {"nodeHours": []}, "metrics": [{"data": []}]}}


def _expected_heatmap(site: GraphQLSite, rows: int, cols: int, bounds: tuple[float, float, float, float]) -> list[list[float]]:
    min_x, min_y, max_x, max_y = (math.log10(b) for b in bounds)
    tiles = [[0.0] * cols for _ in range(rows)]
    for job_id in EMMY_JOBS:
        data = _archived_data(site, job_id)
        bandwidth = {s["hostname"]: s["data"] for s in data["mem_bw"]["node"]["series"]}
        for node in data["flops_any"]["node"]["series"]:
            for flops, bw in zip(node["data"], bandwidth[node["hostname"]]):
                if flops is None or bw is None or flops <= 0 or bw <= 0:
                    continue
                x, y = math.log10(flops / bw), math.log10(flops)
                if min_x <= x < max_x and min_y <= y <= max_y:
                    col = math.floor((x - min_x) / (max_x - min_x) * cols)
                    row = math.floor((y - min_y) / (max_y - min_y) * rows)
                    if col < cols and row < rows:
                        tiles[row][col] += 1
    return tiles


def test_roofline_heatmap_bins_the_node_samples(metrics_site):
    site = metrics_site
    query = """query ($filter: [JobFilter!]!, $rows: Int!, $cols: Int!, $minX: Float!, $minY: Float!, $maxX: Float!, $maxY: Float!) {
      rooflineHeatmap(filter: $filter, rows: $rows, cols: $cols, minX: $minX, minY: $minY, maxX: $maxX, maxY: $maxY) }"""
    variables = {"filter": [{"cluster": {"eq": "emmy"}}], "rows": 12, "cols": 10,
                 "minX": 0.01, "minY": 1.0, "maxX": 1000.0, "maxY": 10000.0}
    tiles = site.query(query, variables)["rooflineHeatmap"]
    assert len(tiles) == 12 and all(len(row) == 10 for row in tiles)
    assert tiles == _expected_heatmap(site, 12, 10, (0.01, 1.0, 1000.0, 10000.0))
    assert sum(map(sum, tiles)) > 50_000  # most of 2 x 32 nodes x ~1440 samples fall inside
    assert site.query(query, variables, user="mxstranger")["rooflineHeatmap"] == [[0.0] * 10 for _ in range(12)]
    for change, field in (({"rows": 0}, "rows"), ({"cols": -3}, "cols"), ({"minX": 1000.0}, "minX"),
                          ({"maxY": 0.5}, "minY"), ({"rows": 10_000, "cols": 10_000}, "rows")):
        errors = site.errors(query, {**variables, **change})
        assert errors[0]["extensions"]["code"] == "InvalidInput" and errors[0]["extensions"]["field"] == field, errors


def test_roofline_heatmap_with_a_bound_not_known_yet_is_empty(metrics_site):
    """Upstream's web UI asks with maxY -1 before it knows the peak: an all-zero heatmap, not an error."""
    query = """query ($filter: [JobFilter!]!, $rows: Int!, $cols: Int!, $minX: Float!, $minY: Float!, $maxX: Float!, $maxY: Float!) {
      rooflineHeatmap(filter: $filter, rows: $rows, cols: $cols, minX: $minX, minY: $minY, maxX: $maxX, maxY: $maxY) }"""
    first_render = {"filter": [{"cluster": {"eq": "emmy"}}, {"state": ["completed"]}], "rows": 50, "cols": 40,
                    "minX": 0.01, "minY": 1.0, "maxX": 1000.0, "maxY": -1.0}
    assert metrics_site.query(query, first_render) == {"rooflineHeatmap": [[0.0] * 40 for _ in range(50)]}
    for change in ({"minY": 0.0}, {"maxX": -1.0, "maxY": 10000.0}):
        assert metrics_site.query(query, {**first_render, **change, "rows": 2, "cols": 3}) == {
            "rooflineHeatmap": [[0.0] * 3, [0.0] * 3]}
    errors = metrics_site.errors(query, {**first_render, "rows": 0})
    assert errors[0]["extensions"]["field"] == "rows", errors


# --- nodes and clusters ---------------------------------------------------------------------------

NODE_METRICS = """{ nodeMetrics(cluster: "emmy", from: "2024-01-01T00:00:00Z", to: "2024-01-01T01:00:00Z") {
  host subCluster metrics { name } } }"""
NODE_METRICS_LIST = """{ nodeMetricsList(cluster: "emmy", subCluster: "haswell", stateFilter: "all", nodeFilter: "",
  from: "2024-01-01T00:00:00Z", to: "2024-01-01T01:00:00Z", page: {itemsPerPage: 10, page: 1}) {
  items { host } offset limit count totalNodes hasNextPage } }"""
CLUSTER_METRICS = """{ clusterMetrics(cluster: "emmy", from: "2024-01-01T00:00:00Z", to: "2024-01-01T01:00:00Z") {
  nodeCount metrics { name unit { base } timestep data } } }"""


def test_node_and_cluster_metrics_are_empty_until_a_metric_store_exists(metrics_site):
    site = metrics_site
    for user in ("gqladmin", "mxsupport"):
        assert site.query(NODE_METRICS, user=user) == {"nodeMetrics": []}
        assert site.query(CLUSTER_METRICS, user=user) == {"clusterMetrics": {"nodeCount": 0, "metrics": []}}


NODE_LIST = """query ($sub: String!, $state: String!, $node: String!, $page: PageRequest) {
  nodeMetricsList(cluster: "emmy", subCluster: $sub, stateFilter: $state, nodeFilter: $node,
                  from: "2024-01-01T00:00:00Z", to: "2024-01-01T01:00:00Z", page: $page) {
    items { host nodeState metricHealth subCluster metrics { name } } offset limit count totalNodes hasNextPage } }"""
#: emmy's haswell subcluster, w11[27-45,49-63,69-72], in hostname order.
HASWELL = [f"w11{n:02d}" for n in (*range(27, 46), *range(49, 64), *range(69, 73))]


def _node_list(site: GraphQLSite, sub: str = "haswell", state: str = "all", node: str = "",
               page: dict | None = None, user: str = "gqladmin") -> dict:
    return site.query(NODE_LIST, {"sub": sub, "state": state, "node": node, "page": page},
                      user=user)["nodeMetricsList"]


def test_node_metrics_list_pages_the_nodes_without_a_metric_store(metrics_site):
    """The node list view: the subcluster's nodes, paged, with their states and no series (no metric store)."""
    site = metrics_site
    r = httpx.post(site.url + "/api/nodestate/", timeout=30, headers={"Authorization": f"Bearer {site.tokens['gqladmin']}"},
                   json={"cluster": "emmy", "nodes": [{"hostname": "w1127", "states": ["allocated"], "jobsRunning": 1},
                                                      {"hostname": "w1170", "states": ["idle"]},
                                                      {"hostname": "w9999", "states": ["down"]}]})
    assert r.status_code == 200, r.text

    def item(host: str, state: str = "notindb", health: str = "failed", sub: str = "haswell") -> dict:
        return {"host": host, "nodeState": state, "metricHealth": health, "subCluster": sub, "metrics": []}

    expected = [item(h) for h in HASWELL]
    expected[0] = item("w1127", "allocated")
    expected[HASWELL.index("w1170")] = item("w1170", "idle")
    for user in ("gqladmin", "mxsupport"):
        first = _node_list(site, page={"itemsPerPage": 10, "page": 1}, user=user)
        assert first == {"items": expected[:10], "offset": 0, "limit": 10, "count": 10, "totalNodes": 38,
                         "hasNextPage": True}
    third = _node_list(site, page={"itemsPerPage": 10, "page": 3})
    assert third["items"] == expected[20:30] and (third["offset"], third["count"], third["hasNextPage"]) == (20, 10, True)
    last = _node_list(site, page={"itemsPerPage": 10, "page": 4})
    assert last["items"] == expected[30:] and (last["offset"], last["count"], last["hasNextPage"]) == (30, 8, False)
    beyond = _node_list(site, page={"itemsPerPage": 10, "page": 5})
    assert (beyond["items"], beyond["totalNodes"], beyond["hasNextPage"]) == ([], 38, False)
    everything = _node_list(site, page={"itemsPerPage": -1, "page": 1})
    assert everything["items"] == expected and everything["hasNextPage"] is False
    assert _node_list(site)["items"] == expected  # no page: every node

    assert _node_list(site, state="allocated")["items"] == [item("w1127", "allocated")]
    assert _node_list(site, state="idle")["items"] == [item("w1170", "idle")]
    not_in_db = _node_list(site, state="notindb", page={"itemsPerPage": 50, "page": 1})
    assert not_in_db["items"] == [i for i in expected if i["nodeState"] == "notindb"] and not_in_db["totalNodes"] == 36
    filtered = _node_list(site, node="w113", page={"itemsPerPage": 2, "page": 2})
    assert filtered == {"items": [item("w1132"), item("w1133")], "offset": 2, "limit": 2, "count": 2,
                        "totalNodes": 10, "hasNextPage": True}
    # every subcluster; a node that reported a state but is in no nodelist is listed too
    whole = _node_list(site, sub="", page={"itemsPerPage": -1, "page": 1})
    assert whole["totalNodes"] == 38 + 63 + 111 + 70 + 1 == len(whole["items"])
    assert whole["items"][-1] == item("w9999", "down", "full", "")
    assert [i["host"] for i in whole["items"]] == sorted(i["host"] for i in whole["items"])
    assert {i["subCluster"] for i in whole["items"]} == {"haswell", "skylake", "kabylake", "icelake", ""}

    errors = site.errors(NODE_LIST, {"sub": "haswell", "state": "sleepy", "node": ""})
    assert errors[0]["extensions"]["field"] == "stateFilter" and "notindb" in errors[0]["message"], errors
    errors = site.errors(NODE_LIST, {"sub": "haswell", "state": "all", "node": "", "page": {"itemsPerPage": 0, "page": 1}})
    assert "itemsPerPage" in errors[0]["message"], errors


def test_node_and_cluster_metrics_are_for_admin_and_support_only(metrics_site):
    site = metrics_site
    for query in (NODE_METRICS, NODE_METRICS_LIST, CLUSTER_METRICS):
        errors = site.errors(query, user=OWNER)
        assert _error_codes(errors) == ["Forbidden"], errors
    errors = site.errors(NODE_METRICS.replace('"emmy"', '"nocluster"'))
    assert _error_codes(errors) == ["NotFound"] and "nocluster" in errors[0]["message"]
    errors = site.errors(NODE_METRICS_LIST.replace('"haswell"', '"nosub"'))
    assert _error_codes(errors) == ["NotFound"] and "nosub" in errors[0]["message"]
    errors = site.errors(CLUSTER_METRICS.replace("2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z"))
    assert errors[0]["extensions"]["field"] == "to"


# --- bad input ------------------------------------------------------------------------------------

def test_bad_input_names_the_field(metrics_site):
    site = metrics_site
    job_id = _db_id(site, 1404397)
    errors = site.errors(JOB_METRICS, {"id": job_id, "scopes": ["galaxy"]}, status=422)
    assert "galaxy" in errors[0]["message"]
    errors = site.errors(JOB_METRICS, {"id": "abc"})
    assert errors[0]["extensions"] == {"code": "InvalidInput", "status": 400, "field": "id"}
    errors = site.errors(JOB_METRICS, {"id": job_id, "resolution": -60})
    assert errors[0]["extensions"]["field"] == "resolution"
    errors = site.errors(SCOPED_STATS, {"id": job_id, "scopes": ["node", "galaxy"]}, status=422)
    assert "galaxy" in errors[0]["message"]
    errors = site.errors(JOB_STATS, {"id": "1.5"})
    assert errors[0]["extensions"]["field"] == "id"
    errors = site.errors('{ jobsMetricStats(filter: [{state: ["sleeping"]}]) { id } }', status=422)
    assert errors and "sleeping" in json.dumps(errors)
