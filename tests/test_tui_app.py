"""The terminal UI's application, job list and command: pilot tests on a demo site read through the core."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys

import pytest
from support.browser import DEMO_NOW
from support.server import free_port
from support.site import token

from cc_backend.jobs.filter import parse_sort
from cc_backend.runtime import Runtime
from cc_backend.tui.app import CockpitApp
from cc_backend.tui.local import LocalSource
from cc_backend.tui.screens.jobs import COLUMNS, JobsScreen, columns_for_width

#: The demo's clock an hour after its "now": running jobs' durations are fixed numbers in the tests.
CLOCK = DEMO_NOW + 3600


@pytest.fixture(scope="module")
def source(demo_site):
    folder = demo_site.folder
    local = LocalSource(Runtime(str(folder / "config.json"), env_path=str(folder / ".env")))
    local.connect()
    yield local
    local.close()


@pytest.fixture(scope="module")
def db(demo_site):
    with sqlite3.connect(demo_site.folder / "job.db") as conn:
        yield conn


def run(source, scenario, *, size=(100, 30), filter_text="", clock=lambda: CLOCK):
    """Runs ``scenario(app, pilot)`` in a headless app; returns the app (for its state after exit)."""
    app = CockpitApp(source, filter_text=filter_text, clock=clock)

    async def main():
        async with app.run_test(size=size) as pilot:
            await settle(app, pilot)
            await scenario(app, pilot)

    asyncio.run(main())
    return app


async def settle(app, pilot):
    """Waits until loads in workers have finished and their results are on screen."""
    for _ in range(3):
        await pilot.pause()
        await app.workers.wait_for_complete()
    await pilot.pause()


def row_ids(screen: JobsScreen) -> list[int]:
    return [int(key.value) for key in screen.table.rows]


def column_texts(screen: JobsScreen, key: str) -> list[str]:
    table = screen.table
    return [str(table.get_cell(row, key)) for row in table.rows]


def status(screen: JobsScreen) -> str:
    return str(screen.query_one("#status").render())


def test_first_page_shows_the_newest_jobs_and_the_count(source, db):
    seen = {}

    async def scenario(app, pilot):
        screen = app.screen
        seen.update(type=type(screen).__name__, ids=row_ids(screen), size=screen.page_size, status=status(screen),
                    jobs=column_texts(screen, "job"), users=column_texts(screen, "user"),
                    header=app.sub_title)

    run(source, scenario)
    assert seen["type"] == "JobsScreen"
    # 30 lines: header, filter bar, table header, status line and footer leave 25 rows.
    assert seen["size"] == 25
    expected = source.jobs(None, parse_sort("startTime:desc"), 1, 25).jobs
    assert seen["ids"] == [job["id"] for job in expected]
    assert seen["jobs"] == [f"{job['jobId']}@{job['cluster']}" for job in expected]
    assert seen["users"] == [job["user"] for job in expected]
    newest = db.execute("SELECT max(start_time) FROM job").fetchone()[0]
    assert expected[0]["startTime"] == newest
    total = db.execute("SELECT count(*) FROM job").fetchone()[0]
    pages = -(-total // 25)
    assert seen["status"] == f"jobs 1-25 of {total:,} · sorted by start ↓ · page 1/{pages}"
    assert seen["header"].startswith("local: ") and "(local admin)" in seen["header"]


def test_state_filter_shows_only_running_jobs_with_the_database_count(source, db):
    seen = {}

    async def scenario(app, pilot):
        screen = app.screen
        await pilot.press("f", *"state:running", "enter")
        await settle(app, pilot)
        seen.update(states=column_texts(screen, "state"), status=status(screen), focused=app.focused)

    run(source, scenario)
    running = db.execute("SELECT count(*) FROM job WHERE job_state = 'running'").fetchone()[0]
    assert running > 0
    assert seen["states"] == ["running"] * min(running, 25)
    assert f" of {running:,} · " in seen["status"]
    assert seen["focused"].id == "jobs"  # Enter applied the filter and went back to the table


def test_invalid_filter_names_the_field_and_keeps_the_rows(source):
    seen = {}

    async def scenario(app, pilot):
        screen = app.screen
        before = row_ids(screen)
        await pilot.press("f", *"duration:abc", "enter")
        await settle(app, pilot)
        seen.update(before=before, after=row_ids(screen), error=str(screen.query_one("#filter-error").render()),
                    status=status(screen), focused=app.focused.id)
        await pilot.press("escape")
        seen["after_escape"] = app.focused.id

    run(source, scenario)
    assert seen["after"] == seen["before"] and len(seen["before"]) == 25
    assert seen["error"].startswith("duration:") and "abc" in seen["error"]
    assert seen["status"].startswith("jobs 1-25 of ")
    assert seen["focused"] == "filter"  # left in the filter bar to correct it
    assert seen["after_escape"] == "jobs"


def test_paging_forward_and_back(source, db):
    seen = []

    async def scenario(app, pilot):
        screen = app.screen
        for key in ("n", "right", "pagedown", "b", "left", "g"):
            await pilot.press(key)
            await settle(app, pilot)
            seen.append((key, row_ids(screen), status(screen)))

    run(source, scenario)
    order = parse_sort("startTime:desc")
    pages = {page: [job["id"] for job in source.jobs(None, order, page, 25).jobs] for page in (1, 2, 3, 4)}
    total = db.execute("SELECT count(*) FROM job").fetchone()[0]
    shown = {key: (ids, text) for key, ids, text in seen}
    assert shown["n"][0] == pages[2] and shown["n"][1].startswith("jobs 26-50 of ")
    assert shown["right"][0] == pages[3] and shown["pagedown"][0] == pages[4]
    assert shown["pagedown"][1].endswith(f"page 4/{-(-total // 25)}")
    assert shown["b"][0] == pages[3] and shown["left"][0] == pages[2]
    assert shown["g"][0] == pages[1] and shown["g"][1].startswith("jobs 1-25 of ")


def test_paging_stops_at_the_last_page(source, db):
    total = db.execute("SELECT count(*) FROM job").fetchone()[0]
    last_page = -(-total // 25)
    seen = {}

    async def scenario(app, pilot):
        screen = app.screen
        for _ in range(last_page + 2):
            await pilot.press("n")
            await settle(app, pilot)
        seen.update(page=screen.page, rows=len(row_ids(screen)), status=status(screen))

    run(source, scenario)
    assert seen["page"] == last_page
    assert seen["rows"] == total - 25 * (last_page - 1)
    assert seen["status"] == (f"jobs {25 * (last_page - 1) + 1}-{total} of {total} · sorted by start ↓ · "
                              f"page {last_page}/{last_page}")


def test_sort_by_duration_and_reverse(source):
    seen = {}

    async def scenario(app, pilot):
        screen = app.screen
        await pilot.press("s")
        await settle(app, pilot)
        seen["desc"] = ([job["duration"] for job in screen.jobs], status(screen), row_ids(screen),
                        str(screen.table.columns[next(iter(k for k in screen.table.columns
                                                           if k.value == "duration"))].label))
        await pilot.press("S")
        await settle(app, pilot)
        seen["asc"] = ([job["duration"] for job in screen.jobs], status(screen), row_ids(screen))

    run(source, scenario)
    durations, text, ids, label = seen["desc"]
    assert durations == sorted(durations, reverse=True) and durations[0] > durations[-1]
    assert "sorted by duration ↓" in text and label == "Duration ↓"
    assert ids == [job["id"] for job in source.jobs(None, parse_sort("duration:desc"), 1, 25).jobs]
    durations, text, ids = seen["asc"]
    assert durations == sorted(durations) and "sorted by duration ↑" in text
    assert ids == [job["id"] for job in source.jobs(None, parse_sort("duration:asc"), 1, 25).jobs]


def test_clicking_a_column_header_sorts_by_it(source):
    seen = {}

    async def scenario(app, pilot):
        screen = app.screen
        x = sum(column.width + 2 for column in screen._width_columns[:screen._width_columns.index(
            next(c for c in screen._width_columns if c.key == "nodes"))]) + 2
        await pilot.click("#jobs", offset=(x, 0))
        await settle(app, pilot)
        seen.update(status=status(screen), nodes=[job["numNodes"] for job in screen.jobs])

    run(source, scenario)
    assert "sorted by nodes ↓" in seen["status"]
    assert seen["nodes"] == sorted(seen["nodes"], reverse=True) and seen["nodes"][0] > seen["nodes"][-1]


def test_enter_opens_the_job_under_the_cursor(source):
    seen = {}

    async def scenario(app, pilot):
        screen = app.screen
        await pilot.press("down", "down")
        seen["wanted"] = screen.jobs[2]["id"]
        await pilot.press("enter")
        await settle(app, pilot)
        seen.update(screen=type(app.screen).__name__, db_id=getattr(app.screen, "db_id", None))
        await pilot.press("escape")
        await settle(app, pilot)
        seen.update(back=type(app.screen).__name__, cursor=screen.table.cursor_row)

    run(source, scenario)
    assert seen["screen"] == "JobScreen" and seen["db_id"] == seen["wanted"]
    assert seen["back"] == "JobsScreen" and seen["cursor"] == 2


def test_jump_by_database_id_and_batch_job_id(source, db):
    db_id, job_id, cluster = db.execute("SELECT id, job_id, cluster FROM job ORDER BY id LIMIT 1 OFFSET 7").fetchone()
    seen = {}

    async def jump(app, pilot, text):
        await pilot.press("slash")
        await pilot.pause()
        seen.setdefault("modal", type(app.screen).__name__)
        await pilot.press(*text, "enter")
        await settle(app, pilot)
        opened = (type(app.screen).__name__, getattr(app.screen, "db_id", None))
        if opened[0] == "JobScreen":
            await pilot.press("escape")
            await settle(app, pilot)
        return opened

    async def scenario(app, pilot):
        seen["hash"] = await jump(app, pilot, f"#{db_id}")
        seen["batch"] = await jump(app, pilot, f"{job_id}@{cluster}")
        seen["none"] = await jump(app, pilot, "999999999@nowhere")
        seen["notes"] = [str(note.message) for note in app._notifications]
        seen["bad"] = await jump(app, pilot, "abc")
        seen["notes_after_bad"] = [str(note.message) for note in app._notifications]

    run(source, scenario)
    assert seen["modal"] == "JumpScreen"
    assert seen["hash"] == ("JobScreen", db_id)
    assert seen["batch"] == ("JobScreen", db_id)
    assert seen["none"][0] == "JobsScreen"
    assert "There is no job 999999999@nowhere." in seen["notes"]
    assert seen["bad"][0] == "JobsScreen"
    assert any("'abc' is not a job id" in note for note in seen["notes_after_bad"])


def copy_site(demo_site, folder, change_sql: str) -> str:
    """A copy of the demo site's database changed by ``change_sql`` (the shared one stays as it is); its config."""
    import json
    import shutil

    shutil.copy(demo_site.folder / "job.db", folder / "job.db")
    with sqlite3.connect(folder / "job.db") as conn:
        conn.executescript(change_sql)
    config = json.loads((demo_site.folder / "config.json").read_text())
    config["main"]["db"] = str(folder / "job.db")
    (folder / "config.json").write_text(json.dumps(config))
    return str(folder / "config.json")


