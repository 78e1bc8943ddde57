"""SQLModel tables of the upstream cc-backend database schema, version 11."""

from __future__ import annotations

from typing import Optional

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects import mysql
from sqlmodel import Field, SQLModel

SCHEMA_VERSION = 11

JOB_STATES = (
    "boot_fail", "cancelled", "completed", "deadline", "failed", "node_fail",
    "out_of_memory", "pending", "preempted", "running", "suspended", "timeout",
)
SHARED_MODES = ("none", "single_user", "multi_user")
NODE_STATES = ("allocated", "reserved", "idle", "mixed", "down", "unknown")
HEALTH_STATES = ("full", "partial", "failed")

# Large JSON documents (job scripts, resources of big jobs) overflow MySQL's 64 KiB TEXT.
LongText = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
# Indexed text columns need a bounded length on MySQL; SQLite ignores the length.
Name = String(255)
ShortName = String(32)
Double = Float().with_variant(mysql.DOUBLE(), "mysql", "mariadb")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _col(sa_type, *, nullable: bool = True, default: str | None = None) -> dict:
    """Field() arguments for one column; fresh per table, so job and job_cache can share them."""
    kwargs: dict = {"server_default": text(default)} if default is not None else {}
    return {"sa_type": sa_type, "nullable": nullable, "sa_column_kwargs": kwargs}


class _JobFields(SQLModel):
    """Columns shared by ``job`` and ``job_cache``."""

    id: Optional[int] = Field(default=None, primary_key=True)
    job_id: int = Field(**_col(BigInteger, nullable=False))
    cluster: str = Field(**_col(Name, nullable=False))
    subcluster: str = Field(**_col(Name, nullable=False))
    submit_time: int = Field(default=0, **_col(BigInteger, nullable=False, default="0"))
    start_time: int = Field(default=0, **_col(BigInteger, nullable=False, default="0"))
    hpc_user: str = Field(**_col(Name, nullable=False))
    project: str = Field(**_col(Name, nullable=False))
    cluster_partition: Optional[str] = Field(default=None, **_col(Name))
    array_job_id: Optional[int] = Field(default=None, **_col(BigInteger))
    duration: int = Field(default=0, **_col(Integer, nullable=False))
    walltime: int = Field(default=0, **_col(Integer, nullable=False))
    job_state: str = Field(**_col(ShortName, nullable=False))
    meta_data: Optional[str] = Field(default=None, **_col(LongText))
    resources: str = Field(**_col(LongText, nullable=False))
    num_nodes: int = Field(**_col(Integer, nullable=False))
    num_hwthreads: Optional[int] = Field(default=None, **_col(Integer))
    num_acc: Optional[int] = Field(default=None, **_col(Integer))
    smt: int = Field(default=1, **_col(Integer, nullable=False, default="1"))
    shared: str = Field(default="none", **_col(ShortName, nullable=False))
    monitoring_status: int = Field(default=1, **_col(SmallInteger, nullable=False, default="1"))
    energy: float = Field(default=0.0, **_col(Double, nullable=False, default="0"))
    energy_footprint: Optional[str] = Field(default=None, **_col(LongText))
    footprint: Optional[str] = Field(default=None, **_col(LongText))


def _job_checks(prefix: str) -> list[CheckConstraint]:
    return [
        CheckConstraint(_in("job_state", JOB_STATES), name=f"{prefix}_job_state"),
        CheckConstraint(_in("shared", SHARED_MODES), name=f"{prefix}_shared"),
        CheckConstraint("monitoring_status IN (0, 1, 2, 3)", name=f"{prefix}_monitoring_status"),
    ]


