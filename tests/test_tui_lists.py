"""The terminal UI's users, projects, tags and clusters screens and its help screen, driven by Textual's pilot on a
demo site: the numbers on screen are the database's, ``enter`` opens the matching job list, roles see their share."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text
from support.browser import build_demo_site
from support.server import free_port
from support.site import token
from textual.widgets import Input

from cc_backend.runtime import Runtime
from cc_backend.tui.app import CockpitApp
from cc_backend.tui.format import number_text
from cc_backend.tui.local import LocalSource
from cc_backend.tui.remote import RemoteSource
from cc_backend.tui.screens.help import HelpScreen
from cc_backend.tui.screens.jobs import JobsScreen
from cc_backend.tui.screens.lists import (
    ClustersScreen,
    DrillTable,
    ProjectsScreen,
    TagsScreen,
    UsersScreen,
)

#: Node states reported for fritz (alex reports none): allocated, idle and down nodes of its main subcluster.
NODE_STATES = {"f0101": ["allocated"], "f0102": ["idle"], "f0103": ["down"]}
SIZE = (100, 30)
#: The display name of the demo's "user" account (the one with the most jobs), shown next to the username.
DISPLAY_NAME = "Ursula User"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    demo = build_demo_site(tmp_path_factory.mktemp("tui-lists"))
    report_node_states(demo.folder, NODE_STATES)
    with demo.db() as conn:
        conn.execute("UPDATE hpc_user SET name = ? WHERE username = ?", (DISPLAY_NAME, demo.accounts["user"].username))
    yield demo
    demo.server.stop()


def report_node_states(folder: Path, states: dict[str, list[str]]) -> None:
    """What ``POST /api/nodestate/`` records, through the core: fritz's nodes with these scheduler states."""
    from cc_backend.nodes import update_node_states

    runtime = Runtime(str(folder / "config.json"), env_path=str(folder / "no.env"))
    payload = {"cluster": "fritz", "nodes": [
        {"hostname": host, "states": flags, "cpusAllocated": 72 if flags == ["allocated"] else 0,
         "jobsRunning": 1 if flags == ["allocated"] else 0} for host, flags in states.items()]}
    try:
        assert update_node_states(runtime.engine, runtime.archive.registry(), payload) == len(states)
    finally:
        runtime.close()


def local_source(folder: Path, as_user: str | None = None) -> LocalSource:
    # A .env that does not exist: the test process's environment stays free of the site's keys.
    source = LocalSource(Runtime(str(folder / "config.json"), env_path=str(folder / "no.env")), as_user=as_user)
    source.connect()
    return source


@pytest.fixture(scope="module")
def admin_source(site):
    source = local_source(site.folder)
    yield source
    source.close()


def sqlite_rows(site, sql: str, *args: Any) -> list[tuple]:
    with sqlite3.connect(site.folder / "job.db") as conn:
        return conn.execute(sql, args).fetchall()


def cells(table: DrillTable, key: str) -> list[str]:
    return [cell.plain if isinstance(cell, Text) else str(cell) for cell in table.get_row(key)]


def row_keys(table: DrillTable) -> list[str]:
    return [row.key.value for row in table.ordered_rows]


def static_text(screen, selector: str) -> str:
    content = screen.query_one(selector).content
    return content.plain if isinstance(content, Text) else str(content)


async def settle(pilot) -> None:
    """Until the workers are done and the screens have shown what they loaded."""
    for _ in range(3):
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def run(source, scenario, size: tuple[int, int] = SIZE) -> None:
    async def main() -> None:
        app = CockpitApp(source)
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            await scenario(app, pilot)

    asyncio.run(main())


async def apply_filter(pilot, text: str) -> None:
    """``f``, the text into the filter field (as if typed, without a pause per key), ``enter``."""
    await pilot.press("f")
    pilot.app.screen.query_one("#filter", Input).value = text
    await pilot.press("enter")
    await settle(pilot)


async def open_screen(pilot, key: str, screen_type: type) -> Any:
    await pilot.press(key)
    await settle(pilot)
    assert isinstance(pilot.app.screen, screen_type)
    return pilot.app.screen


# ------------------------------------------------------------------------------ users and projects

GROUP_CASES = [("u", UsersScreen, "hpc_user", "user"), ("p", ProjectsScreen, "project", "project")]


