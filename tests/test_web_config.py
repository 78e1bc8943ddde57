"""The settings page (/config) in a real browser: plot settings per user, API tokens, user administration, the notice."""

from __future__ import annotations

import json
import re
import secrets

import httpx
import pytest
from support.browser import canvas_is_drawn, login, screenshot
from support.cli import cli
from support.server import InProcess
from support.web import add_users, json_error
from support.web import login as http_login

BRIGHT = ["#4477aa", "#66ccee", "#228833", "#ccbb44", "#ee6677", "#aa3377", "#bbbbbb"]


def fresh_user(site, role: str = "user") -> tuple[str, str]:
    """A new account of its own, so that the settings a test saves touch no other test."""
    username, password = f"cfg-{secrets.token_hex(4)}", "Cfg-pw-" + secrets.token_hex(4)
    r = cli(site.folder, "user", "add", username, "--role", role, "--password-stdin", input=password + "\n")
    assert r.returncode == 0, r.stderr
    return username, password


def login_as(page, site, username: str, password: str, target: str = "/config") -> None:
    page.goto(f"{site.url}/login?redirect={target}")
    page.fill("#username", username)
    page.fill("#password", password)
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert page.url == site.url + target, page.url


def status(page, name: str) -> str:
    locator = page.locator(f"[data-testid=status-{name}]")
    locator.locator("i").wait_for()  # written by config.js when the request has finished
    return locator.inner_text().strip()


def stored_settings(site, username: str) -> dict[str, str]:
    with site.db() as conn:
        return dict(conn.execute("SELECT confkey, value FROM configuration WHERE username = ?", (username,)))


def public_key(site) -> str:
    env = (site.folder / ".env").read_text()
    return re.search(r'JWT_PUBLIC_KEY="([^"]+)"', env).group(1)


def test_a_user_saves_plot_settings_and_finds_them_after_a_reload(page, demo_site):
    username, password = fresh_user(demo_site)
    login_as(page, demo_site, username, password)
    # Only the viewer's own settings: no administration, no support options, no API token (no api role).
    assert page.locator("[data-testid=admin-options]").count() == 0
    assert page.locator("[data-testid=support-options]").count() == 0
    assert page.locator("[data-testid=own-token]").count() == 0
    assert page.input_value("#plotConfiguration_lineWidth") == "3"  # the site's defaults
    assert page.input_value("#plotConfiguration_plotsPerRow") == "3"
    assert page.is_checked("label:has-text('Default') >> xpath=../.. >> input")

    page.fill("#plotConfiguration_lineWidth", "4")
    page.click("form[data-key=plotConfiguration_lineWidth] button[type=submit]")
    assert status(page, "plotConfiguration_lineWidth") == "Saved."
    page.fill("#plotConfiguration_plotsPerRow", "5")
    page.press("#plotConfiguration_plotsPerRow", "Enter")  # the keyboard submits too
    assert status(page, "plotConfiguration_plotsPerRow") == "Saved."
    page.check("#jobList_usePaging-on")
    page.click("form[data-key=jobList_usePaging] button[type=submit]")
    assert status(page, "jobList_usePaging") == "Saved."
    page.check("label:has-text('Bright') >> xpath=../.. >> input")
    page.click("form[data-key=plotConfiguration_colorScheme] button[type=submit]")
    assert status(page, "plotConfiguration_colorScheme") == "Saved."
    page.check("#plotConfiguration_colorBackground-off")
    page.click("form[data-key=plotConfiguration_colorBackground] button[type=submit]")
    assert status(page, "plotConfiguration_colorBackground") == "Saved."

    page.reload()
    page.wait_for_selector("#scheme-preview .plot[data-plotted]")
    assert canvas_is_drawn(page, "#scheme-preview")
    assert page.input_value("#plotConfiguration_lineWidth") == "4"
    assert page.input_value("#plotConfiguration_plotsPerRow") == "5"
    assert page.is_checked("#jobList_usePaging-on")
    assert page.is_checked("#plotConfiguration_colorBackground-off")
    assert page.is_checked("label:has-text('Bright') >> xpath=../.. >> input")
    # Upstream's keys, with the JSON text its frontend writes.
    assert stored_settings(demo_site, username) == {
        "plotConfiguration_lineWidth": "4", "plotConfiguration_plotsPerRow": "5", "jobList_usePaging": "true",
        "plotConfiguration_colorBackground": "false",
        "plotConfiguration_colorScheme": json.dumps(BRIGHT, separators=(",", ":")),
    }
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "config-user")


