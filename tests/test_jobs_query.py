"""The shared job filter/sort/page module on the upstream peer database (SQLite and MariaDB)."""

from __future__ import annotations

import pytest

from cc_backend.auth.security import Viewer
from cc_backend.db.engine import make_engine
from cc_backend.errors import InvalidInput, NotFound
from cc_backend.jobs.filter import Page, parse_filters, parse_order, parse_range, parse_sort, parse_time_range
from cc_backend.jobs.query import count_jobs, find_jobs, get_job, list_jobs
from cc_backend.jobs.tags import list_tags, resolve_tag_ids


@pytest.fixture
def peer_engine(peer_db_url):
    engine = make_engine(peer_db_url)
    yield engine
    engine.dispose()


def test_find_and_get_as_upstream_tests(peer_engine):
    found = find_jobs(peer_engine, 398800, "fritz", 1675954712)
    assert [j["id"] for j in found] == [345]
    job = get_job(peer_engine, 338)
    assert (job["jobId"], job["cluster"], job["startTime"], job["user"], job["jobState"]) == \
        (398793, "fritz", 1675954626, "k106eb10", "completed")
    with pytest.raises(NotFound):
        get_job(peer_engine, 999999)


def test_job_json_shape(peer_engine):
    job = get_job(peer_engine, 1)
    assert job["jobId"] == 679694 and job["cluster"] == "alex" and job["subCluster"] == "a40"
    assert job["resources"][0]["hostname"] == "a0128"
    assert job["metaData"]["jobName"] == "retrain_SNN"
    assert job["footprint"]["cpu_load_avg"] == pytest.approx(36.87)
    assert set(job) >= {"id", "jobId", "user", "project", "cluster", "subCluster", "partition", "arrayJobId",
                        "numNodes", "numHwthreads", "numAcc", "shared", "monitoringStatus", "smt", "jobState",
                        "startTime", "duration", "walltime", "resources", "metaData", "tags", "footprint",
                        "energyFootprint", "energy"}


def test_counts_by_cluster_and_total(peer_engine):
    assert count_jobs(peer_engine) == 544
    assert count_jobs(peer_engine, parse_filters({"cluster": {"eq": "alex"}})) == 303
    assert count_jobs(peer_engine, parse_filters({"cluster": {"eq": "fritz"}})) == 241
    assert count_jobs(peer_engine, parse_filters({"cluster": {"in": ["alex", "fritz"]}})) == 544
    assert count_jobs(peer_engine, parse_filters({"cluster": {"startsWith": "fr"}})) == 241
    assert count_jobs(peer_engine, parse_filters({"cluster": {"neq": "alex"}})) == 241


