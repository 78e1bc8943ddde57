"""Schema creation and migrations on SQLite and MariaDB, and the upstream job.db round trip."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError, OperationalError

from cc_backend.db.engine import make_engine
from cc_backend.db.migrate import check_version, force, migrate, read_version, revert
from cc_backend.db.tables import JOB_INDEXES, JOB_RUNNING_INDEXES, SCHEMA_VERSION
from cc_backend.errors import DatabaseVersionError


def test_fresh_database_gets_schema_11_with_all_tables_and_indexes(empty_db_url):
    engine = make_engine(empty_db_url)
    assert migrate(engine) == (None, SCHEMA_VERSION)
    insp = inspect(engine)
    assert {"job", "job_cache", "tag", "jobtag", "hpc_user", "configuration", "node", "node_state",
            "schema_migrations"} <= set(insp.get_table_names())
    job_indexes = {ix["name"] for ix in insp.get_indexes("job")}
    assert {name for name, _ in JOB_INDEXES + JOB_RUNNING_INDEXES} <= job_indexes
    assert len(JOB_INDEXES) + len(JOB_RUNNING_INDEXES) == 54
    with engine.connect() as conn:
        assert read_version(conn) == (SCHEMA_VERSION, False)
    assert check_version(engine) == SCHEMA_VERSION
    engine.dispose()


def test_check_constraints_reject_bad_state_and_shared(engine):
    base = dict(job_id=1, cluster="c", subcluster="s", hpc_user="u", project="p", duration=1, walltime=1,
                resources="[]", num_nodes=1, shared="none", job_state="completed")
    from cc_backend.db.tables import job_table

    with engine.begin() as conn:
        conn.execute(job_table.insert().values(**base))
        conn.execute(job_table.insert().values(**{**base, "job_id": 2, "job_state": "out_of_memory"}))
    # SQLite reports a CHECK violation as an IntegrityError, MariaDB (error 4025) as an OperationalError
    for bad in ({"job_id": 3, "job_state": "exploded"}, {"job_id": 4, "shared": "sometimes"},
                {"job_id": 5, "monitoring_status": 7}):
        with pytest.raises((IntegrityError, OperationalError)), engine.begin() as conn:
            conn.execute(job_table.insert().values(**{**base, **bad}))
    with pytest.raises(IntegrityError), engine.begin() as conn:  # UNIQUE(job_id, cluster, start_time)
        conn.execute(job_table.insert().values(**base))


def test_empty_database_is_refused_with_the_fixing_flag(empty_db_url):
    engine = make_engine(empty_db_url)
    with pytest.raises(DatabaseVersionError, match="--migrate-db"):
        check_version(engine)
    engine.dispose()


def test_peer_db_v10_needs_migrate_then_keeps_every_row(peer_db_path):
    url = f"sqlite:///{peer_db_path}"
    before = _counts(peer_db_path)
    engine = make_engine(url)
    with pytest.raises(DatabaseVersionError, match=r"version 10 is outdated.*--migrate-db"):
        check_version(engine)
    assert migrate(engine) == (10, 11)
    assert check_version(engine) == 11
    engine.dispose()
    after = _counts(peer_db_path)
    assert after == before
    assert before["job"] == 544
    con = sqlite3.connect(peer_db_path)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("SELECT version, dirty FROM schema_migrations").fetchall() == [(11, 0)]
    # upstream's CHECK spelled 'out-of-memory'; the migrated table accepts the state every writer uses
    con.execute("INSERT INTO job (job_id, cluster, subcluster, hpc_user, project, duration, walltime, job_state,"
                " resources, num_nodes, shared) VALUES (1, 'c', 's', 'u', 'p', 1, 1, 'out_of_memory', '[]', 1, 'none')")
    cols = {r[1] for r in con.execute("PRAGMA table_info(node_state)")}
    assert "health_metrics" in cols


def test_revert_and_migrate_again_round_trip(peer_db_path):
    engine = make_engine(f"sqlite:///{peer_db_path}")
    migrate(engine)
    assert revert(engine) == (11, 10)
    with engine.connect() as conn:
        assert read_version(conn) == (10, False)
        names = {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type='index'"))}
    assert "jobs_cluster_submittime" in names and "jobs_starttime" not in names
    assert migrate(engine) == (10, 11)
    assert _counts(peer_db_path)["job"] == 544
    engine.dispose()


def test_dirty_database_is_refused_until_force(db_url):
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE schema_migrations SET dirty = :d"), {"d": True})
    with pytest.raises(DatabaseVersionError, match="--force-db"):
        check_version(engine)
    with pytest.raises(DatabaseVersionError):
        migrate(engine)
    force(engine)
    assert check_version(engine) == SCHEMA_VERSION
    engine.dispose()


def test_newer_database_is_refused(db_url):
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE schema_migrations SET version = 12"))
    with pytest.raises(DatabaseVersionError, match="newer"):
        check_version(engine)
    engine.dispose()


def test_mysql_schema_round_trip(peer_db_url):
    """The peer database copied into a fresh database (SQLite or MariaDB) keeps all rows."""
    engine = make_engine(peer_db_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM job")).scalar_one() == 544
        assert conn.execute(text("SELECT COUNT(*) FROM tag")).scalar_one() == 4
        assert conn.execute(text("SELECT roles FROM hpc_user WHERE username='demo'")).scalar_one() == '["admin","api"]'
    engine.dispose()


def test_sqlite_pragmas(engine):
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == 60000


def _counts(path) -> dict[str, int]:
    con = sqlite3.connect(path)
    out = {t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
           for t in ("job", "tag", "jobtag", "hpc_user", "configuration", "job_cache", "node", "node_state")}
    con.close()
    return out
