"""Upstream's job-list URL parameters (``/monitoring/jobs/?cluster=alex&state=running``) as a JobFilter, and back.

The parameters are those of upstream's ``buildFilterPresets`` (``internal/routerConfig/routes.go``) and
of the URLs its filter bar writes (``Filters.svelte``), so bookmarks from an upstream installation keep
working here and ours open there. Unknown parameters are ignored, as upstream does; a malformed value is
an InvalidInput that names the parameter (upstream silently drops it, which hides typos). Our own
additions, which upstream ignores in turn: ``sort`` (``startTime:desc``, ``foot.flops_any:asc``),
``page`` and ``itemsPerPage``.

Ranges are ``A-B``, ``lessthan-N`` or ``morethan-N``; a bound of 0 is open, as in the job query
(``lessthan-N`` is ``0-N``, ``morethan-N`` is ``N-0``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from cc_backend.errors import InvalidInput
from cc_backend.jobs.filter import (
    START_TIME_RANGES,
    JobFilter,
    OrderBy,
    Page,
    StringInput,
    parse_filters,
    parse_int,
    parse_number,
    parse_page,
    parse_sort,
)
from cc_backend.jobs.query import DEFAULT_ORDER

#: Text parameters: (URL parameter, JobFilter field, operator for one value). Several values mean "in";
#: ``<parameter>Match`` (upstream's projectMatch, userMatch, jobIdMatch) chooses another operator.
TEXT_PARAMETERS: tuple[tuple[str, str, str], ...] = (
    ("cluster", "cluster", "eq"),
    ("subCluster", "subCluster", "eq"),
    ("partition", "partition", "eq"),
    ("project", "project", "eq"),
    ("user", "user", "contains"),
    ("jobName", "jobName", "contains"),
    ("jobId", "jobId", "eq"),
    ("node", "node", "contains"),
)
#: Range parameters: (URL parameter, JobFilter field, whether values are integers).
RANGE_PARAMETERS: tuple[tuple[str, str, bool], ...] = (
    ("duration", "duration", True),
    ("numNodes", "numNodes", True),
    ("numHWThreads", "numHWThreads", True),
    ("numAccelerators", "numAccelerators", True),
    ("energy", "energy", False),
)
MATCH_OPERATORS = ("eq", "neq", "contains", "startsWith", "endsWith", "in")
#: Every parameter this module reads, in the order :func:`query_from_filter` writes them.
FILTER_PARAMETERS = (
    "cluster", "subCluster", "partition", "state", "user", "userMatch", "project", "projectMatch", "jobName",
    "jobNameMatch", "jobId", "jobIdMatch", "arrayJobId", "dbId", "tag", "startTime", "duration", "numNodes",
    "numHWThreads", "numAccelerators", "energy", "node", "nodeMatch", "shared", "schedule", "stat",
    "clusterMatch", "subClusterMatch", "partitionMatch",
)
LIST_PARAMETERS = ("sort", "page", "itemsPerPage")
#: Page sizes the job list offers (upstream's Pagination.svelte).
PAGE_SIZES = (10, 25, 50, 100)
_FIELD_TO_PARAMETER = {"tags": "tag", "metricStats": "stat"}

Pairs = Iterable[tuple[str, str]] | Mapping[str, str | Sequence[str]]


def query_values(pairs: Pairs) -> dict[str, list[str]]:
    """Parameter -> its non-empty values, in order (an empty form field is no filter, as upstream)."""
    items: Iterable[tuple[str, Any]]
    if isinstance(pairs, Mapping):
        items = ((k, v) for k, vs in pairs.items() for v in ([vs] if isinstance(vs, str) else vs))
    else:
        items = pairs
    out: dict[str, list[str]] = {}
    for key, value in items:
        value = value.strip() if isinstance(value, str) else value
        if value:
            out.setdefault(key, []).append(value)
    return out


def _one(values: dict[str, list[str]], name: str) -> str | None:
    given = values.get(name)
    if not given:
        return None
    if len(given) > 1:
        raise InvalidInput(f"{name}: give one value, not {len(given)}", field=name)
    return given[0]


def _number(text: str, name: str, integer: bool) -> float:
    return parse_int(text, name) if integer else parse_number(text, name, integer=False)


def parse_range_text(text: str, name: str, *, integer: bool = True) -> dict[str, float]:
    """``A-B``, ``lessthan-N`` or ``morethan-N`` as a from/to dict (0 is an open bound)."""
    head, sep, tail = text.partition("-")
    if not sep or not tail:
        raise InvalidInput(f"{name}: {text!r} is not a range: use A-B, lessthan-N or morethan-N", field=name)
    if head == "lessthan":
        return {"from": 0, "to": _number(tail, name, integer)}
    if head == "morethan":
        return {"from": _number(tail, name, integer), "to": 0}
    low, high = _number(head, name, integer), _number(tail, name, integer)
    if high and low > high:
        raise InvalidInput(f"{name}: the lower bound {head} is above the upper bound {tail}", field=name)
    return {"from": low, "to": high}


def range_text(low: float, high: float) -> str:
    """The URL form of a from/to range: ``morethan-N`` / ``lessthan-N`` for one open bound, else ``A-B``."""
    def show(value: float) -> str:
        return str(int(value)) if float(value).is_integer() else repr(float(value))

    if low and not high:
        return f"morethan-{show(low)}"
    if high and not low:
        return f"lessthan-{show(high)}"
    return f"{show(low)}-{show(high)}"


def _text_condition(values: dict[str, list[str]], name: str, default: str) -> dict[str, Any] | None:
    given = values.get(name)
    if not given:
        return None
    operator = _one(values, name + "Match") or ("in" if len(given) > 1 else default)
    if operator not in MATCH_OPERATORS:
        raise InvalidInput(f"{name}Match: {operator!r} is not one of {', '.join(MATCH_OPERATORS)}",
                           field=name + "Match")
    if operator == "in":
        return {"in": list(given)}
    if len(given) > 1:
        raise InvalidInput(f"{name}: give one value for {name}Match={operator}, not {len(given)}", field=name)
    return {operator: given[0]}


def _start_time(text: str) -> dict[str, Any]:
    if text in START_TIME_RANGES:
        return {"range": text}
    head, sep, tail = text.partition("-")
    if not sep:
        raise InvalidInput(f"startTime: {text!r} is neither FROM-TO (epoch seconds) nor one of "
                           f"{', '.join(START_TIME_RANGES)}", field="startTime")
    out: dict[str, Any] = {}
    if head:
        out["from"] = parse_int(head, "startTime")
    if tail:
        out["to"] = parse_int(tail, "startTime")
    if "from" in out and "to" in out and out["from"] > out["to"]:
        raise InvalidInput(f"startTime: the start {head} is after the end {tail}", field="startTime")
    return out


def _stat(text: str) -> dict[str, Any]:
    """``<metric>-<from>-<to>``, ``<metric>-lessthan-N`` or ``<metric>-morethan-N``."""
    metric, sep, rest = text.partition("-")
    if not sep or not metric:
        raise InvalidInput(f"stat: {text!r} is not METRIC-FROM-TO, METRIC-lessthan-N or METRIC-morethan-N",
                           field="stat")
    return {"metricName": metric, "range": parse_range_text(rest, "stat", integer=False)}


def filter_from_query(pairs: Pairs) -> JobFilter:
    """The JobFilter of a job-list URL's parameters (see the module docstring); InvalidInput names the parameter."""
    values = query_values(pairs)
    raw: dict[str, Any] = {}
    for name, field, default in TEXT_PARAMETERS:
        condition = _text_condition(values, name, default)
        if condition is not None:
            raw[field] = condition
    if values.get("state"):
        raw["state"] = values["state"]
    for name in ("shared", "schedule"):
        value = _one(values, name)
        if value is not None:
            raw[name] = value
    if values.get("tag"):
        raw["tags"] = [parse_int(tag, "tag") for tag in values["tag"]]
    if values.get("dbId"):
        raw["dbId"] = [parse_int(db_id, "dbId") for db_id in values["dbId"]]
    array_job_id = _one(values, "arrayJobId")
    if array_job_id is not None:
        raw["arrayJobId"] = parse_int(array_job_id, "arrayJobId")
    start = _one(values, "startTime")
    if start is not None:
        raw["startTime"] = _start_time(start)
    for name, field, integer in RANGE_PARAMETERS:
        text = _one(values, name)
        if text is not None:
            raw[field] = parse_range_text(text, name, integer=integer)
    if values.get("stat"):
        raw["metricStats"] = [_stat(item) for item in values["stat"]]
    job_ids = raw.get("jobId", {})
    for operator in ("eq", "neq", "in"):
        for job_id in ([job_ids[operator]] if operator != "in" else job_ids[operator]) if operator in job_ids else ():
            parse_int(job_id, "jobId")
    try:
        return parse_filters(raw)[0]
    except InvalidInput as exc:  # name the URL parameter, not the model field
        field = (exc.field or "").split(".")[0]
        parameter = _FIELD_TO_PARAMETER.get(field, field)
        raise InvalidInput(f"{parameter}: {exc.message.split(': ', 1)[-1]}", field=parameter) from None


