"""Snapshots (SVG) of the terminal UI's main screens on fixed data: the peer job.db, its archive, a fixed clock.

The data: upstream's peer job.db (544 jobs of alex and fritz, fixed times) migrated to our schema, plus the
archive's emmy job 1404397 (32 nodes, with metric data) imported for the job detail's plots. Paths in
config.json are relative and the tests run in the site's folder, so the header ("local: job.db") is the
same on every machine; TZ is UTC and the app's clock fixed, so times and durations are too.

Update after an intended change of the look (then look at the SVGs in tests/__snapshots__/):

    .venv/bin/python -m pytest tests/test_tui_snapshots.py --snapshot-update

The user guide's screenshots (docs/tui/*.svg) come from a demo site instead (fixed seed, today's date: every
job state, footprints, energy, tags), written by the last test when ``CC_TUI_SCREENSHOTS`` names a folder:

    CC_TUI_SCREENSHOTS=docs/tui .venv/bin/python -m pytest tests/test_tui_snapshots.py -k user_guide
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from peerdata import ARCHIVE, copy_archive
from support.db import migrated_peer_sqlite

#: An hour after the last peer job started (as tests/test_search.py): the clock of every snapshot.
NOW = 1675957496 + 3600
SIZE = (100, 30)
EMMY_JOB = ARCHIVE / "emmy" / "1404" / "397" / "1609300556"
#: Where the user guide's screenshots go when set (relative to the repository).
SCREENSHOTS = os.environ.get("CC_TUI_SCREENSHOTS")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def peer_site(tmp_path_factory) -> Path:
    """config.json (relative paths), job.db (peer jobs + the emmy job) and archive in one folder."""
    from cc_backend.archive.fs import FileArchive
    from cc_backend.importer import import_files

    folder = tmp_path_factory.mktemp("tui-snapshots")
    engine, _ = migrated_peer_sqlite(folder)
    archive = copy_archive(folder, "archive")
    shutil.rmtree(archive / "emmy" / "1404")  # imported below: into the database and back into the archive
    import_files(engine, FileArchive(str(archive)), [(str(EMMY_JOB / "meta.json"), str(EMMY_JOB / "data.json.gz"))])
    engine.dispose()
    (folder / "config.json").write_text(json.dumps({
        "main": {"addr": "127.0.0.1:0", "db": "job.db"}, "archive": {"kind": "file", "path": "archive"}}))
    return folder


@pytest.fixture
def new_app(peer_site, monkeypatch) -> Callable:
    """Makes the app on the peer site as ``cc-backend tui`` does (local source, connected), clock fixed at NOW."""
    from cc_backend.runtime import Runtime
    from cc_backend.tui.app import CockpitApp
    from cc_backend.tui.local import LocalSource

    monkeypatch.chdir(peer_site)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    sources = []

    def make(filter_text: str = "") -> CockpitApp:
        source = LocalSource(Runtime("config.json", ".env"))
        source.connect()
        sources.append(source)
        return CockpitApp(source, filter_text=filter_text, clock=lambda: NOW)

    yield make
    for source in sources:
        source.close()
    monkeypatch.undo()
    time.tzset()


def emmy_db_id(peer_site: Path) -> int:
    import sqlite3

    with sqlite3.connect(peer_site / "job.db") as db:
        return db.execute("SELECT id FROM job WHERE job_id = 1404397").fetchone()[0]


async def settle(pilot) -> None:
    """Until no worker runs and the screen is redrawn: data loads in threads, some start further loads."""
    for _ in range(20):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        if not any(worker.is_running for worker in pilot.app.workers):
            break
    await pilot.pause()


def steps(*keys: str) -> Callable:
    """``run_before`` of snap_compare: wait for the first page, press ``keys`` (waiting after each), wait again."""

    async def run(pilot) -> None:
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)

    return run


def snapshot(snap_compare, new_app, run_before: Callable, filter_text: str = "") -> bool:
    return snap_compare(new_app(filter_text), terminal_size=SIZE, run_before=run_before)


def test_jobs_list(snap_compare, new_app):
    """The first page of the 545 jobs, newest first, with the status line and the footer's keys."""
    assert snapshot(snap_compare, new_app, steps())


def test_jobs_list_filtered_and_sorted(snap_compare, new_app):
    """``cluster:alex nodes:2..`` from the command line, sorted by duration (s), longest first."""
    assert snapshot(snap_compare, new_app, steps("s"), filter_text="cluster:alex nodes:2..")


def test_job_detail_opens_on_its_plot(snap_compare, new_app, peer_site):
    """Job 1404397 on emmy (32 nodes): its header above its first metric as a min/median/max band, not 32 lines."""
    db_id = emmy_db_id(peer_site)

    async def run_before(pilot) -> None:
        await settle(pilot)
        pilot.app.show_job(db_id)
        await settle(pilot)

    assert snapshot(snap_compare, new_app, run_before)


