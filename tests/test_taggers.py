"""The taggers wired in: hooks at job start and after archiving, runs over existing jobs (CLI, upstream flag,
/config/taggers/), rule files re-read when they change, broken rules never breaking a job stop."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from pathlib import Path

import orjson
import test_archiving as arch
from sqlalchemy import select
from support.cli import cli
from support.db import SQLITE_ONLY
from support.web import add_users, json_error, login
from test_archiving import live  # noqa: F401 - the fixture: a Runtime with a real built-in store

GROMACS_SCRIPT = """#!/bin/bash
#SBATCH --nodes=2
#SBATCH --time=04:00:00
# module load vasp/6.4   <- an old line, commented out: must not tag vasp
module purge
module load gromacs/2023.2-mpi
srun gmx_mpi mdrun -deffnm md -ntomp 4
"""

EMMY_JOBS = [(1403244, 1608923076), (1404397, 1609300556)]


def tags_of(engine, db_id: int) -> list[str]:
    from cc_backend.jobs.query import get_job

    return sorted(f"{t['type']}:{t['name']}" for t in get_job(engine, db_id)["tags"])


def meta_json(site: Path, job_id: int, start_time: int) -> dict:
    path = site / "job-archive" / "emmy" / str(job_id // 1000) / f"{job_id % 1000:03d}" / str(start_time) / "meta.json"
    return json.loads(path.read_text())


def expected_emmy_classes(site: Path) -> dict[int, list[tuple[str, str]]]:
    """The shipped rules' verdicts on the two archived emmy jobs, computed here from meta.json and cluster.json."""
    cluster = json.loads((site / "job-archive" / "emmy" / "cluster.json").read_text())
    peaks = {m["name"]: m for m in cluster["metricConfig"]}
    out = {}
    for job_id, start in EMMY_JOBS:
        meta = meta_json(site, job_id, start)
        stats = meta["statistics"]
        classes = []
        long_exclusive = meta.get("shared", "none") == "none" and meta["duration"] > 600
        if long_exclusive and stats["mem_used"]["max"] > peaks["mem_used"]["peak"] * 0.9:
            classes.append("highmemory")
        if long_exclusive and stats["cpu_load"]["avg"] > peaks["cpu_load"]["peak"] * 1.2:
            classes.append("excessiveload")
        if long_exclusive and stats["cpu_load"]["avg"] < peaks["cpu_load"]["peak"] * 0.85:
            classes.append("lowload")
        out[job_id] = classes
    return out


# --- runs over existing jobs ---------------------------------------------------------------------------------

def test_tags_apply_classifies_archived_jobs_and_says_what_it_did(site):
    assert cli(site, "-init-db").returncode == 0
    expected = expected_emmy_classes(site)
    assert expected[1403244] == ["highmemory", "excessiveload"]  # the fixture is what this test is about
    r = cli(site, "tags", "apply")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("AppTagger: 2 jobs, 0 tagged")
    assert lines[1].startswith("JobClassTagger: 2 jobs, 2 tagged")
    assert "  excessiveload: 2 jobs" in lines and "  highmemory: 2 jobs" in lines
    for job_id, start in EMMY_JOBS:
        meta = meta_json(site, job_id, start)
        archived_classes = {t["name"] for t in meta["tags"] if t["type"] == "jobClass"}
        assert set(expected[job_id]) <= archived_classes
        message = meta["metaData"]["message"]
        # the hints, numbers rounded to 2 places: the job's own peak memory and the node's 32 GB
        peak = meta["statistics"]["mem_used"]["max"]
        assert f"peak memory usage {round(peak, 2):g} GB ({round(peak / 32 * 100, 2):g}% of 32 GB" in message
        shown = cli(site, "jobs", "show", str(job_id), "--format", "json")
        job = json.loads(shown.stdout)
        assert job["metaData"]["message"] == message
        assert {t["name"] for t in job["tags"] if t["type"] == "jobClass"} == archived_classes
    again = cli(site, "tags", "apply", "--format", "json")
    runs = json.loads(again.stdout)
    assert [(run["tagger"], run["jobs"], run["tagged"], run["tags"]) for run in runs] == [
        ("AppTagger", 2, 0, {}), ("JobClassTagger", 2, 0, {})]  # nothing new: tags are attached once


