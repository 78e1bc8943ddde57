"""The browser tests' world: a demo site served by a real ``cc-backend serve``, and Debian's Chromium driven by Playwright.

Playwright only drives the system browser (``/usr/bin/chromium``, installed by run-tests.sh); it
downloads none. Every page a test opens collects console errors and failed requests, and the
``page`` fixture fails the test when there were any.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from support.cli import cli
from support.server import Server
from support.site import main_section, write_site

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: Screenshots of the main pages; ``CC_SCREENSHOTS=docs/web-ui`` refreshes the ones the user guide shows.
SCREENSHOTS = Path(os.environ.get("CC_SCREENSHOTS") or REPO / "build" / "screenshots")
#: The demo's clock: today's midnight (UTC), so running jobs have realistic durations and a day's runs agree.
DEMO_NOW = int(time.time()) // 86400 * 86400
PASSWORDS = {"admin": "Admin-pw-1", "support": "Support-pw-1", "manager": "Manager-pw-1", "user": "User-pw-1",
             "other": "Other-pw-1"}


@dataclass
class Account:
    username: str
    password: str
    roles: list[str]
    projects: list[str] = field(default_factory=list)


@dataclass
class DemoSite:
    """A generated archive and database, a running server, and one account per role."""

    folder: Path
    server: Server
    accounts: dict[str, Account]

    @property
    def url(self) -> str:
        return self.server.url

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.folder / "job.db")


def chromium_available() -> bool:
    return Path(CHROMIUM).is_file()


def start_jobs_like_their_newest(folder: Path, users: list[str], running_for: int = 3600) -> None:
    """Per user, a running job shaped like their newest one, started through the core as a batch system would,
    and a global tag on that newest job (the demo's random tags may leave a user without any)."""
    import orjson

    from cc_backend.jobs.store import start_job
    from cc_backend.jobs.tags import tag_job
    from cc_backend.runtime import Runtime

    runtime = Runtime(str(folder / "config.json"), str(folder / ".env"))
    try:
        with sqlite3.connect(folder / "job.db") as conn:
            conn.row_factory = sqlite3.Row
            for k, user in enumerate(users):
                row = conn.execute("SELECT * FROM job WHERE hpc_user = ? ORDER BY start_time DESC LIMIT 1",
                                   (user,)).fetchone()
                started = start_job(runtime.engine, runtime.archive.registry(), {
                    "jobId": 7_000_000 + k, "user": user, "project": row["project"], "cluster": row["cluster"],
                    "subCluster": row["subcluster"], "partition": row["cluster_partition"],
                    "numNodes": row["num_nodes"], "numHwthreads": row["num_hwthreads"], "numAcc": row["num_acc"],
                    "shared": row["shared"], "smt": row["smt"], "walltime": row["walltime"],
                    "startTime": DEMO_NOW - running_for, "resources": orjson.loads(row["resources"]),
                    "metaData": {"jobName": f"running-{user}"}})
                # and a global tag on their newest finished job, as support staff would set one
                tag_job(runtime.engine, runtime.archive, row["id"], [{"type": "review", "name": "check"}], viewer=None)
                assert started["jobState"] == "running"
    finally:
        runtime.close()


def build_demo_site(folder: Path, jobs: int = 150) -> DemoSite:
    """Generate ``jobs`` demo jobs, load them, add the accounts, start the server."""
    archive = folder / "archive"
    r = cli(folder, "demo", "generate", str(archive), "--jobs", str(jobs), "--now", str(DEMO_NOW))
    assert r.returncode == 0, r.stderr
    write_site(folder, main_section(f"sqlite:///{folder / 'job.db'}"), archive)
    r = cli(folder, "init-db")
    assert r.returncode == 0, r.stderr
    # The demo archive holds finished jobs only; running ones come from the batch system (here: the core).
    r = cli(folder, "demo", "start-jobs", "--jobs", "4", "--now", str(DEMO_NOW))
    assert r.returncode == 0, r.stderr
    with sqlite3.connect(folder / "job.db") as conn:
        # The user with the most jobs, and a project of another user, so each role has something to see.
        user, project = conn.execute(
            "SELECT hpc_user, project FROM job GROUP BY hpc_user ORDER BY count(*) DESC LIMIT 1").fetchone()
        other = conn.execute("SELECT hpc_user FROM job WHERE hpc_user != ? GROUP BY hpc_user "
                             "ORDER BY count(*) DESC LIMIT 1", (user,)).fetchone()[0]
        managed = conn.execute("SELECT project FROM job WHERE project != ? GROUP BY project "
                               "ORDER BY count(*) DESC LIMIT 1", (project,)).fetchone()[0]
    start_jobs_like_their_newest(folder, [user, other])
    accounts = {
        "admin": Account("webadmin", PASSWORDS["admin"], ["admin", "api"]),
        "support": Account("websupport", PASSWORDS["support"], ["support"]),
        "manager": Account("webmanager", PASSWORDS["manager"], ["manager"], [managed]),
        "user": Account(user, PASSWORDS["user"], ["user"]),
        "other": Account(other, PASSWORDS["other"], ["user"]),
    }
    for account in accounts.values():
        options = [arg for role in account.roles for arg in ("--role", role)]
        options += [arg for project in account.projects for arg in ("--project", project)]
        r = cli(folder, "user", "add", account.username, *options, "--password-stdin", input=account.password + "\n")
        assert r.returncode == 0, r.stderr
    server = Server(folder)
    server.wait_ready()
    return DemoSite(folder, server, accounts)


class PageProblems:
    """Console errors, uncaught exceptions and failed requests of one page."""

    def __init__(self, page: Any) -> None:
        self._errors: list[str] = []
        self._expected: list[str] = []
        page.on("console", lambda msg: self._errors.append(f"console.{msg.type}: {msg.text}")
                if msg.type == "error" else None)
        page.on("pageerror", lambda exc: self._errors.append(f"uncaught: {exc}"))
        page.on("requestfailed", self._request_failed)

    def _request_failed(self, request: Any) -> None:
        # A navigation cancels the old page's pending requests (the icon, a plot fetch): not the server's fault.
        if request.failure == "net::ERR_ABORTED":
            return
        self._errors.append(f"request failed: {request.url} {request.failure}")

    def expect(self, fragment: str) -> None:
        """A test that provokes an error (a 404 page, a refused form) says so; such errors are not failures."""
        self._expected.append(fragment)

    @property
    def errors(self) -> list[str]:
        return [e for e in self._errors if not any(fragment in e for fragment in self._expected)]


def login(page: Any, site: DemoSite, role: str, target: str = "/") -> None:
    """Log in through the form as the account of ``role`` and wait for ``target``."""
    account = site.accounts[role]
    page.goto(f"{site.url}/login?redirect={target}")
    page.fill("#username", account.username)
    page.fill("#password", account.password)
    with page.expect_navigation():
        page.click("button[type=submit]")


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


def canvas_is_drawn(page: Any, selector: str) -> bool:
    """Whether the first canvas under ``selector`` has pixels that differ from each other (not blank)."""
    return bool(page.eval_on_selector(selector + " canvas", """canvas => {
        const ctx = canvas.getContext('2d');
        const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
        for (let i = 4; i < data.length; i += 4) {
            if (data[i] !== data[0] || data[i + 1] !== data[1] || data[i + 2] !== data[2] || data[i + 3] !== data[3]) return true;
        }
        return false;
    }"""))


def wait_until(predicate: Any, timeout: float = 5.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def require_chromium() -> None:
    if chromium_available():
        return
    if os.environ.get("CI"):
        pytest.fail(f"Chromium is required in CI ({CHROMIUM}); run-tests.sh installs it with apt")
    pytest.skip(f"Chromium is not installed ({CHROMIUM}); run-tests.sh installs it with apt")
