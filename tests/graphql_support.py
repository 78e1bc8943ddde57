"""A running server over known data for the GraphQL tests, and a small client for ``POST /query``.

``graphql_site`` (module scope, SQLite and MariaDB; JWTs with validate-user, so roles and projects come
from the database as for a session): the upstream peer job.db (544 jobs, migrated to
schema 11) plus the peer archive (clusters alex, emmy, fritz), users with every role, and a server.
Tests that change data use their own server (``test_server.start``) or undo their changes.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import _drop_mysql_database, _fresh_mysql_database, copy_database
from peerdata import JOB_DB, copy_archive
from test_server import Server, cli

#: Users of the GraphQL site: name -> roles (the manager manages project caph: 65 alex jobs).
USERS = {
    "gqladmin": ["admin", "api"],
    "gqlsupport": ["support"],
    "gqlmanager": ["manager"],
    "gqluser": ["user"],
}


@dataclass
class GraphQLSite:
    """A running server, its site folder, and a JWT per user."""

    server: Server
    site: Path
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    def post(self, query: str, variables: dict | None = None, *, user: str = "gqladmin",
             headers: dict | None = None) -> httpx.Response:
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = variables
        hdrs = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        hdrs.update(headers or {})
        return httpx.post(self.url + "/query", json=body, headers=hdrs, timeout=60)

    def query(self, query: str, variables: dict | None = None, *, user: str = "gqladmin") -> dict:
        """The ``data`` of a query that must succeed (status 200, no errors)."""
        r = self.post(query, variables, user=user)
        assert r.status_code == 200, r.text
        body = r.json()
        assert not body.get("errors"), body["errors"][:3]
        return body["data"]

    def errors(self, query: str, variables: dict | None = None, *, user: str = "gqladmin") -> list[dict]:
        """The ``errors`` of a query that must fail (status 200 or 422)."""
        r = self.post(query, variables, user=user)
        assert r.status_code in (200, 422), r.text
        errors = r.json().get("errors")
        assert errors, r.text
        return errors


def write_site(folder: Path, main: dict, archive: Path) -> None:
    """config.json (JWTs with validate-user) and .env with a fresh key pair for a GraphQL test site."""
    from cc_backend.auth.keys import generate_keypair

    config = {"main": main, "archive": {"kind": "file", "path": str(archive)},
              "auth": {"jwts": {"max-age": "2h", "validate-user": True}}}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    public, private = generate_keypair()
    (folder / ".env").write_text(f'JWT_PUBLIC_KEY="{public}"\nJWT_PRIVATE_KEY="{private}"\nSESSION_KEY="abc"\n')


def add_users(site: Path, users: dict[str, list[str]]) -> dict[str, str]:
    """Add local users (password "pw") with the CLI, as an admin would; returns a JWT per user."""
    for name, roles in users.items():
        r = cli(site, "--add-user", f"{name}:{','.join(roles)}:pw")
        assert r.returncode == 0, r.stderr
    return {name: cli(site, "--jwt", name).stdout.strip() for name in users}


def _make_site(folder: Path, backend: str, mysql_url: str | None) -> tuple[Path, str | None]:
    from cc_backend.db.engine import make_engine
    from cc_backend.db.migrate import migrate

    archive = copy_archive(folder, "job-archive")
    db_file = folder / "job.db"
    shutil.copyfile(JOB_DB, db_file)
    sqlite_url = f"sqlite:///{db_file}"
    engine = make_engine(sqlite_url)
    migrate(engine)
    engine.dispose()
    mysql_name = None
    if backend == "sqlite":
        main = {"addr": "127.0.0.1:0", "db": str(db_file)}
    else:
        mysql_name, url = _fresh_mysql_database(mysql_url)
        engine = make_engine(url)
        migrate(engine)
        engine.dispose()
        copy_database(sqlite_url, url)
        main = {"addr": "127.0.0.1:0", "db-driver": "mysql", "db": url}
    write_site(folder, main, archive)
    return folder, mysql_name


@pytest.fixture(scope="module", params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def graphql_site(request, tmp_path_factory) -> GraphQLSite:
    folder = tmp_path_factory.mktemp(f"graphql-{request.param}")
    mysql_url = request.getfixturevalue("mysql_server") if request.param == "mysql" else None
    site, mysql_name = _make_site(folder, request.param, mysql_url)
    try:
        tokens = add_users(site, USERS)
        r = cli(site, "user", "add-project", "gqlmanager", "caph")
        assert r.returncode == 0, r.stderr
        server = Server(site)
        server.wait_ready()
        try:
            yield GraphQLSite(server=server, site=site, tokens=tokens)
        finally:
            server.stop()
    finally:
        if mysql_name:
            _drop_mysql_database(mysql_name)