def _text_pairs(name: str, spec: StringInput | None, default: str) -> list[tuple[str, str]]:
    if spec is None:
        return []
    for operator in MATCH_OPERATORS:
        value = getattr(spec, "in_" if operator == "in" else operator)
        if value is None:
            continue
        if operator == "in":
            pairs = [(name, v) for v in value]
            if len(value) < 2 or default == "in":
                pairs.append((name + "Match", "in"))
            return pairs
        pairs = [(name, value)]
        if operator != default:
            pairs.append((name + "Match", operator))
        return pairs
    return []


def query_from_filter(flt: JobFilter) -> list[tuple[str, str]]:
    """The URL parameters of ``flt`` (the reverse of :func:`filter_from_query`, in upstream's spelling)."""
    pairs: list[tuple[str, str]] = []
    for name, field, default in TEXT_PARAMETERS[:3]:
        pairs += _text_pairs(name, getattr(flt, field), default)
    pairs += [("state", state) for state in flt.state or ()]
    for name, field, default in TEXT_PARAMETERS[3:]:
        pairs += _text_pairs(name, getattr(flt, field), default)
    if flt.arrayJobId is not None:
        pairs.append(("arrayJobId", str(flt.arrayJobId)))
    pairs += [("dbId", str(db_id)) for db_id in flt.dbId or ()]
    pairs += [("tag", str(tag)) for tag in flt.tags or ()]
    if flt.startTime is not None:
        if flt.startTime.range:
            pairs.append(("startTime", flt.startTime.range))
        else:
            low = "" if flt.startTime.from_ is None else str(flt.startTime.from_)
            high = "" if flt.startTime.to is None else str(flt.startTime.to)
            pairs.append(("startTime", f"{low}-{high}"))
    for name, field, _ in RANGE_PARAMETERS:
        rng = getattr(flt, field)
        if rng is not None and (rng.from_ or rng.to):
            pairs.append((name, range_text(rng.from_, rng.to)))
    if flt.shared is not None:
        pairs.append(("shared", flt.shared))
    if flt.schedule is not None:
        pairs.append(("schedule", flt.schedule))
    for stat in flt.metricStats or ():
        pairs.append(("stat", f"{stat.metricName}-{range_text(stat.range.from_, stat.range.to)}"))
    return pairs


