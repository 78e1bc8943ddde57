"""JSON-schema validation of archive documents (format version 3) and of a whole archive directory."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from functools import cache
from importlib import resources
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource

from cc_backend.errors import CCError, InvalidInput

__all__ = [
    "SCHEMA_FILES",
    "schema",
    "validate_archive",
    "validate_cluster",
    "validate_data",
    "validate_meta",
]

SCHEMA_FILES = (
    "unit.schema.json",
    "job-metric-statistics.schema.json",
    "job-metric-data.schema.json",
    "job-data.schema.json",
    "job-meta.schema.json",
    "cluster.schema.json",
)


@cache
def _documents() -> dict[str, dict[str, Any]]:
    pkg = resources.files("cc_backend.archive") / "schemas"
    docs = [orjson.loads((pkg / name).read_bytes()) for name in SCHEMA_FILES]
    return {doc["$id"]: doc for doc in docs}


def _make_registry(docs: dict[str, dict[str, Any]]) -> Registry:
    return Registry().with_resources((uri, Resource.from_contents(doc)) for uri, doc in docs.items())


@cache
def _registry() -> Registry:
    return _make_registry(_documents())


@cache
def _fast_data_registry() -> Registry:
    # jsonschema needs ~2 s for the ~400,000 samples of one real data file; the per-sample type check is
    # dropped from the schema here and done by _check_samples in a plain loop (~50x faster).
    docs = copy.deepcopy(_documents())
    series = docs["embedfs://job-metric-data.schema.json"]["properties"]["series"]["items"]
    del series["properties"]["data"]["items"]
    return _make_registry(docs)


def schema(name: str) -> dict[str, Any]:
    """The schema document ``name`` (e.g. ``"job-meta"``)."""
    return copy.deepcopy(_documents()[f"embedfs://{name}.schema.json"])


@cache
def _validator(name: str) -> Draft202012Validator:
    registry = _fast_data_registry() if name == "job-data" else _registry()
    return Draft202012Validator(registry.contents(f"embedfs://{name}.schema.json"), registry=registry)


def _check(name: str, what: str, doc: Any) -> None:
    errors = list(_validator(name).iter_errors(doc))
    if errors:
        raise _as_invalid(what, min(errors, key=lambda e: _document_position(doc, e)))


def _document_position(doc: Any, error: ValidationError) -> tuple[int, ...]:
    """Sort key putting errors in document order: object keys as they appear in the document, array indices.

    A parent's own error (e.g. a missing required key) sorts before its children's errors; ties keep
    jsonschema's order.
    """
    position: list[int] = []
    node = doc
    for part in error.absolute_path:
        if isinstance(part, int):
            position.append(part)
            node = node[part] if isinstance(node, list) and part < len(node) else None
        elif isinstance(node, dict):
            keys = list(node)
            position.append(keys.index(part) if part in node else len(keys))
            node = node.get(part)
        else:
            position.append(0)
            node = None
    return tuple(position)


_SAMPLE_TYPES = frozenset({int, float, type(None)})


def _check_samples(doc: dict[str, Any]) -> None:
    """The ``series[].data`` item rule of job-metric-data.schema.json (number or null), on a valid structure."""
    for metric, scopes in doc.items():
        for scope, metric_data in scopes.items():
            for i, series in enumerate(metric_data["series"]):
                data = series["data"]
                # exact class test: bool is an int subclass but not a JSON number
                if all(v.__class__ in _SAMPLE_TYPES for v in data):
                    continue
                j = next(j for j, v in enumerate(data) if v.__class__ not in _SAMPLE_TYPES)
                path = f"$.{metric}.{scope}.series[{i}].data[{j}]"
                raise InvalidInput(f"job metric data is invalid at {path}: {data[j]!r} is not of type 'number', 'null'", field=path)


def _as_invalid(what: str, error: ValidationError) -> InvalidInput:
    path = error.json_path
    message = error.message
    if len(message) > 300:
        # jsonschema quotes whole instances, which for data series means megabytes.
        message = message[:300] + "..."
    return InvalidInput(f"{what} is invalid at {path}: {message}", field=path)


def validate_meta(doc: Any) -> None:
    """Check a meta.json document; raises InvalidInput naming the JSON path of the first error."""
    _check("job-meta", "job meta data", doc)


def validate_data(doc: Any) -> None:
    """Check a data.json document; raises InvalidInput naming the JSON path of the first error."""
    _check("job-data", "job metric data", doc)
    _check_samples(doc)


def validate_cluster(doc: Any) -> None:
    """Check a cluster.json document; raises InvalidInput naming the JSON path of the first error."""
    _check("cluster", "cluster configuration", doc)


def validate_archive(root: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """Check version.txt, every cluster.json, meta.json and data file under ``root``.

    Returns ``(path, message)`` per problem, in walk order; an empty list means the archive is valid.
    """
    return list(_iter_archive_problems(os.fspath(root)))


def _iter_archive_problems(root: str) -> Iterator[tuple[str, str]]:
    # Local imports: fs imports this module lazily for its own validate option.
    from cc_backend.archive import ARCHIVE_VERSION
    from cc_backend.archive.cluster import Cluster, load_cluster_config
    from cc_backend.archive.fs import DATA, DATA_GZ, iter_meta_paths, read_data_file, read_json

    if not os.path.isdir(root):
        yield root, "job archive directory does not exist"
        return
    vfile = os.path.join(root, "version.txt")
    try:
        with open(vfile, encoding="utf-8") as fh:
            version = fh.read().strip()
        if version != str(ARCHIVE_VERSION):
            yield vfile, f"unsupported version {version!r}, need {ARCHIVE_VERSION}"
    except OSError as exc:
        yield vfile, f"cannot read: {exc.strerror or exc}"

    clusters: dict[str, Cluster | None] = {}
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        path = os.path.join(entry.path, "cluster.json")
        clusters[entry.name] = None
        try:
            doc = read_json(path)
            validate_cluster(doc)
            cluster = load_cluster_config(doc, source=path)
            if cluster.name != entry.name:
                yield path, f"$.name is {cluster.name!r} but the directory is {entry.name!r}"
            clusters[entry.name] = cluster
        except CCError as exc:
            yield path, _strip_prefix(exc.message, path)

    for meta_path in iter_meta_paths(root):
        job_dir = meta_path[: -len("meta.json")]
        rel = os.path.relpath(job_dir, root).split(os.sep)
        try:
            meta = read_json(meta_path)
        except CCError as exc:
            yield meta_path, _strip_prefix(exc.message, meta_path)
        else:
            yield from ((meta_path, m) for m in _meta_problems(meta, rel, clusters))
        data_path = job_dir + DATA_GZ
        if not os.path.exists(data_path):
            data_path = job_dir + DATA
        try:
            validate_data(read_data_file(data_path))
        except CCError as exc:
            if not os.path.exists(data_path):
                yield job_dir.rstrip(os.sep), f"neither {DATA_GZ} nor {DATA} exists"
            else:
                yield data_path, _strip_prefix(exc.message, data_path)


def _meta_problems(meta: Any, rel: list[str], clusters: dict[str, Any]) -> Iterator[str]:
    try:
        validate_meta(meta)
    except InvalidInput as exc:
        yield exc.message
        return
    cluster_dir, lvl1, lvl2, start = rel
    job_id = meta["jobId"]
    if meta["cluster"] != cluster_dir:
        yield f"$.cluster is {meta['cluster']!r} but the job is stored under {cluster_dir!r}"
    if (str(job_id // 1000), f"{job_id % 1000:03d}") != (lvl1, lvl2):
        yield f"$.jobId {job_id} does not belong in {lvl1}/{lvl2}"
    if str(meta["startTime"]) != start:
        yield f"$.startTime {meta['startTime']} does not match directory {start}"
    cluster = clusters.get(cluster_dir)
    if cluster is not None and cluster.find_sub_cluster(meta["subCluster"]) is None:
        yield f"$.subCluster {meta['subCluster']!r} is not a subcluster of {cluster.name!r}"


def _strip_prefix(message: str, path: str) -> str:
    # Archive errors already start with the file name, which the caller reports separately.
    for prefix in (f"{path}: ", f"{path} "):
        if message.startswith(prefix):
            return message[len(prefix):]
    return message
