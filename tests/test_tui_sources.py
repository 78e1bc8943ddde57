"""The terminal UI's two data sources: LocalSource (database and archive) and RemoteSource (a server's GraphQL API)
answer alike on one demo site, and each failure to connect is one clear sentence."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import socket
import sqlite3
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import httpx
import pytest
from peerdata import ARCHIVE, JOB_DB
from support.browser import build_demo_site
from support.server import free_port
from support.site import main_section, token, write_site

from cc_backend.archive.fs import FileArchive
from cc_backend.auth.keys import generate_keypair
from cc_backend.clusters import cluster_from_graphql, cluster_info, global_metrics
from cc_backend.errors import Forbidden, InvalidInput, NotFound
from cc_backend.jobs.filter import JobFilter, parse_filter_text, parse_sort
from cc_backend.jobs.footprint import footprint_bars
from cc_backend.runtime import Runtime
from cc_backend.tui.local import LocalSource
from cc_backend.tui.remote import RemoteSource
from cc_backend.tui.source import SourceError

#: One node-state report, so the clusters screen's node list has rows in both modes.
NODE_REPORT = {"cluster": "fritz", "nodes": [
    {"hostname": "f0101", "states": ["allocated"], "cpusAllocated": 72, "memoryAllocated": 250000, "jobsRunning": 1},
    {"hostname": "f0102", "states": ["idle"]}]}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    demo = build_demo_site(tmp_path_factory.mktemp("tui-sources"), jobs=120)
    admin_token = token(demo.folder, ["admin", "api"], sub="webadmin")
    r = httpx.post(demo.url + "/api/nodestate/", json=NODE_REPORT, headers={"Authorization": f"Bearer {admin_token}"},
                   timeout=30)
    assert r.status_code == 200, r.text
    yield demo
    demo.server.stop()


def local_source(folder: Path, as_user: str | None = None) -> LocalSource:
    # A .env that does not exist: the test process's environment stays free of the site's keys.
    return LocalSource(Runtime(str(folder / "config.json"), env_path=str(folder / "no.env")), as_user=as_user)


@pytest.fixture(scope="module")
def sources(site):
    """Per identity ("admin", "user"), the local and the remote source acting as that account."""
    out = {}
    for identity in ("admin", "user"):
        account = site.accounts[identity]
        local = local_source(site.folder, account.username)
        remote = RemoteSource(site.url, token(site.folder, account.roles, sub=account.username))
        local.connect()
        remote.connect()
        out[identity] = {"local": local, "remote": remote}
    yield out
    for pair in out.values():
        for source in pair.values():
            source.close()


@pytest.fixture(scope="module")
def user_tag(sources):
    """``type:name`` of the tag on most of the user's jobs (so both identities find jobs with it)."""
    tag = max(sources["user"]["local"].tags(), key=lambda t: t["count"])
    assert tag["count"] > 1
    return f"{tag['type']}:{tag['name']}"


@pytest.fixture(params=["admin", "user"])
def pair(request, sources):
    return request.param, sources[request.param]["local"], sources[request.param]["remote"]


#: The keys of a job in a page of the remote list: no metaData, energyFootprint or submitTime.
LIST_KEYS = {"id", "jobId", "user", "project", "cluster", "subCluster", "partition", "arrayJobId", "numNodes",
             "numHwthreads", "numAcc", "shared", "monitoringStatus", "smt", "jobState", "startTime", "duration",
             "walltime", "energy", "resources", "footprint", "tags", "metaData"}


def list_view(job: dict) -> dict:
    """What the remote list query gives of a job, taken from a full core job (resources without hwthreads)."""
    view = {key: value for key, value in job.items() if key in LIST_KEYS}
    view["resources"] = [{"hostname": r["hostname"]} for r in job["resources"]]
    return view


def without_submit_time(job: dict) -> dict:
    # The GraphQL Job type has no submitTime: the only key a remote job lacks.
    return {key: value for key, value in job.items() if key != "submitTime"}


def job_filter(source, text: str) -> JobFilter | None:
    return JobFilter.from_text_options(parse_filter_text(text), tag_ids=source.resolve_tags) if text else None


# --- the contract: both sources answer alike ------------------------------------------------------------

def test_identity_names_the_account_and_where(pair, site):
    identity, local, remote = pair
    account = site.accounts[identity]
    assert local.identity.username == remote.identity.username == account.username
    assert set(remote.identity.roles) == set(account.roles)
    assert remote.identity.where == f"{site.url} as {account.username}"
    assert local.identity.where == f"local: {site.folder / 'job.db'}"


