"""Write-ahead log of the built-in metric store: every accepted batch of samples, appended before the write is answered.

Files live in the checkpoint directory as ``wal-<seq>.wal`` (``seq`` a zero-padded, increasing number); the
segment with the highest number is the one being written. A segment is a sequence of records::

    u32 magic 0xCC1DA7A1 | u32 payload length | payload | u32 CRC32(payload)        (all little-endian)

and a payload is one batch, in one of two kinds (first byte)::

    1 samples:        u8 1 | u32 number of keys | u32 number of samples | u32 key-blob length | key blob (UTF-8)
                      | u32 key index [samples] | i64 timestamp (as sent) [samples] | f32 value [samples]
    2 line protocol:  u8 2 | i64 received (s, the time of lines without a timestamp) | u16 default-cluster
                      length | default cluster (UTF-8, empty = none) | body

The key blob holds the distinct ``cluster, host, metric, type, type-id, stype, stype-id`` tuples of the batch,
each field as ``u16 n`` followed by ``n - 1`` bytes of UTF-8 (``n = 0``: absent), so any name is safe. Samples are stored
column-wise so that encoding stays cheap; a line-protocol body that the store accepted is logged as it came
(nearly free: no per-sample work at all) and parsed again on replay.

Durability: a batch is handed to the kernel with one ``os.write`` before the listener returns, so a kill -9 of the
process loses nothing that was acknowledged. There is no fsync per batch (it would cost milliseconds per request);
a power loss or kernel crash can lose what the kernel had not yet written back, unless ``fsync_interval`` is set,
which fsyncs the segment at most once per interval from the write path.

Replay stops a segment at a torn tail (a kill -9 in the middle of a write) and skips corrupt records by searching
for the next intact one; ``ReplayResult`` reports what was skipped. A writer never appends to an existing segment:
it always starts a new one, so a torn tail is never followed by fresh records.
"""

from __future__ import annotations

import logging
import math
import os
import re
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

WAL_MAGIC = 0xCC1DA7A1
_HEADER = struct.Struct("<II")
_COUNTS = struct.Struct("<BIII")
_LINES_HEAD = struct.Struct("<BqH")
KIND_SAMPLES = 1
KIND_LINES = 2
_CRC = struct.Struct("<I")
_FIELD_LEN = struct.Struct("<H")
_SEGMENT_RE = re.compile(r"^wal-(\d{12})\.wal$")
# A record larger than this is treated as corruption rather than trusted (a batch of 10 M samples is ~170 MB).
_MAX_PAYLOAD = 1 << 30

# (cluster, host, metric, type, type_id, stype, stype_id)
SampleKey = tuple[str, str, str, "str | None", "str | None", "str | None", "str | None"]


def segment_name(seq: int) -> str:
    """File name of WAL segment ``seq``."""
    return f"wal-{seq:012d}.wal"


