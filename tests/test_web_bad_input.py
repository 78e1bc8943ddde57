"""Careless and hostile input to every page of the web UI: a 4xx page that names the problem, never a 500."""

from __future__ import annotations

import httpx
import pytest
from support.web import login

BAD_VALUES = ["", "-1", "abc", "99999999999999999999999", "1e308", "%00", "<script>alert(1)</script>",
              "../../etc/passwd", "last99y", "a-b-c-d", "x" * 5000]
PAGES = ["/monitoring/jobs/", "/monitoring/users/", "/monitoring/projects/", "/monitoring/tags/",
         "/monitoring/analysis/fritz", "/search", "/config", "/"]
PARAMS = ["cluster", "subCluster", "partition", "state", "tag", "duration", "numNodes", "numHWThreads",
          "numAccelerators", "energy", "dbId", "jobId", "arrayJobId", "startTime", "stat", "sort", "order",
          "page", "itemsPerPage", "user", "project", "jobName", "node", "shared", "schedule", "searchId",
          "name", "x", "y", "topBy", "durationBins"]


@pytest.fixture(scope="module")
def admin(demo_site) -> dict[str, str]:
    account = demo_site.accounts["admin"]
    return login(demo_site.server, account.username, account.password)


@pytest.mark.parametrize("path", PAGES)
def test_no_parameter_value_makes_a_page_fail(demo_site, admin, path):
    failures = []
    with httpx.Client(base_url=demo_site.url, headers=admin, timeout=30) as client:
        for param in PARAMS:
            for value in BAD_VALUES:
                r = client.get(path, params={param: value})
                if r.status_code >= 500 or r.status_code not in (200, 302, 303, 400, 403, 404):
                    failures.append(f"{param}={value[:30]!r}: {r.status_code}")
                elif r.status_code == 400:
                    assert "text/html" in r.headers["content-type"] and "<script>alert(1)</script>" not in r.text
        assert client.get("/healthz").status_code == 200
    assert not failures, f"{path}:\n" + "\n".join(failures)


@pytest.mark.parametrize("path", ["/monitoring/job/abc", "/monitoring/job/-1", "/monitoring/job/99999999999999999999",
                                  "/monitoring/job/1/data?metric=<x>&scope=nope&resolution=-5",
                                  "/monitoring/user/%3Cscript%3E", "/monitoring/analysis/..%2F..",
                                  "/monitoring/jobs/plots?dbId=abc&metric=cpu_load&width=1e9",
                                  "/static/app-00000000/../../../etc/passwd"])
def test_malformed_ids_in_paths_are_client_errors(demo_site, admin, path):
    r = httpx.get(demo_site.url + path, headers=admin)
    assert 400 <= r.status_code < 500, (path, r.status_code, r.text[:300])


@pytest.mark.parametrize(("path", "form"), [
    ("/monitoring/job/abc/tags", {"action": "add", "tag": "1"}),
    ("/monitoring/job/1/tags", {"action": "create", "type": "x" * 5000, "name": "n", "scope": "global"}),
    ("/monitoring/job/1/tags", {"action": "remove", "tag": "99999999999999999999999"}),
    ("/monitoring/tags/abc/delete", {}),
    ("/monitoring/tags/99999999999999999999999/delete", {}),
])
def test_malformed_form_posts_are_client_errors(demo_site, admin, path, form):
    r = httpx.post(demo_site.url + path, headers=admin, data=form)
    assert 400 <= r.status_code < 500, (path, r.status_code, r.text[:300])
    assert httpx.get(demo_site.url + "/healthz").status_code == 200


def test_job_ids_beyond_64_bits_in_the_row_plot_request_are_named(demo_site, admin):
    r = httpx.get(demo_site.url + "/monitoring/jobs/plots", headers=admin,
                  params={"dbId": "99999999999999999999999", "metric": "cpu_load"})
    assert r.status_code == 400 and "dbId" in r.json()["error"]
