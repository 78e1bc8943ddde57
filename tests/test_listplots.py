"""The job list's row plot data (cc_backend.metrics.listplots) on a small generated demo archive."""

from __future__ import annotations

import sqlite3

import pytest
from support.cli import cli
from support.site import main_section, write_site

from cc_backend.archive.fs import FileArchive
from cc_backend.auth.security import Viewer
from cc_backend.db.engine import make_engine
from cc_backend.errors import InvalidInput
from cc_backend.metrics.listplots import BAND_FROM_NODES, MAX_JOBS, job_list_plots

ADMIN = Viewer("admin", ("admin",))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("listplots")
    archive = folder / "archive"
    r = cli(folder, "demo", "generate", str(archive), "--jobs", "150", "--now", "1767225600")
    assert r.returncode == 0, r.stderr
    write_site(folder, main_section(f"sqlite:///{folder / 'job.db'}"), archive)
    assert cli(folder, "init-db").returncode == 0
    assert cli(folder, "demo", "start-jobs", "--jobs", "6", "--now", "1767225600").returncode == 0
    engine = make_engine(f"sqlite:///{folder / 'job.db'}")
    yield engine, FileArchive(archive), sqlite3.connect(folder / "job.db")
    engine.dispose()


def archived(db: sqlite3.Connection, where: str) -> list[tuple[int, int, str]]:
    return db.execute(f"SELECT id, num_nodes, hpc_user FROM job WHERE monitoring_status = 3 AND job_state != 'running' "
                      f"AND {where} ORDER BY id").fetchall()


def test_one_line_per_node_downsampled_to_the_width(demo):
    engine, archive, db = demo
    jobs = archived(db, f"num_nodes < {BAND_FROM_NODES} AND duration > 3600")[:5]
    assert jobs
    width = 40
    plots = job_list_plots(engine, archive, [j[0] for j in jobs], ["mem_bw", "no_such_metric"], viewer=ADMIN,
                           width=width)["plots"]
    assert set(plots) == {str(j[0]) for j in jobs}
    for db_id, nodes, _ in jobs:
        spec = plots[str(db_id)]["mem_bw"]
        assert len(spec["series"]) == nodes == spec["nodes"]
        assert all(1 <= len(s["data"]) <= width for s in spec["series"])
        assert spec["unit"] == "GB/s" and spec["thresholds"]["peak"] > 0
        assert plots[str(db_id)]["no_such_metric"] is None


def test_many_nodes_give_a_min_median_max_band(demo):
    engine, archive, db = demo
    jobs = archived(db, f"num_nodes >= {BAND_FROM_NODES}")
    if not jobs:
        pytest.skip("the demo has no job with that many nodes")
    spec = job_list_plots(engine, archive, [jobs[0][0]], ["mem_bw"], viewer=ADMIN, width=100)["plots"][
        str(jobs[0][0])]["mem_bw"]
    assert "series" not in spec and set(spec["band"]) == {"min", "median", "max"}
    assert spec["nodes"] == jobs[0][1]


def test_a_user_gets_only_their_own_jobs_and_running_jobs_have_no_data(demo):
    engine, archive, db = demo
    mine = archived(db, "1")[0]
    other = db.execute("SELECT id FROM job WHERE hpc_user != ? LIMIT 1", (mine[2],)).fetchone()[0]
    plots = job_list_plots(engine, archive, [mine[0], other], ["mem_bw"], viewer=Viewer(mine[2], ("user",)),
                           width=100)["plots"]
    assert list(plots) == [str(mine[0])]
    running = db.execute("SELECT id FROM job WHERE job_state = 'running' LIMIT 1").fetchone()[0]
    assert job_list_plots(engine, archive, [running], ["mem_bw"], viewer=ADMIN, width=100)["plots"] == {
        str(running): {"mem_bw": None}}


@pytest.mark.parametrize(("ids", "metrics", "width", "field"), [
    ([], ["a"], 100, "dbId"), (list(range(1, MAX_JOBS + 2)), ["a"], 100, "dbId"), ([1], [], 100, "metric"),
    ([1], [f"m{i}" for i in range(13)], 100, "metric"), ([1], ["a"], 5, "width"), ([1], ["a"], 10**6, "width"),
])
def test_limits(demo, ids, metrics, width, field):
    engine, archive, _ = demo
    with pytest.raises(InvalidInput) as err:
        job_list_plots(engine, archive, ids, metrics, viewer=ADMIN, width=width)
    assert err.value.field == field


def test_threshold_levels_follow_the_footprint_rules():
    from cc_backend.jobs.footprint import threshold_level

    assert [threshold_level(v, 20, 5) for v in (60, 10, 3)] == ["good", "caution", "alert"]
    assert [threshold_level(v, 50, 80, lower_is_better=True) for v in (10, 60, 90)] == ["good", "caution", "alert"]


def test_plots_carry_a_level_from_the_nodes_average(demo):
    engine, archive, db = demo
    jobs = archived(db, "duration > 600")[:10]
    plots = job_list_plots(engine, archive, [j[0] for j in jobs], ["flops_any"], viewer=ADMIN, width=50)["plots"]
    levels = {row["flops_any"]["level"] for row in plots.values() if row["flops_any"]}
    assert levels and levels <= {"good", "caution", "alert"}
