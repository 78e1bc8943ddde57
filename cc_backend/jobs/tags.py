"""Tags: listing (with job counts or by id), lookup by ``type:name``; creating, attaching, detaching and deleting them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, and_, delete, func, insert, select
from sqlalchemy.engine import Connection, Engine

from cc_backend.auth.security import (
    Viewer,
    can_write_tag_scope,
    may_assign_tag_scope,
    may_delete_tag_scope,
    readable_tag_scopes,
)
from cc_backend.db.engine import inserted_id, is_sqlite
from cc_backend.db.limits import check_text
from cc_backend.db.tables import job_table, jobtag_table, tag_table
from cc_backend.errors import Conflict, Forbidden, InvalidInput, NotFound
from cc_backend.jobs.model import json_object, reject_unknown
from cc_backend.jobs.query import get_job, scope_condition
from cc_backend.jobs.transaction import locked_job, rewriting_transaction, sync_archive_meta, write_transaction

if TYPE_CHECKING:
    from cc_backend.archive.fs import FileArchive

J = job_table.c
T = tag_table.c
#: The tag table's column of each tag field: their lengths are the limits (db/limits.py).
TAG_COLUMNS = {"type": T.tag_type, "name": T.tag_name, "scope": T.tag_scope}


def check_tag_text(key: str, value: str, field: str) -> str:
    """A tag's type, name or scope if its column holds it, else InvalidInput naming ``field``."""
    return check_text(TAG_COLUMNS[key], value, field)


def list_tags(engine: Engine, *, viewer: Viewer | None = None, with_counts: bool = True) -> list[dict]:
    """Every tag the viewer may read, by type and name, with the number of the viewer's visible jobs carrying it.

    ``with_counts=False`` leaves the count out (and the join over every tagged job that computes it).
    """
    # Typed as rows of any length: with_counts adds a fifth column.
    stmt: Select[*tuple[Any, ...]] = select(T.id, T.tag_type, T.tag_name, T.tag_scope).order_by(
        T.tag_type, T.tag_name)
    if with_counts:
        count_stmt = (
            select(jobtag_table.c.tag_id, func.count().label("n"))
            .join(job_table, job_table.c.id == jobtag_table.c.job_id)
            .group_by(jobtag_table.c.tag_id)
        )
        scope = scope_condition(viewer)
        if scope is not None:
            count_stmt = count_stmt.where(scope)
        counts = count_stmt.subquery()
        stmt = stmt.add_columns(func.coalesce(counts.c.n, 0)).outerjoin(counts, counts.c.tag_id == T.id)
    scopes = readable_tag_scopes(viewer)
    if scopes is not None:
        stmt = stmt.where(T.tag_scope.in_(scopes))
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    if not with_counts:
        return [tag_dict(row) for row in rows]
    return [{**tag_dict(row), "count": int(row[4])} for row in rows]


def parse_tag_spec(spec: str) -> int | tuple[str, str]:
    """A tag as typed in a filter: an id, or ``(type, name)`` from ``type:name``; InvalidInput otherwise."""
    if spec.isdigit():
        return int(spec)
    tag_type, sep, tag_name = spec.partition(":")
    if not sep or not tag_type or not tag_name:
        raise InvalidInput(f"tag {spec!r}: use an id or type:name", field="tag")
    return tag_type, tag_name


def resolve_tag_ids(engine: Engine, specs: Iterable[str], *, viewer: Viewer | None = None) -> list[int]:
    """Tag ids from ``ID`` or ``type:name`` strings (as typed on the command line)."""
    ids: list[int] = []
    scopes = readable_tag_scopes(viewer)
    with engine.connect() as conn:
        for spec in specs:
            parsed = parse_tag_spec(spec)
            if isinstance(parsed, int):
                ids.append(parsed)
                continue
            ttype, tname = parsed
            stmt = select(T.id).where(and_(T.tag_type == ttype, T.tag_name == tname))
            if scopes is not None:
                stmt = stmt.where(T.tag_scope.in_(scopes))
            found = conn.execute(stmt).scalars().all()
            if not found:
                raise NotFound(f"no tag {spec!r}", field="tag")
            ids += found
    return ids


def ensure_tag(conn: Connection, tag_type: str, tag_name: str, scope: str = "global", *, field: str = "tags") -> int:
    """The id of tag (type, name), created with ``scope`` if missing; ``field`` names the tag in errors."""
    if not isinstance(tag_type, str) or not isinstance(tag_name, str) or not tag_type or not tag_name:
        raise InvalidInput(f"{field}: a tag needs a type and a name", field=field)
    for key, value in (("type", tag_type), ("name", tag_name), ("scope", scope or "global")):
        check_tag_text(key, value, f"{field}.{key}")
    found = conn.execute(select(T.id).where(and_(T.tag_type == tag_type, T.tag_name == tag_name))).scalar()
    if found is not None:
        return int(found)
    result = conn.execute(tag_table.insert().values(tag_type=tag_type, tag_name=tag_name, tag_scope=scope or "global"))
    return inserted_id(result)


