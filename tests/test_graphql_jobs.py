"""GraphQL job queries through real HTTP on the migrated peer job.db: job, jobs (filters, order, paging), permissions, limits."""

from __future__ import annotations

import httpx
from peerdata import UPSTREAM_SPEC

JOBS = """query($filter: [JobFilter!], $page: PageRequest, $order: OrderByInput) {
  jobs(filter: $filter, page: $page, order: $order) {
    items { id jobId user project cluster subCluster startTime duration numNodes numHWThreads numAcc
            state shared SMT partition arrayJobId monitoringStatus energy walltime
            tags { id type name scope } resources { hostname hwthreads accelerators }
            footprint { name stat value } energyFootprint { hardware metric value } }
    count offset limit hasNextPage
  }
}"""


def jobs(site, user="gqladmin", **variables):
    return site.query(JOBS, variables, user=user)["jobs"]


def test_jobs_counts_paging_and_order(graphql_site):
    everything = jobs(graphql_site, page={"itemsPerPage": 10, "page": 1})
    assert everything["count"] == 544 and everything["hasNextPage"] is True
    assert len(everything["items"]) == 10 and everything["limit"] == 10 and everything["offset"] == 0
    starts = [j["startTime"] for j in everything["items"]]
    assert starts == sorted(starts, reverse=True)  # default order: newest first
    assert all(s.endswith("Z") and s[4] == "-" for s in starts)  # RFC 3339

    assert jobs(graphql_site, filter=[{"cluster": {"eq": "alex"}}], page={"itemsPerPage": 1, "page": 1})["count"] == 303
    assert jobs(graphql_site, filter=[{"cluster": {"eq": "fritz"}}], page={"itemsPerPage": 1, "page": 1})["count"] == 241
    last = jobs(graphql_site, filter=[{"cluster": {"eq": "fritz"}}], page={"itemsPerPage": 100, "page": 3})
    assert len(last["items"]) == 41 and last["hasNextPage"] is False and last["offset"] == 200
    everyone = jobs(graphql_site, filter=[{"project": {"eq": "caph"}}], page={"itemsPerPage": -1, "page": 1})
    assert len(everyone["items"]) == 65 and everyone["hasNextPage"] is False

    by_nodes = jobs(graphql_site, order={"field": "numNodes", "type": "col", "order": "DESC"},
                    page={"itemsPerPage": 5, "page": 1})["items"]
    assert [j["numNodes"] for j in by_nodes] == sorted((j["numNodes"] for j in by_nodes), reverse=True)
    assert by_nodes[0]["numNodes"] >= by_nodes[-1]["numNodes"]


def test_job_fields_and_filters(graphql_site):
    alex = jobs(graphql_site, filter=[{"cluster": {"eq": "alex"}}, {"user": {"eq": "mppi067h"}}],
                page={"itemsPerPage": 100, "page": 1})
    assert alex["count"] == 65 and {j["user"] for j in alex["items"]} == {"mppi067h"}
    job = alex["items"][0]
    assert job["cluster"] == "alex" and job["state"] == "completed" and job["SMT"] >= 0
    assert job["resources"][0]["hostname"]
    assert isinstance(job["footprint"], list)

    one = graphql_site.query("query($id: ID!) { job(id: $id) { id jobId user userData { username } } }",
                             {"id": job["id"]})["job"]
    assert one["jobId"] == job["jobId"] and one["id"] == job["id"]

    tagged = jobs(graphql_site, filter=[{"tags": ["3"]}])
    assert tagged["count"] >= 1 and all(any(t["name"] == "vasp" for t in j["tags"]) for j in tagged["items"])
    assert jobs(graphql_site, filter=[{"state": ["running"]}])["count"] == 0
    window = jobs(graphql_site, filter=[{"startTime": {"from": "2023-02-07T00:00:00Z", "to": "2023-02-08T00:00:00Z"}}],
                  page={"itemsPerPage": -1, "page": 1})
    assert window["count"] == len(window["items"]) > 0
    assert all("2023-02-07" <= j["startTime"] < "2023-02-08" for j in window["items"])
    assert jobs(graphql_site, filter=[{"numNodes": {"from": 2, "to": 0}}])["count"] == \
        sum(1 for j in jobs(graphql_site, page={"itemsPerPage": -1, "page": 1})["items"] if j["numNodes"] >= 2)


def test_user_data_of_a_page(graphql_site):
    from support.cli import cli

    assert cli(graphql_site.site, "user", "add", "mppi067h", "--name", "Maria Musterfrau", "--password", "pw",
               "--role", "user").returncode == 0
    query = """query($f: [JobFilter!]) { jobs(filter: $f, page: {itemsPerPage: 100, page: 1}) {
                 items { user userData { username name } } } }"""
    items = graphql_site.query(query, {"f": [{"cluster": {"eq": "alex"}}]})["jobs"]["items"]
    owners = {j["user"] for j in items}
    assert "mppi067h" in owners and len(owners) > 1
    for job in items:
        if job["user"] == "mppi067h":
            assert job["userData"] == {"username": "mppi067h", "name": "Maria Musterfrau"}
        else:
            assert job["userData"] is None  # owners without an account


