"""Job start/stop/tag/edit/delete logic (jobs/store.py): upstream's api_test.go cases A1-A8 at the core level.

Every test runs on SQLite and on the real MariaDB (``engine`` fixture); the archive is the ``testcluster``
fixture of upstream's ``internal/api/api_test.go`` (one subcluster sc1 = host123..host125, metric load_one).
"""

from __future__ import annotations

import json
import threading

import orjson
import pytest
from sqlalchemy import func, select

from cc_backend.archive.fs import FileArchive
from cc_backend.auth.security import Viewer
from cc_backend.db.tables import job_table, jobtag_table, tag_table
from cc_backend.errors import Conflict, Forbidden, InvalidInput, NotFound
from cc_backend.jobs.query import get_job, list_jobs
from cc_backend.jobs.store import (
    delete_job,
    delete_job_by_key,
    delete_jobs_before,
    edit_meta,
    edit_meta_by_job,
    start_job,
    stop_job,
    stop_job_by_id,
    used_nodes,
)
from cc_backend.jobs.tags import delete_tags, remove_job_tags, tag_job

API = Viewer(username="apiuser", roles=("api",))
ADMIN_API = Viewer(username="admin", roles=("admin", "api"))
PLAIN = Viewer(username="testuser", roles=("user",))

TESTCLUSTER = {
    "name": "testcluster",
    "metricConfig": [{"name": "load_one", "unit": {"base": ""}, "scope": "node", "timestep": 60,
                      "aggregation": "avg", "peak": 8, "normal": 0, "caution": 0, "alert": 0}],
    "subClusters": [{
        "name": "sc1", "nodes": "host123,host124,host125", "processorType": "Intel Core i7-4770",
        "socketsPerNode": 1, "coresPerSocket": 4, "threadsPerCore": 2,
        "flopRateScalar": {"unit": {"prefix": "G", "base": "F/s"}, "value": 14},
        "flopRateSimd": {"unit": {"prefix": "G", "base": "F/s"}, "value": 112},
        "memoryBandwidth": {"unit": {"prefix": "G", "base": "B/s"}, "value": 24},
        "topology": {"node": list(range(8)), "socket": [list(range(8))], "memoryDomain": [list(range(8))],
                     "die": [list(range(8))], "core": [[i] for i in range(8)]},
    }],
}

A1 = {
    "jobId": 123, "user": "testuser", "project": "testproj", "cluster": "testcluster", "partition": "default",
    "walltime": 3600, "arrayJobId": 0, "numNodes": 1, "numHwthreads": 8, "numAcc": 0, "shared": "none",
    "monitoringStatus": 1, "smt": 1, "resources": [{"hostname": "host123", "hwthreads": list(range(8))}],
    "metaData": {"jobScript": "blablabla..."}, "startTime": 123456789,
}
A5 = {
    "jobId": 12345, "user": "testuser", "project": "testproj", "cluster": "testcluster", "partition": "default",
    "walltime": 3600, "numNodes": 1, "shared": "none", "monitoringStatus": 1, "smt": 1,
    "resources": [{"hostname": "host123"}], "startTime": 12345678,
}


@pytest.fixture
def archive(tmp_path) -> FileArchive:
    root = tmp_path / "archive"
    (root / "testcluster").mkdir(parents=True)
    (root / "version.txt").write_text("3\n")
    (root / "testcluster" / "cluster.json").write_text(json.dumps(TESTCLUSTER))
    return FileArchive(root)


@pytest.fixture
def registry(archive):
    return archive.registry()


