"""GraphQL node queries (node, nodes, nodesWithMeta, nodeStates, nodeStatesTimed) over states from /api/nodestate/."""

from __future__ import annotations

import time

import httpx
import pytest

from cc_backend.archive.fs import FileArchive
from cc_backend.auth.security import Viewer
from cc_backend.errors import Forbidden, InvalidInput
from cc_backend.nodes import (
    check_node_access,
    count_node_states,
    count_node_states_timed,
    parse_node_filters,
    query_nodes,
    update_node_states,
)

NODE_FIELDS = ("id hostname cluster subCluster jobsRunning cpusAllocated memoryAllocated gpusAllocated "
               "schedulerState healthState metaData healthData")
NODES = f"""query($filter: [NodeFilter!], $order: OrderByInput) {{
  nodes(filter: $filter, order: $order) {{ items {{ {NODE_FIELDS} }} count }}
}}"""
NODES_WITH_META = f"""query($filter: [NodeFilter!], $order: OrderByInput) {{
  nodesWithMeta(filter: $filter, order: $order) {{ items {{ {NODE_FIELDS} }} count }}
}}"""
NODE = f"query($id: ID!) {{ node(id: $id) {{ {NODE_FIELDS} }} }}"
NODE_STATES = "query($filter: [NodeFilter!]) { nodeStates(filter: $filter) { state count } }"
TIMED = """query($filter: [NodeFilter!], $type: String!) {
  nodeStatesTimed(filter: $filter, type: $type) { state counts times }
}"""

#: The one state row the upstream peer job.db brings along: host124 of "testcluster" (not in the archive).
PEER_NODE_TIME = 1766564387
PEER_NODE = {"hostname": "host124", "cluster": "testcluster", "subCluster": "sc1", "jobsRunning": 1,
             "cpusAllocated": 72, "memoryAllocated": 480, "gpusAllocated": 0, "schedulerState": "allocated",
             "healthState": "full", "metaData": {}, "healthData": {}}

#: Four reports of the batch system, each in its own second; the newest state of each node is marked *.
REPORTS = [
    {"cluster": "fritz", "nodes": [
        {"hostname": "f0101", "states": ["allocated"], "cpusAllocated": 72, "memoryAllocated": 250000,
         "jobsRunning": 1},
        {"hostname": "f0102", "states": ["idle"]},
        {"hostname": "f2181", "states": ["IDLE"]}]},  # * (spr1tb: the first subcluster whose nodelist has it)
    {"cluster": "alex", "nodes": [
        {"hostname": "a0121", "states": ["mixed"], "cpusAllocated": 64, "gpusAllocated": 2, "jobsRunning": 2},  # *
        {"hostname": "a0601", "states": ["allocated", "drain"], "cpusAllocated": 128, "memoryAllocated": 1000,
         "gpusAllocated": 8, "jobsRunning": 1}]},  # *
    {"cluster": "fritz", "nodes": [
        {"hostname": "f0101", "states": ["idle"]},
        {"hostname": "f0102", "states": ["down"]}]},  # * (down nodes are health "full", see nodes.update_node_states)
    {"cluster": "fritz", "nodes": [
        {"hostname": "f0101", "states": ["allocated"], "cpusAllocated": 72, "memoryAllocated": 250000,
         "jobsRunning": 1}]},  # *
]


@pytest.fixture(scope="module")
def report_times(graphql_site):
    """Post REPORTS to the module's own server; returns (earliest, latest) epoch second of each report."""
    windows = []
    for i, report in enumerate(REPORTS):
        if i:
            time.sleep(1.05)  # one report per second: the server stamps states with whole seconds
        before = int(time.time())
        r = httpx.post(graphql_site.url + "/api/nodestate/", json=report, timeout=30,
                       headers={"Authorization": f"Bearer {graphql_site.tokens['gqladmin']}"})
        assert r.status_code == 200, r.text
        windows.append((before, int(time.time())))
    return windows


def nodes(site, user="gqladmin", **variables) -> list[dict]:
    result = site.query(NODES, variables, user=user)["nodes"]
    assert result["count"] == len(result["items"])
    return result["items"]


def hostnames(site, **variables) -> list[str]:
    return [n["hostname"] for n in nodes(site, **variables)]


def timed(site, kind, **variables) -> dict[str, list[tuple[int, int]]]:
    result = site.query(TIMED, {"type": kind, **variables})["nodeStatesTimed"]
    return {entry["state"]: list(zip(entry["times"], entry["counts"])) for entry in result}


