"""Live metric data: the dispatch by ``metric-store-external`` scope, the cc-metric-store client over the
built-in store and over a second real server, and running jobs and nodes in GraphQL and REST."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from support.cli import cli
from support.jobs import HOST, start_payload
from support.server import Server, free_port
from support.site import main_section, token, write_site

from cc_backend.errors import NotFound

#: Ten samples a minute apart, ending about two minutes before the test asks.
STEPS = 10
OTHER_HOST = "f0102"


def _aligned_start() -> int:
    return (int(time.time()) // 60) * 60 - 60 * (STEPS + 2)


def _registry(archive: Path):
    from cc_backend.archive.fs import FileArchive

    return FileArchive(archive).registry()


def _lines(start: int, registry) -> bytes:
    """cpu_load (node), flops_any (per hardware thread) and mem_bw (per socket) of HOST, cpu_load of OTHER_HOST."""
    sub = registry.subcluster("fritz", "main")
    out = []
    for i in range(STEPS):
        ts = start + 60 * i
        out.append(f"cpu_load,cluster=fritz,hostname={HOST},type=node value={i + 1} {ts}")
        out.append(f"cpu_load,cluster=fritz,hostname={OTHER_HOST} value={100 + i} {ts}")
        for h in sub.topology.node:
            out.append(f"flops_any,cluster=fritz,hostname={HOST},type=hwthread,type-id={h} value={h + 100 * i} {ts}")
        for s in range(len(sub.topology.socket)):
            out.append(f"mem_bw,cluster=fritz,hostname={HOST},type=socket,type-id={s} value={10 * (s + 1) + i} {ts}")
    return "\n".join(out).encode()


def _written(data: list, expected: list) -> None:
    """The first samples are exactly the written ones; anything after them (no sample yet) is null."""
    assert data[:len(expected)] == expected
    assert all(v is None for v in data[len(expected):]), data


def _set_external(site: Path, entries: list[dict]) -> None:
    config = json.loads((site / "config.json").read_text())
    config["metric-store-external"] = entries
    (site / "config.json").write_text(json.dumps(config, indent=2))


# --- scope lookup ---------------------------------------------------------------------------------

def _entry(scope: str, url: str):
    from cc_backend.config.sections import ExternalMetricStoreConfig

    return ExternalMetricStoreConfig.model_validate({"scope": scope, "url": url, "token": "t"})


def test_lookup_order_subcluster_cluster_star_builtin_none(peer_archive):
    from cc_backend.metrics.dispatch import MetricDispatch
    from cc_backend.metrics.repository import MetricBackendError
    from cc_backend.metricstore.store import MetricStore

    registry = _registry(peer_archive)
    store = MetricStore(registry)
    entries = [_entry("fritz-spr1tb", "http://sub.invalid"), _entry("fritz", "http://cluster.invalid"),
               _entry("*", "http://star.invalid")]
    dispatch = MetricDispatch(registry, entries, builtin_store=store)
    assert dispatch.repository_for("fritz", "spr1tb").name == "metric store http://sub.invalid"
    assert dispatch.repository_for("fritz", "main").name == "metric store http://cluster.invalid"
    assert dispatch.repository_for("fritz", None).name == "metric store http://cluster.invalid"
    assert dispatch.repository_for("alex", "a100").name == "metric store http://star.invalid"
    assert dispatch.repository_for("fritz", "main") is dispatch.repository_for("fritz", "main")  # kept

    no_star = MetricDispatch(registry, entries[:2], builtin_store=store)
    assert no_star.repository_for("alex", "a100").name == "the built-in metric store"
    assert no_star.repository_for("fritz", "spr2tb").name == "metric store http://cluster.invalid"

    from cc_backend.config.sections import ExternalMetricStoreConfig
    from cc_backend.metrics.prometheus import PrometheusRepository

    prometheus = ExternalMetricStoreConfig.model_validate(
        {"scope": "alex", "url": "http://prom.invalid:9090", "kind": "prometheus", "queries": {"cpu_load": "up"}})
    mixed = MetricDispatch(registry, [prometheus, *entries[:2]], builtin_store=store)
    assert isinstance(mixed.repository_for("alex", "a100"), PrometheusRepository)
    assert mixed.repository_for("fritz", "main").name == "metric store http://cluster.invalid"

    nothing = MetricDispatch(registry, entries[:1], builtin_store=None)
    with pytest.raises(MetricBackendError, match="no metric store for cluster alex") as exc:
        nothing.repository_for("alex", "a100")
    assert exc.value.status == 502
    with pytest.raises(MetricBackendError, match="no metric store for cluster fritz"):
        nothing.load_data({"cluster": "fritz", "subCluster": "main", "resources": [{"hostname": HOST}]})


def test_query_plan_follows_native_scope_and_topology(peer_archive):
    """Query scope = the coarser of native and requested; ids from the job's hardware threads; aggreg going up."""
    from cc_backend.metrics.ccms import CCMetricStoreRepository

    registry = _registry(peer_archive)
    seen: list[dict] = []

    def record(request: dict) -> dict:
        seen.append(request)
        return {"results": [[] for _ in request["queries"]]}

    repo = CCMetricStoreRepository(registry, record, now=lambda: 5000)
    job = {"id": 1, "cluster": "fritz", "subCluster": "main", "startTime": 1000, "duration": 0, "jobState": "running",
           "numAcc": 0, "resources": [{"hostname": HOST, "hwthreads": [0, 1, 36]}]}
    assert repo.load_data(job, ["cpu_load", "flops_any", "mem_bw", "nosuch"], ["node", "socket", "core"]) == {}
    request = seen[-1]
    assert (request["cluster"], request["from"], request["to"]) == ("fritz", 1000, 5000)
    queries = {(q["metric"], q.get("type"), tuple(q.get("type-ids", ())), q["aggreg"]) for q in request["queries"]}
    sub = registry.subcluster("fritz", "main")
    socket_of_36 = next(i for i, s in enumerate(sub.topology.socket) if 36 in s)
    assert socket_of_36 == 1
    assert queries == {
        ("cpu_load", None, (), False),                        # node metric: node scope whatever was asked
        ("flops_any", "hwthread", ("0", "1", "36"), True),    # node: the job's threads aggregated
        ("flops_any", "hwthread", ("0", "1"), True),          # socket 0
        ("flops_any", "hwthread", ("36",), True),             # socket 1
        ("flops_any", "hwthread", ("0",), True),              # core 0 (and cores 1, 36 below)
        ("flops_any", "hwthread", ("1",), True),
        ("flops_any", "hwthread", ("36",), True),
        ("mem_bw", "socket", ("0", "1"), True),               # node from sockets
        ("mem_bw", "socket", ("0", "1"), False),              # socket, also what core falls back to
    }
    stopped = dict(job, jobState="completed", duration=600)
    repo.load_data(stopped, ["cpu_load"], ["node"])
    assert (seen[-1]["from"], seen[-1]["to"]) == (1000, 1600)
    # a metric removed for the subcluster is not asked for
    repo.load_data(dict(job, subCluster="spr2tb"), ["flops_any", "cpu_load"], ["node"])
    assert [q["metric"] for q in seen[-1]["queries"]] == ["cpu_load"]


