"""Archive format v3 JSON schemas: real peer documents validate, broken ones fail at the right JSON path."""

from __future__ import annotations

import copy
import gzip
import shutil

import orjson
import pytest
from peerdata import ARCHIVE, IMPORTER, copy_archive

from cc_backend.archive.fs import read_data_file
from cc_backend.archive.validate import (
    SCHEMA_FILES,
    schema,
    validate_archive,
    validate_cluster,
    validate_data,
    validate_meta,
)
from cc_backend.errors import InvalidInput

EMMY_JOBS = ["emmy/1403/244/1608923076", "emmy/1404/397/1609300556"]


def _load(path):
    return orjson.loads(path.read_bytes())


@pytest.fixture(scope="module")
def emmy_meta() -> dict:
    return _load(ARCHIVE / EMMY_JOBS[1] / "meta.json")


@pytest.fixture(scope="module")
def fritz_meta() -> dict:
    return _load(IMPORTER / "meta-fritzError.input")


@pytest.fixture(scope="module")
def fritz_data() -> dict:
    return _load(IMPORTER / "data-fritzMinimal.json")


@pytest.fixture(scope="module")
def fritz_cluster() -> dict:
    return _load(ARCHIVE / "fritz" / "cluster.json")


def _invalid(check, doc, path: str) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        check(doc)
    assert info.value.field == path, info.value.message
    assert path in info.value.message
    return info.value


# -- real documents --------------------------------------------------------------------------------


def test_schemas_are_packaged_and_v3():
    assert len(SCHEMA_FILES) == 6
    meta = schema("job-meta")
    assert "exclusive" not in meta["properties"]
    assert meta["properties"]["shared"]["enum"] == ["none", "single_user", "multi_user"]
    assert len(meta["properties"]["jobState"]["enum"]) == 12
    for key in ("submitTime", "energy", "energyFootprint", "footprint", "requestedMemory", "stopTime"):
        assert key in meta["properties"]
    assert meta["properties"]["tags"]["items"]["properties"]["scope"]["type"] == "string"
    sub = schema("cluster")["$defs"]["metricConfig"]["properties"]["subClusters"]["items"]["properties"]
    assert {"remove", "restrict", "footprint", "energy", "lowerIsBetter"} <= set(sub)
    schema("job-meta")["title"] = "changed"  # callers get copies
    assert schema("job-meta")["title"] == "Job meta data"


@pytest.mark.parametrize("path", [*sorted(ARCHIVE.glob("*/cluster.json")), IMPORTER / "cluster-fritz.json"], ids=str)
def test_real_cluster_files_validate(path):
    validate_cluster(_load(path))


@pytest.mark.parametrize("job", EMMY_JOBS)
def test_real_emmy_jobs_validate(job):
    validate_meta(_load(ARCHIVE / job / "meta.json"))
    validate_data(read_data_file(ARCHIVE / job / "data.json.gz"))


@pytest.mark.parametrize("name", ["fritzMinimal", "fritzError"])
def test_importer_inputs_validate(name):
    validate_meta(_load(IMPORTER / f"meta-{name}.input"))
    validate_data(_load(IMPORTER / f"data-{name}.json"))


def test_peer_archive_validates():
    assert validate_archive(ARCHIVE) == []


def test_go_marshalled_job_shape_validates(fritz_meta):
    # What upstream writes for a job: nulls for empty maps, energy 0, ids, scoped tags, concurrentJobs.
    doc = dict(fritz_meta)
    doc.update(
        id=17, submitTime=1675956700, energy=0, energyFootprint=None, footprint={"cpu_load_avg": 52.72},
        requestedMemory=0, concurrentJobs={"items": None, "count": 0},
        tags=[{"id": 1, "type": "app", "name": "vasp", "scope": "global"}],
    )
    validate_meta(doc)


def test_go_marshalled_cluster_shape_validates(tmp_path):
    from cc_backend.archive.fs import FileArchive

    fritz = FileArchive(copy_archive(tmp_path)).registry().get("fritz")
    validate_cluster(orjson.loads(orjson.dumps(fritz.to_dict())))


# -- broken meta.json ------------------------------------------------------------------------------


def test_v2_exclusive_is_rejected(emmy_meta):
    doc = dict(emmy_meta, exclusive=1)
    err = _invalid(validate_meta, doc, "$")
    assert "exclusive" in err.message