# (index name, columns) of the job table at schema version 11.
JOB_INDEXES: list[tuple[str, tuple[str, ...]]] = [
    ("jobs_cluster_user", ("cluster", "hpc_user")),
    ("jobs_cluster_project", ("cluster", "project")),
    ("jobs_cluster_subcluster", ("cluster", "subcluster")),
    ("jobs_cluster_numnodes", ("cluster", "num_nodes")),
    ("jobs_cluster_numhwthreads", ("cluster", "num_hwthreads")),
    ("jobs_cluster_numacc", ("cluster", "num_acc")),
    ("jobs_cluster_energy", ("cluster", "energy")),
    ("jobs_cluster_duration_starttime", ("cluster", "duration", "start_time")),
    ("jobs_cluster_starttime_duration", ("cluster", "start_time", "duration")),
    ("jobs_cluster_partition_user", ("cluster", "cluster_partition", "hpc_user")),
    ("jobs_cluster_partition_project", ("cluster", "cluster_partition", "project")),
    ("jobs_cluster_partition_jobstate", ("cluster", "cluster_partition", "job_state")),
    ("jobs_cluster_partition_shared", ("cluster", "cluster_partition", "shared")),
    ("jobs_cluster_partition_duration_starttime", ("cluster", "cluster_partition", "duration", "start_time")),
    ("jobs_cluster_partition_starttime_duration", ("cluster", "cluster_partition", "start_time", "duration")),
    ("jobs_cluster_jobstate_starttime_duration", ("cluster", "job_state", "start_time", "duration")),
    ("jobs_cluster_jobstate_duration_starttime", ("cluster", "job_state", "duration", "start_time")),
    ("jobs_cluster_shared_user", ("cluster", "shared", "hpc_user")),
    ("jobs_cluster_shared_project", ("cluster", "shared", "project")),
    ("jobs_cluster_shared_starttime_duration", ("cluster", "shared", "start_time", "duration")),
    ("jobs_cluster_shared_duration_starttime", ("cluster", "shared", "duration", "start_time")),
    ("jobs_user_starttime_duration", ("hpc_user", "start_time", "duration")),
    ("jobs_user_duration_starttime", ("hpc_user", "duration", "start_time")),
    ("jobs_project_user", ("project", "hpc_user")),
    ("jobs_project_starttime_duration", ("project", "start_time", "duration")),
    ("jobs_project_duration_starttime", ("project", "duration", "start_time")),
    ("jobs_jobstate_user", ("job_state", "hpc_user")),
    ("jobs_jobstate_project", ("job_state", "project")),
    ("jobs_jobstate_starttime_duration", ("job_state", "start_time", "duration")),
    ("jobs_jobstate_duration_starttime", ("job_state", "duration", "start_time")),
    ("jobs_shared_user", ("shared", "hpc_user")),
    ("jobs_shared_project", ("shared", "project")),
    ("jobs_shared_starttime_duration", ("shared", "start_time", "duration")),
    ("jobs_shared_duration_starttime", ("shared", "duration", "start_time")),
    ("jobs_arrayjobid_starttime", ("array_job_id", "start_time")),
    ("jobs_duration_starttime", ("duration", "start_time")),
    ("jobs_numnodes_starttime", ("num_nodes", "start_time")),
    ("jobs_numhwthreads_starttime", ("num_hwthreads", "start_time")),
    ("jobs_numacc_starttime", ("num_acc", "start_time")),
    ("jobs_energy_starttime", ("energy", "start_time")),
    ("jobs_starttime_duration", ("start_time", "duration")),
    ("jobs_numnodes_duration", ("num_nodes", "duration")),
    ("jobs_numhwthreads_duration", ("num_hwthreads", "duration")),
    ("jobs_numacc_duration", ("num_acc", "duration")),
    ("jobs_energy_duration", ("energy", "duration")),
    ("jobs_starttime", ("start_time",)),
    ("jobs_cluster_user_starttime_stats", ("cluster", "hpc_user", "start_time", "duration", "job_state", "num_nodes", "num_hwthreads", "num_acc")),
    ("jobs_cluster_project_starttime_stats", ("cluster", "project", "start_time", "duration", "job_state", "num_nodes", "num_hwthreads", "num_acc")),
    ("jobs_cluster_jobstate_user_stats", ("cluster", "job_state", "hpc_user", "duration", "start_time", "num_nodes", "num_hwthreads", "num_acc")),
    ("jobs_cluster_jobstate_project_stats", ("cluster", "job_state", "project", "duration", "start_time", "num_nodes", "num_hwthreads", "num_acc")),
    ("jobs_cluster_jobstate_subcluster_stats", ("cluster", "job_state", "subcluster", "duration", "start_time", "num_nodes", "num_hwthreads", "num_acc")),
]
# Partial indexes (WHERE job_state = 'running'); MySQL has none, so there they cover all rows.
JOB_RUNNING_INDEXES: list[tuple[str, tuple[str, ...]]] = [
    ("jobs_running_user_stats", ("cluster", "hpc_user", "num_nodes", "num_hwthreads", "num_acc", "duration", "start_time")),
    ("jobs_running_project_stats", ("cluster", "project", "num_nodes", "num_hwthreads", "num_acc", "duration", "start_time")),
    ("jobs_running_subcluster_stats", ("cluster", "subcluster", "num_nodes", "num_hwthreads", "num_acc", "duration", "start_time")),
]


def _job_indexes() -> list[Index]:
    indexes = [Index(name, *cols) for name, cols in JOB_INDEXES]
    indexes += [Index(name, *cols, sqlite_where=text("job_state = 'running'")) for name, cols in JOB_RUNNING_INDEXES]
    return indexes


class Job(_JobFields, table=True):
    """A job as the batch system reported it, with its archived footprint."""

    __tablename__ = "job"
    __table_args__ = (
        UniqueConstraint("job_id", "cluster", "start_time"),
        *_job_checks("job"),
        *_job_indexes(),
    )


