"""Upstream's job-list URL parameters (cc_backend.jobs.presets): every preset against the peer database, round trips, errors."""

from __future__ import annotations

import sqlite3
import time

import pytest
from support.db import migrated_peer_sqlite

from cc_backend.errors import InvalidInput
from cc_backend.jobs.filter import JobFilter, OrderBy, Page
from cc_backend.jobs.presets import (
    JobListQuery,
    filter_from_query,
    filters_for_query,
    list_url,
    order_from_query,
    page_from_query,
    query_from_filter,
)
from cc_backend.jobs.query import count_jobs, list_jobs


@pytest.fixture(scope="module")
def peer(tmp_path_factory):
    """The upstream peer job.db (544 jobs) migrated, on SQLite: (engine, sqlite3 connection)."""
    engine, path = migrated_peer_sqlite(tmp_path_factory.mktemp("presets"))
    conn = sqlite3.connect(path)
    yield engine, conn
    conn.close()
    engine.dispose()


def sql_count(conn: sqlite3.Connection, where: str, *params) -> int:
    return conn.execute(f"SELECT count(*) FROM job WHERE {where}", params).fetchone()[0]


# (URL parameters, SQL condition of the same jobs, its parameters)
PRESETS = [
    ([("cluster", "alex")], "cluster = ?", ("alex",)),
    ([("subCluster", "a40")], "subcluster = ?", ("a40",)),
    ([("partition", "singlenode")], "cluster_partition = ?", ("singlenode",)),
    ([("project", "caph")], "project = ?", ("caph",)),
    ([("project", "ca"), ("projectMatch", "contains")], "project LIKE ?", ("%ca%",)),
    ([("user", "k106")], "hpc_user LIKE ?", ("%k106%",)),
    ([("user", "k106eb10"), ("user", "demo")], "hpc_user IN (?, ?)", ("k106eb10", "demo")),
    ([("user", "k106eb10"), ("userMatch", "eq")], "hpc_user = ?", ("k106eb10",)),
    ([("jobName", "SNN")], "json_extract(meta_data, '$.jobName') LIKE ?", ("%SNN%",)),
    ([("state", "completed"), ("state", "failed")], "job_state IN (?, ?)", ("completed", "failed")),
    ([("shared", "none")], "shared = ?", ("none",)),
    ([("schedule", "interactive")], "json_extract(meta_data, '$.jobName') = ?", ("interactive",)),
    ([("duration", "3600-7200")], "duration BETWEEN ? AND ?", (3600, 7200)),
    ([("duration", "lessthan-600")], "duration <= ?", (600,)),
    ([("duration", "morethan-36000")], "duration >= ?", (36000,)),
    ([("numNodes", "2-4")], "num_nodes BETWEEN ? AND ?", (2, 4)),
    ([("numNodes", "morethan-2")], "num_nodes >= ?", (2,)),
    ([("numHWThreads", "lessthan-16")], "num_hwthreads <= ?", (16,)),
    ([("numAccelerators", "1-4")], "num_acc BETWEEN ? AND ?", (1, 4)),
    ([("energy", "morethan-1")], "energy >= ?", (1,)),
    ([("node", "a0128")], "CAST(resources AS TEXT) LIKE ?", ("%a0128%",)),
    ([("dbId", "1"), ("dbId", "2"), ("dbId", "3")], "id IN (1, 2, 3)", ()),
    ([("jobId", "398800")], "job_id = ?", (398800,)),
    ([("jobId", "398800"), ("jobId", "398793")], "job_id IN (?, ?)", (398800, 398793)),
    ([("arrayJobId", "0")], "array_job_id = ?", (0,)),
    ([("startTime", "1675954000-1675956000")], "start_time BETWEEN ? AND ?", (1675954000, 1675956000)),
    ([("stat", "flops_any-morethan-10")], "CAST(json_extract(CAST(footprint AS TEXT), '$.flops_any_avg') AS REAL) >= ?",
     (10,)),
    ([("stat", "mem_used-0-20")], "CAST(json_extract(CAST(footprint AS TEXT), '$.mem_used_avg') AS REAL) <= ?", (20,)),
    ([("cluster", "fritz"), ("state", "completed"), ("numNodes", "lessthan-1"), ("unknown", "ignored")],
     "cluster = 'fritz' AND job_state = 'completed' AND num_nodes <= 1", ()),
]