def test_visibility_by_role(graphql_site):
    assert jobs(graphql_site, user="gqlsupport")["count"] == 544
    assert jobs(graphql_site, user="gqluser")["count"] == 0  # owns no job
    manager = jobs(graphql_site, user="gqlmanager", page={"itemsPerPage": -1, "page": 1})
    assert manager["count"] == 65 and {j["project"] for j in manager["items"]} == {"caph"}
    other = jobs(graphql_site, filter=[{"cluster": {"eq": "fritz"}}], page={"itemsPerPage": 1, "page": 1})["items"][0]
    r = graphql_site.post("query($id: ID!) { job(id: $id) { id } }", {"id": other["id"]}, user="gqlmanager")
    assert r.status_code == 200 and r.json()["data"]["job"] is None
    assert "no job with id" in r.json()["errors"][0]["message"]


def test_errors_are_graphql_errors(graphql_site):
    bad_filter = graphql_site.errors(JOBS, {"filter": [{"state": ["bogus"]}]}, status=422)
    assert "JobState must be one of" in bad_filter[0]["message"] and "got 'bogus'" in bad_filter[0]["message"]
    r = graphql_site.post(JOBS, {"order": {"field": "resources", "type": "col", "order": "ASC"}})
    assert r.status_code == 200 and "cannot sort by 'resources'" in r.json()["errors"][0]["message"]
    r = graphql_site.post(JOBS, {"filter": [{"metricStats": [{"metricName": "x; DROP TABLE job", "range": {"from": 0, "to": 1}}]}]})
    assert "metricName" in r.json()["errors"][0]["message"]
    r = graphql_site.post(JOBS, {"page": {"itemsPerPage": 0, "page": 1}})
    assert "itemsPerPage" in r.json()["errors"][0]["message"]
    r = graphql_site.post("{ job(id: \"abc\") { id } }")
    assert r.json()["errors"][0]["message"] == "id must be a numeric id, got 'abc'"
    r = graphql_site.post("{ nosuchfield }")
    assert r.status_code == 422 and "nosuchfield" in r.json()["errors"][0]["message"]
    r = graphql_site.post("{ jobs { items { id ")
    assert r.status_code == 422 and r.json()["errors"]


def test_limits_and_http_layer(graphql_site):
    deep = "{ jobs { items { tags { id } " + "".join("... on Job { id } " for _ in range(3)) + "} } }"
    assert graphql_site.query(deep)["jobs"]["items"] is not None
    nested = "fragment F on Job { userData { username } } " \
             "{ jobs { items { ...F concurrentJobs { items { id } } } } }"
    assert "jobs" in graphql_site.query(nested)
    flood = "{ " + " ".join(f"a{i}: jobs {{ count }}" for i in range(2100)) + " }"
    r = graphql_site.post(flood)
    assert r.status_code == 422 and "more than 2000 fields" in r.json()["errors"][0]["message"]

    anonymous = httpx.post(graphql_site.url + "/query", json={"query": "{ tags { id } }"})
    assert anonymous.status_code == 401
    assert httpx.post(graphql_site.url + "/query", content=b"not json",
                      headers={"Authorization": f"Bearer {graphql_site.tokens['gqladmin']}"}).status_code == 400
    r = graphql_site.post("")
    assert r.status_code == 400 and "query" in r.json()["error"]
    got = httpx.get(graphql_site.url + "/query", params={"query": "{ jobs(page: {itemsPerPage: 1, page: 1}) { count } }"},
                    headers={"Authorization": f"Bearer {graphql_site.tokens['gqladmin']}"})
    assert got.status_code == 200 and got.json()["data"]["jobs"]["count"] == 544


def test_every_query_and_mutation_has_a_resolver():
    """All 22 queries and 6 mutations of upstream's schema are implemented, none by the default resolver."""
    import re
    from pathlib import Path

    from cc_backend.server.graphql.executor import SCHEMA_FILE, executor

    sdl = Path(SCHEMA_FILE).read_text()
    upstream = UPSTREAM_SPEC / "api" / "schema.graphqls"
    if upstream.exists():
        assert sdl == upstream.read_text(), "server/graphql/schema.graphqls must stay upstream's schema"
    schema = executor().engine._schema
    for root, expected in (("Query", 22), ("Mutation", 6)):
        block = re.search(rf"type {root} {{(.*?)\n}}", sdl, re.S).group(1)
        names = re.findall(r"^  (\w+)\s*[(:]", block, re.M)  # fields; their arguments are indented deeper
        assert len(names) == expected, (root, names)
        missing = [n for n in names if schema.get_field_by_name(f"{root}.{n}").raw_resolver is None]
        assert not missing, f"{root} fields without a resolver: {missing}"


