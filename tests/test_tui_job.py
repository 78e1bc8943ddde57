"""The terminal UI's job detail screen on a generated demo site, read through the core (local mode)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from typing import Any

import pytest
from textual.geometry import Region
from textual.widgets import DataTable, Input, OptionList, Static, TabbedContent

from cc_backend.errors import NotFound
from cc_backend.jobs.footprint import footprint_bars
from cc_backend.metrics.jobdata import SCOPES
from cc_backend.runtime import Runtime
from cc_backend.tui.app import CockpitApp
from cc_backend.tui.format import duration_text, number_text, time_text
from cc_backend.tui.local import LocalSource
from cc_backend.tui.plots import MetricPlot
from cc_backend.tui.remote import RemoteSource
from cc_backend.tui.screens.job import NO_DATA_RUNNING, AddTagScreen, JobScreen, RemoveTagScreen

SIZE = (110, 36)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from support.browser import build_demo_site

    site = build_demo_site(tmp_path_factory.mktemp("tui-job"))
    yield site
    site.server.stop()


def one(site, sql: str, *args: Any) -> sqlite3.Row:
    with site.db() as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute(sql, args).fetchone()
    assert row is not None, sql
    return row


def local(site, as_user: str | None = None) -> LocalSource:
    source = LocalSource(Runtime(str(site.folder / "config.json")), as_user=as_user)
    source.connect()
    return source


def remote(site, role: str = "admin") -> RemoteSource:
    from support.site import token

    account = site.accounts[role]
    source = RemoteSource(site.url, token(site.folder, account.roles, sub=account.username))
    source.connect()
    return source


def rendered(widget) -> str:
    """What ``widget`` shows on the terminal, line by line (trailing blanks dropped)."""
    width, height = widget.size
    return "\n".join(strip.text.rstrip() for strip in widget.render_lines(Region(0, 0, width, height)))


def cells(table: DataTable) -> list[list[str]]:
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


async def settle(pilot) -> None:
    """Until the screen's workers (job, plot, tags) have finished and their results are on screen."""
    for _ in range(3):
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def open_job(pilot, db_id: int) -> JobScreen:
    pilot.app.show_job(db_id)
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, JobScreen)
    return screen


def run(source: LocalSource | RemoteSource, scenario, *, size=SIZE, clock=None) -> None:
    app = CockpitApp(source, clock=clock) if clock else CockpitApp(source)

    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            await scenario(pilot)

    try:
        asyncio.run(main())
    finally:
        source.close()


def test_header_footprint_energy_and_statistics_of_a_completed_multi_node_job(site):
    row = one(site, "SELECT * FROM job WHERE cluster = 'fritz' AND job_state = 'completed' AND num_nodes BETWEEN 2 AND 8"
                    " ORDER BY id LIMIT 1")
    source = local(site)
    job = source.job(row["id"])
    subcluster = next(c for c in source.clusters() if c.name == "fritz").find_sub_cluster(row["subcluster"])
    bars = footprint_bars(job["footprint"], subcluster)
    stats = source.job_stats(job, None)
    name = json.loads(row["meta_data"])["jobName"]

    async def scenario(pilot):
        screen = await open_job(pilot, row["id"])
        summary = rendered(screen.query_one("#summary"))
        for text in (f"Job {row['job_id']} @ fritz ({row['subcluster']}, {row['cluster_partition']})  completed",
                     f"User {row['hpc_user']}   Project {row['project']}", f"Name {name}",
                     f"Start {time_text(row['start_time'])}   Duration {duration_text(row['duration'])}"
                     f" of {duration_text(row['walltime'])} walltime",
                     f"Nodes {row['num_nodes']}   Cores {row['num_hwthreads']}   Accelerators 0",
                     "Monitoring archived"):
            assert text in summary
        hosts = [r["hostname"] for r in json.loads(row["resources"])]
        assert f"Hosts {' '.join(hosts)}" in summary

        await pilot.press("2")  # the Footprint & tags tab
        await settle(pilot)
        footprint = rendered(screen.query_one("#footprint")).splitlines()
        assert len(bars) == 4 and len(footprint) == len(bars)
        for line, bar in zip(footprint, bars, strict=True):
            assert line.startswith(f"{bar['metric']} ({bar['stat']})")
            unit = f" {bar['unit']}" if bar["unit"] else ""
            assert line.endswith(f" {number_text(bar['value'])} / {number_text(bar['peak'])}{unit} {bar['level']}")

        energy = rendered(screen.query_one("#energy"))
        assert f"Total {number_text(row['energy'])} kWh" in energy
        for metric, kwh in json.loads(row["energy_footprint"]).items():
            assert f"{metric} {number_text(kwh)} kWh" in energy

        await pilot.press("3")  # the Statistics tab, built when first shown
        await settle(pilot)
        units = {m.name: m.unit.text for m in subcluster.metric_config}
        assert cells(screen.query_one("#stats", DataTable)) == [
            [s["name"], units.get(s["name"], ""), *(number_text(s["data"][k]) for k in ("min", "avg", "max"))]
            for s in stats]

        # Enter on a metric row: its values per node, then s for a finer scope where one exists
        table = screen.query_one("#stats", DataTable)
        table.move_cursor(row=[s["name"] for s in stats].index("flops_any"))
        await pilot.press("enter")
        await settle(pilot)
        scoped = source.scoped_job_stats(job, ["flops_any"], ["node"])[0]["stats"]
        assert cells(screen.query_one("#scoped", DataTable)) == [
            [s["hostname"], "node", "", *(number_text(s["data"][k]) for k in ("min", "avg", "max"))] for s in scoped]

    run(source, scenario)