def test_tags_apply_takes_the_job_filter(site):
    assert cli(site, "-init-db").returncode == 0
    r = cli(site, "tags", "apply", "--tagger", "JobClassTagger", "--job-id", "1404397", "--format", "json")
    assert r.returncode == 0, r.stderr
    (run,) = json.loads(r.stdout)
    assert (run["tagger"], run["jobs"], run["tagged"]) == ("JobClassTagger", 1, 1)
    assert not any(t["type"] == "jobClass" for t in meta_json(site, 1403244, 1608923076).get("tags", []))
    none = cli(site, "tags", "apply", "--cluster", "alex", "--format", "json")
    assert [run["jobs"] for run in json.loads(none.stdout)] == [0, 0]
    bad = cli(site, "tags", "apply", "--tagger", "Nope")
    assert bad.returncode == 2 and "'Nope' is not one of 'AppTagger', 'JobClassTagger'" in bad.stderr


def test_upstream_apply_tags_flag_runs_after_init_db(site):
    r = cli(site, "-init-db", "-apply-tags")
    assert r.returncode == 0, r.stderr
    assert "JobClassTagger: 2 jobs, 2 tagged" in r.stdout
    assert "No errors, server flag not set. Exiting cc-backend." in r.stderr
    listed = json.loads(cli(site, "tags", "list", "--format", "json").stdout)
    assert {(t["type"], t["name"], t["count"]) for t in listed} >= {("jobClass", "highmemory", 2),
                                                                    ("jobClass", "excessiveload", 2)}
    clash = cli(site, "-apply-tags", "tags", "list")
    assert clash.returncode == 2 and "--apply-tags cannot be combined with the subcommand 'tags'" in clash.stderr


def test_app_tagger_over_the_peer_database(peer_db_url, peer_archive, tmp_path, monkeypatch):
    """Upstream's own test: job 317 of the peer job.db (a VASP script) gets app:vasp; nothing else is invented."""
    from cc_backend.archive.fs import FileArchive
    from cc_backend.db.engine import make_engine
    from cc_backend.db.tables import job_table, jobtag_table, tag_table
    from cc_backend.taggers.service import JobTaggers

    monkeypatch.chdir(tmp_path)  # no var/tagger here: the shipped files
    engine = make_engine(peer_db_url)
    try:
        with engine.begin() as conn:  # upstream's test data has 317 tagged already: start from no app tags
            app_tags = select(tag_table.c.id).where(tag_table.c.tag_type == "app")
            conn.execute(jobtag_table.delete().where(jobtag_table.c.tag_id.in_(app_tags)))
        assert "app:vasp" not in tags_of(engine, 317)
        taggers = JobTaggers(lambda: engine, lambda: FileArchive(peer_archive), enabled=False)
        summary = taggers.run("AppTagger")
        assert summary.jobs == 544 and summary.failed == 0
        assert "app:vasp" in tags_of(engine, 317)
        from cc_backend.taggers.apps import job_script

        scripts = {}
        with engine.connect() as conn:
            for db_id, meta in conn.execute(select(job_table.c.id, job_table.c.meta_data)):
                scripts[db_id] = job_script(meta)
        with_script = [i for i, s in scripts.items() if s]
        assert summary.tagged == sum(1 for i in with_script if taggers.app_detector().detect(scripts[i]))
        assert taggers.run("AppTagger").tagged == 0
    finally:
        engine.dispose()


# --- hooks ---------------------------------------------------------------------------------------------------