def test_a_web_session_works_and_is_protected_against_other_sites(graphql_site):
    """The web UI's way in: the session cookie of /login, with writes from another site refused."""
    login = httpx.post(graphql_site.url + "/login", data={"username": "gqlmanager", "password": "pw"})
    assert login.status_code == 302
    cookie = {"Cookie": "session=" + login.cookies["session"]}
    query = {"query": "{ jobs(page: {itemsPerPage: 1, page: 1}) { count } }"}
    r = httpx.post(graphql_site.url + "/query", json=query, headers=cookie)
    assert r.status_code == 200 and r.json()["data"]["jobs"]["count"] == 65  # the manager's project
    same_site = {**cookie, "Origin": graphql_site.url}
    assert httpx.post(graphql_site.url + "/query", json=query, headers=same_site).status_code == 200
    other_site = {**cookie, "Origin": "https://evil.example.org"}
    refused = httpx.post(graphql_site.url + "/query", json=query, headers=other_site)
    assert refused.status_code == 403 and "origin" in refused.json()["error"].lower()
    assert httpx.post(graphql_site.url + "/query", json=query, headers={"Cookie": "session=forged"}).status_code == 401


def test_concurrent_jobs_on_shared_nodes(app_start, site):
    """Job.concurrentJobs: jobs that overlapped on a shared node; none for exclusive or short jobs."""
    from support.cli import cli
    from support.graphql import GraphQLSite
    from support.jobs import start_payload

    server = app_start()
    assert cli(site, "--add-user", "boss:admin,api:pw").returncode == 0
    token = cli(site, "--jwt", "boss").stdout.strip()
    client = GraphQLSite(server=server, site=site, tokens={"boss": token})
    headers = {"X-Auth-Token": token}
    t0 = 1_700_000_000
    plan = {  # jobId: (start, stop, shared, host)
        501: (t0, t0 + 7200, "multi_user", "f0101"),
        502: (t0 + 600, t0 + 4000, "multi_user", "f0101"),   # overlaps 501 on f0101
        503: (t0 + 1000, t0 + 5000, "multi_user", "f0102"),  # another node
        504: (t0 + 7150, t0 + 9000, "multi_user", "f0101"),  # starts within the last 200 s of 501: not counted
    }
    ids = {}
    for job_id, (begin, end, shared, host) in plan.items():
        body = start_payload(job_id, begin, shared=shared, resources=[{"hostname": host}], numHwthreads=1)
        r = server.post("/api/jobs/start_job/", json=body, headers=headers)
        assert r.status_code == 201, r.text
        ids[job_id] = r.json()["id"]
        r = server.post("/api/jobs/stop_job/", headers=headers,
                       json={"jobId": job_id, "cluster": "fritz", "startTime": begin, "stopTime": end})
        assert r.status_code == 200, r.text

    query = "query($id: ID!) { job(id: $id) { concurrentJobs { count listQuery items { id jobId } } } }"
    first = client.query(query, {"id": ids[501]}, user="boss")["job"]["concurrentJobs"]
    assert first == {"count": 1, "listQuery": "jobId=502", "items": [{"id": str(ids[502]), "jobId": 502}]}
    second = client.query(query, {"id": ids[502]}, user="boss")["job"]["concurrentJobs"]
    assert [item["jobId"] for item in second["items"]] == [501]
    assert client.query(query, {"id": ids[503]}, user="boss")["job"]["concurrentJobs"]["count"] == 0


def test_the_completion_shortcut_answers_as_the_engine_does(graphql_site):
    """The same selection, once projected in one pass and once (inside inline fragments) by tartiflette itself."""
    nested = {"tags": "Tag { id type name scope __typename }",
              "resources": "Resource { hostname hwthreads accelerators configuration }",
              "footprint": "FootprintValue { name stat value }",
              "energyFootprint": "EnergyFootprintValue { hardware metric value }"}
    plain = """id jobId user project cluster subCluster startTime duration walltime numNodes numHWThreads numAcc
               energy SMT shared partition arrayJobId monitoringStatus state metaData __typename alias: jobId"""

    def selection(fragments: bool) -> str:
        parts = [plain] + [f"{field} {{ ... on {body} }}" if fragments else f"{field} {{ {body.split(' ', 1)[1][2:-2]} }}"
                           for field, body in nested.items()]
        inner = " ".join(parts)
        return f"... on Job {{ {inner} }}" if fragments else inner

    query = "query($f: [JobFilter!], $p: PageRequest) { jobs(filter: $f, page: $p) { items { %s } } }"
    for flt in ([{"cluster": {"eq": "alex"}}], [{"tags": ["1", "2", "3", "4"]}]):  # the second: every tagged job
        variables = {"f": flt, "p": {"itemsPerPage": 60, "page": 1}}
        projected = graphql_site.query(query % selection(False), variables)
        assert projected == graphql_site.query(query % selection(True), variables)
        items = projected["jobs"]["items"]
        assert items and all(isinstance(j["id"], str) and j["startTime"].endswith("Z") for j in items)
        assert all(j["footprint"] and j["energyFootprint"] and j["resources"] for j in items)
    assert any(j["tags"] for j in items)  # a tag of scope "demo" is private to user demo