def test_lines_per_node_for_a_small_job_and_a_band_for_many_nodes(site):
    small = one(site, "SELECT id, resources FROM job WHERE cluster = 'fritz' AND job_state = 'completed'"
                      " AND num_nodes BETWEEN 2 AND 8 ORDER BY id LIMIT 1")
    big = one(site, "SELECT id, num_nodes, resources FROM job WHERE job_state = 'completed' AND num_nodes > 8"
                    " ORDER BY id LIMIT 1")
    source = local(site)

    async def scenario(pilot):
        screen = await open_job(pilot, small["id"])
        assert screen.query_one(TabbedContent).active == "metrics"  # a job opens on its plot
        await settle(pilot)
        plot = screen.query_one("#plot", MetricPlot)
        first = screen.metrics[0]
        assert plot.plot["metric"] == first and plot.plot["scope"] == "node"
        assert plot.labels == [r["hostname"] for r in json.loads(small["resources"])]
        assert f"metric 1/{len(screen.metrics)}: {first} at node scope" in rendered(screen.query_one("#plot-status"))
        await pilot.press("right_square_bracket")
        await settle(pilot)
        assert plot.plot["metric"] == screen.metrics[1] and len(plot.labels) == len(json.loads(small["resources"]))
        await pilot.press("left_square_bracket")
        await settle(pilot)
        assert plot.plot["metric"] == first
        # the demo archives fritz's metrics at node scope only: s says so and keeps the plot
        job = source.job(small["id"])
        assert {e["scope"] for e in source.job_metrics(job, [first], list(SCOPES), None)} == {"node"}
        await pilot.press("s")
        await settle(pilot)
        assert plot.plot["scope"] == "node" and screen.scopes_of[first] == ["node"]
        assert f"{first} has no finer scope than node for this job." in [n.message for n in pilot.app._notifications]

        await pilot.press("escape")
        screen = await open_job(pilot, big["id"])
        hosts = [r["hostname"] for r in json.loads(big["resources"])]
        summary = rendered(screen.query_one("#summary"))
        assert f"Hosts {' '.join(hosts[:8])} (+{len(hosts) - 8} more, h shows all)" in summary
        await pilot.press("h")
        assert " ".join(hosts) in " ".join(rendered(screen.query_one("#summary")).split())
        await settle(pilot)
        plot = screen.query_one("#plot", MetricPlot)
        assert plot.labels == ["max", "median", "min"]
        assert plot.plot["seriesCount"] == big["num_nodes"] and "series" not in plot.plot
        # the band spans the job: as many samples as a line would have
        assert len(plot.plot["band"]["median"]) > 10

    run(source, scenario)