@pytest.mark.parametrize(("pairs", "where", "params"), PRESETS, ids=[str(p[0]) for p in PRESETS])
def test_each_preset_selects_the_jobs_the_sql_does(peer, pairs, where, params):
    engine, conn = peer
    want = sql_count(conn, where, *params)
    assert count_jobs(engine, filters_for_query(filter_from_query(pairs))) == want


def test_presets_select_something_so_the_counts_mean_something(peer):
    _, conn = peer
    nonempty = [p for p, where, params in PRESETS if sql_count(conn, where, *params) > 0]
    assert len(nonempty) >= len(PRESETS) - 4


def test_tag_and_relative_start_time_presets(peer):
    engine, conn = peer
    tag_id, tagged = conn.execute("SELECT tag_id, count(*) FROM jobtag GROUP BY tag_id ORDER BY 2 DESC").fetchone()
    assert count_jobs(engine, [filter_from_query([("tag", str(tag_id))])]) == tagged
    latest = conn.execute("SELECT max(start_time) FROM job").fetchone()[0]
    now = latest + 3600
    flt = filter_from_query([("startTime", "last24h")])
    assert flt.startTime is not None and flt.startTime.range == "last24h"
    assert count_jobs(engine, [flt], now=now) == sql_count(conn, "start_time >= ?", now - 86400)
    assert count_jobs(engine, [flt], now=int(time.time())) == 0  # the peer jobs are from 2023


@pytest.mark.parametrize("pairs", [p for p, _, _ in PRESETS] + [
    [("startTime", "last7d")], [("tag", "3"), ("tag", "5")], [("user", "x"), ("userMatch", "in")],
    [("project", "p"), ("projectMatch", "startsWith")], [("jobId", "1"), ("jobIdMatch", "neq")],
    [("startTime", "100-")], [("energy", "0.5-2.25")], [("stat", "flops_any-lessthan-10.5")],
])
def test_round_trip_through_the_url(pairs):
    flt = filter_from_query(pairs)
    again = filter_from_query(query_from_filter(flt))
    assert again == flt
    assert query_from_filter(again) == query_from_filter(flt)


def test_round_trip_of_filters_built_in_code():
    flt = JobFilter.model_validate({
        "cluster": {"eq": "fritz"}, "state": ["running"], "user": {"in": ["a", "b"]}, "project": {"contains": "x"},
        "numNodes": {"from": 2, "to": 0}, "duration": {"from": 0, "to": 60}, "startTime": {"from": 5, "to": 10},
        "metricStats": [{"metricName": "mem_bw", "range": {"from": 1, "to": 2}}], "dbId": [7], "arrayJobId": 9,
        "tags": [1], "shared": "multi_user", "schedule": "batch", "node": {"contains": "f01"},
    })
    pairs = query_from_filter(flt)
    assert ("numNodes", "morethan-2") in pairs and ("duration", "lessthan-60") in pairs
    assert ("startTime", "5-10") in pairs and ("stat", "mem_bw-1-2") in pairs
    assert filter_from_query(pairs) == flt


