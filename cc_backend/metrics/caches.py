"""Caches of metric data: parsed data.json files and finished results, each bounded by weight (bytes, samples)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from cc_backend.errors import NotFound

if TYPE_CHECKING:
    from cc_backend.archive.fs import FileArchive


class WeightedCache:
    """An LRU map bounded by the summed weight of its values (bytes of a file, samples of a result).

    A value heavier than the whole bound is not kept. Values are shared: callers must not modify them.
    """

    def __init__(self, max_weight: int) -> None:
        self.max_weight = max_weight
        self._entries: OrderedDict[tuple, tuple[int, dict[str, Any]]] = OrderedDict()
        self._weight = 0
        self._lock = threading.Lock()

    def get(self, key: tuple) -> dict[str, Any] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: tuple, weight: int, value: dict[str, Any]) -> None:
        if weight > self.max_weight:
            return
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = (weight, value)
            self._weight += weight
            while self._weight > self.max_weight and len(self._entries) > 1:
                _, (old, _) = self._entries.popitem(last=False)
                self._weight -= old


#: Parsed data.json files by path and modification time, bounded by their size on disk. Parsing a
#: 64-node job's data.json.gz costs tens of milliseconds; job pages ask for the same job's metrics
#: several times (plots, statistics, roofline).
_files = WeightedCache(128 << 20)


def data_file(archive: FileArchive, job: Mapping[str, Any]) -> tuple[str, Any]:
    """(path, stat) of the job's data file; NotFound when the archive has none."""
    path = archive.data_path(job["cluster"], job["jobId"], job["startTime"])
    if path is None:
        raise NotFound(f"job {job['jobId']} on {job['cluster']} started at {job['startTime']} has no archived metric data")
    return str(path), path.stat()


def archived_data(archive: FileArchive, job: Mapping[str, Any]) -> dict[str, Any]:
    """The job's parsed data file, shared: callers must not modify it."""
    path, stat = data_file(archive, job)
    key = (path, stat.st_mtime)
    doc = _files.get(key)
    if doc is None:
        doc = archive.load_data(job["cluster"], job["jobId"], job["startTime"])
        _files.put(key, stat.st_size, doc)
    return doc


def _sample_count(data: Mapping[str, Mapping[str, Any]]) -> int:
    total = 0
    for by_scope in data.values():
        for metric in by_scope.values():
            total += sum(len(s.get("data") or ()) for s in metric.get("series") or ())
            stats = metric.get("statisticsSeries")
            if isinstance(stats, Mapping):
                total += sum(len(v) for v in stats.values() if isinstance(v, list))
    return total


#: Finished ``JobData`` results by request, bounded by their number of samples (upstream caches LoadData
#: too). A plot page asks for the same job's metrics again on every reload; resampling and
#: statisticsSeries of a 64-node job cost far more than the lookup.
_results = WeightedCache(4_000_000)


def shared_result(key: tuple, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The result remembered under ``key``, computed and kept when missing: treat it as read-only."""
    data = _results.get(key)
    if data is None:
        data = compute()
        _results.put(key, _sample_count(data), data)
    return data