def test_a_scheme_saved_by_upstream_is_recognised_or_kept(page, demo_site):
    username, password = fresh_user(demo_site)
    with demo_site.db() as conn:  # upstream writes some schemes as rgb() lists
        conn.execute("INSERT INTO configuration (username, confkey, value) VALUES (?, ?, ?)",
                     (username, "plotConfiguration_colorScheme",
                      '["rgb(68,119,170)","rgb(102,204,238)","rgb(34,136,51)","rgb(204,187,68)",'
                      '"rgb(238,102,119)","rgb(170,51,119)","rgb(187,187,187)"]'))
    login_as(page, demo_site, username, password)
    assert page.is_checked("label:has-text('Bright') >> xpath=../.. >> input")
    with demo_site.db() as conn:
        conn.execute("UPDATE configuration SET value = ? WHERE username = ?", ('["#123456","#abcdef"]', username))
    page.reload()
    assert page.is_checked("#scheme-custom")
    assert page.locator("#scheme-custom >> xpath=../.. >> .color-dot").count() == 2


def test_a_user_cannot_use_the_administration(page, demo_site):
    login(page, demo_site, "user", "/config")
    assert page.locator("[data-testid=user-options]").count() == 1
    assert page.locator("[data-testid=admin-options]").count() == 0
    token = page.get_attribute("meta[name=csrf-token]", "content")
    r = page.request.post(demo_site.url + "/config/users/", headers={"X-CSRF-Token": token},
                          form={"username": "cfg-evil", "password": "x", "role": "admin"})
    assert r.status == 403 and "only admins" in r.json()["error"]
    with demo_site.db() as conn:
        assert conn.execute("SELECT count(*) FROM hpc_user WHERE username = 'cfg-evil'").fetchone()[0] == 0


def test_support_sets_the_node_list_paging(page, demo_site):
    username, password = fresh_user(demo_site, "support")
    login_as(page, demo_site, username, password)
    assert page.locator("[data-testid=admin-options]").count() == 0
    page.check("#nodeList_usePaging-on")
    page.click("form[data-key=nodeList_usePaging] button[type=submit]")
    assert status(page, "nodeList_usePaging") == "Saved."
    assert stored_settings(demo_site, username) == {"nodeList_usePaging": "true"}


