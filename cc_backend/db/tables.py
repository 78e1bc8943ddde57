"""Tables of the upstream cc-backend database schema, version 11 (SQLAlchemy Core; ORM models in ``models``).

Core tables are the single definition of the schema: the query paths use them directly, and
importing them costs no ORM (``sqlalchemy.orm`` alone takes ~0.4 s to import on a small machine,
more than a whole ``cc-backend jobs list`` may take).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects import mysql

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

# Bounds of the JSON documents in LONGTEXT columns (UTF-8 bytes; checked by db/limits.py). LONGTEXT
# holds 4 GiB, but MariaDB refuses a statement above max_allowed_packet (16 MiB by default) and the
# driver sends values escaped (up to twice as long): a job's documents together stay below 7.2 MiB,
# so its INSERT fits 16 MiB, and they fit one request body of the server's default limit
# (main.max-request-body-size, 8 MiB).
MIB = 1024 * 1024
LARGE_DOCUMENT = {"max_bytes": 4 * MIB}  # job scripts in metaData
RESOURCES_DOCUMENT = {"max_bytes": 3 * MIB}  # ~6,000 nodes with 128 hardware threads each
SMALL_DOCUMENT = {"max_bytes": 64 * 1024}  # footprints: one number per metric
# A plain TEXT column on MySQL holds 65,535 bytes.
TEXT_DOCUMENT = {"max_bytes": 65535}


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _job_columns() -> list[Column]:
    """Columns shared by ``job`` and ``job_cache`` (fresh objects per table)."""
    return [
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("job_id", BigInteger, nullable=False),
        Column("cluster", Name, nullable=False),
        Column("subcluster", Name, nullable=False),
        Column("submit_time", BigInteger, nullable=False, server_default=text("0")),
        Column("start_time", BigInteger, nullable=False, server_default=text("0")),
        Column("hpc_user", Name, nullable=False),
        Column("project", Name, nullable=False),
        Column("cluster_partition", Name),
        Column("array_job_id", BigInteger),
        Column("duration", Integer, nullable=False),
        Column("walltime", Integer, nullable=False),
        Column("job_state", ShortName, nullable=False),
        Column("num_nodes", Integer, nullable=False),
        Column("num_hwthreads", Integer),
        Column("num_acc", Integer),
        Column("smt", Integer, nullable=False, server_default=text("1")),
        Column("shared", ShortName, nullable=False),
        Column("monitoring_status", SmallInteger, nullable=False, server_default=text("1")),
        Column("energy", Double, nullable=False, server_default=text("0")),
        # The large JSON documents come last: SQLite stores a row's columns in order and moves what
        # does not fit a page to overflow pages, which scans of the small columns then skip.
        Column("energy_footprint", LongText, info=SMALL_DOCUMENT),
        Column("footprint", LongText, info=SMALL_DOCUMENT),
        Column("resources", LongText, nullable=False, info=RESOURCES_DOCUMENT),
        Column("meta_data", LongText, info=LARGE_DOCUMENT),
    ]


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


metadata = MetaData()

# A job as the batch system reported it, with its archived footprint.
job_table = Table(
    "job", metadata, *_job_columns(),
    UniqueConstraint("job_id", "cluster", "start_time"),
    *_job_checks("job"),
    *_job_indexes(),
)

# Upstream's staging table for started jobs; kept for schema compatibility, unused here.
job_cache_table = Table(
    "job_cache", metadata, *_job_columns(),
    UniqueConstraint("job_id", "cluster", "start_time"),
    *_job_checks("job_cache"),
    CheckConstraint("smt IN (0, 1)", name="job_cache_smt"),
)

tag_table = Table(
    "tag", metadata,
    Column("id", Integer, primary_key=True),
    Column("tag_type", Name, nullable=False),
    Column("tag_name", Name, nullable=False),
    Column("insert_ts", Name, server_default=text("CURRENT_TIMESTAMP")),
    # 'global', 'admin' or a username (private tag)
    Column("tag_scope", Name, nullable=False, server_default=text("'global'")),
    UniqueConstraint("tag_type", "tag_name"),
)

jobtag_table = Table(
    "jobtag", metadata,
    Column("job_id", Integer, ForeignKey("job.id", ondelete="CASCADE"), nullable=False),
    Column("tag_id", Integer, ForeignKey("tag.id", ondelete="CASCADE"), nullable=False),
    Column("insert_ts", Name, server_default=text("CURRENT_TIMESTAMP")),
    PrimaryKeyConstraint("job_id", "tag_id"),
    Index("tags_jobid", "job_id"),
    Index("tags_tagid", "tag_id"),
)

# ``ldap`` holds the auth source (0 local, 1 LDAP, 2 token, 3 OIDC) for historic reasons.
user_table = Table(
    "hpc_user", metadata,
    Column("username", Name, primary_key=True),
    Column("password", Name),
    Column("ldap", SmallInteger, nullable=False, server_default=text("0")),
    Column("name", Name),
    Column("roles", Name, nullable=False, server_default=text("'[]'")),
    Column("email", Name),
    Column("projects", Text, nullable=False, info=TEXT_DOCUMENT),
)

# Per-user UI configuration overrides (JSON values).
configuration_table = Table(
    "configuration", metadata,
    Column("username", Name, ForeignKey("hpc_user.username", ondelete="CASCADE"), nullable=False),
    Column("confkey", Name, nullable=False),
    Column("value", LongText, info=LARGE_DOCUMENT),
    PrimaryKeyConstraint("username", "confkey"),
)

node_table = Table(
    "node", metadata,
    Column("id", Integer, primary_key=True),
    Column("hostname", Name, nullable=False),
    Column("cluster", Name, nullable=False),
    Column("subcluster", Name, nullable=False),
    Column("meta_data", LongText, info=LARGE_DOCUMENT),
    UniqueConstraint("hostname", "cluster"),
    Index("nodes_cluster", "cluster"),
    Index("nodes_cluster_subcluster", "cluster", "subcluster"),
)

node_state_table = Table(
    "node_state", metadata,
    Column("id", Integer, primary_key=True),
    Column("time_stamp", BigInteger, nullable=False),
    Column("jobs_running", Integer, nullable=False, server_default=text("0")),
    Column("cpus_allocated", Integer, nullable=False, server_default=text("0")),
    Column("memory_allocated", Integer, nullable=False, server_default=text("0")),
    Column("gpus_allocated", Integer, nullable=False, server_default=text("0")),
    Column("node_state", ShortName, nullable=False),
    Column("health_state", ShortName, nullable=False),
    Column("health_metrics", LongText, info=LARGE_DOCUMENT),
    Column("node_id", Integer, ForeignKey("node.id")),
    CheckConstraint(_in("node_state", NODE_STATES), name="node_state_node_state"),
    CheckConstraint(_in("health_state", HEALTH_STATES), name="node_state_health_state"),
    Index("nodestates_timestamp", "time_stamp"),
    Index("nodestates_state_timestamp", "node_state", "time_stamp"),
    Index("nodestates_health_timestamp", "health_state", "time_stamp"),
    Index("nodestates_nodeid_state", "node_id", "node_state"),
    Index("nodestates_nodeid_health", "node_id", "health_state"),
    Index("nodestates_nodeid_timestamp", "node_id", text("time_stamp DESC")),
)
