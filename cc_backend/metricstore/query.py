"""cc-metric-store ``/api/query`` on the built-in store: level resolution, topology aggregation, LTTB, stats.

Request ``{"cluster", "from", "to", "with-stats", "with-data", "for-all-nodes"?, "queries": [{"metric",
"host", "type"?, "type-ids"?, "subtype"?, "subtype-ids"?, "resolution"?, "aggreg"?}]}``; response
``{"results": [[{"data", "from", "to", "resolution", "avg", "min", "max", "error"?}]]}`` with one inner
list per query (one entry per type-id, or one for all with ``aggreg``), plus ``"queries"`` echoing the
expanded queries when ``for-all-nodes`` was used. ``data[i]`` is the sample at ``from + i * resolution``;
missing samples are null. The data ends at the newest sample held (``to`` clipped); with ``with-padding``
(default true, as in cc-metric-store) it starts at ``from`` (null-padded), else at the oldest sample held. Data of a coarser level than recorded is the sum or average (per the metric's
``aggregation``) over the children the host's subcluster topology puts under it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from cc_backend.errors import InvalidInput, shown_value
from cc_backend.metrics.resampling import lttb
from cc_backend.metrics.samples import sample_list
from cc_backend.metricstore.lineproto import MAX_NAME

if TYPE_CHECKING:
    from cc_backend.archive.cluster import SubCluster, Topology
    from cc_backend.metricstore.store import MetricStore, Series, _Cluster

__all__ = ["MAX_QUERIES", "run_query"]

#: Queries of one request (``for-all-nodes`` counts hosts x metrics), and ids of one query's type-ids.
MAX_QUERIES = 10_000
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: Front padding (samples) beyond which an entry starts at its first sample instead (a `from` of 0 ...).
MAX_PADDING = 1_000_000
_TYPES = ("node", "socket", "memoryDomain", "core", "hwthread", "accelerator")
#: Recorded levels tried, finest first, when a coarser level is asked for.
_SOURCES = ("hwthread", "core", "memoryDomain", "socket", "accelerator")


class _NoData(Exception):
    """A per-entry error (reported in the entry, not as a failed request)."""


def _int(value: Any, field: str, default: int | None = None) -> int:
    """A whole number within 64 bits (what cc-metric-store's Go decoder takes; orjson cannot write more)."""
    if value is None and default is not None:
        return default
    if type(value) is not int:
        raise InvalidInput(f"{field} must be an integer, got {shown_value(value)}", field=field)
    if not INT64_MIN <= value <= INT64_MAX:
        raise InvalidInput(f"{field} {value} is out of range (64-bit)", field=field)
    return value


def _name(value: Any, field: str) -> str:
    """A non-empty cluster, host or metric name of at most :data:`MAX_NAME` characters."""
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{field} is required (a non-empty string)", field=field)
    if len(value) > MAX_NAME:
        raise InvalidInput(f"{field} is longer than {MAX_NAME} characters", field=field)
    return value


def _ids(value: Any, field: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise InvalidInput(f"{field} must be a list of ids", field=field)
    if len(value) > MAX_QUERIES:
        raise InvalidInput(f"{field} has {len(value)} ids; at most {MAX_QUERIES}", field=field)
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (str, int)):
            raise InvalidInput(f"{field} must hold strings or integers, got {shown_value(v)}", field=field)
        text = str(v)
        if len(text) > MAX_NAME:
            raise InvalidInput(f"{field} holds an id longer than {MAX_NAME} characters", field=field)
        out.append(text)
    return out


def run_query(store: MetricStore, request: Any, *, arrays: bool = False) -> dict[str, Any]:
    """The response of one ``/api/query`` request; InvalidInput naming the field when the request is malformed.

    The request is checked here, once, for every caller (the REST route hands its body over as it came):
    a JSON object, ``cluster`` a name, ``from``/``to`` 64-bit integers, at most :data:`MAX_QUERIES`
    queries (``for-all-nodes`` counted as hosts x metrics before they are built). ``with-stats``,
    ``with-data`` and ``with-padding`` default to true, as in cc-metric-store.

    With ``arrays`` each ``data`` is a float32 numpy array (NaN = missing) instead of a list: several times
    cheaper, and ``orjson.dumps(..., option=orjson.OPT_SERIALIZE_NUMPY)`` writes it as the same JSON
    (NaN as null, float32 values in their shortest form).
    """
    if not isinstance(request, dict):
        raise InvalidInput("the request body must be a JSON object (a query request)", field="body")
    cluster = _name(request.get("cluster"), "cluster")
    start = _int(request.get("from"), "from")
    end = _int(request.get("to"), "to")
    if start > end:
        raise InvalidInput(f"from ({start}) is after to ({end})", field="from")
    with_stats = request.get("with-stats", True) is not False
    with_data = request.get("with-data", True) is not False
    with_padding = request.get("with-padding", True) is not False
    queries = request.get("queries")
    if queries is None:
        queries = []
    if not isinstance(queries, list):
        raise InvalidInput("queries must be a list of objects", field="queries")
    echo = False
    for_all = request.get("for-all-nodes")
    if for_all is not None:
        if not isinstance(for_all, list) or not all(isinstance(m, str) for m in for_all):
            raise InvalidInput("for-all-nodes must be a list of metric names", field="for-all-nodes")
        if for_all:
            hosts = store.hosts(cluster)
            if len(hosts) * len(for_all) + len(queries) > MAX_QUERIES:
                raise InvalidInput(f"for-all-nodes asks for {len(for_all)} metrics of {len(hosts)} hosts: more than "
                                   f"{MAX_QUERIES} queries", field="for-all-nodes")
            queries = [{"metric": m, "host": h} for h in hosts for m in for_all] + queries
            echo = True
    if len(queries) > MAX_QUERIES:
        raise InvalidInput(f"too many queries ({len(queries)}; at most {MAX_QUERIES})", field="queries")
    parsed = [_parse_query(q, i) for i, q in enumerate(queries)]
    cl = store.cluster_state(cluster)
    results = []
    for q in parsed:
        if cl is None:
            results.append([_error(start, end, f"unknown cluster {cluster!r}")])
            continue
        results.append(_answer(cl, q, start, end, with_stats, with_data, arrays, with_padding))
    out: dict[str, Any] = {"results": results}
    if echo:
        out["queries"] = [_echo(q) for q in parsed]
    return out


def _parse_query(q: Any, i: int) -> dict[str, Any]:
    where = f"queries[{i}]"
    if not isinstance(q, dict):
        raise InvalidInput(f"{where} must be an object", field=where)
    metric = _name(q.get("metric"), f"{where}.metric")
    host = _name(q.get("host"), f"{where}.host")
    typ = q.get("type") or None
    if typ is not None and typ not in _TYPES:
        raise InvalidInput(f"{where}.type {shown_value(typ)} is not one of {', '.join(_TYPES)}", field=f"{where}.type")
    stype = q.get("subtype") or None
    if stype is not None and stype not in _TYPES:
        raise InvalidInput(f"{where}.subtype {shown_value(stype)} is not one of {', '.join(_TYPES)}", field=f"{where}.subtype")
    if typ == "node":
        typ = None
    if stype is not None and typ is None:
        raise InvalidInput(f"{where}.subtype needs a type", field=f"{where}.subtype")
    resolution = _int(q.get("resolution"), f"{where}.resolution", 0)
    if resolution < 0:
        raise InvalidInput(f"{where}.resolution must not be negative", field=f"{where}.resolution")
    ids = _ids(q.get("type-ids"), f"{where}.type-ids")
    sids = _ids(q.get("subtype-ids"), f"{where}.subtype-ids")
    if ids and sids and len(ids) * len(sids) > MAX_QUERIES:
        raise InvalidInput(f"{where} asks for more than {MAX_QUERIES} type-id/subtype-id pairs", field=f"{where}.subtype-ids")
    return {
        "metric": metric, "host": host, "type": typ, "type-ids": ids, "subtype": stype, "subtype-ids": sids,
        "resolution": resolution, "aggreg": bool(q.get("aggreg")),
    }


def _echo(q: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in q.items() if v is not None}
    out.setdefault("type", "node")
    return out


def _error(start: int, end: int, message: str) -> dict[str, Any]:
    return {"data": None, "from": start, "to": end, "resolution": 0, "error": message}


def _answer(cl: _Cluster, q: dict[str, Any], start: int, end: int, with_stats: bool,
            with_data: bool, arrays: bool, with_padding: bool = True) -> list[dict[str, Any]]:
    metric, host = q["metric"], q["host"]
    if metric not in cl.metrics:
        return [_error(start, end, f"metric {metric!r} is not configured for cluster {cl.name!r}")]
    step, aggregation = cl.metrics[metric]
    first = start // step  # the slot holding `from` (samples are aligned down to the timestep)
    last = end // step
    try:
        groups = _targets(cl, q)
    except _NoData as exc:
        return [_error(start, end, str(exc))]
    entries = []
    with cl.lock:
        levels = cl.hosts.get(host)
        found: list[tuple[np.ndarray, int] | str] = []
        for paths in groups:
            try:
                found.append(_combine(cl, levels, host, metric, paths, aggregation, first, last))
            except _NoData as exc:
                found.append(str(exc))
    for got in found:
        if isinstance(got, str):
            entries.append(_error(start, end, got))
            continue
        data, data_first = got
        if with_padding and first < data_first <= first + MAX_PADDING:
            # cc-metric-store's with-padding (on by default): data starts at `from`, null until the first sample
            data = np.concatenate([np.full(data_first - first, np.nan, dtype=np.float32), data])
            data_first = first
        entries.append(_entry(data, data_first * step, step, q["resolution"], with_stats, with_data, arrays))
    return entries


def _targets(cl: _Cluster, q: dict[str, Any]) -> list[list[tuple[str, ...]]]:
    """The levels to answer, one group per entry; each group lists the target paths it combines."""
    typ, ids = q["type"], q["type-ids"]
    if typ is None:
        return [[()]]
    if ids is None:
        ids = _all_ids(cl, q["host"], typ)
    stype, sids = q["subtype"], q["subtype-ids"]
    paths: list[tuple[str, ...]]
    if stype is not None:
        paths = [(typ, i, stype, s) for i in ids for s in (sids or [])]
    else:
        paths = [(typ, i) for i in ids]
    if not paths:
        raise _NoData(f"no {typ} ids given or known for host {q['host']!r}")
    return [paths] if q["aggreg"] else [[p] for p in paths]


def _all_ids(cl: _Cluster, host: str, typ: str) -> list[str]:
    sc = cl.subcluster(host)
    if sc is not None:
        ids = _topology_ids(sc.topology, typ)
        if ids:
            return ids
    with cl.lock:
        levels = cl.hosts.get(host) or {}
        return sorted({p[1] for p in levels if p and p[0] == typ}, key=_id_order)


def _id_order(text: str) -> tuple[int, Any]:
    return (0, int(text)) if text.isdigit() else (1, text)


def _topology_ids(topo: Topology, typ: str) -> list[str]:
    if typ == "hwthread":
        return [str(i) for i in topo.node]
    if typ == "accelerator":
        return [a.id for a in topo.accelerators]
    groups = {"socket": topo.socket, "memoryDomain": topo.memory_domain, "core": topo.core}.get(typ, ())
    return [str(i) for i in range(len(groups))]


def _hwthreads(topo: Topology, typ: str | None, tid: str) -> frozenset[int] | None:
    """The hwthreads under one level of the topology; None if the topology does not know it."""
    if typ is None:
        return frozenset(topo.node)
    if typ == "hwthread":
        return frozenset([int(tid)]) if tid.isdigit() else None
    groups = {"socket": topo.socket, "memoryDomain": topo.memory_domain, "core": topo.core}.get(typ)
    if groups is None or not tid.isdigit() or int(tid) >= len(groups):
        return None
    return frozenset(groups[int(tid)])


def _children(sc: SubCluster | None, levels: dict[tuple[str, ...], dict[str, Series]], metric: str,
              target: tuple[str, ...]) -> list[Series]:
    """Recorded series of ``metric`` that make up ``target`` (a coarser level), finest recording tried last."""
    typ = target[0] if target else None
    tid = target[1] if target else ""
    if typ == "accelerator":
        return []
    if typ is None:
        # accelerators make up the node as well (upstream's accelerator -> node)
        accs = [s for p, m in levels.items() if len(p) == 2 and p[0] == "accelerator" and (s := m.get(metric)) is not None]
    else:
        accs = []
    if sc is None:
        return accs
    topo = sc.topology
    want = _hwthreads(topo, typ, tid)
    if want is None:
        return accs
    for source in ("socket", "memoryDomain", "core", "hwthread"):
        if source == typ:
            continue
        found: list[Series] = []
        for sid in _topology_ids(topo, source):
            under = _hwthreads(topo, source, sid)
            if not under or not under <= want:
                continue
            series = levels.get((source, sid), {}).get(metric)
            if series is not None:
                found.append(series)
        if found:
            return found
    return accs


def _combine(cl: _Cluster, levels: dict[tuple[str, ...], dict[str, Series]] | None, host: str, metric: str,
             paths: Sequence[tuple[str, ...]], aggregation: str, first: int, last: int) -> tuple[np.ndarray, int]:
    """The combined series and the slot of its first value.

    The window is clipped to the data held (as cc-metric-store does), so a far-reaching ``from``/``to``
    costs nothing; the entry's ``from``/``to`` say where the data really starts and ends.
    """
    if levels is None:
        raise _NoData(f"host {host!r} has no data")
    sources: list[Series] = []
    for path in paths:
        series = levels.get(path, {}).get(metric)
        if series is not None:
            sources.append(series)
            continue
        children = _children(cl.subcluster(host), levels, metric, path)
        if not children:
            where = "/".join(path) if path else "node"
            raise _NoData(f"no data for metric {metric!r} at {where} of host {host!r}")
        sources.extend(children)
    held = [s for s in sources if s.chunks]
    if held:
        first = max(first, min(s.first_slot() for s in held))
        last = min(last, max(s.last for s in held))
    if not held or first > last:
        return np.empty(0, dtype=np.float32), first
    if len(sources) == 1:
        return sources[0].read(first, last), first
    stack = np.vstack([s.read(first, last) for s in sources])
    present = ~np.isnan(stack)
    count = present.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        total = np.where(present, stack, 0).sum(axis=0, dtype=np.float64)
        out = total / count if aggregation == "avg" else total
    out[count == 0] = np.nan
    return out.astype(np.float32), first


def _entry(data: np.ndarray, start: int, step: int, resolution: int, with_stats: bool,
           with_data: bool, arrays: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"from": start, "to": start + len(data) * step, "resolution": step}
    missing = np.isnan(data)
    any_missing = bool(missing.any())
    if with_stats:
        present = data[~missing] if any_missing else data
        if present.size:
            entry.update(avg=float(present.mean(dtype=np.float64)), min=float(present.min()), max=float(present.max()))
        else:
            entry.update(avg=None, min=None, max=None)
    downsample = resolution > step and len(data) > 2
    if downsample or (resolution > step and not with_data):
        entry["resolution"] = resolution
    if not with_data:
        return entry
    if downsample:
        picked = lttb_array(data.astype(np.float64), max(3, len(data) * step // resolution))
        entry["data"] = picked.astype(np.float32) if arrays else sample_list(picked)
    elif arrays:
        entry["data"] = data
    else:
        entry["data"] = sample_list(data)
    return entry



#: Wider buckets make the vectorised LTTB (work ~ samples x bucket width) slower than the plain one (measured).
_LTTB_MAX_WIDTH = 12


class _LttbLayout(NamedTuple):
    """What LTTB's buckets look like for ``n`` samples and ``target`` points (data-independent, cached)."""

    buckets: int
    starts: list[int]
    ends: np.ndarray
    next_ends: np.ndarray
    bounds: np.ndarray
    cand: np.ndarray
    cand_bad: np.ndarray
    prev: np.ndarray
    cand_f: np.ndarray
    prev_f: np.ndarray


@lru_cache(maxsize=64)
def _lttb_layout(n: int, target: int) -> _LttbLayout | None:
    every = (n - 2) / (target - 2)
    buckets = target - 2
    i = np.arange(buckets, dtype=np.int64)
    starts = (i * every).astype(np.int64) + 1
    ends = np.minimum(((i + 1) * every).astype(np.int64) + 1, n - 1)
    next_ends = np.minimum(((i + 2) * every).astype(np.int64) + 1, n)
    width = int((ends - starts).max())
    if width > _LTTB_MAX_WIDTH:
        return None
    bounds = np.empty(2 * buckets, dtype=np.int64)
    bounds[0::2] = ends
    bounds[1::2] = next_ends
    offsets = np.arange(width, dtype=np.int64)
    cand = starts[:, None] + offsets[None, :]
    cand_ok = cand < ends[:, None]
    cand = np.minimum(cand, n - 1)
    prev = np.zeros((buckets, width), dtype=np.int64)
    if buckets > 1:
        prev[1:] = np.minimum(starts[:-1, None] + offsets[None, :], n - 1)
    return _LttbLayout(buckets, starts.tolist(), ends, next_ends, bounds, cand, ~cand_ok[:, None, :], prev,
                       cand[:, None, :].astype(np.float64), prev[:, :, None].astype(np.float64))


def lttb_array(data: np.ndarray, target: int) -> np.ndarray:
    """:func:`cc_backend.metrics.resampling.lttb` on a float64 array (NaN = missing), picking the same samples.

    LTTB is sequential (each bucket's pick depends on the previous one), but the previous pick can only
    be one of the previous bucket's samples: so the areas of every (previous pick, candidate) pair of
    every bucket are computed in one numpy pass, and the chain of picks is a walk through that table.
    """
    n = len(data)
    if target >= n or target < 3:
        return data.copy()
    layout = _lttb_layout(n, target)
    if layout is None:  # wide buckets: the plain loop is faster
        picked = lttb([None if math.isnan(v) else v for v in data.tolist()], target)
        return np.array([math.nan if v is None else v for v in picked], dtype=np.float64)
    missing = np.isnan(data)
    # averages of the next bucket's real samples
    count = np.add.reduceat(np.append(~missing, False).astype(np.int64), layout.bounds)[0::2]
    sum_x = np.add.reduceat(np.append(np.where(missing, 0, np.arange(n, dtype=np.int64)), 0), layout.bounds)[0::2]
    sum_y = np.add.reduceat(np.append(np.where(missing, 0.0, data), 0.0), layout.bounds)[0::2]
    empty = (count == 0) | (layout.ends >= layout.next_ends)
    safe = np.where(empty, 1, count)
    avg_x = np.where(empty, (layout.ends + layout.next_ends - 1) / 2, sum_x / safe)[:, None, None]
    avg_y = np.where(empty, np.nan, sum_y / safe)[:, None, None]
    a = layout.prev_f
    ay = data[layout.prev][:, :, None]
    y = data[layout.cand][:, None, :]
    with np.errstate(invalid="ignore"):
        area = np.abs((a - avg_x) * (y - ay) - (a - layout.cand_f) * (avg_y - ay))
        area = np.where(np.isnan(ay) | np.isnan(avg_y), np.abs(y), area)
        area = np.where(np.isnan(y) | layout.cand_bad, -np.inf, area)
    best = np.argmax(area, axis=2).tolist()  # first maximum, like the reference's strict '>'
    starts = layout.starts
    picks = [0]
    pick = 0
    for b in range(layout.buckets):
        pick = starts[b] + best[b][pick - starts[b - 1] if b else 0]
        picks.append(pick)
    picks.append(n - 1)
    return data[np.asarray(picks, dtype=np.int64)]