FILTERS = ["", "state:running", "state:completed state:failed", "USER_PREFIX", "TAG", "nodes:2..",
           "metric:cpu_load=0.5..1000", "job-name:*a*", "start-time:last30d duration:10m.."]
SORTS = [None, "duration:desc", "numNodes:asc", "foot.flops_any_avg:desc"]


@pytest.mark.parametrize("text", FILTERS)
@pytest.mark.parametrize("sort", SORTS)
def test_job_pages_and_counts_are_equal(pair, site, user_tag, text, sort):
    identity, local, remote = pair
    if text == "USER_PREFIX":
        text = f"user:{site.accounts['user'].username[:3]}*"
    elif text == "TAG":
        text = f"tag:{user_tag}"
    order = parse_sort(sort) if sort else None
    count = local.count_jobs(job_filter(local, text))
    assert remote.count_jobs(job_filter(remote, text)) == count
    assert count > 0, f"the demo site has no jobs for {text!r}: the comparison would say nothing"
    seen = []
    for page in (1, 2):
        local_page = local.jobs(job_filter(local, text), order, page, 7)
        remote_page = remote.jobs(job_filter(remote, text), order, page, 7)
        assert remote_page.jobs == [list_view(job) for job in local_page.jobs]
        assert remote_page.has_next == local_page.has_next == (count > 7 * page)
        seen += [job["id"] for job in remote_page.jobs]
    assert len(seen) == len(set(seen)) == min(count, 14)
    if identity == "user":
        assert {job["user"] for job in remote.jobs(job_filter(remote, text), order, 1, 50).jobs} == {
            site.accounts["user"].username}


def test_a_job_with_metadata_and_tags_is_equal(pair, user_tag):
    identity, local, remote = pair
    tagged = local.jobs(job_filter(local, f"tag:{user_tag}"), None, 1, 50).jobs
    assert tagged, "no tagged job to compare"
    tag_type, _, tag_name = user_tag.partition(":")
    for listed in tagged[:5]:
        local_job, remote_job = local.job(listed["id"]), remote.job(listed["id"])
        assert remote_job == without_submit_time(local_job)
        assert "jobScript" in remote_job["metaData"] and remote_job["metaData"]["jobName"]
        assert any(t["type"] == tag_type and t["name"] == tag_name for t in remote_job["tags"])
        assert isinstance(remote_job["startTime"], int) and isinstance(remote_job["footprint"], dict)


def test_a_job_another_user_owns_is_not_found_for_a_user(sources, site):
    local_admin = sources["admin"]["local"]
    foreign = local_admin.jobs(job_filter(local_admin, f"user:{site.accounts['other'].username}"), None, 1, 1).jobs[0]
    for source in sources["user"].values():
        with pytest.raises(NotFound) as caught:
            source.job(foreign["id"])
        assert caught.value.message == f"no job with id {foreign['id']}"
    with pytest.raises(NotFound, match="no job with id 987654"):
        sources["admin"]["remote"].job(987654)


def first_jobs(local, count=4):
    """Archived jobs of several shapes: the longest ones (most samples) and ones on several nodes."""
    longest = local.jobs(job_filter(local, "state:completed"), parse_sort("duration:desc"), 1, count).jobs
    multi = local.jobs(job_filter(local, "state:completed nodes:2.."), None, 1, count).jobs
    assert longest and multi
    return [local.job(job["id"]) for job in longest + multi]


def test_metric_data_and_statistics_are_equal(pair):
    identity, local, remote = pair
    for job in first_jobs(local):
        for scopes, resolution in ((["node"], 60), (None, None), (["core", "socket", "accelerator"], 30)):
            local_data = local.job_metrics(job, None, scopes, resolution)
            assert remote.job_metrics(job, None, scopes, resolution) == local_data
        node_data = local.job_metrics(job, ["cpu_load", "flops_any"], ["node"], 60)
        assert {m["name"] for m in node_data} <= {"cpu_load", "flops_any"} and node_data
        assert all(len(m["metric"]["series"]) == job["numNodes"] for m in node_data)
        stats = local.job_stats(job, None)
        assert remote.job_stats(job, None) == stats and stats
        assert remote.job_stats(job, ["mem_used"]) == local.job_stats(job, ["mem_used"])
        scoped = local.scoped_job_stats(job, None, None)
        assert remote.scoped_job_stats(job, None, None) == scoped and scoped
        assert remote.scoped_job_stats(job, ["flops_any"], ["core"]) == local.scoped_job_stats(job, ["flops_any"],
                                                                                                ["core"])


