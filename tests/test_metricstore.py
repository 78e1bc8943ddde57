"""Built-in metric store: line protocol, buffers, cc-metric-store queries with topology aggregation, health, limits."""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cc_backend.archive.cluster import ClusterRegistry, load_cluster_config
from cc_backend.config.sections import MetricStoreConfig
from cc_backend.errors import InvalidInput
from cc_backend.metricstore.lineproto import Sample, parse_lines, to_seconds
from cc_backend.metricstore.store import CHUNK, MetricStore

ARCHIVE = Path(__file__).parent / "fixtures" / "peer-data" / "archive"
T0 = 1_700_000_040  # a multiple of 60 (every fixture metric has a 60 s timestep)


def _registry() -> ClusterRegistry:
    return ClusterRegistry(
        load_cluster_config(json.loads((ARCHIVE / c / "cluster.json").read_text()), c) for c in ("emmy", "fritz", "alex")
    )


@pytest.fixture(scope="module")
def registry() -> ClusterRegistry:
    return _registry()


@pytest.fixture
def store(registry: ClusterRegistry) -> MetricStore:
    return MetricStore(registry)


def _q(store: MetricStore, start: int, end: int, **query: Any) -> list[dict[str, Any]]:
    query.setdefault("host", "f0101")
    res = store.query({"cluster": query.pop("cluster", "fritz"), "from": start, "to": end, "queries": [query]})
    return res["results"][0]


# -- line protocol -------------------------------------------------------------------------------------


def test_parse_every_field_type_and_tag() -> None:
    body = (
        b"# a comment\n"
        b"\n"
        b"cpu_load,cluster=fritz,hostname=f0101,type=node value=1.5 1700000000\n"
        b"flops_any,hostname=f0101,type=hwthread,type-id=3 value=12i 1700000000000\n"
        b"mem_bw,host=f0102,type=socket,type-id=1,stype=core,stype-id=7 value=7u 1700000000000000\n"
        b"ib_recv,hostname=f0103,extra=ignored value=-2.5e3 1700000000000000000\r\n"
    )
    samples = parse_lines(body, cluster="fritz")
    assert samples == [
        Sample("fritz", "f0101", "cpu_load", None, None, None, None, 1.5, 1700000000),
        Sample("fritz", "f0101", "flops_any", "hwthread", "3", None, None, 12.0, 1700000000),
        Sample("fritz", "f0102", "mem_bw", "socket", "1", "core", "7", 7.0, 1700000000),
        Sample("fritz", "f0103", "ib_recv", None, None, None, None, -2500.0, 1700000000),
    ]


def test_parse_escapes_and_missing_timestamp() -> None:
    body = b"my\\ metric,cluster=c\\,1,hostname=h\\=x,type=accelerator,type-id=00000000:01:00.0 value=3\n"
    (s,) = parse_lines(body)
    assert (s.metric, s.cluster, s.host, s.type, s.type_id, s.value) == (
        "my metric", "c,1", "h=x", "accelerator", "00000000:01:00.0", 3.0)
    import time

    assert abs(s.ts - time.time()) < 5


def test_timestamp_units() -> None:
    assert to_seconds(1_700_000_000) == 1_700_000_000
    assert to_seconds(1_700_000_000_123) == 1_700_000_000
    assert to_seconds(1_700_000_000_123_456) == 1_700_000_000
    assert to_seconds(1_700_000_000_123_456_789) == 1_700_000_000


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (b"cpu_load,hostname=a other=1 1700000000", "unknown field 'other'"),
        (b"cpu_load,hostname=a value=1,x=2 1700000000", "exactly one field"),
        (b"cpu_load,hostname=a value=abc 1700000000", "not a number"),
        (b"cpu_load,hostname=a value=\"s\" 1700000000", "not a number"),
        (b"cpu_load,hostname=a value=1 17000x", "not an integer"),
        (b"cpu_load,hostname=a", "no field set"),
        (b"cpu_load value=1 1700000000", "no hostname tag"),
        (b"cpu_load,hostname=a,type=socket value=1 1700000000", "type and type-id"),
        (b"cpu_load,hostname=a,broken value=1 1700000000", "not key=value"),
        (b"cpu_load,hostname=a value=1 1700000000 extra", "after the timestamp"),
        (b"cpu_load,hostname=" + b"x" * 300 + b" value=1 1", "longer than 256"),
        (b"cpu_load,hostname=a value=-1u 1", "negative"),
    ],
)
def test_parse_errors_name_the_line(line: bytes, why: str, store: MetricStore) -> None:
    body = b"cpu_load,hostname=ok value=1 1700000000\n\n" + line + b"\n"
    with pytest.raises(InvalidInput) as exc:
        parse_lines(body, cluster="fritz")
    assert exc.value.field == "line 3"
    assert exc.value.message.startswith("line 3: ") and why in exc.value.message
    # the store's fast path reports the same and stores nothing of the body
    with pytest.raises(InvalidInput) as exc2:
        store.write_lines(body, "fritz")
    assert exc2.value.field == "line 3" and why in exc2.value.message
    assert list(store.iter_buffers()) == []