def test_job_detail_footprint_tab(snap_compare, new_app, peer_site):
    """The second tab of the same job: footprint bars against the subcluster's thresholds, energy, tags."""
    db_id = emmy_db_id(peer_site)

    async def run_before(pilot) -> None:
        await settle(pilot)
        pilot.app.show_job(db_id)
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)

    assert snapshot(snap_compare, new_app, run_before)


def test_users(snap_compare, new_app):
    """Users with their job statistics (u)."""
    assert snapshot(snap_compare, new_app, steps("u"))


def test_help(snap_compare, new_app):
    """The help screen (?) over the job list: its keys and the filter syntax."""
    assert snapshot(snap_compare, new_app, steps("question_mark"))


# --------------------------------------------------------------------------------- the user guide's screenshots

#: The demo's clock for the guide: today's midnight (UTC), the end of its 30-day window of start times. Not a
#: fixed date: the users' and projects' totals count running jobs up to the real time, as the server does.
DEMO_NOW = int(time.time()) // 86400 * 86400


def demo_site(folder: Path) -> tuple[Path, int]:
    """A demo site (150 jobs, seed 1) with relative paths, and the database id of a tagged multi-node job."""
    import sqlite3

    from support.cli import cli

    r = cli(folder, "demo", "generate", str(folder / "archive"), "--jobs", "150", "--now", str(DEMO_NOW))
    assert r.returncode == 0, r.stderr
    (folder / "config.json").write_text(json.dumps({
        "main": {"addr": "127.0.0.1:0", "db": "job.db"}, "archive": {"kind": "file", "path": "archive"}}))
    r = cli(folder, "init-db")
    assert r.returncode == 0, r.stderr
    r = cli(folder, "demo", "start-jobs", "--jobs", "20", "--now", str(DEMO_NOW))
    assert r.returncode == 0, r.stderr
    with sqlite3.connect(folder / "job.db") as db:
        (db_id,) = db.execute(
            "SELECT id FROM job WHERE job_state = 'completed' AND cluster = 'fritz' AND num_nodes BETWEEN 2 AND 8 "
            "AND energy > 0 ORDER BY (SELECT count(*) FROM jobtag WHERE jobtag.job_id = job.id) DESC, "
            "start_time DESC LIMIT 1").fetchone()
    return folder, db_id


@pytest.mark.skipif(not SCREENSHOTS, reason="CC_TUI_SCREENSHOTS=docs/tui writes the user guide's screenshots")
def test_user_guide_screenshots(tmp_path, monkeypatch):
    """The screens docs/tui.md shows, on the demo site, as SVGs exported by Textual."""
    import sqlite3

    from cc_backend.runtime import Runtime
    from cc_backend.tui.app import CockpitApp
    from cc_backend.tui.local import LocalSource

    folder, db_id = demo_site(tmp_path)
    monkeypatch.chdir(folder)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    target = Path(SCREENSHOTS) if Path(SCREENSHOTS).is_absolute() else REPO / SCREENSHOTS
    target.mkdir(parents=True, exist_ok=True)

    async def open_job(pilot) -> None:
        pilot.app.show_job(db_id)
        await settle(pilot)

    async def job_details(pilot) -> None:
        await open_job(pilot)
        await pilot.press("2")
        await settle(pilot)

    async def press(pilot, *keys: str) -> None:
        for key in keys:
            await pilot.press(key)
            await settle(pilot)

    screens: dict[str, Callable] = {
        "jobs": lambda pilot: press(pilot),
        "job": open_job,
        "job-details": job_details,
        "users": lambda pilot: press(pilot, "u"),
        "clusters": lambda pilot: press(pilot, "c"),
        "help": lambda pilot: press(pilot, "question_mark"),
    }
    texts: dict[str, str] = {}

    async def scenario(name: str, run: Callable) -> None:
        source = LocalSource(Runtime("config.json", ".env"))
        source.connect()
        app = CockpitApp(source, clock=lambda: DEMO_NOW)
        try:
            async with app.run_test(size=SIZE) as pilot:
                await settle(pilot)
                await run(pilot)
                texts[name] = app.export_screenshot()
                (target / f"{name}.svg").write_text(texts[name], encoding="utf-8")
        finally:
            source.close()

    try:
        for name, run in screens.items():
            asyncio.run(scenario(name, run))
    finally:
        time.tzset()
    with sqlite3.connect(folder / "job.db") as db:
        job_id, user = db.execute("SELECT job_id, hpc_user FROM job WHERE id = ?", (db_id,)).fetchone()
    assert "running" in texts["jobs"] and "completed" in texts["jobs"]
    assert str(job_id) in texts["job"] and sum("\u2801" <= ch <= "\u28ff" for ch in texts["job"]) > 50  # the plot
    assert "Footprint" in texts["job-details"] and "Energy" in texts["job-details"]
    assert user in texts["users"] and "fritz" in texts["clusters"] and "Keys" in texts["help"]
