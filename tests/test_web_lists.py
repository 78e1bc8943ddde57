"""The users, projects, user, tags and analysis pages in a real browser, checked against the demo database."""

from __future__ import annotations

import uuid

import httpx
from support.browser import canvas_is_drawn, login, screenshot
from support.site import auth, token
from support.web import login as http_login

SHORT = 300  # main.short-running-jobs-duration of the demo site (the default)


def _shown_table(page) -> list[tuple[str, dict[str, int]]]:
    """(id, {column: number}) of each row of the users/projects table, in the order shown."""
    rows = page.locator("[data-testid=group-table] tbody tr")
    out = []
    for i in range(rows.count()):
        row = rows.nth(i)
        numbers = {}
        for cell in row.locator("td[data-col]").all():
            numbers[cell.get_attribute("data-col")] = int(cell.inner_text())
        out.append((row.get_attribute("data-id"), numbers))
    return out


def _manager_scope(demo_site) -> tuple[str, list[str]]:
    manager = demo_site.accounts["manager"]
    return "(hpc_user = ? OR project IN ({}))".format(", ".join("?" * len(manager.projects))), [
        manager.username, *manager.projects]


def test_users_list_of_a_manager_counts_the_jobs_of_their_projects_per_user(page, demo_site):
    login(page, demo_site, "manager", "/monitoring/users/")
    assert page.locator("h1").inner_text().strip() == "Users"
    scope, args = _manager_scope(demo_site)
    with demo_site.db() as conn:
        expected = dict(conn.execute(f"SELECT hpc_user, count(*) FROM job WHERE {scope} GROUP BY hpc_user",
                                     args).fetchall())
        short = dict(conn.execute(f"SELECT hpc_user, count(*) FROM job WHERE {scope} AND job_state != 'running' "
                                  f"AND duration < {SHORT} GROUP BY hpc_user", args).fetchall())
    shown = _shown_table(page)
    assert {user: numbers["totalJobs"] for user, numbers in shown} == expected
    # not running jobs only: a running job's duration grows with the clock
    with demo_site.db() as conn:
        running_users = {u for (u,) in conn.execute(f"SELECT DISTINCT hpc_user FROM job WHERE {scope} AND "
                                                     "job_state = 'running'", args)}
    for user, numbers in shown:
        if user not in running_users:
            assert numbers["shortJobs"] == short.get(user, 0), user
    # most jobs first, ties in name order
    assert [user for user, _ in shown] == sorted(expected, key=lambda user: (-expected[user], user))
    assert page.locator("[data-testid=row-count]").inner_text().startswith(f"{len(expected)} users")
    first = shown[0][0]
    assert page.locator(f"tr[data-id='{first}'] a").get_attribute("href") == f"/monitoring/user/{first}"
    screenshot(page, "users-list")


def test_sorting_by_a_column_orders_the_rows_and_a_second_click_reverses_it(page, demo_site):
    login(page, demo_site, "manager", "/monitoring/users/")
    with page.expect_navigation():
        page.click("a[data-sort=totalCoreHours]")
    hours = [numbers["totalCoreHours"] for _, numbers in _shown_table(page)]
    assert hours == sorted(hours, reverse=True) and len(set(hours)) > 1
    assert page.locator("th[aria-sort=descending] a").get_attribute("data-sort") == "totalCoreHours"
    with page.expect_navigation():
        page.click("a[data-sort=totalCoreHours]")
    assert [numbers["totalCoreHours"] for _, numbers in _shown_table(page)] == sorted(hours)
    with page.expect_navigation():
        page.click("a[data-sort=id]")
    names = [user for user, _ in _shown_table(page)]
    assert names == sorted(names)
    assert "sort=id" in page.url and "order=asc" in page.url