def test_an_admin_adds_changes_and_deletes_a_user(page, demo_site):
    login(page, demo_site, "admin", "/config")
    table = page.locator("[data-testid=users-table]")
    assert table.locator(f"tr[data-username={demo_site.accounts['user'].username}]").count() == 1
    newcomer, password = f"cfg-new-{secrets.token_hex(3)}", "New-pw-" + secrets.token_hex(4)
    page.fill("#new-username", newcomer)
    page.fill("#new-password", password)
    page.fill("#new-name", "Nina <b>Newcomer</b>")
    page.fill("#new-email", "nina@example.org")
    page.check("#new-role-user")
    page.click("#create-user button[type=submit]")
    assert status(page, "create-user") == f"User {newcomer} successfully created!"
    row = table.locator(f"tr[data-username={newcomer}]")
    assert [c.strip() for c in row.locator("th, td").all_inner_texts()[:6]] == [
        newcomer, "Nina <b>Newcomer</b>", "nina@example.org", "user", "", "local"]  # text, never markup
    assert http_login(demo_site.server, newcomer, password)  # the new user can log in

    page.fill("#roles-username", newcomer)
    page.select_option("#roles-role", "manager")
    page.click("#user-roles button[value=add-role]")
    assert status(page, "user-roles") == f"{newcomer}: Add Role Success"
    assert row.locator("td").nth(2).inner_text() == "user, manager"
    page.fill("#projects-username", newcomer)
    page.fill("#projects-project", "cfg-project")
    page.click("#user-projects button[value=add-project]")
    assert status(page, "user-projects") == f"{newcomer}: Add Project Success"
    assert row.locator("td").nth(3).inner_text() == "cfg-project"
    # A refused change says why, naming what is wrong.
    page.problems.expect("422")
    page.select_option("#roles-role", "manager")
    page.click("#user-roles button[value=remove-role]")
    assert "still has assigned project(s): cfg-project" in status(page, "user-roles")
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "config")

    questions = []
    page.on("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    row.locator("button[data-action=delete]").click()
    assert status(page, "users") == f"User {newcomer} deleted."
    assert questions and newcomer in questions[0]
    assert row.count() == 0
    with demo_site.db() as conn:
        assert conn.execute("SELECT count(*) FROM hpc_user WHERE username = ?", (newcomer,)).fetchone()[0] == 0


def test_adding_a_bad_user_names_the_field(page, demo_site):
    login(page, demo_site, "admin", "/config")
    page.problems.expect("400")
    page.fill("#new-username", f"cfg-mgr-{secrets.token_hex(3)}")
    page.fill("#new-password", "Pw-12345")
    page.check("#new-role-manager")
    page.click("#create-user button[type=submit]")
    message = status(page, "create-user")
    assert "project" in message and "manager" in message, message
    assert "text-danger" in page.get_attribute("[data-testid=status-create-user]", "class")


def test_an_admin_edits_the_notice_of_the_home_page(page, demo_site):
    notice = demo_site.folder / "var" / "notice.txt"
    before = notice.read_text() if notice.exists() else None
    text = f"Maintenance <script>alert(1)</script> on {secrets.token_hex(3)}"
    try:
        login(page, demo_site, "admin", "/config")
        page.fill("#notice-text", text)
        page.click("#notice-form button[type=submit]")
        assert status(page, "notice") == "Notice saved: the home page shows it."
        page.goto(demo_site.url + "/")
        assert page.locator("[data-testid=notice]").inner_text().strip() == text
        page.goto(demo_site.url + "/config")
        assert page.input_value("#notice-text") == text
        page.fill("#notice-text", "")
        page.click("#notice-form button[type=submit]")
        assert status(page, "notice") == "Notice removed from the home page."
        page.goto(demo_site.url + "/")
        assert page.locator("[data-testid=notice]").count() == 0
    finally:
        if before is None:
            notice.unlink(missing_ok=True)
        else:
            notice.write_text(before)


def test_an_admin_generates_a_token_that_opens_the_api(page, demo_site):
    from cc_backend.auth.keys import verify_jwt

    login(page, demo_site, "admin", "/config")
    target = demo_site.accounts["user"].username
    page.locator(f"[data-testid=users-table] tr[data-username={target}] button[data-action=token]").click()
    assert status(page, "user-token") == f"Token for {target} generated."
    claims = verify_jwt(page.input_value("[data-testid=user-token]"), public_key(demo_site))
    assert claims["sub"] == target and claims["roles"] == ["user"]
    # The admin's own token (admin and api roles) opens /api/.
    admin = demo_site.accounts["admin"].username
    page.locator(f"[data-testid=users-table] tr[data-username={admin}] button[data-action=token]").click()
    assert status(page, "user-token") == f"Token for {admin} generated."
    token = page.input_value("[data-testid=user-token]")
    assert page.locator("#user-token-name").inner_text() == admin
    r = httpx.get(demo_site.url + "/api/jobs/", params={"items-per-page": 1},
                  headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and len(r.json()["jobs"]) == 1


def test_the_own_token_button_is_for_api_users(page, demo_site):
    from cc_backend.auth.keys import verify_jwt

    username, password = fresh_user(demo_site, "api")
    login_as(page, demo_site, username, password)
    card = page.locator("[data-testid=own-token]")
    assert card.count() == 1
    assert page.locator("#own-token-field").is_hidden()
    page.click("#own-token-button")
    assert status(page, "own-token") == "Token generated."
    token = page.input_value("#own-token-text")
    assert verify_jwt(token, public_key(demo_site))["sub"] == username
    r = httpx.get(demo_site.url + "/api/jobs/", params={"items-per-page": 1}, headers={"X-Auth-Token": token})
    assert r.status_code == 200


# -------------------------------------------------------------------------- in process: the checks behind the page


@pytest.fixture
def app(app_start, site):
    srv = app_start()
    add_users(site, "boss:admin:boss-pw", "ann:user:ann-pw")
    return srv


def test_settings_out_of_range_are_refused_naming_the_value(app: InProcess):
    ann = http_login(app, "ann", "ann-pw")
    cases = {("plotConfiguration_lineWidth", "9"): "from 1 to 5", ("plotConfiguration_plotsPerRow", "2.5"): "whole number",
             ("plotConfiguration_plotsPerRow", "true"): "whole number", ("jobList_usePaging", "1"): "true or false",
             ("plotConfiguration_colorScheme", '"red"'): "list", ("plotConfiguration_colorScheme", '["x; y"]'): "list",
             ("plotConfiguration_lineWidth", "three"): "JSON text"}
    for (key, value), message in cases.items():
        error = json_error(app.post("/frontend/configuration/", data={"key": key, "value": value}, headers=ann),
                           400, "Bad Request")
        assert message in error and "value" in error, (key, value, error)
    r = app.post("/frontend/configuration/", data={"key": "plotConfiguration_lineWidth", "value": "5"}, headers=ann)
    assert r.status_code == 200
    page = app.get("/config", headers=ann).text
    assert 'id="plotConfiguration_lineWidth" name="value" required min="1" max="5" step="1" value="5"' in page
    # Keys the page does not interpret are stored as upstream stores them.
    r = app.post("/frontend/configuration/", data={"key": "analysisView_histogramMetrics", "value": '["flops_any"]'},
                 headers=ann)
    assert r.status_code == 200


def test_the_page_needs_a_login(app: InProcess):
    r = app.get("/config")
    assert r.status_code == 302 and r.headers["location"].endswith("/login?redirect=/config")


def test_without_authentication_the_page_administers_but_saves_no_settings(app_start, site):
    srv = app_start(disable_authentication=True)
    assert srv.post("/config/users/", data={"username": "ann", "password": "ann-pw", "role": "user"}).status_code == 200
    page = srv.get("/config").text
    assert "there is no logged-in user to save settings for" in page
    assert 'data-testid="admin-options"' in page and 'data-testid="own-token"' not in page
    assert '"username":"ann"' in page  # the users table's data block


def test_an_admin_runs_a_tagger_and_sees_it_finish(page, demo_site):
    """The config page's taggers card: Run starts AppTagger in the server; the row follows it to its end."""
    from cc_backend.taggers.apps import AppDetector, job_script

    login(page, demo_site, "admin", "/config")
    row = page.locator("#taggers tr[data-tagger=AppTagger]")
    assert row.locator("th").inner_text().strip() == "AppTagger (start)"
    assert page.locator("#taggers tr[data-tagger=JobClassTagger] th").inner_text().strip() == "JobClassTagger (stop)"
    row.locator("button.js-run-tagger").click()
    assert status(page, "taggers") == "Tagger AppTagger started"
    state = row.locator(".js-tagger-state")
    state.get_by_text("finished", exact=True).wait_for(timeout=20_000)
    assert row.locator("button.js-run-tagger").is_enabled()
    # every job whose script names an application now carries that application's tag
    listed = cli(demo_site.folder, "jobs", "list", "--items-per-page", "-1", "--format", "json")
    jobs = json.loads(listed.stdout)
    detector = AppDetector.load()
    expected = {j["id"]: set(detector.detect(job_script(j["metaData"]))) for j in jobs}
    assert sum(1 for apps in expected.values() if apps) > 50
    for job in jobs:
        assert expected[job["id"]] <= {t["name"] for t in job["tags"] if t["type"] == "app"}, job["id"]
    page.reload()
    assert row.locator(".js-tagger-state").inner_text().strip().startswith(f"last run: {len(jobs)} jobs, ")