@pytest.mark.parametrize(
    "mutate,path",
    [
        (lambda d: d.pop("jobId"), "$"),
        (lambda d: d.update(jobId="1404397"), "$.jobId"),
        (lambda d: d.update(jobState="stopped"), "$.jobState"),
        (lambda d: d.update(shared="exclusive"), "$.shared"),
        (lambda d: d.update(numNodes=0), "$.numNodes"),
        (lambda d: d.update(monitoringStatus=4), "$.monitoringStatus"),
        (lambda d: d.update(resources=[]), "$.resources"),
        (lambda d: d["resources"].__setitem__(3, {"host": "e0232"}), "$.resources[3]"),
        (lambda d: d["resources"].__setitem__(0, {"hostname": "e0151", "hwthreads": ["0"]}), "$.resources[0].hwthreads[0]"),
        (lambda d: d["statistics"]["mem_used"].update(avg=-1), "$.statistics.mem_used.avg"),
        (lambda d: d["statistics"]["mem_used"].pop("unit"), "$.statistics.mem_used"),
        (lambda d: d["statistics"]["mem_used"]["unit"].update(prefix="X"), "$.statistics.mem_used.unit.prefix"),
        (lambda d: d.update(tags=[{"type": "app"}]), "$.tags[0]"),
        (lambda d: d.update(metaData={"jobName": 5}), "$.metaData.jobName"),
        (lambda d: d.update(footprint={"cpu_load_avg": "high"}), "$.footprint.cpu_load_avg"),
        (lambda d: d.update(stopTime="later"), "$.stopTime"),
    ],
)
def test_broken_meta(emmy_meta, mutate, path):
    doc = copy.deepcopy(emmy_meta)
    mutate(doc)
    _invalid(validate_meta, doc, path)


def test_meta_must_be_an_object():
    _invalid(validate_meta, [], "$")


# -- broken data.json ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mutate,path",
    [
        (lambda d: d["cpu_load"].update(rack=d["cpu_load"]["node"]), "$.cpu_load"),
        (lambda d: d.update(cpu_load={}), "$.cpu_load"),
        (lambda d: d["cpu_load"]["node"].pop("timestep"), "$.cpu_load.node"),
        (lambda d: d["cpu_load"]["node"].update(timestep=0), "$.cpu_load.node.timestep"),
        (lambda d: d["cpu_load"]["node"]["series"][0].pop("hostname"), "$.cpu_load.node.series[0]"),
        (lambda d: d["cpu_load"]["node"]["series"][0].update(data=[]), "$.cpu_load.node.series[0].data"),
        (lambda d: d["cpu_load"]["node"]["series"][0]["data"].__setitem__(1, "1.0"), "$.cpu_load.node.series[0].data[1]"),
        (lambda d: d["cpu_load"]["node"]["series"][0]["data"].__setitem__(2, True), "$.cpu_load.node.series[0].data[2]"),
        (lambda d: d["cpu_load"]["node"]["series"][0]["statistics"].pop("avg"), "$.cpu_load.node.series[0].statistics"),
        (lambda d: d["cpu_load"]["node"].update(statisticsSeries={"mean": [1, 2]}), "$.cpu_load.node.statisticsSeries.mean"),
        (lambda d: d["cpu_load"]["node"].update(extra=1), "$.cpu_load.node"),
    ],
)
def test_broken_data(fritz_data, mutate, path):
    doc = copy.deepcopy(fritz_data)
    mutate(doc)
    _invalid(validate_data, doc, path)


def test_data_allows_nulls_ids_and_missing_series_statistics(fritz_data):
    doc = copy.deepcopy(fritz_data)
    series = doc["cpu_load"]["node"]["series"][0]
    series.pop("statistics")
    series["data"] = [None] * len(series["data"])
    series["id"] = "0"
    doc["cpu_load"]["node"]["statisticsSeries"] = {"min": [0, None, 1], "max": [1, 2, 3], "percentiles": {"25": [1, 1, 1]}}
    validate_data(doc)


def test_error_message_is_bounded(fritz_data):
    doc = copy.deepcopy(fritz_data)
    doc["cpu_load"]["node"]["series"][0]["statistics"] = "x" * 100_000
    with pytest.raises(InvalidInput) as info:
        validate_data(doc)
    assert len(info.value.message) < 500