@pytest.mark.parametrize(("key", "screen_type", "column", "option"), GROUP_CASES, ids=["users", "projects"])
def test_group_table_shows_the_core_statistics_and_sqlite_counts(site, admin_source, key, screen_type, column,
                                                                  option):
    jobs = dict(sqlite_rows(site, f"SELECT {column}, count(*) FROM job GROUP BY {column}"))
    running = dict(sqlite_rows(site, f"SELECT {column}, count(*) FROM job WHERE job_state = 'running' "
                                     f"GROUP BY {column}"))
    stats = {row["id"]: row for row in admin_source.group_statistics("USER" if option == "user" else "PROJECT", None)}

    async def scenario(app, pilot):
        screen = await open_screen(pilot, key, screen_type)
        table = screen.query_one(DrillTable)
        assert sorted(row_keys(table)) == sorted(jobs)
        for name, count in jobs.items():
            row = cells(table, name)
            assert row[0].split()[0] == name
            # Hours of running jobs grow while the test runs: the others' hours are fixed and must agree.
            fields = ("totalJobs", "runningJobs") + (
                ("totalWalltime", "totalCoreHours", "totalAccHours", "totalNodeHours") if name not in running else ())
            assert row[1:1 + len(fields)] == [number_text(stats[name][field]) for field in fields]
            assert row[1] == number_text(count)
            assert row[2] == number_text(running.get(name, 0))
        total = static_text(screen, "#total")
        assert f"{len(jobs):,} {option}s" in total
        assert f"{sum(jobs.values()):,} jobs ({sum(running.values()):,} running)" in total
        # Sorted by jobs, most first, by default; the first row has sqlite's maximum.
        assert cells(table, row_keys(table)[0])[1] == number_text(max(jobs.values()))

    run(admin_source, scenario)


def test_users_filter_narrows_the_table_and_names_a_wrong_field(site, admin_source):
    fritz = dict(sqlite_rows(site, "SELECT hpc_user, count(*) FROM job WHERE cluster = 'fritz' GROUP BY hpc_user"))
    everyone = dict(sqlite_rows(site, "SELECT hpc_user, count(*) FROM job GROUP BY hpc_user"))
    assert 0 < len(fritz) < len(everyone)

    async def scenario(app, pilot):
        screen = await open_screen(pilot, "u", UsersScreen)
        table = screen.query_one(DrillTable)
        await pilot.press("f")
        await pilot.press(*"cluster:fritz", "enter")
        await settle(pilot)
        assert sorted(row_keys(table)) == sorted(fritz)
        assert {name: cells(table, name)[1] for name in fritz} == {n: number_text(c) for n, c in fritz.items()}
        assert "filter: cluster:fritz" in static_text(screen, "#total")
        assert screen.focused is table

        # A wrong value names its field next to the filter and leaves the table as it was.
        await apply_filter(pilot, "start-time:yesterday")
        error = static_text(screen, "#filter-error")
        assert error.startswith("startTime: use one of last6h")
        assert sorted(row_keys(table)) == sorted(fritz)
        assert screen.focused is screen.query_one("#filter")  # to be corrected
        # An unknown tag is the source's answer (resolve_tags), shown the same way.
        await apply_filter(pilot, "tag:app:no-such-tag")
        assert static_text(screen, "#filter-error") == "no tag 'app:no-such-tag'"
        await apply_filter(pilot, "colour:red")
        assert static_text(screen, "#filter-error").startswith("unknown filter option 'colour' (one of cluster,")
        assert sorted(row_keys(table)) == sorted(fritz)
        await apply_filter(pilot, "")  # no filter: everyone again
        assert static_text(screen, "#filter-error") == ""
        assert sorted(row_keys(table)) == sorted(everyone)
        # escape in the field goes back to the table, not off the screen
        await pilot.press("f", "escape")
        assert app.screen is screen and screen.focused is table

    run(admin_source, scenario)


def test_users_sort_keys_cycle_columns_and_reverse(site, admin_source):
    jobs = dict(sqlite_rows(site, "SELECT hpc_user, count(*) FROM job GROUP BY hpc_user"))
    running = dict(sqlite_rows(site, "SELECT hpc_user, count(*) FROM job WHERE job_state = 'running' "
                                     "GROUP BY hpc_user"))

    async def scenario(app, pilot):
        screen = await open_screen(pilot, "u", UsersScreen)
        table = screen.query_one(DrillTable)
        assert [jobs[name] for name in row_keys(table)] == sorted(jobs.values(), reverse=True)
        assert str(table.ordered_columns[1].label) == "Jobs ▼"
        await pilot.press("S")  # fewest jobs first
        assert [jobs[name] for name in row_keys(table)] == sorted(jobs.values())
        assert str(table.ordered_columns[1].label) == "Jobs ▲"
        await pilot.press("s")  # the next column, most first
        assert [running.get(name, 0) for name in row_keys(table)] == sorted(
            (running.get(name, 0) for name in jobs), reverse=True)
        for _ in range(5):  # round to the name column: alphabetical
            await pilot.press("s")
        assert row_keys(table) == sorted(jobs)
        await pilot.press("s", "S", "S")  # jobs again, reversed twice: most first
        assert row_keys(table)[0] in {name for name, count in jobs.items() if count == max(jobs.values())}
        assert jobs[row_keys(table)[0]] == max(jobs.values())
        # A header click sorts too; clicking it again reverses.
        await pilot.click(DrillTable, offset=(2, 0))
        assert row_keys(table) == sorted(jobs)
        await pilot.click(DrillTable, offset=(2, 0))
        assert row_keys(table) == sorted(jobs, reverse=True)

    run(admin_source, scenario)


