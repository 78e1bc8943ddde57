"""Footprint, energy and node statistics, checked against rows upstream Go wrote into the peer job.db."""

from __future__ import annotations

import sqlite3

import orjson
import pytest
from peerdata import ARCHIVE, IMPORTER, JOB_DB

from cc_backend.archive.cluster import load_cluster_config
from cc_backend.archive.fs import FileArchive, read_data_file
from cc_backend.errors import InvalidInput
from cc_backend.jobs.footprint import (
    compute_energy,
    compute_footprint,
    footprint_bars,
    go_round,
    load_job_stat,
    statistics_from_data,
)


@pytest.fixture(scope="module")
def registry():
    # Read-only use of the shared archive: nothing is written.
    return FileArchive(ARCHIVE).registry()


@pytest.fixture(scope="module")
def job_db():
    conn = sqlite3.connect(f"file:{JOB_DB}?mode=ro", uri=True)
    yield conn
    conn.close()


def _importer_meta(name: str) -> dict:
    return orjson.loads((IMPORTER / f"meta-{name}.input").read_bytes())


def _db_row(conn, meta: dict) -> tuple[dict, dict, float]:
    row = conn.execute(
        "SELECT footprint, energy_footprint, energy FROM job WHERE job_id = ? AND cluster = ? AND start_time = ?",
        (meta["jobId"], meta["cluster"], meta["startTime"]),
    ).fetchone()
    assert row is not None
    return orjson.loads(row[0]), orjson.loads(row[1]), row[2]


# -- parity with upstream-written rows ------------------------------------------------------------


@pytest.mark.parametrize("name", ["fritzMinimal", "fritzError"])
def test_matches_upstream_job_db_rows(registry, job_db, name):
    meta = _importer_meta(name)
    sc = registry.subcluster(meta["cluster"], meta["subCluster"])
    footprint, energy_footprint, energy = _db_row(job_db, meta)
    assert compute_footprint(meta, sc, upstream_avg_keys=True) == footprint
    assert compute_energy(meta, sc) == (energy_footprint, energy)


def test_upstream_keys_are_always_avg_but_config_says_max(registry):
    meta = _importer_meta("fritzMinimal")
    sc = registry.subcluster("fritz", "main")
    assert compute_footprint(meta, sc) == {
        "cpu_load_avg": 31.64,
        "mem_used_max": 6.226,
        "flops_any_avg": 45.012,
        "mem_bw_avg": 4.872,
    }
    assert compute_footprint(meta, sc, upstream_avg_keys=True)["mem_used_avg"] == 6.162


def test_every_fritz_row_has_the_configured_metric_sets(registry, job_db):
    sc = registry.subcluster("fritz", "main")
    expected_fp = {f"{m}_avg" for m in sc.footprint}
    rows = job_db.execute("SELECT footprint, energy_footprint, energy FROM job WHERE cluster = 'fritz'").fetchall()
    assert len(rows) == 241
    for fp, efp, energy in rows:
        assert set(orjson.loads(fp)) == expected_fp
        per_metric = orjson.loads(efp)
        assert set(per_metric) == set(sc.energy_footprint)
        assert energy == go_round(sum(per_metric.values()), 2)


def test_every_alex_row_has_the_configured_energy_metrics(registry, job_db):
    for sub in ("a40", "a100", "a100m80"):
        sc = registry.subcluster("alex", sub)
        rows = job_db.execute("SELECT energy_footprint, energy FROM job WHERE cluster = 'alex' AND subcluster = ?", (sub,)).fetchall()
        assert rows
        for efp, energy in rows:
            per_metric = orjson.loads(efp)
            assert set(per_metric) == set(sc.energy_footprint) == {"core_power", "acc_power", "cpu_power"}
            assert energy == go_round(sum(per_metric.values()), 2)


# -- footprint ------------------------------------------------------------------------------------


def test_footprint_follows_subcluster_resolution(registry):
    meta = _importer_meta("fritzError")
    spr1 = compute_footprint(meta, registry.subcluster("fritz", "spr1tb"))
    assert set(spr1) == {"cpu_load_avg", "mem_used_max", "flops_any_avg"}
    spr2 = compute_footprint(meta, registry.subcluster("fritz", "spr2tb"))
    assert set(spr2) == {"cpu_load_avg", "mem_used_max"}