def test_jump_to_a_batch_job_id_of_several_jobs_lists_them(demo_site, tmp_path):
    # Two clusters reuse batch job ids; give a second job the id of the first to have such a pair.
    config = copy_site(demo_site, tmp_path, "UPDATE job SET job_id = (SELECT job_id FROM job WHERE id = 1) "
                                            "WHERE id = (SELECT max(id) FROM job);")
    with sqlite3.connect(tmp_path / "job.db") as conn:
        job_id, = conn.execute("SELECT job_id FROM job WHERE id = 1").fetchone()
        ids = sorted(row[0] for row in conn.execute("SELECT id FROM job WHERE job_id = ?", (job_id,)))
    assert len(ids) == 2
    local = LocalSource(Runtime(config, env_path=str(tmp_path / ".env")))
    local.connect()
    seen = {}

    async def scenario(app, pilot):
        await pilot.press("slash", *str(job_id), "enter")
        await settle(app, pilot)
        seen.update(screen=type(app.screen).__name__, filter=app.screen.query_one("#filter").value,
                    rows=sorted(row_ids(app.screen)))

    try:
        run(local, scenario)
    finally:
        local.close()
    assert seen == {"screen": "JobsScreen", "filter": f"job-id:{job_id}", "rows": ids}


def test_a_failing_source_is_a_message_not_a_crash(demo_site, tmp_path):
    config = copy_site(demo_site, tmp_path, "")
    local = LocalSource(Runtime(config, env_path=str(tmp_path / ".env")))
    local.connect()
    seen = {}

    async def scenario(app, pilot):
        screen = app.screen
        before = row_ids(screen)
        with sqlite3.connect(tmp_path / "job.db") as conn:
            conn.execute("ALTER TABLE job RENAME TO job_gone")
        await pilot.press("n")
        await settle(app, pilot)
        seen.update(before=before, after=row_ids(screen), status=status(screen), running=app.is_running, page=screen.page,
                    notes=[str(note.message) for note in app._notifications])

    try:
        run(local, scenario)
    finally:
        local.close()
    assert seen["after"] == seen["before"] and len(seen["before"]) == 25 and seen["running"]
    assert "no such table: job" in seen["status"] and seen["page"] == 1
    assert any("no such table: job" in note for note in seen["notes"])