#: The metrics of fritz's subcluster main in cluster.json order (what a node's health is checked against).
FRITZ_MAIN_METRICS = ["cpu_load", "cpu_user", "mem_used", "flops_any", "flops_sp", "flops_dp", "mem_bw", "clock",
                      "cpu_power", "mem_power", "ipc", "vectorization_ratio", "ib_recv", "ib_xmit", "ib_recv_pkts",
                      "ib_xmit_pkts", "nfs4_read", "nfs4_write", "nfs4_total"]


def test_nodes_are_listed_with_their_newest_state(graphql_site, report_times):
    items = {n["hostname"]: n for n in nodes(graphql_site)}
    assert list(items) == ["a0121", "a0601", "f0101", "f0102", "f2181", "host124"]  # hostname order
    assert {k: v for k, v in items["host124"].items() if k != "id"} == PEER_NODE
    assert {k: v for k, v in items["f0101"].items() if k != "id"} == {
        "hostname": "f0101", "cluster": "fritz", "subCluster": "main", "jobsRunning": 1, "cpusAllocated": 72,
        "memoryAllocated": 250000, "gpusAllocated": 0, "schedulerState": "allocated", "healthState": "failed",
        # no metric store has data of it: every metric of its subcluster is missing
        "metaData": {}, "healthData": {"missing": FRITZ_MAIN_METRICS, "degraded": []}}
    assert items["a0601"]["subCluster"] == "a100" and items["a0601"]["gpusAllocated"] == 8
    assert items["a0601"]["schedulerState"] == "allocated"  # allocated outranks drain
    assert items["a0121"]["subCluster"] == "a40" and items["a0121"]["schedulerState"] == "mixed"
    assert items["f0102"]["schedulerState"] == "down" and items["f0102"]["healthState"] == "full"
    assert items["f2181"]["subCluster"] == "spr1tb" and items["f2181"]["schedulerState"] == "idle"
    assert items["host124"]["id"] == "1" and len({n["id"] for n in items.values()}) == 6

    with_meta = graphql_site.query(NODES_WITH_META, user="gqlsupport")["nodesWithMeta"]
    assert with_meta["count"] == 6 and with_meta["items"] == list(items.values())


def test_node_filters_apply_to_the_newest_state(graphql_site, report_times):
    # f0101 was idle in the third report, but is allocated now: only f2181 is idle
    assert hostnames(graphql_site, filter=[{"schedulerState": "idle"}]) == ["f2181"]
    assert hostnames(graphql_site, filter=[{"schedulerState": "allocated"}]) == ["a0601", "f0101", "host124"]
    assert hostnames(graphql_site, filter=[{"healthState": "full"}]) == ["f0102", "host124"]
    assert hostnames(graphql_site, filter=[{"hostname": {"startsWith": "f0"}}]) == ["f0101", "f0102"]
    assert hostnames(graphql_site, filter=[{"hostname": {"contains": "12"}}]) == ["a0121", "host124"]
    assert hostnames(graphql_site, filter=[{"subCluster": {"eq": "spr1tb"}}]) == ["f2181"]
    assert hostnames(graphql_site, filter=[{"cluster": {"in": ["alex", "testcluster"]}}]) == \
        ["a0121", "a0601", "host124"]
    assert hostnames(graphql_site, filter=[{"cluster": {"neq": "fritz"}}, {"schedulerState": "allocated"}]) == \
        ["a0601", "host124"]
    assert hostnames(graphql_site, filter=[{"cluster": {"eq": "fritz"}, "schedulerState": "allocated"}]) == ["f0101"]
    third, fourth = report_times[2][0], report_times[3][0]
    assert hostnames(graphql_site, filter=[{"timeStart": third}]) == ["f0101", "f0102"]
    assert hostnames(graphql_site, filter=[{"timeStart": report_times[3][1] + 1}]) == []
    assert hostnames(graphql_site, filter=[{"timeStart": fourth, "cluster": {"eq": "fritz"}}]) == ["f0101"]
    assert hostnames(graphql_site, filter=[{"hostname": {"eq": "nosuchhost"}}]) == []


def test_node_order(graphql_site, report_times):
    by_cpus = nodes(graphql_site, order={"field": "cpusAllocated", "type": "col", "order": "DESC"})
    assert [(n["hostname"], n["cpusAllocated"]) for n in by_cpus] == [
        ("a0601", 128), ("f0101", 72), ("host124", 72), ("a0121", 64), ("f0102", 0), ("f2181", 0)]
    assert hostnames(graphql_site, order={"field": "hostname", "type": "col", "order": "DESC"}) == \
        ["host124", "f2181", "f0102", "f0101", "a0601", "a0121"]
    by_state = hostnames(graphql_site, order={"field": "schedulerState", "type": "col"})
    assert by_state[:3] == ["a0601", "f0101", "host124"]


