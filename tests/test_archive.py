"""File archive backend and cluster registry against a copy of the peer archive (upstream pkg/archive tests)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import orjson
import pytest
from peerdata import ARCHIVE, copy_archive

from cc_backend.archive.cluster import ClusterRegistry, assign_subcluster, load_cluster_config
from cc_backend.archive.fs import GZIP_THRESHOLD, FileArchive, iter_meta_paths
from cc_backend.archive.paths import job_relpath
from cc_backend.errors import ArchiveError, InvalidInput, NotFound


@pytest.fixture
def archive_root(tmp_path) -> Path:
    return copy_archive(tmp_path)


@pytest.fixture
def archive(archive_root) -> FileArchive:
    return FileArchive(archive_root)


def _meta(job_id: int = 42, start: int = 1234567890, cluster: str = "fritz", **extra) -> dict:
    meta = {
        "jobId": job_id,
        "user": "u1",
        "project": "p1",
        "cluster": cluster,
        "subCluster": "main",
        "numNodes": 1,
        "shared": "none",
        "jobState": "completed",
        "startTime": start,
        "duration": 60,
        "resources": [{"hostname": "f0101"}],
        "statistics": {},
    }
    meta.update(extra)
    return meta


def _data(samples: int) -> dict:
    return {
        "cpu_load": {
            "node": {
                "unit": {"base": ""},
                "timestep": 60,
                "series": [{"hostname": "f0101", "statistics": {"avg": 1, "min": 0, "max": 2}, "data": [1.0] * samples}],
            }
        }
    }


# -- init / version -------------------------------------------------------------------------------


def test_init_fixture(archive):
    assert archive.version == 3
    assert archive.clusters() == ["alex", "emmy", "fritz"]


def test_peer_archive_is_readable_in_place():
    # Read-only use of the shared archive must not try to write anything.
    a = FileArchive(ARCHIVE)
    assert a.version == 3 and len(list(a.iter_jobs())) == 2


def test_init_without_path():
    with pytest.raises(ArchiveError):
        FileArchive("")


def test_init_nonexistent_dir(tmp_path):
    with pytest.raises(ArchiveError, match="does not exist"):
        FileArchive(tmp_path / "nope")


def test_init_on_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ArchiveError):
        FileArchive(f)


def test_from_config(archive_root, tmp_path):
    assert FileArchive.from_config(orjson.dumps({"kind": "file", "path": str(archive_root)})).version == 3
    assert FileArchive.from_config({"path": str(archive_root)}).clusters() == ["alex", "emmy", "fritz"]
    with pytest.raises(ArchiveError, match="not valid JSON"):
        FileArchive.from_config('{"kind": "file", "path": ')
    with pytest.raises(ArchiveError, match="'path' is required"):
        FileArchive.from_config('{"kind": "file"}')
    with pytest.raises(ArchiveError, match="does not exist"):
        FileArchive.from_config({"kind": "file", "path": str(tmp_path / "missing")})
    with pytest.raises(ArchiveError, match="not supported"):
        FileArchive.from_config({"kind": "s3", "path": str(archive_root)})


def test_bootstrap_empty_directory(tmp_path):
    root = tmp_path / "new"
    root.mkdir()
    (root / ".gitkeep").write_text("")  # dot-files do not count as content
    a = FileArchive(root)
    assert a.version == 3
    assert (root / "version.txt").read_bytes() == b"3\n"
    assert a.clusters() == []
    assert list(a.iter_jobs()) == []


def test_missing_version_in_non_empty_directory(tmp_path):
    root = tmp_path / "old"
    (root / "emmy").mkdir(parents=True)
    with pytest.raises(ArchiveError, match="no version.txt"):
        FileArchive(root)
    assert not (root / "version.txt").exists()


@pytest.mark.parametrize("content,pattern", [("2\n", "unsupported version 2, need 3"), ("1", "unsupported version 1"), ("three", "expected a version number")])
def test_wrong_version(archive_root, content, pattern):
    (archive_root / "version.txt").write_text(content)
    with pytest.raises(ArchiveError, match=pattern):
        FileArchive(archive_root)


def test_version_without_newline_is_accepted(archive_root):
    (archive_root / "version.txt").write_text("3")
    assert FileArchive(archive_root).version == 3


# -- path rule ------------------------------------------------------------------------------------


def test_path_rule_examples(archive):
    assert job_relpath("emmy", 1403244, 1608923076) == "emmy/1403/244/1608923076"
    assert job_relpath("fritz", 42, 1234567890) == "fritz/0/042/1234567890"
    assert archive.job_dir("emmy", 1403244, 1608923076) == archive.root / "emmy" / "1403" / "244" / "1608923076"
    assert archive.job_dir("fritz", 42, 1234567890).relative_to(archive.root).as_posix() == "fritz/0/042/1234567890"


@pytest.mark.parametrize("cluster", ["../etc", "a/b", "a\\b", "..", "", "x/../../y"])
def test_path_traversal_cluster_rejected(archive, cluster):
    with pytest.raises(InvalidInput):
        archive.exists(cluster, 1, 1)
    with pytest.raises(InvalidInput):
        archive.load_meta(cluster, 1, 1)
    with pytest.raises(InvalidInput):
        archive.load_cluster(cluster)
    with pytest.raises(InvalidInput):
        archive.import_job(_meta(cluster=cluster), _data(1))


@pytest.mark.parametrize("job_id", ["../1", "1/2", -5, 1.5, True, None])
def test_bad_job_ids_rejected(archive, job_id):
    with pytest.raises(InvalidInput):
        archive.job_dir("emmy", job_id, 1)
    with pytest.raises(InvalidInput):
        archive.job_dir("emmy", 1, job_id)


@pytest.mark.parametrize("hostname", ["../x", "a/b", "a\\b", ""])
def test_import_rejects_bad_hostnames(archive, hostname):
    with pytest.raises(InvalidInput, match="hostname"):
        archive.import_job(_meta(resources=[{"hostname": hostname}]), _data(1))
    assert not archive.exists("fritz", 42, 1234567890)


# -- reading the fixture --------------------------------------------------------------------------


def test_load_meta(archive):
    meta = archive.load_meta("emmy", 1404397, 1609300556)
    assert meta["jobId"] == 1404397
    assert meta["startTime"] == 1609300556
    assert meta["numNodes"] == len(meta["resources"])
    assert meta["stopTime"] == 1609387081


def test_load_meta_accepts_string_digits(archive):
    assert archive.load_meta("emmy", "1404397", "1609300556")["jobId"] == 1404397


def test_load_data_gz_every_metric_has_node_scope(archive):
    assert archive.data_path("emmy", 1403244, 1608923076).name == "data.json.gz"
    data = archive.load_data("emmy", 1403244, 1608923076)
    assert data
    for metric, scopes in data.items():
        assert "node" in scopes, metric


def test_exists_and_not_found(archive):
    assert archive.exists("emmy", 1403244, 1608923076)
    assert not archive.exists("emmy", 1403244, 1608923077)
    assert not archive.exists("nocluster", 1, 1)
    with pytest.raises(NotFound):
        archive.load_meta("emmy", 1403244, 1)
    with pytest.raises(NotFound):
        archive.load_data("emmy", 1403244, 1)
    with pytest.raises(NotFound):
        archive.load_cluster("nocluster")


def test_broken_files_raise_archive_error_naming_the_file(archive):
    meta = archive.job_dir("emmy", 1404397, 1609300556) / "meta.json"
    meta.write_text("{broken")
    with pytest.raises(ArchiveError, match=str(meta)):
        archive.load_meta("emmy", 1404397, 1609300556)
    gz = archive.job_dir("emmy", 1404397, 1609300556) / "data.json.gz"
    gz.write_bytes(b"not gzip")
    with pytest.raises(ArchiveError, match=str(gz)):
        archive.load_data("emmy", 1404397, 1609300556)


def test_load_cluster(archive):
    emmy = archive.load_cluster("emmy")
    assert emmy.sub_clusters[0].cores_per_socket == 4
    assert emmy.raw == orjson.loads((ARCHIVE / "emmy" / "cluster.json").read_bytes())
    assert archive.load_cluster_raw("fritz") == orjson.loads((ARCHIVE / "fritz" / "cluster.json").read_bytes())


def test_load_cluster_name_must_match_directory(archive, archive_root):
    doc = orjson.loads((archive_root / "emmy" / "cluster.json").read_bytes())
    doc["name"] = "other"
    (archive_root / "emmy" / "cluster.json").write_bytes(orjson.dumps(doc))
    with pytest.raises(ArchiveError, match="directory is 'emmy'"):
        archive.load_cluster("emmy")


def test_iter_jobs_yields_only_emmy(archive):
    jobs = list(archive.iter_jobs())
    assert [(m["cluster"], m["jobId"]) for _, m in jobs] == [("emmy", 1403244), ("emmy", 1404397)]
    for path, meta in jobs:
        assert path.endswith(os.path.join(job_relpath("emmy", meta["jobId"], meta["startTime"]), "meta.json"))


def test_iter_jobs_with_data(archive):
    jobs = list(archive.iter_jobs(load_data=True))
    assert len(jobs) == 2
    for _, meta, data in jobs:
        assert meta["cluster"] == "emmy" and "cpu_load" in data


def test_iter_meta_paths(archive, archive_root):
    paths = list(archive.iter_meta_paths())
    assert paths == [
        str(archive_root / "emmy" / "1403" / "244" / "1608923076" / "meta.json"),
        str(archive_root / "emmy" / "1404" / "397" / "1609300556" / "meta.json"),
    ]
    assert all(isinstance(p, str) for p in paths)
    assert list(iter_meta_paths(str(archive_root))) == paths


def test_iter_orders_numerically_and_skips_hidden(archive, archive_root):
    for job_id in (9, 10, 1000, 999):
        archive.import_job(_meta(job_id=job_id, start=100), _data(1))
    (archive_root / "fritz" / ".trash" / "0" / "000" / "1").mkdir(parents=True)
    fritz = [m["jobId"] for _, m in archive.iter_jobs() if m["cluster"] == "fritz"]
    assert fritz == [9, 10, 999, 1000]


def test_iter_jobs_errors(archive, archive_root):
    # A job directory without meta.json (import in progress) is skipped silently.
    (archive_root / "fritz" / "1" / "001" / "5").mkdir(parents=True)
    assert len(list(archive.iter_jobs())) == 2
    bad = archive_root / "emmy" / "1404" / "397" / "1609300556" / "meta.json"
    bad.write_text("[")
    with pytest.raises(ArchiveError, match="not valid JSON"):
        list(archive.iter_jobs())
    seen = []
    good = list(archive.iter_jobs(on_error=lambda p, e: seen.append(p)))
    assert [m["jobId"] for _, m in good] == [1403244]
    assert seen == [str(bad)]


def test_iter_jobs_with_data_missing_data_file(archive, archive_root):
    (archive_root / "emmy" / "1403" / "244" / "1608923076" / "data.json.gz").unlink()
    seen = []
    jobs = list(archive.iter_jobs(load_data=True, on_error=lambda p, e: seen.append(str(e))))
    assert len(jobs) == 1 and "neither data.json.gz nor data.json" in seen[0]


# -- writing --------------------------------------------------------------------------------------


def test_import_small_job_writes_plain_data(archive):
    meta, data = _meta(), _data(3)
    assert len(orjson.dumps(data)) <= GZIP_THRESHOLD
    d = archive.import_job(meta, data)
    assert d == archive.root / "fritz" / "0" / "042" / "1234567890"
    assert sorted(p.name for p in d.iterdir()) == ["data.json", "meta.json"]
    assert archive.exists("fritz", 42, 1234567890)
    assert archive.load_meta("fritz", 42, 1234567890) == meta
    assert archive.load_data("fritz", 42, 1234567890) == data
    assert orjson.loads((d / "data.json").read_bytes()) == data


def test_import_large_job_writes_gzip(archive):
    data = _data(1000)
    assert len(orjson.dumps(data)) > GZIP_THRESHOLD
    d = archive.import_job(_meta(job_id=1403244, start=5), data)
    assert sorted(p.name for p in d.iterdir()) == ["data.json.gz", "meta.json"]
    assert orjson.loads(gzip.decompress((d / "data.json.gz").read_bytes())) == data
    assert archive.load_data("fritz", 1403244, 5) == data


def test_gzip_threshold_boundary(archive):
    # Find sample counts whose encoding is exactly at / just above the threshold.
    base = len(orjson.dumps(_data(0)))
    per_sample = len(orjson.dumps(_data(2))) - len(orjson.dumps(_data(1)))
    n = (GZIP_THRESHOLD - base + 1) // per_sample
    while len(orjson.dumps(_data(n + 1))) <= GZIP_THRESHOLD:
        n += 1
    at, above = _data(n), _data(n + 1)
    assert len(orjson.dumps(at)) <= GZIP_THRESHOLD < len(orjson.dumps(above))
    assert (archive.import_job(_meta(job_id=1), at) / "data.json").is_file()
    assert (archive.import_job(_meta(job_id=2), above) / "data.json.gz").is_file()


def test_reimport_replaces_the_other_encoding(archive):
    d = archive.import_job(_meta(), _data(1000))
    assert (d / "data.json.gz").exists()
    archive.import_job(_meta(), _data(2))
    assert not (d / "data.json.gz").exists()
    assert archive.load_data("fritz", 42, 1234567890) == _data(2)
    archive.import_job(_meta(), _data(1000))
    assert not (d / "data.json").exists()


def test_writes_are_atomic_and_leave_no_temp_files(archive):
    d = archive.import_job(_meta(), _data(1000))
    meta = archive.load_meta("fritz", 42, 1234567890)
    meta["tags"] = [{"type": "app", "name": "vasp", "scope": "global"}]
    archive.store_meta(meta)
    assert archive.load_meta("fritz", 42, 1234567890)["tags"][0]["name"] == "vasp"
    assert sorted(p.name for p in d.iterdir()) == ["data.json.gz", "meta.json"]


def test_failed_write_keeps_previous_file(archive, monkeypatch):
    archive.import_job(_meta(), _data(1))
    before = (archive.job_dir("fritz", 42, 1234567890) / "meta.json").read_bytes()

    class Unserialisable:
        pass

    with pytest.raises(InvalidInput):
        archive.store_meta(_meta(extra=Unserialisable()))
    d = archive.job_dir("fritz", 42, 1234567890)
    assert (d / "meta.json").read_bytes() == before
    assert sorted(p.name for p in d.iterdir()) == ["data.json", "meta.json"]


def test_store_meta_of_unknown_job(archive):
    with pytest.raises(NotFound):
        archive.store_meta(_meta(job_id=7))
    assert not archive.job_dir("fritz", 7, 1234567890).exists()


def test_import_requires_identity_fields(archive):
    with pytest.raises(InvalidInput, match="jobId"):
        archive.import_job({k: v for k, v in _meta().items() if k != "jobId"}, _data(1))
    with pytest.raises(InvalidInput, match="cluster"):
        archive.import_job(_meta(cluster=None), _data(1))


def test_remove_job_removes_empty_parents(archive, archive_root):
    archive.import_job(_meta(job_id=42, start=1), _data(1))
    archive.import_job(_meta(job_id=42, start=2), _data(1))
    archive.remove_job("fritz", 42, 1)
    assert not (archive_root / "fritz/0/042/1").exists()
    assert (archive_root / "fritz/0/042/2").is_dir()  # sibling keeps the parents alive
    archive.remove_job("fritz", 42, 2)
    assert not (archive_root / "fritz/0").exists()
    assert (archive_root / "fritz" / "cluster.json").is_file()
    with pytest.raises(NotFound):
        archive.remove_job("fritz", 42, 2)


def test_remove_fixture_job(archive, archive_root):
    archive.remove_job("emmy", 1403244, 1608923076)
    assert not (archive_root / "emmy" / "1403").exists()
    assert [m["jobId"] for _, m in archive.iter_jobs()] == [1404397]


def test_validate_option_checks_documents(archive_root):
    a = FileArchive(archive_root, validate=True)
    assert a.load_meta("emmy", 1404397, 1609300556)["jobId"] == 1404397
    assert a.load_data("emmy", 1403244, 1608923076)
    assert len(a.registry()) == 3
    with pytest.raises(InvalidInput, match=r"\$\.jobState"):
        a.import_job(_meta(jobState="stopped"), _data(1))
    bad = a.load_meta("emmy", 1404397, 1609300556)
    bad["exclusive"] = 1
    (a.job_dir("emmy", 1404397, 1609300556) / "meta.json").write_bytes(orjson.dumps(bad))
    with pytest.raises(ArchiveError, match="exclusive"):
        a.load_meta("emmy", 1404397, 1609300556)


def test_store_cluster(archive):
    doc = archive.load_cluster_raw("emmy")
    doc["metricConfig"][0]["peak"] = 8
    archive.store_cluster("emmy", doc)
    assert archive.registry(refresh=True).get("emmy").metric("cpu_load").peak == 8
    doc["metricConfig"][0]["timestep"] = 0
    with pytest.raises(ArchiveError, match="timestep"):
        archive.store_cluster("emmy", doc)


# -- cluster registry -----------------------------------------------------------------------------


def test_registry_fritz_spr1tb(archive):
    sc = archive.registry().subcluster("fritz", "spr1tb")
    assert len(sc.footprint) == 3
    assert sc.footprint == ("cpu_load", "mem_used", "flops_any")
    assert len(sc.metric_config) == 15
    assert [m.name for m in sc.metric_config if m.lower_is_better] == ["mem_used"]
    assert sc.energy_footprint == ("cpu_power", "mem_power")
    for removed in ("flops_sp", "flops_dp", "mem_bw", "clock"):
        assert sc.metric(removed) is None
    mem_used = sc.metric("mem_used")
    assert (mem_used.peak, mem_used.normal, mem_used.caution, mem_used.alert) == (1024, 512, 900, 1000)
    assert mem_used.footprint == "max" and mem_used.sub_clusters == ()


def test_registry_fritz_spr2tb(archive):
    reg = archive.registry()
    sc = reg.subcluster("fritz", "spr2tb")
    assert sc.metric("flops_any") is None
    assert reg.metric_config("fritz", "spr2tb", "flops_any") is None
    assert sc.metric("cpu_power") is not None
    assert reg.metric_config("fritz", "spr2tb", "cpu_power").energy == "power"
    assert len(sc.metrics) == len(sc.metric_config) == 14
    assert sc.footprint == ("cpu_load", "mem_used")


def test_registry_fritz_main_and_cluster_level(archive):
    reg = archive.registry()
    fritz = reg.get("fritz")
    assert len(fritz.metric_config) == 19
    main = fritz.sub_cluster("main")
    assert len(main.metric_config) == 19
    assert main.footprint == ("cpu_load", "mem_used", "flops_any", "mem_bw")
    assert main.metric("mem_used").peak == 256
    assert fritz.metric("flops_any").sub_clusters[1].remove


def test_registry_emmy_overrides_inherit_unset_keys(archive):
    reg = archive.registry()
    haswell = reg.subcluster("emmy", "haswell")
    assert haswell.metric("cpu_user") is None and haswell.metric("nfs4_read") is None
    clock = haswell.metric("clock")
    assert clock.peak == 3500 and clock.unit.prefix == "M" and clock.scope == "hwthread"
    icelake = reg.subcluster("emmy", "icelake")
    assert icelake.metric("cpu_load").peak == 32 and icelake.metric("cpu_user") is not None
    assert reg.subcluster("emmy", "kabylake").metric("cpu_load").peak == 4


def test_registry_lookups_and_errors(archive):
    reg = archive.registry()
    assert reg.names() == ["alex", "emmy", "fritz"]
    assert "alex" in reg and len(reg) == 3
    assert reg.find("nope") is None
    with pytest.raises(NotFound, match="unknown cluster"):
        reg.get("nope")
    with pytest.raises(NotFound, match="subcluster 'nope'"):
        reg.subcluster("fritz", "nope")
    assert reg.metric_config("fritz", "main", "unknown_metric") is None
    assert archive.registry() is reg
    assert archive.registry(refresh=True) is not reg


def test_assign_subcluster(archive):
    reg = archive.registry()
    assert reg.assign_subcluster("emmy", "w1130").name == "haswell"
    assert reg.assign_subcluster("emmy", "w2301").name == "icelake"
    assert reg.assign_subcluster("fritz", "f0101").name == "main"
    assert reg.assign_subcluster("fritz", "f2157").name == "spr1tb"
    # Overlapping nodelists: the first subcluster in file order wins (upstream iterates a Go map).
    assert reg.assign_subcluster("fritz", "f2185").name == "spr1tb"
    assert reg.assign_subcluster("alex", "a0831").name == "a100m80"
    with pytest.raises(NotFound, match="f9999"):
        reg.assign_subcluster("fritz", "f9999")


def _cluster_doc(*nodes: str) -> dict:
    return {
        "name": "test",
        "metricConfig": [{"name": "load", "unit": {"base": ""}, "scope": "node", "timestep": 60, "aggregation": "avg", "peak": 1, "normal": 1, "caution": 1, "alert": 1}],
        "subClusters": [{"name": f"sc{i}", "nodes": n} for i, n in enumerate(nodes)],
    }


def test_wildcard_only_as_first_subcluster_fallback():
    first = load_cluster_config(_cluster_doc("*", "n[01-02]"))
    assert assign_subcluster(first, "n01").name == "sc1"  # explicit match beats the wildcard
    assert assign_subcluster(first, "other").name == "sc0"
    later = load_cluster_config(_cluster_doc("n[01-02]", "*"))
    with pytest.raises(NotFound):
        assign_subcluster(later, "other")


def test_to_dict_has_upstream_shape(archive):
    fritz = archive.registry().get("fritz")
    out = orjson.loads(orjson.dumps(fritz.to_dict()))
    spr1 = out["subClusters"][1]
    assert spr1["footprint"] == ["cpu_load", "mem_used", "flops_any"]
    assert spr1["energyFootprint"] == ["cpu_power", "mem_power"]
    assert len(spr1["metricConfig"]) == 15 and "subClusters" not in spr1["metricConfig"][0]
    assert out["metricConfig"][0]["subClusters"][0]["name"] == "spr1tb"
    assert spr1["topology"]["node"] == list(archive.load_cluster_raw("fritz")["subClusters"][1]["topology"]["node"])
    mc = {m["name"]: m for m in spr1["metricConfig"]}
    assert mc["cpu_power"]["energy"] == "power" and mc["cpu_load"]["energy"] == ""
    assert mc["mem_used"]["unit"] == {"base": "B", "prefix": "G"} and mc["cpu_load"]["unit"] == {"base": ""}


def test_global_metric_list(archive):
    items = {i["name"]: i for i in archive.registry().global_metric_list()}
    fa = items["flops_any"]
    assert fa["footprint"] == "avg"
    assert {"cluster": "fritz", "subclusters": ["main", "spr1tb"]} in fa["availability"]
    assert "footprint" not in items["ipc"]


def test_duplicate_cluster_in_registry(archive):
    c = archive.load_cluster("emmy")
    with pytest.raises(ArchiveError, match="twice"):
        ClusterRegistry([c, c])


# -- load-time checks of cluster.json -------------------------------------------------------------


def _write_cluster(root: Path, doc: dict) -> Path:
    path = root / "emmy" / "cluster.json"
    path.write_bytes(orjson.dumps(doc))
    return path


@pytest.mark.parametrize(
    "mutate,key",
    [
        (lambda d: d.update(name=""), "$.name"),
        (lambda d: d.update(metricConfig=[]), "$.metricConfig"),
        (lambda d: d.pop("subClusters"), "$.subClusters"),
        (lambda d: d["metricConfig"][2].update(timestep=0), "$.metricConfig[2].timestep"),
        (lambda d: d["metricConfig"][2].update(name=""), "$.metricConfig[2].name"),
        (lambda d: d["metricConfig"][1].update(scope="rack"), "$.metricConfig[1].scope"),
        (lambda d: d["metricConfig"][1].update(peak="high"), "$.metricConfig[1].peak"),
        (lambda d: d["metricConfig"][1].update(footprint="median"), "$.metricConfig[1].footprint"),
        (lambda d: d["metricConfig"][0]["subClusters"][0].update(energy="heat"), "$.metricConfig[0].subClusters[0].energy"),
        (lambda d: d["metricConfig"].append(dict(d["metricConfig"][0])), "$.metricConfig[13].name"),
        (lambda d: d["subClusters"][1].update(nodes="w12[01-8]"), "$.subClusters[1].nodes"),
        (lambda d: d["subClusters"][1].update(name="haswell"), "$.subClusters[1].name"),
        (lambda d: d["subClusters"][0].update(coresPerSocket="4"), "$.subClusters[0].coresPerSocket"),
        (lambda d: d["subClusters"][0]["topology"].update(core=[[0], ["x"]]), "$.subClusters[0].topology.core[1][0]"),
    ],
)
def test_cluster_load_errors_name_file_and_key(archive, archive_root, mutate, key):
    doc = archive.load_cluster_raw("emmy")
    mutate(doc)
    path = _write_cluster(archive_root, doc)
    with pytest.raises(ArchiveError) as info:
        archive.load_cluster("emmy")
    assert info.value.message.startswith(f"{path}: {key}:"), info.value.message
    assert info.value.field == key


def test_cluster_invalid_json(archive, archive_root):
    (archive_root / "emmy" / "cluster.json").write_text("{")
    with pytest.raises(ArchiveError, match="not valid JSON"):
        archive.load_cluster("emmy")
    with pytest.raises(ArchiveError):
        archive.registry()


def test_cluster_scope_defaults_to_node(archive, archive_root):
    doc = archive.load_cluster_raw("emmy")
    del doc["metricConfig"][1]["scope"]
    _write_cluster(archive_root, doc)
    assert archive.load_cluster("emmy").metric("cpu_user").scope == "node"


def test_to_dict_keeps_integer_numbers(archive):
    out = orjson.dumps(archive.registry().get("fritz").to_dict())
    assert b'"peak":104,' in out and b'"alert":0.5' in out