# -- broken cluster.json ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mutate,path",
    [
        (lambda d: d.pop("subClusters"), "$"),
        (lambda d: d.update(metricConfig=[]), "$.metricConfig"),
        (lambda d: d["metricConfig"][0].update(aggregation="median"), "$.metricConfig[0].aggregation"),
        (lambda d: d["metricConfig"][0].update(scope="rack"), "$.metricConfig[0].scope"),
        (lambda d: d["metricConfig"][0].update(timestep=0), "$.metricConfig[0].timestep"),
        (lambda d: d["metricConfig"][0].pop("peak"), "$.metricConfig[0]"),
        (lambda d: d["metricConfig"][0]["subClusters"][0].update(remove="yes"), "$.metricConfig[0].subClusters[0].remove"),
        (lambda d: d["metricConfig"][2]["subClusters"][0].update(footprint="median"), "$.metricConfig[2].subClusters[0].footprint"),
        (lambda d: d["subClusters"][0].pop("topology"), "$.subClusters[0]"),
        (lambda d: d["subClusters"][1]["topology"].update(socket=[0, 1]), "$.subClusters[1].topology.socket[0]"),
    ],
)
def test_broken_cluster(fritz_cluster, mutate, path):
    doc = copy.deepcopy(fritz_cluster)
    mutate(doc)
    _invalid(validate_cluster, doc, path)


# -- whole archive ---------------------------------------------------------------------------------


def test_validate_archive_reports_every_problem(tmp_path):
    root = copy_archive(tmp_path)
    job1, job2 = (root / j for j in EMMY_JOBS)
    (root / "alex" / "cluster.json").write_text("{")
    fritz = _load(root / "fritz" / "cluster.json")
    fritz["metricConfig"][0]["timestep"] = 0
    (root / "fritz" / "cluster.json").write_bytes(orjson.dumps(fritz))
    meta = _load(job1 / "meta.json")
    meta["jobState"] = "stopped"
    (job1 / "meta.json").write_bytes(orjson.dumps(meta))
    data = read_data_file(job2 / "data.json.gz")
    data["cpu_load"]["node"]["series"][0]["data"][0] = "x"
    (job2 / "data.json.gz").write_bytes(gzip.compress(orjson.dumps(data)))
    problems = validate_archive(root)
    paths = [p for p, _ in problems]
    assert paths == [
        str(root / "alex" / "cluster.json"),
        str(root / "fritz" / "cluster.json"),
        str(job1 / "meta.json"),
        str(job2 / "data.json.gz"),
    ]
    messages = dict(problems)
    assert "not valid JSON" in messages[str(root / "alex" / "cluster.json")]
    assert "$.metricConfig[0].timestep" in messages[str(root / "fritz" / "cluster.json")]
    assert "$.jobState" in messages[str(job1 / "meta.json")]
    assert "$.cpu_load.node.series[0].data[0]" in messages[str(job2 / "data.json.gz")]


def test_validate_archive_consistency_checks(tmp_path):
    root = copy_archive(tmp_path)
    job1, job2 = (root / j for j in EMMY_JOBS)
    meta = _load(job1 / "meta.json")
    meta.update(jobId=1403245, subCluster="nope")
    (job1 / "meta.json").write_bytes(orjson.dumps(meta))
    (job2 / "data.json.gz").unlink()
    (root / "version.txt").write_text("2\n")
    wrong = root / "emmy" / "9" / "009" / "1"
    wrong.mkdir(parents=True)
    shutil.copy(job2 / "meta.json", wrong / "meta.json")
    (wrong / "data.json").write_bytes(b"{}")
    problems = validate_archive(root)
    text = "\n".join(f"{p}: {m}" for p, m in problems)
    assert f"{root / 'version.txt'}: unsupported version '2'" in text
    assert "$.jobId 1403245 does not belong in 1403/244" in text
    assert "$.subCluster 'nope' is not a subcluster of 'emmy'" in text
    assert f"{job2}: neither data.json.gz nor data.json exists" in text
    assert "$.jobId 1404397 does not belong in 9/009" in text
    assert "$.startTime 1609300556 does not match directory 1" in text


def test_validate_archive_missing_root(tmp_path):
    assert validate_archive(tmp_path / "none") == [(str(tmp_path / "none"), "job archive directory does not exist")]
