"""File-system job archive, format version 3: ``<root>/<cluster>/<id//1000>/<id%1000:03d>/<startTime>/``."""

from __future__ import annotations

import gzip
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, overload

import orjson

from cc_backend.archive import ARCHIVE_VERSION
from cc_backend.archive.cluster import Cluster, ClusterRegistry, load_cluster_config
from cc_backend.archive.paths import check_path_component, job_relpath
from cc_backend.errors import ArchiveError, InvalidInput, NotFound
from cc_backend.fileutil import write_atomic

__all__ = [
    "GZIP_THRESHOLD",
    "FileArchive",
    "iter_meta_paths",
    "read_data_file",
    "read_json",
]

#: data.json encodings larger than this many bytes are stored gzip'ed as data.json.gz (as upstream).
GZIP_THRESHOLD = 2000

META = "meta.json"
DATA = "data.json"
DATA_GZ = "data.json.gz"


def _subdirs(path: str) -> list[str]:
    # DirEntry.is_dir() answers from d_type, so no stat per entry on ordinary file systems.
    with os.scandir(path) as it:
        names = [e.name for e in it if e.name[0] != "." and e.is_dir()]
    # (len, name) orders the digit-only level names numerically without int() per name.
    names.sort(key=lambda n: (len(n), n))
    return names


def subdirectories(path: str) -> list[str]:
    """Names of the sub-directories of ``path`` (dot-directories left out), numeric names in numeric order."""
    return _subdirs(path)


def iter_meta_paths_below(top: str, depth: int) -> Iterator[str]:
    """meta.json paths ``depth`` directory levels below ``top`` (4 from the root, 2 from a ``<cluster>/<a>``)."""
    if depth == 0:
        yield top + os.sep + META
        return
    for name in _subdirs(top):
        yield from iter_meta_paths_below(top + os.sep + name, depth - 1)


def iter_meta_paths(root: str | os.PathLike[str]) -> Iterator[str]:
    """Yield ``<root>/<cluster>/<a>/<b>/<start>/meta.json`` for every job directory, ordered by cluster and job.

    Hot path of init-db: fixed-depth scandir, strings only, and the meta.json itself is not stat'ed
    (a directory whose meta.json is missing, e.g. an import in progress, still yields its path).
    """
    return iter_meta_paths_below(os.fspath(root), 4)


