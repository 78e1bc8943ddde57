"""Shared fixtures: peer data copies, fresh SQLite and MariaDB databases."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
PEER = FIXTURES / "peer-data"
UPSTREAM_SPEC = FIXTURES / "upstream-spec" / "cc-backend"
MYSQL_URL = os.environ.get("CC_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306")


def _mysql_available() -> bool:
    try:
        import pymysql

        pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", connect_timeout=3).close()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def mysql_server() -> str:
    if not _mysql_available():
        if os.environ.get("CI"):
            pytest.fail("MariaDB on 127.0.0.1:3306 is required in CI")
        pytest.skip("MariaDB on 127.0.0.1:3306 is not running")
    return MYSQL_URL


def _fresh_mysql_database(server_url: str) -> tuple[str, str]:
    import pymysql

    name = f"cctest_{uuid.uuid4().hex[:12]}"
    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="")
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    conn.close()
    return name, f"{server_url}/{name}"


def _drop_mysql_database(name: str) -> None:
    import pymysql

    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="")
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name}")
    conn.close()


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def empty_db_url(request, tmp_path) -> str:
    """URL of a fresh, empty database: SQLite file, or a new database on the real MariaDB."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'job.db'}"
        return
    server = request.getfixturevalue("mysql_server")
    name, url = _fresh_mysql_database(server)
    try:
        yield url
    finally:
        _drop_mysql_database(name)


@pytest.fixture
def db_url(empty_db_url) -> str:
    """URL of a fresh database migrated to the current schema."""
    from cc_backend.db.engine import make_engine
    from cc_backend.db.migrate import migrate

    engine = make_engine(empty_db_url)
    migrate(engine)
    engine.dispose()
    return empty_db_url


@pytest.fixture
def engine(db_url):
    from cc_backend.db.engine import make_engine

    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def peer_db_path(tmp_path) -> Path:
    """A writable copy of the upstream-written job.db (schema version 10, 544 jobs)."""
    dst = tmp_path / "peer-job.db"
    shutil.copyfile(PEER / "db" / "job.db", dst)  # copyfile: the copy is writable whatever the fixture's mode
    return dst


@pytest.fixture
def peer_archive(tmp_path) -> Path:
    """A writable copy of the peer job archive (clusters alex, emmy, fritz; two emmy jobs)."""
    from peerdata import copy_archive

    return copy_archive(tmp_path, "job-archive")


def run_cli(*args: str, cwd: Path | None = None, input: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the installed ``cc-backend`` console script as a real process."""
    exe = Path(sys.executable).parent / "cc-backend"
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [str(exe), *args], cwd=cwd, input=input, capture_output=True, text=True, env=full_env, timeout=300
    )


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


@pytest.fixture
def peer_db_url(request, peer_db_path, empty_db_url) -> str:
    """The upstream peer job.db (544 jobs) migrated to schema 11, on SQLite or copied into MariaDB."""
    from cc_backend.db.engine import make_engine
    from cc_backend.db.migrate import migrate

    sqlite_url = f"sqlite:///{peer_db_path}"
    engine = make_engine(sqlite_url)
    migrate(engine)
    engine.dispose()
    if empty_db_url.startswith("sqlite"):
        return sqlite_url
    engine = make_engine(empty_db_url)
    migrate(engine)
    engine.dispose()
    copy_database(sqlite_url, empty_db_url)
    return empty_db_url


@pytest.fixture
def site(tmp_path, empty_db_url, peer_archive):
    """A working directory like an installation: config.json (database + archive), .env, the peer archive.

    Parametrised over SQLite and MariaDB through ``empty_db_url``; the database is still empty.
    """
    import json

    from cc_backend.auth.keys import generate_keypair

    if empty_db_url.startswith("sqlite"):
        main = {"addr": "127.0.0.1:0", "db": str(tmp_path / "job.db")}
    else:
        main = {"addr": "127.0.0.1:0", "db-driver": "mysql", "db": empty_db_url}
    config = {"main": main, "archive": {"kind": "file", "path": str(peer_archive)},
              "auth": {"jwts": {"max-age": "2h"}}}
    (tmp_path / "config.json").write_text(json.dumps(config, indent=2))
    public, private = generate_keypair()
    (tmp_path / ".env").write_text(f'JWT_PUBLIC_KEY="{public}"\nJWT_PRIVATE_KEY="{private}"\nSESSION_KEY="abc"\n')
    return tmp_path


@pytest.fixture(scope="session")
def ldap_server(tmp_path_factory):
    """A real slapd on a free loopback port, with users alice, bob, carol and dave."""
    import ldap_server as ldap

    if not ldap.available():
        if os.environ.get("CI"):
            pytest.fail("slapd is required in CI (run-tests.sh installs it)")
        pytest.skip("slapd is not installed (apt-get install slapd ldap-utils)")
    server = ldap.start(tmp_path_factory.mktemp("slapd"))
    yield server
    server.stop()