def attach_tag(conn: Connection, job_db_id: int, tag_id: int) -> None:
    exists = conn.execute(
        select(jobtag_table.c.job_id).where(and_(jobtag_table.c.job_id == job_db_id, jobtag_table.c.tag_id == tag_id))
    ).first()
    if exists is None:
        conn.execute(jobtag_table.insert().values(job_id=job_db_id, tag_id=tag_id))


# --- by id, for the web UI's tag mutations (GraphQL) ----------------------------------------------

def tag_dict(row: Sequence) -> dict:
    """A (id, type, name, scope) row as the tag shape every front end returns."""
    return {"id": int(row[0]), "type": row[1], "name": row[2], "scope": row[3]}


def readable_tags_by_id(conn: Connection, tag_ids: Iterable[int], viewer: Viewer | None, *,
                        field: str = "tagIds", lock: str | None = None) -> list[dict]:
    """The tags with these ids in the given order; an unknown id or one the viewer may not read is NotFound.

    An unreadable tag (another user's private one, an admin tag for a user) is reported as missing,
    as invisible jobs are, so ids do not reveal what exists. ``lock`` ("share" or "update") locks the
    rows on MySQL until the transaction ends (SQLite writers hold the database lock anyway).
    """
    wanted = list(dict.fromkeys(tag_ids))  # duplicates once, order kept
    if not wanted:
        return []
    # An id beyond 64 bits names no tag (and the database could not bind it): it is reported as missing below.
    stmt = select(T.id, T.tag_type, T.tag_name, T.tag_scope).where(T.id.in_([i for i in wanted if -2**63 <= i < 2**63]))
    if lock is not None and not is_sqlite(conn):
        stmt = stmt.with_for_update(read=lock == "share")
    found = {int(row[0]): tag_dict(row) for row in conn.execute(stmt)}
    scopes = readable_tag_scopes(viewer)
    for tag_id in wanted:
        tag = found.get(tag_id)
        if tag is None or (scopes is not None and tag["scope"] not in scopes):
            raise NotFound(f"{field}: no tag with id {tag_id}", field=field)
    return [found[tag_id] for tag_id in wanted]


# --- writes: REST (by type and name) and the web UI (by id) --------------------------------------

#: Keys of a tag object in tag_job and DELETE bodies (upstream APITag).
API_TAG_KEYS = frozenset({"type", "name", "scope"})


def parse_tags(tags: Any, allowed: frozenset[str], what: str = "tags") -> list[tuple[str, str, str]]:
    """(type, name, scope) of each tag object; scope defaults to ``global``."""
    if tags is None:
        return []
    if not isinstance(tags, list):
        raise InvalidInput(f"{what} must be a list of tag objects", field=what)
    out = []
    for i, tag in enumerate(tags):
        where = f"{what}[{i}]"
        reject_unknown(json_object(tag, where), allowed, f"{where}.")
        ttype, tname, scope = tag.get("type"), tag.get("name"), tag.get("scope") or "global"
        for key, value in (("type", ttype), ("name", tname), ("scope", scope)):
            if not isinstance(value, str) or not value:
                raise InvalidInput(f"{where}.{key} must be a non-empty string", field=f"{where}.{key}")
            check_tag_text(key, value, f"{where}.{key}")
        out.append((ttype, tname, scope))
    return out


def _tag_by_name(conn: Connection, ttype: str, tname: str) -> tuple[int, str] | None:
    row = conn.execute(select(T.id, T.tag_scope).where(and_(T.tag_type == ttype, T.tag_name == tname))).first()
    return (int(row[0]), row[1]) if row is not None else None


def attach_tags(conn: Connection, db_id: int, tags: list[tuple[str, str, str]], viewer: Viewer | None) -> None:
    """Create (if missing) and attach each tag after checking the viewer may write its scope."""
    for ttype, tname, scope in tags:
        _require_tag_write(viewer, ttype, tname, scope)
        found = _tag_by_name(conn, ttype, tname)
        if found is None:
            tag_id = inserted_id(conn.execute(insert(tag_table).values(tag_type=ttype, tag_name=tname,
                                                                        tag_scope=scope)))
        elif found[1] != scope:
            raise Conflict(f"tag {ttype}:{tname} already exists with scope {found[1]!r}, not {scope!r}",
                           field="scope")
        else:
            tag_id = found[0]
        attach_tag(conn, db_id, tag_id)


