"""GraphQL clusters, globalMetrics, user, allocatedNodes and updateConfiguration over HTTP, against the peer data."""

from __future__ import annotations

import json
import sqlite3
import time

import httpx
import pytest
from peerdata import ARCHIVE, JOB_DB

CLUSTERS = """{
  clusters {
    name partitions
    subClusters {
      name nodes numberOfNodes processorType socketsPerNode coresPerSocket threadsPerCore
      flopRateScalar { name unit { base prefix } value }
      flopRateSimd { name unit { base prefix } value }
      memoryBandwidth { name unit { base prefix } value }
      topology { node socket memoryDomain die core accelerators { id type model } }
      metricConfig { name unit { base prefix } scope aggregation timestep peak normal caution alert lowerIsBetter
                     subClusters { name peak normal caution alert remove } }
      footprint
    }
  }
}"""
GLOBAL_METRICS = "{ globalMetrics { name unit { base prefix } scope footprint availability { cluster subClusters } } }"
USER = "query($u: String!) { user(username: $u) { username name email } }"
ALLOCATED = "query($c: String!) { allocatedNodes(cluster: $c) { name count } }"
UPDATE = "mutation($n: String!, $v: String!) { updateConfiguration(name: $n, value: $v) }"

#: Hosts per subcluster, counted by hand from the nodelists of the peer cluster.json files.
NODE_COUNTS = {
    ("alex", "a40"): 9 * 4 + 2 + 4 + 2, ("alex", "a100"): 5 * 4, ("alex", "a100m80"): 7 + 3 + 1 + 4,
    ("fritz", "main"): 88 * 10 + 56 * 2, ("fritz", "spr1tb"): 64, ("fritz", "spr2tb"): 16,
    ("emmy", "haswell"): 19 + 15 + 4, ("emmy", "skylake"): 8 + 31 + 24, ("emmy", "kabylake"): 56 + 5 + 50,
    ("emmy", "icelake"): 35 + 35,
}


def cluster_json(name: str) -> dict:
    return json.loads((ARCHIVE / name / "cluster.json").read_text())


def peer_partitions() -> dict[str, list[str]]:
    with sqlite3.connect(f"file:{JOB_DB}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT DISTINCT cluster, cluster_partition FROM job").fetchall()
    out: dict[str, list[str]] = {}
    for cluster, partition in rows:
        out.setdefault(cluster, []).append(partition)
    return {cluster: sorted(parts) for cluster, parts in out.items()}


def site_engine(site):
    """An engine on the graphql_site's own database (SQLite file or MariaDB), from its config.json."""
    from cc_backend.db.engine import make_engine

    main = json.loads((site.site / "config.json").read_text())["main"]
    return make_engine(main["db"] if main.get("db-driver") == "mysql" else f"sqlite:///{main['db']}")


def resolved(metric: dict, subcluster: str) -> dict | None:
    """What cluster.json says a metric is on one subcluster: None if removed there, overrides applied."""
    override = next((o for o in metric.get("subClusters") or [] if o["name"] == subcluster), {})
    if override.get("remove"):
        return None
    return {key: override.get(key, metric.get(key)) for key in ("peak", "normal", "caution", "alert")}