def test_palette_runs_filter_running_jobs(source, db):
    seen = {}

    async def scenario(app, pilot):
        await pilot.press("ctrl+p")
        await pilot.pause()
        seen["palette"] = type(app.screen).__name__
        await pilot.press(*"running jobs")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(app, pilot)
        screen = app.screen
        seen.update(screen=type(screen).__name__, filter=screen.query_one("#filter").value,
                    states=set(column_texts(screen, "state")), status=status(screen))

    run(source, scenario)
    running = db.execute("SELECT count(*) FROM job WHERE job_state = 'running'").fetchone()[0]
    assert seen["palette"] == "CommandPalette"
    assert seen["screen"] == "JobsScreen" and seen["filter"] == "state:running"
    assert seen["states"] == {"running"} and f" of {running:,} · " in seen["status"]


def test_palette_my_jobs_as_a_user(demo_site, db):
    folder = demo_site.folder
    username = demo_site.accounts["user"].username
    local = LocalSource(Runtime(str(folder / "config.json"), env_path=str(folder / ".env")), as_user=username)
    local.connect()
    seen = {}

    async def scenario(app, pilot):
        await pilot.press("ctrl+p", *"my jobs")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(app, pilot)
        screen = app.screen
        seen.update(filter=screen.query_one("#filter").value, users=set(column_texts(screen, "user")),
                    status=status(screen), header=app.sub_title)

    try:
        run(local, scenario)
    finally:
        local.close()
    mine = db.execute("SELECT count(*) FROM job WHERE hpc_user = ?", (username,)).fetchone()[0]
    assert seen["filter"] == f"user:{username}" and seen["users"] == {username}
    assert f" of {mine:,} · " in seen["status"] and seen["header"].endswith(f" · {username}")


