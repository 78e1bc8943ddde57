"""GraphQL tags through real HTTP, on SQLite and MariaDB: Query.tags, createTag, addTagsToJob, removeTagsFromJob,
removeTagFromList and deleteTag, with the role matrix and the archive's meta.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.cli import cli
from support.graphql import GraphQLSite

#: Users of each test's server: name -> roles. emmyUser6 owns both peer-archive emmy jobs; the manager
#: manages their project; tuser owns no job.
USERS = {
    "tadmin": "admin",
    "tsupport": "support",
    "tmanager": "manager",
    "emmyUser6": "user",
    "tuser": "user",
    "tapi": "api",
}
#: Peer-archive emmy jobs: batch id -> start time (both completed and archived).
EMMY_JOBS = {1404397: 1609300556, 1403244: 1608923076}

TAGS = "{ tags { id type name scope } }"
CREATE = """mutation($t: String!, $n: String!, $s: String!) {
  createTag(type: $t, name: $n, scope: $s) { id type name scope }
}"""
ADD = "mutation($j: ID!, $ids: [ID!]!) { addTagsToJob(job: $j, tagIds: $ids) { id type name scope } }"
REMOVE = "mutation($j: ID!, $ids: [ID!]!) { removeTagsFromJob(job: $j, tagIds: $ids) { id type name scope } }"
REMOVE_LIST = "mutation($ids: [ID!]!) { removeTagFromList(tagIds: $ids) }"
DELETE = "mutation($id: ID!) { deleteTag(id: $id) }"
JOB_TAGS = "query($id: ID!) { job(id: $id) { tags { id type name scope } } }"


@pytest.fixture
def tag_site(app_start, site, tokens) -> GraphQLSite:
    """A fresh app in process over the two emmy jobs, JWTs checked against the database (roles and projects from there).

    Users are added in-process (the core's add_user, as ``--add-user`` does): a CLI process per user
    would cost more than the test itself.
    """
    from cc_backend.auth.users import add_user

    server = app_start(validate_user=True)
    runtime = site_runtime(site)
    try:
        for name, role in USERS.items():
            add_user(runtime.engine, name, roles=[role], projects=["no project"] if role == "manager" else [])
    finally:
        runtime.engine.dispose()
    jwts = {name: tokens([role], sub=name) for name, role in USERS.items()}  # roles come from the database
    return GraphQLSite(server=server, site=site, tokens=jwts)


# --- helpers --------------------------------------------------------------------------------------

def site_runtime(site: Path):
    from cc_backend.runtime import Runtime

    return Runtime(str(site / "config.json"), str(site / ".env"))


def job_ids(gql: GraphQLSite) -> dict[int, str]:
    """Batch id -> database id of the emmy jobs."""
    items = gql.query("{ jobs { items { id jobId } } }", user="tadmin")["jobs"]["items"]
    return {item["jobId"]: item["id"] for item in items}


def create(gql: GraphQLSite, user: str, ttype: str, name: str, scope: str) -> dict:
    return gql.query(CREATE, {"t": ttype, "n": name, "s": scope}, user=user)["createTag"]


def error_of(gql: GraphQLSite, query: str, variables: dict, user: str) -> dict:
    """The one error of a failing request, with its code and field flattened in."""
    errors = gql.errors(query, variables, user=user)
    assert len(errors) == 1, errors
    return {"message": errors[0]["message"], **(errors[0].get("extensions") or {})}


def names(tags: list[dict]) -> list[str]:
    return [f"{t['type']}:{t['name']}" for t in tags]


def job_tags(gql: GraphQLSite, db_id: str, user: str = "tadmin") -> list[str]:
    return names(gql.query(JOB_TAGS, {"id": db_id}, user=user)["job"]["tags"])


def archive_tags(gql: GraphQLSite, batch_id: int) -> list[dict]:
    config = json.loads((gql.site / "config.json").read_text())
    meta = Path(config["archive"]["path"]) / "emmy" / str(batch_id // 1000) / f"{batch_id % 1000:03d}" / \
        str(EMMY_JOBS[batch_id]) / "meta.json"
    return json.loads(meta.read_text())["tags"]


def archive_names(gql: GraphQLSite, batch_id: int) -> list[str]:
    return sorted(names(archive_tags(gql, batch_id)))


# --- tests ----------------------------------------------------------------------------------------

def test_create_tag_matrix_and_tags_visibility(tag_site):
    gql = tag_site
    assert gql.query(TAGS, user="tadmin")["tags"] == []  # the peer archive's jobs carry no tags

    # Which scope each role may create (upstream's GraphQL rule): admin scope for admins, global for
    # admins and support, one's own username for everybody, another user's never.
    allowed = {
        "tadmin": {"admin", "global", "own"},
        "tsupport": {"global", "own"},
        "tmanager": {"own"},
        "emmyUser6": {"own"},
        "tuser": {"own"},
        "tapi": {"own"},  # unlike REST, where an api token writes global and admin tags
    }
    created: dict[tuple[str, str], dict] = {}
    for user, may in allowed.items():
        for kind in ("admin", "global", "own", "other"):
            scope = {"own": user, "other": "someoneelse"}.get(kind, kind)
            variables = {"t": "matrix", "n": f"{user}-{kind}", "s": scope}
            if kind in may:
                tag = gql.query(CREATE, variables, user=user)["createTag"]
                assert tag == {"id": tag["id"], "type": "matrix", "name": f"{user}-{kind}", "scope": scope}
                created[(user, kind)] = tag
            else:
                err = error_of(gql, CREATE, variables, user)
                assert err["code"] == "Forbidden" and err["field"] == "scope", (user, kind, err)
                assert repr(scope) in err["message"]
    all_tags = gql.query(TAGS, user="tadmin")["tags"]

    # Query.tags: global for all, admin scope for admin and support, private ones for their owner only.
    every_global = {t["name"] for t in created.values() if t["scope"] == "global"}
    every_admin = {t["name"] for t in created.values() if t["scope"] == "admin"}
    for user in USERS:
        seen = {t["name"] for t in gql.query(TAGS, user=user)["tags"]}
        expected = every_global | {f"{user}-own"}
        if user in ("tadmin", "tsupport"):
            expected |= every_admin
        assert seen == expected, user

    # An identical tag is returned, not created again; the same (type, name) in another scope conflicts
    # (the table holds one tag per type and name), without naming a private scope to a stranger.
    again = create(gql, "tsupport", "matrix", "tadmin-global", "global")
    assert again == created[("tadmin", "global")]
    assert create(gql, "tuser", "matrix", "tuser-own", "tuser") == created[("tuser", "own")]
    assert gql.query(TAGS, user="tadmin")["tags"] == all_tags
    err = error_of(gql, CREATE, {"t": "matrix", "n": "tadmin-global", "s": "admin"}, "tadmin")
    assert err["code"] == "Conflict" and err["field"] == "scope" and "'global'" in err["message"]
    err = error_of(gql, CREATE, {"t": "matrix", "n": "tuser-own", "s": "emmyUser6"}, "emmyUser6")
    assert err["code"] == "Conflict" and "'tuser'" not in err["message"]

    # Empty or blank type and name, an over-long name: InvalidInput naming the argument.
    for variables, field in (({"t": "", "n": "x", "s": "global"}, "type"),
                             ({"t": "app", "n": "  ", "s": "global"}, "name"),
                             ({"t": "app", "n": "x", "s": ""}, "scope"),
                             ({"t": "app", "n": "x" * 256, "s": "global"}, "name")):
        err = error_of(gql, CREATE, variables, "tadmin")
        assert err["code"] == "InvalidInput" and err["field"] == field, err
        assert field in err["message"]
    assert gql.query(TAGS, user="tadmin")["tags"] == all_tags


def test_add_and_remove_tags_of_an_archived_job(tag_site):
    gql = tag_site
    jobs = job_ids(gql)
    job, other_job = jobs[1404397], jobs[1403244]
    glob = create(gql, "tadmin", "app", "vasp", "global")
    adm = create(gql, "tadmin", "review", "suspicious", "admin")
    mine = create(gql, "emmyUser6", "note", "rerun", "emmyUser6")
    strangers = create(gql, "tuser", "note", "strangers", "tuser")
    managers = create(gql, "tmanager", "note", "managers", "tmanager")
    apis = create(gql, "tapi", "note", "apis", "tapi")

    # The owner attaches a private tag: the answer and meta.json in the archive have it.
    assert gql.query(ADD, {"j": job, "ids": [mine["id"]]}, user="emmyUser6")["addTagsToJob"] == [mine]
    assert archive_tags(gql, 1404397) == [{**mine, "id": int(mine["id"])}]
    assert archive_tags(gql, 1403244) == []

    # A user may not attach global or admin tags; a failing list changes nothing, not even its allowed part.
    err = error_of(gql, ADD, {"j": job, "ids": [glob["id"]]}, "emmyUser6")
    assert err["code"] == "Forbidden" and err["field"] == "tagIds" and "app:vasp" in err["message"]
    err = error_of(gql, ADD, {"j": job, "ids": [glob["id"], adm["id"]]}, "tsupport")  # support: global yes, admin no
    assert err["code"] == "Forbidden" and "review:suspicious" in err["message"]
    assert job_tags(gql, job, "emmyUser6") == ["note:rerun"] and archive_names(gql, 1404397) == ["note:rerun"]

    # Support attaches the global tag; the answer holds what support may read (not the owner's private tag),
    # meta.json every tag of the job.
    assert gql.query(ADD, {"j": job, "ids": [glob["id"]]}, user="tsupport")["addTagsToJob"] == [glob]
    assert gql.query(ADD, {"j": job, "ids": [adm["id"], glob["id"], adm["id"]]}, user="tadmin")["addTagsToJob"] \
        == [glob, adm]  # ordered by type and name; attaching twice is no error
    # The manager tags a job of a managed project with a private tag; an api user its own private tag.
    assert gql.query(ADD, {"j": job, "ids": [managers["id"]]}, user="tmanager")["addTagsToJob"] == [glob, managers]
    assert gql.query(ADD, {"j": job, "ids": [apis["id"]]}, user="tapi")["addTagsToJob"] == [glob, apis]
    assert archive_names(gql, 1404397) == ["app:vasp", "note:apis", "note:managers", "note:rerun", "review:suspicious"]
    meta_tag = next(t for t in archive_tags(gql, 1404397) if t["name"] == "suspicious")
    assert meta_tag == {"id": int(adm["id"]), "type": "review", "name": "suspicious", "scope": "admin"}
    assert job_tags(gql, job, "emmyUser6") == ["app:vasp", "note:rerun"]
    assert job_tags(gql, job, "tsupport") == ["app:vasp", "review:suspicious"]
    assert job_tags(gql, other_job) == [] and archive_tags(gql, 1403244) == []

    # Who may not: an api token writes no global tags here, a user cannot see someone else's job, nobody
    # uses a private tag of another user (reported as missing), unknown ids are NotFound.
    for user, variables, code, field in (
        ("tapi", {"j": other_job, "ids": [glob["id"]]}, "Forbidden", "tagIds"),
        ("tmanager", {"j": other_job, "ids": [glob["id"]]}, "Forbidden", "tagIds"),
        ("tuser", {"j": other_job, "ids": [strangers["id"]]}, "NotFound", "job"),
        ("emmyUser6", {"j": other_job, "ids": [strangers["id"]]}, "NotFound", "tagIds"),
        ("tadmin", {"j": other_job, "ids": [mine["id"]]}, "NotFound", "tagIds"),
        ("emmyUser6", {"j": other_job, "ids": [adm["id"]]}, "NotFound", "tagIds"),
        ("tadmin", {"j": other_job, "ids": ["999999"]}, "NotFound", "tagIds"),
        ("tadmin", {"j": "999999", "ids": [glob["id"]]}, "NotFound", "job"),
        ("tadmin", {"j": other_job, "ids": ["vasp"]}, "InvalidInput", "tagIds"),
        ("tadmin", {"j": "x", "ids": [glob["id"]]}, "InvalidInput", "job"),
    ):
        err = error_of(gql, ADD, variables, user)
        assert (err["code"], err["field"]) == (code, field), (user, variables, err)
    assert job_tags(gql, other_job) == [] and archive_tags(gql, 1403244) == []

    # Removing follows the same rule; a tag that is not attached is no error.
    err = error_of(gql, REMOVE, {"j": job, "ids": [glob["id"]]}, "emmyUser6")
    assert err["code"] == "Forbidden" and err["field"] == "tagIds"
    err = error_of(gql, REMOVE, {"j": job, "ids": [glob["id"], adm["id"]]}, "tsupport")
    assert err["code"] == "Forbidden"
    err = error_of(gql, REMOVE, {"j": job, "ids": [mine["id"]]}, "tuser")
    assert err["code"] == "NotFound" and err["field"] == "job"
    assert len(archive_tags(gql, 1404397)) == 5
    assert gql.query(REMOVE, {"j": job, "ids": [mine["id"]]}, user="emmyUser6")["removeTagsFromJob"] == [glob]
    assert gql.query(REMOVE, {"j": job, "ids": [adm["id"], glob["id"]]}, user="tadmin")["removeTagsFromJob"] == []
    assert gql.query(REMOVE, {"j": job, "ids": [glob["id"]]}, user="tsupport")["removeTagsFromJob"] == []
    assert archive_names(gql, 1404397) == ["note:apis", "note:managers"]
    assert gql.query(REMOVE, {"j": job, "ids": [managers["id"]]}, user="tmanager")["removeTagsFromJob"] == []
    assert gql.query(REMOVE, {"j": job, "ids": [apis["id"]]}, user="tapi")["removeTagsFromJob"] == []
    assert archive_tags(gql, 1404397) == [] and job_tags(gql, job) == []
    # The tags themselves stay.
    assert len(gql.query(TAGS, user="tadmin")["tags"]) == 2


def test_remove_tag_from_list_and_delete_tag(tag_site):
    gql = tag_site
    jobs = job_ids(gql)
    first = create(gql, "tadmin", "app", "python", "global")
    second = create(gql, "tadmin", "app", "vasp", "global")
    adm = create(gql, "tadmin", "review", "suspicious", "admin")
    mine = create(gql, "emmyUser6", "note", "rerun", "emmyUser6")
    spare = create(gql, "emmyUser6", "note", "spare", "emmyUser6")
    for db_id in jobs.values():
        gql.query(ADD, {"j": db_id, "ids": [first["id"], second["id"], adm["id"]]}, user="tadmin")
        gql.query(ADD, {"j": db_id, "ids": [mine["id"]]}, user="emmyUser6")
    everything = ["app:python", "app:vasp", "note:rerun", "review:suspicious"]
    assert archive_names(gql, 1404397) == archive_names(gql, 1403244) == everything

    # Only admins delete global and admin tags; private ones only their owner (even an admin cannot
    # see them, so they are missing to everyone else).
    for user in ("tsupport", "tmanager", "emmyUser6", "tuser", "tapi"):
        err = error_of(gql, REMOVE_LIST, {"ids": [first["id"]]}, user)
        assert err["code"] == "Forbidden" and err["field"] == "tagIds", user
        err = error_of(gql, DELETE, {"id": first["id"]}, user)
        assert err["code"] == "Forbidden" and err["field"] == "id", user
    err = error_of(gql, REMOVE_LIST, {"ids": [adm["id"]]}, "tsupport")
    assert err["code"] == "Forbidden"
    for user in ("tadmin", "tuser"):
        err = error_of(gql, REMOVE_LIST, {"ids": [mine["id"]]}, user)
        assert err["code"] == "NotFound" and err["field"] == "tagIds", user

    # One bad id fails the whole list: nothing is deleted.
    err = error_of(gql, REMOVE_LIST, {"ids": [first["id"], mine["id"]]}, "tadmin")
    assert err["code"] == "NotFound"
    err = error_of(gql, REMOVE_LIST, {"ids": [first["id"], "424242"]}, "tadmin")
    assert err["code"] == "NotFound" and "424242" in err["message"]
    assert len(gql.query(TAGS, user="tadmin")["tags"]) == 3
    assert archive_names(gql, 1404397) == everything

    # The admin deletes a global and the admin tag: gone from the tag list, from both jobs and their meta.json.
    deleted = gql.query(REMOVE_LIST, {"ids": [first["id"], adm["id"]]}, user="tadmin")["removeTagFromList"]
    assert deleted == [int(first["id"]), int(adm["id"])]
    assert names(gql.query(TAGS, user="tadmin")["tags"]) == ["app:vasp"]
    for batch_id, db_id in jobs.items():
        assert job_tags(gql, db_id) == ["app:vasp"]
        assert job_tags(gql, db_id, "emmyUser6") == ["app:vasp", "note:rerun"]
        assert archive_names(gql, batch_id) == ["app:vasp", "note:rerun"]

    # The owner deletes a private tag through the list, and another one through deleteTag.
    assert gql.query(REMOVE_LIST, {"ids": [mine["id"]]}, user="emmyUser6")["removeTagFromList"] == [int(mine["id"])]
    assert gql.query(DELETE, {"id": spare["id"]}, user="emmyUser6")["deleteTag"] == spare["id"]
    assert names(gql.query(TAGS, user="emmyUser6")["tags"]) == ["app:vasp"]
    assert archive_names(gql, 1403244) == ["app:vasp"]

    # deleteTag: admin only for global tags; an unknown (or just deleted) id is NotFound naming id.
    assert gql.query(DELETE, {"id": second["id"]}, user="tadmin")["deleteTag"] == second["id"]
    for variables, code in (({"id": second["id"]}, "NotFound"), ({"id": "abc"}, "InvalidInput")):
        err = error_of(gql, DELETE, variables, "tadmin")
        assert (err["code"], err["field"]) == (code, "id"), err
    assert gql.query(TAGS, user="tadmin")["tags"] == []
    assert archive_tags(gql, 1404397) == archive_tags(gql, 1403244) == []
    assert gql.query(REMOVE_LIST, {"ids": []}, user="tuser")["removeTagFromList"] == []


def test_failed_deletion_leaves_database_and_archive_unchanged(site):
    """A meta.json that cannot be written fails removeTagFromList as a whole: the files already
    rewritten are put back and the transaction rolls back (in-process: the failure is injected)."""
    from sqlalchemy import select

    from cc_backend.db.tables import job_table
    from cc_backend.jobs.tags import add_tags_to_job, create_tag, delete_tags_by_id, list_tags

    assert cli(site, "-init-db").returncode == 0
    runtime = site_runtime(site)
    engine, archive = runtime.engine, runtime.archive
    gql = GraphQLSite(server=None, site=site)  # only for archive_tags
    try:
        tag = create_tag(engine, "app", "vasp", "global", viewer=None)
        with engine.connect() as conn:
            db_ids = conn.execute(select(job_table.c.id)).scalars().all()
        for db_id in db_ids:
            add_tags_to_job(engine, archive, db_id, [tag["id"]], viewer=None)
        tagged = [{**tag, "scope": "global"}]
        assert archive_tags(gql, 1404397) == archive_tags(gql, 1403244) == tagged

        class SecondWriteFails:
            """The archive, except that its second meta.json write fails (a full disk, say)."""

            def __init__(self) -> None:
                self.writes = 0

            def __getattr__(self, name):
                return getattr(archive, name)

            def store_meta(self, meta) -> None:
                self.writes += 1
                if self.writes == 2:
                    raise OSError("no space left on device")
                archive.store_meta(meta)

        with pytest.raises(OSError, match="no space"):
            delete_tags_by_id(engine, SecondWriteFails(), [tag["id"]], viewer=None)
        assert archive_tags(gql, 1404397) == archive_tags(gql, 1403244) == tagged
        assert list_tags(engine, with_counts=False) == [tag]
        assert delete_tags_by_id(engine, archive, [tag["id"]], viewer=None) == [tag["id"]]
        assert archive_tags(gql, 1404397) == archive_tags(gql, 1403244) == []
    finally:
        engine.dispose()