def test_footprint_missing_statistics_are_zero(registry):
    sc = registry.subcluster("fritz", "main")
    assert compute_footprint({"statistics": {}}, sc) == {"cpu_load_avg": 0.0, "mem_used_max": 0.0, "flops_any_avg": 0.0, "mem_bw_avg": 0.0}
    assert compute_footprint({}, sc)["cpu_load_avg"] == 0.0
    assert load_job_stat({"statistics": {"x": {"avg": "1"}}}, "x", "avg") == 0.0


def test_footprint_min_stat():
    cluster = load_cluster_config(
        {
            "name": "t",
            "metricConfig": [
                {"name": "temp", "unit": {"base": "°C"}, "scope": "node", "timestep": 60, "aggregation": "avg", "footprint": "min",
                 "subClusters": [{"name": "b", "footprint": "max"}]},
                {"name": "pkg", "unit": {"base": "J"}, "scope": "node", "timestep": 60, "aggregation": "sum", "energy": "energy"},
                {"name": "pwr", "unit": {"base": "W"}, "scope": "node", "timestep": 60, "aggregation": "sum", "energy": "power",
                 "subClusters": [{"name": "b", "remove": True}]},
            ],
            "subClusters": [{"name": "a", "nodes": "a[1-2]"}, {"name": "b", "nodes": "b[1-2]"}],
        }
    )
    job = {"numNodes": 2, "duration": 7200, "statistics": {"temp": {"avg": 50, "min": 40, "max": 60}, "pwr": {"avg": 250.0}, "pkg": {"avg": 9}}}
    assert compute_footprint(job, cluster.sub_cluster("a")) == {"temp_min": 40.0}
    assert compute_footprint(job, cluster.sub_cluster("b")) == {"temp_max": 60.0}
    # 250 W x 2 nodes x 2 h = 1 kWh; "energy" metrics are not implemented upstream and count 0.
    assert compute_energy(job, cluster.sub_cluster("a")) == ({"pkg": 0.0, "pwr": 1.0}, 1.0)
    assert compute_energy(job, cluster.sub_cluster("b")) == ({"pkg": 0.0}, 0.0)


# -- energy ---------------------------------------------------------------------------------------


def test_energy_formula_and_rounding(registry):
    sc = registry.subcluster("fritz", "main")
    job = {"numNodes": 4, "duration": 3600, "statistics": {"cpu_power": {"avg": 301.234}, "mem_power": {"avg": 12.5}}}
    per_metric, total = compute_energy(job, sc)
    assert per_metric == {"cpu_power": round(301.234 * 4 / 1000, 2), "mem_power": 0.05}
    assert total == go_round(1.2 + 0.05, 2) == 1.25


def test_energy_without_statistics_or_duration(registry):
    sc = registry.subcluster("fritz", "main")
    assert compute_energy({"numNodes": 1, "duration": 0, "statistics": {"cpu_power": {"avg": 500}}}, sc) == ({"cpu_power": 0.0, "mem_power": 0.0}, 0.0)
    assert compute_energy({"numNodes": 1, "duration": 100}, sc) == ({"cpu_power": 0.0, "mem_power": 0.0}, 0.0)
    with pytest.raises(InvalidInput, match="numNodes"):
        compute_energy({"numNodes": "1", "duration": 100}, sc)


@pytest.mark.parametrize(
    "value,expected",
    [(0.005, 0.01), (0.015, 0.02), (0.025, 0.03), (2.675, 2.68), (-0.005, -0.01), (1.0049999, 1.0), (0.0, 0.0), (123.456, 123.46), (0.285, 0.28)],
)
def test_go_round_is_half_away_from_zero(value, expected):
    # Go rounds x*100 half away from zero (0.285*100 is 28.4999... in binary, hence 0.28 as in Go).
    assert go_round(value, 2) == expected


# -- statistics from data -------------------------------------------------------------------------


def test_statistics_from_importer_data(registry):
    meta = _importer_meta("fritzMinimal")
    data = orjson.loads((IMPORTER / "data-fritzMinimal.json").read_bytes())
    fritz = registry.get("fritz")
    stats = statistics_from_data(data, meta["numNodes"], fritz.metric_config)
    assert set(stats) == set(meta["statistics"])
    for metric, st in stats.items():
        ref = meta["statistics"][metric]
        # The input's statistics carry 3 digits while the series statistics carry 2.
        assert st["avg"] == pytest.approx(ref["avg"], abs=0.0051), metric
        assert st["min"] == pytest.approx(ref["min"], abs=0.0051), metric
        assert st["max"] == pytest.approx(ref["max"], abs=0.0051), metric
        assert st["unit"] == fritz.metric(metric).unit.to_dict()
    assert stats["mem_used"]["unit"] == {"base": "B", "prefix": "G"}