def test_the_name_and_cluster_filters_narrow_the_list_and_an_empty_result_says_so(page, demo_site):
    scope, args = _manager_scope(demo_site)
    with demo_site.db() as conn:
        expected = dict(conn.execute(f"SELECT hpc_user, count(*) FROM job WHERE {scope} AND cluster = 'alex' "
                                     "GROUP BY hpc_user", args).fetchall())
    login(page, demo_site, "manager", "/monitoring/users/")
    page.select_option("#filter-cluster", "alex")
    with page.expect_navigation():
        page.click("form[data-testid=list-filters] button[type=submit]")
    assert {user: numbers["totalJobs"] for user, numbers in _shown_table(page)} == expected
    page.fill("#filter-name", "no-such-user-" + uuid.uuid4().hex[:6])
    with page.expect_navigation():
        page.click("form[data-testid=list-filters] button[type=submit]")
    assert page.locator("[data-testid=empty]").inner_text() == "No jobs match these filters."


def test_projects_list_of_a_manager_shows_their_projects_and_links_to_the_job_list(page, demo_site):
    login(page, demo_site, "manager", "/monitoring/projects/")
    scope, args = _manager_scope(demo_site)
    with demo_site.db() as conn:
        expected = dict(conn.execute(f"SELECT project, count(*) FROM job WHERE {scope} GROUP BY project",
                                     args).fetchall())
    shown = _shown_table(page)
    assert {project: numbers["totalJobs"] for project, numbers in shown} == expected
    project = shown[0][0]
    assert page.locator(f"tr[data-id='{project}'] a").get_attribute("href") == f"/monitoring/jobs/?project={project}"


def test_a_user_gets_a_403_page_for_the_users_and_projects_lists(page, demo_site):
    login(page, demo_site, "user")
    page.problems.expect("403")
    for path in ("/monitoring/users/", "/monitoring/projects/"):
        response = page.goto(demo_site.url + path, wait_until="networkidle")
        assert response.status == 403
        assert page.locator("h1").inner_text() == "403 Forbidden"
        assert page.locator("[data-testid=group-table]").count() == 0


def test_a_bad_sort_or_cluster_in_the_url_is_a_400_page_naming_the_field(demo_site):
    manager = demo_site.accounts["manager"]
    headers = http_login(demo_site.server, manager.username, manager.password)
    r = httpx.get(demo_site.url + "/monitoring/users/?sort=nonsense", headers=headers)
    assert r.status_code == 400 and "sort must be one of" in r.text
    r = httpx.get(demo_site.url + "/monitoring/projects/?cluster=nowhere", headers=headers)
    assert r.status_code == 400 and "cluster: no cluster" in r.text
    r = httpx.get(demo_site.url + "/monitoring/users/?startTime=yesterday", headers=headers)
    assert r.status_code == 400 and "startTime" in r.text


# ------------------------------------------------------------------------------ user page

def test_the_user_page_shows_the_users_totals_histograms_and_recent_jobs(page, demo_site):
    account = demo_site.accounts["user"]
    login(page, demo_site, "user", f"/monitoring/user/{account.username}")
    with demo_site.db() as conn:
        total = conn.execute("SELECT count(*) FROM job WHERE hpc_user = ?", (account.username,)).fetchone()[0]
        newest = conn.execute("SELECT id FROM job WHERE hpc_user = ? ORDER BY start_time DESC, id DESC LIMIT 1",
                              (account.username,)).fetchone()[0]
    assert total > 0
    assert int(page.locator("[data-testid=total-jobs]").inner_text()) == total
    page.wait_for_selector("[data-testid=hist-duration][data-plotted='1']")
    page.wait_for_selector("[data-testid=hist-nodes][data-plotted='1']")
    assert canvas_is_drawn(page, "[data-testid=hist-duration]")
    assert canvas_is_drawn(page, "[data-testid=hist-nodes]")
    # one histogram per footprint metric of the clusters: each drew or says it has no jobs
    metric_plots = page.locator("[data-testid=metric-histograms] .plot")
    assert metric_plots.count() >= 4
    page.wait_for_function("() => [...document.querySelectorAll('#metric-histograms .plot')]"
                           ".every(e => e.dataset.plotted)")
    assert page.locator("#metric-histograms .plot[data-plotted='1']").count() >= 1
    rows = page.locator("[data-testid=recent-jobs] tbody tr")
    assert rows.count() == min(25, total)
    assert rows.first.locator("a").get_attribute("href") == f"/monitoring/job/{newest}"
    assert page.locator("[data-testid=all-jobs]").get_attribute("href") == f"/monitoring/jobs/?user={account.username}"
    assert page.locator("[data-testid=user-roles]").count() == 0  # roles and projects are for admins
    screenshot(page, "user-view")