def test_scope_switch_shows_the_accelerators_of_a_gpu_job(site):
    row = one(site, "SELECT id, num_acc, resources FROM job WHERE cluster = 'alex' AND job_state = 'completed'"
                    " AND num_acc BETWEEN 2 AND 8 ORDER BY id LIMIT 1")
    accelerators = json.loads(row["resources"])[0]["accelerators"]
    source = local(site)

    async def scenario(pilot):
        screen = await open_job(pilot, row["id"])
        summary = rendered(screen.query_one("#summary"))
        assert f"Accelerators {row['num_acc']}" in summary
        # the accelerator metrics come last (cluster.json order): [ wraps around to them
        for _ in range(len(screen.metrics)):
            if screen.current_metric == "acc_utilization":
                break
            await pilot.press("left_square_bracket")
        await settle(pilot)
        plot = screen.query_one("#plot", MetricPlot)
        assert plot.plot["metric"] == "acc_utilization" and plot.plot["scope"] == "node" and len(plot.labels) == 1
        await pilot.press("s")
        await settle(pilot)
        assert plot.plot["scope"] == "accelerator"
        assert screen.scopes_of["acc_utilization"] == ["node", "accelerator"]
        host = json.loads(row["resources"])[0]["hostname"]
        assert sorted(plot.labels) == sorted(f"{host} accelerator {acc}" for acc in accelerators)
        assert "acc_utilization at accelerator scope" in rendered(screen.query_one("#plot-status"))
        await pilot.press("s")  # after the finest scope, node again
        await settle(pilot)
        assert plot.plot["scope"] == "node" and len(plot.labels) == 1

        # the statistics per node, and per accelerator after s
        await pilot.press("3")
        table = screen.query_one("#stats", DataTable)
        table.move_cursor(row=[r[0] for r in cells(table)].index("acc_utilization"))
        await pilot.press("enter")
        await settle(pilot)
        assert [r[:2] for r in cells(screen.query_one("#scoped", DataTable))] == [[host, "node"]]
        await pilot.press("s")
        await pilot.pause()
        rows = cells(screen.query_one("#scoped", DataTable))
        assert sorted(r[2] for r in rows) == sorted(accelerators) and {r[1] for r in rows} == {"accelerator"}
        assert "acc_utilization per accelerator (scopes node, accelerator" in rendered(screen.query_one("#scoped-title"))

    run(source, scenario)


def test_a_running_job_says_it_has_no_metric_data_and_its_duration_grows(site):
    row = one(site, "SELECT id, start_time, walltime FROM job WHERE job_state = 'running' ORDER BY id LIMIT 1")
    source = local(site)

    async def scenario(pilot):
        screen = await open_job(pilot, row["id"])
        summary = rendered(screen.query_one("#summary"))
        assert "running" in summary
        assert f"Duration 01:01:01 of {duration_text(row['walltime'])} walltime" in summary
        await pilot.press("3")
        await settle(pilot)
        assert cells(screen.query_one("#stats", DataTable))[0][0] == NO_DATA_RUNNING
        await pilot.press("1")
        await settle(pilot)
        assert rendered(screen.query_one("#plot-status")) == NO_DATA_RUNNING
        assert screen.query_one("#plot", MetricPlot).labels == []

    run(source, scenario, clock=lambda: row["start_time"] + 3661)


async def fill_in(pilot, tag_type: str, tag_name: str) -> None:
    """The add-tag box's fields set (typing is tested once, in the administrator's test) and Enter."""
    modal = pilot.app.screen
    assert isinstance(modal, AddTagScreen)
    modal.query_one("#tag-type", Input).value = tag_type
    modal.query_one("#tag-name", Input).value = tag_name
    modal.query_one("#tag-name", Input).focus()
    await pilot.press("enter")


def tags_of(site, db_id: int) -> set[tuple[str, str, str]]:
    with site.db() as conn:
        return set(conn.execute("SELECT t.tag_type, t.tag_name, t.tag_scope FROM jobtag j JOIN tag t ON t.id = j.tag_id"
                                " WHERE j.job_id = ?", (db_id,)))