def test_clusters_are_the_cluster_json_files(graphql_site):
    clusters = {c["name"]: c for c in graphql_site.query(CLUSTERS, user="gqluser")["clusters"]}
    assert sorted(clusters) == ["alex", "emmy", "fritz"]
    partitions = peer_partitions()
    assert partitions == {"alex": ["a100", "a40", "preempt"], "fritz": ["singlenode"]}
    for name, cluster in clusters.items():
        assert cluster["partitions"] == partitions.get(name, [])  # emmy has no jobs in the database
        raw = cluster_json(name)
        assert [sc["name"] for sc in cluster["subClusters"]] == [sc["name"] for sc in raw["subClusters"]]
        for got, want in zip(cluster["subClusters"], raw["subClusters"]):
            for key in ("nodes", "processorType", "socketsPerNode", "coresPerSocket", "threadsPerCore"):
                assert got[key] == want[key], (name, got["name"], key)
            assert got["numberOfNodes"] == NODE_COUNTS[name, got["name"]]
            for key in ("flopRateScalar", "flopRateSimd", "memoryBandwidth"):
                assert got[key] == {"name": None, "unit": want[key]["unit"], "value": want[key]["value"]}
            topology = want["topology"]
            assert got["topology"]["node"] == topology["node"] and got["topology"]["core"] == topology["core"]
            assert got["topology"]["socket"] == topology["socket"]
            assert got["topology"]["memoryDomain"] == topology["memoryDomain"]
            assert got["topology"]["accelerators"] == topology.get("accelerators")
            metrics = {m["name"]: m for m in got["metricConfig"]}
            expected = [m["name"] for m in raw["metricConfig"] if resolved(m, got["name"]) is not None]
            assert list(metrics) == expected, (name, got["name"])
            for metric in raw["metricConfig"]:
                want_values = resolved(metric, got["name"])
                if want_values is None:
                    continue
                mine = metrics[metric["name"]]
                assert {k: mine[k] for k in want_values} == want_values, (name, got["name"], metric["name"])
                assert mine["unit"]["base"] == metric["unit"]["base"] and mine["timestep"] == metric["timestep"]
                assert mine["scope"] == metric["scope"] and mine["subClusters"] == []
            assert got["footprint"] == [m["name"] for m in raw["metricConfig"]
                                        if resolved(m, got["name"]) is not None and m.get("footprint")]


def test_cluster_details_worth_a_second_look(graphql_site):
    clusters = {c["name"]: c for c in graphql_site.query(CLUSTERS)["clusters"]}
    a100 = next(sc for sc in clusters["alex"]["subClusters"] if sc["name"] == "a100")
    assert len(a100["topology"]["accelerators"]) == 8
    assert a100["topology"]["accelerators"][0]["model"] and a100["topology"]["accelerators"][0]["type"] == "Nvidia GPU"
    spr2tb = next(sc for sc in clusters["fritz"]["subClusters"] if sc["name"] == "spr2tb")
    # fritz removes flops_any, mem_bw, clock, flops_sp and flops_dp on spr2tb
    names = [m["name"] for m in spr2tb["metricConfig"]]
    assert "flops_any" not in names and "mem_bw" not in names and "cpu_load" in names
    assert spr2tb["footprint"] == ["cpu_load", "mem_used"]
    haswell = next(sc for sc in clusters["emmy"]["subClusters"] if sc["name"] == "haswell")
    assert haswell["topology"]["die"] is None and haswell["topology"]["accelerators"] is None
    assert "cpu_user" not in [m["name"] for m in haswell["metricConfig"]]


def test_global_metrics_list_every_metric_with_its_availability(graphql_site):
    metrics = {m["name"]: m for m in graphql_site.query(GLOBAL_METRICS)["globalMetrics"]}
    raws = {name: cluster_json(name) for name in ("alex", "emmy", "fritz")}
    every_name = {m["name"] for raw in raws.values() for m in raw["metricConfig"]}
    assert set(metrics) == every_name
    for name, item in metrics.items():
        offering = [(c, raw) for c, raw in raws.items() if any(m["name"] == name for m in raw["metricConfig"])]
        assert [a["cluster"] for a in item["availability"]] == [c for c, _ in offering]
        for availability, (_cluster, raw) in zip(item["availability"], offering):
            metric = next(m for m in raw["metricConfig"] if m["name"] == name)
            assert availability["subClusters"] == [sc["name"] for sc in raw["subClusters"]
                                                   if resolved(metric, sc["name"]) is not None]
    assert metrics["cpu_user"]["availability"][1] == {"cluster": "emmy", "subClusters": ["kabylake", "icelake"]}
    assert metrics["flops_any"]["footprint"] == "avg" and metrics["mem_used"]["footprint"] == "max"
    assert metrics["ipc"]["footprint"] is None and metrics["acc_power"]["availability"][0]["cluster"] == "alex"
    assert metrics["mem_bw"]["unit"] == {"base": "B/s", "prefix": "G"} and metrics["mem_bw"]["scope"] == "socket"
    # nothing is restricted in the peer archive: users see the same list
    assert graphql_site.query(GLOBAL_METRICS, user="gqluser")["globalMetrics"] == list(metrics.values())


