"""The search bar's resolution (cc_backend.jobs.search) on the upstream peer database."""

from __future__ import annotations

import sqlite3
from urllib.parse import parse_qsl, urlsplit

import pytest
from support.db import migrated_peer_sqlite

from cc_backend.auth.security import Viewer
from cc_backend.errors import InvalidInput
from cc_backend.jobs.search import resolve_search

ADMIN = Viewer("demo", ("admin", "api"))
#: The peer jobs' clock: an hour after the last start.
NOW = 1675957496 + 3600


@pytest.fixture(scope="module")
def peer(tmp_path_factory):
    engine, path = migrated_peer_sqlite(tmp_path_factory.mktemp("search"))
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE hpc_user SET name = 'Demo Person' WHERE username = 'demo'")
    db = sqlite3.connect(path)
    yield engine, db
    db.close()
    engine.dispose()


def query_of(url: str) -> tuple[str, list[tuple[str, str]]]:
    parts = urlsplit(url)
    return parts.path, parse_qsl(parts.query)


def test_a_job_id_with_one_match_opens_the_job_and_with_several_the_list(peer):
    engine, db = peer
    db_id, job_id = db.execute("SELECT id, job_id FROM job GROUP BY job_id HAVING count(*) = 1 LIMIT 1").fetchone()
    assert resolve_search(engine, ADMIN, f"jobId:{job_id}") == f"/monitoring/job/{db_id}"
    assert resolve_search(engine, ADMIN, f" {job_id} ") == f"/monitoring/job/{db_id}"  # free text: a number
    assert resolve_search(engine, ADMIN, "jobId:1") == "/monitoring/jobs/?jobId=1"  # no such job: the (empty) list


def test_a_user_does_not_find_other_users_jobs(peer):
    engine, db = peer
    db_id, job_id, owner = db.execute("SELECT id, job_id, hpc_user FROM job GROUP BY job_id HAVING count(*) = 1 "
                                      "LIMIT 1").fetchone()
    stranger = Viewer("someoneelse", ("user",))
    assert resolve_search(engine, stranger, f"jobId:{job_id}") == f"/monitoring/jobs/?jobId={job_id}"
    assert resolve_search(engine, Viewer(owner, ("user",)), f"jobId:{job_id}") == f"/monitoring/job/{db_id}"


def test_job_names_and_array_jobs_search_the_last_30_days(peer):
    engine, db = peer
    name, count = db.execute("SELECT json_extract(meta_data, '$.jobName') n, count(*) FROM job GROUP BY n "
                             "HAVING count(*) > 3 ORDER BY 2 DESC LIMIT 1").fetchone()
    path, params = query_of(resolve_search(engine, ADMIN, f"jobName:{name}", now=NOW))
    assert path == "/monitoring/jobs/"
    assert ("jobName", name) in params and ("startTime", f"{NOW - 30 * 86400}-{NOW}") in params
    single = db.execute("SELECT id, json_extract(meta_data, '$.jobName') n FROM job GROUP BY n HAVING count(*) = 1 "
                        "AND instr(n, ':') = 0 LIMIT 1").fetchone()
    assert resolve_search(engine, ADMIN, f"jobName:{single[1]}", now=NOW) == f"/monitoring/job/{single[0]}"
    path, params = query_of(resolve_search(engine, ADMIN, "arrayJobId:0", now=NOW))
    assert path == "/monitoring/jobs/" and ("arrayJobId", "0") in params


def test_projects_and_users(peer):
    engine, _ = peer
    assert resolve_search(engine, ADMIN, "projectId:caph") == "/monitoring/jobs/?projectMatch=eq&project=caph"
    assert resolve_search(engine, ADMIN, "username:k106eb10") == "/monitoring/users/?user=k106eb10&startTime=last30d"
    # a plain user's username search is their (filtered) job list
    plain = Viewer("k106eb10", ("user",))
    assert resolve_search(engine, plain, "username:k106eb10") == "/monitoring/jobs/?user=k106eb10"
    assert resolve_search(engine, ADMIN, "name:Demo") == "/monitoring/users/?user=demo&startTime=last30d"
    assert resolve_search(engine, ADMIN, "name:Nobody") == "/monitoring/users/?user=NoUserNameFound&startTime=last30d"
    with pytest.raises(InvalidInput):
        resolve_search(engine, plain, "name:Demo")


def test_free_text_finds_users_names_projects_then_job_names(peer):
    engine, _ = peer
    assert resolve_search(engine, ADMIN, "k106eb10") == "/monitoring/user/k106eb10"
    assert resolve_search(engine, ADMIN, "Demo Pers") == "/monitoring/user/demo"
    assert resolve_search(engine, ADMIN, "caph") == "/monitoring/jobs/?projectMatch=eq&project=caph"
    path, params = query_of(resolve_search(engine, ADMIN, "struc_ds", now=NOW))
    assert path == "/monitoring/jobs/" and ("jobName", "struc_ds") in params
    # a plain user's text is a job name search (upstream looks up users and projects for managers and above only)
    path, params = query_of(resolve_search(engine, Viewer("k106eb10", ("user",)), "caph", now=NOW))
    assert ("jobName", "caph") in params


@pytest.mark.parametrize("text", ["", "   ", None, "a:b:c", "color:blue", "jobId:", "jobId:abc"])
def test_empty_or_malformed_searches_are_invalid_input(peer, text):
    engine, _ = peer
    with pytest.raises(InvalidInput) as err:
        resolve_search(engine, ADMIN, text)
    assert err.value.field in ("searchId", "jobId")
