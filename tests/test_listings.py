"""cc_backend.jobs.listings: sorted totals per user/project, the tag overview and roofline frames, on the demo data."""

from __future__ import annotations

import pytest

from cc_backend.auth.security import Viewer
from cc_backend.errors import InvalidInput
from cc_backend.jobs.listings import GROUP_COLUMNS, footprint_metrics, group_totals, roofline_frame, tag_overview

ADMIN = Viewer("someadmin", ("admin",))


@pytest.fixture(scope="module")
def demo_engine(demo_site):
    from cc_backend.db.engine import make_engine

    engine = make_engine(f"sqlite:///{demo_site.folder / 'job.db'}")
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def registry(demo_site):
    from cc_backend.archive.fs import FileArchive

    return FileArchive(demo_site.folder / "archive").registry()


@pytest.mark.parametrize("column", GROUP_COLUMNS)
def test_group_totals_sort_by_every_column_both_ways_with_ties_in_id_order(demo_engine, column):
    down = group_totals(demo_engine, "USER", [], ADMIN, sort=column, descending=True)
    up = group_totals(demo_engine, "USER", [], ADMIN, sort=column, descending=False)
    assert [row[column] for row in up] == sorted(row[column] for row in up)
    assert [row[column] for row in down] == sorted((row[column] for row in down), reverse=True)
    for rows in (up, down):
        for first, second in zip(rows, rows[1:]):
            if first[column] == second[column]:
                assert first["id"] < second["id"]


def test_group_totals_count_the_jobs_a_manager_may_see_per_project(demo_engine, demo_site):
    manager = demo_site.accounts["manager"]
    viewer = Viewer(manager.username, ("manager",), tuple(manager.projects))
    rows = group_totals(demo_engine, "PROJECT", [], viewer)
    with demo_site.db() as conn:
        expected = dict(conn.execute("SELECT project, count(*) FROM job WHERE hpc_user = ? OR project = ? "
                                     "GROUP BY project", (manager.username, manager.projects[0])).fetchall())
    assert {row["id"]: row["totalJobs"] for row in rows} == expected


def test_group_totals_refuse_an_unknown_sort_column(demo_engine):
    with pytest.raises(InvalidInput) as caught:
        group_totals(demo_engine, "USER", [], ADMIN, sort="password")
    assert caught.value.field == "sort"


def test_the_tag_overview_shows_a_user_their_private_tags_and_the_shared_tags_on_their_jobs(demo_engine, demo_site):
    username = demo_site.accounts["other"].username  # owns a private tag in the demo data
    user = Viewer(username, ("user",))
    with demo_site.db() as conn:
        used_shared = {row[0] for row in conn.execute(
            "SELECT DISTINCT tag.id FROM tag JOIN jobtag ON jobtag.tag_id = tag.id JOIN job ON job.id = jobtag.job_id "
            "WHERE job.hpc_user = ? AND tag.tag_scope = 'global'", (username,))}
        private = {row[0] for row in conn.execute("SELECT id FROM tag WHERE tag_scope = ?", (username,))}
        shared = {row[0] for row in conn.execute("SELECT id FROM tag WHERE tag_scope IN ('global', 'admin')")}
    assert private, "the demo data gives this user a private tag"
    groups = tag_overview(demo_engine, user)
    assert [group["type"] for group in groups] == sorted(group["type"] for group in groups)
    assert {tag["id"] for group in groups for tag in group["tags"]} == used_shared | private
    every = tag_overview(demo_engine, ADMIN)
    assert {tag["id"] for group in every for tag in group["tags"]} == shared  # used or not; no one's private tags


def test_roofline_frame_has_each_subclusters_ceilings_below_the_top(registry):
    frame = roofline_frame(registry.get("fritz"))
    assert [c["name"] for c in frame["ceilings"]] == ["main", "spr1tb", "spr2tb"]
    assert frame["maxY"] > max(c["simd"] for c in frame["ceilings"])
    assert (frame["minX"], frame["maxX"], frame["minY"]) == (0.01, 1000.0, 1.0)
    one = roofline_frame(registry.get("fritz"), "main")
    assert one["ceilings"] == [{"name": "main", "scalar": 691, "simd": 5530, "bandwidth": 350.0}]


def test_footprint_metrics_of_a_cluster_with_units_and_the_largest_peak(registry):
    metrics = {m["name"]: m for m in footprint_metrics(registry.get("alex"), ADMIN)}
    assert set(metrics) == {"cpu_load", "mem_used", "flops_any", "mem_bw", "acc_utilization", "acc_mem_used"}
    assert metrics["flops_any"]["unit"] == "GF/s" and metrics["flops_any"]["stat"] == "avg"
    assert "acc_utilization" not in {m["name"] for m in footprint_metrics(registry.get("fritz"), ADMIN)}