def start_payload(job_id: int, script: str) -> dict:
    return {"jobId": job_id, "user": "alice", "project": "p1", "cluster": "fritz", "numNodes": 1,
            "numHwthreads": 72, "startTime": int(time.time()) - 60, "walltime": 3600,
            "resources": [{"hostname": "f0101"}], "metaData": {"jobScript": script}}


def test_start_hook_tags_applications_when_enabled(app_start, site):
    app = app_start(**{"enable-job-taggers": True})
    add_users(site, "adapter:api:pw")
    token = cli(site, "-jwt", "adapter").stdout.strip()
    headers = {"X-AUTH-TOKEN": token}
    r = app.post("/api/jobs/start_job/", json=start_payload(9001, GROMACS_SCRIPT), headers=headers)
    assert r.status_code == 201, r.text
    assert tags_of(app.runtime.engine, r.json()["id"]) == ["app:gromacs"]
    plain = app.post("/api/jobs/start_job/", json=start_payload(9002, "#!/bin/sh\n./a.out\n"), headers=headers)
    assert tags_of(app.runtime.engine, plain.json()["id"]) == []


def test_start_hook_does_nothing_when_disabled(app_start, site):
    app = app_start()
    add_users(site, "adapter:api:pw")
    headers = {"X-AUTH-TOKEN": cli(site, "-jwt", "adapter").stdout.strip()}
    r = app.post("/api/jobs/start_job/", json=start_payload(9003, GROMACS_SCRIPT), headers=headers)
    assert r.status_code == 201 and tags_of(app.runtime.engine, r.json()["id"]) == []


def _archived_job(live, job_id: int) -> dict:  # noqa: F811 - live is the imported fixture
    """A 1-hour job on two fritz nodes, stopped and archived by the archiver with the hooks on."""
    from cc_backend.jobs.archiving import ArchiveQueue

    live.taggers.enabled = True
    t0 = arch._now() - 3 * 3600
    job = arch.stop(live, arch.start(live, job_id, t0), t0 + 3600)
    arch.write_samples(live.metric_store, t0, t0 + 3600)
    queue = ArchiveQueue(live)
    queue.start()
    assert queue.submit(job)
    assert queue.stop(timeout=60) == 0
    return job


def test_stop_hook_classifies_the_archived_job(live, monkeypatch):  # noqa: F811
    monkeypatch.chdir(live.site)
    job = _archived_job(live, 700)
    assert arch.row(live, job["id"])["monitoring_status"] == 3
    # the samples of test_archiving: cpu_load 10..21 per node on 72-core nodes, far below 0.85 x 72
    stats = arch.expected_statistics(59)
    assert stats["cpu_load"]["avg"] < 72 * 0.85
    assert "jobClass:lowload" in tags_of(live.engine, job["id"])
    from cc_backend.jobs.query import get_job

    message = get_job(live.engine, job["id"])["metaData"]["message"]
    threshold = round(72 * 0.85, 2)
    assert (f"average cpu load {stats['cpu_load']['avg']:g} is below the threshold {threshold:g} (0.85)"
            in message)
    meta = live.archive.load_meta("fritz", 700, job["startTime"])
    assert meta["metaData"]["message"] == message
    assert {"type": "jobClass", "name": "lowload"} in [{"type": t["type"], "name": t["name"]} for t in meta["tags"]]


def test_a_broken_rule_never_breaks_a_job_stop(live, monkeypatch, caplog):  # noqa: F811
    """A site rule directory with one broken file: it is reported with file and position; the job is archived."""
    from cc_backend.taggers.jobclasses import SHIPPED_RULES

    monkeypatch.chdir(live.site)
    rules = live.site / "var" / "tagger" / "jobclasses"
    rules.mkdir(parents=True)
    (rules / "parameters.json").write_text((SHIPPED_RULES / "parameters.json").read_text())
    (rules / "lowload.json").write_text((SHIPPED_RULES / "lowload.json").read_text())
    broken = json.loads((SHIPPED_RULES / "lowload.json").read_text())
    broken.update(tag="broken", rule="cpu_load.avg < < 3")
    (rules / "broken.json").write_text(json.dumps(broken))
    with caplog.at_level(logging.WARNING):
        job = _archived_job(live, 701)
    assert arch.row(live, job["id"])["monitoring_status"] == 3
    assert tags_of(live.engine, job["id"]) == ["jobClass:lowload"]
    reported = {r.getMessage() for r in caplog.records if "broken.json" in r.getMessage()}
    assert reported == {"job class rule skipped: var/tagger/jobclasses/broken.json: rule: 1:16: unexpected '<'"}