def test_adding_and_removing_a_tag_changes_the_database(site):
    row = one(site, "SELECT id FROM job WHERE job_state = 'completed' ORDER BY id DESC LIMIT 1")
    before = tags_of(site, row["id"])
    source = local(site)

    async def scenario(pilot):
        screen = await open_job(pilot, row["id"])
        await pilot.press("2", "a")  # on the tab with the job's tags
        await pilot.pause()
        modal = pilot.app.screen
        assert isinstance(modal, AddTagScreen)
        # the local administrator has no account, so no private scope: global and admin
        assert [scope for scope, _ in modal.scopes] == ["global", "admin"]
        await pilot.press(*"review", "tab", *"slow-io", "enter")
        await settle(pilot)
        assert tags_of(site, row["id"]) == before | {("review", "slow-io", "global")}
        tags = cells(screen.query_one("#tags", DataTable))
        assert ["review", "slow-io", "global"] in tags

        table = screen.query_one("#tags", DataTable)
        table.move_cursor(row=tags.index(["review", "slow-io", "global"]))
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(pilot.app.screen, RemoveTagScreen)
        chosen = pilot.app.screen.query_one(OptionList)
        assert str(chosen.get_option_at_index(chosen.highlighted).prompt) == "review:slow-io (global)"
        await pilot.press("enter")
        await settle(pilot)
        assert tags_of(site, row["id"]) == before
        assert ["review", "slow-io", "global"] not in cells(screen.query_one("#tags", DataTable))

    run(source, scenario)


def test_a_user_tags_privately_and_sees_the_cores_refusal(site):
    username = site.accounts["user"].username
    row = one(site, "SELECT id FROM job WHERE hpc_user = ? AND job_state = 'completed' ORDER BY id LIMIT 1", username)
    taken = one(site, "SELECT tag_type, tag_name, tag_scope FROM tag WHERE tag_scope = 'global' ORDER BY id LIMIT 1")
    source = local(site, as_user=username)

    async def scenario(pilot):
        screen = await open_job(pilot, row["id"])
        await pilot.press("2", "a")  # on the tab with the job's tags
        await pilot.pause()
        modal = pilot.app.screen
        assert isinstance(modal, AddTagScreen) and modal.scopes == [(username, f"private ({username})")]
        # a tag that exists with the global scope cannot be made again as a private one: the core says why
        modal.query_one("#tag-type", Input).value = taken["tag_type"]
        modal.query_one("#tag-name", Input).value = taken["tag_name"]
        await pilot.click("#tag-add")
        await settle(pilot)
        messages = [n.message for n in pilot.app._notifications]
        assert (f"scope: tag {taken['tag_type']}:{taken['tag_name']} already exists with scope 'global'"
                in messages)
        assert isinstance(pilot.app.screen, JobScreen)

        await pilot.press("a")
        await pilot.pause()
        await fill_in(pilot, "mine", "check")
        await settle(pilot)
        assert ("mine", "check", username) in tags_of(site, row["id"])
        await pilot.press("d")
        await pilot.pause()
        assert [t["name"] for t in pilot.app.screen.tags] == ["check"]  # global tags are not the user's to remove
        await pilot.press("enter")
        await settle(pilot)
        assert ("mine", "check", username) not in tags_of(site, row["id"])
        assert screen.query_one("#tags", DataTable).row_count >= 1

    run(source, scenario)


def test_a_user_cannot_see_another_users_job(site):
    username = site.accounts["user"].username
    row = one(site, "SELECT id FROM job WHERE hpc_user != ? ORDER BY id LIMIT 1", username)
    source = local(site, as_user=username)

    async def scenario(pilot):
        screen = await open_job(pilot, row["id"])
        expected = f"Job {row['id']} cannot be shown: no job with id {row['id']}"
        assert rendered(screen.query_one("#job-error", Static)).strip() == expected
        assert screen.job is None
        await pilot.press("a", "2", "s")  # nothing to act on: no crash, still the message
        await settle(pilot)
        assert pilot.app.screen is screen and rendered(screen.query_one("#job-error", Static)).strip() == expected
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(pilot.app.screen, JobScreen)

    run(source, scenario)


