"""Shared fixtures: peer data copies, fresh SQLite and MariaDB databases, sites, servers and tokens.

Helpers that are not fixtures (the command line, server wrappers, config writers) are in ``support/``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("CC_BCRYPT_ROUNDS", "4")  # before cc_backend.auth.users is imported: the in-process CLI uses it

from peerdata import PEER  # noqa: E402
from support.cli import cli  # noqa: E402 - after the environment above
from support.db import copy_database, drop_mysql_database, fresh_mysql_database, module_database  # noqa: E402
from support.graphql import graphql_site  # noqa: E402, F401 - a fixture of the GraphQL test modules
from support.server import InProcess, Server  # noqa: E402
from support.site import configure, main_section, token, write_site  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
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


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def empty_db_url(request, tmp_path) -> str:
    """URL of a fresh, empty database: SQLite file, or a new database on the real MariaDB."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'job.db'}"
        return
    server = request.getfixturevalue("mysql_server")
    name, url = fresh_mysql_database(server)
    try:
        yield url
    finally:
        drop_mysql_database(name)


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
    return write_site(tmp_path, main_section(empty_db_url), peer_archive)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def shared_site(request, tmp_path_factory) -> Path:
    """A site like ``site`` after init-db, shared by the tests of one module that only read it.

    SQLite only: ``@SHARED_SQLITE_ONLY`` (support/db.py).
    """
    from peerdata import copy_archive

    folder = tmp_path_factory.mktemp(f"shared-{request.param}")
    with module_database(request, folder) as db_url:
        write_site(folder, main_section(db_url), copy_archive(folder, "job-archive"))
        r = cli(folder, "-init-db")
        assert r.returncode == 0, r.stderr
        yield folder


@pytest.fixture(scope="module")
def shared_app(shared_site) -> InProcess:
    """The app of ``shared_site`` in process."""
    app = InProcess(shared_site)
    yield app
    app.stop()


def _init_db_and_configure(site: Path, main: dict) -> None:
    """What a server start needs first: init-db, then the test's main.* settings."""
    r = cli(site, "-init-db")
    assert r.returncode == 0, r.stderr
    if main:
        configure(site, **main)


@pytest.fixture
def start(site):
    """Start a real server process on ``site`` (after init-db) with extra main.* settings; stopped at teardown."""
    servers: list[Server] = []

    def _start(*, https: bool = False, dev: bool = False, verify: object = True, env: dict | None = None,
               **main: object) -> Server:
        _init_db_and_configure(site, main)
        server = Server(site, https=https, dev=dev, env=env)
        servers.append(server)
        server.wait_ready(verify=verify)
        return server

    yield _start
    for server in servers:
        server.stop()


@pytest.fixture
def app_start(site, monkeypatch):
    """Like ``start``, but the app runs in this process (``InProcess``: ``get``/``post``/... by path).

    The test runs in the site's folder, as a server does (relative paths such as var/notice.txt).
    """
    apps: list[InProcess] = []
    monkeypatch.chdir(site)

    def _start(*, dev: bool = False, **main: object) -> InProcess:
        _init_db_and_configure(site, main)
        app = InProcess(site, dev=dev)
        apps.append(app)
        return app

    yield _start
    for app in apps:
        app.stop()


def _api_users(site: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Users adapter (api) and boss (admin, api) with tokens from the CLI: the headers of each."""
    for spec in ("adapter:api:pw", "boss:admin,api:pw"):
        r = cli(site, "-add-user", spec)
        assert r.returncode == 0, r.stderr
    headers = {name: {"X-AUTH-TOKEN": cli(site, "-jwt", name).stdout.strip(), "accept": "application/ld+json"}
               for name in ("adapter", "boss")}
    return headers["adapter"], headers["boss"]


@pytest.fixture
def api(app_start, site) -> tuple[InProcess, dict[str, str], dict[str, str]]:
    """(the app in process, headers of an api-only token, headers of an admin+api token)."""
    app = app_start()
    return (app, *_api_users(site))


@pytest.fixture
def api_server(start, site) -> tuple[str, dict[str, str], dict[str, str]]:
    """(base URL of a real server, headers of an api-only token, headers of an admin+api token)."""
    server = start()
    return (server.url, *_api_users(site))


@pytest.fixture
def tokens(site):
    """Signed tokens for the site's key: tokens(roles, sub=..., key=..., now=...)."""
    return lambda roles, sub="apiuser", **kw: token(site, roles, sub, **kw)


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


# ---------------------------------------------------------------------------------------- browser


@pytest.fixture(scope="session")
def demo_site(tmp_path_factory):
    """A demo site with 150 generated jobs, one account per role, served by a real process (one per worker)."""
    from support.browser import build_demo_site

    site = build_demo_site(tmp_path_factory.mktemp("web-demo"))
    yield site
    site.server.stop()


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, driven by Playwright (no browser download).

    One per module, not per session: Playwright's sync API keeps an asyncio loop running in the main
    thread while it is open, and the terminal UI's tests (Textual pilots, asyncio.run) in a later module
    of the same worker need none running.
    """
    from support.browser import CHROMIUM, require_chromium

    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh browser context (no cookies) at 1280x800; fails the test on console errors or failed requests."""
    from support.browser import PageProblems

    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB", timezone_id="Europe/Berlin")
    tab = context.new_page()
    tab.set_default_timeout(10_000)
    tab.problems = PageProblems(tab)
    yield tab
    problems = tab.problems.errors
    context.close()
    assert not problems, "the page reported problems:\n" + "\n".join(problems)


@pytest.fixture(scope="module", autouse=True)
def _environment_restored_after_each_module():
    """A module's changes to os.environ end with it: opening a site in process (the terminal UI's local
    source reads the site's .env, as every command does) must not hand its keys to later servers."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