#: Totals that grow by the second while jobs run (now - start time): equal only when both ask in the same second.
RUNNING_TIME_FIELDS = {"totalWalltime", "totalNodeHours", "totalCoreHours", "totalAccHours"}


@pytest.mark.parametrize("group_by", ["USER", "PROJECT"])
@pytest.mark.parametrize("text", ["", "state:running", "state:completed state:failed state:timeout"])
def test_group_statistics_are_equal(pair, site, group_by, text):
    identity, local, remote = pair
    remote_rows = remote.group_statistics(group_by, job_filter(remote, text))
    local_rows = local.group_statistics(group_by, job_filter(local, text))
    assert remote_rows and set(remote_rows[0]) == {
        "id", "name", "totalJobs", "runningJobs", "shortJobs", "totalUsers", "totalWalltime", "totalNodes",
        "totalNodeHours", "totalCores", "totalCoreHours", "totalAccs", "totalAccHours"}
    timeless = "running" not in text and text != ""
    keys = [key for key in remote_rows[0] if timeless or key not in RUNNING_TIME_FIELDS]
    assert [{key: row[key] for key in keys} for row in remote_rows] == [{key: row[key] for key in keys}
                                                                         for row in local_rows]
    assert sum(row["totalJobs"] for row in remote_rows) == remote.count_jobs(job_filter(remote, text))
    if timeless:
        assert sum(row["totalCoreHours"] for row in remote_rows) > 0
    if identity == "user" and group_by == "USER":
        assert [row["id"] for row in remote_rows] == [site.accounts["user"].username]


def test_tags_with_counts_are_equal(pair):
    identity, local, remote = pair
    tags = local.tags()
    assert remote.tags() == tags
    assert any(tag["count"] > 0 for tag in tags)
    for tag in tags:
        if tag["count"]:
            assert remote.count_jobs(job_filter(remote, f"tag:{tag['id']}")) == tag["count"]


def test_user_counts_are_over_their_own_jobs(sources):
    admin_counts = {t["id"]: t["count"] for t in sources["admin"]["remote"].tags()}
    user_counts = {t["id"]: t["count"] for t in sources["user"]["remote"].tags()}
    assert all(user_counts[tag] <= admin_counts[tag] for tag in user_counts)
    assert sum(user_counts.values()) < sum(admin_counts.values())


def test_resolve_tags_is_equal(pair):
    identity, local, remote = pair
    gromacs = next(t for t in local.tags() if t["name"] == "gromacs")
    assert remote.resolve_tags(["app:gromacs", "17"]) == local.resolve_tags(["app:gromacs", "17"]) == [gromacs["id"], 17]
    for source in (local, remote):
        with pytest.raises(NotFound, match="no tag 'app:nosuchapp'") as caught:
            source.resolve_tags(["app:nosuchapp"])
        assert caught.value.field == "tag"
        with pytest.raises(InvalidInput, match="use an id or type:name") as caught:
            source.resolve_tags(["gromacs"])
        assert caught.value.field == "tag"


def test_add_and_remove_a_tag_round_trip(pair, site):
    identity, local, remote = pair
    account = site.accounts[identity]
    job = local.jobs(None, None, 1, 1).jobs[0]
    scope = "global" if identity == "admin" else account.username
    before = local.job(job["id"])["tags"]
    added = {}
    for name, source in (("remote", remote), ("local", local)):
        tags = source.add_tag(job["id"], "tui-test", f"round-trip-{identity}", scope)
        new = [t for t in tags if t["type"] == "tui-test"]
        assert len(new) == 1 and new[0]["name"] == f"round-trip-{identity}" and new[0]["scope"] == scope
        assert [t for t in tags if t["type"] != "tui-test"] == before
        # the other source sees the change at once
        other = local if source is remote else remote
        assert other.job(job["id"])["tags"] == tags
        added[name] = tags
        after = source.remove_tag(job["id"], new[0]["id"])
        assert after == before == other.job(job["id"])["tags"]
    assert added["remote"] == added["local"]


def test_a_user_may_not_tag_globally_nor_see_nodes(sources):
    for source in sources["user"].values():
        job = source.jobs(None, None, 1, 1).jobs[0]
        with pytest.raises(Forbidden, match="scope: not allowed to create tags with scope 'global'"):
            source.add_tag(job["id"], "tui-test", "forbidden", "global")
        with pytest.raises(Forbidden):
            source.nodes("fritz")


