"""Schema versioning on ``schema_migrations(version, dirty)``, compatible with upstream's golang-migrate.

A database file can move between upstream cc-backend and this implementation in both
directions: both read and write the same version record and the same tables.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, Engine, inspect, text
from sqlalchemy.engine import Connection

from cc_backend.db.engine import is_sqlite
from cc_backend.db.tables import SCHEMA_VERSION, metadata
from cc_backend.errors import DatabaseVersionError

if TYPE_CHECKING:
    from sqlalchemy.engine.interfaces import Dialect
    from sqlalchemy.sql.elements import ColumnElement

log = logging.getLogger(__name__)

# Indexes of schema 10 that schema 11 replaces (restored by --revert-db).
V10_ONLY_INDEXES = {
    "jobs_cluster_submittime": ("job", "cluster, submit_time"),
    "jobs_cluster_partition_submittime": ("job", "cluster, cluster_partition, submit_time"),
    "jobs_cluster_partition_jobstate_submittime": ("job", "cluster, cluster_partition, job_state, submit_time"),
    "jobs_cluster_jobstate_submittime": ("job", "cluster, job_state, submit_time"),
    "nodestates_state": ("node_state", "node_state"),
    "nodestates_health": ("node_state", "health_state"),
}
# Upstream's CHECK constraint spells this state with hyphens while every writer uses
# 'out_of_memory', so such jobs could never be stored; schema 11 here accepts both spellings.
_BAD_OOM = "'out-of-memory'"
_FIXED_OOM = "'out-of-memory', 'out_of_memory'"


def _ensure_version_table(conn: Connection) -> None:
    if is_sqlite(conn):
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS schema_migrations (version uint64, dirty bool)")
        conn.exec_driver_sql("CREATE UNIQUE INDEX IF NOT EXISTS version_unique ON schema_migrations (version)")
    else:
        conn.exec_driver_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL)"
        )


def read_version(conn: Connection) -> tuple[int | None, bool]:
    """Return (version, dirty); version is None for a database without a version record."""
    if not inspect(conn).has_table("schema_migrations"):
        return None, False
    row = conn.execute(text("SELECT version, dirty FROM schema_migrations LIMIT 1")).first()
    if row is None:
        return None, False
    return int(row[0]), bool(row[1])


def _write_version(conn: Connection, version: int, dirty: bool) -> None:
    _ensure_version_table(conn)
    conn.execute(text("DELETE FROM schema_migrations"))
    conn.execute(text("INSERT INTO schema_migrations (version, dirty) VALUES (:v, :d)"), {"v": version, "d": dirty})


def _has_user_tables(conn: Connection) -> bool:
    names = set(inspect(conn).get_table_names()) - {"schema_migrations", "sqlite_stat1"}
    return bool(names)


def check_version(engine: Engine) -> int:
    """Refuse a database this program cannot use, naming the flag that fixes it."""
    with engine.connect() as conn:
        version, dirty = read_version(conn)
        has_tables = _has_user_tables(conn)
    if dirty:
        raise DatabaseVersionError(
            f"database is dirty at schema version {version} (an earlier migration failed half-way): "
            f"repair it, then run with --force-db to mark it as version {SCHEMA_VERSION}"
        )
    if version is None:
        if has_tables:
            raise DatabaseVersionError(
                "database has tables but no schema version record: run with --force-db if it is "
                f"known to be at version {SCHEMA_VERSION}"
            )
        raise DatabaseVersionError("database is empty: run with --migrate-db (or init-db) to create the schema")
    if version < SCHEMA_VERSION:
        raise DatabaseVersionError(
            f"database schema version {version} is outdated, this program needs {SCHEMA_VERSION}: "
            "run with --migrate-db (back it up first)"
        )
    if version > SCHEMA_VERSION:
        raise DatabaseVersionError(
            f"database schema version {version} is newer than this program's {SCHEMA_VERSION}: "
            "run with --revert-db using the newer program, or upgrade this one"
        )
    return version


def create_all(conn: Connection) -> None:
    """Create every table with its indexes."""
    if is_sqlite(conn):
        metadata.create_all(conn)
        return
    # MySQL/MariaDB: one CREATE TABLE with inline INDEX clauses per table; each separate DDL
    # statement costs a data-dictionary sync, and the job table alone has 54 indexes.
    from sqlalchemy.schema import CreateTable

    for table in metadata.sorted_tables:
        ddl = str(CreateTable(table).compile(dialect=conn.dialect)).rstrip()
        ddl = ddl[: ddl.rindex(")")].rstrip()  # reopen the column list to append the indexes
        parts = []
        for index in sorted(table.indexes, key=lambda ix: ix.name or ""):
            cols = ", ".join(_index_part(expr, conn.dialect) for expr in index.expressions)
            parts.append(f"INDEX {index.name} ({cols})")
        conn.exec_driver_sql(ddl + "".join(f",\n\t{p}" for p in parts) + "\n)")


def _create_missing_indexes(conn: Connection) -> None:
    insp = inspect(conn)
    for table in metadata.sorted_tables:
        existing = {ix["name"] for ix in insp.get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in existing:
                index.create(conn)


def _fix_oom_check_sqlite(conn: Connection) -> None:
    rows = conn.exec_driver_sql(
        "SELECT name FROM sqlite_master WHERE type='table' AND name IN ('job','job_cache') AND sql LIKE ?",
        (f"%{_BAD_OOM}%",),
    ).fetchall()
    rows = [r for r in rows if "'out_of_memory'" not in conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE name=?", (r[0],)).scalar_one()]
    if not rows:
        return
    # Documented SQLite procedure for changing a CHECK constraint without rebuilding the table:
    # every existing row already satisfies the widened constraint.
    schema_version = conn.exec_driver_sql("PRAGMA schema_version").scalar_one()
    conn.exec_driver_sql("PRAGMA writable_schema=ON")
    for (name,) in rows:
        conn.exec_driver_sql(
            "UPDATE sqlite_master SET sql = replace(sql, ?, ?) WHERE type='table' AND name=?",
            (_BAD_OOM, _FIXED_OOM, name),
        )
    conn.exec_driver_sql(f"PRAGMA schema_version={schema_version + 1}")
    conn.exec_driver_sql("PRAGMA writable_schema=OFF")


def _migrate_10_to_11(conn: Connection) -> None:
    insp = inspect(conn)
    for name, (table, _cols) in V10_ONLY_INDEXES.items():
        if name in {ix["name"] for ix in insp.get_indexes(table)}:
            conn.exec_driver_sql(f"DROP INDEX {name}" if is_sqlite(conn) else f"DROP INDEX {name} ON {table}")
    if "health_metrics" not in {c["name"] for c in insp.get_columns("node_state")}:
        conn.exec_driver_sql("ALTER TABLE node_state ADD COLUMN health_metrics TEXT")
    if is_sqlite(conn):
        _fix_oom_check_sqlite(conn)
    _create_missing_indexes(conn)


def _index_part(expr: str | ColumnElement[Any], dialect: Dialect) -> str:
    """One expression of an index as DDL: a column by its name, anything else (``text(...)``) compiled."""
    if isinstance(expr, str):
        return expr
    if isinstance(expr, Column):
        return expr.name
    return str(expr.compile(dialect=dialect))


def _revert_11_to_10(conn: Connection) -> None:
    insp = inspect(conn)
    from cc_backend.db.tables import job_table, node_state_table

    for table in (job_table, node_state_table):
        existing = {ix["name"] for ix in insp.get_indexes(table.name)}
        for index in table.indexes:
            if index.name in existing and index.name not in ("nodestates_nodeid_state", "nodestates_nodeid_health"):
                index.drop(conn)
    for name, (table_name, cols) in V10_ONLY_INDEXES.items():
        conn.exec_driver_sql(f"CREATE INDEX {name} ON {table_name} ({cols})")
    if "health_metrics" in {c["name"] for c in inspect(conn).get_columns("node_state")}:
        conn.exec_driver_sql("ALTER TABLE node_state DROP COLUMN health_metrics")


def migrate(engine: Engine) -> tuple[int | None, int]:
    """Bring the database to the current schema; returns (version before, version after)."""
    with engine.begin() as conn:
        version, dirty = read_version(conn)
        if dirty:
            raise DatabaseVersionError(
                f"database is dirty at schema version {version}: repair it, then run --force-db"
            )
        if version == SCHEMA_VERSION:
            return version, version
        if version is None:
            if _has_user_tables(conn):
                raise DatabaseVersionError(
                    "database has tables but no schema version record; refusing to guess its version "
                    f"(run --force-db if it is known to be at version {SCHEMA_VERSION})"
                )
            create_all(conn)
            _write_version(conn, SCHEMA_VERSION, False)
            log.info("created database schema version %d", SCHEMA_VERSION)
            return None, SCHEMA_VERSION
        if version > SCHEMA_VERSION:
            raise DatabaseVersionError(
                f"database schema version {version} is newer than this program's {SCHEMA_VERSION}"
            )
        if version < 10:
            raise DatabaseVersionError(
                f"database schema version {version} is older than 10: migrate it with upstream "
                "cc-backend v1.4 or later (`cc-backend -migrate-db`) first, then run --migrate-db here"
            )
        _write_version(conn, SCHEMA_VERSION, True)
    # A failure below leaves the record dirty, exactly as golang-migrate does.
    with engine.begin() as conn:
        _migrate_10_to_11(conn)
        _write_version(conn, SCHEMA_VERSION, False)
    log.info("migrated database from schema version %s to %d", version, SCHEMA_VERSION)
    return version, SCHEMA_VERSION


def revert(engine: Engine) -> tuple[int, int]:
    """Go one schema version down (11 to 10), as upstream's -revert-db."""
    with engine.begin() as conn:
        version, dirty = read_version(conn)
        if version != SCHEMA_VERSION or dirty:
            raise DatabaseVersionError(
                f"--revert-db works on a clean database at version {SCHEMA_VERSION}, this one is at "
                f"{version}{' (dirty)' if dirty else ''}"
            )
        _write_version(conn, SCHEMA_VERSION - 1, True)
        _revert_11_to_10(conn)
        _write_version(conn, SCHEMA_VERSION - 1, False)
    return SCHEMA_VERSION, SCHEMA_VERSION - 1


def force(engine: Engine) -> None:
    """Mark the database as clean at the current version (upstream -force-db)."""
    with engine.begin() as conn:
        _write_version(conn, SCHEMA_VERSION, False)


def optimize(engine: Engine) -> None:
    """Reclaim space and refresh the planner's statistics (upstream -optimize-db)."""
    if is_sqlite(engine):
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql("VACUUM")
            conn.exec_driver_sql("ANALYZE")
    else:
        with engine.begin() as conn:
            for table in metadata.sorted_tables:
                conn.exec_driver_sql(f"OPTIMIZE TABLE {table.name}")


def ensure_schema(engine: Engine) -> int:
    """Create the schema in an empty database; otherwise require the current version (never migrates)."""
    with engine.connect() as conn:
        version, _ = read_version(conn)
        empty = version is None and not _has_user_tables(conn)
    if empty:
        migrate(engine)
    return check_version(engine)
