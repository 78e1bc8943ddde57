"""The job-changing REST API through the app in process: a cc-slurm-adapter-like client and upstream's API cases."""

from __future__ import annotations

from support.jobs import HOST, start_payload


def test_slurm_adapter_conversation(api):
    app, headers, _ = api
    with app.client(headers=headers) as client:
        r = client.get("/api/jobs/?state=running&items-per-page=9999999&page=1&with-metadata=false")
        assert r.status_code == 200 and r.json()["jobs"] == []
        assert client.post("/api/jobs/start_job/", json=start_payload(123, 123456789)).status_code == 201
        r = client.post("/api/jobs/start_job/", json=start_payload(123, 123456789))
        assert r.status_code == 422 and r.json()["status"] == "Unprocessable Entity"
        running = client.get("/api/jobs/?state=running&items-per-page=9999999&page=1&with-metadata=false").json()
        assert [(j["jobId"], j["subCluster"], j["jobState"]) for j in running["jobs"]] == [(123, "main", "running")]
        stop = {"jobId": 123, "cluster": "fritz", "startTime": 123456789, "jobState": "completed", "stopTime": 123457789}
        r = client.post("/api/jobs/stop_job/", json=stop)
        assert r.status_code == 200
        job = r.json()
        assert job["jobState"] == "completed" and job["duration"] == 1000
        assert job["metaData"] == {"jobScript": "blablabla..."}
        assert client.post("/api/jobs/stop_job/", json=stop).status_code == 422
        r = client.post("/api/nodestate/", json={"cluster": "fritz", "nodes": [
            {"hostname": HOST, "states": ["idle"], "cpusAllocated": 0, "memoryAllocated": 0, "gpusAllocated": 0,
             "jobsRunning": 0}]})
        assert r.status_code == 200


def test_upstream_cases_a5_to_a8(api):
    app, headers, _ = api
    with app.client(headers=headers) as client:
        minimal = {"jobId": 12345, "user": "testuser", "project": "testproj", "cluster": "fritz",
                   "partition": "default", "walltime": 3600, "numNodes": 1, "shared": "none",
                   "monitoringStatus": 1, "smt": 1, "resources": [{"hostname": HOST}], "startTime": 12345678}
        assert client.post("/api/jobs/start_job/", json=minimal).status_code == 201  # A5
        r = client.post("/api/jobs/stop_job/", json={"jobId": 12345, "cluster": "fritz", "jobState": "failed",
                                                     "stopTime": 12355678})  # A6: no startTime
        assert r.status_code == 200 and r.json()["jobState"] == "failed"
        r = client.get("/api/jobs/used_nodes?ts=123456790")  # A7
        assert r.status_code == 200 and r.json() == {"usedNodes": {}}
        # A8: the same job id again later; the stop finds the new running job, not the old failed one
        assert client.post("/api/jobs/start_job/", json=start_payload(999, 200000000)).status_code == 201
        assert client.post("/api/jobs/stop_job/", json={"jobId": 999, "cluster": "fritz", "startTime": 200000000,
                                                       "jobState": "failed", "stopTime": 200001000}).status_code == 200
        assert client.post("/api/jobs/start_job/", json=start_payload(999, 300000000)).status_code == 201
        r = client.post("/api/jobs/stop_job/", json={"jobId": 999, "cluster": "fritz", "startTime": 300000000,
                                                     "jobState": "completed", "stopTime": 300001000})
        assert r.status_code == 200 and r.json()["jobState"] == "completed" and r.json()["startTime"] == 300000000
        r = client.get("/api/jobs/used_nodes?ts=400000000")
        assert r.json() == {"usedNodes": {}}
        assert client.post("/api/jobs/start_job/", json=start_payload(1000, 500000000)).status_code == 201
        assert client.get("/api/jobs/used_nodes?ts=500000001").json() == {"usedNodes": {"fritz": [HOST]}}


BAD_STARTS = [
    (start_payload(1, 100, colour="blue"), "colour"),
    (start_payload(1, 100, cluster="nosuch"), "cluster"),
    (start_payload(1, 100, numNodes=2), "numNodes"),
    (start_payload(1, 100, resources=[]), "resources"),
    ({"user": "x"}, None),
]


def test_start_job_rejects_bad_input(api):
    """Each bad body is a 400 naming the field; one server for all of them (a server start costs seconds)."""
    app, headers, _ = api
    for payload, field in BAD_STARTS:
        r = app.post("/api/jobs/start_job/", json=payload, headers=headers)
        assert r.status_code == 400, payload
        body = r.json()
        assert body["status"] == "Bad Request" and isinstance(body["error"], str)
        if field:
            assert field in body["error"], (payload, body)
    listed = app.get("/api/jobs/?state=running", headers=headers).json()["jobs"]
    assert listed == []  # nothing was stored