def _count(engine, table=job_table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def _archive_job(archive: FileArchive, job: dict) -> None:
    """Put a stopped job's meta.json into the archive, as the archiver would."""
    meta = {k: v for k, v in job.items() if k != "id"}
    archive.import_job(meta, {})


# --- upstream cases A1-A8 ------------------------------------------------------------------------

def test_a1_start_assigns_subcluster_and_stores_everything(engine, registry):
    job = start_job(engine, registry, A1)
    assert isinstance(job["id"], int)
    stored = get_job(engine, job["id"])
    assert stored == job
    assert (stored["jobId"], stored["cluster"], stored["startTime"]) == (123, "testcluster", 123456789)
    assert stored["subCluster"] == "sc1"
    assert stored["partition"] == "default" and stored["walltime"] == 3600 and stored["arrayJobId"] == 0
    assert (stored["numNodes"], stored["numHwthreads"], stored["numAcc"]) == (1, 8, 0)
    assert (stored["monitoringStatus"], stored["smt"], stored["jobState"]) == (1, 1, "running")
    assert stored["resources"] == A1["resources"]
    assert stored["metaData"] == {"jobScript": "blablabla..."}
    # visible at once in lists (no job_cache staging)
    assert [j["id"] for j in list_jobs(engine)] == [job["id"]]


def test_a2_stop_sets_state_and_duration(engine, registry):
    started = start_job(engine, registry, A1)
    job = stop_job(engine, {"jobId": 123, "startTime": 123456789, "cluster": "testcluster",
                            "jobState": "completed", "stopTime": 123457789})
    assert job["id"] == started["id"]
    assert job["jobState"] == "completed" and job["duration"] == 1000
    assert job["monitoringStatus"] == 1  # archiving is a separate step
    assert job["metaData"] == {"jobScript": "blablabla..."}
    assert get_job(engine, job["id"]) == job


def test_a4_duplicate_within_24h_is_conflict(engine, registry):
    start_job(engine, registry, A1)
    with pytest.raises(Conflict):
        start_job(engine, registry, {**A1, "startTime": 123456790})
    with pytest.raises(Conflict):  # exact duplicate
        start_job(engine, registry, A1)
    with pytest.raises(Conflict):  # symmetric window: an earlier start within 24 h as well
        start_job(engine, registry, {**A1, "startTime": 123456789 - 86399})
    assert _count(engine) == 1
    # 24 h away in either direction, another cluster-local id, or a stopped old job: fine
    start_job(engine, registry, {**A1, "startTime": 123456789 + 86400})
    start_job(engine, registry, {**A1, "startTime": 123456789 - 86400})
    start_job(engine, registry, {**A1, "jobId": 124})
    assert _count(engine) == 4


def test_a5_a6_minimal_start_then_stop_without_start_time(engine, registry):
    job = start_job(engine, registry, A5)
    assert job["subCluster"] == "sc1" and job["numHwthreads"] == 0 and job["numAcc"] == 0
    stopped = stop_job(engine, {"jobId": 12345, "cluster": "testcluster", "jobState": "failed",
                                "stopTime": 12355678})
    assert stopped["id"] == job["id"] and stopped["jobState"] == "failed"
    assert stopped["duration"] == 12355678 - 12345678


def test_a7_used_nodes(engine, registry):
    a = start_job(engine, registry, A1)
    start_job(engine, registry, {**A5, "resources": [{"hostname": "host125"}, {"hostname": "host124"}],
                                 "numNodes": 2})
    assert used_nodes(engine, 123456790) == {"testcluster": ["host123", "host124", "host125"]}
    assert used_nodes(engine, 12345678) == {}  # start_time < ts, strictly
    assert used_nodes(engine, 12345679) == {"testcluster": ["host124", "host125"]}
    stop_job_by_id(engine, a["id"], {"stopTime": 123457789})
    stop_job(engine, {"jobId": 12345, "stopTime": 12355678})
    assert used_nodes(engine, 123456790) == {}


def test_a8_restart_of_same_job_id_stops_the_new_one(engine, registry):
    base = {**A5, "jobId": 999, "startTime": 200000000}
    first = start_job(engine, registry, base)
    stop_job(engine, {"jobId": 999, "cluster": "testcluster", "jobState": "failed", "stopTime": 200001000})
    second = start_job(engine, registry, {**base, "startTime": 300000000})
    job = stop_job(engine, {"jobId": 999, "startTime": 300000000, "cluster": "testcluster",
                            "jobState": "completed", "stopTime": 300001000})
    assert job["id"] == second["id"] != first["id"] and job["jobState"] == "completed"
    assert get_job(engine, first["id"])["jobState"] == "failed"
    # without startTime the newest job is taken: now stopped, so a Conflict
    with pytest.raises(Conflict):
        stop_job(engine, {"jobId": 999, "stopTime": 300002000})


# --- start_job validation ------------------------------------------------------------------------

@pytest.mark.parametrize("change, field", [
    ({"bogus": 1}, "bogus"),
    ({"resources": [{"hostname": "host123", "extra": 1}]}, "resources[0].extra"),
    ({"cluster": "nocluster"}, "cluster"),
    ({"cluster": None}, "cluster"),
    ({"subCluster": "sc9"}, "subCluster"),
    ({"resources": [{"hostname": "elsewhere1"}]}, "resources[0].hostname"),
    ({"resources": []}, "resources"),
    ({"resources": [{"hostname": "bad host"}]}, "resources[0].hostname"),
    ({"resources": [{"hostname": "../etc"}]}, "resources[0].hostname"),
    ({"user": ""}, "user"),
    ({"numNodes": 0}, "numNodes"),
    ({"numNodes": 2}, "numNodes"),
    ({"numAcc": -1}, "numAcc"),
    ({"numHwthreads": -1}, "numHwthreads"),
    ({"jobId": "abc"}, "jobId"),
    ({"jobId": -1}, "jobId"),
    ({"startTime": None}, "startTime"),
    ({"shared": "sometimes"}, "shared"),
    ({"metaData": {"jobName": 5}}, "metaData.jobName"),
    ({"tags": [{"type": "app"}]}, "tags[0].name"),
])
def test_start_rejects_bad_input(engine, registry, change, field):
    with pytest.raises(InvalidInput) as err:
        start_job(engine, registry, {**A1, **change})
    assert err.value.field == field
    assert _count(engine) == 0


def test_start_rejects_missing_num_nodes_and_job_id(engine, registry):
    for key in ("numNodes", "jobId"):
        with pytest.raises(InvalidInput) as err:
            start_job(engine, registry, {k: v for k, v in A1.items() if k != key})
        assert err.value.field == key


def test_start_defaults_and_forced_state(engine, registry):
    body = {k: v for k, v in A5.items() if k not in ("shared", "monitoringStatus")}
    job = start_job(engine, registry, {**body, "jobState": "completed", "subCluster": "sc1", "id": 77})
    assert (job["shared"], job["monitoringStatus"], job["jobState"]) == ("none", 1, "running")
    assert job["id"] != 77  # a client-supplied database id is ignored


def test_start_with_tags_creates_and_checks_scope(engine, registry):
    job = start_job(engine, registry, {**A1, "tags": [{"type": "app", "name": "vasp"},
                                                      {"type": "mine", "name": "x", "scope": "apiuser"}]},
                    viewer=API)
    assert sorted((t["type"], t["name"], t["scope"]) for t in job["tags"]) == \
        [("app", "vasp", "global"), ("mine", "x", "apiuser")]
    with pytest.raises(Forbidden):
        start_job(engine, registry, {**A1, "jobId": 5, "tags": [{"type": "app", "name": "y"}]}, viewer=PLAIN)
    assert _count(engine) == 1  # the forbidden start left nothing behind


def test_concurrent_duplicate_starts_one_wins(engine, registry):
    results: list[object] = []
    barrier = threading.Barrier(8)

    def worker(i: int) -> None:
        barrier.wait()
        try:
            results.append(start_job(engine, registry, {**A1, "startTime": A1["startTime"] + i}))
        except Exception as exc:  # noqa: BLE001 - collected and checked below
            results.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    wins = [r for r in results if isinstance(r, dict)]
    assert len(results) == 8 and len(wins) == 1, results
    assert all(isinstance(r, Conflict) for r in results if not isinstance(r, dict)), results
    assert _count(engine) == 1


def test_concurrent_starts_of_different_jobs_all_succeed(engine, registry):
    errors: list[Exception] = []
    barrier = threading.Barrier(8)

    def worker(i: int) -> None:
        barrier.wait()
        try:
            start_job(engine, registry, {**A1, "jobId": 1000 + i})
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == [] and _count(engine) == 8


# --- stop_job negative cases ---------------------------------------------------------------------

def test_stop_negative_cases(engine, registry):
    start_job(engine, registry, A1)
    stop = {"jobId": 123, "cluster": "testcluster", "startTime": 123456789, "stopTime": 123457789}
    with pytest.raises(InvalidInput) as err:
        stop_job(engine, {k: v for k, v in stop.items() if k != "jobId"})
    assert err.value.field == "jobId"
    with pytest.raises(InvalidInput) as err:
        stop_job(engine, {k: v for k, v in stop.items() if k != "stopTime"})
    assert err.value.field == "stopTime"
    with pytest.raises(InvalidInput) as err:
        stop_job(engine, {**stop, "extra": True})
    assert err.value.field == "extra"
    for state in ("running", "exploded"):
        with pytest.raises(InvalidInput) as err:
            stop_job(engine, {**stop, "jobState": state})
        assert err.value.field == "jobState"
    with pytest.raises(InvalidInput) as err:
        stop_job(engine, {**stop, "stopTime": 123456788})
    assert err.value.field == "stopTime"
    with pytest.raises(NotFound):
        stop_job(engine, {**stop, "jobId": 124})
    with pytest.raises(NotFound):
        stop_job(engine, {**stop, "cluster": "other"})
    with pytest.raises(NotFound):  # a plain user does not see other users' jobs
        stop_job(engine, stop, viewer=Viewer(username="someoneelse", roles=("user",)))
    job = stop_job(engine, stop)  # default state
    assert job["jobState"] == "completed"
    with pytest.raises(Conflict, match="already been stopped"):
        stop_job(engine, stop)
    with pytest.raises(Conflict):
        stop_job_by_id(engine, job["id"], {"stopTime": 123457789})


def test_stop_by_id(engine, registry):
    job = start_job(engine, registry, A1)
    with pytest.raises(InvalidInput):
        stop_job_by_id(engine, job["id"], {"jobId": 999, "stopTime": 123457789})
    with pytest.raises(NotFound):
        stop_job_by_id(engine, job["id"] + 100, {"stopTime": 123457789})
    done = stop_job_by_id(engine, job["id"], {"jobState": "timeout", "stopTime": 123460389})
    assert (done["jobState"], done["duration"]) == ("timeout", 3600)


def test_concurrent_stops_one_wins(engine, registry):
    start_job(engine, registry, A1)
    results: list[object] = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        barrier.wait()
        try:
            results.append(stop_job(engine, {"jobId": 123, "stopTime": 123457789}))
        except Exception as exc:  # noqa: BLE001
            results.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(isinstance(r, dict) for r in results) == 1
    assert all(isinstance(r, Conflict) for r in results if not isinstance(r, dict)), results


# --- tags ----------------------------------------------------------------------------------------

def test_tag_job_and_archive_meta(engine, registry, archive):
    job = start_job(engine, registry, A1)
    tagged = tag_job(engine, archive, job["id"], [{"type": "app", "name": "vasp"}], viewer=API)
    assert [(t["type"], t["name"], t["scope"]) for t in tagged["tags"]] == [("app", "vasp", "global")]
    assert not archive.exists("testcluster", 123, 123456789)  # running: no meta.json written

    stopped = stop_job(engine, {"jobId": 123, "stopTime": 123457789})
    _archive_job(archive, stopped)
    tagged = tag_job(engine, archive, job["id"], [{"type": "app", "name": "vasp"},  # attaching twice is fine
                                                 {"type": "class", "name": "big", "scope": "admin"}], viewer=API)
    # an api-only user may write admin-scoped tags but not read them (upstream ``internal/repository/tags.go``)
    assert sorted(t["name"] for t in tagged["tags"]) == ["vasp"]
    assert sorted(t["name"] for t in get_job(engine, job["id"], viewer=ADMIN_API)["tags"]) == ["big", "vasp"]
    meta = archive.load_meta("testcluster", 123, 123456789)
    assert sorted((t["type"], t["name"], t["scope"]) for t in meta["tags"]) == \
        [("app", "vasp", "global"), ("class", "big", "admin")]
    assert _count(engine, jobtag_table) == 2


def test_tag_job_permissions_and_errors(engine, registry, archive):
    job = start_job(engine, registry, A1)
    with pytest.raises(Forbidden):
        tag_job(engine, archive, job["id"], [{"type": "app", "name": "x"}], viewer=PLAIN)
    with pytest.raises(Forbidden):
        tag_job(engine, archive, job["id"], [{"type": "app", "name": "x", "scope": "admin"}],
                viewer=Viewer(username="s", roles=("support",)))
    # a user may tag own jobs privately
    mine = tag_job(engine, archive, job["id"], [{"type": "note", "name": "look", "scope": "testuser"}], viewer=PLAIN)
    assert [t["scope"] for t in mine["tags"]] == ["testuser"]
    # same type:name with another scope collides with UNIQUE(tag_type, tag_name)
    with pytest.raises(Conflict):
        tag_job(engine, archive, job["id"], [{"type": "note", "name": "look"}], viewer=API)
    with pytest.raises(NotFound):
        tag_job(engine, archive, job["id"] + 100, [{"type": "app", "name": "x"}], viewer=API)
    with pytest.raises(NotFound):  # job of another user
        tag_job(engine, archive, job["id"], [{"type": "n", "name": "x", "scope": "other"}],
                viewer=Viewer(username="other", roles=("user",)))
    for bad in ([{"type": "app"}], [{"type": "app", "name": "x", "id": 3}], {"type": "app"}):
        with pytest.raises(InvalidInput):
            tag_job(engine, archive, job["id"], bad, viewer=API)
    assert _count(engine, tag_table) == 1  # failed calls created nothing


def test_remove_job_tags(engine, registry, archive):
    job = start_job(engine, registry, {**A1, "tags": [{"type": "app", "name": "vasp"},
                                                      {"type": "class", "name": "big", "scope": "admin"},
                                                      {"type": "note", "name": "mine", "scope": "testuser"}]})
    stopped = stop_job(engine, {"jobId": 123, "stopTime": 123457789})
    _archive_job(archive, stopped)
    left = remove_job_tags(engine, archive, job["id"],
                           [{"type": "app", "name": "vasp"},
                            {"type": "note", "name": "mine", "scope": "testuser"}],  # private: skipped
                           viewer=ADMIN_API)
    assert sorted(t["name"] for t in left["tags"]) == ["big"]  # private tags of others are not shown
    assert sorted(t["name"] for t in get_job(engine, job["id"])["tags"]) == ["big", "mine"]
    meta = archive.load_meta("testcluster", 123, 123456789)
    assert sorted(t["name"] for t in meta["tags"]) == ["big", "mine"]
    with pytest.raises(NotFound):
        remove_job_tags(engine, archive, job["id"], [{"type": "app", "name": "nothere"}], viewer=API)
    with pytest.raises(Forbidden):
        remove_job_tags(engine, archive, job["id"], [{"type": "class", "name": "big", "scope": "admin"}],
                        viewer=Viewer(username="s", roles=("support",)))
    assert _count(engine, tag_table) == 3  # removing from a job keeps the tag itself


def test_delete_tags(engine, registry):
    start_job(engine, registry, {**A1, "tags": [{"type": "app", "name": "vasp"},
                                                {"type": "class", "name": "big", "scope": "admin"},
                                                {"type": "note", "name": "mine", "scope": "testuser"}]})
    deleted, requested = delete_tags(engine, [{"type": "app", "name": "vasp"},
                                              {"type": "class", "name": "big", "scope": "admin"},
                                              {"type": "note", "name": "mine", "scope": "testuser"},
                                              {"type": "no", "name": "such"}], viewer=API)
    assert (deleted, requested) == (2, 4)
    with engine.connect() as conn:
        assert conn.execute(select(tag_table.c.tag_name)).scalars().all() == ["mine"]
    assert _count(engine, jobtag_table) == 1
    start_job(engine, registry, {**A5, "tags": [{"type": "app", "name": "g"}]})  # viewer None may write
    with pytest.raises(Forbidden):
        delete_tags(engine, [{"type": "app", "name": "g"}], viewer=PLAIN)


# --- metadata ------------------------------------------------------------------------------------

def test_edit_meta_db_and_archive(engine, registry, archive):
    job = start_job(engine, registry, A1)
    edited = edit_meta(engine, archive, job["id"], "message", "hello", viewer=API)
    assert edited["metaData"] == {"jobScript": "blablabla...", "message": "hello"}
    assert get_job(engine, job["id"])["metaData"] == edited["metaData"]
    stopped = stop_job(engine, {"jobId": 123, "stopTime": 123457789})
    _archive_job(archive, stopped)
    edited = edit_meta_by_job(engine, archive, 123, "testcluster", None, "message", "bye", viewer=API)
    assert edited["metaData"]["message"] == "bye"
    meta = archive.load_meta("testcluster", 123, 123456789)
    assert meta["metaData"] == {"jobScript": "blablabla...", "message": "bye"}
    with engine.connect() as conn:
        raw = conn.execute(select(job_table.c.meta_data)).scalar_one()
    assert orjson.loads(raw)["message"] == "bye"


def test_edit_meta_errors(engine, registry, archive):
    job = start_job(engine, registry, A5)  # no metaData at all
    assert edit_meta(engine, None, job["id"], "jobName", "x")["metaData"] == {"jobName": "x"}
    with pytest.raises(NotFound):
        edit_meta(engine, archive, job["id"] + 1, "k", "v")
    with pytest.raises(Conflict):
        edit_meta_by_job(engine, archive, 4242, "testcluster", None, "k", "v")
    with pytest.raises(InvalidInput):
        edit_meta(engine, archive, job["id"], "", "v")
    with pytest.raises(InvalidInput):
        edit_meta(engine, archive, job["id"], "k", 5)
    with pytest.raises(NotFound):
        edit_meta(engine, archive, job["id"], "k", "v", viewer=Viewer(username="x", roles=("user",)))


# --- delete --------------------------------------------------------------------------------------

def test_delete_job_by_id_and_key(engine, registry):
    a = start_job(engine, registry, {**A1, "tags": [{"type": "app", "name": "vasp"}]})
    b = start_job(engine, registry, A5)
    assert delete_job(engine, a["id"]) == a["id"]
    assert _count(engine, jobtag_table) == 0 and _count(engine, tag_table) == 1
    with pytest.raises(Conflict):
        delete_job(engine, a["id"])
    with pytest.raises(Conflict):
        delete_job_by_key(engine, 12345, "testcluster", 1)
    assert delete_job_by_key(engine, 12345, "testcluster", 12345678) == b["id"]
    with pytest.raises(Conflict):
        delete_job_by_key(engine, 12345)
    assert _count(engine) == 0


@pytest.mark.parametrize("omit, kept", [("none", set()), ("all", {2, 3}), ("user", {3})])
def test_delete_jobs_before(engine, registry, omit, kept):
    start_job(engine, registry, {**A5, "jobId": 1, "startTime": 1000})
    start_job(engine, registry, {**A5, "jobId": 2, "startTime": 1000, "tags": [{"type": "app", "name": "v"},
                                                                              {"type": "jobClass", "name": "c"}]})
    start_job(engine, registry, {**A5, "jobId": 3, "startTime": 1000, "tags": [{"type": "app", "name": "v"},
                                                                              {"type": "user", "name": "u"}]})
    start_job(engine, registry, {**A5, "jobId": 4, "startTime": 5000})
    assert delete_jobs_before(engine, 5000, omit) == 3 - len(kept)
    with engine.connect() as conn:
        left = set(conn.execute(select(job_table.c.job_id)).scalars())
        orphans = conn.execute(select(func.count()).select_from(jobtag_table).where(
            jobtag_table.c.job_id.notin_(select(job_table.c.id)))).scalar_one()
    assert left == kept | {4} and orphans == 0
    with pytest.raises(InvalidInput):
        delete_jobs_before(engine, 5000, "some")