def test_node_order_on_a_job_column_sorts_by_hostname(graphql_site, report_times):
    """Upstream's web UI sends a job sort (startTime) to nodes and nodesWithMeta; upstream sorts by hostname."""
    by_hostname = ["a0121", "a0601", "f0101", "f0102", "f2181", "host124"]
    for field in ("startTime", "colour"):
        for direction in ("DESC", "ASC"):
            order = {"field": field, "type": "col", "order": direction}
            assert hostnames(graphql_site, order=order) == by_hostname
            with_meta = graphql_site.query(NODES_WITH_META, {"order": order}, user="gqlsupport")["nodesWithMeta"]
            assert [n["hostname"] for n in with_meta["items"]] == by_hostname and with_meta["count"] == 6


def test_node_by_id(graphql_site, report_times):
    f0101 = next(n for n in nodes(graphql_site) if n["hostname"] == "f0101")
    assert graphql_site.query(NODE, {"id": f0101["id"]}, user="gqlsupport")["node"] == f0101
    assert graphql_site.query(NODE, {"id": "1"})["node"]["hostname"] == "host124"
    missing = graphql_site.post(NODE, {"id": "999999"})
    assert missing.status_code == 200 and missing.json()["data"]["node"] is None
    assert missing.json()["errors"][0]["message"] == "no node with id 999999"
    assert graphql_site.errors(NODE, {"id": "f0101"})[0]["message"] == "id must be a numeric id, got 'f0101'"


def test_node_state_counts(graphql_site, report_times):
    everything = graphql_site.query(NODE_STATES)["nodeStates"]
    # scheduler states first, then health states, each by name; states no node is in are left out
    assert everything == [{"state": "allocated", "count": 3}, {"state": "down", "count": 1},
                          {"state": "idle", "count": 1}, {"state": "mixed", "count": 1},
                          {"state": "failed", "count": 4}, {"state": "full", "count": 2}]
    fritz = graphql_site.query(NODE_STATES, {"filter": [{"cluster": {"eq": "fritz"}}]}, user="gqlsupport")
    assert fritz["nodeStates"] == [{"state": "allocated", "count": 1}, {"state": "down", "count": 1},
                                   {"state": "idle", "count": 1}, {"state": "failed", "count": 2},
                                   {"state": "full", "count": 1}]
    healthy = graphql_site.query(NODE_STATES, {"filter": [{"healthState": "full"}]})["nodeStates"]
    assert healthy == [{"state": "allocated", "count": 1}, {"state": "down", "count": 1}, {"state": "full", "count": 2}]
    assert graphql_site.query(NODE_STATES, {"filter": [{"cluster": {"eq": "emmy"}}]})["nodeStates"] == []


def test_node_states_over_time(graphql_site, report_times):
    for i, window in enumerate(report_times):
        assert window[1] - window[0] <= 1, f"report {i} took too long for the test's second-based expectations"
    scheduler = timed(graphql_site, "node")
    times = sorted({t for series in scheduler.values() for t, _ in series})
    assert len(times) == 5 and times[0] == PEER_NODE_TIME
    t1, t2, t3, t4 = times[1:]
    for stamp, (lo, hi) in zip((t1, t2, t3, t4), report_times):
        assert lo <= stamp <= hi
    assert scheduler == {
        "allocated": [(PEER_NODE_TIME, 1), (t1, 1), (t2, 1), (t4, 1)],
        "down": [(t3, 1)],
        "idle": [(t1, 2), (t3, 1)],
        "mixed": [(t2, 1)],
    }
    assert timed(graphql_site, "health") == {"failed": [(t1, 3), (t2, 2), (t3, 1), (t4, 1)],
                                             "full": [(PEER_NODE_TIME, 1), (t3, 1)]}
    assert timed(graphql_site, "node", filter=[{"timeStart": t3}]) == \
        {"allocated": [(t4, 1)], "down": [(t3, 1)], "idle": [(t3, 1)]}
    assert timed(graphql_site, "node", filter=[{"cluster": {"eq": "alex"}}]) == \
        {"allocated": [(t2, 1)], "mixed": [(t2, 1)]}
    assert timed(graphql_site, "health", filter=[{"hostname": {"eq": "f0101"}}, {"timeStart": t1}]) == \
        {"failed": [(t1, 1), (t3, 1), (t4, 1)]}
    assert timed(graphql_site, "node", filter=[{"schedulerState": "idle"}]) == {"idle": [(t1, 2), (t3, 1)]}
    error = graphql_site.errors(TIMED, {"type": "cpu"})[0]
    assert error["extensions"] == {"code": "InvalidInput", "status": 400, "field": "type"}
    assert error["message"] == "type must be one of node, health, got 'cpu'"