def test_a_user_may_not_open_another_users_page(page, demo_site):
    other = demo_site.accounts["other"].username
    login(page, demo_site, "user")
    page.problems.expect("403")
    response = page.goto(f"{demo_site.url}/monitoring/user/{other}")
    assert response.status == 403
    assert page.locator("h1").inner_text() == "403 Forbidden"
    assert page.locator("[data-testid=total-jobs]").count() == 0
    assert other not in page.locator("main").inner_text()


def test_a_manager_sees_only_the_jobs_of_their_projects_on_a_users_page_and_an_admin_sees_roles(page, demo_site):
    other = demo_site.accounts["other"]
    scope, args = _manager_scope(demo_site)
    with demo_site.db() as conn:
        visible = conn.execute(f"SELECT count(*) FROM job WHERE hpc_user = ? AND {scope}",
                               [other.username, *args]).fetchone()[0]
        every = conn.execute("SELECT count(*) FROM job WHERE hpc_user = ?", (other.username,)).fetchone()[0]
    login(page, demo_site, "manager", f"/monitoring/user/{other.username}")
    assert int(page.locator("[data-testid=total-jobs]").inner_text()) == visible
    page.context.clear_cookies()
    login(page, demo_site, "admin", f"/monitoring/user/{other.username}")
    assert int(page.locator("[data-testid=total-jobs]").inner_text()) == every
    assert page.locator("[data-testid=user-roles]").inner_text() == "user"


def test_an_unknown_user_without_jobs_is_a_404_page(page, demo_site):
    login(page, demo_site, "admin")
    page.problems.expect("404")
    response = page.goto(demo_site.url + "/monitoring/user/nobody-" + uuid.uuid4().hex[:6])
    assert response.status == 404


# ------------------------------------------------------------------------------ tags

def _tag_jobs(demo_site, job_ids: list[int], tag_type: str, name: str, scope: str = "global") -> None:
    jwt = token(demo_site.folder, ["admin", "api"], sub=demo_site.accounts["admin"].username)
    for job_id in job_ids:
        r = httpx.post(f"{demo_site.url}/api/jobs/tag_job/{job_id}", headers=auth(jwt),
                       json=[{"type": tag_type, "name": name, "scope": scope}])
        assert r.status_code == 200, r.text


def test_tags_page_counts_equal_the_database_and_an_admin_deletes_a_tag(page, demo_site):
    name = "lists-" + uuid.uuid4().hex[:8]
    with demo_site.db() as conn:
        job_ids = [i for (i,) in conn.execute("SELECT id FROM job ORDER BY id LIMIT 3")]
    _tag_jobs(demo_site, job_ids, "listtest", name)
    login(page, demo_site, "admin", "/monitoring/tags/")
    with demo_site.db() as conn:
        counts = dict(conn.execute("SELECT tag.id, count(jobtag.job_id) FROM tag LEFT JOIN jobtag "
                                   "ON jobtag.tag_id = tag.id WHERE tag.tag_scope IN ('global', 'admin', ?) "
                                   "GROUP BY tag.id", (demo_site.accounts["admin"].username,)).fetchall())
        tag_id = conn.execute("SELECT id FROM tag WHERE tag_name = ?", (name,)).fetchone()[0]
    tags = page.locator("[data-testid=tag]")
    shown = {int(tags.nth(i).get_attribute("data-tag-id")): int(tags.nth(i).locator("[data-testid=tag-count]").inner_text())
             for i in range(tags.count())}
    assert shown == counts  # an admin sees every shared tag, used or not; private ones are their owners'
    assert shown[tag_id] == 3
    ours = page.locator(f"[data-testid=tag][data-tag-id='{tag_id}']")
    assert ours.locator("a").get_attribute("href") == f"/monitoring/jobs/?tag={tag_id}"
    assert page.locator("[data-testid=tag-type][data-type=listtest]").count() == 1
    screenshot(page, "tags")
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        ours.locator("[data-testid=delete-tag]").click()
    assert page.locator("[data-testid=deleted]").count() == 1
    assert page.locator(f"[data-testid=tag][data-tag-id='{tag_id}']").count() == 0
    with demo_site.db() as conn:
        assert conn.execute("SELECT count(*) FROM tag WHERE id = ?", (tag_id,)).fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM jobtag WHERE tag_id = ?", (tag_id,)).fetchone()[0] == 0


