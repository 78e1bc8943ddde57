"""InfluxDB line protocol as the metric store accepts it: one ``value`` field, ClusterCockpit tags, s/ms/us/ns times.

A line looks like ``mem_bw,cluster=fritz,hostname=f0101,type=socket,type-id=0 value=12.5 1700000000``:
the measurement is the metric name; the tags ``cluster``, ``hostname`` (or ``host``), ``type`` (``node``
means the node itself), ``type-id``, ``stype`` and ``stype-id`` say where the sample belongs; other tags are
ignored. The only field is ``value`` (float, ``12i`` or ``12u``). The timestamp may be in seconds,
milliseconds, microseconds or nanoseconds (told apart by magnitude); without one the sample is "now".

The hot path lives in :mod:`cc_backend.metricstore.store`; this module holds the exact (slow) parser of one
series key, which the store calls once per distinct key and caches.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import NamedTuple

from cc_backend.errors import InvalidInput

__all__ = ["MAX_NAME", "Sample", "SeriesKey", "check_name", "iter_lines", "parse_key", "parse_lines", "to_seconds"]

#: Longest tag key, tag value or measurement accepted.
MAX_NAME = 256
#: Timestamps at or above this many units are not seconds (10**11 s would be the year 5138).
_SECONDS_LIMIT = 10**11
_SHOWN = 80


class Sample(NamedTuple):
    """One measured value; ``type`` None means the node itself (``type`` and ids are strings as sent)."""

    cluster: str
    host: str
    metric: str
    type: str | None
    type_id: str | None
    stype: str | None
    stype_id: str | None
    value: float
    ts: int


class SeriesKey(NamedTuple):
    """Where the samples of one line-protocol series key go (everything of a Sample but value and time)."""

    cluster: str
    host: str
    metric: str
    type: str | None
    type_id: str | None
    stype: str | None
    stype_id: str | None

    @property
    def path(self) -> tuple[str, ...]:
        """The level below the host: ``()`` for the node, ``("socket", "0")``, ``("socket", "0", "core", "3")``."""
        if self.type is None:
            return ()
        if self.stype is None:
            return (self.type, self.type_id or "")
        return (self.type, self.type_id or "", self.stype, self.stype_id or "")


def to_seconds(ts: int) -> int:
    """Unix seconds of a timestamp given in s, ms, us or ns (recognised by its magnitude)."""
    if ts < _SECONDS_LIMIT:
        return ts
    if ts < _SECONDS_LIMIT * 1000:
        return ts // 1000
    if ts < _SECONDS_LIMIT * 1_000_000:
        return ts // 1_000_000
    return ts // 1_000_000_000


def check_name(value: str, field: str) -> str:
    """Refuse cluster and host names that could escape a directory (checkpoints use them as paths)."""
    if not value or "/" in value or "\\" in value or ".." in value:
        raise InvalidInput(f"{field} {value!r} is not allowed (empty, or contains '/', '\\\\' or '..')", field=field)
    return value


def _shown(line: bytes) -> str:
    text = line.decode("utf-8", "replace")
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


def _fail(lineno: int, line: bytes, why: str) -> InvalidInput:
    return InvalidInput(f"line {lineno}: {why}: {_shown(line)}", field=f"line {lineno}")


def _split_unescaped(text: bytes, sep: int) -> list[bytes]:
    """Split at ``sep`` bytes not preceded by a backslash (escapes are kept; :func:`_unescape` removes them)."""
    parts: list[bytes] = []
    start = 0
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == 92:  # backslash: the next byte is literal
            i += 2
            continue
        if c == sep:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def _unescape(raw: bytes) -> str:
    if b"\\" in raw:
        raw = raw.replace(b"\\,", b",").replace(b"\\ ", b" ").replace(b"\\=", b"=")
    return raw.decode("utf-8")


def _name(raw: bytes, what: str, lineno: int, line: bytes) -> str:
    try:
        text = _unescape(raw)
    except UnicodeDecodeError:
        raise _fail(lineno, line, f"{what} is not UTF-8") from None
    if len(text) > MAX_NAME:
        raise _fail(lineno, line, f"{what} is longer than {MAX_NAME} characters")
    return text


def parse_key(key: bytes, cluster: str | None, lineno: int = 1, line: bytes | None = None) -> SeriesKey:
    """The series of a line's key (measurement and tags); raises InvalidInput naming ``lineno``."""
    line = key if line is None else line
    if key.endswith(b"\\") and not key.endswith(b"\\\\"):
        raise _fail(lineno, line, "the key ends with a dangling escape")
    items = _split_unescaped(key, 44)  # ','
    metric = _name(items[0], "the measurement", lineno, line)
    if not metric:
        raise _fail(lineno, line, "the measurement (metric name) is empty")
    tags: dict[str, str] = {}
    for item in items[1:]:
        kv = _split_unescaped(item, 61)  # '='
        if len(kv) != 2 or not kv[0]:
            raise _fail(lineno, line, f"tag {_unescape(item)!r} is not key=value")
        tags[_name(kv[0], "a tag key", lineno, line)] = _name(kv[1], f"tag {_unescape(kv[0])!r}", lineno, line)
    cl = tags.get("cluster") or cluster
    if not cl:
        raise _fail(lineno, line, "no cluster tag and no cluster parameter")
    host = tags.get("hostname") or tags.get("host")
    if not host:
        raise _fail(lineno, line, "no hostname tag")
    try:
        check_name(cl, "cluster")
        check_name(host, "hostname")
    except InvalidInput as exc:
        raise _fail(lineno, line, exc.message) from None
    typ = tags.get("type") or None
    type_id = tags.get("type-id") or None
    stype = tags.get("stype") or None
    stype_id = tags.get("stype-id") or None
    if typ == "node":
        typ = type_id = None
    if (typ is None) != (type_id is None):
        raise _fail(lineno, line, "tags type and type-id must come together")
    if (stype is None) != (stype_id is None):
        raise _fail(lineno, line, "tags stype and stype-id must come together")
    if stype is not None and typ is None:
        raise _fail(lineno, line, "tag stype needs a type")
    return SeriesKey(cl, host, metric, typ, type_id, stype, stype_id)