@pytest.mark.parametrize("user", ["gqluser", "gqlmanager"])
@pytest.mark.parametrize("query,variables", [
    (NODES, {}), (NODES_WITH_META, {}), (NODE, {"id": "1"}), (NODE_STATES, {}), (TIMED, {"type": "node"})])
def test_node_queries_are_for_admin_and_support(graphql_site, user, query, variables):
    r = graphql_site.post(query, variables, user=user)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["data"] is None or all(v is None for v in body["data"].values())
    assert body["errors"][0]["extensions"]["code"] == "Forbidden"
    assert body["errors"][0]["message"] == "only admin and support users may query node states"


def test_bad_node_filters_are_graphql_errors(graphql_site):
    unknown_state = graphql_site.errors(NODES, {"filter": [{"schedulerState": "sleeping"}]}, status=422)[0]
    assert "SchedulerState" in unknown_state["message"] and "sleeping" in unknown_state["message"]
    unknown_key = graphql_site.post(NODES, {"filter": [{"colour": "red"}]})
    assert unknown_key.status_code == 422 and "colour" in unknown_key.json()["errors"][0]["message"]
    literal = graphql_site.post('{ nodeStates(filter: [{healthState: "sick"}]) { state } }')
    assert literal.status_code == 422 and literal.json()["errors"]
    r = graphql_site.post('{ nodes(filter: [{timeStart: "yesterday"}]) { count } }')
    assert r.status_code == 422 and "yesterday is not of correct type Int" in r.json()["errors"][0]["message"]


# --- the core functions behind the resolvers, with chosen time stamps --------------------------------

def report(engine, registry, now, *nodes, cluster="fritz"):
    update_node_states(engine, registry, {"cluster": cluster, "nodes": list(nodes)}, now=now)


def test_newest_state_wins_and_ties_go_to_the_later_report(engine, peer_archive):
    registry = FileArchive(peer_archive).registry()
    report(engine, registry, 1000, {"hostname": "f0101", "states": ["idle"]}, {"hostname": "f0102", "states": ["idle"]})
    report(engine, registry, 2000, {"hostname": "f0101", "states": ["allocated"], "cpusAllocated": 8})
    report(engine, registry, 2000, {"hostname": "f0101", "states": ["mixed"], "cpusAllocated": 4})  # same second
    current = {n["hostname"]: n for n in query_nodes(engine)}
    assert current["f0101"]["schedulerState"] == "mixed" and current["f0101"]["cpusAllocated"] == 4
    assert current["f0101"]["timeStamp"] == 2000 and current["f0102"]["timeStamp"] == 1000
    # upstream filters old rows and then picks the newest of those, so f0101 would count as idle
    assert [n["hostname"] for n in query_nodes(engine, parse_node_filters([{"schedulerState": "idle"}]))] == ["f0102"]
    assert [n["hostname"] for n in query_nodes(engine, parse_node_filters([{"timeStart": 1500}]))] == ["f0101"]
    assert count_node_states(engine) == [{"state": "idle", "count": 1}, {"state": "mixed", "count": 1},
                                         {"state": "failed", "count": 2}]
    assert count_node_states_timed(engine, kind="node") == [
        {"state": "allocated", "counts": [1], "times": [2000]},
        {"state": "idle", "counts": [2], "times": [1000]},
        {"state": "mixed", "counts": [1], "times": [2000]}]
    assert count_node_states_timed(engine, parse_node_filters([{"timeStart": 2001}]), "health") == []
    assert query_nodes(engine, parse_node_filters([{"hostname": {"contains": "%"}}])) == []  # LIKE is escaped


def test_node_access_and_filter_validation():
    for roles in (("admin",), ("support",), ("support", "user")):
        check_node_access(Viewer("someone", roles))
    for roles in ((), ("user",), ("manager",), ("api",), ("api", "user")):
        with pytest.raises(Forbidden):
            check_node_access(Viewer("someone", roles))
    for raw, field in [
        ([{"colour": "red"}], "filter[0].colour"),
        ([{}, {"hostname": {"like": "f%"}}], "filter[1].hostname.like"),
        ([{"cluster": "fritz"}], "filter[0].cluster"),
        ([{"schedulerState": "sleeping"}], "filter[0].schedulerState"),
        ([{"healthState": "idle"}], "filter[0].healthState"),
        ([{"timeStart": -1}], "filter[0].timeStart"),
        ([{"timeStart": "1000"}], "filter[0].timeStart"),
        (["f0101"], "filter[0]"),
        ("f0101", "filter"),
    ]:
        with pytest.raises(InvalidInput) as err:
            parse_node_filters(raw)
        assert err.value.field == field, raw
    with pytest.raises(InvalidInput) as err:
        count_node_states_timed(None, (), "cpu")
    assert err.value.field == "type"