def test_script_and_names_with_markup_show_literally(site):
    row = one(site, "SELECT id, meta_data FROM job WHERE job_state = 'completed' ORDER BY id LIMIT 1 OFFSET 3")
    script = "#!/bin/bash\necho [bold]x[/] [link=https://example.com]click[/link] [red]"
    meta = {**json.loads(row["meta_data"]), "jobName": "[b]name[/b]", "jobScript": script,
            "slurmInfo": "Partition=[magenta]work[/]", "message": "[blink]hi"}
    source = local(site)

    async def scenario(pilot):
        screen = await open_job(pilot, row["id"])
        assert "Name [b]name[/b]" not in rendered(screen.query_one("#summary"))
        with site.db() as conn:
            conn.execute("UPDATE job SET meta_data = ? WHERE id = ?", (json.dumps(meta), row["id"]))
        await pilot.press("r")  # reload: the changed metadata shows
        await settle(pilot)
        assert "Name [b]name[/b]" in rendered(screen.query_one("#summary"))
        assert rendered(screen.query_one("#message")) == "Message: [blink]hi"
        await pilot.press("4")
        await pilot.pause()
        assert rendered(screen.query_one("#script-text")).splitlines()[:2] == script.splitlines()
        await pilot.press("5")
        await pilot.pause()
        assert "Partition=[magenta]work[/]" in rendered(screen.query_one("#meta-text"))

    try:
        run(source, scenario)
    finally:
        with site.db() as conn:
            conn.execute("UPDATE job SET meta_data = ? WHERE id = ?", (row["meta_data"], row["id"]))


def test_every_tab_renders_at_80x24(site):
    row = one(site, "SELECT id, job_id FROM job WHERE cluster = 'alex' AND job_state = 'completed' AND num_acc > 1"
                    " ORDER BY id LIMIT 1")
    source = local(site)

    async def scenario(pilot):
        screen = await open_job(pilot, row["id"])
        assert rendered(screen.query_one("#summary")).startswith(f"Job {row['job_id']} @ alex")
        for key, widget in (("2", "#footprint"), ("3", "#stats"), ("4", "#script-text"), ("5", "#meta-text"),
                            ("6", "#report-text"), ("1", "#plot")):
            await pilot.press(key)
            await settle(pilot)
            assert screen.query_one(widget).region.height > 0, widget
            svg = pilot.app.export_screenshot()
            assert "Job&#160;" in svg  # the header stays above every tab
        await settle(pilot)
        plot = screen.query_one("#plot", MetricPlot)
        assert plot.labels and plot.size.width <= 80
        # a resize redraws the plot at the new size, with the same data
        labels = list(plot.labels)
        await pilot.resize_terminal(140, 40)
        await settle(pilot)
        assert plot.size.width > 100 and plot.labels == labels
        assert "elapsed (h:mm)" in rendered(plot)

    run(source, scenario, size=(80, 24))


def test_remote_mode_shows_what_local_mode_shows(site):
    """Over the server's GraphQL API (no archive access): the same header, tables, plots, scopes and tags."""
    small = one(site, "SELECT id FROM job WHERE cluster = 'fritz' AND job_state = 'completed' AND num_nodes BETWEEN 2 AND 8"
                      " ORDER BY id LIMIT 1 OFFSET 1")
    gpu = one(site, "SELECT id, num_acc FROM job WHERE cluster = 'alex' AND job_state = 'completed'"
                    " AND num_acc BETWEEN 2 AND 8 ORDER BY id DESC LIMIT 1")
    seen: dict[str, dict[str, Any]] = {}

    def looking(mode: str):
        async def scenario(pilot):
            screen = await open_job(pilot, small["id"])
            await settle(pilot)
            plot = screen.query_one("#plot", MetricPlot)
            seen[mode] = {"summary": rendered(screen.query_one("#summary")),
                          "metrics": list(screen.metrics), "labels": list(plot.labels),
                          "series": plot.plot["series"]}
            for key, widget in (("2", "#footprint"), ("2", "#energy"), ("3", "#stats")):
                await pilot.press(key)
                await settle(pilot)
                seen[mode][widget] = (cells(screen.query_one(widget, DataTable)) if widget == "#stats"
                                      else rendered(screen.query_one(widget)))
            assert "Total" in seen[mode]["#energy"] and "(avg)" in seen[mode]["#footprint"]
            await pilot.press("1")
            screen = await open_job(pilot, gpu["id"])
            await pilot.press("left_square_bracket")  # the last metric: acc_power
            await pilot.press("s")
            await settle(pilot)
            plot = screen.query_one("#plot", MetricPlot)
            assert plot.plot["metric"] == "acc_power"
            seen[mode]["gpu"] = (plot.plot["scope"], len(plot.labels), screen.scopes_of["acc_power"])
        return scenario

    run(local(site), looking("local"), clock=lambda: 0)
    run(remote(site), looking("remote"), clock=lambda: 0)
    assert seen["remote"] == seen["local"]
    assert seen["remote"]["gpu"] == ("accelerator", gpu["num_acc"], ["node", "accelerator"])
    assert len(seen["remote"]["labels"]) >= 2 and seen["remote"]["#stats"]