def test_statistics_from_emmy_archive_data(registry):
    data = read_data_file(ARCHIVE / "emmy/1403/244/1608923076/data.json.gz")
    meta = orjson.loads((ARCHIVE / "emmy/1403/244/1608923076/meta.json").read_bytes())
    emmy = registry.get("emmy")
    stats = statistics_from_data(data, meta["numNodes"], {mc.name: mc for mc in emmy.metric_config})
    for metric in ("cpu_load", "mem_bw", "clock", "flops_any", "mem_used"):
        ref = meta["statistics"][metric]
        assert stats[metric]["min"] == ref["min"] and stats[metric]["max"] == ref["max"], metric
        assert stats[metric]["avg"] == pytest.approx(ref["avg"], abs=0.011), metric
    # rapl_power is not in emmy's cluster.json: the unit falls back to the data's own unit.
    assert stats["rapl_power"]["unit"] == {"base": "W"}
    # ipc series carry no statistics: they are derived from the samples, ignoring nulls.
    series = data["ipc"]["node"]["series"]
    values = [v for v in series[0]["data"] if v is not None]
    assert stats["ipc"]["max"] >= max(values)


def _metric(series: list[dict], unit=None) -> dict:
    return {"node": {"unit": unit or {"base": "W"}, "timestep": 60, "series": series}}


def test_statistics_formula():
    data = {
        "pwr": _metric([
            {"hostname": "a", "statistics": {"avg": 100.0, "min": 10.0, "max": 200.0}, "data": [1]},
            {"hostname": "b", "statistics": {"avg": 50.011, "min": 5.0, "max": 300.0}, "data": [1]},
        ]),
        "derived": _metric([
            {"hostname": "a", "data": [1.0, None, 3.0]},
            {"hostname": "b", "data": [None, None]},
        ]),
        "socket_only": {"socket": _metric([])["node"]},
        "empty": _metric([]),
    }
    stats = statistics_from_data(data, 2, [])
    assert stats["pwr"] == {"unit": {"base": "W"}, "avg": 75.01, "min": 5.0, "max": 300.0}
    # Node b has no samples: it adds 0 to the sum but still counts as a node.
    assert stats["derived"] == {"unit": {"base": "W"}, "avg": 1.0, "min": 1.0, "max": 3.0}
    assert "socket_only" not in stats
    assert stats["empty"] == {"unit": {"base": "W"}, "avg": 0.0, "min": 0.0, "max": 0.0}


def test_statistics_rejects_bad_node_count():
    with pytest.raises(InvalidInput, match="numNodes"):
        statistics_from_data({}, 0, [])


def test_footprint_bars_compare_values_with_the_thresholds(registry):
    """fritz: cpu_load higher is better (alert 20, caution 36, peak 72); mem_used lower is better (caution 200, alert 240)."""
    sc = registry.subcluster("fritz", "main")
    bars = footprint_bars({"cpu_load_avg": 18.0, "mem_used_max": 210.0, "flops_any_avg": 2000.0, "mem_bw_avg": 400.0}, sc)
    by_metric = {bar["metric"]: bar for bar in bars}
    assert [bar["metric"] for bar in bars] == ["cpu_load", "mem_used", "flops_any", "mem_bw"]
    assert by_metric["cpu_load"]["level"] == "alert" and by_metric["cpu_load"]["percent"] == pytest.approx(25.0)
    assert by_metric["mem_used"]["level"] == "caution" and by_metric["mem_used"]["stat"] == "max"
    assert by_metric["mem_used"]["unit"] == "GB" and by_metric["mem_used"]["lowerIsBetter"] is True
    assert by_metric["flops_any"]["level"] == "good" and by_metric["flops_any"]["percent"] == pytest.approx(2000 / 56)
    assert by_metric["mem_bw"]["level"] == "above-peak" and by_metric["mem_bw"]["percent"] == 100.0
    # upstream stores every key as <metric>_avg; a missing or non-finite value leaves the bar out
    upstream = footprint_bars({"cpu_load_avg": 50.0, "mem_used_avg": 100.0, "flops_any_avg": float("nan")}, sc)
    assert [(b["metric"], b["level"]) for b in upstream] == [("cpu_load", "good"), ("mem_used", "good")]
    assert footprint_bars(None, sc) == []
