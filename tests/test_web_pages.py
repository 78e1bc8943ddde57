"""The web UI's frame in a real browser: login, logout, header by role, home page, error pages, assets, CSP."""

from __future__ import annotations

import re

import httpx
import pytest
from support.browser import login, screenshot
from support.web import login as http_login


def test_login_with_a_wrong_password_says_so_and_a_right_one_lands_on_the_target(page, demo_site):
    account = demo_site.accounts["user"]
    page.goto(demo_site.url + "/")
    assert page.url.startswith(demo_site.url + "/login?redirect=/"), page.url  # not logged in: the form
    page.fill("#username", account.username)
    page.fill("#password", "wrong")
    page.problems.expect("401")  # the browser logs the failed login's status
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert page.locator("[data-testid=login-message]").inner_text() == "Wrong user name or password."
    assert page.input_value("#username") == account.username
    screenshot(page, "login-failed")
    page.fill("#password", account.password)
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert page.url == demo_site.url + "/"
    assert page.locator("[data-testid=username]").inner_text().strip() == account.username


def test_home_lists_the_viewers_jobs_per_cluster_and_links_to_the_job_list(page, demo_site):
    login(page, demo_site, "user")
    rows = page.locator("[data-testid=clusters] tbody tr")
    with demo_site.db() as conn:
        expected = dict(conn.execute("SELECT cluster, count(*) FROM job WHERE hpc_user = ? GROUP BY cluster",
                                     (demo_site.accounts["user"].username,)).fetchall())
    shown = {}
    for i in range(rows.count()):
        cells = rows.nth(i).locator("th, td")
        shown[cells.nth(0).inner_text()] = int(cells.nth(2).inner_text())
    assert shown == {cluster: expected.get(cluster, 0) for cluster in shown}
    assert set(expected) <= set(shown)
    # a user sees no analysis links; an admin does
    assert page.locator("a[href^='/monitoring/analysis/']").count() == 0
    screenshot(page, "home")


def test_the_menu_follows_the_role(page, demo_site):
    login(page, demo_site, "user")
    user_menu = page.locator("#menu .navbar-nav.me-auto > li").all_inner_texts()
    assert [t.strip() for t in user_menu] == ["My Jobs", "Job Search", "Tags"]
    page.context.clear_cookies()
    login(page, demo_site, "manager")
    manager_menu = [t.strip() for t in page.locator("#menu .navbar-nav.me-auto > li").all_inner_texts()]
    assert manager_menu == ["My Jobs", "Jobs", "Users", "Projects", "Tags"]
    page.context.clear_cookies()
    login(page, demo_site, "admin")
    admin_menu = [t.strip() for t in page.locator("#menu .navbar-nav.me-auto > li").all_inner_texts()]
    assert admin_menu[-1] == "Analysis" and "Users" in admin_menu
    page.click("text=Analysis")
    assert page.locator(".dropdown-menu a").all_inner_texts() == ["alex", "fritz"]


def test_logout_ends_the_session(page, demo_site):
    login(page, demo_site, "user")
    with page.expect_navigation():
        page.click("button:has-text('Logout')")
    assert page.url.startswith(demo_site.url + "/login")
    page.goto(demo_site.url + "/")
    assert page.url.startswith(demo_site.url + "/login?redirect=/")


def test_an_unknown_page_is_a_404_page_with_the_header(page, demo_site):
    login(page, demo_site, "user")
    page.problems.expect("404")
    response = page.goto(demo_site.url + "/no/such/page")
    assert response.status == 404
    assert page.locator("h1").inner_text() == "404 Not Found"
    assert page.locator("[data-testid=error-message]").inner_text() == "There is no page at this address."
    assert page.locator("[data-testid=username]").count() == 1  # still logged in, with the menu


def test_imprint_and_privacy_are_public_and_a_site_can_replace_them(page, demo_site):
    page.goto(demo_site.url + "/imprint")
    assert page.locator("h1").inner_text() == "Imprint"
    var = demo_site.folder / "var"
    var.mkdir(exist_ok=True)
    (var / "privacy.html").write_text('{% extends "base.html" %}{% block content %}<h1>Our privacy policy</h1>'
                                      '{% endblock %}')
    try:
        page.goto(demo_site.url + "/privacy")
        assert page.locator("h1").inner_text() == "Our privacy policy"
    finally:
        (var / "privacy.html").unlink()


def test_pages_send_a_strict_content_security_policy_and_assets_are_cached_by_hash(demo_site):
    r = httpx.get(demo_site.url + "/login")
    csp = r.headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in csp.split(";"))
    assert directives["script-src"] == "'self'"  # no unsafe-inline, no unsafe-eval
    assert "unsafe" not in directives["default-src"]
    assert r.headers["cache-control"] == "no-store"
    assets = re.findall(r'(?:href|src)="(/static/[^"]+)"', r.text)
    assert any("/bootstrap-" in a for a in assets) and any("/app-" in a for a in assets)
    for asset in assets:
        got = httpx.get(demo_site.url + asset)
        assert got.status_code == 200, asset
        assert got.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert httpx.get(demo_site.url + "/static/app-00000000/app.js").status_code == 404  # a stale hash
    assert httpx.get(demo_site.url + "/static/" + assets[0].split("/")[2] + "/../../config.json").status_code in (
        400, 403, 404)


def test_a_page_without_installed_assets_says_how_to_install_them(tmp_path, monkeypatch):
    """No node_modules: the page renders (no styles) and names the install command."""
    from cc_backend.server.web.assets import Assets

    empty = tmp_path / "node_modules"
    empty.mkdir()
    assets = Assets(empty)
    assert assets.missing == ["bootstrap", "bootstrap-icons", "uplot"]
    assert assets.url("bootstrap", "css/bootstrap.min.css") == ""
    assert assets.url("app", "app.js").startswith("/static/app-")


@pytest.mark.parametrize("path", ["/", "/imprint"])
def test_pages_render_without_installed_assets(tmp_path, monkeypatch, path):
    from support.server import InProcess
    from support.site import main_section, write_site

    monkeypatch.setenv("CC_WEB_ASSETS_DIR", str(tmp_path / "nothing"))
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive" / "version.txt").write_text("3\n")
    site = write_site(tmp_path, main_section(f"sqlite:///{tmp_path / 'job.db'}"), tmp_path / "archive")
    from support.cli import cli

    assert cli(site, "init-db").returncode == 0
    assert cli(site, "-add-user", "someone:user:Some-pw-1").returncode == 0
    app = InProcess(site)
    headers = http_login(app, "someone", "Some-pw-1")
    r = app.get(path, headers=headers)
    assert r.status_code == 200
    assert "npm ci --prefix web --ignore-scripts" in r.text
    assert "bootstrap.min.css" not in r.text