def test_every_filter_field_narrows_consistently(peer_engine):
    everything = list_jobs(peer_engine, page=Page(itemsPerPage=-1))
    assert len(everything) == 544

    def expect(flt: dict, predicate) -> None:
        got = {j["id"] for j in list_jobs(peer_engine, parse_filters(flt), page=Page(itemsPerPage=-1))}
        want = {j["id"] for j in everything if predicate(j)}
        assert got == want, flt
        assert count_jobs(peer_engine, parse_filters(flt)) == len(want)

    expect({"user": {"eq": "k106eb10"}}, lambda j: j["user"] == "k106eb10")
    expect({"project": {"contains": "06e"}}, lambda j: "06e" in j["project"])
    expect({"subCluster": {"eq": "a100"}}, lambda j: j["subCluster"] == "a100")
    expect({"partition": {"endsWith": "node"}}, lambda j: j["partition"].endswith("node"))
    expect({"jobName": {"contains": "SNN"}}, lambda j: "SNN" in j["metaData"].get("jobName", ""))
    expect({"jobId": {"eq": "398800"}}, lambda j: j["jobId"] == 398800)
    expect({"jobId": {"startsWith": "3988"}}, lambda j: str(j["jobId"]).startswith("3988"))
    expect({"duration": {"from": 100, "to": 3600}}, lambda j: 100 <= j["duration"] <= 3600)
    expect({"numNodes": {"from": 2, "to": 64}}, lambda j: 2 <= j["numNodes"] <= 64)
    expect({"numHWThreads": {"from": 1, "to": 16}}, lambda j: 1 <= j["numHwthreads"] <= 16)
    expect({"numAccelerators": {"from": 1, "to": 8}}, lambda j: 1 <= j["numAcc"] <= 8)
    expect({"startTime": {"from": 1675900000, "to": 1675950000}}, lambda j: 1675900000 <= j["startTime"] <= 1675950000)
    expect({"state": ["completed"]}, lambda j: j["jobState"] == "completed")
    expect({"shared": "multi_user"}, lambda j: j["shared"] == "multi_user")
    expect({"arrayJobId": 0}, lambda j: j["arrayJobId"] == 0)
    expect({"dbId": [1, 2, 3]}, lambda j: j["id"] in (1, 2, 3))
    expect({"node": {"eq": "a0128"}}, lambda j: any(r["hostname"] == "a0128" for r in j["resources"]))
    expect({"metricStats": [{"metricName": "flops_any", "range": {"from": 10, "to": 500}}]},
           lambda j: "flops_any_avg" in j["footprint"] and 10 <= j["footprint"]["flops_any_avg"] <= 500)
    expect({"metricStats": [{"metricName": "cpu_load_avg", "range": {"from": 0, "to": 1}}]},
           lambda j: "cpu_load_avg" in j["footprint"] and 0 <= j["footprint"]["cpu_load_avg"] <= 1)
    # upstream's ranges: a bound of 0 is open, so both 0 is no condition at all
    expect({"energy": {"from": 0, "to": 0}}, lambda j: True)
    expect({"numNodes": {"from": 2, "to": 0}}, lambda j: j["numNodes"] >= 2)
    expect({"duration": {"from": 0, "to": 600}}, lambda j: j["duration"] <= 600)
    expect({"metricStats": [{"metricName": "flops_any", "range": {"from": 10, "to": 0}}]},
           lambda j: "flops_any_avg" in j["footprint"] and j["footprint"]["flops_any_avg"] >= 10)
    expect({"schedule": "batch"}, lambda j: j["metaData"].get("jobName") != "interactive")
    tag_ids = resolve_tag_ids(peer_engine, ["app:vasp"])
    expect({"tags": tag_ids}, lambda j: any(t["name"] == "vasp" for t in j["tags"]))
    # several filters combine with AND
    got = count_jobs(peer_engine, parse_filters([{"cluster": {"eq": "fritz"}}, {"numNodes": {"from": 1, "to": 1}}]))
    assert got == sum(1 for j in everything if j["cluster"] == "fritz" and j["numNodes"] == 1)


def test_relative_start_time_ranges():
    flt = parse_filters({"startTime": {"range": "last24h"}})[0]
    assert flt.startTime.bounds(now=100_000) == (100_000 - 86400, None)
    with pytest.raises(InvalidInput, match="startTime.range"):
        parse_filters({"startTime": {"range": "last2h"}})
    assert parse_time_range("last7d") == {"range": "last7d"}
    assert parse_time_range("1000..2000") == {"from": 1000, "to": 2000}


def test_sort_by_column_and_footprint_and_paging(peer_engine):
    by_duration = list_jobs(peer_engine, order=parse_order({"field": "duration", "order": "DESC"}),
                            page=Page(itemsPerPage=10))
    durations = [j["duration"] for j in by_duration]
    assert durations == sorted(durations, reverse=True) and len(durations) == 10
    flops = list_jobs(peer_engine, parse_filters({"cluster": {"eq": "fritz"}}),
                      order=parse_sort("foot.flops_any_avg:desc"), page=Page(itemsPerPage=20))
    values = [j["footprint"]["flops_any_avg"] for j in flops]
    assert values == sorted(values, reverse=True)
    page1 = list_jobs(peer_engine, order=parse_sort("jobId:asc"), page=Page(itemsPerPage=7, page=1))
    page2 = list_jobs(peer_engine, order=parse_sort("jobId:asc"), page=Page(itemsPerPage=7, page=2))
    all_sorted = list_jobs(peer_engine, order=parse_sort("jobId:asc"), page=Page(itemsPerPage=14))
    assert [j["id"] for j in page1 + page2] == [j["id"] for j in all_sorted]
    # default: newest first
    newest = list_jobs(peer_engine, page=Page(itemsPerPage=1))[0]
    assert newest["startTime"] == 1675957496