# --- the built-in store through GraphQL and REST ----------------------------------------------------

GQL_METRICS = """query($id: ID!, $metrics: [String!], $scopes: [MetricScope!], $res: Int) {
  jobMetrics(id: $id, metrics: $metrics, scopes: $scopes, resolution: $res) {
    name scope metric { unit { base prefix } timestep
      series { hostname id statistics { min avg max } data } statisticsSeries { min median max } } } }"""
GQL_STATS = "query($id: ID!, $metrics: [String!]) { jobStats(id: $id, metrics: $metrics) { name data { min avg max } } }"
GQL_SCOPED = """query($id: ID!, $metrics: [String!], $scopes: [MetricScope!]) {
  scopedJobStats(id: $id, metrics: $metrics, scopes: $scopes) { name scope stats { hostname id data { min avg max } } } }"""
GQL_NODES = """query($from: Time!, $to: Time!) {
  nodeMetrics(cluster: "fritz", nodes: ["f0101", "f0102"], metrics: ["cpu_load", "mem_bw"], from: $from, to: $to) {
    host subCluster metrics { name scope metric { timestep series { hostname data } } } } }"""
GQL_NODE_LIST = """query($from: Time!, $to: Time!) {
  nodeMetricsList(cluster: "fritz", subCluster: "main", stateFilter: "all", nodeFilter: "f010", metrics: ["cpu_load"],
                  from: $from, to: $to, page: {itemsPerPage: 3, page: 1}) {
    totalNodes items { host metrics { name scope metric { series { hostname data } } } } } }"""
GQL_CLUSTER = """query($from: Time!, $to: Time!) {
  clusterMetrics(cluster: "fritz", metrics: ["cpu_load", "mem_bw"], from: $from, to: $to) {
    nodeCount metrics { name unit { base } timestep data } } }"""