def tag_job(engine: Engine, archive: FileArchive, db_id: int, tags: Any, *, viewer: Viewer | None) -> dict[str, Any]:
    """Attach tags ``[{type, name, scope="global"}]`` to a job, creating missing ones; returns the job JSON.

    The viewer must be allowed to write each scope (else Forbidden). For a job that is not running
    and has a meta.json in ``archive`` (may be None), meta.json's tags are rewritten too.
    """
    parsed = parse_tags(tags, API_TAG_KEYS)
    with write_transaction(engine) as conn:
        locked_job(conn, db_id, viewer)
        attach_tags(conn, db_id, parsed, viewer)
        job = get_job(conn, db_id, viewer=viewer)
        sync_archive_meta(conn, archive, job, tags=True)
        return job


def _shared_tag_id(conn: Connection, ttype: str, tname: str, scope: str) -> int | None:
    """Id of the global or admin tag (type, name, scope), or None."""
    return conn.execute(select(T.id).where(
        and_(T.tag_type == ttype, T.tag_name == tname, T.tag_scope == scope))).scalar()


def _require_tag_write(viewer: Viewer | None, ttype: str, tname: str, scope: str) -> None:
    if not can_write_tag_scope(viewer, scope):
        raise Forbidden(f"tag {ttype}:{tname}: cannot write tag scope {scope!r} with current authorization",
                        field="scope")


def remove_job_tags(engine: Engine, archive: FileArchive, db_id: int, tags: Any, *, viewer: Viewer | None) -> dict[str, Any]:
    """Detach tags from a job; returns the job JSON with the remaining tags.

    As upstream only ``global`` and ``admin`` scopes are processed, private ones are skipped. A tag
    (type, name, scope) that does not exist is NotFound (upstream: 500); one that exists but is not
    attached is no error. meta.json of an archived, non-running job is rewritten.
    """
    parsed = parse_tags(tags, API_TAG_KEYS)
    with write_transaction(engine) as conn:
        locked_job(conn, db_id, viewer)
        for ttype, tname, scope in parsed:
            if scope not in ("global", "admin"):
                continue
            tag_id = _shared_tag_id(conn, ttype, tname, scope)
            if tag_id is None:
                raise NotFound(f"tag {ttype}:{tname} with scope {scope} does not exist", field="tags")
            _require_tag_write(viewer, ttype, tname, scope)
            conn.execute(delete(jobtag_table).where(
                and_(jobtag_table.c.job_id == db_id, jobtag_table.c.tag_id == tag_id)))
        job = get_job(conn, db_id, viewer=viewer)
        sync_archive_meta(conn, archive, job, tags=True)
        return job


def delete_tags(engine: Engine, tags: Any, *, viewer: Viewer | None) -> tuple[int, int]:
    """Delete tags (and their job links) from the database; returns (deleted, requested).

    Only ``global``/``admin`` tags are processed; private and unknown tags are skipped and not counted.
    Archived meta.json files keep the tag (as upstream).
    """
    parsed = parse_tags(tags, API_TAG_KEYS)
    deleted = 0
    with write_transaction(engine) as conn:
        for ttype, tname, scope in parsed:
            if scope not in ("global", "admin"):
                continue
            tag_id = _shared_tag_id(conn, ttype, tname, scope)
            if tag_id is None:
                continue
            _require_tag_write(viewer, ttype, tname, scope)
            conn.execute(delete(jobtag_table).where(jobtag_table.c.tag_id == tag_id))
            conn.execute(delete(tag_table).where(T.id == tag_id))
            deleted += 1
    return deleted, len(parsed)


def _tag_text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{field} must be a non-empty string", field=field)
    return check_tag_text(field, value, field)


def create_tag(engine: Engine, tag_type: Any, tag_name: Any, scope: Any, *, viewer: Viewer | None) -> dict[str, Any]:
    """Create the tag (type, name, scope), or return the identical existing one: ``{id, type, name, scope}``.

    Scopes follow security.may_assign_tag_scope (else Forbidden). The table holds one tag per (type,
    name), so one that exists with another scope is a Conflict.
    """
    tag_type, tag_name, scope = _tag_text(tag_type, "type"), _tag_text(tag_name, "name"), _tag_text(scope, "scope")
    if not may_assign_tag_scope(viewer, scope):
        raise Forbidden(f"scope: not allowed to create tags with scope {scope!r}", field="scope")
    # The named lock (MySQL) makes concurrent creators of one tag wait instead of failing on UNIQUE.
    with write_transaction(engine, lock=f"tag\x00{tag_type}\x00{tag_name}") as conn:
        row = conn.execute(select(T.id, T.tag_type, T.tag_name, T.tag_scope)
                           .where(and_(T.tag_type == tag_type, T.tag_name == tag_name))).first()
        if row is None:
            result = conn.execute(insert(tag_table).values(tag_type=tag_type, tag_name=tag_name, tag_scope=scope))
            return {"id": inserted_id(result), "type": tag_type, "name": tag_name, "scope": scope}
        existing = tag_dict(row)
        if existing["scope"] != scope:
            readable = readable_tag_scopes(viewer)
            # Another user's private scope is their username: not named to someone who cannot read it.
            other = repr(existing["scope"]) if readable is None or existing["scope"] in readable else "another scope"
            raise Conflict(f"scope: tag {tag_type}:{tag_name} already exists with scope {other}", field="scope")
        return existing