@pytest.mark.parametrize(("key", "screen_type", "column", "option"), GROUP_CASES, ids=["users", "projects"])
def test_enter_opens_the_groups_jobs_with_the_screens_filter(site, admin_source, key, screen_type, column, option):
    counts = dict(sqlite_rows(site, f"SELECT {column}, count(*) FROM job WHERE cluster = 'fritz' GROUP BY {column}"))

    async def scenario(app, pilot):
        screen = await open_screen(pilot, key, screen_type)
        table = screen.query_one(DrillTable)
        await apply_filter(pilot, "cluster:fritz")
        await settle(pilot)
        await pilot.press("down", "enter")
        await settle(pilot)
        name = row_keys(table)[1]
        assert isinstance(app.screen, JobsScreen)
        assert app.jobs_screen.filter_text == f"{option}:{name} cluster:fritz"
        assert app.jobs_screen.total == counts[name]
        assert app.jobs_screen.table.row_count == min(counts[name], app.jobs_screen.page_size)
        # The list screen keeps its state: back on it, the same filter and row.
        await pilot.press(key)
        await settle(pilot)
        assert app.screen is screen
        assert table.cursor_row == 1

    run(admin_source, scenario)


def test_escape_leaves_a_list_for_the_job_list(site, admin_source):
    async def scenario(app, pilot):
        for key, screen_type in (("p", ProjectsScreen), ("t", TagsScreen), ("c", ClustersScreen)):
            await open_screen(pilot, key, screen_type)
            await pilot.press("escape")
            await settle(pilot)
            assert isinstance(app.screen, JobsScreen)

    run(admin_source, scenario)


def test_narrow_terminal_keeps_every_column_with_short_labels(site, admin_source):
    username = site.accounts["user"].username

    async def scenario(app, pilot):
        screen = await open_screen(pilot, "u", UsersScreen)
        table = screen.query_one(DrillTable)
        labels = [str(column.label) for column in table.ordered_columns]
        assert labels == ["User", "Jobs ▼", "Run", "Wall h", "Core h", "Acc h", "Node h"]
        assert cells(table, username)[0] == username
        assert sum(column.get_render_width(table) for column in table.ordered_columns) <= 80
        await pilot.resize_terminal(120, 30)
        await settle(pilot)
        assert [str(column.label) for column in table.ordered_columns][2:4] == ["Running", "Walltime h"]
        assert cells(table, username)[0] == f"{username} {DISPLAY_NAME}"

    run(admin_source, scenario, size=(80, 24))


# ------------------------------------------------------------------------------ tags

def test_tags_show_their_job_counts_and_open_their_jobs(site, admin_source):
    counts = dict(sqlite_rows(site, "SELECT tag_id, count(*) FROM jobtag GROUP BY tag_id"))
    # Private tags are their owner's alone, even for administrators (upstream's rule).
    tags = sqlite_rows(site, "SELECT id, tag_type, tag_name, tag_scope FROM tag WHERE tag_scope IN ('global', 'admin')")
    assert counts and tags

    async def scenario(app, pilot):
        screen = await open_screen(pilot, "t", TagsScreen)
        table = screen.query_one(DrillTable)
        assert row_keys(table) == [str(tag_id) for tag_id, *_ in
                                   sorted(tags, key=lambda t: (t[1], t[2], t[3]))]
        for tag_id, tag_type, name, scope in tags:
            row = cells(table, str(tag_id))
            assert row[1:] == [name, scope, number_text(counts.get(tag_id, 0))]
            assert row[0] in (tag_type, "")  # the type heads its group only
        types = {tag[1] for tag in tags}
        assert static_text(screen, "#total") == f"{len(tags)} tags of {len(types)} types"
        # enter on the most used tag lists its jobs
        tag_id = max(counts, key=lambda t: counts[t])
        _id, tag_type, name, _scope = next(tag for tag in tags if tag[0] == tag_id)
        table.move_cursor(row=row_keys(table).index(str(tag_id)))
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, JobsScreen)
        assert app.jobs_screen.filter_text == f"tag:{tag_type}:{name}"
        same_name = [t[0] for t in tags if (t[1], t[2]) == (tag_type, name)]
        jobs = sqlite_rows(site, f"SELECT count(DISTINCT job_id) FROM jobtag WHERE tag_id IN "
                                 f"({','.join('?' * len(same_name))})", *same_name)[0][0]
        assert app.jobs_screen.total == jobs

    run(admin_source, scenario)