def test_nodes_are_equal(sources):
    local, remote = sources["admin"]["local"], sources["admin"]["remote"]
    nodes = local.nodes("fritz")
    # the GraphQL Node type has no timeStamp (when the state was reported)
    assert remote.nodes("fritz") == [{k: v for k, v in node.items() if k != "timeStamp"} for node in nodes]
    assert {(n["hostname"], n["schedulerState"]) for n in nodes} == {("f0101", "allocated"), ("f0102", "idle")}
    assert remote.nodes("alex") == local.nodes("alex") == []


def bar_footprints(subcluster, jobs_footprints):
    """Real jobs' footprints, and for every footprint metric values at each level (alert to above peak)."""
    out = list(jobs_footprints)
    for fraction in (0.0, 0.05, 0.3, 0.6, 0.9, 1.2):
        out.append({f"{name}_{subcluster.metric(name).footprint}": subcluster.metric(name).peak * fraction
                    for name in subcluster.footprint})
    return out


def assert_same_bars(original, converted, footprints_by_subcluster):
    assert converted.name == original.name
    assert converted.sub_cluster_names == original.sub_cluster_names
    compared = 0
    for subcluster in original.sub_clusters:
        twin = converted.sub_cluster(subcluster.name)
        assert twin.footprint == subcluster.footprint
        assert [m.name for m in twin.metric_config] == [m.name for m in subcluster.metric_config]
        for metric in subcluster.metric_config:
            assert twin.metric(metric.name).unit == metric.unit
            assert twin.metric(metric.name).scope == metric.scope
        for footprint in bar_footprints(subcluster, footprints_by_subcluster.get(subcluster.name, [])):
            bars = footprint_bars(footprint, subcluster)
            assert footprint_bars(footprint, twin) == bars
            compared += len(bars)
    return compared


def test_clusters_give_the_same_footprint_bars(sources):
    local, remote = sources["admin"]["local"], sources["admin"]["remote"]
    jobs = local.jobs(None, None, 1, 200).jobs
    remote_clusters = {c.name: c for c in remote.clusters()}
    assert remote.clusters() is remote.clusters()  # read once per source
    assert sorted(remote_clusters) == sorted(c.name for c in local.clusters())
    compared = 0
    for cluster in local.clusters():
        footprints = {}
        for job in jobs:
            if job["cluster"] == cluster.name:
                footprints.setdefault(job["subCluster"], []).append(job["footprint"])
        compared += assert_same_bars(cluster, remote_clusters[cluster.name], footprints)
    assert compared > 100


def test_peer_clusters_with_subcluster_overrides_convert_to_the_same_bars(tmp_path):
    """The upstream fixture archive's clusters (overrides, removed metrics) through the GraphQL shapes."""
    registry = FileArchive(ARCHIVE).registry()
    stats = {m["name"]: m["footprint"] for m in global_metrics(registry, None) if m.get("footprint")}
    assert any(o.remove for c in registry for m in c.metric_config for o in m.sub_clusters)
    with sqlite3.connect(JOB_DB) as conn:
        rows = conn.execute("SELECT cluster, subcluster, footprint FROM job WHERE footprint IS NOT NULL").fetchall()
    compared = 0
    for cluster in registry:
        # What the server sends: JSON, so tuples are lists and every float survives a round trip.
        info = json.loads(json.dumps(cluster_info(cluster)))
        converted = cluster_from_graphql(info, stats)
        footprints = {}
        for name, subcluster, footprint in rows:
            if name == cluster.name and footprint:
                footprints.setdefault(subcluster, []).append(json.loads(footprint))
        compared += assert_same_bars(cluster, converted, footprints)
        for subcluster in cluster.sub_clusters:
            for metric in subcluster.metric_config:
                twin = converted.sub_cluster(subcluster.name).metric(metric.name)
                assert (twin.peak, twin.normal, twin.caution, twin.alert, twin.lower_is_better) == (
                    metric.peak, metric.normal, metric.caution, metric.alert, metric.lower_is_better)
    assert compared > 100


# --- failures: one sentence each, never a traceback ---------------------------------------------------

def test_an_unreachable_server_is_named_with_the_reason(site):
    url = f"http://127.0.0.1:{free_port()}"
    source = RemoteSource(url, token(site.folder, ["admin"], sub="webadmin"))
    with pytest.raises(SourceError) as caught:
        source.connect()
    assert caught.value.message == f"Cannot reach the server at {url}: Connection refused."
    # later calls fail the same way, not with httpx's exception
    with pytest.raises(SourceError, match=f"Cannot reach the server at {url}"):
        source.jobs(None, None, 1, 10)