def test_upstream_spellings_are_read_as_upstream_writes_them():
    # Filters.svelte writes duration=0-N for "less than" and the search bar projectMatch=eq&project=...
    assert filter_from_query([("duration", "0-600")]) == filter_from_query([("duration", "lessthan-600")])
    assert filter_from_query([("projectMatch", "eq"), ("project", "p")]).project.eq == "p"
    assert filter_from_query([("user", "abc")]).user.contains == "abc"
    assert filter_from_query([("user", "a"), ("user", "b")]).user.in_ == ["a", "b"]
    assert filter_from_query([("jobName", "x")]).jobName.contains == "x"
    assert filter_from_query([("jobId", "1"), ("jobId", "2")]).jobId.in_ == ["1", "2"]
    # empty form fields and unknown parameters are no filter
    assert filter_from_query([("user", ""), ("cluster", ""), ("searchId", "x"), ("foo", "bar")]) == JobFilter()


@pytest.mark.parametrize(("pairs", "field"), [
    ([("state", "sleeping")], "state"),
    ([("duration", "long")], "duration"),
    ([("duration", "9-3")], "duration"),
    ([("numNodes", "lessthan-x")], "numNodes"),
    ([("energy", "1-nan")], "energy"),
    ([("tag", "app")], "tag"),
    ([("dbId", "1.5")], "dbId"),
    ([("jobId", "12a")], "jobId"),
    ([("arrayJobId", "x")], "arrayJobId"),
    ([("startTime", "yesterday")], "startTime"),
    ([("startTime", "20-10")], "startTime"),
    ([("stat", "flops_any")], "stat"),
    ([("stat", "bad name-1-2")], "stat"),
    ([("shared", "maybe")], "shared"),
    ([("schedule", "later")], "schedule"),
    ([("userMatch", "like"), ("user", "x")], "userMatch"),
    ([("cluster", "a"), ("cluster", "b"), ("clusterMatch", "eq")], "cluster"),
    ([("duration", "1-2"), ("duration", "3-4")], "duration"),
])
def test_malformed_values_name_the_parameter(pairs, field):
    with pytest.raises(InvalidInput) as err:
        filter_from_query(pairs)
    assert err.value.field == field
    assert err.value.message.startswith(field + ":")


def test_sort_and_paging_parameters():
    assert order_from_query([]) == OrderBy(field="startTime", order="DESC")
    assert order_from_query([("sort", "duration:asc")]) == OrderBy(field="duration", order="ASC")
    assert order_from_query([("sort", "foot.flops_any:desc")]) == OrderBy(field="flops_any", type="foot", order="DESC")
    assert page_from_query([], 25) == Page(itemsPerPage=25, page=1)
    assert page_from_query([("page", "3"), ("itemsPerPage", "100")]) == Page(itemsPerPage=100, page=3)
    for pairs, field in (([("sort", "duration:sideways")], "sort"), ([("page", "0")], "page"),
                         ([("page", "x")], "page"), ([("itemsPerPage", "7")], "itemsPerPage")):
        with pytest.raises(InvalidInput) as err:
            JobListQuery.parse(pairs)
        assert err.value.field == field


def test_list_query_round_trip_leaves_defaults_out():
    query = JobListQuery.parse([("cluster", "alex"), ("sort", "numNodes:desc"), ("page", "2"), ("itemsPerPage", "10")],
                               default_size=50)
    assert query.pairs(default_size=50) == [("cluster", "alex"), ("sort", "numNodes:desc"), ("page", "2"),
                                            ("itemsPerPage", "10")]
    assert JobListQuery.parse([], 50).pairs(default_size=50) == []
    assert list_url([]) == "/monitoring/jobs/"
    assert list_url([("user", "a b&c")]) == "/monitoring/jobs/?user=a+b%26c"


def test_sorted_pages_follow_the_url(peer):
    engine, conn = peer
    query = JobListQuery.parse([("cluster", "fritz"), ("sort", "duration:asc"), ("page", "2"), ("itemsPerPage", "10")])
    got = [j["id"] for j in list_jobs(engine, filters_for_query(query.filter), order=query.order, page=query.page)]
    want = [r[0] for r in conn.execute(
        "SELECT id FROM job WHERE cluster = 'fritz' ORDER BY duration ASC, id ASC LIMIT 10 OFFSET 10")]
    assert got == want
