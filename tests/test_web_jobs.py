"""The job list (/monitoring/jobs/) and the search bar in a real browser, checked against the demo site's database."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from support.browser import canvas_is_drawn, login, screenshot
from support.cli import cli
from support.web import login as http_login

JOB_LIST = "/monitoring/jobs/"
PLOTTED = ".job-plot[data-plotted]"


def open_list(page, demo_site, role: str, query: str) -> None:
    """Log in as ``role`` and open the job list with ``query`` (the login redirect keeps only a path)."""
    login(page, demo_site, role, "/")
    page.wait_for_load_state("networkidle")
    page.goto(demo_site.url + JOB_LIST + "?" + query)


def row_ids(page) -> list[int]:
    return [int(v) for v in page.locator("[data-testid=job-list] tbody tr[data-db-id]").evaluate_all(
        "rows => rows.map(r => r.dataset.dbId)")]


def shown_count(page) -> int:
    return int(page.locator("[data-testid=job-count]").inner_text().split()[0])


def add_admin(demo_site, username: str) -> str:
    """A fresh admin account of this test alone (settings it saves touch no other test)."""
    password = "Fresh-pw-1"
    r = cli(demo_site.folder, "user", "add", username, "--role", "admin", "--password-stdin", input=password + "\n")
    assert r.returncode == 0, r.stderr
    return password


def login_as(page, demo_site, username: str, password: str, target: str) -> None:
    page.goto(f"{demo_site.url}/login?redirect={target}")
    page.fill("#username", username)
    page.fill("#password", password)
    with page.expect_navigation():
        page.click("button[type=submit]")


def settle(page) -> None:
    """Wait until the row plots and the favicon are in (leaving earlier aborts their requests: reported problems)."""
    page.wait_for_selector("body[data-plots]", state="attached", timeout=15000)
    page.wait_for_load_state("networkidle")


def wait_for_plots(page, expected: int) -> None:
    page.wait_for_selector("body[data-plots=drawn]", state="attached", timeout=15000)
    assert page.locator(PLOTTED).count() == expected


def test_the_list_shows_a_page_of_jobs_with_their_plots(page, demo_site):
    login(page, demo_site, "admin", JOB_LIST + "?itemsPerPage=10")
    with demo_site.db() as conn:
        total = conn.execute("SELECT count(*) FROM job").fetchone()[0]
        newest = [r[0] for r in conn.execute("SELECT id FROM job ORDER BY start_time DESC, id DESC LIMIT 10")]
    assert shown_count(page) == total
    assert row_ids(page) == newest
    assert page.locator("[data-testid=page-info]").inner_text() == f"Jobs 1–10 of {total}"
    metrics = page.locator("[data-testid=job-list] thead th.text-center").count()
    assert metrics == 4  # the default selection: cpu_load, flops_any, mem_bw, mem_used
    plots = page.locator(".job-list .plot")
    assert plots.count() == 10 * metrics
    wait_for_plots(page, 10 * metrics)
    # every plot with data drew one line per node (or the min/median/max band); the others say "No data"
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    params = [("dbId", str(i)) for i in newest] + [("metric", m) for m in
                                                    page.locator("#job-list-data").evaluate("e => JSON.parse(e.textContent).metrics")]
    data = httpx.get(demo_site.url + "/monitoring/jobs/plots", params=params + [("width", "200")], cookies=cookies).json()
    with_data = {(job, metric): spec for job, row in data["plots"].items() for metric, spec in row.items() if spec}
    assert with_data, "the demo's archived jobs have series"
    drawn = page.locator(".job-plot[data-plotted]:not([data-plotted=empty])")
    assert drawn.count() == len(with_data)
    for i in range(drawn.count()):
        element = drawn.nth(i)
        spec = with_data[(element.get_attribute("data-job"), element.get_attribute("data-metric"))]
        lines = 3 if "band" in spec else len(spec["series"])
        assert element.get_attribute("data-plotted") == str(lines)
    # upstream's background colouring (plotConfiguration_colorBackground, on by default) of jobs below thresholds
    flagged = sum(1 for spec in with_data.values() if spec.get("level") in ("alert", "caution"))
    assert page.locator(".plot-alert, .plot-caution").count() == flagged
    first = drawn.nth(0)
    assert canvas_is_drawn(page, f".job-plot[data-job='{first.get_attribute('data-job')}']"
                                 f"[data-metric='{first.get_attribute('data-metric')}']")
    settle(page)
    page.goto(demo_site.url + JOB_LIST + "?cluster=fritz&state=completed&itemsPerPage=10")
    settle(page)
    screenshot(page, "jobs-list")


def test_filter_bar_state_and_cluster(page, demo_site):
    login(page, demo_site, "admin", JOB_LIST + "?itemsPerPage=100")
    settle(page)
    page.select_option("#f-cluster", "fritz")
    page.check("#f-state-completed")
    with page.expect_navigation():
        page.click("[data-testid=apply-filters]")
    params = parse_qsl(urlsplit(page.url).query)
    assert params == [("itemsPerPage", "100"), ("cluster", "fritz"), ("state", "completed")]
    settle(page)
    with demo_site.db() as conn:
        want = [r[0] for r in conn.execute("SELECT id FROM job WHERE cluster = 'fritz' AND job_state = 'completed' "
                                           "ORDER BY start_time DESC, id DESC")]
    assert shown_count(page) == len(want) > 0
    assert row_ids(page) == want[:100]
    states = page.locator("[data-testid=job-list] tbody [data-state]").all_inner_texts()
    assert set(states) == {"completed"}
    pills = page.locator("[data-testid=filter-pill]").all_inner_texts()
    assert any("Cluster: fritz" in p for p in pills) and any("State: completed" in p for p in pills)
    # removing the state pill keeps the cluster filter
    with page.expect_navigation():
        page.locator("[data-testid=filter-pill]", has_text="State: completed").click()
    assert parse_qsl(urlsplit(page.url).query) == [("itemsPerPage", "100"), ("cluster", "fritz")]
    settle(page)
    with demo_site.db() as conn:
        assert shown_count(page) == conn.execute("SELECT count(*) FROM job WHERE cluster = 'fritz'").fetchone()[0]


def test_a_url_preset_in_the_browser(page, demo_site):
    with demo_site.db() as conn:
        want = conn.execute("SELECT count(*) FROM job WHERE num_nodes >= 2 AND duration <= 7200").fetchone()[0]
    open_list(page, demo_site, "support", "numNodes=morethan-2&duration=lessthan-7200")
    assert shown_count(page) == want
    assert page.input_value("#f-nodes") == "morethan-2" and page.input_value("#f-duration") == "lessthan-7200"
    settle(page)


@pytest.fixture(scope="module")
def admin_http(demo_site):
    account = demo_site.accounts["admin"]
    return http_login(demo_site.server, account.username, account.password)


def count_of(demo_site, headers, query: str) -> int:
    r = httpx.get(demo_site.url + JOB_LIST + "?" + query, headers=headers)
    assert r.status_code == 200, (query, r.text[-500:])
    return int(re.search(r'data-testid="job-count">(\d+) job', r.text).group(1))


def test_every_preset_kind_matches_the_database(demo_site, admin_http):
    with demo_site.db() as conn:
        one = conn.execute("SELECT id, job_id, hpc_user, project, cluster, subcluster, cluster_partition, "
                           "json_extract(meta_data, '$.jobName'), array_job_id, start_time FROM job "
                           "WHERE array_job_id > 0 ORDER BY id LIMIT 1").fetchone()
        db_id, job_id, user, project, cluster, sub, partition, name, array, start = one
        host = json.loads(conn.execute("SELECT resources FROM job WHERE id = ?", (db_id,)).fetchone()[0])[0]["hostname"]
        tag = conn.execute("SELECT tag_id, count(*) FROM jobtag GROUP BY tag_id ORDER BY 2 DESC").fetchone()
        cases = {
            f"cluster={cluster}": ("cluster = ?", cluster),
            f"subCluster={sub}": ("subcluster = ?", sub),
            f"partition={partition}": ("cluster_partition = ?", partition),
            f"project={project}": ("project = ?", project),
            f"user={user[:3]}": ("hpc_user LIKE ?", f"%{user[:3]}%"),
            f"jobName={name[:4]}": ("json_extract(meta_data, '$.jobName') LIKE ?", f"%{name[:4]}%"),
            "state=running&state=failed": ("job_state IN ('running', 'failed')",),
            "shared=none": ("shared = 'none'",),
            "schedule=interactive": ("json_extract(meta_data, '$.jobName') = 'interactive'",),
            "duration=600-7200": ("duration BETWEEN 600 AND 7200",),
            "numNodes=morethan-1": ("num_nodes >= 1",),
            "numHWThreads=lessthan-64": ("num_hwthreads <= 64",),
            "numAccelerators=1-8": ("num_acc BETWEEN 1 AND 8",),
            "energy=morethan-1": ("energy >= 1",),
            f"node={host}": ("CAST(resources AS TEXT) LIKE ?", f'%"hostname":"{host}"%'),
            f"dbId={db_id}&dbId={db_id + 1}": (f"id IN ({db_id}, {db_id + 1})",),
            f"jobId={job_id}": ("job_id = ?", job_id),
            f"arrayJobId={array}": ("array_job_id = ?", array),
            f"startTime={start - 86400}-{start}": ("start_time BETWEEN ? AND ?", start - 86400, start),
            "startTime=last30d": ("start_time >= strftime('%s','now') - 30*86400",),
            "stat=mem_used-morethan-10": (
                "coalesce(json_extract(CAST(footprint AS TEXT), '$.mem_used_avg'), "
                "json_extract(CAST(footprint AS TEXT), '$.mem_used_max'), "
                "json_extract(CAST(footprint AS TEXT), '$.mem_used_min')) >= 10",),
        }
        if tag:
            cases[f"tag={tag[0]}"] = ("id IN (SELECT job_id FROM jobtag WHERE tag_id = ?)", tag[0])
        expected = {query: conn.execute(f"SELECT count(*) FROM job WHERE {sql[0]}", sql[1:]).fetchone()[0]
                    for query, sql in cases.items()}
    got = {query: count_of(demo_site, admin_http, query + "&itemsPerPage=10") for query in cases}
    assert got == expected
    assert sum(1 for n in expected.values() if n) >= len(expected) - 3  # the presets select real jobs


def test_a_malformed_preset_shows_the_message_and_keeps_the_filter_bar(page, demo_site):
    login(page, demo_site, "admin", "/")
    page.wait_for_load_state("networkidle")
    page.problems.expect("400")
    response = page.goto(demo_site.url + JOB_LIST + "?duration=abc&cluster=alex")
    assert response.status == 400
    assert "duration" in page.locator("[data-testid=filter-error]").inner_text()
    assert page.input_value("#f-duration") == "abc"
    assert "is-invalid" in page.get_attribute("#f-duration", "class")
    assert page.locator("[data-testid=empty]").inner_text() == "Fix the filter above to see jobs."
    settle(page)
    page.fill("#f-duration", "morethan-60")
    with page.expect_navigation():
        page.click("[data-testid=apply-filters]")
    assert page.locator("[data-testid=filter-error]").count() == 0
    with demo_site.db() as conn:
        want = conn.execute("SELECT count(*) FROM job WHERE cluster = 'alex' AND duration >= 60").fetchone()[0]
    assert shown_count(page) == want
    settle(page)


def test_sorting_by_a_column_header_and_by_a_footprint(page, demo_site):
    login(page, demo_site, "admin", JOB_LIST + "?itemsPerPage=25")
    settle(page)
    with page.expect_navigation():
        page.click("[data-testid=job-list] thead a:has-text('Duration')")
    assert ("sort", "duration:desc") in parse_qsl(urlsplit(page.url).query)
    with demo_site.db() as conn:
        want = [r[0] for r in conn.execute("SELECT id FROM job ORDER BY duration DESC, id DESC LIMIT 25")]
    assert row_ids(page) == want
    settle(page)
    with page.expect_navigation():
        page.click("[data-testid=job-list] thead a:has-text('Duration')")  # again: ascending
    with demo_site.db() as conn:
        want = [r[0] for r in conn.execute("SELECT id FROM job ORDER BY duration ASC, id ASC LIMIT 25")]
    assert row_ids(page) == want
    settle(page)
    with page.expect_navigation():
        page.select_option("#sort-select", "foot.mem_used:desc")
    with demo_site.db() as conn:
        value = ("coalesce(json_extract(CAST(footprint AS TEXT), '$.mem_used_avg'), json_extract(CAST(footprint AS "
                 "TEXT), '$.mem_used_max'), json_extract(CAST(footprint AS TEXT), '$.mem_used_min'))")
        want = [r[0] for r in conn.execute(f"SELECT id FROM job ORDER BY {value} DESC, id DESC LIMIT 25")]
    assert row_ids(page) == want
    settle(page)


def test_paging(page, demo_site):
    open_list(page, demo_site, "admin", "itemsPerPage=10&cluster=fritz")
    first = row_ids(page)
    settle(page)
    with page.expect_navigation():
        page.click("[data-testid=next-page]")
    assert ("page", "2") in parse_qsl(urlsplit(page.url).query)
    second = row_ids(page)
    with demo_site.db() as conn:
        total = conn.execute("SELECT count(*) FROM job WHERE cluster = 'fritz'").fetchone()[0]
        want = [r[0] for r in conn.execute("SELECT id FROM job WHERE cluster = 'fritz' "
                                           "ORDER BY start_time DESC, id DESC LIMIT 10 OFFSET 10")]
    assert second == want and not set(first) & set(second)
    assert page.locator("[data-testid=page-info]").inner_text() == f"Jobs 11–20 of {total}"
    settle(page)
    page.goto(demo_site.url + JOB_LIST + "?itemsPerPage=10&cluster=fritz&page=999")
    last = -(-total // 10)
    assert page.locator("[data-testid=empty]").inner_text() == f"Page 999 is past the last page; go to page {last}."
    settle(page)


def test_the_page_size_is_saved_for_the_user(page, demo_site):
    password = add_admin(demo_site, "jobs-pagesize")
    login_as(page, demo_site, "jobs-pagesize", password, JOB_LIST)
    assert len(row_ids(page)) == 50  # the default
    settle(page)
    with page.expect_navigation():
        page.select_option("[data-testid=page-size]", "10")
    assert len(row_ids(page)) == 10
    settle(page)
    page.reload()
    assert len(row_ids(page)) == 10 and page.input_value("[data-testid=page-size]") == "10"
    settle(page)
    with demo_site.db() as conn:
        assert conn.execute("SELECT value FROM configuration WHERE username = 'jobs-pagesize' "
                            "AND confkey = 'plot_list_jobsPerPage'").fetchone() == ("10",)


def test_the_metric_selection_is_saved_per_cluster(page, demo_site):
    password = add_admin(demo_site, "jobs-metrics")
    login_as(page, demo_site, "jobs-metrics", password, "/")
    page.wait_for_load_state("networkidle")
    page.goto(demo_site.url + JOB_LIST + "?cluster=fritz&itemsPerPage=10")
    settle(page)
    page.click("[data-testid=metrics-button]")
    boxes = page.locator("[data-testid=metric-choices] input")
    for i in range(boxes.count()):
        boxes.nth(i).uncheck()
    page.check("#metric-mem_bw")
    page.check("#metric-clock")
    with page.expect_navigation():
        page.click("[data-testid=save-metrics]")
    headers = [h.split(" (")[0] for h in page.locator("[data-testid=job-list] thead th.text-center").all_inner_texts()]
    assert sorted(headers) == ["clock", "mem_bw"]
    settle(page)
    page.reload()
    assert page.locator(".job-list .plot").count() == len(row_ids(page)) * 2
    wait_for_plots(page, len(row_ids(page)) * 2)
    with demo_site.db() as conn:
        value = conn.execute("SELECT value FROM configuration WHERE username = 'jobs-metrics' "
                             "AND confkey = 'metricConfig_jobListMetrics:fritz'").fetchone()[0]
    assert sorted(json.loads(value)) == ["clock", "mem_bw"]
    settle(page)
    # the other cluster keeps the default selection
    page.goto(demo_site.url + JOB_LIST + "?cluster=alex&itemsPerPage=10")
    assert page.locator("[data-testid=job-list] thead th.text-center").count() == 4
    settle(page)


def test_a_user_sees_only_their_own_jobs(page, demo_site):
    username = demo_site.accounts["user"].username
    login(page, demo_site, "user", JOB_LIST + "?itemsPerPage=100")
    with demo_site.db() as conn:
        mine = conn.execute("SELECT count(*) FROM job WHERE hpc_user = ?", (username,)).fetchone()[0]
        foreign = conn.execute("SELECT id FROM job WHERE hpc_user != ? LIMIT 1", (username,)).fetchone()[0]
    assert shown_count(page) == mine > 0
    users = set(page.locator("[data-testid=job-user]").all_inner_texts())
    assert users == {username}
    settle(page)
    page.goto(demo_site.url + JOB_LIST + f"?dbId={foreign}")
    assert page.locator("[data-testid=empty]").inner_text() == "No jobs match these filters."
    assert shown_count(page) == 0
    # nor through the plot data
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    r = httpx.get(demo_site.url + "/monitoring/jobs/plots", params={"dbId": foreign, "metric": "mem_bw"},
                  cookies=cookies)
    assert r.status_code == 200 and r.json() == {"plots": {}}


def test_the_plot_data_needs_a_session_and_sane_limits(demo_site, admin_http):
    url = demo_site.url + "/monitoring/jobs/plots"
    assert httpx.get(url, params={"dbId": 1, "metric": "mem_bw"}).status_code == 401
    for params, field in (({"dbId": "x", "metric": "a"}, "dbId"), ({"metric": "a"}, "dbId"),
                          ({"dbId": list(range(1, 102)), "metric": "a"}, "dbId"), ({"dbId": 1}, "metric"),
                          ({"dbId": 1, "metric": "a", "width": "5"}, "width")):
        r = httpx.get(url, params=params, headers=admin_http)
        assert r.status_code == 400 and r.json()["error"].startswith(field), (params, r.text)


def test_search_bar(page, demo_site):
    with demo_site.db() as conn:
        db_id, job_id = conn.execute("SELECT id, job_id FROM job GROUP BY job_id HAVING count(*) = 1 "
                                     "ORDER BY id LIMIT 1").fetchone()
        name, count = conn.execute("SELECT json_extract(meta_data, '$.jobName') n, count(*) FROM job GROUP BY n "
                                   "HAVING count(*) > 1 ORDER BY 2 DESC LIMIT 1").fetchone()
    account = demo_site.accounts["admin"]
    headers = http_login(demo_site.server, account.username, account.password)
    r = httpx.get(demo_site.url + "/search", params={"searchId": f"jobId:{job_id}"}, headers=headers)
    assert r.status_code == 302 and r.headers["location"].endswith(f"/monitoring/job/{db_id}")
    login(page, demo_site, "admin", "/")
    page.wait_for_load_state("networkidle")
    page.fill("input[name=searchId]", f"jobName:{name}")
    with page.expect_navigation():
        page.press("input[name=searchId]", "Enter")
    assert urlsplit(page.url).path == JOB_LIST and ("jobName", name) in parse_qsl(urlsplit(page.url).query)
    with demo_site.db() as conn:
        want = conn.execute("SELECT count(*) FROM job WHERE json_extract(meta_data, '$.jobName') LIKE ? "
                            "AND start_time >= strftime('%s','now') - 30*86400", (f"%{name}%",)).fetchone()[0]
    assert shown_count(page) == want
    settle(page)
    page.fill("input[name=searchId]", "color:blue")
    with page.expect_navigation():
        page.press("input[name=searchId]", "Enter")
    assert "unknown search type 'color'" in page.locator("[data-testid=search-message]").inner_text()
    assert page.input_value("input[name=searchId]") == "color:blue"  # kept, to correct it
    assert page.locator("[data-testid=filter-form]").count() == 1
    settle(page)


def test_a_manager_sees_their_projects_jobs(demo_site):
    account = demo_site.accounts["manager"]
    headers = http_login(demo_site.server, account.username, account.password)
    with demo_site.db() as conn:
        want = conn.execute("SELECT count(*) FROM job WHERE hpc_user = ? OR project IN (%s)"
                            % ",".join("?" * len(account.projects)), (account.username, *account.projects)).fetchone()[0]
        total = conn.execute("SELECT count(*) FROM job").fetchone()[0]
    assert 0 < count_of(demo_site, headers, "itemsPerPage=10") == want < total
    r = httpx.get(demo_site.url + JOB_LIST, params={"itemsPerPage": 100}, headers=headers)
    projects = set(re.findall(r'data-testid="job-project">([^<]+)<', r.text))
    assert projects == set(account.projects)
