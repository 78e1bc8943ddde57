"""SQLModel classes over the schema tables, for code that wants typed row objects and ORM sessions.

They are derived from the Core tables in ``tables`` (the one definition of the schema), so a column
added there appears here too. Importing this module pulls in SQLAlchemy's ORM: the hot paths (job
lists, init-db) use the Core tables directly and never import it.
"""

from __future__ import annotations

from typing import Any, Optional

from sqlalchemy import MetaData, Table
from sqlmodel import Field, Session, SQLModel

from cc_backend.db import tables

# The ORM mapping gets its own MetaData: DDL and migrations use ``tables.metadata`` only.
_orm_metadata = MetaData()


def _model(class_name: str, table: Table, doc: str) -> type[SQLModel]:
    annotations: dict[str, Any] = {}
    namespace: dict[str, Any] = {"__tablename__": table.name, "__annotations__": annotations, "__doc__": doc,
                                 "__module__": __name__, "metadata": _orm_metadata}
    for column in table.columns:
        python_type = column.type.python_type
        optional = column.nullable or column.primary_key or column.server_default is not None
        annotations[column.name] = Optional[python_type] if optional else python_type
        namespace[column.name] = Field(default=None if optional else ..., sa_column=column._copy())
    return type(class_name, (SQLModel,), namespace, table=True)


Job = _model("Job", tables.job_table, "A row of ``job``.")
JobCache = _model("JobCache", tables.job_cache_table, "A row of ``job_cache`` (unused; kept for upstream).")
Tag = _model("Tag", tables.tag_table, "A row of ``tag``.")
JobTag = _model("JobTag", tables.jobtag_table, "A row of ``jobtag``.")
HpcUser = _model("HpcUser", tables.user_table, "A row of ``hpc_user``.")
Configuration = _model("Configuration", tables.configuration_table, "A row of ``configuration``.")
Node = _model("Node", tables.node_table, "A row of ``node``.")
NodeState = _model("NodeState", tables.node_state_table, "A row of ``node_state``.")

__all__ = ["Job", "JobCache", "Tag", "JobTag", "HpcUser", "Configuration", "Node", "NodeState", "Session"]