# ------------------------------------------------------------------------------ clusters

def archive_clusters(site) -> dict[str, list[str]]:
    archive = Path(json.loads((site.folder / "config.json").read_text())["archive"]["path"])
    out = {}
    for path in sorted(archive.glob("*/cluster.json")):
        config = json.loads(path.read_text())
        out[config["name"]] = [sub["name"] for sub in config["subClusters"]]
    return out


def test_clusters_show_subclusters_and_node_states(site, admin_source):
    clusters = archive_clusters(site)
    assert set(clusters) == {"alex", "fritz"}

    async def scenario(app, pilot):
        screen = await open_screen(pilot, "c", ClustersScreen)
        table = screen.query_one("#clusters", DrillTable)
        expected = []
        for name in sorted(clusters):
            expected += [f"cluster:{name}", *(f"subcluster:{name}:{sub}" for sub in clusters[name])]
        assert row_keys(table) == expected
        main = cells(table, "subcluster:fritz:main")
        config = next(sub for sub in json.loads(
            (Path(json.loads((site.folder / "config.json").read_text())["archive"]["path"]) / "fritz" /
             "cluster.json").read_text())["subClusters"] if sub["name"] == "main")
        assert main[0].strip() == "main"
        assert main[3] == f"{config['socketsPerNode']}x{config['coresPerSocket']}" + (
            f"x{config['threadsPerCore']}" if config["threadsPerCore"] > 1 else "")
        assert main[5].endswith("GF/s") and main[6].endswith("GB/s")
        # The first row is alex, which reported no node states.
        assert static_text(screen, "#node-status") == "alex: no node states reported yet"
        nodes = screen.query_one("#nodes", DrillTable)
        assert not nodes.display
        table.move_cursor(row=row_keys(table).index("cluster:fritz"))
        await pilot.pause()
        assert nodes.display
        assert static_text(screen, "#node-status").startswith("Nodes of fritz: 3 with a reported state")
        assert {host: cells(nodes, host)[2] for host in NODE_STATES} == {
            "f0101": "allocated", "f0102": "idle", "f0103": "down"}
        assert cells(nodes, "f0101")[1] == "main"
        assert cells(nodes, "f0101")[4:6] == ["1", "72"]
        # enter on a cluster row lists its jobs; on a node its running jobs.
        await pilot.press("enter")
        await settle(pilot)
        assert app.jobs_screen.filter_text == "cluster:fritz"
        assert app.jobs_screen.total == sqlite_rows(site, "SELECT count(*) FROM job WHERE cluster = 'fritz'")[0][0]
        await pilot.press("c")
        await settle(pilot)
        assert app.screen is screen
        await pilot.press("tab")
        assert screen.focused is nodes
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, JobsScreen)
        assert app.jobs_screen.filter_text == "node:f0101 state:running"

        # r loads again: a node that reported meanwhile appears, the cursor stays on its node.
        await pilot.press("c")
        await settle(pilot)
        nodes.move_cursor(row=row_keys(nodes).index("f0103"))
        report_node_states(site.folder, {"f0104": ["mixed"]})
        await pilot.press("r")
        await settle(pilot)
        assert row_keys(nodes) == ["f0101", "f0102", "f0103", "f0104"]
        assert cells(nodes, "f0104")[2] == "mixed"
        assert nodes.cursor_row == 2

    run(admin_source, scenario)


# ------------------------------------------------------------------------------ roles

