"""Conversion between job table rows and the job JSON shape of the REST API and meta.json."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from cc_backend.db.limits import check_text, int_range, max_bytes, max_chars
from cc_backend.db.tables import JOB_STATES, SHARED_MODES, job_table
from cc_backend.errors import InvalidInput

if TYPE_CHECKING:
    from sqlalchemy import Column

#: monitoringStatus of a job whose meta.json and data.json are in the archive (upstream MonitoringStatusArchivingSuccessful).
MONITORING_ARCHIVED = 3

# Columns in the order the API lists them: (column, JSON key).
COLUMN_KEYS: tuple[tuple[str, str], ...] = (
    ("id", "id"),
    ("job_id", "jobId"),
    ("hpc_user", "user"),
    ("project", "project"),
    ("cluster", "cluster"),
    ("subcluster", "subCluster"),
    ("cluster_partition", "partition"),
    ("array_job_id", "arrayJobId"),
    ("num_nodes", "numNodes"),
    ("num_hwthreads", "numHwthreads"),
    ("num_acc", "numAcc"),
    ("shared", "shared"),
    ("monitoring_status", "monitoringStatus"),
    ("smt", "smt"),
    ("job_state", "jobState"),
    ("submit_time", "submitTime"),
    ("start_time", "startTime"),
    ("duration", "duration"),
    ("walltime", "walltime"),
    ("energy", "energy"),
)
JSON_COLUMNS = (("resources", "resources"), ("meta_data", "metaData"), ("footprint", "footprint"),
                ("energy_footprint", "energyFootprint"))
KEY_TO_COLUMN = {key: col for col, key in COLUMN_KEYS + JSON_COLUMNS}
KEY_TO_COLUMN.update({"numHWThreads": "num_hwthreads", "numAccelerators": "num_acc", "state": "job_state",
                      "SMT": "smt", "subcluster": "subcluster"})
COLUMN_NAMES = {col for col, _ in COLUMN_KEYS + JSON_COLUMNS}

_loads = orjson.loads

#: Latest time (seconds since 1970) a job may carry: 2^53, the largest integer a JavaScript client reads exactly.
MAX_TIME = 2**53
# Integers of the job JSON: (key, column, smallest, largest); largest None is what the column holds.
_INT_KEYS = (
    ("jobId", "job_id", 0, None), ("submitTime", "submit_time", 0, MAX_TIME),
    ("startTime", "start_time", 0, MAX_TIME), ("arrayJobId", "array_job_id", 0, None),
    ("duration", "duration", 0, None), ("walltime", "walltime", 0, None), ("numNodes", "num_nodes", 0, None),
    ("numHwthreads", "num_hwthreads", 0, None), ("numAcc", "num_acc", 0, None), ("smt", "smt", 0, None),
)
_INT_BOUNDS = tuple((key, column, low, int_range(job_table.c[column])[1] if high is None else high)
                    for key, column, low, high in _INT_KEYS)
_TEXT_KEYS = (("user", "hpc_user"), ("project", "project"), ("cluster", "cluster"), ("subCluster", "subcluster"),
              ("partition", "cluster_partition"), ("resources", "resources"), ("metaData", "meta_data"),
              ("footprint", "footprint"), ("energyFootprint", "energy_footprint"))
# (key, column, length below which the value surely fits): characters of a VARCHAR; for a document,
# a quarter of its bytes (a character is at most 4 bytes). Longer values get the exact check.


def _surely_fits(column: Column) -> int:
    chars = max_chars(column)
    if chars:
        return chars
    limit = max_bytes(column)
    if limit is None:
        raise TypeError(f"column {column.name} has neither a VARCHAR length nor info['max_bytes']")
    return limit // 4


_TEXT_BOUNDS = tuple((key, column, _surely_fits(job_table.c[column])) for key, column in _TEXT_KEYS)


def reject_unknown(doc: Mapping[str, Any], allowed: frozenset[str], prefix: str = "") -> None:
    """InvalidInput naming the first key of ``doc`` not in ``allowed`` (upstream's DisallowUnknownFields)."""
    for key in doc:
        if key not in allowed:
            raise InvalidInput(f"unknown field {prefix}{key!r}", field=f"{prefix}{key}")


def json_object(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{what} must be a JSON object", field=what)
    return value


def _json_or(value: Any, default: Any) -> Any:
    if value is None or value == "":
        return default
    if isinstance(value, (bytes, str)):
        return _loads(value)
    return value


def is_number_map(value: Any) -> bool:
    """Whether ``value`` is a footprint: an object of metric name to finite number."""
    return isinstance(value, dict) and all(
        type(v) is float and math.isfinite(v) or type(v) is int for v in value.values())


def _number_map_or_none(value: Any) -> dict[str, float] | None:
    """A stored footprint, or None for one that is not an object of numbers (a bad row of an old database).

    One such row must not fail a whole job list: the job shows no footprint instead.
    """
    if value is None or value == "":
        return {}
    try:
        loaded = _loads(value) if isinstance(value, (bytes, str)) else value
    except orjson.JSONDecodeError:
        return None
    return loaded if is_number_map(loaded) else None


def row_to_job(row: Mapping[str, Any], tags: list[dict] | None = None) -> dict[str, Any]:
    """The REST/meta.json job object for one ``job`` row (every field present, for scripts)."""
    job = {key: row[col] for col, key in COLUMN_KEYS}
    job["partition"] = job["partition"] or ""
    job["arrayJobId"] = job["arrayJobId"] or 0
    job["numHwthreads"] = job["numHwthreads"] or 0
    job["numAcc"] = job["numAcc"] or 0
    job["energy"] = float(job["energy"] or 0.0)
    job["resources"] = _json_or(row["resources"], [])
    job["metaData"] = _json_or(row["meta_data"], {})
    job["footprint"] = _number_map_or_none(row["footprint"])
    job["energyFootprint"] = _number_map_or_none(row["energy_footprint"])
    job["tags"] = tags if tags is not None else []
    return job


def _require(job: Mapping[str, Any], key: str) -> Any:
    if job.get(key) is None:
        raise InvalidInput(f"missing required field {key!r}", field=key)
    return job[key]


def _int(job: Mapping[str, Any], key: str, default: int | None = None) -> int | None:
    value = job.get(key, default)
    if type(value) is int:  # the common case, checked first: init-db converts every archived job
        return value
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and not value.is_integer()):
        raise InvalidInput(f"field {key!r} must be an integer, got {value!r}", field=key)
    return int(value)


def _number_map(job: Mapping[str, Any], key: str) -> str | None:
    """A footprint of the job JSON as stored (JSON text), or None when absent or empty."""
    value = job.get(key)
    if value is None or value == {}:
        return None
    if not is_number_map(value):
        raise InvalidInput(f"{key} must be an object of metric name to finite number, got {value!r:.80}", field=key)
    return _dumps(value)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def job_to_row(job: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a job object (meta.json / start_job shape) and turn it into a ``job`` row dict."""
    state = job.get("jobState") or "running"
    if state not in JOB_STATES:
        raise InvalidInput(f"jobState {state!r} is not one of {', '.join(JOB_STATES)}", field="jobState")
    shared = job.get("shared") or "none"
    if shared not in SHARED_MODES:
        raise InvalidInput(f"shared {shared!r} is not one of {', '.join(SHARED_MODES)}", field="shared")
    for key in ("user", "project", "cluster"):
        if not isinstance(_require(job, key), str) or not job[key]:
            raise InvalidInput(f"field {key!r} must be a non-empty string", field=key)
    resources = _require(job, "resources")
    if not isinstance(resources, list) or not resources:
        raise InvalidInput("field 'resources' must be a non-empty list", field="resources")
    for i, res in enumerate(resources):
        if not isinstance(res, dict) or not isinstance(res.get("hostname"), str) or not res["hostname"]:
            raise InvalidInput(f"resources[{i}].hostname must be a non-empty string", field=f"resources[{i}].hostname")
    start = _int(job, "startTime")
    if start is None:
        raise InvalidInput("missing required field 'startTime'", field="startTime")
    monitoring = _int(job, "monitoringStatus", 1)
    if monitoring not in (0, 1, 2, 3):
        raise InvalidInput("monitoringStatus must be 0, 1, 2 or 3", field="monitoringStatus")
    meta = job.get("metaData")
    if meta is not None and not isinstance(meta, dict):
        raise InvalidInput("metaData must be an object of strings", field="metaData")
    # Checked here because the database driver cannot bind anything else (a 500 instead of a 400).
    for key in ("partition", "subCluster"):
        if job.get(key) is not None and not isinstance(job[key], str):
            raise InvalidInput(f"field {key!r} must be a string", field=key)
    energy = job.get("energy")
    if energy is not None and (isinstance(energy, bool) or not isinstance(energy, (int, float))
                               or not math.isfinite(energy) or energy < 0):
        raise InvalidInput(f"field 'energy' must be a non-negative number, got {energy!r}", field="energy")
    row = {
        "job_id": _int(job, "jobId") if job.get("jobId") is not None else _require(job, "jobId"),
        "cluster": job["cluster"],
        "subcluster": job.get("subCluster") or "",
        "submit_time": _int(job, "submitTime", 0) or 0,
        "start_time": start,
        "hpc_user": job["user"],
        "project": job["project"],
        "cluster_partition": job.get("partition") or None,
        "array_job_id": _int(job, "arrayJobId", 0),
        "duration": _int(job, "duration", 0) or 0,
        "walltime": _int(job, "walltime", 0) or 0,
        "job_state": state,
        "meta_data": _dumps(meta) if meta else None,
        "resources": _dumps(resources),
        "num_nodes": _int(job, "numNodes", len(resources)),
        "num_hwthreads": _int(job, "numHwthreads", 0),
        "num_acc": _int(job, "numAcc", 0),
        "smt": _int(job, "smt", 1),
        "shared": shared,
        "monitoring_status": monitoring,
        "energy": float(job.get("energy") or 0.0),
        "energy_footprint": _number_map(job, "energyFootprint"),
        "footprint": _number_map(job, "footprint"),
    }
    _check_bounds(row)
    return row


def _check_bounds(row: Mapping[str, Any]) -> None:
    """Integers within their range, texts within their column (db/limits.py): a 400, never the database's error."""
    for key, column, low, high in _INT_BOUNDS:
        value = row[column]
        if value is not None and not low <= value <= high:
            raise InvalidInput(f"{key} must be between {low} and {high}, got {value}", field=key)
    for key, column, surely_fits in _TEXT_BOUNDS:
        value = row[column]
        if value is not None and len(value) > surely_fits:
            check_text(job_table.c[column], value, key)


def current_duration(job: Mapping[str, Any], now: float) -> int:
    """A job's duration in seconds: the stored one, or for a running job the time since it started."""
    if job.get("jobState") == "running":
        return max(0, int(now) - int(job.get("startTime") or 0))
    return int(job.get("duration") or 0)


def duration_clock(seconds: int | float) -> str:
    """``1d 02:03:04`` / ``02:03:04``: a duration as batch systems and upstream's job list print it."""
    days, rest = divmod(max(0, int(seconds)), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}d {clock}" if days else clock
