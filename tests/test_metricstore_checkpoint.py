"""Checkpoints and write-ahead log of the built-in metric store: round trips, upstream JSON, torn logs, kill -9."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cc_backend.archive.cluster import ClusterRegistry, load_cluster_config
from cc_backend.config.sections import MetricStoreConfig
from cc_backend.metricstore import wal
from cc_backend.metricstore.checkpoint import Checkpointer, decode_snapshot
from cc_backend.metricstore.lineproto import Sample
from cc_backend.metricstore.store import MetricStore

FIXTURE = Path(__file__).parent / "fixtures" / "peer-data" / "archive" / "fritz" / "cluster.json"
T0 = 1_700_000_040  # a multiple of the fixture's 60 s timestep
NOW = T0 + 6 * 3600


def _registry() -> ClusterRegistry:
    return ClusterRegistry([load_cluster_config(json.loads(FIXTURE.read_text()), str(FIXTURE))])


def _config(directory: Path, **overrides: Any) -> MetricStoreConfig:
    raw: dict[str, Any] = {
        "retention-in-memory": "24h",
        "memory-cap": 1,
        "checkpoint-interval": "12h",
        "checkpoints": {"directory": str(directory), "file-format": "wal"},
    }
    for key, value in overrides.items():
        if isinstance(value, dict):
            raw.setdefault(key, {}).update(value)
        else:
            raw[key] = value
    return MetricStoreConfig.model_validate(raw)


def _contents(store: MetricStore) -> dict[tuple[Any, ...], float]:
    """Every stored value as {(cluster, host, path, metric, ts): value}."""
    out = {}
    for cluster, host, path, metric, start, step, data in store.iter_buffers():
        for i, value in enumerate(data.tolist()):
            if not math.isnan(value):
                out[(cluster, host, tuple(path), metric, start + i * step)] = value
    return out


def _samples(host: str, ts: int, base: float) -> list[Sample]:
    return [
        Sample("fritz", host, "cpu_load", None, None, None, None, base, ts),
        Sample("fritz", host, "mem_bw", "socket", "1", None, None, base + 0.25, ts),
        Sample("fritz", host, "flops_any", "hwthread", "17", None, None, base + 0.5, ts),
        Sample("fritz", host, "mem_used", None, None, None, None, base * 1e9, ts),
    ]


def _fill(store: MetricStore, hosts: int = 3, steps: int = 30, gap: range = range(10, 13)) -> None:
    for step in range(steps):
        if step in gap:
            continue  # a hole the round trip must keep
        batch = []
        for h in range(hosts):
            batch += _samples(f"f01{h + 1:02d}", T0 + 60 * step, step + h / 8)
        store.write(batch)


def _fresh(directory: Path, **overrides: Any) -> tuple[MetricStore, Checkpointer]:
    config = _config(directory, **overrides)
    store = MetricStore(_registry(), config)
    return store, Checkpointer(store, config)


def test_binary_snapshot_round_trip_keeps_values_and_gaps(tmp_path: Path) -> None:
    store, cp = _fresh(tmp_path)
    _fill(store)
    written = cp.write_snapshot(NOW)
    assert written.hosts == 3 and written.buffers == 12
    snap = tmp_path / "fritz" / "f0101" / f"{NOW}.bin"
    taken, buffers = decode_snapshot(snap.read_bytes())
    assert taken == NOW and len(buffers) == 4
    node = next(b for b in buffers if b[1] == "cpu_load")
    assert node[0] == () and node[2] == T0 and node[3] == 60 and len(node[4]) == 30
    assert np.isnan(node[4][10:13]).all() and node[4][13] == 13.0

    restored, cp2 = _fresh(tmp_path)
    result = cp2.restore(NOW)
    assert result.hosts == 3 and result.files == 3 and result.buffers == 12 and not result.damaged_files
    assert _contents(restored) == _contents(store)
    assert len(_contents(restored)) == 3 * 4 * 27
    assert ("fritz", "f0102", ("socket", "1"), "mem_bw", T0 + 60 * 13) in _contents(restored)
    assert ("fritz", "f0102", (), "cpu_load", T0 + 60 * 11) not in _contents(restored)


def test_restored_store_answers_queries_with_gaps_as_null(tmp_path: Path) -> None:
    pytest.importorskip("cc_backend.metricstore.query")
    store, cp = _fresh(tmp_path)
    _fill(store)
    cp.write_snapshot(NOW)
    restored, cp2 = _fresh(tmp_path)
    cp2.restore(NOW)
    answer = restored.query(
        {
            "cluster": "fritz",
            "from": T0,
            "to": T0 + 60 * 29,
            "with-data": True,
            "queries": [{"metric": "cpu_load", "host": "f0101"}],
        }
    )
    data = answer["results"][0][0]["data"]
    assert data[9] == 9.0 and data[10] is None and data[13] == 13.0


def test_restore_ignores_snapshots_beyond_retention_and_clips_old_values(tmp_path: Path) -> None:
    store, cp = _fresh(tmp_path)
    _fill(store, hosts=1, steps=30, gap=range(0))
    cp.write_snapshot(T0 + 1800)
    # 24 h retention: at T0 + 24 h + 15 min the first 15 samples have expired.
    restored, cp2 = _fresh(tmp_path)
    cp2.restore(T0 + 86400 + 15 * 60)
    times = sorted({key[4] for key in _contents(restored)})
    assert times[0] == T0 + 15 * 60 and times[-1] == T0 + 29 * 60
    empty, cp3 = _fresh(tmp_path)
    assert cp3.restore(T0 + 1800 + 86401).files == 0
    assert _contents(empty) == {}


def test_json_snapshot_round_trip_in_upstream_format(tmp_path: Path) -> None:
    store, cp = _fresh(tmp_path, checkpoints={"file-format": "json"})
    _fill(store, hosts=2)
    cp.write_snapshot(NOW)
    doc = json.loads((tmp_path / "fritz" / "f0101" / f"{NOW}.json").read_text())
    assert doc["from"] == T0 and doc["to"] == NOW
    assert doc["metrics"]["cpu_load"]["frequency"] == 60 and doc["metrics"]["cpu_load"]["start"] == T0
    assert doc["metrics"]["cpu_load"]["data"][9:14] == [9.0, None, None, None, 13.0]
    assert doc["children"]["socket1"]["metrics"]["mem_bw"]["data"][0] == 0.25
    assert doc["children"]["hwthread17"]["metrics"]["flops_any"]["data"][2] == 2.5

    restored, cp2 = _fresh(tmp_path, checkpoints={"file-format": "json"})
    assert cp2.restore(NOW).files == 2
    assert _contents(restored) == _contents(store)


def test_reads_a_hand_written_upstream_json_checkpoint(tmp_path: Path) -> None:
    host_dir = tmp_path / "fritz" / "f0201"
    host_dir.mkdir(parents=True)
    (host_dir / f"{T0}.json").write_text(
        json.dumps(
            {
                "from": T0,
                "to": T0 + 240,
                "metrics": {
                    "cpu_load": {"frequency": 60, "start": T0, "data": [1.5, None, 3.5, 4.0]},
                    "no_such_metric": {"frequency": 60, "start": T0, "data": [1.0]},
                },
                "children": {
                    "socket0": {
                        "from": T0,
                        "to": T0 + 240,
                        "metrics": {"mem_bw": {"frequency": 60, "start": T0 + 60, "data": [10.0, 20.0]}},
                        "children": {
                            "core3": {
                                "from": T0,
                                "to": T0 + 240,
                                "metrics": {"ipc": {"frequency": 60, "start": T0, "data": [0.5]}},
                                "children": {},
                            }
                        },
                    },
                    "hwthread7": {
                        "from": T0,
                        "to": T0 + 240,
                        "metrics": {"cpu_user": {"frequency": 60, "start": T0, "data": [None, 42.0]}},
                    },
                },
            }
        )
    )
    # An upstream incremental file for the next interval: both files are loaded.
    (host_dir / f"{T0 + 240}.json").write_text(
        json.dumps(
            {
                "from": T0 + 240,
                "to": T0 + 300,
                "metrics": {"cpu_load": {"frequency": 60, "start": T0 + 240, "data": [5.0]}},
                "children": {},
            }
        )
    )
    bad = tmp_path / "fritz" / "f0202" / f"{T0}.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps({"metrics": {"cpu_load": {"frequency": 60, "start": T0, "data": ["1.5"]}}}))
    store, cp = _fresh(tmp_path)
    result = cp.restore(T0 + 600)
    assert result.files == 2 and result.damaged_files == [str(bad)]
    assert _contents(store) == {
        ("fritz", "f0201", (), "cpu_load", T0): 1.5,
        ("fritz", "f0201", (), "cpu_load", T0 + 120): 3.5,
        ("fritz", "f0201", (), "cpu_load", T0 + 180): 4.0,
        ("fritz", "f0201", (), "cpu_load", T0 + 240): 5.0,
        ("fritz", "f0201", ("socket", "0"), "mem_bw", T0 + 60): 10.0,
        ("fritz", "f0201", ("socket", "0"), "mem_bw", T0 + 120): 20.0,
        ("fritz", "f0201", ("socket", "0", "core", "3"), "ipc", T0): 0.5,
        ("fritz", "f0201", ("hwthread", "7"), "cpu_user", T0 + 60): 42.0,
    }


def test_damaged_snapshot_is_reported_and_skipped(tmp_path: Path) -> None:
    store, cp = _fresh(tmp_path)
    _fill(store, hosts=2)
    cp.write_snapshot(NOW)
    snap = tmp_path / "fritz" / "f0102" / f"{NOW}.bin"
    raw = bytearray(snap.read_bytes())
    raw[40] ^= 0xFF
    snap.write_bytes(bytes(raw))
    (tmp_path / "fritz" / "f0101" / f"{NOW - 60}.json").write_text("{not json")
    refused = tmp_path / "fritz" / "f01..01" / f"{NOW}.bin"  # a host name the store refuses
    refused.parent.mkdir()
    refused.write_bytes((tmp_path / "fritz" / "f0101" / f"{NOW}.bin").read_bytes())
    restored, cp2 = _fresh(tmp_path)
    result = cp2.restore(NOW)
    assert sorted(result.damaged_files) == sorted([str(snap), str(refused)])
    assert {key[1] for key in _contents(restored)} == {"f0101"}


def test_wal_replay_after_snapshot(tmp_path: Path) -> None:
    store, cp = _fresh(tmp_path)
    writer = cp.open_wal()
    store.write(_samples("f0101", T0, 1.0))
    store.write_lines(b"cpu_load,cluster=fritz,hostname=f0102 value=7 " + str(T0 * 10**9).encode(), None)
    first_segment = writer.current_seq
    snap = cp.write_snapshot(T0 + 30)
    assert snap.removed_segments == 1 and not (tmp_path / wal.segment_name(first_segment)).exists()
    store.write(_samples("f0101", T0 + 60, 2.0))
    store.write_lines(b"mem_bw,cluster=fritz,hostname=f0102,type=socket,type-id=0 value=3.5 " + str(T0 + 60).encode())
    # No stop(): the process "dies" here; the second batch lives only in the log.
    restored, cp2 = _fresh(tmp_path)
    result = cp2.restore(T0 + 120)
    assert result.files == 2 and result.wal.records == 2 and result.wal.samples == 5
    assert result.wal.skipped_records == 0
    assert _contents(restored) == _contents(store)
    assert _contents(restored)[("fritz", "f0102", ("socket", "0"), "mem_bw", T0 + 60)] == 3.5
    assert _contents(restored)[("fritz", "f0101", ("hwthread", "17"), "flops_any", T0 + 60)] == 2.5
    # restore() opened the log before reading: a write accepted right after it (before start()) is logged too.
    restored.write(_samples("f0103", T0 + 120, 5.0))
    again, cp3 = _fresh(tmp_path)
    # The replay itself is not logged again (the old segment stays until a snapshot covers it).
    assert cp3.restore(T0 + 180).wal.samples == 5 + 4
    assert _contents(again) == _contents(restored)


def test_torn_wal_tail_is_tolerated(tmp_path: Path) -> None:
    store, cp = _fresh(tmp_path)
    writer = cp.open_wal()
    for step in range(5):
        store.write(_samples("f0101", T0 + 60 * step, float(step)))
    segment = tmp_path / wal.segment_name(writer.current_seq)
    size = segment.stat().st_size
    writer.close()
    with open(segment, "r+b") as f:
        f.truncate(size - 7)  # the last record loses its CRC and a value: a kill -9 mid-write
    restored, cp2 = _fresh(tmp_path)
    result = cp2.restore(T0 + 3600)
    assert result.wal.records == 4 and result.wal.skipped_records == 1
    assert result.wal.torn_tails == [str(segment)]
    times = sorted({key[4] for key in _contents(restored)})
    assert times == [T0 + 60 * step for step in range(4)]
    # The restored process writes into a new segment, never behind the torn tail.
    writer2 = cp2.open_wal()
    assert writer2.current_seq == writer.current_seq + 1


def test_corrupt_record_in_the_middle_is_skipped(tmp_path: Path) -> None:
    directory = tmp_path / "wal"
    writer = wal.WalWriter(directory)
    for step in range(3):
        writer.append(_samples("f0101", T0 + 60 * step, float(step)))
    writer.close()
    segment = directory / wal.segment_name(writer.current_seq)
    raw = bytearray(segment.read_bytes())
    record = len(raw) // 3
    raw[record + 20] ^= 0x55  # inside the second record's payload
    segment.write_bytes(bytes(raw))
    seen: list[list[Sample]] = []

    def collect(batch: wal.Batch | wal.LinesBatch) -> None:
        assert isinstance(batch, wal.Batch)
        seen.append(batch.samples(Sample))

    result = wal.replay([segment], collect)
    assert result.records == 2 and result.skipped_records == 1 and result.skipped_bytes == record
    assert not result.torn_tails
    assert seen == [_samples("f0101", T0, 0.0), _samples("f0101", T0 + 120, 2.0)]


def test_restore_under_a_lower_memory_cap_keeps_the_newest_samples(tmp_path: Path) -> None:
    """Snapshots above the cap: their oldest chunks go before the log is replayed, so its samples find room."""
    from cc_backend.metricstore.store import CHUNK, CHUNK_BYTES, MEMORY_CAP_REACHED

    store, cp = _fresh(tmp_path)
    cp.open_wal()
    old = T0 - 2 * CHUNK * 60  # two chunks back: a chunk of its own in every series
    for h in range(40):
        store.write(_samples(f"f01{h:02d}", old, 1.0))
    cp.write_snapshot(T0)
    store.write(_samples("f0100", T0 + 60, 9.0))  # in the log only, in a new chunk of each series
    restored, cp2 = _fresh(tmp_path)
    restored.memory_cap = restored.memory_bytes() + 40 * 4 * (CHUNK_BYTES + 500) // 2  # about half the snapshots
    cp2.restore(T0 + 120)
    contents = _contents(restored)
    assert contents[("fritz", "f0100", (), "cpu_load", T0 + 60)] == 9.0  # the newest sample is back
    assert MEMORY_CAP_REACHED not in restored.ignored
    assert len([k for k in contents if k[-1] == old]) < 40 * 4  # oldest chunks freed instead
    assert restored.memory_bytes() <= restored.memory_cap


def test_wal_record_keeps_every_field() -> None:
    batch = [
        Sample("fritz", "f0101", "ipc", "socket", "0", "core", "3", 0.125, T0),
        Sample("fritz", "f0101", "cpu_load", None, None, None, None, -1.5, T0 * 1000),
        Sample("alex", "a0603", "acc_power", "accelerator", "00000000:49:00.0", None, None, 250.0, T0 + 1),
        Sample("ämp", "h\x1e\x1f,=", "", "", "0", None, "", math.nan, -5),  # any name, empty vs absent, NaN
    ] * 2
    record = wal.encode_batch(batch)
    decoded = wal._record_at(memoryview(record), 0)
    assert decoded is not None and decoded[0] == len(record)
    assert isinstance(decoded[1], wal.Batch)
    got = decoded[1].samples(Sample)
    assert len(decoded[1].keys) == 4 and got[:3] == batch[:3] and got[4:7] == batch[4:7]
    assert got[3][:7] == batch[3][:7] and math.isnan(got[3].value) and got[3].ts == -5
    lines = wal.encode_lines(b"cpu_load,hostname=f0101 value=1 1700000000\nmem_bw,hostname=f0101 value=2", "fritz", T0)
    decoded_lines = wal._record_at(memoryview(lines), 0)
    assert decoded_lines is not None and decoded_lines[1] == wal.LinesBatch(
        "fritz", b"cpu_load,hostname=f0101 value=1 1700000000\nmem_bw,hostname=f0101 value=2", T0
    )
    no_cluster = wal._record_at(memoryview(wal.encode_lines(b"x value=1", None, T0)), 0)
    assert no_cluster is not None and no_cluster[1] == wal.LinesBatch(None, b"x value=1", T0)


def test_wal_replay_of_many_batches_merges_per_series(tmp_path: Path) -> None:
    """Enough samples per series for the grouped replay (numpy per series, load_buffer) instead of one by one."""
    store, cp = _fresh(tmp_path)
    cp.open_wal()
    # a gap at steps 40-44, then three steps written again with new values
    writes = [(step, 0) for step in [*range(40), *range(45, 60)]] + [(20, 100), (30, 100), (7, 100)]
    for step, bonus in writes:
        batch = []
        for h in range(3):
            batch += _samples(f"f01{h + 1:02d}", T0 + 60 * step, step + h / 8 + bonus)
        if step % 2:  # milliseconds, as a collector may send them
            batch = [sample._replace(ts=sample.ts * 1000) for sample in batch]
        store.write(batch)
    restored, cp2 = _fresh(tmp_path)
    result = cp2.restore(T0 + 3600)
    assert result.wal.records == 58 and result.wal.samples == 58 * 12
    assert _contents(restored) == _contents(store)
    assert _contents(restored)[("fritz", "f0102", (), "cpu_load", T0 + 60 * 20)] == 120.125
    assert ("fritz", "f0102", (), "cpu_load", T0 + 60 * 42) not in _contents(restored)
    assert len(_contents(restored)) == 55 * 12


def test_a_failing_wal_write_does_not_fail_ingestion(tmp_path: Path) -> None:
    store, cp = _fresh(tmp_path)
    writer = cp.open_wal()
    assert writer._fd is not None
    os.close(writer._fd)  # every following write fails with EBADF, like a vanished disk
    assert store.write(_samples("f0101", T0, 1.0)) == 4
    assert writer.failed_writes == 1
    assert len(_contents(store)) == 4
    writer._fd = None


def test_wal_replay_keeps_the_last_write_and_reads_line_protocol_records(tmp_path: Path) -> None:
    store, cp = _fresh(tmp_path)
    writer = cp.open_wal()
    store.write([Sample("fritz", "f0101", "cpu_load", "node", None, None, None, 1.0, T0 * 1000)])  # ms, type node
    store.write([Sample("fritz", "f0101", "cpu_load", None, None, None, None, 2.0, T0)])  # rewrites the same slot
    store.write([Sample("fritz", "f0101", "cpu_load", None, None, None, None, 3.0, T0 + 180)])
    store.write([Sample("fritz", "f0101", "no_such_metric", None, None, None, None, 3.0, T0)])  # ignored, not logged
    body = b"mem_bw,hostname=f0103,type=socket,type-id=1 value=4.5 " + str(T0 + 60).encode()
    store.write_lines(body, "fritz")
    store.write_lines(b"cpu_load,hostname=f0104 value=9", "fritz", received=T0 + 240)  # no timestamp
    kinds = [type(batch).__name__ for batch in wal.read_segment(tmp_path / wal.segment_name(writer.current_seq))]
    # the store hands line-protocol bodies over as they came (set_journal), Sample writes as sample batches
    assert kinds == ["Batch", "Batch", "Batch", "LinesBatch", "LinesBatch"]
    restored, cp2 = _fresh(tmp_path)
    result = cp2.restore(T0 + 600)
    assert result.wal.records == 5 and result.wal.skipped_records == 0
    assert _contents(restored) == {
        ("fritz", "f0101", (), "cpu_load", T0): 2.0,
        ("fritz", "f0101", (), "cpu_load", T0 + 180): 3.0,
        ("fritz", "f0103", ("socket", "1"), "mem_bw", T0 + 60): 4.5,
        ("fritz", "f0104", (), "cpu_load", T0 + 240): 9.0,
    }
    assert _contents(restored) == _contents(store)


def test_max_wal_size_forces_a_snapshot(tmp_path: Path) -> None:
    t0 = (int(time.time()) - 7200) // 60 * 60  # the background thread snapshots at the real time
    store, cp = _fresh(tmp_path, checkpoints={"max-wal-size": 2000})
    cp.start()
    try:
        for step in range(20):
            store.write(_samples("f0101", t0 + 60 * step, float(step)) * 3)
        deadline = time.monotonic() + 10
        while cp.last_snapshot is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cp.last_snapshot is not None and cp.last_snapshot.removed_segments >= 1
        assert list((tmp_path / "fritz" / "f0101").glob("*.bin"))
    finally:
        cp.stop()
    segments = wal.list_segments(tmp_path)
    assert len(segments) == 1 and segments[0][1].stat().st_size == 0
    restored, cp2 = _fresh(tmp_path)
    cp2.restore()
    assert _contents(restored) == _contents(store)
    assert len(_contents(restored)) == 20 * 4


def test_stop_writes_a_final_snapshot_and_empties_the_log(tmp_path: Path) -> None:
    store, cp = _fresh(tmp_path)
    cp.start()
    _fill(store, hosts=2)
    result = cp.stop(NOW)
    assert result.hosts == 2
    assert [p.name for _, p in wal.list_segments(tmp_path)] == [wal.segment_name(2)]
    store.write(_samples("f0101", T0, 99.0))  # after shutdown: dropped by the log, not an error
    restored, cp2 = _fresh(tmp_path)
    assert cp2.restore(NOW).wal.samples == 0
    assert len(_contents(restored)) == 2 * 4 * 27


@pytest.mark.parametrize("mode", ["delete", "archive"])
def test_cleanup_removes_superseded_and_expired_files(tmp_path: Path, mode: str) -> None:
    directory = tmp_path / "cp"
    archive = tmp_path / "archived"
    cleanup = {"mode": mode, "directory": str(archive)} if mode == "archive" else {"mode": mode}
    store, cp = _fresh(directory, cleanup=cleanup)
    _fill(store, hosts=1)
    for taken in (T0 + 3600, T0 + 7200, T0 + 10800):
        cp.write_snapshot(taken)
    old_json = directory / "fritz" / "f0101" / f"{T0 - 3 * 86400}.json"
    old_json.write_text("{}")
    removed = cp.cleanup(T0 + 10800 + 60)
    assert removed == 3
    assert sorted(p.name for p in (directory / "fritz" / "f0101").iterdir()) == [f"{T0 + 10800}.bin"]
    if mode == "archive":
        assert sorted(p.name for p in (archive / "fritz" / "f0101").iterdir()) == sorted(
            [f"{T0 - 3 * 86400}.json", f"{T0 + 3600}.bin", f"{T0 + 7200}.bin"]
        )
    assert cp.cleanup(T0 + 10800 + 86401) == 1
    assert not (directory / "fritz").exists()


_CHILD = textwrap.dedent(
    """
    import json, sys
    from cc_backend.archive.cluster import ClusterRegistry, load_cluster_config
    from cc_backend.config.sections import MetricStoreConfig
    from cc_backend.metricstore.checkpoint import Checkpointer
    from cc_backend.metricstore.lineproto import Sample
    from cc_backend.metricstore.store import MetricStore

    directory, fixture, t0 = sys.argv[1], sys.argv[2], int(sys.argv[3])
    registry = ClusterRegistry([load_cluster_config(json.load(open(fixture)), fixture)])
    config = MetricStoreConfig.model_validate({
        "retention-in-memory": "48h", "memory-cap": 1, "checkpoint-interval": "1s",
        "checkpoints": {"directory": directory, "file-format": "wal"},
    })
    store = MetricStore(registry, config)
    checkpointer = Checkpointer(store, config)
    checkpointer.restore()
    checkpointer.start()
    i = 0
    while True:
        ts = t0 + 60 * i
        if i % 2:
            body = "\\n".join(
                f"cpu_load,cluster=fritz,hostname=f01{h:02d} value={i + h / 100} {ts}" for h in range(1, 41))
            store.write_lines(body.encode(), None)
        else:
            store.write([Sample("fritz", f"f01{h:02d}", "cpu_load", None, None, None, None, i + h / 100, ts)
                         for h in range(1, 41)])
        print(f"ack {i}", flush=True)
        i += 1
    """
)


def test_kill_9_loses_no_acknowledged_sample(tmp_path: Path) -> None:
    t0 = (int(time.time()) - 86400) // 60 * 60
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent.parent))
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path), str(FIXTURE), str(t0)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    acked: list[int] = []
    try:
        assert child.stdout is not None
        # Keep going until a snapshot (1 s interval) has rotated the log while batches were being written, then
        # take some more acknowledgements so the kill lands on the fresh segment.
        deadline = time.monotonic() + 60
        after_snapshot = None
        while after_snapshot is None or len(acked) < after_snapshot + 100:
            line = child.stdout.readline()
            assert line.startswith("ack "), f"child said {line!r}"
            acked.append(int(line.split()[1]))
            if after_snapshot is None and len(acked) % 50 == 0 and list(tmp_path.glob("fritz/*/*.bin")):
                after_snapshot = len(acked)
            assert time.monotonic() < deadline, "the child wrote no snapshot within 60 s"
        child.send_signal(signal.SIGKILL)
        acked += [int(line.split()[1]) for line in child.stdout.read().splitlines() if line.startswith("ack ")]
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    assert list((tmp_path / "fritz").glob("*/*.bin")), "no snapshot was written while the child ran"

    store, cp = _fresh(tmp_path, **{"retention-in-memory": "48h"})
    cp.restore()
    stored = _contents(store)
    missing = [
        (i, h)
        for i in acked
        for h in range(1, 41)
        if stored.get(("fritz", f"f01{h:02d}", (), "cpu_load", t0 + 60 * i)) != pytest.approx(i + h / 100, rel=1e-6)
    ]
    assert not missing, f"{len(missing)} acknowledged samples lost, first {missing[:5]}"