def test_an_unknown_host_is_named(site):
    source = RemoteSource("http://no-such-host.invalid:8080", token(site.folder, ["admin"], sub="webadmin"))
    with pytest.raises(SourceError) as caught:
        source.connect()
    # the resolver's own words vary between C libraries; the sentence around them does not
    assert caught.value.message.startswith("Cannot reach the server at http://no-such-host.invalid:8080: ")
    assert "Errno" not in caught.value.message


def test_a_server_that_does_not_answer_times_out(site):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        source = RemoteSource(url, token(site.folder, ["admin"], sub="webadmin"), timeout=0.3)
        with pytest.raises(SourceError) as caught:
            source.connect()
    assert caught.value.message == f"The server at {url} did not answer within 0.3 s."


def test_a_token_signed_with_another_key_is_rejected(site):
    _, other_key = generate_keypair()
    source = RemoteSource(site.url, token(site.folder, ["admin"], sub="webadmin", key=other_key))
    with pytest.raises(SourceError) as caught:
        source.connect()
    assert caught.value.message.startswith(f"The server at {site.url} rejected the token: ")
    assert "signature" in caught.value.message


def test_an_expired_token_is_refused_before_asking(site):
    issued = time.time() - 3 * 3600
    expired = token(site.folder, ["admin"], sub="webadmin", now=issued, lifetime=dt.timedelta(hours=1))
    expiry = dt.datetime.fromtimestamp(int(issued) + 3600, tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    # An unreachable URL: the expiry is told even so, as no request is needed to know it.
    source = RemoteSource(f"http://127.0.0.1:{free_port()}", expired)
    with pytest.raises(SourceError) as caught:
        source.connect()
    assert caught.value.message == (f"The token expired at {expiry}; ask for a new one (an administrator prints "
                                    f"one with 'cc-backend jwt webadmin').")
    assert source.identity.username == "webadmin"


def test_text_that_is_no_token_is_refused(site):
    with pytest.raises(SourceError, match="The token is not a JSON Web Token"):
        RemoteSource(site.url, "secret-password").connect()


def test_a_wrong_url_path_is_not_a_cc_backend_server(site):
    source = RemoteSource(site.url + "/monitoring", token(site.folder, ["admin"], sub="webadmin"))
    with pytest.raises(SourceError) as caught:
        source.connect()
    assert caught.value.message == (f"{site.url}/monitoring is not a cc-backend server, or the URL is wrong: "
                                    f"{site.url}/monitoring/query answered HTTP 404 without a GraphQL result.")


@contextmanager
def web_server(status: int, headers: dict[str, str], body: bytes):
    """A loopback HTTP server answering every POST with the same response; yields its URL."""
    class Answer(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            self.send_response(status)
            for name, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_another_kind_of_web_server_is_not_a_cc_backend_server(site):
    with web_server(200, {"Content-Type": "text/html"}, b"<html><body>Welcome</body></html>") as url:
        with pytest.raises(SourceError) as caught:
            RemoteSource(url, token(site.folder, ["admin"], sub="webadmin")).connect()
    assert caught.value.message == (f"{url} is not a cc-backend server, or the URL is wrong: "
                                    f"{url}/query answered HTTP 200 without a GraphQL result.")


def test_a_redirect_is_named_not_followed(site):
    with web_server(308, {"Location": "https://cockpit.example.org/query"}, b"") as url:
        with pytest.raises(SourceError) as caught:
            RemoteSource(url, token(site.folder, ["admin"], sub="webadmin")).connect()
    assert caught.value.message == (f"The server at {url} redirects to https://cockpit.example.org/query; "
                                    f"use that address.")


def test_a_url_without_a_scheme_is_refused(site):
    with pytest.raises(SourceError, match="The server URL '127.0.0.1:8080' must start with http:// or https://"):
        RemoteSource("127.0.0.1:8080", token(site.folder, ["admin"], sub="webadmin")).connect()


def test_a_bad_filter_is_the_servers_invalid_input(sources):
    remote = sources["admin"]["remote"]
    with pytest.raises(InvalidInput) as caught:
        remote.jobs(None, parse_sort("nosuchcolumn:desc"), 1, 10)
    assert "nosuchcolumn" in caught.value.message


def test_a_database_at_an_old_schema_version_is_a_clear_message(tmp_path):
    shutil.copyfile(JOB_DB, tmp_path / "job.db")  # upstream's database at schema version 10, not migrated
    write_site(tmp_path, main_section(f"sqlite:///{tmp_path / 'job.db'}"), ARCHIVE)
    with pytest.raises(SourceError) as caught:
        local_source(tmp_path).connect()
    assert caught.value.message == ("The database cannot be used: database schema version 10 is outdated, "
                                    "this program needs 11: run with --migrate-db (back it up first)")