def test_rule_files_are_read_again_when_they_change(tmp_path, monkeypatch):
    from cc_backend.taggers.service import JobTaggers

    monkeypatch.chdir(tmp_path)
    taggers = JobTaggers(lambda: None, lambda: None, enabled=True, reload_check_seconds=0)  # type: ignore[arg-type]
    script = "module load mysolver\nsrun mysolver -i input.dat\n"
    assert taggers.app_detector().detect(script) == []
    apps = tmp_path / "var" / "tagger" / "apps"
    apps.mkdir(parents=True)
    (apps / "mysolver.txt").write_text("mysolver\n")
    assert taggers.app_detector().detect(script) == ["mysolver"]
    (apps / "mysolver.txt").write_text("nothing-like-it\n")
    assert taggers.app_detector().detect(script) == []
    shipped = taggers.job_classes()
    assert [r.tag for r in shipped.ruleset.rules] == ["highmemory", "excessiveload", "lowutilization", "lowload",
                                                      "memorybound"]
    rules = tmp_path / "var" / "tagger" / "jobclasses"
    rules.mkdir(parents=True)
    rule = {"name": "Long", "tag": "long", "parameters": [], "metrics": [], "requirements": [],
            "variables": [], "rule": "job.duration > 3600", "hint": "ran {{.job.duration}} s"}
    (rules / "long.json").write_text(json.dumps(rule))
    assert [r.tag for r in taggers.job_classes().ruleset.rules] == ["long"]
    rule["rule"] = "job.duration > 60"
    (rules / "long.json").write_text(json.dumps(rule))
    import os

    os.utime(rules / "long.json", (time.time() + 5, time.time() + 5))  # a new mtime even on a coarse clock
    assert taggers.job_classes().ruleset.rules[0].source.endswith("long.json")
    from cc_backend.archive.cluster import load_cluster_config

    fritz = load_cluster_config(json.loads(Path(arch.__file__).parent.joinpath(
        "fixtures/peer-data/archive/fritz/cluster.json").read_text())).sub_cluster("main")
    assert taggers.job_classes().classify({"duration": 120}, fritz) == [("long", "ran 120 s")]


# --- /config/taggers/ ----------------------------------------------------------------------------------------

