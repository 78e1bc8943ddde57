"""A running server over known data for the GraphQL tests, and a small client for ``POST /query``.

``graphql_site`` (module scope, SQLite and MariaDB; JWTs with validate-user, so roles and projects come
from the database as for a session): the upstream peer job.db (544 jobs, migrated to
schema 11) plus the peer archive (clusters alex, emmy, fritz), users with every role, and a server.
Tests that change data use their own server (conftest's ``start``) or undo their changes.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from peerdata import JOB_DB, copy_archive

from support.cli import cli
from support.db import copy_database, module_database
from support.server import InProcess, Server
from support.site import main_section, write_site

#: Users of the GraphQL site: name -> roles (the manager manages project caph: 65 alex jobs).
USERS = {
    "gqladmin": ["admin", "api"],
    "gqlsupport": ["support"],
    "gqlmanager": ["manager"],
    "gqluser": ["user"],
}


@dataclass
class GraphQLSite:
    """A running server (or the app in process), its site folder, and a JWT per user."""

    server: Server | InProcess
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
        return self.server.post("/query", json=body, headers=hdrs, timeout=60)

    def query(self, query: str, variables: dict | None = None, *, user: str = "gqladmin") -> dict:
        """The ``data`` of a query that must succeed (status 200, no errors)."""
        r = self.post(query, variables, user=user)
        assert r.status_code == 200, r.text
        body = r.json()
        assert not body.get("errors"), body["errors"][:3]
        return body["data"]

    def errors(self, query: str, variables: dict | None = None, *, user: str = "gqladmin",
               status: int = 200) -> list[dict]:
        """The ``errors`` of a query that must fail with ``status``: 200 for errors while resolving, 422 for
        documents or variables refused before execution (parse, validation, coercion)."""
        r = self.post(query, variables, user=user)
        assert r.status_code == status, r.text
        errors = r.json().get("errors")
        assert errors, r.text
        return errors


def add_users(site: Path, users: dict[str, list[str]]) -> dict[str, str]:
    """Add local users (password "pw") with the CLI, as an admin would; returns a JWT per user."""
    for name, roles in users.items():
        r = cli(site, "--add-user", f"{name}:{','.join(roles)}:pw")
        assert r.returncode == 0, r.stderr
    return {name: cli(site, "--jwt", name).stdout.strip() for name in users}


def _load_peer_database(folder: Path, db_url: str) -> None:
    """The peer job.db migrated to schema 11 at ``folder/job.db``, and copied into ``db_url`` if that is MariaDB."""
    from cc_backend.db.engine import make_engine
    from cc_backend.db.migrate import migrate

    db_file = folder / "job.db"
    shutil.copyfile(JOB_DB, db_file)
    sqlite_url = f"sqlite:///{db_file}"
    for url in dict.fromkeys((sqlite_url, db_url)):
        engine = make_engine(url)
        migrate(engine)
        engine.dispose()
    if db_url != sqlite_url:
        copy_database(sqlite_url, db_url)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def graphql_site(request, tmp_path_factory) -> GraphQLSite:
    site = tmp_path_factory.mktemp(f"graphql-{request.param}")
    with module_database(request, site) as db_url:
        _load_peer_database(site, db_url)
        write_site(site, main_section(db_url), copy_archive(site, "job-archive"), validate_user=True)
        tokens = add_users(site, USERS)
        r = cli(site, "user", "add-project", "gqlmanager", "caph")
        assert r.returncode == 0, r.stderr
        server = Server(site)
        server.wait_ready()
        try:
            yield GraphQLSite(server=server, site=site, tokens=tokens)
        finally:
            server.stop()
