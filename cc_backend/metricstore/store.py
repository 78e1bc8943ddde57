"""The in-memory tree of the built-in metric store: cluster -> host -> level -> metric -> float32 chunks.

Each series (one metric at one level of one host) holds its samples at the metric's timestep (from the
cluster's ``cluster.json``) in fixed chunks of :data:`CHUNK` float32 values, keyed by chunk number
counted from the series' first sample; never-written slots are NaN. Retention and the memory cap free
whole chunks, oldest first. A timestamp ``ts`` lands in slot ``ts // timestep`` (times are aligned down
to the timestep).

Levels below a host are paths of strings: ``()`` is the node itself, ``("socket", "0")``,
``("hwthread", "3")``, ``("accelerator", "00000000:01:00.0")``, and with a subtype
``("socket", "0", "core", "1")``.

Checkpoint interface (for :mod:`cc_backend.metricstore.checkpoint` and ``wal``):

* :meth:`MetricStore.iter_buffers` yields ``(cluster, host, path, metric, start, timestep, data)`` with
  ``data`` a fresh float32 array (NaN = no sample) whose first value is at Unix time ``start``; one tuple
  per run of consecutive chunks (usually one per series), ending at the newest sample written.
* :meth:`MetricStore.load_buffer` merges such an array back in (NaN values leave existing data alone);
  it notifies no write listener, so a restore does not re-log what it restores.
* :meth:`MetricStore.add_write_listener` registers ``fn(samples: list[Sample])``, called after every
  accepted :meth:`write` / :meth:`write_lines` with the samples stored (ignored ones left out), outside
  the store's locks.
* :meth:`MetricStore.set_journal` is the cheaper WAL hook: accepted line-protocol bodies are handed over
  as they came (``append_lines``), only :meth:`write` calls ``append(samples)``.

Thread safety: one lock per cluster guards its tree; writers parse outside the lock and hold it only
while copying values into chunks, readers while copying out slices.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from itertools import compress
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from cc_backend.archive.cluster import Cluster, ClusterRegistry, SubCluster, assign_subcluster
from cc_backend.errors import CCError, InvalidInput
from cc_backend.metricstore.lineproto import (
    MAX_NAME,
    Sample,
    SeriesKey,
    check_name,
    iter_lines,
    parse_key,
    to_seconds,
)

if TYPE_CHECKING:
    from cc_backend.config.sections import MetricStoreConfig

__all__ = ["CHUNK", "MetricStore", "Series", "parse_selectors"]

log = logging.getLogger("cc_backend.metricstore")

#: Samples per chunk (512 as upstream: 8.5 h at 60 s).
CHUNK = 512
_SHIFT = 9
_MASK = CHUNK - 1
#: Bytes one chunk costs: its values plus the ndarray header and its dict slot (measured, bench/metricstore.py).
CHUNK_BYTES = CHUNK * 4 + 112 + 40
#: Bytes one series costs besides its chunks: the Series object, its chunk dict, its slot in the metric dict.
SERIES_BYTES = 80 + 232 + 100
DEFAULT_RETENTION = 48 * 3600
DEFAULT_MEMORY_CAP_GB = 8
_SECONDS_LIMIT = 10**11
_CACHE_LIMIT = 1_000_000
#: Longer series keys (many extra tags) are parsed every time rather than cached, bounding the cache's bytes.
_CACHED_KEY_LIMIT = 1024
#: Distinct ignored clusters and metrics counted by name in ``MetricStore.ignored``; the rest under IGNORED_OTHERS.
MAX_IGNORED_KEYS = 1000
IGNORED_OTHERS = "others"
#: Buffers the writes may fill, in percent of memory-cap, before samples needing new chunks are dropped.
HARD_CAP_PERCENT = 125
MEMORY_CAP_REACHED = "memory-cap reached"
#: Samples copied into chunks per lock hold, so queries are not starved by a huge batch.
_APPLY_BATCH = 4096

Path = tuple[str, ...]
#: :meth:`MetricStore.free` without selectors: every cluster.
EVERYTHING: Any = object()
Listener = Callable[[list[Sample]], None]


class Journal(Protocol):
    """What :meth:`MetricStore.set_journal` logs to (``cc_backend.metricstore.wal.WalWriter``)."""

    def append(self, samples: list[Sample]) -> None: ...

    def append_lines(self, body: bytes, cluster: str | None = None, received: int | None = None) -> None: ...


# Parallel lists of one cluster's accepted samples: series, Unix seconds, values.
_Columns = tuple[list["Series"], list[int], list[float]]


class Series:
    """One metric at one level of one host: chunks of float32 at ``step`` seconds per sample."""

    __slots__ = ("chunks", "key", "last", "origin", "step")

    def __init__(self, step: int, first_slot: int, key: SeriesKey | None = None) -> None:
        self.step = step
        #: Where the series sits, as the samples written to it name it.
        self.key = key
        #: Slot (``ts // step``) of value 0 of chunk 0; chunk k starts at slot ``origin + k * CHUNK``.
        self.origin = first_slot
        self.chunks: dict[int, np.ndarray] = {}
        #: Newest slot ever written (-1: none); kept when chunks are freed so health can tell "stale".
        self.last = -1

    def first_slot(self) -> int:
        return self.origin + min(self.chunks) * CHUNK

    def read(self, first: int, last: int) -> np.ndarray:
        """Values of slots ``first..last`` (inclusive) as a new float32 array, NaN where nothing was written."""
        n = last - first + 1
        out = np.full(max(n, 0), np.nan, dtype=np.float32)
        if n <= 0 or not self.chunks:
            return out
        lo = first - self.origin
        hi = last - self.origin
        for k in range(lo >> _SHIFT, (hi >> _SHIFT) + 1):
            chunk = self.chunks.get(k)
            if chunk is None:
                continue
            base = k * CHUNK
            a = max(lo, base)
            b = min(hi, base + _MASK)
            out[a - lo : b - lo + 1] = chunk[a - base : b - base + 1]
        return out

    def free_before(self, slot: int) -> int:
        """Drop chunks whose every slot is older than ``slot``; the number dropped."""
        limit = (slot - self.origin) >> _SHIFT  # chunks below this index end before ``slot``
        old = [k for k in self.chunks if k < limit]
        for k in old:
            del self.chunks[k]
        return len(old)


class _Cluster:
    """The tree of one cluster and the lock guarding it."""

    __slots__ = ("chunks", "config", "hosts", "lock", "metrics", "name", "series", "subclusters")

    def __init__(self, config: Cluster) -> None:
        self.name = config.name
        self.config = config
        self.lock = threading.Lock()
        #: metric -> (timestep, aggregation)
        self.metrics: dict[str, tuple[int, str]] = {m.name: (m.timestep, m.aggregation) for m in config.metric_config}
        self.hosts: dict[str, dict[Path, dict[str, Series]]] = {}
        self.subclusters: dict[str, SubCluster | None] = {}
        self.chunks = 0
        self.series = 0

    def series_of(self, host: str, path: Path, metric: str, slot: int) -> Series:
        """The series, created if new (caller holds the lock)."""
        levels = self.hosts.get(host)
        if levels is None:
            levels = self.hosts[host] = {}
        metrics = levels.get(path)
        if metrics is None:
            metrics = levels[path] = {}
        series = metrics.get(metric)
        if series is None:
            key = SeriesKey(self.name, host, metric, *(path + (None,) * (4 - len(path))))
            series = metrics[metric] = Series(self.metrics[metric][0], slot, key)
            self.series += 1
        return series

    def subcluster(self, host: str) -> SubCluster | None:
        """The subcluster whose nodelist holds ``host`` (cached), None if none does."""
        try:
            return self.subclusters[host]
        except KeyError:
            pass
        try:
            sc: SubCluster | None = assign_subcluster(self.config, host)
        except CCError:
            sc = None
        self.subclusters[host] = sc
        return sc


# A resolved series key: the cluster, the series (None: ignored) and the key as sent.
_Entry = tuple[_Cluster | None, Series | None, SeriesKey]


class _CapReached(Exception):
    """A new series would pass the memory cap (its sample is dropped, its key not cached)."""


class _Batch:
    """The samples one write takes: parallel columns per cluster (what :meth:`MetricStore._apply` copies in)."""

    __slots__ = ("by_cluster", "ignored", "new_series")

    def __init__(self) -> None:
        self.by_cluster: dict[_Cluster, _Columns] = {}
        self.ignored = 0
        #: Series created for this write (each will want a chunk: see MetricStore._resolve).
        self.new_series = 0

    def add(self, entry: _Entry, ts: int, value: float) -> bool:
        """Take one sample of a resolved key; False (and counted) when its cluster or metric is ignored."""
        cl, series, _ = entry
        if series is None or cl is None:
            self.ignored += 1
            return False
        cols = self.by_cluster.get(cl)
        if cols is None:
            cols = self.by_cluster[cl] = ([], [], [])
        cols[0].append(series)
        cols[1].append(ts)
        cols[2].append(value)
        return True


class MetricStore:
    """The built-in metric store; see the module docstring for the layout and the checkpoint interface."""

    def __init__(self, registry: ClusterRegistry | Iterable[Cluster], config: MetricStoreConfig | None = None) -> None:
        self._clusters: dict[str, _Cluster] = {c.name: _Cluster(c) for c in registry}
        if config is not None:
            self.retention = max(1, int(config.retention_in_memory.total_seconds()))
            self.memory_cap = int(config.memory_cap) * 1024**3
        else:
            self.retention = DEFAULT_RETENTION
            self.memory_cap = DEFAULT_MEMORY_CAP_GB * 1024**3
        self._listeners: list[Listener] = []
        self._journal: Journal | None = None
        self._caches: dict[str | None, dict[bytes, _Entry]] = {}
        # Per cluster parameter: the cluster its bodies usually write to, and key -> series (or _SKIP for
        # ignored metrics) of the keys of that cluster; what _whole_body needs and nothing more.
        self._fast: dict[str | None, tuple[_Cluster | None, dict[bytes, Series]]] = {}
        self._sample_cache: dict[tuple[Any, ...], _Entry] = {}
        self._counts_lock = threading.Lock()
        #: Distinct series keys ignored because their cluster or metric is unknown ("metric fritz/foo": n);
        #: at most MAX_IGNORED_KEYS names, further ones under IGNORED_OTHERS.
        self.ignored: dict[str, int] = {}
        self.written = 0
        self.ignored_samples = 0
        self._dropped_logged = -60.0

    # -- writing -------------------------------------------------------------------------------------

    def add_write_listener(self, fn: Listener) -> None:
        """Call ``fn(samples)`` after each accepted write with the samples stored (the WAL hook)."""
        self._listeners.append(fn)

    def set_journal(self, journal: Journal | None) -> None:
        """Log accepted writes to ``journal`` (the WAL): ``append_lines(body, cluster, received)`` for each
        line-protocol body with stored samples (cheaper than per-sample records; lines without a timestamp
        replay at ``received``), ``append(samples)`` for :meth:`write`. Called outside the store's locks."""
        self._journal = journal

    def remove_write_listener(self, fn: Listener) -> None:
        if fn in self._listeners:
            self._listeners.remove(fn)

    def _resolve(self, sk: SeriesKey, slot_ts: int, batch: _Batch) -> _Entry:
        """The cluster and series of a key, the series created if new (and if the memory cap leaves room for
        it and its first chunk, counting those ``batch`` already created); _CapReached otherwise."""
        cl = self._clusters.get(sk.cluster)
        if cl is None:
            self._count_ignored(f"cluster {sk.cluster}")
            return (None, None, sk)
        if sk.metric not in cl.metrics:
            self._count_ignored(f"metric {sk.cluster}/{sk.metric}")
            return (cl, None, sk)
        with cl.lock:
            levels = cl.hosts.get(sk.host)
            metrics = levels.get(sk.path) if levels is not None else None
            if metrics is None or sk.metric not in metrics:
                if self._chunk_budget() <= batch.new_series:
                    # no room for a new series and its first chunk: dropped now, resolved again when there is
                    self._count_ignored(MEMORY_CAP_REACHED)
                    raise _CapReached
                batch.new_series += 1
            series = cl.series_of(sk.host, sk.path, sk.metric, slot_ts // cl.metrics[sk.metric][0])
        return (cl, series, sk)

    def _count_ignored(self, what: str, n: int = 1) -> None:
        with self._counts_lock:
            if what not in self.ignored and len(self.ignored) >= MAX_IGNORED_KEYS:
                what = IGNORED_OTHERS
            self.ignored[what] = self.ignored.get(what, 0) + n

    def write(self, samples: Iterable[Sample]) -> int:
        """Store samples; unknown clusters/metrics are ignored (counted); bad names raise InvalidInput."""
        cache = self._sample_cache
        if len(cache) > _CACHE_LIMIT:
            cache = self._sample_cache = {}
        accepted: list[Sample] = []
        batch = _Batch()
        for s in samples:
            key = s[:7]
            entry = cache.get(key)
            if entry is None:
                check_name(s.cluster, "cluster")
                check_name(s.host, "hostname")
                typ = None if s.type == "node" else s.type
                sk = SeriesKey(s.cluster, s.host, s.metric, typ, s.type_id if typ else None,
                               s.stype if typ else None, s.stype_id if typ else None)
                try:
                    entry = cache[key] = self._resolve(sk, to_seconds(int(s.ts)), batch)
                except _CapReached:
                    batch.ignored += 1
                    continue
            if batch.add(entry, to_seconds(int(s.ts)), float(s.value)):
                accepted.append(s)
        stored = self._apply(batch.by_cluster, batch.ignored)
        if accepted and self._journal is not None:
            self._journal.append(accepted)
        if accepted and self._listeners:
            self._notify(accepted)
        return stored

    def write_lines(self, body: bytes, cluster: str | None = None, received: int | None = None) -> int:
        """Parse a line-protocol body and store it; InvalidInput (field "line N") for a malformed line.

        Nothing of a body with a malformed line is stored. Each distinct series key (the bytes before the
        first space) is parsed and validated once and then cached; bodies whose lines all have known keys
        and plain ``value=N ts`` fields are parsed in a few whole-body passes (:meth:`_whole_body`).
        Lines without a timestamp are taken at ``received`` (default now; a WAL replay passes the
        time the body first arrived).
        """
        slot = cluster
        if cluster is not None and cluster not in self._clusters:
            # A cluster parameter the store does not hold: its untagged lines are ignored. Its keys share the
            # caches of no parameter (entries of untagged lines are not kept), so made-up names add no caches.
            if len(cluster) > MAX_NAME:
                raise InvalidInput(f"the cluster parameter is longer than {MAX_NAME} characters", field="cluster")
            check_name(cluster, "cluster")
            slot = None
        cache = self._caches.get(slot)
        if cache is None or len(cache) > _CACHE_LIMIT:
            # _fast first: another thread that sees the new cache must find its fast half too
            self._fast[slot] = (self._clusters.get(slot) if slot else None, {})
            cache = self._caches[slot] = {}
        if received is None:
            received = int(time.time())
        whole = self._one_line(body, slot) if len(body) < 512 else None
        if whole is None:
            whole = self._whole_body(body, slot)
        if whole is not None:
            by_cluster, accepted, ignored = whole
        else:
            by_cluster, accepted, ignored = self._line_by_line(body, cluster, cache, received, slot)
        stored = self._apply(by_cluster, ignored)
        journal = self._journal
        if journal is not None and stored:
            journal.append_lines(body, cluster, received)
        if accepted:
            self._notify(accepted)
        return stored

    def _line_by_line(self, body: bytes, cluster: str | None, cache: dict[bytes, _Entry], now: int,
                      slot: str | None) -> tuple[dict[_Cluster, _Columns], list[Sample] | None, int]:
        batch = _Batch()
        accepted: list[Sample] | None = [] if self._listeners else None
        # keys resolved for this body only: those of an unknown cluster parameter (see write_lines)
        local: dict[bytes, _Entry] | None = {} if slot != cluster else None
        new = tuple.__new__
        for lineno, line, key, value, ts in iter_lines(body, now):
            entry = cache.get(key)
            if entry is None and local is not None:
                entry = local.get(key)
            if entry is None:
                try:
                    entry = self._resolve(parse_key(key, cluster, lineno, line), ts, batch)
                except _CapReached:
                    batch.ignored += 1
                    continue
                if local is not None and entry[0] is None:
                    local[key] = entry
                elif len(key) <= _CACHED_KEY_LIMIT and not key.endswith(b"\\"):
                    cache[key] = entry
                    self._remember_fast(slot, key, entry)
            if batch.add(entry, ts, value) and accepted is not None:
                accepted.append(new(Sample, (*entry[2], value, ts)))
        return batch.by_cluster, accepted, batch.ignored

    def _remember_fast(self, cluster: str | None, key: bytes, entry: _Entry) -> None:
        home, fast = self._fast[cluster]
        cl, series, _ = entry
        if cl is None:
            return
        if home is None:
            home = cl
            self._fast[cluster] = (home, fast)
        if cl is home:
            fast[key] = _SKIP if series is None else series

    def _one_line(self, body: bytes, cluster: str | None) -> tuple[
            dict[_Cluster, _Columns], list[Sample] | None, int] | None:
        """A single ``key value=N ts`` line with a known key (NATS messages often are), else None."""
        parts = body.split()
        if len(parts) != 3 or b"\n" in body.rstrip(b"\r\n"):
            return None
        home, fast = self._fast[cluster]
        series = fast.get(parts[0])
        field, raw_ts = parts[1], parts[2]
        if series is None or home is None or not field.startswith(b"value=") or field.count(b"=") != 1 \
                or not raw_ts.isdigit():
            return None
        try:
            value = float(field[6:])
        except ValueError:
            return None
        if series is _SKIP:
            return {}, None, 1
        ts = to_seconds(int(raw_ts))
        accepted = [tuple.__new__(Sample, (*series.key, value, ts))] if self._listeners else None  # type: ignore[misc]
        return {home: ([series], [ts], [value])}, accepted, 0

    def _whole_body(self, body: bytes, cluster: str | None) -> tuple[
            dict[_Cluster, _Columns], list[Sample] | None, int] | None:
        """The common case in a few C-level passes: every line ``key value=N ts`` with a known key.

        Returns None when any line needs the exact parser (new key, another cluster, escapes, int values,
        comments, a missing timestamp, an error), which then handles the whole body line by line. No
        per-sample tuples are built unless a listener wants Samples (they would wake the cyclic garbage
        collector every few hundred lines).
        """
        home, fast = self._fast[cluster]
        if home is None:
            return None
        n = body.count(b"\n") + (0 if body.endswith(b"\n") else 1)
        # split() also drops the '\r' of CRLF lines; blank lines or escaped spaces break the count
        flat = body.split()
        if len(flat) != 3 * n:
            return None
        joined = b" ".join(flat[1::3])
        # Fields hold no whitespace, so this proves every field is "value=" followed by text without '='.
        if not joined.startswith(b"value=") or joined.count(b"=") != n:
            return None
        numbers = joined[6:].split(b" value=")
        if len(numbers) != n:
            return None
        series_list = list(map(fast.get, flat[0::3]))
        if None in series_list:
            return None
        tss = flat[2::3]
        try:
            values = list(map(float, numbers))
        except ValueError:
            return None
        first = tss[0]
        if tss.count(first) == n:
            if not first.isdigit():
                return None
            times = [to_seconds(int(first))] * n
        else:
            if not all(t.isdigit() for t in set(tss)):
                return None
            seconds = {t: to_seconds(int(t)) for t in set(tss)}
            times = list(map(seconds.__getitem__, tss))
        ignored = 0
        if _SKIP in series_list:
            keep = [s is not _SKIP for s in series_list]
            ignored = n - sum(keep)
            series_list = list(compress(series_list, keep))
            times = list(compress(times, keep))
            values = list(compress(values, keep))
        accepted: list[Sample] | None = None
        if self._listeners:
            new = tuple.__new__
            accepted = [new(Sample, (*s.key, v, t))  # type: ignore[misc,union-attr]
                        for s, v, t in zip(series_list, values, times)]
        return {home: (series_list, times, values)}, accepted, ignored  # type: ignore[dict-item]

    def _apply(self, by_cluster: dict[_Cluster, _Columns], ignored: int) -> int:
        """Copy the samples into their chunks; the number stored.

        A sample that needs a new chunk (or, in :meth:`_resolve`, a new series) while the store holds
        :data:`HARD_CAP_PERCENT` of ``memory-cap`` is dropped (counted under :data:`MEMORY_CAP_REACHED`):
        one large body cannot take more memory than the cap allows between two runs of the retention
        task, which frees the oldest chunks.
        """
        stored = 0
        dropped = 0
        budget: int | None = None  # chunks still allowed, computed at the first new chunk
        nan_chunk = _nan_chunk
        for cl, (all_series, all_ts, all_values) in by_cluster.items():
            total = len(all_series)
            for start in range(0, total, _APPLY_BATCH):
                stop = min(total, start + _APPLY_BATCH)
                if total > _APPLY_BATCH:
                    batch = zip(all_series[start:stop], all_ts[start:stop], all_values[start:stop])
                else:
                    batch = zip(all_series, all_ts, all_values)
                new_chunks = 0
                shift, mask = _SHIFT, _MASK
                with cl.lock:
                    for series, ts, value in batch:
                        slot = ts // series.step
                        i = slot - series.origin
                        chunk = series.chunks.get(i >> shift)
                        if chunk is None:
                            if budget is None:
                                budget = self._chunk_budget()
                            if new_chunks >= budget:
                                dropped += 1
                                continue
                            chunk = series.chunks[i >> shift] = nan_chunk.copy()
                            new_chunks += 1
                        chunk[i & mask] = value
                        if slot > series.last:
                            series.last = slot
                    cl.chunks += new_chunks
                if budget is not None:
                    budget -= new_chunks
                stored += stop - start
        stored -= dropped
        if dropped:
            self._count_ignored(MEMORY_CAP_REACHED, dropped)
            now = time.monotonic()
            if now - self._dropped_logged >= 60:
                self._dropped_logged = now
                log.warning("metric store at %d%% of memory-cap: %d samples that needed new buffers were dropped "
                            "(the retention task frees the oldest buffers every 60 s)", HARD_CAP_PERCENT, dropped)
        with self._counts_lock:
            self.written += stored
            self.ignored_samples += ignored + dropped
        return stored

    def _chunk_budget(self) -> int:
        """New chunks the writes may still allocate before the store holds HARD_CAP_PERCENT of memory-cap."""
        return max(0, (self.memory_cap * HARD_CAP_PERCENT // 100 - self.memory_bytes()) // CHUNK_BYTES)

    def _notify(self, samples: list[Sample]) -> None:
        for fn in list(self._listeners):
            fn(samples)

    def load_buffer(self, cluster: str, host: str, path: Path, metric: str, start: int, timestep: int,
                    data: np.ndarray) -> int:
        """Merge ``data`` (float32, ``data[i]`` at ``start + i * timestep``) into a series; NaN values skipped.

        Unknown clusters or metrics are ignored (returns 0); otherwise the number of values merged.
        """
        check_name(cluster, "cluster")
        check_name(host, "hostname")
        cl = self._clusters.get(cluster)
        if cl is None or metric not in cl.metrics or timestep <= 0:
            return 0
        values = np.asarray(data, dtype=np.float32).ravel()
        keep = ~np.isnan(values)
        count = int(np.count_nonzero(keep))
        if not count:
            return 0
        first_i = int(np.argmax(keep))
        last_i = len(values) - 1 - int(np.argmax(keep[::-1]))
        start = int(start)
        step = cl.metrics[metric][0]
        with cl.lock:
            series = cl.series_of(host, tuple(path), metric, (start + first_i * timestep) // step)
            if timestep == series.step and start % step == 0:
                self._merge_aligned(cl, series, start // step + first_i, values[first_i : last_i + 1])
            else:
                self._merge_scattered(cl, series, start, timestep, values, keep)
            newest = (start + last_i * timestep) // series.step
            if newest > series.last:
                series.last = newest
        return count

    @staticmethod
    def _merge_aligned(cl: _Cluster, series: Series, first_slot: int, values: np.ndarray) -> None:
        """Copy a run of values at the series' own timestep into its chunks, one slice per chunk."""
        rel = first_slot - series.origin
        end = rel + len(values)
        pos = rel
        while pos < end:
            k = pos >> _SHIFT
            offset = pos & _MASK
            take = min(CHUNK - offset, end - pos)
            part = values[pos - rel : pos - rel + take]
            chunk = series.chunks.get(k)
            if chunk is None:
                chunk = series.chunks[k] = _nan_chunk.copy()
                cl.chunks += 1
                chunk[offset : offset + take] = part
            else:
                target = chunk[offset : offset + take]
                np.copyto(target, part, where=~np.isnan(part))
            pos += take

    @staticmethod
    def _merge_scattered(cl: _Cluster, series: Series, start: int, timestep: int, values: np.ndarray,
                         keep: np.ndarray) -> None:
        """Values at another timestep: each lands in the slot its time falls into (later ones win)."""
        idx = np.nonzero(keep)[0]
        rel = (start + idx.astype(np.int64) * timestep) // series.step - series.origin
        ks = rel >> _SHIFT
        vals = values[idx]
        for k in np.unique(ks).tolist():
            sel = ks == k
            chunk = series.chunks.get(k)
            if chunk is None:
                chunk = series.chunks[k] = _nan_chunk.copy()
                cl.chunks += 1
            chunk[rel[sel] & _MASK] = vals[sel]

    # -- reading -------------------------------------------------------------------------------------

    def cluster_state(self, cluster: str) -> _Cluster | None:
        return self._clusters.get(cluster)

    def hosts(self, cluster: str) -> list[str]:
        """Hosts of ``cluster`` that have (or had) data, sorted."""
        cl = self._clusters.get(cluster)
        if cl is None:
            return []
        with cl.lock:
            return sorted(cl.hosts)

    def query(self, request: dict[str, Any], *, arrays: bool = False) -> dict[str, Any]:
        """Answer a cc-metric-store ``/api/query`` request (see :mod:`cc_backend.metricstore.query`).

        ``arrays=True`` returns each ``data`` as a float32 numpy array for orjson's OPT_SERIALIZE_NUMPY.
        """
        from cc_backend.metricstore.query import run_query

        return run_query(self, request, arrays=arrays)

    def health(self, cluster: str, hosts: Iterable[str], metrics: Iterable[str],
               now: int | None = None) -> dict[str, dict[str, Any]]:
        """``{host: NodeHealth}`` (see :mod:`cc_backend.metricstore.health`)."""
        from cc_backend.metricstore.health import node_health

        return node_health(self, cluster, hosts, metrics, now)

    def iter_buffers(self, since: int | None = None) -> Iterator[tuple[str, str, Path, str, int, int, np.ndarray]]:
        """Every stored run of data as ``(cluster, host, path, metric, start, timestep, data)``.

        With ``since`` only chunks holding samples at or after that time are yielded (whole chunks, so
        some older values come along). Each host is copied under its cluster's lock, then yielded.
        """
        for cl in list(self._clusters.values()):
            with cl.lock:
                hosts = list(cl.hosts)
            for host in hosts:
                out: list[tuple[str, str, Path, str, int, int, np.ndarray]] = []
                with cl.lock:
                    for path, metrics in cl.hosts.get(host, {}).items():
                        for metric, series in metrics.items():
                            out.extend(_runs(cl.name, host, path, metric, series, since))
                yield from out

    # -- freeing ---------------------------------------------------------------------------------------

    def free(self, before: int, selectors: Any = EVERYTHING) -> int:
        """Drop chunks whose samples are all older than ``before``; the number of chunks freed.

        ``selectors`` (as ``/api/free``'s body came, checked here by :func:`parse_selectors`; ``[]``
        selects nothing) limit it to ``[cluster]``, ``[cluster, host]`` or ``[cluster, host, level...]``
        where the level is the type and id run together as upstream writes it (``socket0``, ``hwthread3``).
        """
        freed = 0
        for sel in [[]] if selectors is EVERYTHING else parse_selectors(selectors):
            clusters = [self._clusters.get(sel[0])] if sel else list(self._clusters.values())
            for cl in clusters:
                if cl is None:
                    continue
                level = "".join(sel[2:]) if len(sel) > 2 else None
                with cl.lock:
                    hosts = [cl.hosts.get(sel[1]) or {}] if len(sel) > 1 else list(cl.hosts.values())
                    for levels in hosts:
                        for path, metrics in levels.items():
                            if level is not None and _level_name(path) != level:
                                continue
                            for series in metrics.values():
                                n = series.free_before(before // series.step)
                                cl.chunks -= n
                                freed += n
        return freed

    def memory_bytes(self) -> int:
        """Estimated bytes held by the store's buffers (chunks plus per-series bookkeeping)."""
        return sum(cl.chunks * CHUNK_BYTES + cl.series * SERIES_BYTES for cl in self._clusters.values())

    def enforce_limits(self, now: int | None = None) -> int:
        """Apply ``retention-in-memory``, then free the oldest chunks while above ``memory-cap``; chunks freed."""
        now = int(time.time()) if now is None else now
        freed = self.free(now - self.retention)
        while (excess := self.memory_bytes() - self.memory_cap) > 0:
            cutoff = self._cutoff_freeing(excess)
            if cutoff is None:
                break
            n = self.free(cutoff)
            if not n:
                break
            freed += n
        return freed

    def _cutoff_freeing(self, excess: int) -> int | None:
        """The earliest time such that freeing every chunk ending by then frees at least ``excess`` bytes."""
        ends: list[int] = []
        for cl in self._clusters.values():
            with cl.lock:
                for levels in cl.hosts.values():
                    for metrics in levels.values():
                        for s in metrics.values():
                            if s.chunks:
                                base = s.origin + CHUNK
                                ends.extend((base + k * CHUNK) * s.step for k in s.chunks)
        if not ends:
            return None
        ordered = np.sort(np.asarray(ends, dtype=np.int64))
        need = min(len(ordered), -(-excess // CHUNK_BYTES))
        return int(ordered[need - 1])

    # -- introspection ---------------------------------------------------------------------------------

    def debug(self, selector: list[str] | None = None) -> dict[str, Any]:
        """The tree as JSON-able dicts, limited by ``[cluster, host, level...]``; counters under ``_stats``."""
        sel = selector or []
        if len(sel) > MAX_SELECTOR_PARTS or any(len(x) > MAX_NAME for x in sel):
            raise InvalidInput(f"selector has more than {MAX_SELECTOR_PARTS} parts or a part longer than {MAX_NAME} "
                               "characters", field="selector")
        out: dict[str, Any] = {}
        for cl in self._clusters.values():
            if sel and sel[0] != cl.name:
                continue
            hosts_out: dict[str, Any] = {}
            with cl.lock:
                for host, levels in sorted(cl.hosts.items()):
                    if len(sel) > 1 and sel[1] != host:
                        continue
                    levels_out: dict[str, Any] = {}
                    for path, metrics in levels.items():
                        name = _level_name(path) or "node"
                        if len(sel) > 2 and name != "".join(sel[2:]):
                            continue
                        levels_out[name] = {
                            metric: {
                                "timestep": s.step,
                                "start": s.first_slot() * s.step if s.chunks else None,
                                "last": s.last * s.step if s.last >= 0 else None,
                                "chunks": len(s.chunks),
                            }
                            for metric, s in sorted(metrics.items())
                        }
                    hosts_out[host] = levels_out
            out[cl.name] = hosts_out
        out["_stats"] = {"written": self.written, "ignoredSamples": self.ignored_samples, "ignored": dict(self.ignored), "memoryBytes": self.memory_bytes()}
        return out

    def close(self) -> None:
        """Drop every buffer, listener and the journal (at shutdown, after the last checkpoint)."""
        self._listeners.clear()
        self._journal = None
        for cl in self._clusters.values():
            with cl.lock:
                cl.hosts.clear()
                cl.chunks = cl.series = 0
        self._caches.clear()
        self._fast.clear()
        self._sample_cache.clear()


_nan_chunk = np.full(CHUNK, np.nan, dtype=np.float32)
#: Stands for "this key's metric is ignored" in the fast key cache.
_SKIP = Series(1, 0)


#: Most selectors of one ``/api/free`` request, and most parts of one selector (cluster, host, level parts).
MAX_SELECTORS = 10_000
MAX_SELECTOR_PARTS = 6


def parse_selectors(value: Any, field: str = "body") -> list[list[str]]:
    """``/api/free``'s selectors ``[["cluster", "host", ...], ...]``, checked and bounded."""
    if not isinstance(value, list):
        raise InvalidInput(f"{field} must be a list of selectors such as [[\"cluster\", \"host\"]]", field=field)
    if len(value) > MAX_SELECTORS:
        raise InvalidInput(f"{field} has {len(value)} selectors; at most {MAX_SELECTORS}", field=field)
    for i, sel in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(sel, list) or not all(isinstance(x, str) for x in sel):
            raise InvalidInput(f"{where} must be a list of strings", field=where)
        if len(sel) > MAX_SELECTOR_PARTS or any(len(x) > MAX_NAME for x in sel):
            raise InvalidInput(f"{where} has more than {MAX_SELECTOR_PARTS} parts or a part longer than "
                               f"{MAX_NAME} characters", field=where)
    return value


def _level_name(path: Path) -> str:
    return "".join(path)


def _runs(cluster: str, host: str, path: Path, metric: str, series: Series,
          since: int | None) -> list[tuple[str, str, Path, str, int, int, np.ndarray]]:
    if not series.chunks:
        return []
    step = series.step
    keys = sorted(series.chunks)
    if since is not None:
        min_k = (since // step - series.origin) >> _SHIFT
        keys = [k for k in keys if k >= min_k]
    last_rel = series.last - series.origin
    out = []
    run: list[int] = []
    for k in [*keys, None]:
        if run and (k is None or k != run[-1] + 1):
            data = np.concatenate([series.chunks[j] for j in run]) if len(run) > 1 else series.chunks[run[0]].copy()
            first_rel = run[0] * CHUNK
            end = min(len(data), last_rel - first_rel + 1)
            if end > 0:
                out.append((cluster, host, path, metric, (series.origin + first_rel) * step, step, data[:end]))
            run = []
        if k is not None:
            run.append(k)
    return out