# ---------------------------------------------------------------- sorting and paging


def order_from_query(pairs: Pairs) -> OrderBy:
    """``sort=startTime:desc`` or ``sort=foot.flops_any:asc`` (default: newest first, as upstream)."""
    text = _one(query_values(pairs), "sort")
    if text is None:
        return DEFAULT_ORDER
    try:
        return parse_sort(text)
    except InvalidInput as exc:
        raise InvalidInput(f"sort: {exc.message}", field="sort") from None


def sort_text(order: OrderBy) -> str:
    """The ``sort`` parameter of ``order``."""
    prefix = "foot." if order.type == "foot" else ""
    return f"{prefix}{order.field}:{order.order.lower()}"


def page_from_query(pairs: Pairs, default_size: int = 25) -> Page:
    """``page`` (from 1) and ``itemsPerPage`` (one of :data:`PAGE_SIZES`; default ``default_size``)."""
    values = query_values(pairs)
    page_text, size_text = _one(values, "page"), _one(values, "itemsPerPage")
    number = parse_int(page_text, "page") if page_text is not None else 1
    size = parse_int(size_text, "itemsPerPage") if size_text is not None else default_size
    if size_text is not None and size not in PAGE_SIZES:
        raise InvalidInput(f"itemsPerPage: {size} is not one of {', '.join(map(str, PAGE_SIZES))}",
                           field="itemsPerPage")
    if number < 1:
        raise InvalidInput(f"page: {number} is below 1", field="page")
    return parse_page({"page": number, "itemsPerPage": size})  # type: ignore[return-value]


@dataclass(frozen=True)
class JobListQuery:
    """Everything a job-list URL says: the filter, the order and the page."""

    filter: JobFilter
    order: OrderBy
    page: Page

    @classmethod
    def parse(cls, pairs: Pairs, default_size: int = 25) -> JobListQuery:
        values = query_values(pairs)
        return cls(filter_from_query(values), order_from_query(values), page_from_query(values, default_size))

    def pairs(self, *, default_size: int | None = None) -> list[tuple[str, str]]:
        """The URL parameters; the default order, page 1 and ``default_size`` are left out."""
        out = query_from_filter(self.filter)
        if self.order != DEFAULT_ORDER:
            out.append(("sort", sort_text(self.order)))
        if self.page.page != 1:
            out.append(("page", str(self.page.page)))
        if self.page.itemsPerPage != default_size:
            out.append(("itemsPerPage", str(self.page.itemsPerPage)))
        return out


def list_url(pairs: Iterable[tuple[str, str]], base: str = "/monitoring/jobs/") -> str:
    """``base`` with these parameters (no ``?`` when there are none)."""
    query = urlencode(list(pairs))
    return f"{base}?{query}" if query else base


def filters_for_query(flt: JobFilter) -> list[JobFilter]:
    """The filter list the job query takes (none when ``flt`` sets nothing)."""
    return [flt] if flt != JobFilter() else []


__all__ = [
    "FILTER_PARAMETERS", "LIST_PARAMETERS", "PAGE_SIZES", "JobListQuery", "filter_from_query", "filters_for_query",
    "list_url", "order_from_query", "page_from_query", "parse_range_text", "query_from_filter", "query_values",
    "range_text", "sort_text",
]
