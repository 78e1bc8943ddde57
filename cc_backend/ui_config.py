"""Per-user UI settings in the ``configuration`` table (upstream ``repository/userConfig.go`` UpdateConfig)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from sqlalchemy import delete, insert, select

from cc_backend.db.limits import check_text
from cc_backend.db.tables import configuration_table, user_table
from cc_backend.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from sqlalchemy import Engine


def set_user_ui_config(engine: Engine, username: str, key: str | None, value: str | None) -> None:
    """Store one UI setting of ``username`` (upstream's ``REPLACE INTO configuration``).

    ``value`` is the JSON text the web frontend sends (``JSON.stringify(...)``); it is stored as given,
    so the row reads back exactly as upstream's would. Text that is not JSON is refused, because
    :func:`cc_backend.auth.users.get_user_ui_config` and upstream's frontend both decode it.
    """
    if not key:
        raise InvalidInput("key is required: the name of the UI setting", field="key")
    check_text(configuration_table.c.confkey, key, "key")
    if value is None:
        raise InvalidInput("value is required: the setting as JSON text", field="value")
    check_text(configuration_table.c.value, value, "value")
    try:
        json.loads(value)
    except ValueError as exc:
        raise InvalidInput(f"value must be JSON text (e.g. \"3\", \"true\", '\"abc\"', '[1,2]'): {exc}",
                           field="value") from None
    table = configuration_table
    row = {"username": username, "confkey": key, "value": value}
    with engine.begin() as conn:
        if conn.execute(select(user_table.c.username).where(user_table.c.username == username)).first() is None:
            raise NotFound(f"no such user: {username!r}", field="username")
        dialect = engine.dialect.name
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            conn.execute(sqlite_insert(table).values(**row).on_conflict_do_update(
                index_elements=[table.c.username, table.c.confkey], set_={"value": value}))
        elif dialect in ("mysql", "mariadb"):
            from sqlalchemy.dialects.mysql import insert as mysql_insert

            conn.execute(mysql_insert(table).values(**row).on_duplicate_key_update(value=value))
        else:  # any other engine: replace inside the transaction
            conn.execute(delete(table).where(table.c.username == username, table.c.confkey == key))
            conn.execute(insert(table).values(**row))
