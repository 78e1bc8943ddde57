"""Tags: listing (with job counts or by id), lookup by ``type:name``, creating, attaching, who may use a scope."""

from __future__ import annotations

from typing import Iterable, Sequence

from sqlalchemy import and_, func, select
from sqlalchemy.engine import Connection, Engine

from cc_backend.db.engine import is_sqlite
from cc_backend.db.limits import check_text
from cc_backend.db.tables import job_table, jobtag_table, tag_table
from cc_backend.errors import InvalidInput, NotFound
from cc_backend.auth.security import Viewer, readable_tag_scopes

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
    from cc_backend.jobs.query import scope_condition

    stmt = select(T.id, T.tag_type, T.tag_name, T.tag_scope).order_by(T.tag_type, T.tag_name)
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


def resolve_tag_ids(engine: Engine, specs: Iterable[str], *, viewer: Viewer | None = None) -> list[int]:
    """Tag ids from ``ID`` or ``type:name`` strings (as typed on the command line)."""
    ids: list[int] = []
    scopes = readable_tag_scopes(viewer)
    with engine.connect() as conn:
        for spec in specs:
            if spec.isdigit():
                ids.append(int(spec))
                continue
            ttype, sep, tname = spec.partition(":")
            if not sep or not ttype or not tname:
                raise InvalidInput(f"tag {spec!r}: use an id or type:name", field="tag")
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
    return int(result.inserted_primary_key[0])


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
    stmt = select(T.id, T.tag_type, T.tag_name, T.tag_scope).where(T.id.in_(wanted))
    if lock is not None and not is_sqlite(conn):
        stmt = stmt.with_for_update(read=lock == "share")
    found = {int(row[0]): tag_dict(row) for row in conn.execute(stmt)}
    scopes = readable_tag_scopes(viewer)
    for tag_id in wanted:
        tag = found.get(tag_id)
        if tag is None or (scopes is not None and tag["scope"] not in scopes):
            raise NotFound(f"{field}: no tag with id {tag_id}", field=field)
    return [found[tag_id] for tag_id in wanted]