def test_keys_between_screens(source):
    seen = []

    async def scenario(app, pilot):
        for key in ("question_mark", "escape", "t", "c", "p", "j", "enter", "u", "j"):
            await pilot.press(key)
            await settle(app, pilot)
            seen.append(type(app.screen).__name__)

    run(source, scenario)
    assert seen == ["HelpScreen", "JobsScreen", "TagsScreen", "ClustersScreen", "ProjectsScreen", "JobsScreen",
                    "JobScreen", "UsersScreen", "JobsScreen"]


def test_show_jobs_from_another_screen_returns_to_the_list_filtered(source):
    seen = {}

    async def scenario(app, pilot):
        await pilot.press("u")
        await settle(app, pilot)
        seen["users"] = type(app.screen).__name__
        app.show_jobs("state:completed nodes:2..")
        await settle(app, pilot)
        screen = app.screen
        seen.update(screen=type(screen).__name__, states=set(column_texts(screen, "state")),
                    nodes=[job["numNodes"] for job in screen.jobs])

    run(source, scenario)
    assert seen["users"] == "UsersScreen"
    assert seen["screen"] == "JobsScreen" and seen["states"] == {"completed"}
    assert seen["nodes"] and min(seen["nodes"]) >= 2


def test_initial_filter_and_empty_result(source):
    seen = {}

    async def scenario(app, pilot):
        seen.update(rows=row_ids(app.screen), status=status(app.screen), filter=app.screen.query_one("#filter").value)

    run(source, scenario, filter_text="user:nobody-has-this-name")
    assert seen == {"rows": [], "status": "No jobs match this filter.", "filter": "user:nobody-has-this-name"}