def list_segments(directory: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """The WAL segments in ``directory`` as ``(seq, path)``, oldest first."""
    base = Path(directory)
    if not base.is_dir():
        return []
    found = []
    for entry in os.scandir(base):
        match = _SEGMENT_RE.match(entry.name)
        if match and entry.is_file():
            found.append((int(match.group(1)), Path(entry.path)))
    found.sort()
    return found


# Encoded keys are cached across batches: a collector sends the same series every interval, and joining and
# encoding seven strings per key would otherwise be the largest cost of logging a batch.
_KEY_BYTES: dict[tuple[Any, ...], bytes] = {}
_KEY_CACHE_LIMIT = 1_000_000
_KEY_OF = itemgetter(slice(0, 7))
_VALUE_OF = itemgetter(7)
_TS_OF = itemgetter(8)


def encode_batch(samples: Sequence[Any]) -> bytes:
    """One WAL record (header, payload, CRC) holding ``samples`` (``lineproto.Sample`` tuples)."""
    keys: dict[tuple[Any, ...], int] = {}
    # Samples are NamedTuples (cluster, host, metric, type, type_id, stype, stype_id, value, ts): slicing is the
    # cheapest way to get the key, and setdefault hands out indexes in first-seen order.
    indexes = [keys.setdefault(key, len(keys)) for key in map(_KEY_OF, samples)]
    stamps = list(map(_TS_OF, samples))
    values = list(map(_VALUE_OF, samples))
    cache = _KEY_BYTES
    if len(cache) > _KEY_CACHE_LIMIT:
        cache.clear()
    encoded = []
    for key in keys:
        raw = cache.get(key)
        if raw is None:
            raw = cache[key] = _encode_key(key)
        encoded.append(raw)
    blob = b"".join(encoded)
    payload = b"".join(
        (
            _COUNTS.pack(KIND_SAMPLES, len(keys), len(indexes), len(blob)),
            blob,
            np.asarray(indexes, dtype="<u4").tobytes(),
            np.asarray(stamps, dtype="<i8").tobytes(),
            np.asarray(values, dtype="<f4").tobytes(),
        )
    )
    return _frame(payload)


def encode_lines(body: bytes, cluster: str | None, received: int | None = None) -> bytes:
    """One WAL record holding an accepted line-protocol body, the default cluster it was sent with and the time
    it arrived (lines without a timestamp get that time on replay, as they did when written)."""
    name = (cluster or "").encode()
    when = int(time.time()) if received is None else received
    return _frame(b"".join((_LINES_HEAD.pack(KIND_LINES, when, len(name)), name, body)))


def _frame(payload: bytes) -> bytes:
    return b"".join((_HEADER.pack(WAL_MAGIC, len(payload)), payload, _CRC.pack(zlib.crc32(payload))))


@dataclass
class LinesBatch:
    """A decoded line-protocol record."""

    cluster: str | None
    body: bytes
    received: int

    def __len__(self) -> int:
        return self.body.count(b"\n") + 1


@dataclass
class Batch:
    """A decoded WAL record, column-wise: ``keys[index[i]]`` is the key of sample ``i``."""

    keys: list[SampleKey]
    index: np.ndarray
    ts: np.ndarray
    value: np.ndarray
    blob: bytes = b""
    """The encoded key list; equal blobs mean equal ``keys`` (a collector sends the same series each interval)."""

    def __len__(self) -> int:
        return len(self.index)

    def samples(self, factory: Callable[..., Any]) -> list[Any]:
        """The samples of the batch built with ``factory(cluster, host, metric, type, type_id, stype, stype_id, value, ts)``."""
        keys = self.keys
        return [
            factory(*keys[k], v, t)
            for k, t, v in zip(self.index.tolist(), self.ts.tolist(), self.value.tolist(), strict=True)
        ]


# Decoded key lists by blob, so that the same series set sent every interval is decoded once per replay.
_BLOB_KEYS: dict[bytes, list[SampleKey]] = {}
_BLOB_CACHE_LIMIT = 4096


def _encode_key(key: tuple[Any, ...]) -> bytes:
    parts = []
    for part in key:
        if part is None:
            parts.append(b"\0\0")
        else:
            raw = part.encode()
            if len(raw) >= 0xFFFF:
                raise ValueError(f"name too long for the WAL: {part[:40]!r}...")
            parts += (_FIELD_LEN.pack(len(raw) + 1), raw)
    return b"".join(parts)


def _decode_keys(blob: bytes, n_keys: int) -> list[SampleKey]:
    keys = _BLOB_KEYS.get(blob)
    if keys is not None and len(keys) == n_keys:
        return keys
    keys = []
    pos = 0
    try:
        for _ in range(n_keys):
            fields: list[str | None] = []
            for _ in range(7):
                (n,) = _FIELD_LEN.unpack_from(blob, pos)
                pos += 2
                if n == 0:
                    fields.append(None)
                    continue
                end = pos + n - 1
                if end > len(blob):
                    raise ValueError("key field beyond the key blob")
                fields.append(blob[pos:end].decode())
                pos = end
            if fields[0] is None or fields[1] is None or fields[2] is None:
                raise ValueError("key without cluster, host or metric")
            keys.append(tuple(fields))  # type: ignore[arg-type]
    except struct.error:
        raise ValueError("key blob too short") from None
    if pos != len(blob):
        raise ValueError("trailing bytes in the key blob")
    if len(keys) != n_keys:
        raise ValueError("key count does not match")
    if len(_BLOB_KEYS) >= _BLOB_CACHE_LIMIT:
        _BLOB_KEYS.clear()
    _BLOB_KEYS[blob] = keys
    return keys


def decode_payload(payload: bytes | memoryview) -> Batch | LinesBatch:
    """The batch in one record payload; raises ValueError when the payload is inconsistent."""
    if not len(payload):
        raise ValueError("empty payload")
    if payload[0] == KIND_LINES:
        if len(payload) < _LINES_HEAD.size:
            raise ValueError("payload shorter than its header")
        _, received, name_len = _LINES_HEAD.unpack_from(payload, 0)
        offset = _LINES_HEAD.size + name_len
        if offset > len(payload):
            raise ValueError("cluster name beyond the payload")
        name = bytes(payload[_LINES_HEAD.size : offset]).decode()
        return LinesBatch(name or None, bytes(payload[offset:]), received)
    if payload[0] != KIND_SAMPLES:
        raise ValueError(f"unknown record kind {payload[0]}")
    if len(payload) < _COUNTS.size:
        raise ValueError("payload shorter than its counts")
    _, n_keys, n_samples, blob_len = _COUNTS.unpack_from(payload, 0)
    offset = _COUNTS.size
    if offset + blob_len + n_samples * 16 != len(payload):
        raise ValueError("payload length does not match its counts")
    blob = bytes(payload[offset : offset + blob_len])
    offset += blob_len
    keys = _decode_keys(blob, n_keys)
    index = np.frombuffer(payload, dtype="<u4", count=n_samples, offset=offset)
    offset += 4 * n_samples
    ts = np.frombuffer(payload, dtype="<i8", count=n_samples, offset=offset)
    offset += 8 * n_samples
    value = np.frombuffer(payload, dtype="<f4", count=n_samples, offset=offset)
    if n_samples and int(index.max()) >= n_keys:
        raise ValueError("key index out of range")
    return Batch(keys, index, ts, value, blob)


@dataclass
class ReplayResult:
    """What a replay read: intact records and samples (lines, for line-protocol records), and what it skipped."""

    segments: int = 0
    records: int = 0
    samples: int = 0
    skipped_records: int = 0
    """Damaged places passed over (a torn tail counts as one)."""
    skipped_bytes: int = 0
    torn_tails: list[str] = field(default_factory=list)
    """Segments whose last record was incomplete (typically a kill -9 during a write)."""

    def add(self, other: ReplayResult) -> None:
        self.segments += other.segments
        self.records += other.records
        self.samples += other.samples
        self.skipped_records += other.skipped_records
        self.skipped_bytes += other.skipped_bytes
        self.torn_tails.extend(other.torn_tails)


def _record_at(data: memoryview, pos: int) -> tuple[int, Batch | LinesBatch] | None:
    """The record starting at ``pos`` and its end offset, or None if there is no intact record there."""
    if pos + _HEADER.size > len(data):
        return None
    magic, length = _HEADER.unpack_from(data, pos)
    if magic != WAL_MAGIC or length > _MAX_PAYLOAD:
        return None
    start = pos + _HEADER.size
    end = start + length + _CRC.size
    if end > len(data):
        return None
    payload = data[start : start + length]
    (crc,) = _CRC.unpack_from(data, start + length)
    if zlib.crc32(payload) != crc:
        return None
    try:
        batch = decode_payload(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    return end, batch


def read_segment(path: str | os.PathLike[str], result: ReplayResult | None = None) -> Iterator[Batch | LinesBatch]:
    """The intact batches of one segment, in order; damage is skipped and counted in ``result``."""
    result = result if result is not None else ReplayResult()
    with open(path, "rb") as f:
        raw = f.read()
    data = memoryview(raw)
    result.segments += 1
    magic_bytes = _HEADER.pack(WAL_MAGIC, 0)[:4]
    pos = 0
    while pos < len(data):
        found = _record_at(data, pos)
        if found is not None:
            pos, batch = found
            result.records += 1
            result.samples += len(batch)
            yield batch
            continue
        # Damage: look for the next intact record; none left means a torn tail.
        result.skipped_records += 1
        scan = pos + 1
        while True:
            scan = raw.find(magic_bytes, scan) if scan < len(data) else -1
            if scan < 0 or _record_at(data, scan) is not None:
                break
            scan += 1
        if scan < 0:
            result.skipped_bytes += len(data) - pos
            result.torn_tails.append(str(path))
            log.warning("WAL %s: incomplete or corrupt tail of %d bytes skipped", path, len(data) - pos)
            return
        log.warning("WAL %s: %d corrupt bytes at offset %d skipped", path, scan - pos, pos)
        result.skipped_bytes += scan - pos
        pos = scan


def replay(
    paths: Iterable[str | os.PathLike[str]],
    apply: Callable[[Batch | LinesBatch], None],
    result: ReplayResult | None = None,
) -> ReplayResult:
    """Feed every intact batch of ``paths`` (oldest first) to ``apply``; returns the counts."""
    result = result if result is not None else ReplayResult()
    for path in paths:
        for batch in read_segment(path, result):
            apply(batch)
    return result


class WalWriter:
    """Appends accepted batches to the current segment; register ``append`` as the store's write listener."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_size: int = 0,
        fsync_interval: float = 0.0,
        on_full: Callable[[], None] | None = None,
    ) -> None:
        """``max_size`` bytes (0 unlimited) makes the writer call ``on_full`` once the segment outgrows it (the
        checkpointer then snapshots and rotates); ``fsync_interval`` seconds > 0 fsyncs at most that often."""
        self.directory = Path(directory)
        self.max_size = max_size
        self.fsync_interval = fsync_interval
        self.on_full = on_full
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._seq = 0
        self._size = 0
        self._full_signalled = False
        self._last_sync = time.monotonic()
        self._dirty = False
        self._closed = False
        self._local = threading.local()
        self._last_error = -math.inf
        self._path = self.directory
        self.failed_writes = 0
        """Batches that could not be written (disk full, I/O error); they live on in memory only."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._open_next()

    @property
    def current_seq(self) -> int:
        return self._seq

    @property
    def current_size(self) -> int:
        return self._size

    def _open_next(self) -> None:
        existing = list_segments(self.directory)
        self._seq = max(self._seq, existing[-1][0] if existing else 0) + 1
        path = self._path = self.directory / segment_name(self._seq)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        self._size = 0
        self._full_signalled = False

    def append(self, samples: Sequence[Any]) -> None:
        """Log one batch of accepted samples as one record; returns once the kernel has it."""
        if samples:
            self._write(encode_batch(samples), len(samples))

    def append_lines(self, body: bytes, cluster: str | None = None, received: int | None = None) -> None:
        """Log an accepted line-protocol body as it came (much cheaper than :meth:`append` per sample)."""
        if body:
            self._write(encode_lines(body, cluster, received), 1)

    @contextmanager
    def muted(self) -> Iterator[None]:
        """Drop what the current thread appends meanwhile (a replay must not log the log into itself; writes of
        other threads, e.g. requests served during a restore, are still logged)."""
        self._local.muted = True
        try:
            yield
        finally:
            self._local.muted = False

    def _write(self, record: bytes, count: int) -> None:
        if getattr(self._local, "muted", False):
            return
        signal = False
        with self._lock:
            if self._fd is None:
                # Only after close() at shutdown, once the final snapshot is written.
                log.warning("WAL closed: batch of %d samples not logged", count)
                return
            try:
                view = memoryview(record)
                while view:
                    written = os.write(self._fd, view)
                    view = view[written:]
                self._size += len(record)
                self._dirty = True
                if self.fsync_interval > 0 and time.monotonic() - self._last_sync >= self.fsync_interval:
                    os.fsync(self._fd)
                    self._last_sync = time.monotonic()
                    self._dirty = False
            except OSError as e:
                # A full disk must not fail ingestion: the samples are in memory and reach the next snapshot;
                # only their crash safety is lost. Logged at most once a minute.
                self.failed_writes += 1
                now = time.monotonic()
                if now - self._last_error >= 60:
                    self._last_error = now
                    log.error(
                        "WAL write to %s failed (%s); %d batches not logged so far", self._path, e, self.failed_writes
                    )
                # A partial record may precede the next one; the reader resynchronises on the next magic.
                return
            if self.max_size and self._size >= self.max_size and not self._full_signalled:
                self._full_signalled = True
                signal = True
        if signal and self.on_full is not None:
            self.on_full()

    def rotate(self) -> list[Path]:
        """Start a new segment; returns every older segment (safe to delete once a snapshot covers them)."""
        with self._lock:
            if self._closed:
                return []
            self._close_fd(sync=True)
            self._open_next()
            seq = self._seq
        return [path for s, path in list_segments(self.directory) if s < seq]

    def sync(self) -> None:
        """fsync the current segment."""
        with self._lock:
            if self._fd is not None and self._dirty:
                os.fsync(self._fd)
                self._dirty = False
                self._last_sync = time.monotonic()

    def _close_fd(self, *, sync: bool) -> None:
        if self._fd is None:
            return
        if sync and self._dirty:
            os.fsync(self._fd)
        os.close(self._fd)
        self._fd = None
        self._dirty = False

    def close(self) -> None:
        """fsync and close the current segment; later appends are dropped with a warning."""
        with self._lock:
            self._closed = True
            self._close_fd(sync=True)
