"""Version information: the program, the schema and archive versions it supports, and what the configured database and archive hold."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cc_backend import __version__
from cc_backend.archive import ARCHIVE_VERSION

if TYPE_CHECKING:
    from cc_backend.runtime import Runtime


@dataclass
class VersionInfo:
    program: str
    schema_version: int
    archive_version: int
    database_version: int | None
    database_dirty: bool
    database_url: str | None
    archive_path_version: int | None

    def to_json(self) -> dict:
        return self.__dict__.copy()


def version_info(runtime: Runtime) -> VersionInfo:
    """Program, supported schema and archive versions, and what the configured database/archive hold."""
    from cc_backend.db.migrate import read_version
    from cc_backend.db.tables import SCHEMA_VERSION

    db_version, dirty, url, archive_version = None, False, None, None
    try:
        url = runtime.database_url
        if not url.startswith("sqlite:///") or Path(url.removeprefix("sqlite:///")).is_file():
            with runtime.raw_engine.connect() as conn:
                db_version, dirty = read_version(conn)
    except Exception:  # --version must work with a broken or unreachable database
        pass
    try:
        version_file = Path(runtime.config.archive.path or "") / "version.txt"
        archive_version = int(version_file.read_text().strip())
    except Exception:
        pass
    return VersionInfo(__version__, SCHEMA_VERSION, ARCHIVE_VERSION, db_version, dirty, _redact(url),
                       archive_version)


def _redact(url: str | None) -> str | None:
    if url is None:
        return None
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
