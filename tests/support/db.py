"""Databases for tests: fresh MariaDB databases with unique names, copies of every schema table."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


def fresh_mysql_database(server_url: str) -> tuple[str, str]:
    import pymysql

    name = f"cctest_{uuid.uuid4().hex[:12]}"
    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="")
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    conn.close()
    return name, f"{server_url}/{name}"


def drop_mysql_database(name: str) -> None:
    import pymysql

    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="")
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name}")
    conn.close()


def copy_database(src_url: str, dst_url: str) -> None:
    """Copy every row of every schema table (the dst schema must exist)."""
    from sqlalchemy import select

    from cc_backend.db.engine import make_engine
    from cc_backend.db.tables import metadata

    src, dst = make_engine(src_url), make_engine(dst_url)
    with src.connect() as s, dst.begin() as d:
        for table in metadata.sorted_tables:
            rows = [dict(r) for r in s.execute(select(table)).mappings()]
            if rows:
                d.execute(table.insert(), rows)
    src.dispose()
    dst.dispose()


@contextlib.contextmanager
def module_database(request, folder: Path) -> Iterator[str]:
    """The database URL for a fixture parametrised "sqlite"/"mysql": ``folder/job.db``, or a fresh MariaDB
    database that is dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{folder / 'job.db'}"
        return
    name, url = fresh_mysql_database(request.getfixturevalue("mysql_server"))
    try:
        yield url
    finally:
        drop_mysql_database(name)


#: Runs a test that takes ``empty_db_url`` (or a fixture built on it) on SQLite only.
SQLITE_ONLY = pytest.mark.parametrize("empty_db_url", ["sqlite"], indirect=True)
#: Runs a test on the module's ``shared_site`` (and fixtures built on it) on SQLite only.
SHARED_SQLITE_ONLY = pytest.mark.parametrize("shared_site", ["sqlite"], indirect=True)


def migrated_peer_sqlite(folder: Path):
    """A copy of the upstream peer job.db (544 jobs) in ``folder``, migrated to schema 11: (engine, path)."""
    import shutil

    from peerdata import JOB_DB

    from cc_backend.db.engine import make_engine
    from cc_backend.db.migrate import migrate

    path = folder / "job.db"
    shutil.copyfile(JOB_DB, path)
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    return engine, path