def test_declining_the_confirmation_keeps_the_tag(page, demo_site):
    name = "lists-" + uuid.uuid4().hex[:8]
    with demo_site.db() as conn:
        job_id = conn.execute("SELECT id FROM job ORDER BY id DESC LIMIT 1").fetchone()[0]
    _tag_jobs(demo_site, [job_id], "listtest", name)
    login(page, demo_site, "admin", "/monitoring/tags/")
    with demo_site.db() as conn:
        tag_id = conn.execute("SELECT id FROM tag WHERE tag_name = ?", (name,)).fetchone()[0]
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.locator(f"[data-testid=tag][data-tag-id='{tag_id}'] [data-testid=delete-tag]").click()
    page.wait_for_timeout(300)
    assert page.url == demo_site.url + "/monitoring/tags/"
    with demo_site.db() as conn:
        assert conn.execute("SELECT count(*) FROM tag WHERE id = ?", (tag_id,)).fetchone()[0] == 1


def test_a_user_sees_their_tags_with_counts_of_their_jobs_and_no_delete_buttons(page, demo_site):
    account = demo_site.accounts["user"]
    login(page, demo_site, "user", "/monitoring/tags/")
    with demo_site.db() as conn:
        used = dict(conn.execute(
            "SELECT tag.id, count(*) FROM tag JOIN jobtag ON jobtag.tag_id = tag.id JOIN job ON job.id = jobtag.job_id "
            "WHERE job.hpc_user = ? AND tag.tag_scope IN ('global', ?) GROUP BY tag.id",
            (account.username, account.username)).fetchall())
        private = [i for (i,) in conn.execute("SELECT id FROM tag WHERE tag_scope = ?", (account.username,))]
        hidden = [i for (i,) in conn.execute("SELECT id FROM tag WHERE tag_scope NOT IN ('global', ?)",
                                             (account.username,))]
    expected = {tag_id: used.get(tag_id, 0) for tag_id in {*used, *private}}
    assert expected, "the demo user's jobs carry tags"
    tags = page.locator("[data-testid=tag]")
    shown = {int(tags.nth(i).get_attribute("data-tag-id")): int(tags.nth(i).locator("[data-testid=tag-count]").inner_text())
             for i in range(tags.count())}
    assert shown == expected
    assert not set(shown) & set(hidden)  # other users' private tags and admin tags stay hidden
    assert page.locator("[data-testid=delete-tag]").count() == 0


