"""Locations of upstream's test data (tests/fixtures) and a helper to copy the archive."""

from __future__ import annotations

import shutil
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PEER = FIXTURES / "peer-data"
UPSTREAM_SPEC = FIXTURES / "upstream-spec" / "cc-backend"
ARCHIVE = PEER / "archive"
IMPORTER = PEER / "importer"
JOB_DB = PEER / "db" / "job.db"


def copy_archive(tmp_path: Path, name: str = "archive") -> Path:
    """A writable copy of the read-only peer archive under ``tmp_path``."""
    dst = tmp_path / name
    shutil.copytree(ARCHIVE, dst)
    # Whatever mode the fixture files have, copies must be writable for the tests that change them.
    for p in [dst, *dst.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dst
