"""init-db and import against the peer archive and upstream's importer cases (golden results)."""

from __future__ import annotations

import json
import shutil

import orjson
import pytest
from peerdata import PEER

from cc_backend.archive.fs import FileArchive
from cc_backend.errors import Conflict, InvalidInput
from cc_backend.importer import import_files, init_db, parse_import_spec
from cc_backend.jobs.query import find_jobs, list_jobs
from cc_backend.jobs.tags import list_tags

IMPORTER = PEER / "importer"


@pytest.fixture
def fritz_archive(tmp_path) -> FileArchive:
    root = tmp_path / "archive"
    (root / "fritz").mkdir(parents=True)
    (root / "version.txt").write_text("3\n")
    shutil.copyfile(IMPORTER / "cluster-fritz.json", root / "fritz" / "cluster.json")
    return FileArchive(root)


@pytest.mark.parametrize("case", ["fritzMinimal", "fritzError"])
def test_import_matches_upstream_golden(engine, fritz_archive, case):
    golden = json.loads((IMPORTER / f"{case}-golden.json").read_text())
    summary = import_files(engine, fritz_archive, [(str(IMPORTER / f"meta-{case}.input"), str(IMPORTER / f"data-{case}.json"))])
    assert summary.jobs == 1
    [job] = find_jobs(engine, golden["jobId"], golden["cluster"], golden["startTime"])
    assert job["duration"] == golden["duration"]
    assert job["monitoringStatus"] == 3
    job_id = golden["jobId"]
    job_dir = fritz_archive.root / "fritz" / str(job_id // 1000) / f"{job_id % 1000:03d}" / str(golden["startTime"])
    assert (job_dir / "meta.json").is_file()
    assert (job_dir / "data.json.gz").is_file() or (job_dir / "data.json").is_file()
    meta = orjson.loads((job_dir / "meta.json").read_bytes())
    assert meta["jobId"] == job_id and meta["duration"] == golden["duration"]
    # the footprint comes from the statistics and the subcluster's footprint metrics
    assert job["footprint"] and all(isinstance(v, float) for v in job["footprint"].values())
    loaded = fritz_archive.load_data("fritz", job_id, golden["startTime"])
    assert set(loaded) == set(orjson.loads((IMPORTER / f"data-{case}.json").read_bytes()))


def test_import_twice_is_a_conflict_and_changes_nothing(engine, fritz_archive):
    pair = [(str(IMPORTER / "meta-fritzMinimal.input"), str(IMPORTER / "data-fritzMinimal.json"))]
    import_files(engine, fritz_archive, pair)
    with pytest.raises(Conflict, match="already in the database"):
        import_files(engine, fritz_archive, pair)
    assert len(list_jobs(engine)) == 1


def test_import_rejects_unknown_fields_and_unknown_cluster(engine, fritz_archive, tmp_path):
    meta = orjson.loads((IMPORTER / "meta-fritzMinimal.input").read_bytes())
    bad = tmp_path / "bad.json"
    bad.write_bytes(orjson.dumps({**meta, "colour": "blue"}))
    with pytest.raises(InvalidInput, match="colour") as err:
        import_files(engine, fritz_archive, [(str(bad), str(IMPORTER / "data-fritzMinimal.json"))])
    assert err.value.field == "colour"
    bad.write_bytes(orjson.dumps({**meta, "cluster": "nosuch"}))
    with pytest.raises(InvalidInput, match="nosuch"):
        import_files(engine, fritz_archive, [(str(bad), str(IMPORTER / "data-fritzMinimal.json"))])
    bad.write_bytes(orjson.dumps({**meta, "cluster": "../etc"}))
    with pytest.raises(InvalidInput):
        import_files(engine, fritz_archive, [(str(bad), str(IMPORTER / "data-fritzMinimal.json"))])
    assert list_jobs(engine) == []
    assert not (fritz_archive.root / "etc").exists()


def test_import_computes_missing_statistics_from_data(engine, fritz_archive, tmp_path):
    meta = orjson.loads((IMPORTER / "meta-fritzMinimal.input").read_bytes())
    expected = meta.pop("statistics")
    path = tmp_path / "meta.json"
    path.write_bytes(orjson.dumps(meta))
    import_files(engine, fritz_archive, [(str(path), str(IMPORTER / "data-fritzMinimal.json"))])
    archived = fritz_archive.load_meta("fritz", meta["jobId"], meta["startTime"])
    for metric in ("cpu_load", "flops_any", "mem_bw"):
        assert archived["statistics"][metric]["avg"] == pytest.approx(expected[metric]["avg"], rel=0.02, abs=0.02)
        assert archived["statistics"][metric]["max"] == pytest.approx(expected[metric]["max"], rel=0.02)


def test_parse_import_spec():
    assert parse_import_spec("a.json:b.json,c:d") == [("a.json", "b.json"), ("c", "d")]
    with pytest.raises(InvalidInput, match="META"):
        parse_import_spec("only-meta.json")


def test_init_db_rebuilds_from_peer_archive(engine, peer_archive):
    summary = init_db(engine, FileArchive(peer_archive), workers=2)
    assert summary.jobs == 2 and summary.skipped == []
    jobs = {j["jobId"]: j for j in list_jobs(engine)}
    assert set(jobs) == {1403244, 1404397}
    job = jobs[1404397]
    assert job["startTime"] == 1609300556 and job["subCluster"] == "haswell"
    assert job["numNodes"] == len(job["resources"]) == 32
    assert job["monitoringStatus"] == 3


def test_init_db_skips_broken_files_and_keeps_tag_scopes(engine, peer_archive):
    archive = FileArchive(peer_archive)
    good = orjson.loads((peer_archive / "emmy/1404/397/1609300556/meta.json").read_bytes())
    tagged = {**good, "jobId": 1404398,
              "tags": [{"type": "app", "name": "gromacs", "scope": "global"},
                       {"type": "note", "name": "check", "scope": "alice"}]}
    d = peer_archive / "emmy/1404/398/1609300556"
    d.mkdir(parents=True)
    (d / "meta.json").write_bytes(orjson.dumps(tagged))
    broken = peer_archive / "emmy/1404/399/1609300556"
    broken.mkdir(parents=True)
    (broken / "meta.json").write_text("{ not json")
    wrong = peer_archive / "emmy/1404/400/1609300556"
    wrong.mkdir(parents=True)
    (wrong / "meta.json").write_bytes(orjson.dumps({**good, "jobId": 1404400, "jobState": "exploded"}))

    summary = init_db(engine, archive, workers=1)
    assert summary.jobs == 3
    reasons = dict(summary.skipped)
    assert "invalid JSON" in reasons[str(broken / "meta.json")]
    assert "jobState" in reasons[str(wrong / "meta.json")]
    scopes = {(t["type"], t["name"]): t["scope"] for t in list_tags(engine)}
    assert scopes == {("app", "gromacs"): "global", ("note", "check"): "alice"}
    [job] = find_jobs(engine, 1404398)
    assert {t["name"] for t in job["tags"]} == {"gromacs", "check"}

    # a second run flushes and rebuilds: same result, no duplicates
    again = init_db(engine, archive, workers=2)
    assert again.jobs == 3 and len(list_jobs(engine)) == 3
