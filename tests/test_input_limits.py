"""Limits on every write path over real HTTP and the real CLI, on SQLite and MariaDB (issue 9, points 2-5).

Numbers in range, texts that fit their columns, footprints that are objects of numbers, request bodies
below main.max-request-body-size: anything else is a 4xx naming the field or the limit, never a 500
and never a row that breaks reading later.
"""

from __future__ import annotations

import json
import socket

import httpx
import orjson
from support.cli import cli
from support.jobs import start_payload

#: A job in the peer archive (emmy, archived): tag_job rewrites its meta.json.
ARCHIVED = ("emmy", 1404397, 1609300556)
DEFAULT_BODY_LIMIT = 8 * 1024 * 1024


def _site_engine(site):
    from cc_backend.config import load_config
    from cc_backend.db.engine import make_engine

    return make_engine(load_config(site / "config.json").database_url())


def _bad(client: httpx.Client, method: str, path: str, body, field: str) -> str:
    r = client.request(method, path, json=body)
    assert r.status_code == 400, (path, field, r.text[:300])
    answer = r.json()
    assert answer["status"] == "Bad Request" and field in answer["error"], (field, answer)
    return answer["error"]


BAD_START_FIELDS = [
    ({"footprint": "abc"}, "footprint"),
    ({"footprint": [1, 2]}, "footprint"),
    ({"footprint": {"flops_any_avg": "x"}}, "footprint"),
    ({"footprint": {"flops_any_avg": True}}, "footprint"),
    ({"energyFootprint": "abc"}, "energyFootprint"),
    ({"energyFootprint": [1, 2]}, "energyFootprint"),
    ({"energyFootprint": {"a": "x"}}, "energyFootprint"),
    ({"startTime": 9223372036854775807}, "startTime"),
    ({"startTime": -1}, "startTime"),
    ({"startTime": 2**53 + 1}, "startTime"),
    ({"submitTime": -5}, "submitTime"),
    ({"walltime": -1}, "walltime"),
    ({"walltime": 2**31}, "walltime"),  # a 32-bit INT on MariaDB
    ({"arrayJobId": -1}, "arrayJobId"),
    ({"smt": -1}, "smt"),
    ({"energy": -1.5}, "energy"),
    ({"numHwthreads": -1}, "numHwthreads"),
    ({"numAcc": 2**31}, "numAcc"),
    ({"duration": -3}, "duration"),
    ({"user": "u" * 256}, "user"),
    ({"project": "p" * 300}, "project"),
    ({"partition": "q" * 300}, "partition"),
    ({"tags": [{"type": "t" * 300, "name": "n"}]}, "tags[0].type"),
    ({"tags": [{"type": "t", "name": "n" * 300}]}, "tags[0].name"),
    ({"metaData": {"jobScript": "x" * (5 << 20)}}, "metaData"),  # below the body limit, above the column's
]


def test_start_job_refuses_out_of_range_and_oversized_fields(api):
    app, headers, _ = api
    with app.client(headers=headers) as client:
        for i, (extra, field) in enumerate(BAD_START_FIELDS):
            _bad(client, "POST", "/api/jobs/start_job/", start_payload(100 + i, 1000, **extra), field)
        assert client.get("/api/jobs/?state=running").json()["jobs"] == []  # nothing was stored

        # the limits themselves are accepted, and stored alike on both databases
        edge = start_payload(7, 2**53, user="u" * 255, walltime=2**31 - 1, energy=0.0,
                             footprint={"flops_any_avg": 1.5}, energyFootprint={"cpu_power": 2.0},
                             tags=[{"type": "t" * 255, "name": "n" * 255}])
        assert client.post("/api/jobs/start_job/", json=edge).status_code == 201
        [job] = client.get("/api/jobs/?state=running").json()["jobs"]
        assert (job["user"], job["startTime"], job["walltime"]) == ("u" * 255, 2**53, 2**31 - 1)
        assert job["footprint"] == {"flops_any_avg": 1.5} and job["energyFootprint"] == {"cpu_power": 2.0}
        assert [(t["type"], t["name"]) for t in job["tags"]] == [("t" * 255, "n" * 255)]


def test_stop_job_refuses_a_duration_that_overflows(api):
    app, headers, _ = api
    with app.client(headers=headers) as client:
        assert client.post("/api/jobs/start_job/", json=start_payload(77, 1000)).status_code == 201
        key = {"jobId": 77, "cluster": "fritz", "startTime": 1000}
        for stop_time in (9223372036854775807, 2**53 + 1, 1000 + 2**31):
            error = _bad(client, "POST", "/api/jobs/stop_job/", {**key, "stopTime": stop_time}, "stopTime")
            assert str(stop_time) in error
        r = client.post("/api/jobs/stop_job/", json={**key, "stopTime": 4600})
        assert r.status_code == 200 and (r.json()["jobState"], r.json()["duration"]) == ("completed", 3600)