def test_missing_cluster_is_an_error() -> None:
    with pytest.raises(InvalidInput, match="no cluster tag"):
        parse_lines(b"cpu_load,hostname=a value=1 1700000000")


@pytest.mark.parametrize(("tags", "field"), [(b"cluster=../x,hostname=a", "cluster"), (b"hostname=a/b", "hostname"),
                                             (b"hostname=a\\\\b", "hostname"), (b"hostname=..", "hostname")])
def test_refused_names(tags: bytes, field: str, store: MetricStore) -> None:
    body = b"cpu_load," + tags + b" value=1 1700000000"
    with pytest.raises(InvalidInput) as exc:
        store.write_lines(body, "fritz")
    assert exc.value.field == "line 1" and field in exc.value.message
    bad = Sample("fritz", "a/b", "cpu_load", None, None, None, None, 1.0, T0)
    bad = bad._replace(host="a/b") if field == "hostname" else bad._replace(cluster="../x", host="f1")
    with pytest.raises(InvalidInput) as exc2:
        store.write([bad])
    assert exc2.value.field == field


def test_unknown_cluster_and_metric_are_ignored(store: MetricStore) -> None:
    body = (b"cpu_load,hostname=f0101 value=1 1700000040\n"
            b"no_such_metric,hostname=f0101 value=1 1700000040\n"
            b"cpu_load,cluster=nowhere,hostname=f0101 value=1 1700000040\n")
    assert store.write_lines(body, "fritz") == 1
    assert store.ignored_samples == 2
    assert store.ignored == {"metric fritz/no_such_metric": 1, "cluster nowhere": 1}


# -- writing and querying ----------------------------------------------------------------------------------


def test_node_round_trip_with_gaps_and_stats(store: MetricStore) -> None:
    lines = [f"cpu_load,hostname=f0101 value={v} {T0 + 60 * i + 7}" for i, v in enumerate([1.0, 2.0, 4.0]) if i != 1]
    lines.append(f"cpu_load,hostname=f0101 value=8 {T0 + 180}")
    assert store.write_lines("\n".join(lines).encode(), "fritz") == 3
    (entry,) = _q(store, T0, T0 + 180, metric="cpu_load")
    assert entry["data"] == [1.0, None, 4.0, 8.0]
    assert entry["from"] == T0 and entry["to"] == T0 + 240 and entry["resolution"] == 60
    assert entry["min"] == 1.0 and entry["max"] == 8.0 and entry["avg"] == pytest.approx(13 / 3)
    # clipping by from/to
    (clip,) = _q(store, T0 + 60, T0 + 120, metric="cpu_load")
    assert clip["data"] == [None, 4.0] and clip["from"] == T0 + 60
    # padding: a window starting before the data is null-padded to `from`
    (early,) = _q(store, T0 - 120, T0 + 60, metric="cpu_load")
    assert early["data"] == [None, None, 1.0, None] and early["from"] == T0 - 120
    # a window far beyond the data is clipped to it, not allocated
    (wide,) = _q(store, 0, 10**10, metric="cpu_load")
    assert wide["data"] == entry["data"] and wide["from"] == T0 and wide["to"] == T0 + 240
    # no stats / no data
    res = store.query({"cluster": "fritz", "from": T0, "to": T0 + 180, "with-data": False,
                       "queries": [{"metric": "cpu_load", "host": "f0101"}]})
    assert "data" not in res["results"][0][0] and res["results"][0][0]["max"] == 8.0


def _hwthread_body(host: str, ts: int, value_of: Any, metric: str = "flops_any", n: int = 72) -> bytes:
    return "\n".join(f"{metric},hostname={host},type=hwthread,type-id={t} value={value_of(t)} {ts}"
                     for t in range(n)).encode()


