"""Database engines for SQLite (WAL, foreign keys, busy timeout) and MariaDB/MySQL (pymysql)."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, CursorResult, make_url

BUSY_TIMEOUT_MS = 60_000
PAGE_SIZE = 4096


@dataclass(frozen=True)
class Tuning:
    """Connection settings (``main.db-config``; upstream's defaults)."""

    cache_size_mb: int = 2048
    soft_heap_limit_mb: int = 16384
    max_open_connections: int = 4
    max_idle_connections: int = 4
    max_idle_time_minutes: int = 10
    busy_timeout_ms: int = BUSY_TIMEOUT_MS


def _sqlite_pragmas(tuning: Tuning, dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # Takes effect only when the file is new (an existing database keeps its page size, and WAL mode
    # freezes it). 16 KiB pages made init-db's index rebuild ~15% faster, but every job insert dirties
    # ~55 index pages, so each start_job/stop_job commit wrote 4x the bytes: 4 KiB (SQLite's default)
    # gave ~25% more start/stop requests per second (bench/rest_start_stop.py) and the live server wins.
    cur.execute(f"PRAGMA page_size={PAGE_SIZE}")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={int(tuning.busy_timeout_ms)}")
    cur.execute("PRAGMA temp_store=MEMORY")
    # An upper bound, not an allocation: SQLite grows the cache only as pages are read.
    cur.execute(f"PRAGMA cache_size=-{int(tuning.cache_size_mb) * 1024}")
    cur.execute(f"PRAGMA soft_heap_limit={int(tuning.soft_heap_limit_mb) * 1024 * 1024}")
    cur.close()


def make_engine(url: str, *, tuning: Tuning | None = None, echo: bool = False) -> Engine:
    """Create an engine for a SQLAlchemy URL (``sqlite:///path`` or ``mysql+pymysql://...``)."""
    tuning = tuning or Tuning()
    parsed = make_url(url)
    pool = {
        "pool_size": max(1, tuning.max_idle_connections),
        "max_overflow": max(0, tuning.max_open_connections - tuning.max_idle_connections),
        "pool_recycle": max(60, tuning.max_idle_time_minutes * 60),
    }
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            pool = {}
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"timeout": tuning.busy_timeout_ms / 1000, "check_same_thread": False},
            **pool,
        )
        event.listen(engine, "connect", partial(_sqlite_pragmas, tuning))
        return engine
    if parsed.get_backend_name() in ("mysql", "mariadb") and "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    # READ COMMITTED once per connection instead of per write transaction (a SET before and after
    # each one); start_job's duplicate check relies on it (see jobs.transaction.write_transaction).
    # Each statement gets a fresh snapshot, which is also what the Go driver's readers see.
    engine = create_engine(parsed, echo=echo, pool_pre_ping=True, isolation_level="READ COMMITTED",
                           pool_reset_on_return=None, **pool)
    event.listen(engine, "reset", _rollback_if_in_transaction)
    return engine


def _rollback_if_in_transaction(dbapi_connection: Any, connection_record: Any, reset_state: Any) -> None:
    """Pool reset for pymysql: a ROLLBACK round trip only when the server says a transaction is open.

    SQLAlchemy's default sends ROLLBACK on every check-in, also after a COMMIT; on the start_job/
    stop_job path that was one round trip in five.
    """
    from pymysql.constants.SERVER_STATUS import SERVER_STATUS_IN_TRANS

    if getattr(dbapi_connection, "server_status", SERVER_STATUS_IN_TRANS) & SERVER_STATUS_IN_TRANS:
        dbapi_connection.rollback()


def connection_for(bind: Engine | Connection):
    """A connection for the duration of one call: a new one from an engine, or the caller's own."""
    return bind.connect() if isinstance(bind, Engine) else nullcontext(bind)


def is_sqlite(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "sqlite"


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction: commit on success, roll back on error."""
    with engine.begin() as conn:
        yield conn


_NAMED_PARAM = re.compile(r"(?<!:):([a-z_][a-z0-9_]*)")


def execute_hot(conn: Connection, sql: str, params: Any = ()) -> Any:
    """Run one of the few hot statements (start/stop, job lookup, tags) with the least overhead.

    Building statements with SQLAlchemy Core and running them through ``Connection.execute`` cost
    more than SQLite needs to execute them (bench/rest_start_stop.py). On SQLite the statement goes
    straight to the sqlite3 connection; on MySQL through ``exec_driver_sql``, so that SQLAlchemy
    keeps track of the transaction. Either result has ``fetchone``, ``fetchall``, ``lastrowid`` and
    ``rowcount``; :func:`rows_as_dicts` reads rows by column name.
    """
    if conn.dialect.name == "sqlite":
        return conn.connection.dbapi_connection.execute(sql, params)  # type: ignore[union-attr]
    return conn.exec_driver_sql(_pyformat(sql), params)


def rows_as_dicts(result: Any) -> list[dict[str, Any]]:
    """Every row of an :func:`execute_hot` result as a dict by column name."""
    description = getattr(result, "description", None)
    names = [d[0] for d in description] if description is not None else list(result.keys())
    return [dict(zip(names, row)) for row in result.fetchall()]


@functools.lru_cache(maxsize=512)
def _pyformat(sql: str) -> str:
    return _NAMED_PARAM.sub(r"%(\1)s", sql.replace("%", "%%"))


def inserted_id(result: CursorResult[Any]) -> int:
    """The integer primary key of the one row an INSERT added."""
    key = result.inserted_primary_key
    if key is None:  # SQLAlchemy returns None only for statements that are not a single-row INSERT
        raise RuntimeError("the statement inserted no row")
    return int(key[0])