def test_running_jobs_durations_follow_the_clock(source):
    now = [CLOCK]
    seen = {}

    async def scenario(app, pilot):
        screen = app.screen
        seen["before"] = (column_texts(screen, "duration"), screen.jobs)
        now[0] += 125
        await pilot.pause(1.3)
        seen["after"] = (column_texts(screen, "duration"), screen.jobs)

    run(source, scenario, clock=lambda: now[0])
    (before, jobs_before), (after, jobs_after) = seen["before"], seen["after"]
    assert jobs_after is jobs_before  # no reload within 30 s: the cells follow the clock
    for job, old, new in zip(jobs_after, before, after, strict=True):
        if job["jobState"] == "running":
            assert (old, new) == (_duration(CLOCK - job["startTime"]), _duration(CLOCK + 125 - job["startTime"]))
        else:
            assert new == old == _duration(job["duration"])
    assert any(job["jobState"] == "running" for job in jobs_after)


def test_running_jobs_reload_keeping_the_cursor(source, monkeypatch):
    monkeypatch.setattr(JobsScreen, "refresh_seconds", 0.2)
    seen = {}

    async def scenario(app, pilot):
        screen = app.screen
        await pilot.press("f", *"state:running", "enter")
        await settle(app, pilot)
        await pilot.press("down", "down", "down")
        seen["before"] = (screen.jobs, screen._cursor_job_id())
        await pilot.pause(0.5)
        await settle(app, pilot)
        seen["after"] = (screen.jobs, screen._cursor_job_id(), screen.table.cursor_row, status(screen))

    run(source, scenario)
    jobs_before, cursor_job = seen["before"]
    jobs_after, cursor_after, row, text = seen["after"]
    assert jobs_after is not jobs_before  # fetched again
    assert [job["id"] for job in jobs_after] == [job["id"] for job in jobs_before]
    assert cursor_after == cursor_job and row == 3
    assert text.startswith("jobs 1-")


def _duration(seconds: int) -> str:
    from cc_backend.tui.format import duration_text

    return duration_text(seconds)


def test_80_columns_show_the_table_and_the_footer(source):
    seen = {}

    async def scenario(app, pilot):
        screen = app.screen
        footer = screen.query_one("Footer")
        seen.update(size=screen.page_size, columns=[str(c.label) for c in screen.table.columns.values()],
                    table=screen.table.region, footer=footer.region,
                    keys={b.description for b in footer.query("FooterKey")} if footer.query("FooterKey") else set(),
                    rows=len(row_ids(screen)))
        await pilot.resize_terminal(160, 50)
        await settle(app, pilot)
        seen.update(wide=[str(c.label) for c in screen.table.columns.values()], wide_rows=len(row_ids(screen)),
                    wide_size=screen.page_size)

    run(source, scenario, size=(80, 24))
    assert seen["size"] == 19 and seen["rows"] == 19
    assert seen["columns"] == ["Job id", "User", "State", "Start ↓", "Duration", "Nodes"]
    assert sum(column.width + 2 for column in columns_for_width(80)) <= 80
    assert seen["table"].height == 20 and seen["table"].width == 80
    assert seen["footer"].y == 23
    assert {"Open job", "Next page", "Sort", "Filter", "Quit"} <= seen["keys"]
    assert seen["wide"] == ["Job id", "Name", "User", "Project", "State", "Start ↓", "Duration", "Nodes", "Cores",
                            "Accs"]
    assert [c.key for c in columns_for_width(160)] == [c.key for c in COLUMNS]
    assert seen["wide_size"] == 45 and seen["wide_rows"] == 45