def _rfc3339(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class Live:
    """An app in process with a running fritz job whose node has samples in the built-in store."""

    def __init__(self, app, headers: dict, boss: dict, start: int, db_id: int) -> None:
        self.app, self.headers, self.start, self.db_id = app, headers, start, db_id
        self.bearer = {"Authorization": f"Bearer {boss['X-AUTH-TOKEN']}"}

    def gql(self, query: str, variables: dict) -> dict:
        r = self.app.post("/query", json={"query": query, "variables": variables}, headers=self.bearer)
        assert r.status_code == 200, r.text
        return r.json()

    def data(self, query: str, variables: dict) -> dict:
        body = self.gql(query, variables)
        assert not body.get("errors"), body["errors"]
        return body["data"]


@pytest.fixture
def live(api, site) -> Live:
    app, headers, boss = api
    start = _aligned_start()
    r = app.post("/api/jobs/start_job/", json=start_payload(4242, start), headers=headers)
    assert r.status_code == 201, r.text
    store = app.runtime.metric_store
    registry = app.runtime.archive.registry()
    assert store.write_lines(_lines(start, registry), "fritz") > 0
    return Live(app, headers, boss, start, r.json()["id"])


def _by(entries: list[dict], name: str, scope: str) -> dict:
    return next(e["metric"] for e in entries if e["name"] == name and e["scope"] == scope)


def test_running_job_metrics_are_the_written_samples(live):
    data = live.data(GQL_METRICS, {"id": live.db_id, "metrics": ["cpu_load", "flops_any", "mem_bw"],
                                   "scopes": ["node"], "res": 0})["jobMetrics"]
    assert sorted((e["name"], e["scope"]) for e in data) == [("cpu_load", "node"), ("flops_any", "node"),
                                                             ("mem_bw", "node")]
    cpu = _by(data, "cpu_load", "node")
    assert cpu["timestep"] == 60 and cpu["unit"] == {"base": "", "prefix": None}
    [series] = cpu["series"]
    assert series["hostname"] == HOST and series["id"] is None
    _written(series["data"], [float(i + 1) for i in range(STEPS)])
    assert series["statistics"] == {"min": 1.0, "avg": 5.5, "max": 10.0}
    flops = _by(data, "flops_any", "node")
    assert flops["unit"] == {"base": "Flops/s", "prefix": "G"}
    _written(flops["series"][0]["data"], [float(sum(range(72)) + 7200 * i) for i in range(STEPS)])
    _written(_by(data, "mem_bw", "node")["series"][0]["data"], [float(30 + 2 * i) for i in range(STEPS)])


def test_running_job_finer_scopes_are_aggregated_from_the_topology(live):
    data = live.data(GQL_METRICS, {"id": live.db_id, "metrics": ["flops_any", "mem_bw"], "scopes": ["socket", "core"],
                                   "res": 0})["jobMetrics"]
    assert sorted((e["name"], e["scope"]) for e in data) == [("flops_any", "core"), ("flops_any", "socket"),
                                                             ("mem_bw", "socket")]
    registry = live.app.runtime.archive.registry()
    topology = registry.subcluster("fritz", "main").topology
    sockets = _by(data, "flops_any", "socket")["series"]
    assert [s["id"] for s in sockets] == ["0", "1"]
    for s in sockets:
        threads = topology.socket[int(s["id"])]
        _written(s["data"], [float(sum(threads) + 100 * i * len(threads)) for i in range(STEPS)])
    cores = _by(data, "flops_any", "core")
    assert [s["id"] for s in cores["series"]] == [str(c) for c in range(72)]
    _written(cores["series"][5]["data"], [float(5 + 100 * i) for i in range(STEPS)])
    assert cores["series"][5]["statistics"] == {"min": 5.0, "avg": 455.0, "max": 905.0}
    _written(cores["statisticsSeries"]["max"], [float(71 + 100 * i) for i in range(STEPS)])
    _written(cores["statisticsSeries"]["min"], [float(100 * i) for i in range(STEPS)])
    mem = _by(data, "mem_bw", "socket")["series"]
    assert [(s["id"], s["data"][:2]) for s in mem] == [("0", [10.0, 11.0]), ("1", [20.0, 21.0])]


def test_running_job_stats_and_scoped_stats(live):
    stats = live.data(GQL_STATS, {"id": live.db_id, "metrics": ["cpu_load", "mem_bw", "nosuch"]})["jobStats"]
    assert stats == [{"name": "cpu_load", "data": {"min": 1.0, "avg": 5.5, "max": 10.0}},
                     {"name": "mem_bw", "data": {"min": 30.0, "avg": 39.0, "max": 48.0}}]
    scoped = live.data(GQL_SCOPED, {"id": live.db_id, "metrics": ["mem_bw", "cpu_load"],
                                    "scopes": ["node", "socket"]})["scopedJobStats"]
    assert [(e["name"], e["scope"]) for e in scoped] == [("cpu_load", "node"), ("mem_bw", "node"), ("mem_bw", "socket")]
    assert scoped[2]["stats"] == [
        {"hostname": HOST, "id": "0", "data": {"min": 10.0, "avg": 14.5, "max": 19.0}},
        {"hostname": HOST, "id": "1", "data": {"min": 20.0, "avg": 24.5, "max": 29.0}}]


def test_running_job_metrics_over_rest(live):
    r = live.app.get(f"/api/jobs/metrics/{live.db_id}?metric=cpu_load&scope=node&resolution=0", headers=live.headers)
    assert r.status_code == 200, r.text
    [entry] = r.json()["data"]["jobMetrics"]
    _written(entry["metric"]["series"][0]["data"], [float(i + 1) for i in range(STEPS)])
    r = live.app.post(f"/api/jobs/{live.db_id}", json=["mem_bw"], headers=live.headers)
    assert r.status_code == 200, r.text
    [entry] = r.json()["Data"]
    assert entry["scope"] == "socket"  # single-node jobs default to core scope: mem_bw is per socket at most
    assert [s["data"][:3] for s in entry["metric"]["series"]] == [[10.0, 11.0, 12.0], [20.0, 21.0, 22.0]]


def test_node_and_cluster_metrics(live):
    window = {"from": _rfc3339(live.start), "to": _rfc3339(live.start + 60 * STEPS)}
    nodes = live.data(GQL_NODES, window)["nodeMetrics"]
    assert [(n["host"], n["subCluster"]) for n in nodes] == [(HOST, "main"), (OTHER_HOST, "main")]
    first = {(m["name"], m["scope"]): m["metric"] for m in nodes[0]["metrics"]}
    assert set(first) == {("cpu_load", "node"), ("mem_bw", "node")}
    _written(first[("cpu_load", "node")]["series"][0]["data"], [float(i + 1) for i in range(STEPS)])
    _written(first[("mem_bw", "node")]["series"][0]["data"], [float(30 + 2 * i) for i in range(STEPS)])
    other = {(m["name"], m["scope"]): m["metric"] for m in nodes[1]["metrics"]}
    _written(other[("cpu_load", "node")]["series"][0]["data"], [float(100 + i) for i in range(STEPS)])

    listed = live.data(GQL_NODE_LIST, window)["nodeMetricsList"]
    assert listed["totalNodes"] == 9  # f0101 to f0109
    assert [item["host"] for item in listed["items"]] == ["f0101", "f0102", "f0103"]
    series = {item["host"]: [s["data"] for m in item["metrics"] for s in m["metric"]["series"]] for item in listed["items"]}
    _written(series["f0101"][0], [float(i + 1) for i in range(STEPS)])
    _written(series["f0102"][0], [float(100 + i) for i in range(STEPS)])
    assert series["f0103"] == []

    cluster = live.data(GQL_CLUSTER, window)["clusterMetrics"]
    assert cluster["nodeCount"] == 2
    by_name = {m["name"]: m for m in cluster["metrics"]}
    assert by_name["cpu_load"]["timestep"] == 60
    _written(by_name["cpu_load"]["data"], [float(i + 1 + 100 + i) for i in range(STEPS)])
    _written(by_name["mem_bw"]["data"], [float(30 + 2 * i) for i in range(STEPS)])
    assert by_name["mem_bw"]["unit"] == {"base": "B/s"}


def test_resolution_downsamples_running_jobs(live):
    data = live.data(GQL_METRICS, {"id": live.db_id, "metrics": ["cpu_load"], "scopes": ["node"],
                                   "res": 120})["jobMetrics"]
    metric = data[0]["metric"]
    assert metric["timestep"] == 120
    samples = metric["series"][0]["data"]
    assert 3 <= len(samples) < STEPS and samples[0] == 1.0  # LTTB keeps the first sample and picks real ones
    assert {v for v in samples if v is not None} <= {float(i + 1) for i in range(STEPS)}
    assert metric["series"][0]["statistics"] == {"min": 1.0, "avg": 5.5, "max": 10.0}  # over every sample


# --- external stores --------------------------------------------------------------------------------

def test_a_silent_external_store_is_an_error_after_its_timeout(peer_archive):
    """docs/live-monitoring.md: a store that does not answer is an error for that request, not a hang."""
    import socket

    from cc_backend.metrics.ccms import external_repository
    from cc_backend.metrics.repository import MetricBackendError

    with socket.socket() as listener:  # accepts connections (the kernel's backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        repository = external_repository(_registry(peer_archive), url, "t", timeout=0.5)
        began = time.monotonic()
        with pytest.raises(MetricBackendError, match=f"metric store {url}/api/healthcheck") as exc:
            repository.health("fritz", ["f0101"], ["cpu_load"])
        assert exc.value.status == 502 and time.monotonic() - began < 5


def test_unreachable_external_store_is_a_clear_graphql_error(api, site):
    app, headers, boss = api
    url = f"http://127.0.0.1:{free_port()}"
    _set_external(site, [{"scope": "fritz", "url": url, "token": "secret"}])
    start = _aligned_start()
    r = app.post("/api/jobs/start_job/", json=start_payload(77, start), headers=headers)
    assert r.status_code == 201, r.text
    db_id = r.json()["id"]
    from support.server import InProcess

    fresh = InProcess(site)  # the changed config.json
    try:
        bearer = {"Authorization": f"Bearer {boss['X-AUTH-TOKEN']}"}
        r = fresh.post("/query", json={"query": GQL_METRICS, "variables": {"id": db_id}}, headers=bearer)
        assert r.status_code == 200, r.text
        [error] = r.json()["errors"]
        assert error["message"].startswith(f"metric store {url}/api/query cannot be reached")
        assert error["extensions"]["code"] == "MetricBackendError" and error["extensions"]["status"] == 502
        r = fresh.get(f"/api/jobs/metrics/{db_id}?metric=cpu_load", headers=headers)
        assert r.status_code == 502
        assert r.json()["data"] is None
        assert r.json()["error"]["message"].startswith(f"metric store {url}/api/query cannot be reached")
    finally:
        fresh.stop()


def _routes_metricstore() -> bool:
    return (Path(__file__).resolve().parents[1] / "server" / "routes_metricstore.py").is_file()


@pytest.fixture
def second_server(tmp_path_factory) -> tuple[Server, str]:
    """Another ``cc-backend serve`` (its built-in store answers /api/query) and an api token for it."""
    if not _routes_metricstore():
        pytest.skip("server/routes_metricstore.py (POST /api/query, /api/write) is not there yet")
    from peerdata import copy_archive

    folder = tmp_path_factory.mktemp("external-store")
    write_site(folder, main_section(f"sqlite:///{folder / 'job.db'}"), copy_archive(folder, "job-archive"))
    r = cli(folder, "-init-db")
    assert r.returncode == 0, r.stderr
    server = Server(folder)
    server.wait_ready()
    try:
        yield server, token(folder, ["api"])
    finally:
        server.stop()


def test_external_client_against_a_second_server(second_server, peer_archive):
    from cc_backend.metrics.ccms import CCMetricStoreRepository, http_query
    from cc_backend.metrics.repository import MetricBackendError

    server, jwt = second_server
    registry = _registry(peer_archive)
    start = _aligned_start()
    r = server.post("/api/write?cluster=fritz", content=_lines(start, registry),
                    headers={"Authorization": f"Bearer {jwt}"}, timeout=30)
    assert r.status_code == 200, r.text
    repo = CCMetricStoreRepository(registry, http_query(server.url, jwt), name="external")
    job = {"id": 9, "cluster": "fritz", "subCluster": "main", "startTime": start, "duration": 60 * STEPS,
           "jobState": "completed", "numAcc": 0, "resources": [{"hostname": HOST, "hwthreads": list(range(72))}]}
    data = repo.load_data(job, ["cpu_load", "mem_bw", "flops_any"], ["node", "socket"])
    _written(data["cpu_load"]["node"]["series"][0]["data"], [float(i + 1) for i in range(STEPS)])
    assert [(s["id"], s["data"][:2]) for s in data["mem_bw"]["socket"]["series"]] == [("0", [10.0, 11.0]),
                                                                                    ("1", [20.0, 21.0])]
    _written(data["flops_any"]["node"]["series"][0]["data"], [float(2556 + 7200 * i) for i in range(STEPS)])
    assert repo.load_stats(job, ["cpu_load"]) == {"cpu_load": {HOST: {"min": 1.0, "avg": 5.5, "max": 10.0}}}
    nodes = repo.load_node_data("fritz", ["cpu_load"], [HOST, OTHER_HOST], ["node"], start, start + 60 * STEPS)
    _written(nodes[OTHER_HOST]["cpu_load"]["node"]["series"][0]["data"], [float(100 + i) for i in range(STEPS)])
    # without a host list the store is asked for all of its nodes ("for-all-nodes")
    every = repo.load_node_data("fritz", ["cpu_load"], None, ["node"], start, start + 60 * STEPS)
    assert sorted(every) == [HOST, OTHER_HOST]
    _written(every[HOST]["cpu_load"]["node"]["series"][0]["data"], [float(i + 1) for i in range(STEPS)])

    bad = CCMetricStoreRepository(registry, http_query(server.url, "not-a-token"), name="external")
    with pytest.raises(MetricBackendError, match=rf"metric store {server.url}/api/query answered HTTP 401"):
        bad.load_data(job, ["cpu_load"], ["node"])


def test_graphql_reads_a_running_job_from_the_external_store(second_server, api, site):
    from support.server import InProcess

    server, jwt = second_server
    app, headers, boss = api
    start = _aligned_start()
    registry = app.runtime.archive.registry()
    r = server.post("/api/write?cluster=fritz", content=_lines(start, registry),
                    headers={"Authorization": f"Bearer {jwt}"}, timeout=30)
    assert r.status_code == 200, r.text
    r = app.post("/api/jobs/start_job/", json=start_payload(5151, start), headers=headers)
    assert r.status_code == 201, r.text
    _set_external(site, [{"scope": "fritz-main", "url": server.url, "token": jwt}])
    fresh = InProcess(site)
    try:
        live = Live(fresh, headers, boss, start, r.json()["id"])
        data = live.data(GQL_METRICS, {"id": live.db_id, "metrics": ["cpu_load"], "scopes": ["node"],
                                       "res": 0})["jobMetrics"]
        _written(data[0]["metric"]["series"][0]["data"], [float(i + 1) for i in range(STEPS)])
        # nothing was written into this process's own store
        assert fresh.runtime.metric_store.hosts("fritz") == []
    finally:
        fresh.stop()


def test_hosts_are_placed_in_subclusters_only_when_an_entry_needs_it(peer_archive, monkeypatch):
    from cc_backend.metrics.dispatch import MetricDispatch
    from cc_backend.metricstore.store import MetricStore

    registry = _registry(peer_archive)
    looked_up: list[str] = []
    lookup = registry.assign_subcluster
    monkeypatch.setattr(registry, "assign_subcluster", lambda c, h: looked_up.append(h) or lookup(c, h))
    store = MetricStore(registry)
    hosts = ["f0101", "f2157", "x9999"]
    builtin = MetricDispatch(registry, [_entry("alex-a100", "http://a100.invalid")], builtin_store=store)
    assert [(r.name, group) for r, group in builtin._by_repository("fritz", hosts)] == [
        ("the built-in metric store", hosts)]
    assert builtin.health("fritz", hosts, ["cpu_load"])["f0101"]["state"] == "failed"
    assert looked_up == []  # no fritz subcluster has an entry: one repository, no host lookups
    split = MetricDispatch(registry, [_entry("fritz-spr1tb", "http://sub.invalid")], builtin_store=store)
    assert [(r.name, group) for r, group in split._by_repository("fritz", hosts)] == [
        ("the built-in metric store", ["f0101", "x9999"]), ("metric store http://sub.invalid", ["f2157"])]
    assert sorted(looked_up) == sorted(hosts)


def test_health_through_the_dispatch(live):
    dispatch = live.app.runtime.metric_data
    health = dispatch.health("fritz", [HOST, OTHER_HOST, "f0103"], ["cpu_load", "mem_bw", "ipc"])
    assert health[HOST] == {"state": "partial", "metrics": {"missing": ["ipc"], "degraded": []}}
    assert health[OTHER_HOST] == {"state": "partial", "metrics": {"missing": ["mem_bw", "ipc"], "degraded": []}}
    assert health["f0103"]["state"] == "failed"
    assert dispatch.health("fritz", [HOST], ["cpu_load", "mem_bw"])[HOST]["state"] == "full"


def test_cc_metric_store_health_answers_are_translated(peer_archive):
    """An external cc-metric-store answers ``{host: {State, HealthMetrics}}``; the repository shape comes out."""
    from cc_backend.metrics.ccms import CCMetricStoreRepository

    asked: list[dict] = []

    def health(request: dict) -> dict:
        asked.append(request)
        return {HOST: {"State": "partial", "HealthMetrics": {"missing": ["ipc"], "degraded": ["mem_bw"]}},
                OTHER_HOST: {"State": "Failed"}, "f0103": {"State": "strange"}}

    repo = CCMetricStoreRepository(_registry(peer_archive), lambda r: {"results": []}, health)
    out = repo.health("fritz", [HOST, OTHER_HOST, "f0103"], ["ipc", "mem_bw"])
    assert asked == [{"cluster": "fritz", "nodes": [HOST, OTHER_HOST, "f0103"], "metric-names": ["ipc", "mem_bw"]}]
    assert out == {HOST: {"state": "partial", "metrics": {"missing": ["ipc"], "degraded": ["mem_bw"]}},
                   OTHER_HOST: {"state": "failed", "metrics": {"missing": [], "degraded": []}},
                   "f0103": {"state": "failed", "metrics": {"missing": [], "degraded": []}}}


def test_accelerator_metrics_per_accelerator_and_per_node(peer_archive):
    """Accelerator metrics: per accelerator id of the job, or aggregated per node (avg or sum as configured);
    jobs without accelerators do not ask for them."""
    from cc_backend.metrics.ccms import builtin_repository
    from cc_backend.metricstore.store import MetricStore

    registry = _registry(peer_archive)
    store = MetricStore(registry)
    start = _aligned_start()
    gpus = ["00000000:0E:00.0", "00000000:13:00.0", "00000000:49:00.0"]
    lines = [f"acc_utilization,cluster=alex,hostname=a0601,type=accelerator,type-id={gpu} value={10 * (n + 1) + i} "
             f"{start + 60 * i}" for n, gpu in enumerate(gpus) for i in range(STEPS)]
    lines += [f"acc_power,cluster=alex,hostname=a0601,type=accelerator,type-id={gpu} value={100 + i} {start + 60 * i}"
              for gpu in gpus for i in range(STEPS)]
    store.write_lines("\n".join(lines).encode(), "alex")
    repo = builtin_repository(registry, store)
    job = {"id": 3, "cluster": "alex", "subCluster": "a100", "startTime": start, "duration": 60 * STEPS,
           "jobState": "completed", "numAcc": 2,
           "resources": [{"hostname": "a0601", "hwthreads": list(range(32)), "accelerators": gpus[:2]}]}
    data = repo.load_data(job, ["acc_utilization", "acc_power"], ["node", "accelerator"])
    per_gpu = data["acc_utilization"]["accelerator"]["series"]
    assert [s["id"] for s in per_gpu] == gpus[:2]  # only the job's accelerators
    _written(per_gpu[1]["data"], [float(20 + i) for i in range(STEPS)])
    _written(data["acc_utilization"]["node"]["series"][0]["data"], [float(15 + i) for i in range(STEPS)])  # avg
    _written(data["acc_power"]["node"]["series"][0]["data"], [float(2 * (100 + i)) for i in range(STEPS)])  # sum
    assert data["acc_power"]["node"]["unit"] == {"base": "W"}
    without = dict(job, numAcc=0, resources=[{"hostname": "a0601", "hwthreads": list(range(32))}])
    assert repo.load_data(without, ["acc_utilization"], ["node", "accelerator"]) == {}


def _running_fritz_job(peer_archive, job_id: int):
    """(the archive, a dispatch over a built-in store holding _lines, a one-node fritz job running since then)."""
    from cc_backend.archive.fs import FileArchive
    from cc_backend.metrics.dispatch import MetricDispatch
    from cc_backend.metricstore.store import MetricStore

    archive = FileArchive(peer_archive)
    store = MetricStore(archive.registry())
    start = _aligned_start()
    store.write_lines(_lines(start, archive.registry()), "fritz")
    live = MetricDispatch(archive.registry, [], builtin_store=store)
    job = {"id": job_id, "jobId": job_id, "cluster": "fritz", "subCluster": "main", "startTime": start, "duration": 0,
           "jobState": "running", "monitoringStatus": 1, "numNodes": 1, "numAcc": 0,
           "resources": [{"hostname": HOST, "hwthreads": list(range(72))}]}
    return archive, live, job


def test_restricted_metrics_stay_hidden_for_running_jobs(peer_archive):
    from cc_backend.auth.security import Viewer
    from cc_backend.metrics import jobdata

    path = peer_archive / "fritz" / "cluster.json"
    cluster = json.loads(path.read_text())
    next(m for m in cluster["metricConfig"] if m["name"] == "cpu_load")["restrict"] = True
    path.write_text(json.dumps(cluster))
    archive, live, job = _running_fritz_job(peer_archive, 5)
    user = Viewer(username="u", roles=("user",))
    admin = Viewer(username="a", roles=("admin",))
    metrics = ["cpu_load", "mem_bw"]
    seen = jobdata.visible_job_data(archive, job, viewer=user, metrics=metrics, scopes=["node"], resolution=0, live=live)
    assert sorted(seen) == ["mem_bw"]
    seen = jobdata.visible_job_data(archive, job, viewer=admin, metrics=metrics, scopes=["node"], resolution=0, live=live)
    assert sorted(seen) == ["cpu_load", "mem_bw"]
    hidden = jobdata.hidden_metrics(archive.registry(), "fritz", "main", user)
    stats = jobdata.job_stats(archive, job, metrics, hidden=hidden, live=live)
    assert stats == [{"name": "mem_bw", "data": {"min": 30.0, "avg": 39.0, "max": 48.0}}]
    # without a live backend a running job simply has no data yet
    assert jobdata.visible_job_data(archive, job, viewer=admin, metrics=metrics, resolution=0) == {}


def test_job_view_of_a_running_job_reads_live_data(peer_archive):
    from cc_backend.auth.security import SYSTEM
    from cc_backend.jobs import jobview

    archive, live, job = _running_fritz_job(peer_archive, 6)
    scopes = jobview.archived_scopes(archive, job, ["cpu_load", "mem_bw", "flops_any"], live=live)
    assert scopes == {"cpu_load": ["node"], "mem_bw": ["node", "socket"],
                      "flops_any": ["node", "socket", "memoryDomain", "core", "hwthread"]}
    plots = jobview.job_plots(archive, job, ["cpu_load", "mem_bw"], viewer=SYSTEM, resampling=None, resolution=0,
                              live=live)
    assert plots["cpu_load"]["series"][0]["data"][:3] == [1.0, 2.0, 3.0]
    plot = jobview.one_plot(archive, job, "mem_bw", "socket", 0, viewer=SYSTEM, resampling=None, live=live)
    assert [s["label"] for s in plot["series"]] == [f"{HOST} socket 0", f"{HOST} socket 1"]
    tables = jobview.statistics_tables(archive, job, ["cpu_load", "mem_bw"], viewer=SYSTEM, live=live)
    assert tables["nodes"] == [{"hostname": HOST, "values": {"cpu_load": {"min": 1.0, "avg": 5.5, "max": 10.0},
                                                             "mem_bw": {"min": 30.0, "avg": 39.0, "max": 48.0}}}]
    assert [(t["metric"], t["scope"], len(t["rows"])) for t in tables["finer"]] == [("mem_bw", "socket", 2)]
    sub = jobview.subcluster_of(archive, job)
    roofline = jobview.roofline(archive, job, sub, viewer=SYSTEM, live=live)
    assert len(roofline["x"]) == STEPS and roofline["x"][0] == 85.2  # 2556 GFlop/s over 30 GB/s
    with pytest.raises(NotFound, match="has no data of job 6 yet"):
        jobview.one_plot(archive, job, "ipc", "node", 0, viewer=SYSTEM, resampling=None, live=live)


# --- the web UI and the job analyses on live data ---------------------------------------------------

def test_web_job_view_of_a_running_job_plots_the_stores_data(live):
    """The job page embeds the running job's plots from the store, and asks the browser to reload them."""
    import json
    import re

    from support.cli import cli
    from support.web import login

    r = cli(live.app.site, "user", "add", "webadmin", "--role", "admin", "--password-stdin",
            input="Live-view-pw-1\n")
    assert r.returncode == 0, r.stderr
    session = login(live.app, "webadmin", "Live-view-pw-1", csrf=False)
    page = live.app.get(f"/monitoring/job/{live.db_id}", headers=session)
    assert page.status_code == 200, page.text
    data = json.loads(re.search(r'<script type="application/json" id="job-data">(.*?)</script>', page.text,
                                re.S).group(1))
    assert data["job"]["running"] is True and data["refreshSeconds"] == 60
    plots = {plot["metric"]: plot for plot in data["plots"]}
    assert "cpu_load" in plots
    _written(plots["cpu_load"]["series"][0]["data"], [float(i + 1) for i in range(STEPS)])
    # what the browser's refresh fetches: the newest samples (one more written since the page was made)
    store = live.app.runtime.metric_store
    store.write_lines(f"cpu_load,cluster=fritz,hostname={HOST},type=node value=99 {live.start + 60 * STEPS}".encode(),
                      "fritz")
    r = live.app.get(f"/monitoring/job/{live.db_id}/data", params={"metric": "cpu_load", "scope": "node"},
                     headers=session)
    assert r.status_code == 200, r.text
    assert r.json()["series"][0]["data"][STEPS] == 99.0


def test_job_list_plots_and_jobs_metric_stats_of_a_running_job(live):
    from cc_backend.auth.security import Viewer
    from cc_backend.jobs.analysis import jobs_metric_stats
    from cc_backend.jobs.filter import JobFilter
    from cc_backend.metrics.listplots import job_list_plots

    runtime = live.app.runtime
    admin = Viewer("boss", ("admin",))
    plots = job_list_plots(runtime.engine, runtime.archive, [live.db_id], ["cpu_load"], viewer=admin, width=100,
                           live=runtime.metric_data)["plots"]
    _written(plots[str(live.db_id)]["cpu_load"]["series"][0]["data"], [float(i + 1) for i in range(STEPS)])
    [entry] = jobs_metric_stats(runtime.engine, runtime.archive, [JobFilter(dbId=[live.db_id])], ["cpu_load"],
                                viewer=admin, live=runtime.metric_data)
    assert entry["stats"] == [{"name": "cpu_load", "data": {"min": 1.0, "avg": 5.5, "max": 10.0}}]
    # without a metric store the running job is left out, as upstream
    assert jobs_metric_stats(runtime.engine, runtime.archive, [JobFilter(dbId=[live.db_id])], ["cpu_load"],
                             viewer=admin) == []