def test_deleting_a_tag_needs_the_csrf_token_and_the_admin_role(demo_site):
    name = "lists-" + uuid.uuid4().hex[:8]
    with demo_site.db() as conn:
        job_id = conn.execute("SELECT id FROM job WHERE hpc_user = ? LIMIT 1",
                              (demo_site.accounts["user"].username,)).fetchone()[0]
    _tag_jobs(demo_site, [job_id], "listtest", name)
    with demo_site.db() as conn:
        tag_id = conn.execute("SELECT id FROM tag WHERE tag_name = ?", (name,)).fetchone()[0]
    admin = demo_site.accounts["admin"]
    headers = http_login(demo_site.server, admin.username, admin.password)
    r = httpx.post(f"{demo_site.url}/monitoring/tags/{tag_id}/delete", headers=headers, data={"csrf": "forged"})
    assert r.status_code == 403 and "csrf" in r.text
    user = demo_site.accounts["user"]
    headers = http_login(demo_site.server, user.username, user.password)
    page = httpx.get(f"{demo_site.url}/monitoring/tags/", headers=headers).text
    csrf = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    r = httpx.post(f"{demo_site.url}/monitoring/tags/{tag_id}/delete", headers=headers, data={"csrf": csrf})
    assert r.status_code == 403 and "not allowed to delete" in r.text
    r = httpx.post(f"{demo_site.url}/monitoring/tags/x1/delete", headers=headers, data={"csrf": csrf})
    assert r.status_code == 400
    with demo_site.db() as conn:
        assert conn.execute("SELECT count(*) FROM tag WHERE id = ?", (tag_id,)).fetchone()[0] == 1


# ------------------------------------------------------------------------------ analysis

def test_the_analysis_page_draws_histograms_roofline_and_footprint_scatter(page, demo_site):
    login(page, demo_site, "admin", "/monitoring/analysis/fritz")
    with demo_site.db() as conn:
        total = conn.execute("SELECT count(*) FROM job WHERE cluster = 'fritz'").fetchone()[0]

        def both(x: str, y: str) -> int:
            return conn.execute(
                "SELECT count(*) FROM job WHERE cluster = 'fritz' AND monitoring_status NOT IN (0, 2) "
                f"AND json_extract(footprint, '$.{x}_avg') IS NOT NULL "
                f"AND json_extract(footprint, '$.{y}_avg') IS NOT NULL").fetchone()[0]

        flops_membw, load_membw = both("flops_any", "mem_bw"), both("cpu_load", "mem_bw")
        top_user = conn.execute("SELECT hpc_user FROM job WHERE cluster = 'fritz' GROUP BY hpc_user "
                                "ORDER BY count(*) DESC, hpc_user LIMIT 1").fetchone()[0]
    assert int(page.locator("[data-testid=total-jobs]").inner_text()) == total
    assert page.locator("[data-testid=top-users] tbody tr").first.locator("a").inner_text() == top_user
    for plot in ("hist-duration", "hist-nodes", "hist-cores"):
        page.wait_for_selector(f"[data-testid={plot}][data-plotted='1']")
        assert canvas_is_drawn(page, f"[data-testid={plot}]"), plot
    page.wait_for_selector("[data-testid=roofline][data-plotted]")
    assert int(page.get_attribute("[data-testid=roofline]", "data-tiles")) > 0
    assert canvas_is_drawn(page, "[data-testid=roofline]")
    assert int(page.get_attribute("[data-testid=scatter]", "data-points")) == flops_membw > 0
    assert canvas_is_drawn(page, "[data-testid=scatter]")
    screenshot(page, "analysis")
    page.select_option("#scatter-x", "cpu_load")
    page.wait_for_function(f"() => document.querySelector('#scatter').dataset.points === '{load_membw}'")
    assert "x=cpu_load" in page.url