def test_hwthread_metric_aggregates_to_node_socket_core(registry: ClusterRegistry, store: MetricStore) -> None:
    topo = registry.subcluster("fritz", "main").topology
    store.write_lines(_hwthread_body("f0101", T0, lambda t: t), "fritz")  # flops_any: sum
    store.write_lines(_hwthread_body("f0101", T0, lambda t: t, "clock"), "fritz")  # clock: avg
    (node,) = _q(store, T0, T0, metric="flops_any")
    assert node["data"] == [float(sum(range(72)))]
    (node_avg,) = _q(store, T0, T0, metric="clock")
    assert node_avg["data"] == [pytest.approx(sum(range(72)) / 72)]
    sockets = _q(store, T0, T0, metric="flops_any", type="socket", **{"type-ids": ["0", "1"]})
    assert [e["data"] for e in sockets] == [[float(sum(topo.socket[0]))], [float(sum(topo.socket[1]))]]
    (both,) = _q(store, T0, T0, metric="flops_any", type="socket", aggreg=True, **{"type-ids": ["0", "1"]})
    assert both["data"] == [float(sum(range(72)))]
    (core5,) = _q(store, T0, T0, metric="clock", type="core", **{"type-ids": [5]})
    assert core5["data"] == [pytest.approx(sum(topo.core[5]) / len(topo.core[5]))]
    md = _q(store, T0, T0, metric="flops_any", type="memoryDomain")
    assert [e["data"][0] for e in md] == [float(sum(m)) for m in topo.memory_domain]
    (hw,) = _q(store, T0, T0, metric="flops_any", type="hwthread", **{"type-ids": ["9"]})
    assert hw["data"] == [9.0]


def test_socket_metric_at_node_and_finer_is_an_entry_error(store: MetricStore) -> None:
    store.write_lines(b"mem_bw,hostname=f0101,type=socket,type-id=0 value=10 1700000040\n"
                      b"mem_bw,hostname=f0101,type=socket,type-id=1 value=32 1700000040", "fritz")
    (node,) = _q(store, T0, T0, metric="mem_bw")
    assert node["data"] == [42.0]
    (core,) = _q(store, T0, T0, metric="mem_bw", type="core", **{"type-ids": ["0"]})
    assert "no data" in core["error"] and core["data"] is None
    (other_host,) = _q(store, T0, T0, metric="mem_bw", host="f0199")
    assert "has no data" in other_host["error"]
    (unknown,) = _q(store, T0, T0, metric="nope")
    assert "not configured" in unknown["error"]


def test_accelerators_by_id_and_at_node(store: MetricStore) -> None:
    ids = ["00000000:01:00.0", "00000000:25:00.0"]
    body = "\n".join(f"acc_power,hostname=a0121,type=accelerator,type-id={a} value={100 * (i + 1)} {T0}"
                     for i, a in enumerate(ids)).encode()
    store.write_lines(body, "alex")
    (one,) = _q(store, T0, T0, cluster="alex", host="a0121", metric="acc_power", type="accelerator",
                **{"type-ids": [ids[1]]})
    assert one["data"] == [200.0]
    (node,) = _q(store, T0, T0, cluster="alex", host="a0121", metric="acc_power")
    assert node["data"] == [300.0]


def test_subtype_levels(store: MetricStore) -> None:
    store.write_lines(b"mem_bw,hostname=f0101,type=socket,type-id=0,stype=core,stype-id=1 value=5 1700000040\n"
                      b"mem_bw,hostname=f0101,type=socket,type-id=0,stype=core,stype-id=2 value=6 1700000040", "fritz")
    entries = _q(store, T0, T0, metric="mem_bw", type="socket", subtype="core",
                 **{"type-ids": ["0"], "subtype-ids": ["1", "2"]})
    assert [e["data"] for e in entries] == [[5.0], [6.0]]


def test_resolution_uses_lttb(store: MetricStore) -> None:
    values = [math.sin(i / 10) * 10 for i in range(600)]
    values[333] = 99.0  # a peak LTTB must keep
    body = "\n".join(f"cpu_load,hostname=f0101 value={v} {T0 + 60 * i}" for i, v in enumerate(values)).encode()
    store.write_lines(body, "fritz")
    (entry,) = _q(store, T0, T0 + 60 * 599, metric="cpu_load", resolution=600)
    assert entry["resolution"] == 600 and len(entry["data"]) == 60
    assert 99.0 in entry["data"] and entry["data"][0] == pytest.approx(values[0])
    assert entry["max"] == 99.0


