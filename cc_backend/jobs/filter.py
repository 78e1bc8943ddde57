"""The job filter: upstream's GraphQL ``JobFilter`` vocabulary as one typed model for every front end."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cc_backend.db.tables import JOB_STATES, SHARED_MODES
from cc_backend.errors import InvalidInput

_M = TypeVar("_M", bound=BaseModel)

START_TIME_RANGES = {"last6h": 6 * 3600, "last24h": 24 * 3600, "last7d": 7 * 86400, "last30d": 30 * 86400}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class StringInput(_Model):
    """Match a text column: exactly one of the operators is normally set."""

    eq: str | None = None
    neq: str | None = None
    contains: str | None = None
    startsWith: str | None = None
    endsWith: str | None = None
    in_: list[str] | None = Field(default=None, alias="in")


class IntRange(_Model):
    from_: int = Field(alias="from")
    to: int


class FloatRange(_Model):
    from_: float = Field(alias="from")
    to: float


class TimeRange(_Model):
    """Either a named range (last6h, last24h, last7d, last30d) or from/to epoch seconds."""

    range: str | None = None
    from_: int | None = Field(default=None, alias="from")
    to: int | None = None

    @field_validator("range")
    @classmethod
    def _known_range(cls, value: str | None) -> str | None:
        if value not in (None, "") and value not in START_TIME_RANGES:
            raise ValueError(f"must be one of {', '.join(START_TIME_RANGES)}")
        return value or None

    def bounds(self, now: int | None = None) -> tuple[int | None, int | None]:
        if self.range:
            now = int(time.time()) if now is None else now
            return now - START_TIME_RANGES[self.range], None
        return self.from_, self.to


class MetricStatItem(_Model):
    """A range on one footprint value: ``flops_any`` (its footprint statistic) or ``mem_used_max`` exactly."""

    metricName: str
    range: FloatRange

    @field_validator("metricName")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_]+", value):
            raise ValueError("metric names contain only letters, digits and '_'")
        return value


class JobFilter(_Model):
    """One condition set; a list of filters is combined with AND."""

    tags: list[int] | None = None
    dbId: list[int] | None = None
    jobId: StringInput | None = None
    arrayJobId: int | None = None
    user: StringInput | None = None
    project: StringInput | None = None
    jobName: StringInput | None = None
    cluster: StringInput | None = None
    subCluster: StringInput | None = None
    partition: StringInput | None = None
    duration: IntRange | None = None
    energy: FloatRange | None = None
    numNodes: IntRange | None = None
    numAccelerators: IntRange | None = None
    numHWThreads: IntRange | None = None
    startTime: TimeRange | None = None
    state: list[str] | None = None
    metricStats: list[MetricStatItem] | None = None
    shared: str | None = None
    schedule: Literal["interactive", "batch"] | None = None
    node: StringInput | None = None

    @field_validator("state")
    @classmethod
    def _known_states(cls, value: list[str] | None) -> list[str] | None:
        for state in value or ():
            if state not in JOB_STATES:
                raise ValueError(f"{state!r} is not one of {', '.join(JOB_STATES)}")
        return value

    @field_validator("shared")
    @classmethod
    def _known_shared(cls, value: str | None) -> str | None:
        if value is not None and value not in SHARED_MODES:
            raise ValueError(f"must be one of {', '.join(SHARED_MODES)}")
        return value

    @classmethod
    def from_text_options(
        cls,
        options: Mapping[str, str | Sequence[str] | None],
        *,
        tag_ids: Callable[[list[str]], list[int]] | None = None,
    ) -> JobFilter:
        """A filter from the compact text options every front end offers (see :data:`TEXT_OPTIONS`).

        ``options`` maps option names as on the command line (``cluster``, ``start-time``, ``metric``,
        ...) to their text, or to a list of texts for the repeatable ``state``, ``tag`` and ``metric``;
        None or empty means unset. Names: ``abc*``/``*abc``/``*abc*`` patterns; ranges ``A..B``;
        ``start-time`` ``last24h`` or ``FROM..TO``; ``metric`` ``NAME=A..B``. ``tag`` values are ids,
        or ``type:name`` for ``tag_ids`` to resolve (a lookup in the caller's database). Errors are
        InvalidInput naming the filter field.
        """
        unknown = sorted(set(options) - set(TEXT_OPTIONS))
        if unknown:
            raise InvalidInput(f"unknown filter option {unknown[0]!r} (one of {', '.join(TEXT_OPTIONS)})",
                               field=unknown[0])
        given = {name: value for name, value in options.items() if value}
        raw: dict[str, Any] = {}
        for option, value in given.items():
            kind, key = TEXT_OPTIONS[option]
            if kind == "match":
                raw[key] = match_text(_one(value, key))
            elif kind == "int":
                raw[key] = parse_int(_one(value, key), key)
            elif kind == "list":
                raw[key] = _many(value)
            elif kind == "time":
                raw[key] = parse_time_range(_one(value, key), key)
            elif kind == "duration":
                raw[key] = parse_range(_one(value, key), key, duration=True)
            elif kind == "count":
                raw[key] = parse_range(_one(value, key), key)
            elif kind == "float":
                raw[key] = parse_range(_one(value, key), key, integer=False)
            elif kind == "metric":
                raw[key] = [_metric_range(item) for item in _many(value)]
            elif kind == "tag":
                specs = _many(value)
                if tag_ids is None:
                    if not all(spec.isdigit() for spec in specs):
                        raise InvalidInput("tags: only tag ids can be used here, not type:name", field=key)
                    raw[key] = [int(spec) for spec in specs]
                else:
                    raw[key] = tag_ids(specs)
            else:  # "text": validated by the model
                raw[key] = _one(value, key)
        return parse_filters(raw)[0]


class OrderBy(_Model):
    """Sort by a column (``type="col"``) or a footprint value (``type="foot"``)."""

    field: str
    type: Literal["col", "foot"] = "col"
    order: Literal["ASC", "DESC"] = "ASC"

    @model_validator(mode="after")
    def _safe_field(self) -> OrderBy:
        if not re.fullmatch(r"[A-Za-z0-9_]+", self.field):
            raise ValueError("sort field contains only letters, digits and '_'")
        return self


class Page(_Model):
    """1-based page; ``itemsPerPage`` of -1 means everything."""

    itemsPerPage: int = 50
    page: int = 1

    @model_validator(mode="after")
    def _positive(self) -> Page:
        if self.itemsPerPage == 0 or self.itemsPerPage < -1:
            raise ValueError("itemsPerPage must be positive (or -1 for all)")
        if self.page < 1:
            raise ValueError("page must be 1 or more")
        return self

    @property
    def offset(self) -> int:
        """Items before this page (0 when the page is everything)."""
        return 0 if self.itemsPerPage == -1 else (self.page - 1) * self.itemsPerPage

    def of(self, items: Sequence[Any]) -> Sequence[Any]:
        """This page of an already sorted sequence."""
        return items if self.itemsPerPage == -1 else items[self.offset:self.offset + self.itemsPerPage]


def _invalid(exc: ValidationError, what: str) -> InvalidInput:
    err = exc.errors()[0]
    path = ".".join(str(p).rstrip("_") for p in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    return InvalidInput(f"{what}.{path}: {msg}" if path else f"{what}: {msg}", field=path or what)


def parse_filters(raw: list[dict] | dict | None) -> list[JobFilter]:
    """Parse GraphQL/REST-style filter dicts, raising InvalidInput that names the field."""
    if raw is None:
        return []
    items = [raw] if isinstance(raw, dict) else raw
    out = []
    for item in items:
        try:
            out.append(JobFilter.model_validate(item))
        except ValidationError as exc:
            raise _invalid(exc, "filter") from None
    return out


def _parse_one(model: type[_M], raw: dict | None, what: str) -> _M | None:
    if raw is None:
        return None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise _invalid(exc, what) from None


def parse_order(raw: dict | None) -> OrderBy | None:
    return _parse_one(OrderBy, raw, "order")


def parse_page(raw: dict | None) -> Page | None:
    return _parse_one(Page, raw, "page")


# --- A compact text syntax for filters (command line, TUI search fields) ----------------------

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_BIG = 2**62


def match_text(pattern: str) -> dict:
    """``abc`` matches exactly; ``abc*``, ``*abc`` and ``*abc*`` match prefix, suffix and substring."""
    if len(pattern) > 1 and pattern.startswith("*") and pattern.endswith("*"):
        return {"contains": pattern[1:-1]}
    if pattern.endswith("*"):
        return {"startsWith": pattern[:-1]}
    if pattern.startswith("*"):
        return {"endsWith": pattern[1:]}
    return {"eq": pattern}


def parse_number(text: str, field: str, *, duration: bool = False, integer: bool = True) -> float:
    text = text.strip()
    factor = 1
    if duration and text and text[-1] in _DURATION_UNITS:
        factor, text = _DURATION_UNITS[text[-1]], text[:-1]
    try:
        value = float(text) * factor
    except ValueError:
        raise InvalidInput(f"{field}: {text!r} is not a number", field=field) from None
    if not math.isfinite(value):
        raise InvalidInput(f"{field}: {text!r} is not a finite number", field=field)
    if integer and abs(value) >= 2**63:  # the database binds 64-bit integers
        raise InvalidInput(f"{field}: {text} is out of range (64-bit)", field=field)
    return int(value) if integer else value


def parse_range(text: str, field: str, *, duration: bool = False, integer: bool = True) -> dict:
    """``A..B``, ``A..`` or ``..B`` (or a single value ``A``) as a from/to dict; durations accept s/m/h/d."""
    lo, sep, hi = text.partition("..")
    if not sep:
        value = parse_number(text, field, duration=duration, integer=integer)
        return {"from": value, "to": value}
    low = parse_number(lo, field, duration=duration, integer=integer) if lo.strip() else (0 if integer else -1e300)
    high = parse_number(hi, field, duration=duration, integer=integer) if hi.strip() else (_BIG if integer else 1e300)
    if low > high:
        raise InvalidInput(f"{field}: lower bound {lo} is above upper bound {hi}", field=field)
    return {"from": low, "to": high}


def parse_time(text: str, field: str) -> int:
    """Epoch seconds, or an ISO date/time (local time unless it carries an offset)."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    from datetime import datetime

    try:
        return int(datetime.fromisoformat(text).timestamp())
    except ValueError:
        raise InvalidInput(f"{field}: {text!r} is neither epoch seconds nor an ISO date", field=field) from None


def parse_time_range(text: str, field: str = "startTime") -> dict:
    """``last6h|last24h|last7d|last30d`` or ``FROM..TO`` with epoch seconds or ISO dates."""
    if text in START_TIME_RANGES:
        return {"range": text}
    lo, sep, hi = text.partition("..")
    if not sep:
        raise InvalidInput(f"{field}: use one of {', '.join(START_TIME_RANGES)} or FROM..TO", field=field)
    out: dict = {}
    if lo.strip():
        out["from"] = parse_time(lo, field)
    if hi.strip():
        out["to"] = parse_time(hi, field)
    return out


def parse_sort(text: str) -> OrderBy:
    """``field`` or ``field:asc|desc``; footprint values as ``foot.flops_any_avg``."""
    name, _, direction = text.partition(":")
    kind = "col"
    if name.startswith("foot."):
        kind, name = "foot", name[5:]
    direction = (direction or "asc").upper()
    if direction not in ("ASC", "DESC"):
        raise InvalidInput(f"sort direction {direction!r} must be asc or desc", field="sort")
    return parse_order({"field": name, "type": kind, "order": direction})  # type: ignore[return-value]


#: The text options of :meth:`JobFilter.from_text_options`: option name -> (syntax, JobFilter field).
TEXT_OPTIONS: dict[str, tuple[str, str]] = {
    "cluster": ("match", "cluster"),
    "subcluster": ("match", "subCluster"),
    "partition": ("match", "partition"),
    "user": ("match", "user"),
    "project": ("match", "project"),
    "job-name": ("match", "jobName"),
    "job-id": ("match", "jobId"),
    "node": ("match", "node"),
    "array-job-id": ("int", "arrayJobId"),
    "state": ("list", "state"),
    "start-time": ("time", "startTime"),
    "duration": ("duration", "duration"),
    "nodes": ("count", "numNodes"),
    "hwthreads": ("count", "numHWThreads"),
    "accelerators": ("count", "numAccelerators"),
    "energy": ("float", "energy"),
    "metric": ("metric", "metricStats"),
    "tag": ("tag", "tags"),
    "shared": ("text", "shared"),
    "schedule": ("text", "schedule"),
}


#: Options that may be given more than once in filter text (each occurrence adds a value).
REPEATABLE_OPTIONS = frozenset({"state", "tag", "metric"})


def parse_filter_text(text: str) -> dict[str, str | list[str]]:
    """The options of one line of filter text, for :meth:`JobFilter.from_text_options`.

    Takes the compact form ``user:k1* state:running duration:1h.. "job-name:my job"`` and the command
    line's ``--user 'k1*' --state running --duration=1h..`` alike (quotes as in a shell), so a filter
    bar accepts what users type on the command line. ``state``, ``tag`` and ``metric`` repeat. A word
    that is not an option, an unknown option or a second value of another option is InvalidInput
    naming it.
    """
    import shlex

    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise InvalidInput(f"filter: {exc} (close the quote)", field="filter") from None
    options: dict[str, str | list[str]] = {}
    position = 0
    while position < len(words):
        word = words[position]
        position += 1
        if word.startswith("--"):
            name, equals, value = word[2:].partition("=")
            if not equals:
                if position >= len(words):
                    raise InvalidInput(f"{name}: give a value after --{name}", field=name)
                value = words[position]
                position += 1
        else:
            name, colon, value = word.partition(":")
            if not colon:
                raise InvalidInput(f"filter: {word!r} is not name:value (e.g. user:{word})", field="filter")
        if name not in TEXT_OPTIONS:
            raise InvalidInput(f"unknown filter option {name!r} (one of {', '.join(TEXT_OPTIONS)})", field=name)
        if name in REPEATABLE_OPTIONS:
            values = options.setdefault(name, [])
            assert isinstance(values, list)
            values.append(value)
        elif name in options:
            raise InvalidInput(f"{name}: given twice ({options[name]!r} and {value!r})", field=name)
        else:
            options[name] = value
    return options


def filter_text(options: Mapping[str, str | Sequence[str] | None]) -> str:
    """The compact filter text of ``options`` (the inverse of :func:`parse_filter_text`), quoted where needed."""
    import shlex

    words = []
    for name, value in options.items():
        for item in ([value] if isinstance(value, str) else list(value or ())):
            if item:
                words.append(shlex.quote(f"{name}:{item}"))
    return " ".join(words)


def _one(value: str | Sequence[str], field: str) -> str:
    if isinstance(value, str):
        return value
    if len(value) != 1:
        raise InvalidInput(f"{field}: give one value, not {len(value)}", field=field)
    return value[0]


def _many(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def parse_int(text: str, field: str) -> int:
    """A whole number that the database can bind (64-bit); InvalidInput naming ``field`` otherwise."""
    try:
        number = int(text.strip())
    except ValueError:
        raise InvalidInput(f"{field}: {text!r} is not an integer", field=field) from None
    if abs(number) >= 2**63:  # the database binds 64-bit integers
        raise InvalidInput(f"{field}: {text} is out of range (64-bit)", field=field)
    return number


def _metric_range(item: str) -> dict[str, Any]:
    """``NAME=A..B`` as a metricStats item (footprint value range)."""
    name, sep, text = item.partition("=")
    if not sep or not name:
        raise InvalidInput(f"metric {item!r}: use NAME=A..B", field="metricStats")
    return {"metricName": name, "range": parse_range(text, f"metric {name}", integer=False)}
