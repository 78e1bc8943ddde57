"""The statements one start_job and one stop_job send to MariaDB, read from the server's general log.

Each statement is a network round trip of the pure-Python driver; on the start/stop path they cost
more than the SQL itself. Needs the real MariaDB on 127.0.0.1:3306 (root, no password) and turns its
general log on for the two calls only. Usage:

    .venv/bin/python bench/mysql_round_trips.py
"""

from __future__ import annotations

import json
import tempfile
import uuid
from pathlib import Path

import pymysql
from rest_start_stop import CLUSTER

from cc_backend.archive.fs import FileArchive
from cc_backend.db.engine import make_engine
from cc_backend.db.migrate import migrate
from cc_backend.jobs import store


def logged(admin: pymysql.cursors.Cursor, action) -> list[tuple[str, str]]:
    """(command, statement) of everything ``action`` sends, in order."""
    admin.execute("SET GLOBAL log_output = 'TABLE'")
    admin.execute("TRUNCATE mysql.general_log")
    admin.execute("SET GLOBAL general_log = 1")
    try:
        action()
    finally:
        admin.execute("SET GLOBAL general_log = 0")
    admin.execute("SELECT command_type, CAST(argument AS CHAR) FROM mysql.general_log "
                  "WHERE thread_id <> CONNECTION_ID() ORDER BY event_time")
    return [(command, statement) for command, statement in admin.fetchall()
            if not statement.startswith("SET GLOBAL general_log")]


def main() -> None:
    admin_conn = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True)
    admin = admin_conn.cursor()
    name = f"ccrt_{uuid.uuid4().hex[:10]}"
    admin.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    engine = make_engine(f"mysql+pymysql://root@127.0.0.1:3306/{name}")
    try:
        migrate(engine)
        root = Path(tempfile.mkdtemp(prefix="ccrt-"))
        (root / "version.txt").write_text("3\n")
        (root / CLUSTER["name"]).mkdir()
        (root / CLUSTER["name"] / "cluster.json").write_text(json.dumps(CLUSTER))
        registry = FileArchive(root).registry()
        job = {"jobId": 1, "user": "u", "project": "p", "cluster": CLUSTER["name"], "numNodes": 1,
               "resources": [{"hostname": "host0001"}], "startTime": 1_700_000_000, "walltime": 100}
        store.start_job(engine, registry, job)  # warms the pool: connections are made once, not per request
        job["jobId"] = 2
        stop = {"jobId": 2, "cluster": CLUSTER["name"], "startTime": 1_700_000_000, "stopTime": 1_700_000_100,
                "jobState": "completed"}
        for label, action in (("start_job", lambda: store.start_job(engine, registry, job)),
                              ("stop_job", lambda: store.stop_job(engine, stop))):
            statements = logged(admin, action)
            print(f"{label}: {len(statements)} statements (each a round trip)")
            for command, statement in statements:
                print(f"    {command:8s} {statement[:100]}")
    finally:
        engine.dispose()
        admin.execute(f"DROP DATABASE {name}")
        admin_conn.close()


if __name__ == "__main__":
    main()