def test_remote_source_shows_the_same_pages(demo_site, source, db):
    from cc_backend.tui.remote import RemoteSource

    remote = RemoteSource(demo_site.url, token(demo_site.folder, ["admin", "api"], sub="webadmin"))
    remote.connect()
    seen = {}

    async def scenario(app, pilot):
        screen = app.screen
        seen["first"] = (row_ids(screen), status(screen), app.sub_title)
        await pilot.press("n")
        await settle(app, pilot)
        seen["second"] = row_ids(screen)
        await pilot.press("f", *"state:running", "enter")
        await settle(app, pilot)
        seen["running"] = (set(column_texts(screen, "state")), status(screen))
        await pilot.press("slash", *f"#{seen['first'][0][0]}", "enter")
        await settle(app, pilot)
        seen["jump"] = (type(app.screen).__name__, getattr(app.screen, "db_id", None))

    try:
        run(remote, scenario)
    finally:
        remote.close()
    order = parse_sort("startTime:desc")
    ids, text, header = seen["first"]
    assert ids == [job["id"] for job in source.jobs(None, order, 1, 25).jobs]
    assert seen["second"] == [job["id"] for job in source.jobs(None, order, 2, 25).jobs]
    total = db.execute("SELECT count(*) FROM job").fetchone()[0]
    assert text.startswith(f"jobs 1-25 of {total:,} · ") and "webadmin" in header
    running = db.execute("SELECT count(*) FROM job WHERE job_state = 'running'").fetchone()[0]
    assert seen["running"][0] == {"running"} and f" of {running:,} · " in seen["running"][1]
    assert seen["jump"] == ("JobScreen", ids[0])


def test_q_quits(source):
    seen = {}

    async def scenario(app, pilot):
        await pilot.press("q")
        await pilot.pause()
        seen["running"] = app.is_running

    app = run(source, scenario)
    assert seen["running"] is False and app.return_code == 0


# --- the command ------------------------------------------------------------------------------------

def cc_backend(*args: str, cwd, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cc_backend.commands.main", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL,
                          env={**os.environ, "CC_URL": "", "CC_TOKEN": "", **(env or {})})


def test_command_unreachable_server_is_one_line_and_exit_1(demo_site, tmp_path):
    port = free_port()
    jwt = token(demo_site.folder, ["user", "api"], sub=demo_site.accounts["user"].username)
    result = cc_backend("tui", "--url", f"http://127.0.0.1:{port}", "--token", jwt, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("Error: ") and f"127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "\x1b[?1049h" not in result.stdout  # the terminal never switched to the alternate screen


def test_command_expired_token_is_one_line_and_exit_1(demo_site, tmp_path):
    import time

    jwt = token(demo_site.folder, ["user", "api"], sub=demo_site.accounts["user"].username, now=time.time() - 7200)
    result = cc_backend("tui", cwd=tmp_path, env={"CC_URL": demo_site.url, "CC_TOKEN": jwt})
    assert result.returncode == 1 and result.stderr.startswith("Error: ")
    assert "expired" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_command_url_from_environment_needs_a_token(tmp_path):
    result = cc_backend("tui", cwd=tmp_path, env={"CC_URL": "http://127.0.0.1:9"})
    assert result.returncode == 2
    assert "--url needs an API token" in result.stderr and "Traceback" not in result.stderr


def test_command_local_errors(demo_site, tmp_path):
    missing = cc_backend("tui", "--config", str(tmp_path / "none.json"), cwd=tmp_path)
    assert missing.returncode == 1 and "configuration file not found" in missing.stderr
    assert "Traceback" not in missing.stderr
    config = str(demo_site.folder / "config.json")
    bad_filter = cc_backend("tui", "--config", config, "--", "--state", "runnin", cwd=demo_site.folder)
    assert bad_filter.returncode == 2 and "'runnin' is not one of" in bad_filter.stderr
    nobody = cc_backend("tui", "--config", config, "--as-user", "nobody", cwd=demo_site.folder)
    assert nobody.returncode == 1 and "There is no account 'nobody'" in nobody.stderr


def test_command_wrong_schema_version(demo_site, tmp_path):
    config = copy_site(demo_site, tmp_path, "UPDATE schema_migrations SET version = version - 1;")
    result = cc_backend("tui", "--config", config, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("Error: The database cannot be used: database schema version ")
    assert "--migrate-db" in result.stderr and "Traceback" not in result.stderr


def test_command_help_does_not_import_textual():
    code = ("import sys\nfrom cc_backend.commands.main import main\n"
            "try:\n    main(['tui', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('textual' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "--token JWT" in result.stdout and result.stdout.strip().endswith("False")