def parse_value(field: bytes, lineno: int, line: bytes) -> float:
    """The number of a ``value=...`` field set; any other field is an error."""
    fields = _split_unescaped(field, 44)
    if len(fields) != 1:
        raise _fail(lineno, line, "exactly one field (value) is accepted")
    name, sep, raw = field.partition(b"=")
    if not sep:
        raise _fail(lineno, line, "the field is not name=value")
    if name != b"value":
        raise _fail(lineno, line, f"unknown field {_unescape(name)!r} (only 'value' is accepted)")
    if raw[-1:] in (b"i", b"u") and raw[:-1].lstrip(b"-").isdigit():
        if raw[-1:] == b"u" and raw.startswith(b"-"):
            raise _fail(lineno, line, "an unsigned value is negative")
        return float(int(raw[:-1]))
    try:
        return float(raw)
    except ValueError:
        raise _fail(lineno, line, f"value {raw.decode('utf-8', 'replace')!r} is not a number") from None


def parse_time(raw: bytes | None, lineno: int, line: bytes) -> int:
    if raw is None:
        return int(time.time())
    if not raw.lstrip(b"-").isdigit():
        raise _fail(lineno, line, f"timestamp {raw.decode('utf-8', 'replace')!r} is not an integer")
    ts = int(raw)
    if ts < 0:
        raise _fail(lineno, line, "the timestamp is negative")
    return to_seconds(ts)


def split_line(line: bytes, lineno: int) -> tuple[bytes, bytes, bytes | None]:
    """``(key, fields, timestamp or None)`` of one line, honouring escaped spaces in the key."""
    # The key ends at the first unescaped space; fields cannot hold spaces (only numbers are accepted).
    n = len(line)
    if b"\\" not in line:
        i = line.find(b" ")
        if i < 0:
            i = n
    else:
        i = 0
        while i < n:
            c = line[i]
            if c == 92:
                i += 2
                continue
            if c == 32:
                break
            i += 1
    if i >= n:
        raise _fail(lineno, line, "no field set (expected 'value=...')")
    key = line[:i]
    rest = line[i + 1 :].strip(b" ")
    parts = rest.split()
    if not parts:
        raise _fail(lineno, line, "no field set (expected 'value=...')")
    if len(parts) > 2:
        raise _fail(lineno, line, "unexpected text after the timestamp")
    return key, parts[0], parts[1] if len(parts) == 2 else None


def iter_lines(body: bytes, now: int) -> Iterator[tuple[int, bytes, bytes, float, int]]:
    """``(line number, line, series key, value, Unix seconds)`` of every sample line of a body (blank lines and
    ``#`` comments skipped, a line without a timestamp at ``now``); InvalidInput naming the first bad line.
    The series key is left to the caller, which parses each distinct one once (:func:`parse_key`)."""
    for lineno, raw_line in enumerate(body.split(b"\n"), 1):
        line = raw_line.strip(b" \t\r")
        if not line or line.startswith(b"#"):
            continue
        key, field, raw = split_line(line, lineno)
        yield lineno, line, key, parse_value(field, lineno, line), now if raw is None else parse_time(raw, lineno, line)


def parse_lines(body: bytes, *, cluster: str | None = None) -> list[Sample]:
    """Every sample of a line-protocol body; InvalidInput(field="line N") on the first malformed line."""
    out: list[Sample] = []
    keys: dict[bytes, SeriesKey] = {}
    for lineno, line, key, value, ts in iter_lines(body, int(time.time())):
        sk = keys.get(key)
        if sk is None:
            sk = keys[key] = parse_key(key, cluster, lineno, line)
        out.append(Sample(*sk, value, ts))
    return out