class JobCache(_JobFields, table=True):
    """Upstream's staging table for started jobs; kept for schema compatibility, unused here."""

    __tablename__ = "job_cache"
    __table_args__ = (
        UniqueConstraint("job_id", "cluster", "start_time"),
        *_job_checks("job_cache"),
        CheckConstraint("smt IN (0, 1)", name="job_cache_smt"),
    )


class Tag(SQLModel, table=True):
    __tablename__ = "tag"
    __table_args__ = (UniqueConstraint("tag_type", "tag_name"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    tag_type: str = Field(sa_type=Name, nullable=False)
    tag_name: str = Field(sa_type=Name, nullable=False)
    insert_ts: Optional[str] = Field(default=None, sa_column=Column(Name, server_default=text("CURRENT_TIMESTAMP")))
    tag_scope: str = Field(default="global", sa_column=Column(Name, nullable=False, server_default=text("'global'")))


class JobTag(SQLModel, table=True):
    __tablename__ = "jobtag"
    __table_args__ = (
        PrimaryKeyConstraint("job_id", "tag_id"),
        Index("tags_jobid", "job_id"),
        Index("tags_tagid", "tag_id"),
    )

    job_id: int = Field(sa_column=Column(Integer, ForeignKey("job.id", ondelete="CASCADE"), nullable=False))
    tag_id: int = Field(sa_column=Column(Integer, ForeignKey("tag.id", ondelete="CASCADE"), nullable=False))
    insert_ts: Optional[str] = Field(default=None, sa_column=Column(Name, server_default=text("CURRENT_TIMESTAMP")))


class HpcUser(SQLModel, table=True):
    """A user; ``ldap`` holds the auth source (0 local, 1 LDAP, 2 token, 3 OIDC) for historic reasons."""

    __tablename__ = "hpc_user"

    username: str = Field(sa_column=Column(Name, primary_key=True))
    password: Optional[str] = Field(default=None, sa_type=Name)
    ldap: int = Field(default=0, sa_column=Column(SmallInteger, nullable=False, server_default=text("0")))
    name: Optional[str] = Field(default=None, sa_type=Name)
    roles: str = Field(default="[]", sa_column=Column(Name, nullable=False, server_default=text("'[]'")))
    email: Optional[str] = Field(default=None, sa_type=Name)
    projects: str = Field(default="[]", sa_column=Column(Text().with_variant(mysql.TEXT(), "mysql"), nullable=False))


class Configuration(SQLModel, table=True):
    """Per-user UI configuration overrides (JSON values)."""

    __tablename__ = "configuration"
    __table_args__ = (PrimaryKeyConstraint("username", "confkey"),)

    username: str = Field(sa_column=Column(Name, ForeignKey("hpc_user.username", ondelete="CASCADE"), nullable=False))
    confkey: str = Field(sa_column=Column(Name, nullable=False))
    value: Optional[str] = Field(default=None, sa_type=LongText)


class Node(SQLModel, table=True):
    __tablename__ = "node"
    __table_args__ = (
        UniqueConstraint("hostname", "cluster"),
        Index("nodes_cluster", "cluster"),
        Index("nodes_cluster_subcluster", "cluster", "subcluster"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    hostname: str = Field(sa_type=Name, nullable=False)
    cluster: str = Field(sa_type=Name, nullable=False)
    subcluster: str = Field(sa_type=Name, nullable=False)
    meta_data: Optional[str] = Field(default=None, sa_type=LongText)


class NodeState(SQLModel, table=True):
    __tablename__ = "node_state"
    __table_args__ = (
        CheckConstraint(_in("node_state", NODE_STATES), name="node_state_node_state"),
        CheckConstraint(_in("health_state", HEALTH_STATES), name="node_state_health_state"),
        Index("nodestates_timestamp", "time_stamp"),
        Index("nodestates_state_timestamp", "node_state", "time_stamp"),
        Index("nodestates_health_timestamp", "health_state", "time_stamp"),
        Index("nodestates_nodeid_state", "node_id", "node_state"),
        Index("nodestates_nodeid_health", "node_id", "health_state"),
        Index("nodestates_nodeid_timestamp", "node_id", text("time_stamp DESC")),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    time_stamp: int = Field(sa_type=BigInteger, nullable=False)
    jobs_running: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default=text("0")))
    cpus_allocated: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default=text("0")))
    memory_allocated: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default=text("0")))
    gpus_allocated: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default=text("0")))
    node_state: str = Field(sa_type=ShortName, nullable=False)
    health_state: str = Field(sa_type=ShortName, nullable=False)
    health_metrics: Optional[str] = Field(default=None, sa_type=LongText)
    node_id: Optional[int] = Field(default=None, sa_column=Column(Integer, ForeignKey("node.id")))


metadata = SQLModel.metadata
job_table = Job.__table__
job_cache_table = JobCache.__table__
tag_table = Tag.__table__
jobtag_table = JobTag.__table__
user_table = HpcUser.__table__
configuration_table = Configuration.__table__
node_table = Node.__table__
node_state_table = NodeState.__table__
