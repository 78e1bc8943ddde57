"""The Prometheus metric backend against a real Prometheus server scraping a fake exporter in this process."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from support.prometheus import PrometheusServer, prometheus_binary, running_prometheus
from support.server import free_port

from cc_backend.archive.cluster import ClusterRegistry, load_cluster_config
from cc_backend.config.loading import parse_config
from cc_backend.errors import ConfigError
from cc_backend.metrics.prometheus import PrometheusRepository, host_regex, query_step, render, time_chunks
from cc_backend.metrics.repository import MetricBackendError
from cc_backend.metrics.statistics import series_statistics

# Skipped on a developer's machine without it; in CI (run-tests.sh installs it) a missing binary fails the tests.
pytestmark = pytest.mark.skipif(prometheus_binary() is None and not os.environ.get("CI"),
                                reason="prometheus is not installed (Debian: apt-get install -y prometheus)")

HOSTS = ["pn01.cl", "pn02.cl", "pn03.cl"]
CLUSTER = "promtest"
#: The test server wants HTTP basic authentication, so every test also shows that credentials are sent.
AUTH: dict[str, Any] = {"username": "cc", "password": "s3cret"}

QUERIES = {
    "test_load": 'test_load{instance=~"{hosts}:9100", job!="{cluster}"}',
    "test_mem": 'test_mem{instance="{host}:9100"}',
    "test_cpu": 'test_cpu{instance=~"{hosts}:9100"}',
    "test_cpu_avg": 'test_cpu{instance=~"{hosts}:9100"}',
    "test_nodata": 'no_such_metric{instance=~"{hosts}:9100"}',
}


def _metric(name: str, unit: dict[str, str], aggregation: str, scope: str = "node") -> dict[str, Any]:
    return {"name": name, "unit": unit, "scope": scope, "timestep": 1, "aggregation": aggregation,
            "peak": 100, "normal": 50, "caution": 10, "alert": 5}


@pytest.fixture(scope="module")
def registry() -> ClusterRegistry:
    cluster = load_cluster_config({
        "name": CLUSTER,
        "metricConfig": [
            _metric("test_load", {"base": ""}, "avg"),
            _metric("test_mem", {"base": "B", "prefix": "G"}, "sum"),
            _metric("test_cpu", {"base": "FLOP/s", "prefix": "G"}, "sum", scope="hwthread"),
            _metric("test_cpu_avg", {"base": "%"}, "avg", scope="core"),
            _metric("test_nodata", {"base": "W"}, "sum"),
            _metric("test_unqueried", {"base": "W"}, "sum"),
        ],
        "subClusters": [{"name": "main", "nodes": "pn[01-04].cl", "processorType": "x", "socketsPerNode": 1,
                         "coresPerSocket": 2, "threadsPerCore": 1,
                         "topology": {"node": [0, 1], "socket": [[0, 1]], "memoryDomain": [[0, 1]], "core": [[0], [1]]}}],
    }, "promtest/cluster.json")
    return ClusterRegistry([cluster])


@pytest.fixture(scope="module")
def prom(tmp_path_factory) -> Iterator[PrometheusServer]:
    with running_prometheus(tmp_path_factory.mktemp("prometheus"), HOSTS, basic_auth=(AUTH["username"], AUTH["password"])) as server:
        yield server


@pytest.fixture(scope="module")
def repo(prom, registry) -> Iterator[PrometheusRepository]:
    repository = PrometheusRepository(registry, prom.url, QUERIES, host_label="instance", host_label_strip=":9100", **AUTH)
    yield repository
    repository.close()


def _wait_until(t: float) -> None:
    while time.time() < t:
        time.sleep(0.2)


def _job(start: int, duration: int, hosts: list[str], state: str = "completed") -> dict[str, Any]:
    return {"id": 7, "jobId": 7, "cluster": CLUSTER, "subCluster": "main", "startTime": start, "duration": duration,
            "jobState": state, "monitoringStatus": 1, "numNodes": len(hosts), "numHwthreads": 2 * len(hosts), "numAcc": 0,
            "resources": [{"hostname": h, "hwthreads": [0, 1]} for h in hosts]}


@pytest.fixture(scope="module")
def finished_job(prom) -> dict[str, Any]:
    """An 8 s job on two hosts that started 3 s before their first scrape, over by now."""
    start = int(min(prom.exporter.first_served[h] for h in ("pn01.cl", "pn03.cl"))) - 3
    _wait_until(start + 8 + 1.5)  # the last step's scrape has landed
    return _job(start, 8, ["pn01.cl", "pn03.cl"])


@pytest.fixture
def settled(prom) -> None:
    """Every host has been scraped for 7 s, so that windows of the last 6 s are full."""
    _wait_until(max(prom.exporter.first_served.values()) + 7)


def _check_load(prom: PrometheusServer, host: str, start: int, step: int, data: list[float | None]) -> None:
    first = prom.exporter.first_served[host]
    for k, value in enumerate(data):
        t = start + k * step
        if t < first - 0.5:
            assert value is None, (k, t, first, value)  # no sample exists before the first scrape
        elif t >= first + 1.5:
            assert value is not None, (k, t, first)
            # the latest scrape at or before the step: a scrape interval old at most, plus slack for a
            # scrape delayed on a busy machine
            expected = prom.exporter.load(host, t)
            assert expected - 3.0 <= value <= expected + 0.2, (k, value, expected)


# --- load_data ----------------------------------------------------------------------------------------


def test_load_data_gives_the_exporters_values_at_their_timestamps(prom, repo, finished_job):
    data = repo.load_data(finished_job, ["test_load"], ["node"])
    metric = data["test_load"]["node"]
    assert metric["unit"] == {"base": ""} and metric["timestep"] == 1
    assert [s["hostname"] for s in metric["series"]] == ["pn01.cl", "pn03.cl"]
    for series in metric["series"]:
        assert len(series["data"]) == 9  # start .. start+8 at 1 s
        _check_load(prom, series["hostname"], finished_job["startTime"], 1, series["data"])
        assert series["data"][:3] == [None, None, None]
        assert series["statistics"] == series_statistics(series["data"])
    pn03 = metric["series"][1]["statistics"]
    # host index 2: 2000 + seconds since the exporter started, from the first scrape to the job's end
    first, end = prom.exporter.first_served["pn03.cl"], finished_job["startTime"] + 8
    assert prom.exporter.load("pn03.cl", first) - 0.1 <= pn03["min"] < pn03["avg"] < pn03["max"] <= prom.exporter.load("pn03.cl", end) + 0.1
    assert "statisticsSeries" not in metric  # fewer than 8 series


def test_load_data_units_per_host_templates_and_all_metrics(prom, repo, finished_job):
    data = repo.load_data(finished_job, None, ["node"])
    # every metric of the subcluster that has a template and data; no data and no template: left out
    assert sorted(data) == ["test_cpu", "test_cpu_avg", "test_load", "test_mem"]
    mem = data["test_mem"]["node"]  # a {host} template: one request per host
    assert mem["unit"] == {"base": "B", "prefix": "G"}
    assert [s["hostname"] for s in mem["series"]] == ["pn01.cl", "pn03.cl"]
    assert {v for v in mem["series"][0]["data"][5:]} == {40.0}
    assert {v for v in mem["series"][1]["data"][5:]} == {42.0}
    assert mem["series"][1]["statistics"] == {"min": 42.0, "avg": 42.0, "max": 42.0}


def test_several_series_of_a_host_are_combined_by_the_metrics_aggregation(repo, finished_job):
    data = repo.load_data(finished_job, ["test_cpu", "test_cpu_avg"], ["node"])
    assert {v for v in data["test_cpu"]["node"]["series"][0]["data"][5:]} == {3.0}  # sum of cpu 0 (1) and cpu 1 (2)
    assert {v for v in data["test_cpu_avg"]["node"]["series"][0]["data"][5:]} == {1.5}


def test_finer_scopes_fall_back_to_node(repo, finished_job):
    data = repo.load_data(finished_job, ["test_cpu"], ["core", "hwthread", "node", "accelerator"])
    assert list(data["test_cpu"]) == ["node"]
    assert len(data["test_cpu"]["node"]["series"]) == 2


def test_a_resolution_coarsens_the_step_to_a_multiple_of_the_timestep(prom, repo, finished_job):
    data = repo.load_data(finished_job, ["test_load"], ["node"], resolution=4)
    metric = data["test_load"]["node"]
    assert metric["timestep"] == 4
    series = metric["series"][0]
    assert len(series["data"]) == 3  # start, +4, +8
    _check_load(prom, "pn01.cl", finished_job["startTime"], 4, series["data"])


def test_long_ranges_are_split_into_requests_on_one_grid(prom, registry, repo, finished_job):
    small = PrometheusRepository(registry, prom.url, QUERIES, host_label_strip=":9100", max_points=4, **AUTH)
    try:
        split = small.load_data(finished_job, ["test_load", "test_mem"], ["node"])
    finally:
        small.close()
    assert split == repo.load_data(finished_job, ["test_load", "test_mem"], ["node"])
    assert time_chunks(100, 108, 1, 4) == [(100, 103), (104, 107), (108, 108)]
    assert time_chunks(100, 100, 5, 4) == [(100, 100)]


def test_a_running_job_reads_up_to_now(prom, repo, settled):
    start = int(time.time()) - 4
    data = repo.load_data(_job(start, 0, ["pn02.cl"], state="running"), ["test_mem"], ["node"])
    series = data["test_mem"]["node"]["series"]
    assert [s["hostname"] for s in series] == ["pn02.cl"]
    assert len(series[0]["data"]) in (5, 6) and series[0]["data"][-2] == 41.0


# --- load_stats, load_node_data -----------------------------------------------------------------------


def test_load_stats_are_the_node_series_statistics(repo, finished_job):
    stats = repo.load_stats(finished_job, ["test_load", "test_mem"])
    data = repo.load_data(finished_job, ["test_load", "test_mem"], ["node"])
    assert stats["test_mem"] == {"pn01.cl": {"min": 40.0, "avg": 40.0, "max": 40.0},
                                 "pn03.cl": {"min": 42.0, "avg": 42.0, "max": 42.0}}
    assert stats["test_load"] == {s["hostname"]: s["statistics"] for s in data["test_load"]["node"]["series"]}


def test_load_node_data_of_given_hosts(prom, repo, settled):
    end = int(time.time()) - 1
    start = end - 5
    data = repo.load_node_data(CLUSTER, ["test_load", "test_mem"], ["pn02.cl", "pn04.cl", "elsewhere"], ["node"], start, end)
    assert list(data) == ["pn02.cl"]  # pn04.cl is never scraped; "elsewhere" is in no subcluster
    load = data["pn02.cl"]["test_load"]["node"]
    assert load["timestep"] == 1 and [s["hostname"] for s in load["series"]] == ["pn02.cl"]
    _check_load(prom, "pn02.cl", start, 1, load["series"][0]["data"])
    assert all(v == 41.0 for v in data["pn02.cl"]["test_mem"]["node"]["series"][0]["data"])


def test_load_node_data_discovers_the_hosts_of_the_cluster(repo, settled):
    end = int(time.time()) - 1
    data = repo.load_node_data(CLUSTER, None, None, ["node"], end - 3, end)
    assert sorted(data) == HOSTS
    for i, host in enumerate(HOSTS):
        assert sorted(data[host]) == ["test_cpu", "test_cpu_avg", "test_load", "test_mem"]
        assert data[host]["test_mem"]["node"]["series"][0]["data"] == [40.0 + i] * 4


# --- health ------------------------------------------------------------------------------------------


def test_health_full_partial_failed_and_gaps(prom, repo, settled):
    metrics = ["test_load", "test_mem"]
    health = repo.health(CLUSTER, ["pn01.cl", "pn02.cl", "pn04.cl"], metrics)
    assert health["pn01.cl"] == {"state": "full", "metrics": {"missing": [], "degraded": []}}
    assert health["pn02.cl"]["state"] == "full"
    assert health["pn04.cl"] == {"state": "failed", "metrics": {"missing": metrics, "degraded": []}}
    stopped = time.time()
    prom.exporter.disabled.add(("pn02.cl", "test_mem"))
    try:
        deadline = time.time() + 20
        while repo.health(CLUSTER, ["pn02.cl"], metrics)["pn02.cl"]["state"] != "partial":
            assert time.time() < deadline, "the stopped metric was never reported missing"
            time.sleep(0.5)
        health = repo.health(CLUSTER, ["pn01.cl", "pn02.cl"], metrics)
        assert health["pn02.cl"] == {"state": "partial", "metrics": {"missing": ["test_mem"], "degraded": []}}
        assert health["pn01.cl"]["state"] == "full"
        # Prometheus marks the vanished series stale, so the steps after it are gaps, not repeated values
        end = int(time.time()) - 1
        start = int(stopped) - 3
        data = repo.load_node_data(CLUSTER, ["test_mem"], ["pn02.cl"], ["node"], start, end)["pn02.cl"]["test_mem"]
        values = data["node"]["series"][0]["data"]
        assert values[0] == 41.0 and values[-3:] == [None, None, None]
    finally:
        prom.exporter.disabled.clear()
    # an empty metric list means every metric with a template
    assert repo.health(CLUSTER, ["pn04.cl"], [])["pn04.cl"]["metrics"]["missing"] == list(QUERIES)


# --- errors ------------------------------------------------------------------------------------------


def test_an_unreachable_prometheus_is_a_backend_error(registry, finished_job):
    url = f"http://127.0.0.1:{free_port()}"
    repository = PrometheusRepository(registry, url, QUERIES, timeout=2)
    with pytest.raises(MetricBackendError, match=f"Prometheus {url} cannot be reached"):
        repository.load_data(finished_job, ["test_load"], ["node"])
    with pytest.raises(MetricBackendError, match="cannot be reached"):
        repository.health(CLUSTER, ["pn01.cl"], ["test_mem"])


def test_a_silent_server_is_a_timeout(registry, finished_job):
    with socket.socket() as listener:  # accepts connections (the kernel's backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        repository = PrometheusRepository(registry, url, QUERIES, timeout=0.5)
        with pytest.raises(MetricBackendError, match=rf"Prometheus {url} did not answer the query of test_load within 0.5 s"):
            repository.load_data(finished_job, ["test_load"], ["node"])
        repository.close()


def test_prometheus_errors_name_the_url_and_prometheus_text(prom, registry, finished_job):
    broken = PrometheusRepository(registry, prom.url, {"test_load": 'rate(test_load{instance=~"{hosts}:9100"})'}, **AUTH)
    with pytest.raises(MetricBackendError) as caught:
        broken.load_data(finished_job, ["test_load"], ["node"])
    message = caught.value.message
    assert message.startswith(f"Prometheus {prom.url} refused the query of test_load")
    assert "bad_data" in message and "range vector" in message  # Prometheus' own explanation
    assert caught.value.status == 502


def test_a_server_that_is_not_prometheus_is_an_http_error(prom, registry, finished_job):
    url = f"http://127.0.0.1:{prom.exporter.port}"
    repository = PrometheusRepository(registry, url, QUERIES)
    with pytest.raises(MetricBackendError, match=f"Prometheus {url} answered HTTP 404 to the query of test_load"):
        repository.load_data(finished_job, ["test_load"], ["node"])


@pytest.mark.parametrize("credentials", [{"username": "cc", "password": "wrong"}, {}, {"token": "not-for-basic-auth"}])
def test_refused_credentials_are_an_http_error(prom, registry, settled, credentials):
    end = int(time.time())
    repository = PrometheusRepository(registry, prom.url, QUERIES, host_label_strip=":9100", **credentials)
    with pytest.raises(MetricBackendError, match=f"Prometheus {prom.url} answered HTTP 401 to the query of test_mem: Unauthorized"):
        repository.load_node_data(CLUSTER, ["test_mem"], ["pn01.cl"], ["node"], end - 2, end)
    repository.close()


# --- templates and config ----------------------------------------------------------------------------


def test_templates_are_filled_with_escaped_hosts():
    template = 'x{instance=~"{hosts}:9100", host="{host}", cluster="{cluster}"} + on() y{a="{}"}'
    assert render(template, cluster="c1", hosts=["a.b", "c"]) == \
        'x{instance=~"(a[.]b|c):9100", host=".+", cluster="c1"} + on() y{a="{}"}'
    assert render('x{h="{host}",r=~"{hosts}"}', cluster="c1", host="n.1") == 'x{h="n.1",r=~"(n[.]1)"}'
    assert render('x{h=~"{hosts}"}', cluster="c1") == 'x{h=~".+"}'
    assert host_regex(["pn01.cl"]) == "(pn01[.]cl)"
    assert query_step(10, 0) == 10 and query_step(10, 25) == 30 and query_step(10, 5) == 10


def test_hosts_that_cannot_be_put_into_promql_get_no_data(repo):
    end = int(time.time())
    assert repo.load_node_data(CLUSTER, ["test_mem"], ['pn01.cl"} or vector(1) #'], ["node"], end - 2, end) == {}


def _config_error(entries: list[Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config({"main": {}, "metric-store-external": entries})
    return caught.value.message


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"scope": "*", "url": "u", "kind": "prometheus"},
         'config.json: metric-store-external[0].queries: required when kind is "prometheus": an object of metric name '
         '-> PromQL template, e.g. {"cpu_load": "node_load1{instance=~\\"{hosts}:9100\\"}"}'),
        ({"scope": "*", "url": "u", "kind": "prometheus", "queries": {}},
         'config.json: metric-store-external[0].queries: required when kind is "prometheus": an object of metric name '
         '-> PromQL template, e.g. {"cpu_load": "node_load1{instance=~\\"{hosts}:9100\\"}"}'),
        ({"scope": "*", "url": "u", "kind": "prometheus", "queries": {"cpu_load": 5}},
         "config.json: metric-store-external[0].queries.cpu_load: expected a string, got 5"),
        ({"scope": "*", "url": "u", "kind": "prometheus", "queries": ["node_load1"]},
         'config.json: metric-store-external[0].queries: expected an object, got a list ["node_load1"]'),
        ({"scope": "*", "url": "u", "kind": "prometheus", "queries": {"cpu_load": 'node_load1{instance=~"{nodes}"}'}},
         "config.json: metric-store-external[0].queries.cpu_load: unknown placeholder {nodes} (known: {host}, {hosts}, {cluster})"),
        ({"scope": "*", "url": "u", "kind": "prometheus", "queries": {"cpu_load": "  "}},
         "config.json: metric-store-external[0].queries.cpu_load: expected a PromQL template, got an empty string"),
        ({"scope": "*", "url": "u", "kind": "prometheus", "queries": {"a": "x"}, "username": "u"},
         "config.json: metric-store-external[0].password: required when the other of username/password is set"),
        ({"scope": "*", "url": "u", "kind": "prometheus", "queries": {"a": "x"}, "username": "u", "password": "p", "token": "t"},
         "config.json: metric-store-external[0].token: set either token (bearer) or username/password (basic), not both"),
        ({"scope": "*", "url": "u", "kind": "prometheus", "queries": {"a": "x"}, "timeout": "0s"},
         "config.json: metric-store-external[0].timeout: expected a positive duration, got \"0s\""),
        ({"scope": "*", "url": "u", "kind": "influxdb", "token": "t"},
         "config.json: metric-store-external[0].kind: expected one of 'cc-metric-store' or 'prometheus', got \"influxdb\""),
        ({"scope": "*", "url": "u"}, "config.json: metric-store-external[0].token: required key is missing"),
        ({"scope": "*", "url": "u", "token": "t", "queries": {"a": "x"}},
         'config.json: metric-store-external[0].queries: only allowed when kind is "prometheus"'),
        ({"scope": "*", "url": "u", "token": "t", "host-label": "host"},
         'config.json: metric-store-external[0].host-label: only allowed when kind is "prometheus"'),
    ],
)
def test_config_errors_name_the_key(entry, message):
    assert _config_error([entry]) == message


def test_the_dispatch_serves_a_prometheus_scope_from_it(prom, registry, finished_job):
    from cc_backend.metrics.dispatch import MetricDispatch

    config = parse_config({"main": {}, "metric-store-external": [
        {"scope": f"{CLUSTER}-main", "kind": "prometheus", "url": prom.url, "host-label-strip": ":9100", "queries": QUERIES,
         **AUTH},
    ]})
    dispatch = MetricDispatch(registry, config)
    assert isinstance(dispatch.repository_for(CLUSTER, "main"), PrometheusRepository)
    data = dispatch.load_data(finished_job, ["test_mem"], ["node", "core"])
    assert [s["data"][-1] for s in data["test_mem"]["node"]["series"]] == [40.0, 42.0]
    assert dispatch.load_stats(finished_job, ["test_mem"])["test_mem"]["pn03.cl"] == {"min": 42.0, "avg": 42.0, "max": 42.0}
    assert dispatch.health(CLUSTER, ["pn01.cl", "pn04.cl"], ["test_mem"]) == {
        "pn01.cl": {"state": "full", "metrics": {"missing": [], "degraded": []}},
        "pn04.cl": {"state": "failed", "metrics": {"missing": ["test_mem"], "degraded": []}},
    }


def test_a_config_entry_builds_a_working_repository(prom, registry, finished_job):
    config = parse_config({"main": {}, "metric-store-external": [
        {"scope": "*", "url": "http://ccms:8082", "token": "t"},
        {"scope": CLUSTER, "kind": "prometheus", "url": prom.url + "/", "timeout": "5s", "host-label": "instance", **AUTH,
         "host-label-strip": ":9100", "queries": {"test_mem": QUERIES["test_mem"]}},
    ]})
    ccms, entry = config.metric_store_external
    assert ccms.kind == "cc-metric-store" and ccms.token == "t"
    repository = PrometheusRepository.from_config(entry, registry)
    try:
        assert repository.timeout == 5.0 and repository.url == prom.url
        data = repository.load_data(finished_job, None, ["node"])
    finally:
        repository.close()
    assert list(data) == ["test_mem"]
    assert data["test_mem"]["node"]["series"][1]["data"][-1] == 42.0


def test_a_v10_prometheus_repository_is_ignored_with_advice(caplog):
    flat = {"addr": "localhost:8080", "clusters": [{"name": "c", "metricDataRepository": {"kind": "prometheus", "url": "u"}}]}
    with caplog.at_level("WARNING", logger="cc_backend.config"):
        config = parse_config(flat)
    assert config.metric_store_external == []
    assert ('clusters[0].metricDataRepository (kind "prometheus": write it as a metric-store-external entry of kind '
            '"prometheus" with PromQL "queries")') in caplog.text
