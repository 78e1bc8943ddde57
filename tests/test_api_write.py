"""The metric store's REST API: /api/write, /api/query, /api/free, /api/debug, /api/healthcheck, and node health.

In process over WSGI and against one real ``cc-backend serve`` process.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
from sqlalchemy import create_engine, text
from support.db import SQLITE_ONLY
from support.site import auth

pytestmark = SQLITE_ONLY

#: The metrics of fritz's subcluster "main" in the peer archive (every one at 60 s).
FRITZ_MAIN_METRICS = ["cpu_load", "cpu_user", "mem_used", "flops_any", "flops_sp", "flops_dp", "mem_bw", "clock",
                      "cpu_power", "mem_power", "ipc", "vectorization_ratio", "ib_recv", "ib_xmit", "ib_recv_pkts",
                      "ib_xmit_pkts", "nfs4_read", "nfs4_write", "nfs4_total"]


def _now_minute() -> int:
    return int(time.time()) // 60 * 60


def _lines(host: str, metric: str, start: int, values: list[float], *, cluster: str | None = None) -> str:
    tags = f",cluster={cluster}" if cluster else ""
    return "".join(f"{metric}{tags},hostname={host},type=node value={v} {start + 60 * i}\n" for i, v in enumerate(values))


def _query(cluster: str, start: int, end: int, queries: list[dict]) -> dict:
    return {"cluster": cluster, "from": start, "to": end, "with-stats": True, "with-data": True, "queries": queries}


@pytest.fixture
def ms(api, tokens):
    """(the app in process, headers of an api token)."""
    app, _adapter, _boss = api
    return app, auth(tokens(["api"]))


def _still_answers(app, headers) -> None:
    r = app.post("/api/write?cluster=fritz", content=b"", headers=headers)
    assert r.status_code == 200, r.text


def test_write_then_query_exact_values(ms):
    app, headers = ms
    start = _now_minute() - 600
    body = _lines("f0101", "cpu_load", start, [1.5, 2.5, 3.0]) + _lines("f0101", "mem_used", start, [100, 200, 300])
    r = app.post("/api/write?cluster=fritz", content=body.encode(), headers=headers)
    assert r.status_code == 200 and r.content == b""
    q = _query("fritz", start, start + 179, [
        {"metric": "cpu_load", "host": "f0101", "resolution": 60},
        {"metric": "mem_used", "host": "f0101", "resolution": 60},
    ])
    r = app.post("/api/query", json=q, headers=headers)
    assert r.status_code == 200, r.text
    (load,), (mem,) = r.json()["results"]
    assert load["data"] == [1.5, 2.5, 3.0] and load["from"] == start and load["resolution"] == 60
    assert (load["min"], load["avg"], load["max"]) == (1.5, pytest.approx(7 / 3), 3.0)
    assert mem["data"] == [100.0, 200.0, 300.0]
    # GET with a body and a trailing slash, as cc-metric-store clients send it
    r = app.request("GET", "/api/query/", content=json.dumps(q).encode(), headers=headers)
    assert r.status_code == 200 and r.json()["results"][0][0]["data"] == [1.5, 2.5, 3.0]


def test_cluster_tag_in_the_line_wins_over_none(ms):
    app, headers = ms
    start = _now_minute() - 300
    body = _lines("f0102", "cpu_load", start, [4.0, 5.0], cluster="fritz")
    assert app.post("/api/write/", content=body.encode(), headers=headers).status_code == 200
    r = app.post("/api/query", json=_query("fritz", start, start + 119,
                                           [{"metric": "cpu_load", "host": "f0102", "resolution": 60}]),
                 headers=headers)
    assert r.json()["results"][0][0]["data"] == [4.0, 5.0]


def test_malformed_line_is_400_naming_the_line(ms):
    app, headers = ms
    start = _now_minute()
    body = _lines("f0101", "cpu_load", start, [1.0]) + "cpu_load,hostname=f0101 value=abc 1700000000\n"
    r = app.post("/api/write?cluster=fritz", content=body.encode(), headers=headers)
    assert r.status_code == 400
    assert r.json()["status"] == "Bad Request" and "line 2" in r.json()["error"]
    # nothing of a body with a malformed line is stored, not even the good line before it
    r = app.post("/api/query", json=_query("fritz", start, start, [{"metric": "cpu_load", "host": "f0101"}]),
                 headers=headers)
    assert r.status_code == 200 and r.json()["results"][0][0]["data"] in (None, [], [None]), r.text
    _still_answers(app, headers)


@pytest.mark.parametrize("host", ["../etc", "a/b", "back\\\\slash"])
def test_refused_host_names(ms, host):
    app, headers = ms
    r = app.post("/api/write?cluster=fritz", content=f"cpu_load,hostname={host} value=1 {_now_minute()}\n".encode(),
                 headers=headers)
    assert r.status_code == 400 and "line 1" in r.json()["error"] and "not allowed" in r.json()["error"], r.text
    _still_answers(app, headers)


def test_refused_cluster_name(ms):
    app, headers = ms
    r = app.post("/api/write?cluster=..", content=f"cpu_load,hostname=f0101 value=1 {_now_minute()}\n".encode(),
                 headers=headers)
    assert r.status_code == 400 and "cluster" in r.json()["error"]
    _still_answers(app, headers)


def test_admission(ms, tokens):
    app, headers = ms
    body = f"cpu_load,hostname=f0101 value=1 {_now_minute()}\n".encode()
    r = app.post("/api/write?cluster=fritz", content=body)
    assert r.status_code == 401 and r.json()["status"] == "Unauthorized"
    for roles in (["user"], ["support", "api"], ["admin"]):
        r = app.post("/api/write?cluster=fritz", content=body, headers=auth(tokens(roles)))
        assert r.status_code == 401, roles
    for roles in (["api"], ["user", "api"], ["admin", "api"], ["manager", "api"]):
        r = app.post("/api/write?cluster=fritz", content=body, headers=auth(tokens(roles)))
        assert r.status_code == 200, (roles, r.text)
    r = app.post("/api/write?cluster=fritz", content=body, headers=auth("not.a.token"))
    assert r.status_code == 401
    _still_answers(app, headers)


def test_oversized_body_is_413(ms):
    app, headers = ms
    from cc_backend.server.routes_metricstore import WRITE_BODY_LIMIT

    r = app.post("/api/write?cluster=fritz", content=b"#" * (WRITE_BODY_LIMIT + 1), headers=headers)
    assert r.status_code == 413 and str(WRITE_BODY_LIMIT) in r.json()["error"]
    _still_answers(app, headers)


def test_write_takes_more_than_the_general_body_limit(ms):
    app, headers = ms
    start = _now_minute() - 60
    # 9 MiB of comments plus one line: above main.max-request-body-size (8 MiB), below the write limit
    body = b"# padding\n" * (9 * 1024 * 1024 // 10) + _lines("f0103", "cpu_load", start, [7.0]).encode()
    r = app.post("/api/write?cluster=fritz", content=body, headers=headers)
    assert r.status_code == 200, r.text[:200]
    r = app.post("/api/query", json=_query("fritz", start, start + 59,
                                           [{"metric": "cpu_load", "host": "f0103", "resolution": 60}]),
                 headers=headers)
    assert r.json()["results"][0][0]["data"] == [7.0]


@pytest.mark.parametrize("body,field", [
    (b"[1, 2]", "body"),
    (b"{not json", "body"),
    (json.dumps({"from": 1, "to": 2, "queries": []}).encode(), "cluster"),
    (json.dumps({"cluster": "fritz", "from": "x", "to": 2, "queries": []}).encode(), "from"),
    (json.dumps({"cluster": "fritz", "from": 1, "to": 2, "queries": "cpu_load"}).encode(), "queries"),
])
def test_bad_query_names_the_field(ms, body, field):
    app, headers = ms
    r = app.post("/api/query", content=body, headers=headers)
    assert r.status_code == 400, r.text
    assert field in r.json()["error"]
    _still_answers(app, headers)


def test_free_and_debug(ms):
    app, headers = ms
    start = _now_minute() - 3 * 3600
    assert app.post("/api/write?cluster=fritz", content=_lines("f0104", "cpu_load", start, [1.0, 2.0]).encode(),
                    headers=headers).status_code == 200
    r = app.get("/api/debug?selector=fritz:f0104", headers=headers)
    assert r.status_code == 200 and "f0104" in json.dumps(r.json())
    r = app.post("/api/free?to=1", json=[["fritz", "f0104"]], headers=headers)
    assert r.status_code == 200 and r.text == "buffers freed: 0\n"
    # whole buffers are freed: a time well after the samples frees theirs
    r = app.post(f"/api/free/?to={_now_minute() + 7 * 86400}", json=[["fritz", "f0104"]], headers=headers)
    assert r.status_code == 200 and r.text.startswith("buffers freed: ") and int(r.text.split(": ")[1]) >= 1
    r = app.post("/api/query", json=_query("fritz", start, start + 119,
                                           [{"metric": "cpu_load", "host": "f0104", "resolution": 60}]),
                 headers=headers)
    assert all(v is None for v in r.json()["results"][0][0].get("data") or [None])
    r = app.post("/api/free", json=[["fritz"]], headers=headers)
    assert r.status_code == 400 and "to" in r.json()["error"]
    r = app.post("/api/free?to=abc", json=[["fritz"]], headers=headers)
    assert r.status_code == 400 and "to" in r.json()["error"]
    r = app.post("/api/free?to=5", json=[["fritz", 1]], headers=headers)
    assert r.status_code == 400 and "body[0]" in r.json()["error"]
    _still_answers(app, headers)


def test_healthcheck_answers_like_cc_metric_store(ms):
    app, headers = ms
    start = _now_minute() - 120
    body = "".join(_lines("f0105", m, start, [1.0, 1.0, 1.0]) for m in ("cpu_load", "mem_used"))
    assert app.post("/api/write?cluster=fritz", content=body.encode(), headers=headers).status_code == 200
    request = {"cluster": "fritz", "nodes": ["f0105", "f0106"], "metric-names": ["cpu_load", "mem_used", "ipc"]}
    r = app.request("GET", "/api/healthcheck", content=json.dumps(request).encode(), headers=headers)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["f0105"]["State"] == "partial"
    assert json.loads(answer["f0105"]["HealthMetrics"]) == {"missing": ["ipc"], "degraded": []}
    assert answer["f0106"]["State"] == "failed"
    r = app.request("GET", "/api/healthcheck", content=b'{"cluster": "fritz", "nodes": "f0105"}', headers=headers)
    assert r.status_code == 400 and "nodes" in r.json()["error"]
    r = app.request("GET", "/api/healthcheck", content=b'{"cluster": "fritz", "hosts": []}', headers=headers)
    assert r.status_code == 400 and "hosts" in r.json()["error"]


# ------------------------------------------------------------------------------ limits of every input

_LONG = "x" * 257  # one more than any name may hold (lineproto.MAX_NAME)


def _bad_requests() -> list[tuple[str, str, object, str]]:
    """(method, path, JSON body, the field the 400 must name): one input over each limit of these routes."""
    from cc_backend.metricstore.query import MAX_QUERIES
    from cc_backend.metricstore.store import MAX_SELECTOR_PARTS, MAX_SELECTORS
    from cc_backend.nodes import MAX_HEALTH_PAIRS, MAX_METRICS, MAX_NODES, MAX_STATES

    q = {"cluster": "fritz", "from": 1, "to": 2}
    one = [{"metric": "cpu_load", "host": "f0101"}]
    health = {"cluster": "fritz", "nodes": ["f0101"], "metric-names": ["cpu_load"]}
    node = {"hostname": "f0101", "states": ["idle"]}
    pairs = MAX_HEALTH_PAIRS // MAX_METRICS + 1
    return [
        ("POST", "/api/query", {**q, "from": 10**30}, "from"),
        ("POST", "/api/query", {**q, "to": 2.5}, "to"),
        ("POST", "/api/query", {**q, "from": True}, "from"),
        ("POST", "/api/query", {**q, "cluster": _LONG}, "cluster"),
        ("POST", "/api/query", {**q, "queries": [{"metric": "cpu_load", "host": _LONG}]}, "queries[0].host"),
        ("POST", "/api/query", {**q, "queries": [{**one[0], "resolution": 2**64}]}, "queries[0].resolution"),
        ("POST", "/api/query", {**q, "queries": [{**one[0], "type": "core", "type-ids": [_LONG]}]},
         "queries[0].type-ids"),
        ("POST", "/api/query", {**q, "queries": one * (MAX_QUERIES + 1)}, "queries"),
        ("POST", "/api/query", {**q, "for-all-nodes": "cpu_load"}, "for-all-nodes"),
        ("POST", "/api/free?to=5", None, "body"),
        ("POST", "/api/free?to=5", [["fritz"]] * (MAX_SELECTORS + 1), "body"),
        ("POST", "/api/free?to=5", [["fritz"] * (MAX_SELECTOR_PARTS + 1)], "body[0]"),
        ("POST", "/api/free?to=5", [["fritz", _LONG]], "body[0]"),
        ("POST", "/api/free?to=" + "1" * 41, [["fritz"]], "to"),
        ("GET", "/api/debug?selector=fritz:" + _LONG, None, "selector"),
        ("GET", "/api/healthcheck", {**health, "cluster": "c" * 300}, "cluster"),
        ("GET", "/api/healthcheck", {**health, "nodes": ["f0101"] * (MAX_NODES + 1)}, "nodes"),
        ("GET", "/api/healthcheck", {**health, "nodes": [_LONG]}, "nodes[0]"),
        ("GET", "/api/healthcheck", {**health, "metric-names": ["m"] * (MAX_METRICS + 1)}, "metric-names"),
        ("GET", "/api/healthcheck", {**health, "nodes": ["h"] * pairs, "metric-names": ["m"] * MAX_METRICS}, "nodes"),
        ("GET", "/api/healthcheck", {**health, _LONG * 40: 1}, "unknown field '" + "x" * 256 + "'"),
        ("POST", "/api/nodestate/", {"cluster": "fritz", "nodes": [node] * (MAX_NODES + 1)}, "nodes"),
        ("POST", "/api/nodestate/", {"cluster": "fritz", "nodes": [{**node, "states": ["idle"] * (MAX_STATES + 1)}]},
         "nodes[0].states"),
        ("POST", "/api/nodestate/", {"cluster": "fritz", "nodes": [{**node, "states": [_LONG]}]}, "nodes[0].states[0]"),
        ("POST", "/api/healthcheck", {"cluster": "fritz", "nodes": [{**node, "states": [_LONG]}]}, "nodes[0].states[0]"),
    ]


@pytest.mark.parametrize("case", range(len(_bad_requests())))
def test_every_input_is_bounded_and_named(ms, case):
    method, path, body, field = _bad_requests()[case]
    app, headers = ms
    content = json.dumps(body).encode() if body is not None or path.startswith("/api/free") else None
    r = app.request(method, path, content=content, headers=headers)
    assert r.status_code == 400, (path, field, r.text[:300])
    error = r.json()["error"]
    assert field in error and len(error) < 400, (field, error[:300])
    _still_answers(app, headers)


def test_query_for_all_nodes_counts_hosts_times_metrics(ms):
    app, headers = ms
    from cc_backend.metricstore.query import MAX_QUERIES

    start = _now_minute() - 60
    body = "".join(_lines(h, "cpu_load", start, [1.0]) for h in ("f0501", "f0502"))
    assert app.post("/api/write?cluster=fritz", content=body.encode(), headers=headers).status_code == 200
    hosts = len(app.post("/api/query", json={**_query("fritz", start, start, []), "for-all-nodes": ["cpu_load"]},
                         headers=headers).json()["queries"])
    assert hosts >= 2
    metrics = MAX_QUERIES // hosts + 1  # the product passes the limit although each list alone is short
    r = app.post("/api/query", json={**_query("fritz", start, start, []), "for-all-nodes": ["cpu_load"] * metrics},
                 headers=headers)
    assert r.status_code == 400 and "for-all-nodes" in r.json()["error"], r.text[:300]
    r = app.post("/api/query", json={**_query("fritz", start, start, []), "for-all-nodes": ["cpu_load"]},
                 headers=headers)
    assert r.status_code == 200 and ["f0501", "cpu_load"] in [[q["host"], q["metric"]] for q in r.json()["queries"]]


def test_free_with_an_empty_list_frees_nothing(ms):
    app, headers = ms
    start = _now_minute() - 3 * 3600
    assert app.post("/api/write?cluster=fritz", content=_lines("f0601", "cpu_load", start, [1.0]).encode(),
                    headers=headers).status_code == 200
    r = app.post(f"/api/free?to={_now_minute() + 7 * 86400}", json=[], headers=headers)
    assert r.status_code == 200 and r.text == "buffers freed: 0\n"
    r = app.post("/api/query", json=_query("fritz", start, start, [{"metric": "cpu_load", "host": "f0601"}]),
                 headers=headers)
    assert r.json()["results"][0][0]["data"] == [1.0]


def test_write_cluster_parameter_is_bounded(ms):
    app, headers = ms
    start = _now_minute() - 60
    r = app.post("/api/write?cluster=" + _LONG, content=_lines("f0701", "cpu_load", start, [1.0]).encode(),
                 headers=headers)
    assert r.status_code == 400 and "cluster" in r.json()["error"] and len(r.json()["error"]) < 400
    _still_answers(app, headers)


def test_unknown_cluster_parameters_add_no_caches(ms):
    """Made-up ?cluster= names share one cache: lines with a cluster tag are stored, untagged ones ignored."""
    app, headers = ms
    start = _now_minute() - 60
    for i in range(50):
        body = _lines("f0801", "cpu_load", start, [float(i)], cluster="fritz") + _lines("f0801", "cpu_load", start, [9.0])
        r = app.post(f"/api/write?cluster=made-up-{i}", content=body.encode(), headers=headers)
        assert r.status_code == 200, r.text
    store = app.runtime.metric_store
    assert len(store._caches) <= 2 and len(store._fast) <= 2  # fritz's parameter (if used) and none
    assert store.ignored["cluster made-up-49"] == 1
    r = app.post("/api/query", json=_query("fritz", start, start, [{"metric": "cpu_load", "host": "f0801"}]),
                 headers=headers)
    assert r.json()["results"][0][0]["data"] == [49.0]


def test_a_huge_write_stays_within_the_memory_cap(ms):
    """64 MiB of lines for made-up hosts cannot allocate beyond memory-cap: the rest is dropped and counted."""
    from cc_backend.metricstore.store import HARD_CAP_PERCENT, MEMORY_CAP_REACHED

    app, headers = ms
    store = app.runtime.metric_store
    store.memory_cap = store.memory_bytes() + 2 * 1024 * 1024
    start = _now_minute() - 60
    body = "".join(f"cpu_load,hostname=m{i:06d} value=1 {start}\n" for i in range(20_000)).encode()
    r = app.post("/api/write?cluster=fritz", content=body, headers=headers)
    assert r.status_code == 200, r.text[:300]
    stats = app.get("/api/debug?selector=nowhere", headers=headers).json()["_stats"]
    assert 0 < stats["ignored"][MEMORY_CAP_REACHED] < 20_000
    assert stats["memoryBytes"] <= store.memory_cap * HARD_CAP_PERCENT // 100
    _still_answers(app, headers)


def _node_states(site) -> dict[str, tuple[str, str, object]]:
    config = json.loads((site / "config.json").read_text())
    engine = create_engine(f"sqlite:///{config['main']['db']}")
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT n.hostname, s.node_state, s.health_state, s.health_metrics FROM node_state s "
            "JOIN node n ON n.id = s.node_id ORDER BY s.id")).all()
    engine.dispose()
    return {host: (state, health, json.loads(metrics) if metrics else None) for host, state, health, metrics in rows}


def test_nodestate_health_from_the_store(ms, site):
    app, headers = ms
    start = _now_minute() - 120
    full = "".join(_lines("f0201", m, start, [1.0, 2.0]) for m in FRITZ_MAIN_METRICS)
    partial = "".join(_lines("f0202", m, start, [1.0, 2.0]) for m in FRITZ_MAIN_METRICS[:5])
    assert app.post("/api/write?cluster=fritz", content=(full + partial).encode(), headers=headers).status_code == 200
    payload = {"cluster": "fritz", "nodes": [
        {"hostname": "f0201", "states": ["allocated"], "cpusAllocated": 72, "jobsRunning": 1},
        {"hostname": "f0202", "states": ["idle"]},
        {"hostname": "f0203", "states": ["mixed"]},
        {"hostname": "f0204", "states": ["down"]},
        {"hostname": "x9999", "states": ["idle"]},
    ]}
    r = app.post("/api/nodestate/", json=payload, headers=headers)
    assert r.status_code == 200 and r.text == ""
    states = _node_states(site)
    assert states["f0201"] == ("allocated", "full", {"missing": [], "degraded": []})
    state, health, metrics = states["f0202"]
    assert (state, health) == ("idle", "partial") and metrics["missing"] == FRITZ_MAIN_METRICS[5:]
    assert states["f0203"][:2] == ("mixed", "failed")
    assert states["f0204"] == ("down", "full", None)
    assert states["x9999"] == ("idle", "failed", None)  # no subcluster: no metrics to expect


def test_healthcheck_post_is_the_nodestate_update(ms, site):
    app, headers = ms
    for method, path in (("POST", "/api/healthcheck"), ("PUT", "/api/healthcheck/")):
        r = app.request(method, path, json={"cluster": "fritz", "nodes": [{"hostname": "f0301", "states": ["down"]}]},
                        headers=headers)
        assert r.status_code == 200, r.text
    assert _node_states(site)["f0301"] == ("down", "full", None)
    r = app.post("/api/healthcheck", json={"cluster": "fritz", "nodes": [{"hostname": "f0301", "x": 1}]},
                 headers=headers)
    assert r.status_code == 400 and "nodes[0]: unknown field 'x'" in r.json()["error"]


# ------------------------------------------------------------------------------------- real server


def test_real_server_write_query_and_errors(start, site, tokens):
    server = start()
    headers = auth(tokens(["api"]))
    start_ts = _now_minute() - 600
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        body = _lines("f0401", "cpu_load", start_ts, [0.5, 1.5, 2.5, 3.5])
        r = client.post("/api/write?cluster=fritz", content=body.encode())
        assert r.status_code == 200 and r.content == b""
        r = client.post("/api/query", json=_query("fritz", start_ts, start_ts + 239,
                                                  [{"metric": "cpu_load", "host": "f0401", "resolution": 60}]))
        assert r.status_code == 200 and r.json()["results"][0][0]["data"] == [0.5, 1.5, 2.5, 3.5]
        r = client.post("/api/write?cluster=fritz", content=b"cpu_load,hostname=f0401 value= 12\n")
        assert r.status_code == 400 and "line 1" in r.json()["error"]
        r = client.post("/api/write?cluster=fritz", content=b"x" * (64 * 1024 * 1024 + 1))
        assert r.status_code == 413
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:  # 413 closes the connection
        r = client.post("/api/write?cluster=fritz", content=body.encode())
        assert r.status_code == 200
        r = client.post("/api/write?cluster=fritz", content=body.encode(), headers={"X-Auth-Token": ""})
        assert r.status_code == 401
        r = client.post("/api/write?cluster=fritz", content=body.encode(),
                        headers={"X-Auth-Token": tokens(["support", "api"])})
        assert r.status_code == 401
        payload = {"cluster": "fritz", "nodes": [{"hostname": "f0401", "states": ["idle"]},
                                                 {"hostname": "f0402", "states": ["idle"]}]}
        r = client.post("/api/nodestate/", json=payload)
        assert r.status_code == 200
    states = _node_states(site)
    assert states["f0401"][:2] == ("idle", "partial") and "cpu_load" not in states["f0401"][2]["missing"]
    assert states["f0402"][:2] == ("idle", "failed")