@SQLITE_ONLY
def test_config_taggers_routes_as_upstreams_frontend_calls_them(app_start, site):
    app = app_start()
    add_users(site, "boss:admin:boss-pw", "ann:user:ann-pw")
    admin, user = login(app, "boss", "boss-pw"), login(app, "ann", "ann-pw")
    listed = app.get("/config/taggers/", headers=admin)
    assert listed.status_code == 200
    assert listed.json() == [{"name": "AppTagger", "type": "start", "running": False},
                             {"name": "JobClassTagger", "type": "stop", "running": False}]
    assert "only admins" in json_error(app.get("/config/taggers/", headers=user), 403, "Forbidden")
    assert "log in" in json_error(app.post("/config/taggers/run/", data={"name": "AppTagger"}), 401, "Unauthorized")

    # a job whose script names an application, and the database's write lock held by someone else:
    # the run starts, finds the job and waits for the lock, so it is still running when asked again
    db_id = _insert_job_with_script(app, GROMACS_SCRIPT)
    holder = sqlite3.connect(app.runtime.database_url.removeprefix("sqlite:///"), timeout=30)
    holder.execute("BEGIN IMMEDIATE")
    try:
        r = app.post("/config/taggers/run/", data={"name": "AppTagger"}, headers=admin)
        assert (r.status_code, r.text) == (200, "Tagger AppTagger started")
        again = app.post("/config/taggers/run/", data={"name": "AppTagger"}, headers=admin)
        assert "tagger AppTagger is already running" in json_error(again, 409, "Conflict")
        assert app.get("/config/taggers/", headers=admin).json()[0] == {"name": "AppTagger", "type": "start",
                                                                       "running": True}
    finally:
        holder.rollback()
        holder.close()
    _wait_until_idle(app, admin)
    assert tags_of(app.runtime.engine, db_id) == ["app:gromacs"]
    assert app.runtime.taggers.last_runs["AppTagger"]["tagged"] == 1

    missing = app.post("/config/taggers/run/", data={}, headers=admin)
    assert "name is required" in json_error(missing, 400, "Bad Request")
    unknown = app.post("/config/taggers/run/", data={"name": "DROP TABLE"}, headers=admin)
    assert "unknown tagger 'DROP TABLE'" in json_error(unknown, 400, "Bad Request")
    # a long name is not echoed back in full
    flood = app.post("/config/taggers/run/", data={"name": "X" * 100_000}, headers=admin)
    message = json_error(flood, 400, "Bad Request")
    assert message == f"unknown tagger '{'X' * 79}...; expected one of AppTagger, JobClassTagger"
    assert app.get("/config/taggers/", headers=admin).status_code == 200  # still answering


def _insert_job_with_script(app, script: str) -> int:
    from cc_backend.jobs.store import start_job

    job = start_job(app.runtime.engine, app.runtime.archive.registry(), start_payload(9100, script))
    return job["id"]


def _wait_until_idle(app, admin, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(t["running"] for t in app.get("/config/taggers/", headers=admin).json()):
            return
        time.sleep(0.05)
    raise AssertionError("the tagger run did not end")


def test_classify_needs_the_archive_not_a_running_job(live):  # noqa: F811
    """A running job has no archived statistics: the run skips it and says so."""
    t0 = arch._now() - 600
    arch.start(live, 702, t0)
    summary = live.taggers.run("JobClassTagger")
    assert (summary.jobs, summary.skipped, summary.tagged) == (1, 1, 0)
    assert orjson.loads(orjson.dumps(summary.to_dict()))["skipped"] == 1


def test_a_tag_of_another_scope_fails_that_job_only(peer_db_url, peer_archive, tmp_path, monkeypatch, caplog):
    """Upstream's peer data has app:python private to user demo: the tagger does not attach (or widen) it."""
    from sqlalchemy import update

    from cc_backend.archive.fs import FileArchive
    from cc_backend.db.engine import make_engine
    from cc_backend.db.tables import job_table
    from cc_backend.taggers.service import JobTaggers

    monkeypatch.chdir(tmp_path)
    engine = make_engine(peer_db_url)
    try:
        with engine.begin() as conn:
            for db_id, script in ((1, "#!/bin/sh\npython3 train.py\n"), (2, GROMACS_SCRIPT)):
                conn.execute(update(job_table).where(job_table.c.id == db_id)
                             .values(meta_data=json.dumps({"jobScript": script})))
        taggers = JobTaggers(lambda: engine, lambda: FileArchive(peer_archive), enabled=False)
        with caplog.at_level(logging.WARNING):
            summary = taggers.run("AppTagger", job_ids=[1, 2])
        assert (summary.jobs, summary.tagged, summary.failed, summary.tags) == (2, 1, 1, {"gromacs": 1})
        assert "app:gromacs" in tags_of(engine, 2) and "app:python" not in tags_of(engine, 1)
        assert any("AppTagger on job 1: tag app:python exists with scope 'demo'" in r.getMessage()
                   for r in caplog.records)
    finally:
        engine.dispose()