def _visible_job_for_update(conn: Connection, db_id: int, viewer: Viewer | None) -> dict[str, Any]:
    try:
        return locked_job(conn, db_id, viewer)
    except NotFound:
        raise NotFound(f"job: no job with id {db_id}", field="job") from None


def _require_assignable(viewer: Viewer | None, tags: list[dict[str, Any]], action: str) -> None:
    for tag in tags:
        if not may_assign_tag_scope(viewer, tag["scope"]):
            raise Forbidden(f"tagIds: not allowed to {action} tag {tag['id']} ({tag['type']}:{tag['name']}, "
                            f"scope {tag['scope']!r})", field="tagIds")


def add_tags_to_job(engine: Engine, archive: FileArchive, db_id: int, tag_ids: list[int], *,
                    viewer: Viewer | None) -> list[dict[str, Any]]:
    """Attach existing tags by id to a job; returns the job's tags the viewer may read, after the change.

    The job must be visible to the viewer (else NotFound naming ``job``), each tag readable (else
    NotFound naming ``tagIds``) and of a scope the viewer may assign (else Forbidden). All or nothing;
    meta.json of an archived, non-running job gets the job's tags, as tag_job writes them.
    """
    with rewriting_transaction(engine, archive) as (conn, rewrites):
        _visible_job_for_update(conn, db_id, viewer)
        tags = readable_tags_by_id(conn, tag_ids, viewer, lock="share")  # not deleted under us (MySQL)
        _require_assignable(viewer, tags, "add")
        for tag in tags:
            attach_tag(conn, db_id, tag["id"])
        job = get_job(conn, db_id, viewer=viewer)
        rewrites.sync_tags(conn, job)
        return job["tags"]


def remove_tags_from_job(engine: Engine, archive: FileArchive, db_id: int, tag_ids: list[int], *,
                         viewer: Viewer | None) -> list[dict[str, Any]]:
    """Detach tags by id from a job; returns the job's remaining tags the viewer may read.

    Same rules as add_tags_to_job; a tag that is not attached is no error. meta.json is rewritten.
    """
    with rewriting_transaction(engine, archive) as (conn, rewrites):
        _visible_job_for_update(conn, db_id, viewer)
        tags = readable_tags_by_id(conn, tag_ids, viewer)
        _require_assignable(viewer, tags, "remove")
        if tags:
            conn.execute(delete(jobtag_table).where(and_(
                jobtag_table.c.job_id == db_id, jobtag_table.c.tag_id.in_([t["id"] for t in tags]))))
        job = get_job(conn, db_id, viewer=viewer)
        rewrites.sync_tags(conn, job)
        return job["tags"]


def delete_tags_by_id(engine: Engine, archive: FileArchive, tag_ids: list[int], *, viewer: Viewer | None,
                      field: str = "tagIds") -> list[int]:
    """Delete tags by id with their job links and drop them from archived jobs' meta.json; returns the ids.

    Each tag must be readable (else NotFound naming ``field``) and deletable by the viewer
    (security.may_delete_tag_scope, else Forbidden). All or nothing. Unlike delete_tags (REST, as
    upstream) the archive follows, so a later init-db does not bring the tag back.
    """
    with rewriting_transaction(engine, archive) as (conn, rewrites):
        tags = readable_tags_by_id(conn, tag_ids, viewer, field=field, lock="update")
        for tag in tags:
            if not may_delete_tag_scope(viewer, tag["scope"]):
                raise Forbidden(f"{field}: not allowed to delete tag {tag['id']} ({tag['type']}:{tag['name']}, "
                                f"scope {tag['scope']!r})", field=field)
        ids = [tag["id"] for tag in tags]
        if not ids:
            return []
        # Running jobs have no meta.json yet; they are archived with the tags the database has then.
        archived = conn.execute(
            select(J.id, J.cluster, J.job_id, J.start_time, J.job_state).distinct()
            .join(jobtag_table, jobtag_table.c.job_id == J.id)
            .where(jobtag_table.c.tag_id.in_(ids), J.job_state != "running")
        ).all()
        conn.execute(delete(jobtag_table).where(jobtag_table.c.tag_id.in_(ids)))
        conn.execute(delete(tag_table).where(T.id.in_(ids)))
        for job_id, cluster, batch_id, start_time, state in archived:
            rewrites.sync_tags(conn, {"id": job_id, "cluster": cluster, "jobId": batch_id,
                                      "startTime": start_time, "jobState": state})
        return ids