def test_the_analysis_page_filters_by_subcluster_and_partition_and_says_when_nothing_matches(page, demo_site):
    with demo_site.db() as conn:
        a100 = conn.execute("SELECT count(*) FROM job WHERE cluster = 'alex' AND subcluster = 'a100'").fetchone()[0]
    login(page, demo_site, "support", "/monitoring/analysis/alex?subCluster=a100")
    assert int(page.locator("[data-testid=total-jobs]").inner_text()) == a100
    page.wait_for_selector("[data-testid=hist-accs][data-plotted='1']")  # alex has GPUs
    with demo_site.db() as conn:
        multinode = conn.execute("SELECT count(*) FROM job WHERE cluster = 'fritz' "
                                 "AND cluster_partition = 'multinode'").fetchone()[0]
    page.goto(demo_site.url + "/monitoring/analysis/fritz")
    page.select_option("#filter-partition", "multinode")
    with page.expect_navigation():
        page.click("form[data-testid=analysis-filters] button[type=submit]")
    assert int(page.locator("[data-testid=total-jobs]").inner_text()) == multinode > 0
    assert "partition multinode" in page.locator("h1").inner_text()
    # the demo jobs started before 2026; the clock of this run is later
    page.goto(demo_site.url + "/monitoring/analysis/alex?startTime=last6h")
    assert page.locator("[data-testid=empty]").inner_text() == "No jobs match these filters."


def test_the_analysis_page_is_refused_to_a_user_and_unknown_for_a_missing_cluster(page, demo_site):
    login(page, demo_site, "user")
    page.problems.expect("403")
    response = page.goto(demo_site.url + "/monitoring/analysis/fritz")
    assert response.status == 403
    assert page.locator("[data-testid=roofline]").count() == 0
    page.context.clear_cookies()
    login(page, demo_site, "admin")
    page.problems.expect("404")
    response = page.goto(demo_site.url + "/monitoring/analysis/no-such-cluster")
    assert response.status == 404
    assert "no cluster" in page.locator("[data-testid=error-message]").inner_text()


def test_the_roofline_heatmap_comes_as_a_data_block_of_its_own_for_support_and_above(demo_site):
    import json
    import re

    admin = demo_site.accounts["admin"]
    headers = http_login(demo_site.server, admin.username, admin.password)
    r = httpx.get(demo_site.url + "/monitoring/analysis/fritz/roofline?subCluster=main", headers=headers)
    assert r.status_code == 200
    block = re.search(r'<script type="application/json" id="roofline-data">(.*?)</script>', r.text, re.S)
    frame = json.loads(block.group(1))
    assert len(frame["tiles"]) == frame["rows"] == 50 and len(frame["tiles"][0]) == frame["cols"] == 50
    assert sum(map(sum, frame["tiles"])) > 0
    assert [c["name"] for c in frame["ceilings"]] == ["main"]
    r = httpx.get(demo_site.url + "/monitoring/analysis/fritz/roofline?partition=nowhere", headers=headers)
    assert r.status_code == 400 and "partition" in r.text
    user = demo_site.accounts["user"]
    headers = http_login(demo_site.server, user.username, user.password)
    assert httpx.get(demo_site.url + "/monitoring/analysis/fritz/roofline", headers=headers).status_code == 403


def test_display_names_and_e_mails_are_text_on_the_users_list_and_the_user_page(page, demo_site):
    from support.cli import cli

    manager = demo_site.accounts["manager"]
    with demo_site.db() as conn:
        username = conn.execute(
            "SELECT hpc_user FROM job WHERE project = ? AND hpc_user NOT IN (SELECT username FROM hpc_user) "
            "GROUP BY hpc_user ORDER BY count(*) DESC, hpc_user LIMIT 1", (manager.projects[0],)).fetchone()[0]
    name = '<b id="injected">Ada</b> "K." & co'
    r = cli(demo_site.folder, "user", "add", username, "--name", name, "--email", "ada@example.org", "--roles", "user",
            "--password-stdin", input="Ada-pw-12345\n")
    assert r.returncode == 0, r.stderr
    login(page, demo_site, "manager", "/monitoring/users/")
    assert page.locator(f"tr[data-id='{username}'] td").first.inner_text() == name
    assert page.locator("#injected").count() == 0
    page.click(f"tr[data-id='{username}'] a")
    page.wait_for_url(f"**/monitoring/user/{username}")
    info = page.locator("[data-testid=user-info]").inner_text()
    assert name in info and "ada@example.org" in info
    assert page.locator("#injected").count() == 0
    assert page.locator("[data-testid=user-roles]").count() == 0  # a manager does not see roles