def test_a_user_sees_only_their_row_and_no_node_states(site):
    username = site.accounts["user"].username
    (own,) = sqlite_rows(site, "SELECT count(*) FROM job WHERE hpc_user = ?", username)[0]
    source = local_source(site.folder, as_user=username)

    async def scenario(app, pilot):
        screen = await open_screen(pilot, "u", UsersScreen)
        table = screen.query_one(DrillTable)
        assert row_keys(table) == [username]
        assert cells(table, username)[1] == number_text(own)
        screen = await open_screen(pilot, "c", ClustersScreen)
        assert row_keys(screen.query_one("#clusters", DrillTable))[0] == "cluster:alex"
        assert static_text(screen, "#node-status") == "Node states are for admin and support users."
        assert not screen.query_one("#nodes", DrillTable).display
        # Tags: the global ones and the user's private ones, counting the user's jobs only.
        screen = await open_screen(pilot, "t", TagsScreen)
        table = screen.query_one(DrillTable)
        assert {key: cells(table, key)[3] for key in row_keys(table)} == {
            str(tag_id): number_text(count) for tag_id, count in tag_counts}

    tag_counts = sqlite_rows(site, "SELECT tag.id, count(job.id) FROM tag LEFT JOIN jobtag ON jobtag.tag_id = tag.id "
                                   "LEFT JOIN job ON job.id = jobtag.job_id AND job.hpc_user = ? "
                                   "WHERE tag.tag_scope IN ('global', ?) GROUP BY tag.id", username, username)
    assert any(count for _tag, count in tag_counts)
    try:
        run(source, scenario)
    finally:
        source.close()


# ------------------------------------------------------------------------------ remote mode

def test_remote_users_and_clusters_as_the_server_allows(site, admin_source):
    username = site.accounts["user"].username
    admin = RemoteSource(site.url, token(site.folder, ["admin"], sub="webadmin"))
    user = RemoteSource(site.url, token(site.folder, ["user"], sub=username))
    admin.connect()
    user.connect()
    local_rows = {row["id"]: row for row in admin_source.group_statistics("USER", None)}

    async def as_admin(app, pilot):
        screen = await open_screen(pilot, "u", UsersScreen)
        table = screen.query_one(DrillTable)
        assert sorted(row_keys(table)) == sorted(local_rows)
        for name, row in local_rows.items():
            assert cells(table, name)[1:3] == [number_text(row["totalJobs"]), number_text(row["runningJobs"])]
        screen = await open_screen(pilot, "c", ClustersScreen)
        screen.query_one("#clusters", DrillTable).move_cursor(row=row_keys(
            screen.query_one("#clusters", DrillTable)).index("cluster:fritz"))
        await pilot.pause()
        assert cells(screen.query_one("#nodes", DrillTable), "f0103")[2] == "down"

    async def as_user(app, pilot):
        screen = await open_screen(pilot, "u", UsersScreen)
        assert row_keys(screen.query_one(DrillTable)) == [username]
        screen = await open_screen(pilot, "c", ClustersScreen)
        assert static_text(screen, "#node-status") == "Node states are for admin and support users."

    try:
        run(admin, as_admin)
        run(user, as_user)
    finally:
        admin.close()
        user.close()


def test_an_unreachable_server_is_a_message_on_the_screen(site):
    url = f"http://127.0.0.1:{free_port()}"
    source = RemoteSource(url, token(site.folder, ["admin"], sub="webadmin"))

    async def scenario(app, pilot):
        screen = await open_screen(pilot, "t", TagsScreen)
        status = static_text(screen, "#status")
        assert status.startswith(f"Cannot reach the server at {url}")
        assert screen.query_one(DrillTable).row_count == 0
        assert any(status == note.message for note in app._notifications)

    try:
        run(source, scenario)
    finally:
        source.close()


# ------------------------------------------------------------------------------ help

def test_help_lists_the_keys_of_the_screen_below_and_the_filter_syntax(site, admin_source):
    async def scenario(app, pilot):
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = app.screen.text()
        assert "Next page" in text and "Prev page" in text  # the job list's keys
        assert "Everywhere" in text and "Jump to job" in text
        assert "start-time" in text and "tag:app:gromacs" in text
        await pilot.press("escape")
        assert isinstance(app.screen, JobsScreen)

        await open_screen(pilot, "u", UsersScreen)
        await pilot.press("question_mark")
        await pilot.pause()
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        groups = dict(help_screen.groups)
        assert ("s", "Sort") in groups["On this screen (Users)"]
        assert ("S", "Reverse") in groups["On this screen (Users)"]
        assert ("r", "Refresh") in groups["On this screen (Users)"]
        assert ("⏎", "Open jobs") in groups["In the table"]
        assert ("u", "Users") in groups["Everywhere"]
        assert "Next page" not in help_screen.text().split("Filter syntax")[0]
        await pilot.press("q")
        assert isinstance(app.screen, UsersScreen)
        await pilot.press("question_mark")
        await pilot.pause()
        await pilot.press("question_mark")
        assert isinstance(app.screen, UsersScreen)

    run(admin_source, scenario)