def test_remote_tags_change_the_servers_database(site):
    username = site.accounts["user"].username
    row = one(site, "SELECT id FROM job WHERE hpc_user = ? AND job_state = 'completed' ORDER BY id DESC LIMIT 1",
              username)
    before = tags_of(site, row["id"])

    async def scenario(pilot):
        await open_job(pilot, row["id"])
        await pilot.press("a")
        await pilot.pause()
        assert pilot.app.screen.scopes == [(username, f"private ({username})")]
        await fill_in(pilot, "remote", "seen")
        await settle(pilot)
        assert tags_of(site, row["id"]) == before | {("remote", "seen", username)}
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("enter")
        await settle(pilot)
        assert tags_of(site, row["id"]) == before

    run(remote(site, "user"), scenario)


def test_a_running_jobs_plot_follows_the_metric_store(site, monkeypatch):
    """Remote mode: a running job's plot shows the server's built-in store and takes in new samples on refresh."""
    import time

    import httpx
    from support.site import auth, token

    row = one(site, "SELECT id, cluster, resources FROM job WHERE job_state = 'running' AND job_id >= 7000000"
                    " ORDER BY id LIMIT 1")
    hosts = [r["hostname"] for r in json.loads(row["resources"])]
    headers = auth(token(site.folder, ["api"]))
    now = int(time.time()) // 60 * 60

    def write(ts: int, value: float) -> None:
        body = "\n".join(f"cpu_load,cluster={row['cluster']},hostname={h},type=node value={value} {ts}" for h in hosts)
        r = httpx.post(f"{site.url}/api/write?cluster={row['cluster']}", content=body.encode(), headers=headers)
        assert r.status_code == 200, r.text

    for minutes_ago, value in ((4, 10.0), (3, 20.0), (2, 30.0)):
        write(now - 60 * minutes_ago, value)
    monkeypatch.setattr(JobScreen, "refresh_seconds", 0.5)

    def newest(plot: MetricPlot) -> list[float]:
        return [[v for v in s["data"] if v is not None][-1] for s in plot.plot["series"]]

    async def scenario(pilot):
        screen = await open_job(pilot, row["id"])
        assert screen.metrics == ["cpu_load"]  # the only metric the store has for it
        plot = screen.query_one("#plot", MetricPlot)
        assert plot.labels == hosts and newest(plot) == [30.0] * len(hosts)
        write(now - 60, 42.0)
        await pilot.pause(1.2)  # past the refresh
        await settle(pilot)
        assert newest(screen.query_one("#plot", MetricPlot)) == [42.0] * len(hosts)

    run(remote(site), scenario)


def core_report(site, db_id: int) -> tuple[dict[str, Any], list[str]]:
    """The report as the core computes and renders it for the job, apart from the terminal UI's sources."""
    from cc_backend.archive.fs import FileArchive
    from cc_backend.db.engine import make_engine
    from cc_backend.jobs.query import get_job
    from cc_backend.jobs.report import efficiency_report, render_report_text
    from cc_backend.taggers.jobclasses import JobClassifier

    engine = make_engine(f"sqlite:///{site.folder / 'job.db'}")
    try:
        report = efficiency_report(FileArchive(site.folder / "archive"), get_job(engine, db_id),
                                   classifier=JobClassifier())
    finally:
        engine.dispose()
    return report, [line.rstrip() for line in render_report_text(report).splitlines()]