def read_json(path: str | os.PathLike[str]) -> Any:
    """Decode one JSON file; a broken file becomes an ArchiveError naming it."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise NotFound(f"{os.fspath(path)} does not exist") from None
    except OSError as exc:
        raise ArchiveError(f"cannot read {os.fspath(path)}: {exc.strerror or exc}") from exc
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ArchiveError(f"{os.fspath(path)} is not valid JSON: {exc}") from exc


def read_data_file(path: str | os.PathLike[str]) -> Any:
    """Decode a data.json or data.json.gz file (chosen by suffix)."""
    p = os.fspath(path)
    if not p.endswith(".gz"):
        return read_json(p)
    try:
        with open(p, "rb") as fh:
            raw = gzip.decompress(fh.read())
    except FileNotFoundError:
        raise NotFound(f"{p} does not exist") from None
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise ArchiveError(f"{p} is not a readable gzip file: {exc}") from exc
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ArchiveError(f"{p} does not contain valid JSON: {exc}") from exc


def _job_id(value: Any, field: str) -> int:
    # Strings like "../x" must never reach a path, and negative ids would produce "-1/995" directories.
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"{field} must be a non-negative integer, got {value!r}", field=field)
    return value


def _dumps(doc: Any) -> bytes:
    try:
        return orjson.dumps(doc)
    except TypeError as exc:
        raise InvalidInput(f"document cannot be encoded as JSON: {exc}") from exc


class FileArchive:
    """A job archive in a local directory (format version 3)."""

    def __init__(self, root: str | os.PathLike[str] | None, *, validate: bool = False) -> None:
        """Open ``root``; bootstrap ``version.txt`` into an empty directory, else insist on version 3.

        ``validate=True`` checks cluster.json, meta.json and data files against the v3 schemas on read and write.
        """
        if root is None or os.fspath(root) == "":
            raise ArchiveError("job archive: no path configured")
        self.root = Path(root)
        self.validate = validate
        self._registry: ClusterRegistry | None = None
        self._version = self._check_version()

    @classmethod
    def from_config(cls, config: str | bytes | Mapping[str, Any], *, validate: bool = False) -> FileArchive:
        """Open the archive described by an upstream archive config (``{"kind": "file", "path": ...}``)."""
        if isinstance(config, (str, bytes)):
            try:
                config = orjson.loads(config)
            except orjson.JSONDecodeError as exc:
                raise ArchiveError(f"job archive config is not valid JSON: {exc}") from exc
        if not isinstance(config, Mapping):
            raise ArchiveError("job archive config must be a JSON object")
        kind = config.get("kind", "file")
        if kind != "file":
            raise ArchiveError(f"job archive kind {kind!r} is not supported by the file backend")
        path = config.get("path")
        if not isinstance(path, str) or not path:
            raise ArchiveError("job archive config: 'path' is required")
        return cls(path, validate=validate)

    def _check_version(self) -> int:
        root = self.root
        if not root.is_dir():
            raise ArchiveError(f"job archive {root} does not exist or is not a directory")
        vfile = root / "version.txt"
        try:
            text = vfile.read_text(encoding="utf-8")
        except FileNotFoundError:
            with os.scandir(root) as it:
                if any(not e.name.startswith(".") for e in it):
                    raise ArchiveError(
                        f"job archive {root} has no version.txt but is not empty; refusing to guess its format"
                    ) from None
            write_atomic(vfile, f"{ARCHIVE_VERSION}\n".encode())
            return ARCHIVE_VERSION
        except OSError as exc:
            raise ArchiveError(f"cannot read {vfile}: {exc.strerror or exc}") from exc
        stripped = text.strip()
        if not (stripped.isascii() and stripped.isdigit()):
            raise ArchiveError(f"{vfile}: expected a version number, got {stripped[:40]!r}")
        version = int(stripped)
        if version != ARCHIVE_VERSION:
            raise ArchiveError(f"{vfile}: unsupported version {version}, need {ARCHIVE_VERSION}")
        return version

    @property
    def version(self) -> int:
        return self._version

    # -- clusters -----------------------------------------------------------------------------------

    def clusters(self) -> list[str]:
        """Names of all clusters (every non-hidden sub-directory of the root), sorted."""
        return sorted(_subdirs(os.fspath(self.root)))

    def cluster_path(self, name: str) -> Path:
        check_path_component(name, "cluster")
        return self.root / name / "cluster.json"

    def load_cluster_raw(self, name: str) -> dict[str, Any]:
        """cluster.json of ``name`` exactly as stored."""
        path = self.cluster_path(name)
        try:
            doc = read_json(path)
        except NotFound:
            raise NotFound(f"cluster {name!r} has no {path}", field="cluster") from None
        if self.validate:
            from cc_backend.archive.validate import validate_cluster

            _reraise_as_archive(validate_cluster, doc, str(path))
        return _as_object(doc, path)

    def load_cluster(self, name: str) -> Cluster:
        path = self.cluster_path(name)
        cluster = load_cluster_config(self.load_cluster_raw(name), source=str(path))
        if cluster.name != name:
            raise ArchiveError(f"{path}: $.name: is {cluster.name!r} but the directory is {name!r}", field="$.name")
        return cluster

    def store_cluster(self, name: str, doc: Mapping[str, Any]) -> None:
        """Write ``<name>/cluster.json`` atomically after checking it loads."""
        path = self.cluster_path(name)
        load_cluster_config(doc, source=str(path))
        if self.validate:
            from cc_backend.archive.validate import validate_cluster

            validate_cluster(doc)
        write_atomic(path, orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        self._registry = None

    def registry(self, *, refresh: bool = False) -> ClusterRegistry:
        """All clusters of the archive (loaded once, cached)."""
        if self._registry is None or refresh:
            self._registry = ClusterRegistry(self.load_cluster(c) for c in self.clusters())
        return self._registry

    # -- jobs ----------------------------------------------------------------------------------------

    def job_dir(self, cluster: str, job_id: int | str, start_time: int | str) -> Path:
        return self.root / job_relpath(cluster, _job_id(job_id, "jobId"), _job_id(start_time, "startTime"))

    def _dir_of(self, meta: Mapping[str, Any]) -> Path:
        if not isinstance(meta, Mapping):
            raise InvalidInput("job meta data must be a JSON object")
        cluster = meta.get("cluster")
        if not isinstance(cluster, str):
            raise InvalidInput(f"cluster must be a string, got {cluster!r}", field="cluster")
        return self.job_dir(cluster, meta.get("jobId"), meta.get("startTime"))  # type: ignore[arg-type]  # _job_id checks

    def exists(self, cluster: str, job_id: int | str, start_time: int | str) -> bool:
        return (self.job_dir(cluster, job_id, start_time) / META).is_file()

    def load_meta(self, cluster: str, job_id: int | str, start_time: int | str) -> dict[str, Any]:
        path = self.job_dir(cluster, job_id, start_time) / META
        try:
            doc = read_json(path)
        except NotFound:
            raise NotFound(f"job {job_id} on {cluster} started at {start_time} is not archived") from None
        if self.validate:
            from cc_backend.archive.validate import validate_meta

            _reraise_as_archive(validate_meta, doc, str(path))
        return _as_object(doc, path)

    def data_path(self, cluster: str, job_id: int | str, start_time: int | str) -> Path | None:
        """The job's data file, preferring data.json.gz; None if neither exists."""
        d = self.job_dir(cluster, job_id, start_time)
        for name in (DATA_GZ, DATA):
            if (d / name).is_file():
                return d / name
        return None

    def load_data(self, cluster: str, job_id: int | str, start_time: int | str) -> dict[str, Any]:
        d = self.job_dir(cluster, job_id, start_time)
        try:
            doc = read_data_file(d / DATA_GZ)
            path = d / DATA_GZ
        except NotFound:
            try:
                doc = read_data_file(d / DATA)
                path = d / DATA
            except NotFound:
                raise NotFound(f"job {job_id} on {cluster} started at {start_time} has no archived metric data") from None
        if self.validate:
            from cc_backend.archive.validate import validate_data

            _reraise_as_archive(validate_data, doc, str(path))
        return _as_object(doc, path)

    def store_meta(self, job: Mapping[str, Any]) -> None:
        """Rewrite meta.json of an archived job (e.g. after tag or metadata changes)."""
        d = self._dir_of(job)
        if not d.is_dir():
            raise NotFound(f"job {job.get('jobId')} on {job.get('cluster')} started at {job.get('startTime')} is not archived")
        if self.validate:
            from cc_backend.archive.validate import validate_meta

            validate_meta(job)
        write_atomic(d / META, _dumps(job))

    def import_job(self, meta: Mapping[str, Any], data: Mapping[str, Any]) -> Path:
        """Archive one job: meta.json plus data.json (gzip'ed above GZIP_THRESHOLD bytes); returns the job directory."""
        d = self._dir_of(meta)
        for i, res in enumerate(meta.get("resources") or ()):
            host = res.get("hostname") if isinstance(res, Mapping) else None
            check_path_component(host, f"resources[{i}].hostname")  # type: ignore[arg-type]  # rejects non-strings
        if self.validate:
            from cc_backend.archive.validate import validate_data, validate_meta

            validate_meta(meta)
            validate_data(data)
        meta_raw = _dumps(meta)
        data_raw = _dumps(data)
        d.mkdir(parents=True, exist_ok=True)
        if len(data_raw) > GZIP_THRESHOLD:
            # mtime=0 keeps re-imports byte-identical; level 6 is Go's default, 9 is far slower for little gain.
            write_atomic(d / DATA_GZ, gzip.compress(data_raw, compresslevel=6, mtime=0))
            stale = d / DATA
        else:
            write_atomic(d / DATA, data_raw)
            stale = d / DATA_GZ
        # A leftover of the other encoding would shadow (.gz) or confuse the fresh data.
        stale.unlink(missing_ok=True)
        # meta.json last: a directory with meta.json is a complete job for iterators.
        write_atomic(d / META, meta_raw)
        return d

    def remove_job(self, cluster: str, job_id: int | str, start_time: int | str) -> None:
        """Delete the job directory and then its parents while they are empty (never the cluster directory)."""
        d = self.job_dir(cluster, job_id, start_time)
        if not d.is_dir():
            raise NotFound(f"job {job_id} on {cluster} started at {start_time} is not archived")
        shutil.rmtree(d)
        for parent in (d.parent, d.parent.parent):
            try:
                parent.rmdir()
            except OSError:
                break

    def iter_meta_paths(self) -> Iterator[str]:
        return iter_meta_paths(self.root)

    @overload
    def iter_jobs(
        self, load_data: Literal[False] = ..., *, on_error: Callable[[str, Exception], None] | None = ...
    ) -> Iterator[tuple[str, dict[str, Any]]]: ...

    @overload
    def iter_jobs(
        self, load_data: Literal[True], *, on_error: Callable[[str, Exception], None] | None = ...
    ) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]: ...

    def iter_jobs(
        self, load_data: bool = False, *, on_error: Callable[[str, Exception], None] | None = None
    ) -> Iterator[tuple[Any, ...]]:
        """Yield ``(meta_path, meta)`` per archived job, or ``(meta_path, meta, data)`` with ``load_data``.

        Directories without meta.json are skipped. A broken file raises ArchiveError unless ``on_error``
        is given, which then receives ``(path, error)`` and the job is skipped.
        """
        for path in iter_meta_paths(self.root):
            try:
                try:
                    with open(path, "rb") as fh:
                        raw = fh.read()
                except FileNotFoundError:
                    continue
                try:
                    meta = orjson.loads(raw)
                except orjson.JSONDecodeError as exc:
                    raise ArchiveError(f"{path} is not valid JSON: {exc}") from exc
                if not load_data:
                    yield path, meta
                    continue
                d = path[: -len(META)]
                try:
                    data = read_data_file(d + DATA_GZ)
                except NotFound:
                    try:
                        data = read_data_file(d + DATA)
                    except NotFound:
                        raise ArchiveError(f"{d}: job has meta.json but neither {DATA_GZ} nor {DATA}") from None
                yield path, meta, data
            except (ArchiveError, OSError) as exc:
                if on_error is None:
                    if isinstance(exc, ArchiveError):
                        raise
                    raise ArchiveError(f"cannot read {path}: {exc}") from exc
                on_error(path, exc)


def _as_object(doc: Any, path: Path) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise ArchiveError(f"{path}: expected a JSON object at the top level")
    return doc


def _reraise_as_archive(check: Callable[[Any], None], doc: Any, path: str) -> None:
    # A stored file that fails the schema is a broken archive, not bad user input.
    try:
        check(doc)
    except InvalidInput as exc:
        raise ArchiveError(f"{path}: {exc.message}", field=exc.field) from exc