def test_for_all_nodes(store: MetricStore) -> None:
    store.write_lines(b"cpu_load,hostname=f0102 value=2 1700000040\ncpu_load,hostname=f0101 value=1 1700000040", "fritz")
    res = store.query({"cluster": "fritz", "from": T0, "to": T0, "for-all-nodes": ["cpu_load", "mem_used"]})
    assert [q["host"] for q in res["queries"]] == ["f0101", "f0101", "f0102", "f0102"]
    assert [r[0].get("data") for r in res["results"]] == [[1.0], None, [2.0], None]


@pytest.mark.parametrize(("request_", "field"), [
    ({"from": 1, "to": 2, "queries": []}, "cluster"),
    ({"cluster": "fritz", "from": 3, "to": 2, "queries": []}, "from"),
    ({"cluster": "fritz", "from": "x", "to": 2, "queries": []}, "from"),
    ({"cluster": "fritz", "from": 1, "to": 2, "queries": [{"metric": "cpu_load", "host": "a", "type": "rack"}]},
     "queries[0].type"),
    ({"cluster": "fritz", "from": 1, "to": 2, "queries": [{"host": "a"}]}, "queries[0].metric"),
    ({"cluster": "fritz", "from": 1, "to": 2, "queries": [{"metric": "m", "host": "a"}] * 10_001}, "queries"),
])
def test_malformed_queries(store: MetricStore, request_: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        store.query(request_)
    assert exc.value.field == field


# -- retention, memory cap, health -------------------------------------------------------------------------


def test_free_and_retention_drop_oldest_chunks(registry: ClusterRegistry) -> None:
    config = MetricStoreConfig.model_validate({"retention-in-memory": "24h", "memory-cap": 1})
    store = MetricStore(registry, config)
    n = 3 * CHUNK
    body = "\n".join(f"cpu_load,hostname=f0101 value={i} {T0 + 60 * i}" for i in range(n)).encode()
    store.write_lines(body, "fritz")
    assert store.memory_bytes() > 3 * CHUNK * 4
    before = store.memory_bytes()
    assert store.free(T0 + 60 * CHUNK) == 1  # exactly the first chunk is all older
    (entry,) = _q(store, T0, T0 + 60 * (n - 1), metric="cpu_load")
    assert entry["from"] == T0 and entry["data"][CHUNK - 1] is None and entry["data"][CHUNK] == float(CHUNK)
    res = store.query({"cluster": "fritz", "from": T0, "to": T0 + 60 * n, "with-padding": False,
                       "queries": [{"metric": "cpu_load", "host": "f0101"}]})
    unpadded = res["results"][0][0]
    assert unpadded["from"] == T0 + 60 * CHUNK and unpadded["data"][0] == float(CHUNK)  # starts at the data held
    assert len(unpadded["data"]) == 2 * CHUNK
    assert store.memory_bytes() < before
    # retention: everything older than 24 h before "now" goes, in whole chunks
    now = T0 + 60 * n + 24 * 3600
    assert store.enforce_limits(now) == 2
    assert store.memory_bytes() == 0 + store.memory_bytes() and not any(True for _ in store.iter_buffers())
    assert store.health("fritz", ["f0101"], ["cpu_load"], now=now)["f0101"]["state"] == "failed"


def test_limits_apply_without_a_metric_store_section(registry: ClusterRegistry) -> None:
    """docs/live-monitoring.md: without the section the store keeps 48 h, caps at 8 GB, checked every 60 s."""
    from types import SimpleNamespace

    from cc_backend.server.serving import LiveServices

    store = MetricStore(registry, None)
    assert store.retention == 48 * 3600 and store.memory_cap == 8 * 1024**3
    now = int(time.time())
    store.write_lines(f"cpu_load,hostname=f0101 value=1 {now - 57 * 3600}\n"
                      f"cpu_load,hostname=f0102 value=2 {now - 60}".encode(), "fritz")
    runtime = SimpleNamespace(metric_store=store, config=SimpleNamespace(metric_store=None))
    (task,) = LiveServices(runtime).tasks()  # type: ignore[arg-type]
    assert task.interval == 60
    task.run()  # the 57 h old sample's chunk (8.5 h long) ended more than 48 h ago
    assert store.debug(["fritz"])["fritz"]["f0101"]["node"]["cpu_load"]["chunks"] == 0
    assert store.debug(["fritz"])["fritz"]["f0102"]["node"]["cpu_load"]["chunks"] == 1


def test_one_write_cannot_pass_the_memory_cap(registry: ClusterRegistry) -> None:
    """A body asking for far more new buffers than memory-cap allows: those beyond 125 % are dropped, counted."""
    from cc_backend.metricstore.store import CHUNK_BYTES, HARD_CAP_PERCENT, MEMORY_CAP_REACHED, SERIES_BYTES

    store = MetricStore(registry)
    store.memory_cap = 1000 * SERIES_BYTES + 100 * CHUNK_BYTES
    # 1,000 hosts, each a new series and a new chunk: room for about 300 of them
    body = "\n".join(f"cpu_load,hostname=h{i:04d} value={i} {T0}" for i in range(1000)).encode()
    stored = store.write_lines(body, "fritz")
    limit = store.memory_cap * HARD_CAP_PERCENT // 100
    assert 100 < stored < 400 and store.memory_bytes() <= limit
    assert store.ignored[MEMORY_CAP_REACHED] == 1000 - stored and store.ignored_samples == 1000 - stored
    (entry,) = _q(store, T0, T0, metric="cpu_load", host="h0000")
    assert entry["data"] == [0.0]  # the first ones are stored
    # samples for chunks that exist still land; after the retention task freed memory new chunks are taken again
    assert store.write_lines(f"cpu_load,hostname=h0000 value=5 {T0 + 60}".encode(), "fritz") == 1
    store.memory_cap = 10**12
    assert store.write_lines(f"cpu_load,hostname=h0999 value=7 {T0}".encode(), "fritz") == 1


def test_num_workers_and_debug_are_accepted_and_unused(registry: ClusterRegistry, tmp_path: Path) -> None:
    """docs/live-monitoring.md: accepted for upstream compatibility, not used."""
    dump = tmp_path / "dump.json"
    config = MetricStoreConfig.model_validate({"retention-in-memory": "1h", "memory-cap": 1, "num-workers": 4,
                                               "debug": {"dump-to-file": str(dump), "gops": True}})
    store = MetricStore(registry, config)
    assert store.write_lines(b"cpu_load,hostname=f0101 value=1 1700000040", "fritz") == 1
    store.close()
    assert not dump.exists()


def test_memory_cap_frees_oldest_first(registry: ClusterRegistry) -> None:
    store = MetricStore(registry)
    for host, offset in (("f0101", 0), ("f0102", CHUNK)):
        body = "\n".join(f"cpu_load,hostname={host} value=1 {T0 + 60 * (offset + i)}" for i in range(CHUNK)).encode()
        store.write_lines(body, "fritz")
    store.memory_cap = store.memory_bytes() - 1  # one chunk too many
    assert store.enforce_limits(T0) == 1
    assert store.debug(["fritz"])["fritz"]["f0101"]["node"]["cpu_load"]["chunks"] == 0
    assert store.debug(["fritz"])["fritz"]["f0102"]["node"]["cpu_load"]["chunks"] == 1


def test_free_with_selectors(store: MetricStore) -> None:
    store.write_lines(b"cpu_load,hostname=f0101 value=1 1700000040\ncpu_load,hostname=f0102 value=1 1700000040", "fritz")
    assert store.free(T0 + 60 * CHUNK * 2, [["fritz", "f0102"]]) == 1
    assert store.debug(["fritz"])["fritz"]["f0101"]["node"]["cpu_load"]["chunks"] == 1
    with pytest.raises(InvalidInput):
        store.free(0, [[1, 2]])  # type: ignore[list-item]


def test_ignored_names_are_bounded(store: MetricStore) -> None:
    from cc_backend.metricstore.store import IGNORED_OTHERS, MAX_IGNORED_KEYS

    n = MAX_IGNORED_KEYS + 5
    body = "\n".join(f"m{i},hostname=f0101 value=1 1700000040" for i in range(n)).encode()
    assert store.write_lines(body, "fritz") == 0
    assert len(store.ignored) == MAX_IGNORED_KEYS + 1 and store.ignored[IGNORED_OTHERS] == 5
    assert sum(store.ignored.values()) == store.ignored_samples == n


def test_free_selectors_checked_once_in_the_store(store: MetricStore) -> None:
    from cc_backend.metricstore.store import MAX_SELECTORS, parse_selectors

    store.write_lines(b"cpu_load,hostname=f0101 value=1 1700000040", "fritz")
    assert store.free(T0 + 60 * CHUNK * 2, []) == 0  # an empty list selects nothing
    for bad, field in ((None, "body"), ({}, "body"), ([["fritz"]] * (MAX_SELECTORS + 1), "body"),
                       ([["fritz", "x" * 257]], "body[0]"), ([["a"] * 7], "body[0]")):
        with pytest.raises(InvalidInput) as exc:
            store.free(0, bad)
        assert exc.value.field == field
    assert parse_selectors([["fritz", "f0101", "socket", "0"]]) == [["fritz", "f0101", "socket", "0"]]
    assert store.free(T0 + 60 * CHUNK * 2, [["fritz", "f0101"], ["nowhere"]]) == 1
    with pytest.raises(InvalidInput) as exc:
        store.debug(["fritz", "x" * 257])
    assert exc.value.field == "selector"


def test_health_states(store: MetricStore) -> None:
    now = T0 + 3600
    store.write_lines(f"cpu_load,hostname=f0101 value=1 {now}\nmem_used,hostname=f0101 value=1 {now}\n"
                      f"cpu_load,hostname=f0102 value=1 {now}\nmem_used,hostname=f0102 value=1 {now - 600}\n"
                      f"flops_any,hostname=f0103,type=hwthread,type-id=0 value=1 {now}".encode(), "fritz")
    health = store.health("fritz", ["f0101", "f0102", "f0103", "f0999"], ["cpu_load", "mem_used", "flops_any"], now=now)
    assert health["f0101"] == {"state": "partial", "metrics": {"missing": ["flops_any"], "degraded": []}}
    assert health["f0102"] == {"state": "partial", "metrics": {"missing": ["flops_any"], "degraded": ["mem_used"]}}
    assert health["f0103"]["metrics"]["missing"] == ["cpu_load", "mem_used"]
    assert health["f0999"] == {"state": "failed", "metrics": {"missing": ["cpu_load", "mem_used", "flops_any"],
                                                               "degraded": []}}
    full = store.health("fritz", ["f0101"], ["cpu_load", "mem_used"], now=now)
    assert full["f0101"]["state"] == "full"


# -- checkpoint interface, listeners, threads ---------------------------------------------------------------


def test_iter_buffers_load_buffer_round_trip(registry: ClusterRegistry, store: MetricStore) -> None:
    store.write_lines(_hwthread_body("f0101", T0, lambda t: t / 2), "fritz")
    body = "\n".join(f"cpu_load,hostname=f0102 value={i} {T0 + 60 * i}" for i in range(CHUNK + 5) if i != 3)
    store.write_lines(body.encode(), "fritz")
    buffers = list(store.iter_buffers())
    assert len(buffers) == 73
    run = next(b for b in buffers if b[1] == "f0102")
    assert run[2] == () and run[4] == T0 and run[5] == 60 and len(run[6]) == CHUNK + 5 and math.isnan(run[6][3])
    copy = MetricStore(registry)
    for b in buffers:
        assert copy.load_buffer(*b) == int(np.count_nonzero(~np.isnan(b[6])))
    assert sorted((b[:6], b[6].tobytes()) for b in copy.iter_buffers()) == sorted((b[:6], b[6].tobytes()) for b in buffers)
    req = {"cluster": "fritz", "from": T0, "to": T0 + 60 * CHUNK,
           "queries": [{"metric": "flops_any", "host": "f0101"}, {"metric": "cpu_load", "host": "f0102"}]}
    assert copy.query(req) == store.query(req)
    # merging keeps values the loaded array does not have
    copy.load_buffer("fritz", "f0102", (), "cpu_load", T0 + 60 * 3, 60, np.array([33.0], dtype=np.float32))
    (entry,) = _q(copy, T0, T0 + 60 * 4, host="f0102", metric="cpu_load")
    assert entry["data"] == [0.0, 1.0, 2.0, 33.0, 4.0]
    assert copy.load_buffer("nowhere", "h", (), "cpu_load", T0, 60, np.ones(3, np.float32)) == 0


def test_write_samples_and_listener(store: MetricStore) -> None:
    seen: list[list[Sample]] = []
    store.add_write_listener(seen.append)
    samples = [Sample("fritz", "f0101", "cpu_load", None, None, None, None, 2.5, T0),
               Sample("fritz", "f0101", "nope", None, None, None, None, 1.0, T0),
               Sample("fritz", "f0101", "mem_bw", "socket", "0", None, None, 3.0, T0 * 1000)]
    assert store.write(samples) == 2
    assert seen == [[samples[0], samples[2]]]
    store.write_lines(b"cpu_load,hostname=f0102 value=4 1700000040", "fritz")
    assert seen[1] == [Sample("fritz", "f0102", "cpu_load", None, None, None, None, 4.0, T0)]
    (entry,) = _q(store, T0, T0, metric="mem_bw", type="socket", **{"type-ids": ["0"]})
    assert entry["data"] == [3.0]


def test_threads_write_and_read_concurrently(store: MetricStore) -> None:
    errors: list[BaseException] = []
    per_thread = 40

    def writer(w: int) -> None:
        try:
            for step in range(per_thread):
                body = "\n".join(f"cpu_load,hostname=f0{w}{h:02d} value={step} {T0 + 60 * step}" for h in range(50))
                store.write_lines(body.encode(), "fritz")
        except BaseException as exc:  # noqa: BLE001 - the test reports any failure
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(30):
                store.query({"cluster": "fritz", "from": T0, "to": T0 + 60 * per_thread, "for-all-nodes": ["cpu_load"]})
                store.health("fritz", store.hosts("fritz"), ["cpu_load"])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(1, 5)] + [threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.written == 4 * 50 * per_thread
    res = store.query({"cluster": "fritz", "from": T0, "to": T0 + 60 * (per_thread - 1), "for-all-nodes": ["cpu_load"]})
    assert len(res["results"]) == 200
    assert all(r[0]["data"] == [float(i) for i in range(per_thread)] for r in res["results"])


def test_whole_body_fast_path_agrees_with_the_exact_parser(store: MetricStore) -> None:
    seen: list[list[Sample]] = []
    store.add_write_listener(seen.append)
    lines = [f"cpu_load,hostname=f01{h:02d} value={h}.5 {T0}" for h in range(1, 6)]
    lines.append(f"not_a_metric,hostname=f0101 value=1 {T0}")
    body = "\n".join(lines).encode()
    assert store.write_lines(body, "fritz") == 5  # first time: exact parser, keys get cached
    assert store._fast["fritz"][1], "keys of the home cluster are cached for the fast path"
    again = body.replace(f" {T0}".encode(), f" {(T0 + 60) * 1000}".encode()).replace(b"\n", b"\r\n") + b"\r\n"
    assert store.write_lines(again, "fritz") == 5  # second time: whole-body path (ms, CRLF, ignored metric)
    assert seen[0] == [s._replace(ts=T0) for s in seen[1]] and seen[1][0].ts == T0 + 60
    assert store.ignored_samples == 2
    (entry,) = _q(store, T0, T0 + 60, metric="cpu_load", host="f0103")
    assert entry["data"] == [3.5, 3.5]
    # mixed timestamps in one body
    store.write_lines(f"cpu_load,hostname=f0101 value=7 {T0 + 120}\ncpu_load,hostname=f0102 value=8 {T0 + 180}".encode(),
                      "fritz")
    (e1,) = _q(store, T0 + 120, T0 + 180, metric="cpu_load", host="f0101")
    (e2,) = _q(store, T0 + 120, T0 + 180, metric="cpu_load", host="f0102")
    assert e1["data"] == [7.0] and e1["from"] == T0 + 120  # `to` is clipped to the newest sample
    assert e2["data"] == [None, 8.0] and e2["from"] == T0 + 120


@pytest.mark.parametrize(("body", "lineno"), [
    (b"cpu_load,hostname=f0101 value=1 1700000040\ncpu_load,hostname=f0101 value=1x 1700000040", 2),
    (b"cpu_load,hostname=f0101 value=1 value=2\ncpu_load,hostname=f0101 3 1700000040", 1),
    (b"cpu_load,hostname=f0101 xvalue=1 1700000040\ncpu_load,hostname=f0101 value=2 1700000040", 1),
    (b"cpu_load,hostname=f0101 value=1 1700000040\ncpu_load,hostname=f0101 value=2 -1700000040", 2),
    (b"cpu_load,hostname=f0101 value=1 1700000040\ncpu_load,hostname=f0101 value=2=3 1700000040", 2),
    (b"cpu_load,hostname=f0101 value=1\n1700000040", 2),  # looks like one line to split()
    (b"cpu_load,hostname=f0101 value=1e 1700000040", 1),
])
def test_fast_path_still_rejects_malformed_lines(store: MetricStore, body: bytes, lineno: int) -> None:
    store.write_lines(b"cpu_load,hostname=f0101 value=1 1700000040", "fritz")  # key now cached
    with pytest.raises(InvalidInput) as exc:
        store.write_lines(body, "fritz")
    assert exc.value.field == f"line {lineno}"


class _RecordingJournal:
    def __init__(self) -> None:
        self.bodies: list[tuple[bytes, str | None, int | None]] = []
        self.batches: list[list[Sample]] = []

    def append(self, samples: list[Sample]) -> None:
        self.batches.append(list(samples))

    def append_lines(self, body: bytes, cluster: str | None = None, received: int | None = None) -> None:
        self.bodies.append((body, cluster, received))


def test_journal_gets_accepted_bodies_as_sent(registry: ClusterRegistry, store: MetricStore) -> None:
    journal = _RecordingJournal()
    store.set_journal(journal)
    body = b"cpu_load,hostname=f0101 value=1 1700000040\ncpu_load,hostname=f0101 value=2"
    store.write_lines(body, "fritz")
    store.write_lines(b"not_a_metric,hostname=f0101 value=1 1700000040", "fritz")  # nothing stored: not logged
    with pytest.raises(InvalidInput):
        store.write_lines(b"cpu_load,hostname=f0101 value=x 1", "fritz")
    assert [(b, c) for b, c, _ in journal.bodies] == [(body, "fritz")]
    received = journal.bodies[0][2]
    assert received is not None
    # replaying the logged body into a fresh store gives the same data (the line without a time at `received`)
    replica = MetricStore(registry)
    replica.write_lines(body, "fritz", received)
    for target in (store, replica):
        (entry,) = _q(target, received, received, metric="cpu_load")
        assert entry["data"] == [2.0] and entry["from"] == received // 60 * 60
    sample = Sample("fritz", "f0102", "cpu_load", None, None, None, None, 3.0, T0)
    store.write([sample])
    assert journal.batches == [[sample]]


def test_iter_buffers_since_debug_and_hosts(store: MetricStore) -> None:
    n = 2 * CHUNK + 10
    body = "\n".join(f"cpu_load,hostname=f0102 value={i} {T0 + 60 * i}" for i in range(n))
    store.write_lines(body.encode(), "fritz")
    store.write_lines(b"mem_bw,hostname=f0101,type=socket,type-id=1 value=3 1700000040", "fritz")
    assert store.hosts("fritz") == ["f0101", "f0102"] and store.hosts("nowhere") == []
    (run,) = [b for b in store.iter_buffers(since=T0 + 60 * (CHUNK + 3)) if b[1] == "f0102"]
    assert run[4] == T0 + 60 * CHUNK and len(run[6]) == CHUNK + 10 and run[6][0] == float(CHUNK)
    dump = store.debug(["fritz", "f0101"])
    assert dump["fritz"] == {"f0101": {"socket1": {"mem_bw": {"timestep": 60, "start": T0, "last": T0, "chunks": 1}}}}
    assert dump["_stats"]["written"] == n + 1
    assert set(store.debug()) == {"emmy", "fritz", "alex", "_stats"}
    store.close()
    assert store.hosts("fritz") == [] and store.memory_bytes() == 0


def test_vectorised_lttb_picks_what_the_reference_picks() -> None:
    from cc_backend.metrics.resampling import lttb
    from cc_backend.metricstore.query import lttb_array

    rng = np.random.default_rng(7)
    for trial in range(60):
        n = int(rng.integers(4, 1500))
        target = int(rng.integers(2, n + 2))
        data = rng.normal(size=n)
        if trial % 3 == 0:
            data[rng.random(n) < 0.25] = np.nan
        if trial % 5 == 0:
            data[: n // 2] = np.nan
        expected = lttb([None if math.isnan(v) else v for v in data.tolist()], target)
        got = lttb_array(data, target)
        assert np.array_equal(np.array([np.nan if v is None else v for v in expected]), got, equal_nan=True), (n, target)