def test_restricted_metrics_are_hidden_from_users_and_managers(app_start, peer_archive, tokens):
    path = peer_archive / "fritz" / "cluster.json"  # the archive of app_start()'s site
    fritz = json.loads(path.read_text())
    for metric in fritz["metricConfig"]:
        if metric["name"] in ("ib_recv", "ipc"):  # ipc is unrestricted on alex: restricted anywhere hides it
            metric["restrict"] = True
    path.write_text(json.dumps(fritz))
    server = app_start()

    def names(roles):
        r = server.post("/query", json={"query": GLOBAL_METRICS},
                       headers={"Authorization": f"Bearer {tokens(roles, sub='someone')}"}, timeout=30)
        assert r.status_code == 200 and not r.json().get("errors"), r.text
        return {m["name"] for m in r.json()["data"]["globalMetrics"]}

    everything = names(["admin"])
    assert {"ib_recv", "ipc", "flops_any"} <= everything
    assert names(["support"]) == everything and names(["api"]) == everything
    assert names(["user"]) == names(["manager"]) == names(["api", "user"]) == everything - {"ib_recv", "ipc"}
    assert names(["admin", "user"]) == everything


def test_user_lookup_for_oneself_and_privileged_roles(graphql_site):
    assert graphql_site.query(USER, {"u": "gqluser"}, user="gqluser")["user"] == \
        {"username": "gqluser", "name": "", "email": ""}
    for viewer in ("gqladmin", "gqlsupport", "gqlmanager"):
        assert graphql_site.query(USER, {"u": "gqladmin"}, user=viewer)["user"]["username"] == "gqladmin"
        assert graphql_site.query(USER, {"u": "nosuchuser"}, user=viewer)["user"] is None
    r = graphql_site.post(USER, {"u": "gqladmin"}, user="gqluser")
    assert r.status_code == 200 and r.json()["data"]["user"] is None
    error = r.json()["errors"][0]
    assert error["extensions"]["code"] == "Forbidden" and "look up other users" in error["message"]
    # an unknown user is forbidden too: a plain user cannot probe which names exist
    assert graphql_site.errors(USER, {"u": "nosuchuser"}, user="gqluser")[0]["extensions"]["code"] == "Forbidden"


def test_user_name_and_email_come_from_the_database(graphql_site):
    from sqlalchemy import select, update

    from cc_backend.db.tables import user_table

    engine = site_engine(graphql_site)
    support = user_table.c.username == "gqlsupport"
    with engine.connect() as conn:
        before = conn.execute(select(user_table.c.name, user_table.c.email).where(support)).one()
    try:
        with engine.begin() as conn:
            conn.execute(update(user_table).where(support).values(name="Sue Port", email="sue@example.org"))
        assert graphql_site.query(USER, {"u": "gqlsupport"}, user="gqlmanager")["user"] == \
            {"username": "gqlsupport", "name": "Sue Port", "email": "sue@example.org"}
    finally:
        with engine.begin() as conn:
            conn.execute(update(user_table).where(support).values(name=before.name, email=before.email))
        engine.dispose()


def _start_job(site, job_id: int, cluster: str, partition: str, hosts: list[str]) -> dict:
    body = {"jobId": job_id, "user": "gqluser", "project": "gqlproj", "cluster": cluster, "partition": partition,
            "walltime": 3600, "numNodes": len(hosts), "numHwthreads": len(hosts), "shared": "none",
            "monitoringStatus": 1, "smt": 1, "resources": [{"hostname": h} for h in hosts],
            "startTime": int(time.time()) - 60}
    r = httpx.post(site.url + "/api/jobs/start_job/", json=body,
                   headers={"Authorization": f"Bearer {site.tokens['gqladmin']}"}, timeout=30)
    assert r.status_code == 201, r.text
    return body


def _stop_job(site, job: dict) -> None:
    r = httpx.post(site.url + "/api/jobs/stop_job/", timeout=30,
                   headers={"Authorization": f"Bearer {site.tokens['gqladmin']}"},
                   json={"jobId": job["jobId"], "cluster": job["cluster"], "startTime": job["startTime"],
                         "jobState": "completed", "stopTime": job["startTime"] + 60})
    assert r.status_code == 200, r.text