def test_stop_job_errors(api):
    """Each refused stop names the field or the job, and leaves the running job as it was."""
    app, headers, _ = api
    with app.client(headers=headers) as client:
        r = client.post("/api/jobs/stop_job/", json={"cluster": "fritz", "stopTime": 5})
        assert r.status_code == 400
        assert r.json() == {"status": "Bad Request", "error": "the field 'jobId' is required"}
        r = client.post("/api/jobs/stop_job/", json={"jobId": 4242, "cluster": "fritz", "stopTime": 5})
        assert r.status_code == 404
        assert r.json() == {"status": "Not Found", "error": "no job with jobId 4242 on fritz"}
        assert client.post("/api/jobs/start_job/", json=start_payload(77, 1000)).status_code == 201
        before = client.get("/api/jobs/?with-metadata=true").json()["jobs"]
        assert [(j["jobId"], j["jobState"]) for j in before if j["jobId"] == 77] == [(77, "running")]
        r = client.post("/api/jobs/stop_job/", json={"jobId": 77, "cluster": "fritz", "startTime": 1000,
                                                    "stopTime": 999})
        assert r.status_code == 400
        assert r.json() == {"status": "Bad Request", "error": "stopTime 999 must not be before startTime 1000"}
        r = client.post("/api/jobs/stop_job/", content=b"{not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["status"] == "Bad Request"
        assert r.json()["error"].startswith("the request body is not valid JSON: ")
        assert client.get("/api/jobs/?with-metadata=true").json()["jobs"] == before  # nothing changed


def test_tags_metadata_and_deletes(api):
    app, headers, admin = api
    with app.client(headers=headers) as client:
        client.post("/api/jobs/start_job/", json=start_payload(501, 5000))
        client.post("/api/jobs/start_job/", json=start_payload(502, 5000))
        jobs = {j["jobId"]: j for j in client.get("/api/jobs/").json()["jobs"] if j["jobId"] in (501, 502)}
        db_id = jobs[501]["id"]
        r = client.post(f"/api/jobs/tag_job/{db_id}", json=[{"type": "app", "name": "gromacs"},
                                                           {"type": "review", "name": "slow", "scope": "admin"}])
        assert r.status_code == 200
        assert {(t["type"], t["name"]) for t in r.json()["tags"]} >= {("app", "gromacs")}
        r = client.post(f"/api/jobs/tag_job/{db_id}", json=[{"type": "note", "name": "x", "scope": "someoneelse"}])
        assert r.status_code == 403
        assert r.json() == {"status": "Forbidden",
                            "error": "tag note:x: cannot write tag scope 'someoneelse' with current authorization"}
        r = client.request("DELETE", f"/api/jobs/tag_job/{db_id}", json=[{"type": "app", "name": "gromacs"}])
        assert r.status_code == 200 and ("app", "gromacs") not in {(t["type"], t["name"]) for t in r.json()["tags"]}
        r = client.patch(f"/api/jobs/edit_meta/{db_id}", json={"key": "message", "value": "hello"})
        assert r.status_code == 200 and r.json()["metaData"]["message"] == "hello"
        r = client.patch("/api/jobs/edit_meta/", json={"jobId": 502, "cluster": "fritz", "startTime": 5000,
                                                      "payload": {"key": "k", "value": "v"}})
        assert r.status_code == 200 and r.json()["metaData"]["k"] == "v"
        r = client.patch("/api/jobs/edit_meta/", json={"jobId": 4242, "payload": {"key": "k", "value": "v"}})
        assert r.status_code == 422
        assert r.json() == {"status": "Unprocessable Entity", "error": "finding job failed: no job with jobId 4242"}
        r = client.request("DELETE", "/api/tags/", json=[{"type": "review", "name": "slow", "scope": "admin"}])
        assert r.status_code == 200 and r.text.startswith("Deleted Tags from DB: 1 successfull of 1 requested")
        r = client.request("DELETE", f"/api/jobs/delete_job/{db_id}")
        assert r.status_code == 200 and r.json() == {"msg": f"Successfully deleted job {db_id}"}
        r = client.request("DELETE", "/api/jobs/delete_job/", json={"jobId": 502, "cluster": "fritz", "startTime": 5000})
        assert r.status_code == 200
        r = client.request("DELETE", f"/api/jobs/delete_job/{db_id}")
        assert r.status_code == 422
        assert r.json() == {"status": "Unprocessable Entity", "error": f"deleting job failed: no job with id {db_id}"}
        r = client.request("DELETE", "/api/jobs/delete_job_before/1000000000?omit-tagged=none")
        assert r.status_code == 200 and r.json()["msg"].startswith("Successfully deleted")
        remaining = client.get("/api/jobs/?items-per-page=1000").json()["jobs"]
        assert all(j["startTime"] >= 1000000000 for j in remaining)


def test_user_roles_via_api_need_admin(api, site):
    app, headers, admin = api
    r = app.post("/api/user/adapter", json={"add-role": "support"}, headers=headers)
    assert r.status_code == 403
    assert r.json() == {"status": "Forbidden", "error": "only admins are allowed to change users"}
    r = app.post("/api/user/adapter", json={"add-role": "support"}, headers=admin)
    assert r.status_code == 200 and r.json() == {"msg": "Add Role Success for user adapter"}
    r = app.post("/api/user/adapter", json={"add-role": "wizard"}, headers=admin)
    assert r.status_code == 422
    assert r.json() == {"status": "Unprocessable Entity", "error": "adding role failed: supplied role is no valid "
                        "option: 'wizard' (valid: api, user, manager, support, admin)"}
    r = app.get("/api/users/", headers=admin)
    assert {u["username"]: u["roles"] for u in r.json()} == {"adapter": ["api", "support"], "boss": ["admin", "api"]}


def test_a_cached_token_still_expires(app_start, site):
    import time
    from datetime import timedelta

    from cc_backend.auth.keys import issue_jwt
    from cc_backend.config import load_env

    server = app_start()
    secrets = load_env(site / ".env", environ={})
    token = issue_jwt("adapter", ["api"], secrets.JWT_PRIVATE_KEY, timedelta(seconds=2))
    headers = {"X-Auth-Token": token}
    assert server.get("/api/jobs/", headers=headers).status_code == 200
    assert server.get("/api/jobs/", headers=headers).status_code == 200  # from the cache
    time.sleep(2.5)
    r = server.get("/api/jobs/", headers=headers)
    assert r.status_code == 401 and r.json()["status"] == "Unauthorized"