def test_tags_metadata_and_node_states_must_fit_their_columns(api, site, tokens):
    app, headers, admin = api
    cluster, job_id, start_time = ARCHIVED
    meta_path = (site / "job-archive" / cluster / str(job_id // 1000) / f"{job_id % 1000:03d}" / str(start_time)
                 / "meta.json")
    with app.client(headers=admin) as client:
        [job] = [j for j in client.get("/api/jobs/?cluster=emmy").json()["jobs"] if j["jobId"] == job_id]
        before = meta_path.read_bytes()
        _bad(client, "POST", f"/api/jobs/tag_job/{job['id']}", [{"type": "app", "name": "n" * 256}], "tags[0].name")
        _bad(client, "POST", f"/api/jobs/tag_job/{job['id']}", [{"type": "a" * 256, "name": "x"}], "tags[0].type")
        assert meta_path.read_bytes() == before  # the archive did not get the tag either
        r = client.post(f"/api/jobs/tag_job/{job['id']}", json=[{"type": "app", "name": "n" * 255}])
        assert r.status_code == 200 and ("app", "n" * 255) in {(t["type"], t["name"]) for t in r.json()["tags"]}
        assert {"type": "app", "name": "n" * 255} in [
            {"type": t["type"], "name": t["name"]} for t in orjson.loads(meta_path.read_bytes())["tags"]]

        error = _bad(client, "PATCH", f"/api/jobs/edit_meta/{job['id']}",
                     {"key": "jobScript", "value": "x" * (5 << 20)}, "value")
        assert "4194304" in error

        nodes = {"cluster": "fritz", "nodes": [{"hostname": "f0101", "states": ["idle"]}]}
        for node, field in (({"hostname": "h" * 256}, "nodes[0].hostname"),
                            ({"memoryAllocated": 2**31}, "nodes[0].memoryAllocated"),
                            ({"cpusAllocated": -1}, "nodes[0].cpusAllocated")):
            body = {**nodes, "nodes": [{**nodes["nodes"][0], **node}]}
            _bad(client, "POST", "/api/nodestate/", body, field)
        long_host = {**nodes, "nodes": [{"hostname": "h" * 255, "states": ["idle"], "memoryAllocated": 2**31 - 1}]}
        assert client.post("/api/nodestate/", json=long_host).status_code == 200

    # GraphQL's createTag has the same limit (one rule in the core)
    gql = {"Authorization": f"Bearer {tokens(['admin'], sub='boss')}"}
    r = app.post("/query", headers=gql, json={
        "query": 'mutation { createTag(type: "app", name: "%s", scope: "global") { id } }' % ("n" * 256)})
    assert r.json()["data"] is None and "name is longer than 255" in r.json()["errors"][0]["message"]
    # updateConfiguration: the setting's name and value must fit the configuration table
    for name, value, message in (("k" * 256, '"x"', "name is longer than 255"),
                                 ("plot_list_selectedMetrics", json.dumps("x" * (5 << 20)), "value is too large")):
        r = app.post("/query", headers=gql, timeout=60, json={
            "query": "mutation($n: String!, $v: String!) { updateConfiguration(name: $n, value: $v) }",
            "variables": {"n": name, "v": value}})
        assert message in r.json()["errors"][0]["message"], r.text[:300]


BAD_FOOTPRINTS = ['"abc"', "[1, 2]", '{"a": "x"}', "not json"]


def test_a_bad_footprint_row_is_a_null_field_not_a_failed_page(api, site, tokens):
    """Rows written by an older version (or by hand): each bad job shows null, the page and the others are intact."""
    app, headers, _ = api
    good = {"flops_any_avg": 2.5}
    with app.client(headers=headers) as client:
        for i in range(len(BAD_FOOTPRINTS) + 1):
            r = client.post("/api/jobs/start_job/", json=start_payload(
                900 + i, 50000, footprint=good, energyFootprint={"cpu_power": 1.0}))
            assert r.status_code == 201
    engine = _site_engine(site)
    with engine.begin() as conn:
        for i, bad in enumerate(BAD_FOOTPRINTS):
            conn.exec_driver_sql("UPDATE job SET footprint = %s, energy_footprint = %s WHERE job_id = %s"
                                 .replace("%s", "?" if engine.dialect.name == "sqlite" else "%s"),
                                 (bad, bad, 900 + i))
    engine.dispose()
    bad_ids = {900 + i for i in range(len(BAD_FOOTPRINTS))}
    good_id = 900 + len(BAD_FOOTPRINTS)

    gql = {"Authorization": f"Bearer {tokens(['admin'], sub='boss')}"}
    fields = "jobId footprint { name stat value } energyFootprint { hardware metric value }"
    running = '[{state: [running], cluster: {eq: "fritz"}}]'
    # as a plain selection (completed by projection) and through a fragment (completed by the engine)
    for selection in (fields, f"... on Job {{ {fields} }}"):
        r = app.post("/query", headers=gql, json={
            "query": f"{{ jobs(filter: {running}, page: {{itemsPerPage: 50, page: 1}}) "
                     f"{{ items {{ {selection} }} }} }}"})
        body = r.json()
        assert r.status_code == 200 and "errors" not in body, body
        items = {j["jobId"]: j for j in body["data"]["jobs"]["items"]}
        assert set(items) == bad_ids | {good_id}
        for job_id in bad_ids:
            assert items[job_id]["footprint"] is None and items[job_id]["energyFootprint"] is None
        assert items[good_id]["footprint"] == [{"name": "flops_any", "stat": "avg", "value": 2.5}]
        assert items[good_id]["energyFootprint"] == [{"hardware": "CPU", "metric": "cpu_power", "value": 1.0}]

    r = app.post("/query", headers=gql, json={
        "query": f'{{ jobsFootprints(filter: {running}, metrics: ["flops_any"]) {{ metrics {{ metric data }} }} }}'})
    body = r.json()
    assert "errors" not in body, body
    assert sorted(body["data"]["jobsFootprints"]["metrics"][0]["data"], key=lambda v: v is None) == \
        [2.5] + [None] * len(BAD_FOOTPRINTS)

    jobs = {j["jobId"]: j for j in app.get("/api/jobs/?state=running", headers=headers).json()["jobs"]}
    assert {job_id: jobs[job_id]["footprint"] for job_id in bad_ids} == dict.fromkeys(bad_ids)
    assert jobs[good_id]["footprint"] == good


def _raw_request(url: str, head: str, body: bytes = b"") -> tuple[int, dict]:
    """Send a request as written (no client library that would send or frame the body itself)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode() + b"\r\n" + body)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            part = sock.recv(65536)
            if not part:
                break
            data += part
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.split(b"\r\n\r\n", 1)[1])


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def test_default_body_limit_refuses_20_mb_unread(api_server):
    """A real server: the refusal must not wait for the body (the connection handling is under test)."""
    url, headers, _ = api_server
    token = headers["X-AUTH-TOKEN"]
    for path in ("/api/jobs/start_job/", "/query", "/api/nodestate/"):
        # only the headers are sent: the answer must not wait for a body it will not read
        status, body = _raw_request(url, f"POST {path} HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {token}\r\n"
                                         f"Content-Type: application/json\r\nContent-Length: 20000000\r\n")
        assert status == 413 and str(DEFAULT_BODY_LIMIT) in body["error"], (path, body)


def test_configured_body_limit_on_every_route_and_chunked_bodies(start, site, tokens):
    limit = 65536
    server = start(max_request_body_size=limit)
    assert cli(site, "-add-user", "adapter:api:pw").returncode == 0
    token = tokens(["api"], sub="adapter")
    head = f"Host: x\r\nX-Auth-Token: {token}\r\nContent-Type: application/json\r\n"
    for path in ("/api/jobs/start_job/", "/query", "/api/nodestate/", "/login", "/api/jobs/tag_job/1"):
        status, body = _raw_request(server.url, f"POST {path} HTTP/1.1\r\n{head}Content-Length: {limit + 1}\r\n")
        assert (status, body["status"]) == (413, "Request Entity Too Large")
        assert f"limit of {limit} bytes" in body["error"]
    # a chunked body is refused as soon as its chunk sizes pass the limit (the chunk itself is never sent)
    status, body = _raw_request(server.url, f"POST /api/nodestate/ HTTP/1.1\r\n{head}Transfer-Encoding: chunked\r\n",
                                f"{limit + 1:x}\r\n".encode() + b"x" * 10)
    assert status == 413 and f"limit of {limit} bytes" in body["error"]
    status, body = _raw_request(server.url, f"POST /query HTTP/1.1\r\n{head}Transfer-Encoding: chunked\r\n",
                                b"10000\r\n" + b" " * 65536 + b"\r\n1\r\n")
    assert status == 413 and f"limit of {limit} bytes" in body["error"]

    # bodies up to the limit work, chunked ones too
    payload = orjson.dumps(start_payload(5, 1000, metaData={"jobScript": "x" * 1000}))
    chunks = [payload[i:i + 100] for i in range(0, len(payload), 100)]
    r = httpx.post(server.url + "/api/jobs/start_job/", content=iter(chunks),
                   headers={"X-Auth-Token": token, "Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    assert r.request.headers["transfer-encoding"] == "chunked"
    [job] = httpx.get(server.url + "/api/jobs/?state=running&with-metadata=true",
                      headers={"X-Auth-Token": token}).json()["jobs"]
    assert job["metaData"] == {"jobScript": "x" * 1000}
    padded = {"cluster": "fritz", "nodes": [{"hostname": "f0101", "states": ["idle"]}]}
    exact = orjson.dumps(padded)
    exact = exact[:-1] + b" " * (limit - len(exact)) + b"}"
    assert len(exact) == limit
    r = httpx.post(server.url + "/api/nodestate/", content=exact,
                   headers={"X-Auth-Token": token, "Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert httpx.get(server.url + "/healthz", timeout=1).status_code == 200


def test_init_db_loads_a_job_without_a_tag_the_database_cannot_hold(site):
    """An archive written before the limit (tag_job then accepted 300 characters): reported, never aborted."""
    emmy = site / "job-archive" / "emmy"
    good = orjson.loads((emmy / "1404/397/1609300556/meta.json").read_bytes())
    tagged = {**good, "jobId": 1404398, "tags": [{"type": "app", "name": "n" * 300, "scope": "global"},
                                                 {"type": "app", "name": "gromacs", "scope": "global"}]}
    (emmy / "1404/398/1609300556").mkdir(parents=True)
    (emmy / "1404/398/1609300556/meta.json").write_bytes(orjson.dumps(tagged))
    long_user = {**good, "jobId": 1404399, "user": "u" * 300}
    (emmy / "1404/399/1609300556").mkdir(parents=True)
    (emmy / "1404/399/1609300556/meta.json").write_bytes(orjson.dumps(long_user))

    r = cli(site, "init-db")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert "1404/398/1609300556/meta.json: loaded without tag 0: tags[0].name is longer than 255" in r.stderr
    assert "1404/399/1609300556/meta.json: user is longer than 255 characters" in r.stderr
    assert "init-db: 3 jobs, 1 tags, 1 skipped" in r.stdout

    from cc_backend.jobs.query import find_jobs

    engine = _site_engine(site)
    [job] = find_jobs(engine, 1404398)
    assert [(t["type"], t["name"]) for t in job["tags"]] == [("app", "gromacs")]
    assert find_jobs(engine, 1404399) == []
    engine.dispose()


def test_import_refuses_oversized_fields_naming_them(site, tmp_path):
    from cc_backend.jobs.query import list_jobs

    emmy = site / "job-archive" / "emmy"
    meta = orjson.loads((emmy / "1404/397/1609300556/meta.json").read_bytes())
    data = emmy / "1404/397/1609300556/data.json"
    data = data if data.exists() else data.with_suffix(".json.gz")
    assert cli(site, "init-db").returncode == 0
    for extra, field in (({"tags": [{"type": "app", "name": "n" * 300}]}, "tags[0].name"),
                         ({"project": "p" * 300}, "project"),
                         ({"startTime": -1}, "startTime")):
        path = tmp_path / "meta.json"
        path.write_bytes(orjson.dumps({**meta, "jobId": 1500000, "startTime": 1609300600, **extra}))
        r = cli(site, "import", f"{path}:{data}")
        assert r.returncode == 2 and field in r.stderr and "Traceback" not in r.stderr, (field, r.stderr)
    engine = _site_engine(site)
    assert {j["jobId"] for j in list_jobs(engine)} == {1403244, 1404397}
    engine.dispose()
    assert not (emmy / "1500").exists()


def test_init_db_merges_tags_that_mariadb_compares_equal(site, empty_db_url):
    """MariaDB's collations ignore trailing spaces (and, as installation.md creates it, case): the
    UNIQUE(tag_type, tag_name) index held them as one and aborted the whole load."""
    emmy = site / "job-archive" / "emmy"
    good = orjson.loads((emmy / "1404/397/1609300556/meta.json").read_bytes())
    for job_id, name in ((1404398, "gromacs"), (1404399, "gromacs ")):
        (emmy / f"1404/{job_id % 1000}/1609300556").mkdir(parents=True)
        (emmy / f"1404/{job_id % 1000}/1609300556/meta.json").write_bytes(
            orjson.dumps({**good, "jobId": job_id, "tags": [{"type": "app", "name": name, "scope": "global"}]}))

    r = cli(site, "init-db")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr

    from cc_backend.jobs.query import find_jobs

    engine = _site_engine(site)
    [first], [second] = find_jobs(engine, 1404398), find_jobs(engine, 1404399)
    engine.dispose()
    if empty_db_url.startswith("sqlite"):  # SQLite compares exactly: two tags
        assert "init-db: 4 jobs, 2 tags, 0 skipped" in r.stdout
        assert (first["tags"][0]["name"], second["tags"][0]["name"]) == ("gromacs", "gromacs ")
    else:
        assert "init-db: 4 jobs, 1 tags, 0 skipped" in r.stdout
        assert "merged into app:" in r.stderr and "which the database's collation compares equal" in r.stderr
        assert first["tags"] == second["tags"] and len(first["tags"]) == 1