def test_allocated_nodes_count_distinct_hosts_of_running_jobs(graphql_site):
    assert graphql_site.query(ALLOCATED, {"c": "fritz"})["allocatedNodes"] == []  # the peer jobs all completed
    # existing partitions only, so the partitions test sees the same lists whatever the order
    jobs = [_start_job(graphql_site, 990001, "fritz", "singlenode", ["f0101", "f0102"]),
            _start_job(graphql_site, 990002, "fritz", "singlenode", ["f0102"]),
            _start_job(graphql_site, 990003, "fritz", "singlenode", ["f2181"]),  # first in spr1tb's nodelist
            _start_job(graphql_site, 990004, "alex", "a100", ["a0601"])]
    try:
        fritz = graphql_site.query(ALLOCATED, {"c": "fritz"}, user="gqluser")["allocatedNodes"]
        assert sorted(fritz, key=lambda c: c["name"]) == [{"name": "main", "count": 2}, {"name": "spr1tb", "count": 1}]
        assert graphql_site.query(ALLOCATED, {"c": "alex"})["allocatedNodes"] == [{"name": "a100", "count": 1}]
        assert graphql_site.query(ALLOCATED, {"c": "emmy"})["allocatedNodes"] == []
    finally:
        for job in jobs:
            _stop_job(graphql_site, job)
    assert graphql_site.query(ALLOCATED, {"c": "fritz"})["allocatedNodes"] == []
    error = graphql_site.errors(ALLOCATED, {"c": "nosuch"})[0]
    assert error["extensions"] == {"code": "InvalidInput", "status": 400, "field": "cluster"}
    assert "'nosuch' is not in the job archive" in error["message"]


def test_update_configuration_stores_the_users_setting(graphql_site):
    from sqlalchemy import delete

    from cc_backend.auth.users import get_user_ui_config
    from cc_backend.db.tables import configuration_table

    engine = site_engine(graphql_site)
    try:
        assert graphql_site.query(UPDATE, {"n": "plot_general_colorscheme", "v": '["#aaa","#bbb"]'},
                                  user="gqluser") == {"updateConfiguration": None}
        assert graphql_site.query(UPDATE, {"n": "jobList_usePaging", "v": "true"}, user="gqluser")
        assert get_user_ui_config(engine, "gqluser") == \
            {"plot_general_colorscheme": ["#aaa", "#bbb"], "jobList_usePaging": True}
        graphql_site.query(UPDATE, {"n": "jobList_usePaging", "v": "false"}, user="gqluser")  # replaces the row
        assert get_user_ui_config(engine, "gqluser")["jobList_usePaging"] is False
        assert get_user_ui_config(engine, "gqladmin") == {}  # only the caller's own rows

        not_json = graphql_site.errors(UPDATE, {"n": "jobList_usePaging", "v": "yes please"}, user="gqluser")[0]
        assert not_json["extensions"]["field"] == "value" and "must be JSON text" in not_json["message"]
        no_name = graphql_site.errors(UPDATE, {"n": "", "v": "1"}, user="gqluser")[0]
        assert no_name["extensions"]["field"] == "name" and no_name["message"].startswith("name is required")
        too_long = graphql_site.errors(UPDATE, {"n": "x" * 300, "v": "1"}, user="gqluser")[0]
        assert too_long["extensions"]["field"] == "name"
        r = graphql_site.post(UPDATE, {"n": "jobList_usePaging", "v": 3}, user="gqluser")  # not a String
        assert r.status_code == 422 and "v" in r.json()["errors"][0]["message"]
        r = graphql_site.post('mutation { updateConfiguration(name: "a") }', user="gqluser")
        assert r.status_code == 422 and "value" in r.json()["errors"][0]["message"]
    finally:
        with engine.begin() as conn:
            conn.execute(delete(configuration_table).where(configuration_table.c.username == "gqluser"))
        engine.dispose()


@pytest.mark.parametrize("query", [CLUSTERS, GLOBAL_METRICS])
def test_meta_queries_need_a_login(graphql_site, query):
    assert httpx.post(graphql_site.url + "/query", json={"query": query}, timeout=30).status_code == 401
