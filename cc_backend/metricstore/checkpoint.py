"""Checkpoints of the built-in metric store: periodic snapshots per host, the write-ahead log, restore and cleanup.

Layout under ``metric-store.checkpoints.directory``::

    <cluster>/<host>/<timestamp>.bin     snapshot of every buffer of the host ("file-format": "wal", the default)
    <cluster>/<host>/<timestamp>.json    the same in upstream's JSON checkpoint format ("file-format": "json")
    wal-<seq>.wal                        write-ahead log segments (see :mod:`cc_backend.metricstore.wal`)

``<timestamp>`` is the time the snapshot was taken. A snapshot holds everything the store had for the host, so
restoring needs only the newest one; the write-ahead log holds every batch accepted since the segment was
started. The log is kept in both file formats, so that a kill -9 loses nothing that was acknowledged.

Binary snapshot (``.bin``, all integers little-endian)::

    u32 magic 0xCC5B0001 | u32 version 1 | i64 snapshot time | u32 buffer count
    per buffer: u16 path depth | per path element: u16 length | UTF-8 | u16 metric length | metric (UTF-8)
                | i64 start (s) | i64 timestep (s) | u32 value count | f32 values (NaN = no sample)
    u32 CRC32 of everything before it

JSON snapshot (upstream's checkpoint format, so upstream's files can be read and upstream can read ours)::

    {"from": s, "to": s, "metrics": {metric: {"frequency": timestep, "start": s, "data": [float | null]}},
     "children": {"socket0": {same shape}, ...}}

A child is named ``<type><id>`` (``socket0``, ``core12``, ``accelerator00000000:3b:00.0``); the store's
level path ``("socket", "0", "core", "3")`` is the chain of children ``socket0`` → ``core3``.

Order of a snapshot: rotate the log first, then copy the buffers. A batch accepted before the rotation is
already in the buffers being copied; one accepted after it is in the new segment. The segments older than the
rotation are deleted once every host file is written and synced. Restore loads the newest snapshot per host,
then replays every remaining segment oldest first (loading a sample twice is harmless).

Cleanup (every ``retention-in-memory``) removes snapshot files that are superseded by a newer ``.bin`` of the
same host or whose data lies before ``now - retention-in-memory``. With ``cleanup.mode`` "archive" the files
are moved under ``cleanup.directory/<cluster>/<host>/`` as they are; upstream converts them to Parquet there,
this implementation does not.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import math
import os
import re
import shutil
import struct
import threading
import time
import zlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np

from cc_backend.config.sections import MetricStoreConfig
from cc_backend.errors import CCError
from cc_backend.metricstore import wal
from cc_backend.metricstore.lineproto import Sample, SeriesKey

log = logging.getLogger(__name__)

SNAPSHOT_MAGIC = 0xCC5B0001
SNAPSHOT_VERSION = 1
_SNAP_HEADER = struct.Struct("<IIqI")
_BUF_HEAD = struct.Struct("<qqI")
_U16 = struct.Struct("<H")
_CRC = struct.Struct("<I")
_FILE_RE = re.compile(r"^(\d+)\.(bin|json)$")
_CHILD_RE = re.compile(r"^([A-Za-z_]+?)(\d.*)$")
# Topology levels as cc-metric-collector names them; longest first so "memoryDomain3" is not read as "m"+...
_KNOWN_TYPES = ("memoryDomain", "accelerator", "hwthread", "socket", "core", "node", "die")

HostBuffer = tuple[tuple[str, ...], str, int, int, np.ndarray]
"""One buffer of a host in a snapshot: ``(level path, metric, start, timestep, float32 data)``."""


class CheckpointError(Exception):
    """A snapshot file that cannot be read."""


# --- binary snapshot --------------------------------------------------------------------------------------------


def encode_snapshot(taken: int, buffers: list[HostBuffer]) -> bytes:
    """The ``.bin`` file of one host: ``buffers`` as ``(path, metric, start, timestep, data)``."""
    parts = [_SNAP_HEADER.pack(SNAPSHOT_MAGIC, SNAPSHOT_VERSION, taken, len(buffers))]
    for path, metric, start, timestep, data in buffers:
        path_raw = b"".join(_U16.pack(len(raw)) + raw for raw in (element.encode() for element in path))
        metric_raw = metric.encode()
        values = np.ascontiguousarray(data, dtype="<f4")
        parts += (
            _U16.pack(len(path)),
            path_raw,
            _U16.pack(len(metric_raw)),
            metric_raw,
            _BUF_HEAD.pack(int(start), int(timestep), len(values)),
            values.tobytes(),
        )
    body = b"".join(parts)
    return body + _CRC.pack(zlib.crc32(body))


def decode_snapshot(raw: bytes, source: str = "snapshot") -> tuple[int, list[HostBuffer]]:
    """``(taken, buffers)`` of a ``.bin`` file; raises CheckpointError naming ``source`` when it is damaged."""
    if len(raw) < _SNAP_HEADER.size + _CRC.size:
        raise CheckpointError(f"{source}: too short for a snapshot")
    (crc,) = _CRC.unpack_from(raw, len(raw) - _CRC.size)
    body = memoryview(raw)[: len(raw) - _CRC.size]
    if zlib.crc32(body) != crc:
        raise CheckpointError(f"{source}: CRC mismatch")
    magic, version, taken, count = _SNAP_HEADER.unpack_from(body, 0)
    if magic != SNAPSHOT_MAGIC or version != SNAPSHOT_VERSION:
        raise CheckpointError(f"{source}: not a version {SNAPSHOT_VERSION} snapshot (magic {magic:#x})")
    pos = _SNAP_HEADER.size
    buffers = []
    try:
        for _ in range(count):
            (depth,) = _U16.unpack_from(body, pos)
            pos += 2
            elements = []
            for _ in range(depth):
                (n,) = _U16.unpack_from(body, pos)
                pos += 2
                elements.append(bytes(body[pos : pos + n]).decode())
                pos += n
            (n,) = _U16.unpack_from(body, pos)
            pos += 2
            metric = bytes(body[pos : pos + n]).decode()
            pos += n
            start, timestep, length = _BUF_HEAD.unpack_from(body, pos)
            pos += _BUF_HEAD.size
            data = np.frombuffer(body, dtype="<f4", count=length, offset=pos).astype(np.float32)
            pos += 4 * length
            buffers.append((tuple(elements), metric, start, timestep, data))
    except (struct.error, ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{source}: malformed buffer list ({e})") from None
    if pos != len(body):
        raise CheckpointError(f"{source}: {len(body) - pos} trailing bytes")
    return taken, buffers


# --- upstream JSON checkpoint -----------------------------------------------------------------------------------


def _child_name(kind: str, ident: str) -> str:
    return f"{kind}{ident}"


def split_child_name(name: str) -> tuple[str, str]:
    """``("socket", "0")`` from ``"socket0"``; known topology levels first, then letters followed by a digit."""
    for kind in _KNOWN_TYPES:
        if name.startswith(kind) and len(name) > len(kind):
            return kind, name[len(kind) :]
    match = _CHILD_RE.match(name)
    if match is None:
        raise CheckpointError(f"child {name!r} is not <type><id>")
    return match.group(1), match.group(2)


def _json_values(data: np.ndarray) -> str:
    """A float32 list as JSON (shortest float32 digits) with gaps, and infinities JSON cannot hold, as null."""
    text = ",".join(np.asarray(data, dtype=np.float32).astype(str).tolist())
    return "[" + text.replace("-inf", "null").replace("inf", "null").replace("nan", "null") + "]"


def encode_json_snapshot(taken: int, buffers: list[HostBuffer]) -> bytes:
    """The upstream-format JSON checkpoint of one host."""
    root: dict[str, Any] = {"metrics": {}, "children": {}}
    for path, metric, start, timestep, data in merge_runs(buffers):
        level = root
        for i in range(0, len(path) - 1, 2):
            name = _child_name(path[i], path[i + 1])
            level = level["children"].setdefault(name, {"metrics": {}, "children": {}})
        level["metrics"][metric] = (int(start), int(timestep), data)
    return _level_json(root, taken, taken).encode()


def _level_json(level: dict[str, Any], taken: int, default_from: int) -> str:
    starts = [start for start, _, _ in level["metrics"].values()]
    begin = min(starts) if starts else default_from
    metrics = ",".join(
        f'{json.dumps(name)}:{{"frequency":{step},"start":{start},"data":{_json_values(data)}}}'
        for name, (start, step, data) in level["metrics"].items()
    )
    children = ",".join(
        f"{json.dumps(name)}:{_level_json(child, taken, begin)}" for name, child in level["children"].items()
    )
    return f'{{"from":{begin},"to":{taken},"metrics":{{{metrics}}},"children":{{{children}}}}}'


def merge_runs(
    buffers: list[HostBuffer],
) -> list[HostBuffer]:
    """One buffer per (path, metric): separate runs of a series joined with NaN in the gaps (JSON has one
    entry per metric and level)."""
    grouped: dict[tuple[tuple[str, ...], str], list[tuple[int, int, np.ndarray]]] = defaultdict(list)
    for path, metric, start, timestep, data in buffers:
        grouped[(path, metric)].append((start, timestep, data))
    merged = []
    for (path, metric), runs in grouped.items():
        if len(runs) == 1:
            merged.append((path, metric, *runs[0]))
            continue
        step = runs[0][1]
        first = min(start for start, _, _ in runs)
        end = max(start + len(data) * step for start, _, data in runs)
        joined = np.full((end - first) // step, np.nan, dtype=np.float32)
        for start, _, data in sorted(runs, key=lambda run: run[0]):
            offset = (start - first) // step
            joined[offset : offset + len(data)] = data
        merged.append((path, metric, first, step, joined))
    return merged


def _json_data(data: list[Any]) -> np.ndarray | None:
    """A JSON data list as float32 with null as NaN, or None if it holds anything else."""
    if not data:
        return np.empty(0, dtype=np.float32)
    try:
        raw = np.array(data)
    except ValueError:  # ragged nesting
        return None
    if raw.ndim == 1 and raw.dtype.kind in "fiu":  # no gap: converted in one step
        return raw.astype(np.float32)
    if raw.ndim != 1 or raw.dtype.kind != "O":
        return None
    if not all(v is None or (type(v) in (int, float)) for v in data):
        return None
    return np.array([math.nan if v is None else v for v in data], dtype=np.float32)


def decode_json_snapshot(raw: bytes, source: str = "checkpoint") -> list[HostBuffer]:
    """The buffers of an upstream-format JSON checkpoint; raises CheckpointError naming ``source``."""
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise CheckpointError(f"{source}: not JSON ({e})") from None
    buffers: list[HostBuffer] = []

    def walk(level: Any, path: tuple[str, ...], where: str) -> None:
        if not isinstance(level, dict):
            raise CheckpointError(f"{source}: {where or 'root'} is not an object")
        metrics = level.get("metrics") or {}
        if not isinstance(metrics, dict):
            raise CheckpointError(f"{source}: {where}metrics is not an object")
        for metric, entry in metrics.items():
            at = f"{where}metrics.{metric}"
            if not isinstance(entry, dict):
                raise CheckpointError(f"{source}: {at} is not an object")
            frequency, start, data = entry.get("frequency"), entry.get("start"), entry.get("data")
            if not isinstance(frequency, int) or isinstance(frequency, bool) or frequency <= 0:
                raise CheckpointError(f"{source}: {at}.frequency must be a positive integer")
            if not isinstance(start, int) or isinstance(start, bool):
                raise CheckpointError(f"{source}: {at}.start must be an integer")
            if not isinstance(data, list):
                raise CheckpointError(f"{source}: {at}.data must be a list")
            values = _json_data(data)
            if values is None:
                raise CheckpointError(f"{source}: {at}.data must be a list of numbers or null")
            buffers.append((path, metric, start, frequency, values))
        children = level.get("children") or {}
        if not isinstance(children, dict):
            raise CheckpointError(f"{source}: {where}children is not an object")
        for name, child in children.items():
            kind, ident = split_child_name(name)
            walk(child, (*path, kind, ident), f"{where}children.{name}.")

    try:
        walk(doc, (), "")
    except RecursionError:
        raise CheckpointError(f"{source}: nested too deeply") from None
    return buffers


# --- checkpointer -----------------------------------------------------------------------------------------------


@dataclass
class RestoreResult:
    """What :meth:`Checkpointer.restore` loaded."""

    hosts: int = 0
    files: int = 0
    buffers: int = 0
    damaged_files: list[str] = field(default_factory=list)
    wal: wal.ReplayResult = field(default_factory=wal.ReplayResult)
    seconds: float = 0.0


@dataclass
class SnapshotResult:
    """What :meth:`Checkpointer.write_snapshot` wrote."""

    hosts: int = 0
    buffers: int = 0
    bytes: int = 0
    removed_segments: int = 0
    seconds: float = 0.0


def _snapshot_files(host_dir: Path) -> list[tuple[int, str, Path]]:
    """``(timestamp, "bin"|"json", path)`` of the snapshot files of one host, oldest first."""
    found = []
    for entry in os.scandir(host_dir):
        match = _FILE_RE.match(entry.name)
        if match and entry.is_file():
            found.append((int(match.group(1)), match.group(2), Path(entry.path)))
    found.sort()
    return found


def _host_dirs(directory: Path) -> Iterator[tuple[str, str, Path]]:
    if not directory.is_dir():
        return
    for cluster in sorted(os.scandir(directory), key=lambda e: e.name):
        if not cluster.is_dir():
            continue
        for host in sorted(os.scandir(cluster.path), key=lambda e: e.name):
            if host.is_dir():
                yield cluster.name, host.name, Path(host.path)


class Checkpointer:
    """Snapshots, write-ahead log, restore and cleanup of one :class:`MetricStore`.

    The server calls ``restore(now)`` once at start (it opens the log first, so writes accepted meanwhile are
    logged), then ``start()`` (which opens the log if needed, hands it to the store — ``store.set_journal(writer)`` when the store has it, else as a write listener — and
    starts the background thread), and ``stop()`` on a graceful shutdown (final snapshot, log rotated and closed).
    ``num-workers`` is not used: encoding is bound by the interpreter lock, and one thread keeps up.
    """

    def __init__(self, store: Any, config: MetricStoreConfig) -> None:
        self.store = store
        self.config = config
        self.directory = Path(config.checkpoints.directory)
        self.file_format = config.checkpoints.file_format
        self.retention = int(config.retention_in_memory.total_seconds())
        self.interval = max(1, int(config.checkpoint_interval.total_seconds()))
        self.wal_writer: wal.WalWriter | None = None
        self._snapshot_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_snapshot: SnapshotResult | None = None
        self._restored = False

    # -- restore ---------------------------------------------------------------------------------------------------

    def restore(self, now: int | None = None, *, open_log: bool = True) -> RestoreResult:
        """Load the newest snapshot of every host within retention, then replay the write-ahead log.

        The log is opened first (unless ``open_log`` is false, for read-only uses), so that writes the server
        accepts while the restore runs are logged as well.
        """
        began = time.perf_counter()
        now = int(time.time()) if now is None else int(now)
        if open_log:
            self.open_wal()
        self._restored = True
        cutoff = now - self.retention
        result = RestoreResult()
        for cluster, host, host_dir in _host_dirs(self.directory):
            loaded = False
            for path in self._files_to_restore(host_dir, cutoff):
                try:
                    buffers = self._read_file(path)
                except (OSError, CheckpointError) as e:
                    log.warning("checkpoint %s skipped: %s", path, e)
                    result.damaged_files.append(str(path))
                    continue
                result.files += 1
                try:
                    for level, metric, start, timestep, data in buffers:
                        clipped = _clip(start, timestep, data, cutoff)
                        if clipped is None:
                            continue
                        self.store.load_buffer(cluster, host, level, metric, clipped[0], timestep, clipped[1])
                        result.buffers += 1
                except CCError as e:  # e.g. a directory name the store refuses as a host name
                    log.warning("checkpoint %s skipped: %s", path, e)
                    result.damaged_files.append(str(path))
                    continue
                loaded = True
            result.hosts += loaded
        segments = [path for _, path in wal.list_segments(self.directory)]
        if self.wal_writer is not None:
            segments = [p for p in segments if p.name != wal.segment_name(self.wal_writer.current_seq)]
        # The snapshots may hold more than memory-cap (a lower cap than before the restart): free their oldest
        # chunks now, as the retention task would, so that the newer samples of the log find room (the store
        # drops samples that need new buffers above 125 % of the cap).
        self.store.enforce_limits(now)
        loader = _WalLoader(self.store, cutoff)
        with self.wal_writer.muted() if self.wal_writer is not None else contextlib.nullcontext():
            # The replayed segments stay until the next snapshot covers them, so nothing needs logging again.
            wal.replay(segments, loader.apply, result.wal)
            loader.flush()
        result.seconds = time.perf_counter() - began
        log.info(
            "metric store restored: %d hosts, %d files, %d buffers, %d WAL samples (%d damaged spots) in %.2f s",
            result.hosts,
            result.files,
            result.buffers,
            result.wal.samples,
            result.wal.skipped_records,
            result.seconds,
        )
        return result

    def _files_to_restore(self, host_dir: Path, cutoff: int) -> list[Path]:
        files = _snapshot_files(host_dir)
        bins = [(ts, path) for ts, kind, path in files if kind == "bin" and ts >= cutoff]
        newest_bin = bins[-1] if bins else None
        # Upstream names a JSON checkpoint after the start of its data and writes one per interval, so all of them
        # are needed, including the newest one starting before the cutoff (its data may reach into the window).
        jsons = [(ts, path) for ts, kind, path in files if kind == "json"]
        older = [entry for entry in jsons if entry[0] < cutoff]
        chosen = ([older[-1]] if older else []) + [entry for entry in jsons if entry[0] >= cutoff]
        if newest_bin is not None:
            chosen = [e for e in chosen if e[0] >= newest_bin[0]] + [newest_bin]
        chosen.sort()
        return [path for _, path in chosen]

    @staticmethod
    def _read_file(path: Path) -> list[HostBuffer]:
        raw = path.read_bytes()
        if path.suffix == ".bin":
            return decode_snapshot(raw, str(path))[1]
        return decode_json_snapshot(raw, str(path))

    # -- snapshots -------------------------------------------------------------------------------------------------

    def write_snapshot(self, now: int | None = None) -> SnapshotResult:
        """Rotate the log, write every buffer to ``<cluster>/<host>/<now>.<bin|json>``, then drop older segments."""
        now = int(time.time()) if now is None else int(now)
        with self._snapshot_lock:
            began = time.perf_counter()
            old_segments = self.wal_writer.rotate() if self.wal_writer is not None else []
            result = SnapshotResult()
            written: set[tuple[str, str]] = set()
            # iter_buffers yields host by host, so one host's copy is in memory at a time.
            for (cluster, host), group in groupby(self.store.iter_buffers(), key=itemgetter(0, 1)):
                buffers = [
                    (tuple(level), metric, int(start), int(step), data)
                    for _, _, level, metric, start, step, data in group
                ]
                path = self.directory / cluster / host / f"{now}.{'bin' if self.file_format == 'wal' else 'json'}"
                if (cluster, host) in written:  # the host came back later in the iteration: rewrite its file
                    earlier = self._read_file(path)
                    result.hosts -= 1
                    result.buffers -= len(earlier)
                    result.bytes -= path.stat().st_size
                    buffers = earlier + buffers
                raw = encode_snapshot(now, buffers) if self.file_format == "wal" else encode_json_snapshot(now, buffers)
                path.parent.mkdir(parents=True, exist_ok=True)
                _write_atomically(path, raw)
                written.add((cluster, host))
                result.hosts += 1
                result.buffers += len(buffers)
                result.bytes += len(raw)
            if written:
                # One sync of everything instead of an fsync per host file: the segments below are deleted next.
                os.sync()
            for path in old_segments:
                path.unlink(missing_ok=True)
            result.removed_segments = len(old_segments)
            result.seconds = time.perf_counter() - began
            self.last_snapshot = result
            log.info(
                "metric store snapshot: %d hosts, %d buffers, %d bytes in %.2f s",
                result.hosts,
                result.buffers,
                result.bytes,
                result.seconds,
            )
            return result

    # -- cleanup ---------------------------------------------------------------------------------------------------

    def cleanup(self, now: int | None = None) -> int:
        """Delete (or, in mode "archive", move) superseded and expired snapshot files; returns how many."""
        now = int(time.time()) if now is None else int(now)
        cutoff = now - self.retention
        archive_dir = None
        if self.config.cleanup.mode == "archive":
            if not self.config.cleanup.directory:
                log.error('metric-store.cleanup.mode is "archive" but cleanup.directory is not set; nothing cleaned')
                return 0
            archive_dir = Path(self.config.cleanup.directory)
        removed = 0
        for cluster, host, host_dir in list(_host_dirs(self.directory)):
            files = _snapshot_files(host_dir)
            bins = [ts for ts, kind, _ in files if kind == "bin"]
            newest_bin = bins[-1] if bins else None
            for ts, kind, path in files:
                if kind == "bin":
                    expired = ts < cutoff or (newest_bin is not None and ts < newest_bin)
                else:
                    # JSON files are named after the start of their data (upstream); keep one interval of slack.
                    expired = ts + self.interval < cutoff or (newest_bin is not None and ts < newest_bin)
                if not expired:
                    continue
                try:
                    if archive_dir is None:
                        path.unlink()
                    else:
                        target = archive_dir / cluster / host
                        target.mkdir(parents=True, exist_ok=True)
                        shutil.move(str(path), target / path.name)
                    removed += 1
                except OSError as e:
                    log.warning("checkpoint cleanup of %s failed: %s", path, e)
            try:
                host_dir.rmdir()
                host_dir.parent.rmdir()
            except OSError:
                pass  # not empty: the usual case
        return removed

    # -- lifecycle -------------------------------------------------------------------------------------------------

    def open_wal(self) -> wal.WalWriter:
        """Start a fresh log segment and register it as the store's write listener (idempotent)."""
        if self.wal_writer is None:
            self.wal_writer = wal.WalWriter(
                self.directory, max_size=self.config.checkpoints.max_wal_size, on_full=self._wake.set
            )
            set_journal = getattr(self.store, "set_journal", None)
            if set_journal is not None:
                # A store that can hand over accepted line-protocol bodies as they came (append_lines) saves the
                # per-sample encoding of append; it calls append for samples written as Sample objects.
                set_journal(self.wal_writer)
            else:
                self.store.add_write_listener(self.wal_writer.append)
        return self.wal_writer

    def start(self) -> None:
        """Open the log and start the thread writing snapshots every ``checkpoint-interval`` (sooner when the
        log outgrows ``max-wal-size``) and cleaning up every ``retention-in-memory``; restores first if
        :meth:`restore` was not called."""
        if not self._restored:
            # Without it the next snapshot would delete log segments whose samples were never loaded.
            self.restore()
        self.open_wal()
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="metricstore-checkpoints", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_snapshot = time.monotonic() + self.interval
        # Clean up right away too: a server restarted more often than retention-in-memory would never get to it.
        next_cleanup = time.monotonic()
        while not self._stop.is_set():
            timeout = max(0.0, min(next_snapshot, next_cleanup) - time.monotonic())
            self._wake.wait(timeout)
            if self._stop.is_set():
                return
            wal_full = self._wake.is_set()
            self._wake.clear()
            try:
                if wal_full or time.monotonic() >= next_snapshot:
                    self.write_snapshot()
                    next_snapshot = time.monotonic() + self.interval
                if time.monotonic() >= next_cleanup:
                    self.cleanup()
                    next_cleanup = time.monotonic() + self.retention
            except Exception:  # the thread must survive a full disk and retry at the next interval
                log.exception("metric store checkpointing failed")
                next_snapshot = time.monotonic() + min(self.interval, 60)

    def stop(self, now: int | None = None) -> SnapshotResult:
        """Stop the thread, write the final snapshot and close the log (graceful shutdown)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        result = self.write_snapshot(now)
        if self.wal_writer is not None:
            self.wal_writer.close()
        return result


class _WalLoader:
    """Replays log records into the store: sample batches grouped per series and merged with ``load_buffer``
    (a few numpy operations per series instead of Python work per sample), line-protocol records re-parsed.

    Samples are collected across records and merged in blocks; within a block the newest record wins for a
    timestamp, as it did when the samples were written. (Two different timestamps of one series falling into
    the same timestep slot end up with the later timestamp's value rather than the later write's; collectors
    do not send that.)
    """

    _BLOCK = 4_000_000
    _MIN_PER_SERIES = 16

    def __init__(self, store: Any, cutoff: int) -> None:
        self.store = store
        self.cutoff = cutoff
        self.keys: dict[wal.SampleKey, int] = {}
        self.mappings: dict[bytes, np.ndarray] = {}
        self.lines_take_received = "received" in inspect.signature(store.write_lines).parameters
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.pending = 0

    def apply(self, batch: wal.Batch | wal.LinesBatch) -> None:
        if isinstance(batch, wal.LinesBatch):
            self.flush()  # keep the order of records
            try:
                if self.lines_take_received:
                    self.store.write_lines(batch.body, batch.cluster, received=batch.received)
                else:
                    self.store.write_lines(batch.body, batch.cluster)
            except CCError as e:
                log.warning("WAL line-protocol record not replayed: %s", e)
            return
        mapping = self.mappings.get(batch.blob)
        if mapping is None:
            keys = self.keys
            mapping = np.fromiter(
                (keys.setdefault(k, len(keys)) for k in batch.keys), dtype=np.int64, count=len(batch.keys)
            )
            if len(self.mappings) >= 4096:
                self.mappings.clear()
            self.mappings[batch.blob] = mapping
        self.parts.append((mapping[batch.index], batch.ts, batch.value))
        self.pending += len(batch)
        if self.pending >= self._BLOCK:
            self.flush()

    def flush(self) -> None:
        if not self.parts:
            return
        ids = np.concatenate([p[0] for p in self.parts])
        stamps = _to_seconds(np.concatenate([p[1] for p in self.parts]))
        values = np.concatenate([p[2] for p in self.parts])
        self.parts = []
        self.pending = 0
        keep = stamps >= self.cutoff
        if not keep.all():
            ids, stamps, values = ids[keep], stamps[keep], values[keep]
        if not len(ids):
            return
        key_list = list(self.keys)
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        bounds = np.flatnonzero(np.diff(sorted_ids)) + 1
        if (len(bounds) + 1) * self._MIN_PER_SERIES > len(ids):
            # Few samples per series (a small block, e.g. between line-protocol records): the per-series numpy
            # work would cost more than writing the samples one by one, in their original order.
            try:
                self.store.write(
                    [
                        Sample._make((*key_list[k], v, t))
                        for k, t, v in zip(ids.tolist(), stamps.tolist(), values.tolist(), strict=True)
                    ]
                )
            except CCError as e:
                log.warning("WAL samples not replayed: %s", e)
            return
        ids, stamps, values = sorted_ids, stamps[order], values[order]
        starts = [0, *bounds.tolist()]
        ends = [*bounds.tolist(), len(ids)]
        for first, end in zip(starts, ends, strict=True):
            cluster, host, metric, kind, kind_id, sub, sub_id = key_list[int(ids[first])]
            t = stamps[first:end]
            v = values[first:end]
            step = 1
            if len(t) > 1:
                gaps = np.diff(t)
                if not (gaps > 0).all():  # out of order or rewritten: the last occurrence of each time, in order
                    _, last_from_end = np.unique(t[::-1], return_index=True)
                    pick = len(t) - 1 - last_from_end
                    t, v = t[pick], v[pick]
                    gaps = np.diff(t)
                step = int(np.gcd.reduce(gaps)) if len(gaps) else 1
            base = int(t[0])
            dense = np.full((int(t[-1]) - base) // step + 1, np.nan, dtype=np.float32)
            dense[(t - base) // step] = v
            level = SeriesKey(cluster, host, metric, None if kind == "node" else kind, kind_id, sub, sub_id).path
            try:
                self.store.load_buffer(cluster, host, level, metric, base, step, dense)
            except CCError as e:
                log.warning("WAL samples of %s/%s/%s not replayed: %s", cluster, host, metric, e)


def _to_seconds(ts: np.ndarray) -> np.ndarray:
    """Unix seconds of timestamps in s, ms, us or ns, told apart by magnitude as the line protocol does."""
    ts = ts.astype(np.int64)
    limit = 10**11
    if not len(ts) or int(ts.max()) < limit:
        return ts
    return np.select(
        [ts < limit, ts < limit * 1000, ts < limit * 1_000_000], [ts, ts // 1000, ts // 1_000_000], ts // 1_000_000_000
    )


def _clip(start: int, timestep: int, data: np.ndarray, cutoff: int) -> tuple[int, np.ndarray] | None:
    """The part of a buffer at or after ``cutoff`` as ``(start, data)``, or None when nothing is left."""
    if start >= cutoff:
        return (start, data) if len(data) else None
    skip = -(-(cutoff - start) // timestep)
    if skip >= len(data):
        return None
    return start + skip * timestep, data[skip:]


def _write_atomically(path: Path, raw: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(raw)
    os.replace(tmp, path)