def test_bad_filter_input_names_the_field():
    with pytest.raises(InvalidInput) as err:
        parse_filters({"numNodes": {"from": "many", "to": 3}})
    assert err.value.field == "numNodes.from"
    with pytest.raises(InvalidInput, match="unknownKey"):
        parse_filters({"unknownKey": 1})
    with pytest.raises(InvalidInput, match="state"):
        parse_filters({"state": ["exploded"]})
    with pytest.raises(InvalidInput, match="itemsPerPage"):
        Page.model_validate({"itemsPerPage": 0, "page": 1}) if False else __import__(
            "cc_backend.jobs.filter", fromlist=["parse_page"]).parse_page({"itemsPerPage": 0, "page": 1})
    with pytest.raises(InvalidInput, match="cannot sort"):
        list_jobs(None, order=parse_sort("resources"))  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="metricName"):
        parse_filters({"metricStats": [{"metricName": "x'); DROP TABLE job;--", "range": {"from": 0, "to": 1}}]})
    assert parse_range("1h..2h", "duration", duration=True) == {"from": 3600, "to": 7200}
    with pytest.raises(InvalidInput, match="lower bound"):
        parse_range("5..2", "nodes")


def test_visibility_per_role(peer_engine):
    some = get_job(peer_engine, 338)
    owner = some["user"]
    user = Viewer(owner, ("user",))
    own = count_jobs(peer_engine, viewer=user)
    assert own == count_jobs(peer_engine, parse_filters({"user": {"eq": owner}}))
    assert all(j["user"] == owner for j in list_jobs(peer_engine, viewer=user, page=Page(itemsPerPage=-1)))
    stranger = Viewer("nobody", ("user",))
    assert count_jobs(peer_engine, viewer=stranger) == 0
    with pytest.raises(NotFound):
        get_job(peer_engine, 338, viewer=stranger)
    manager = Viewer("nobody", ("manager",), (some["project"],))
    assert count_jobs(peer_engine, viewer=manager) == count_jobs(
        peer_engine, parse_filters({"project": {"eq": some["project"]}}))
    manager_without_projects = Viewer(owner, ("manager",))
    assert count_jobs(peer_engine, viewer=manager_without_projects) == own
    for role in ("support", "admin", "api"):
        assert count_jobs(peer_engine, viewer=Viewer("x", (role,))) == 544


def test_private_tags_only_for_their_owner(peer_engine):
    # app:python has scope "demo" (private to user demo)
    demo = Viewer("demo", ("user",))
    other = Viewer("testuser", ("user",))
    assert "python" in {t["name"] for t in list_tags(peer_engine, viewer=demo)}
    assert "python" not in {t["name"] for t in list_tags(peer_engine, viewer=other)}
    counts = {t["name"]: t["count"] for t in list_tags(peer_engine)}
    assert counts["vasp"] == 1
    assert all(t["count"] == 0 for t in list_tags(peer_engine, viewer=Viewer("testuser", ("user",))))


def test_bare_metric_names_match_upstream_avg_keys_and_configured_stats(engine):
    """Upstream rows carry mem_used_avg, rows written here the configured stat (mem_used_max)."""
    from cc_backend.db.tables import job_table

    base = dict(cluster="c", subcluster="s", hpc_user="u", project="p", duration=1, walltime=1,
                resources='[{"hostname":"n1"}]', num_nodes=1, shared="none", job_state="completed")
    with engine.begin() as conn:
        conn.execute(job_table.insert(), [
            {**base, "job_id": 1, "footprint": '{"mem_used_avg": 10.0}'},
            {**base, "job_id": 2, "footprint": '{"mem_used_max": 20.0}'},
            {**base, "job_id": 3, "footprint": '{"flops_any_avg": 5.0}'},
        ])

    def ids(flt):
        return sorted(j["jobId"] for j in list_jobs(engine, parse_filters(flt)))

    assert ids({"metricStats": [{"metricName": "mem_used", "range": {"from": 5, "to": 25}}]}) == [1, 2]
    assert ids({"metricStats": [{"metricName": "mem_used_max", "range": {"from": 5, "to": 25}}]}) == [2]
    order = list_jobs(engine, order=parse_sort("foot.mem_used:desc"))
    assert [j["jobId"] for j in order][:2] == [2, 1]