REPORT_SIZE = (200, 60)  # wide enough that no line of the report wraps


def test_the_report_tab_shows_the_efficiency_report_when_first_opened(site):
    row = one(site, "SELECT id, num_nodes FROM job WHERE cluster = 'fritz' AND job_state = 'completed'"
                    " AND num_nodes BETWEEN 2 AND 8 ORDER BY id LIMIT 1")
    report, expected = core_report(site, row["id"])
    source = local(site)

    async def scenario(pilot):
        screen = await open_job(pilot, row["id"])
        assert "report" not in screen.built_tabs and screen.report_text is None  # built when first shown
        await pilot.press("6")
        await settle(pilot)
        assert screen.query_one(TabbedContent).active == "report"
        shown = rendered(screen.query_one("#report-text")).splitlines()
        assert shown == expected
        assert screen.focused is screen.query_one("#report-scroll")
        # a line per check with its verdict, the load balance too (a multi-node job), and the summary
        assert [c["key"] for c in report["checks"]][-1] == "imbalance"
        for check in report["checks"]:
            assert any(line.startswith(check["label"]) and f" {check['verdict']} " in line for line in shown)
        summary = next(i for i, line in enumerate(shown) if line.startswith("Summary: "))
        assert " ".join(line.strip() for line in shown[summary:]) == f"Summary: {report['summary']}"
        # an 80-column terminal shows every line whole: nothing to scroll sideways
        await pilot.resize_terminal(80, 24)
        await settle(pilot)
        scroll = screen.query_one("#report-scroll")
        assert rendered(screen.query_one("#report-text")).splitlines() == expected
        assert max(map(len, expected)) <= scroll.scrollable_content_region.width
        assert scroll.max_scroll_x == 0

    run(source, scenario, size=REPORT_SIZE)


def test_remote_mode_shows_the_servers_report_or_computes_it_from_graphql(site):
    username = site.accounts["user"].username
    row = one(site, "SELECT id FROM job WHERE hpc_user = ? AND job_state = 'completed' ORDER BY id LIMIT 1",
              username)
    expected = core_report(site, row["id"])[1]
    seen: dict[str, str] = {}

    def looking(mode: str):
        async def scenario(pilot):
            screen = await open_job(pilot, row["id"])
            await pilot.press("6")
            await settle(pilot)
            seen[mode] = rendered(screen.query_one("#report-text"))
            assert screen.error is None  # only the tab lacks its data, the job is shown
        return scenario

    run(local(site, as_user=username), looking("local"), size=REPORT_SIZE)
    run(remote(site), looking("remote admin"), size=REPORT_SIZE)
    from support.site import token

    # the user's own token with the api role: /userapi shows the user their own job
    api_user = RemoteSource(site.url, token(site.folder, ["user", "api"], sub=username))
    api_user.connect()
    run(api_user, looking("remote user+api"), size=REPORT_SIZE)
    # a plain user token is enough for GraphQL, not for the REST route of the report
    run(remote(site, "user"), looking("remote user"), size=REPORT_SIZE)
    assert seen["local"].splitlines() == expected
    assert seen["remote admin"].splitlines() == expected
    assert seen["remote user+api"].splitlines() == expected
    # another user's job is not there for the user's token, as on every route
    other = one(site, "SELECT id FROM job WHERE hpc_user != ? ORDER BY id LIMIT 1", username)["id"]
    api_user = RemoteSource(site.url, token(site.folder, ["user", "api"], sub=username))
    try:
        with pytest.raises(NotFound) as refused:
            api_user.job_report(other)
        assert refused.value.message == f"no job with id {other}"
    finally:
        api_user.close()
    # a plain user token: the same core function computes the report here from what GraphQL answers that user
    # (the test site has no emission constant and no rules of its own, so nothing differs but the origin line)
    computed = seen["remote user"].splitlines()
    origin = computed[1:computed.index("")]
    assert computed[:1] + computed[len(origin) + 1:] == expected
    assert " ".join(line.strip() for line in origin) == (
        "(computed in this terminal from the server's GraphQL data, with the shipped job-class rules and no CO2 "
        "estimate: a token with the api role shows the server's own report)")
