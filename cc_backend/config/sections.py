"""Pydantic models of upstream's v1.5 ``config.json`` sections; their attribute docstrings generate docs/configuration.md."""

from __future__ import annotations

import ipaddress
import logging
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from cc_backend.config.dsn import mysql_url, parse_mysql_db
from cc_backend.config.durations import GoDuration, PositiveGoDuration, format_go_duration
from cc_backend.config.messages import show_value

log = logging.getLogger("cc_backend.config")


def _hyphenate(name: str) -> str:
    return name.replace("_", "-")


def _go_duration_defaults(schema: dict[str, Any], model: type[BaseModel]) -> None:
    # pydantic renders timedelta defaults as ISO 8601 ("PT2M"); the reference docs must show what
    # an admin writes into config.json ("2m").
    properties = schema.get("properties", {})
    for name, field in model.model_fields.items():
        key = field.alias or name
        if isinstance(field.default, timedelta) and key in properties:
            properties[key]["default"] = format_go_duration(field.default)


class _Section(BaseModel):
    """Base of every section: upstream's hyphenated keys, no unknown keys, JSON types only (no "42" for 42)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        alias_generator=_hyphenate,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        use_attribute_docstrings=True,
        json_schema_extra=_go_duration_defaults,
    )


class DbConfig(_Section):
    """SQLite connection tuning (``main.db-config``)."""

    cache_size_mb: int = Field(default=2048, ge=0)
    """SQLite page cache per connection, in MiB."""
    soft_heap_limit_mb: int = Field(default=16384, ge=0)
    """SQLite soft heap limit for the whole process, in MiB."""
    max_open_connections: int = Field(default=4, ge=1)
    """Maximum number of open database connections."""
    max_idle_connections: int = Field(default=4, ge=0)
    """Maximum number of idle connections kept in the pool."""
    max_idle_time_minutes: int = Field(default=10, ge=0)
    """Close connections that were idle for longer than this many minutes."""
    busy_timeout_ms: int = Field(default=60000, ge=0)
    """How long a statement waits for a locked database, in milliseconds."""


class ApiSubjectsConfig(_Section):
    """NATS subjects of the job and node-state API (``main.api-subjects``); when set, REST start_job/stop_job are not mounted."""

    subject_job_event: str
    """Subject carrying job start/stop events."""
    subject_node_state: str
    """Subject carrying node-state updates."""
    job_concurrency: int = Field(default=8, ge=1)
    """Number of job events handled in parallel."""
    node_concurrency: int = Field(default=2, ge=1)
    """Number of node-state messages handled in parallel."""


class ResamplingConfig(_Section):
    """Dynamic zoom of metric plots (``main.resampling``); unset disables resampling."""

    minimum_points: int = Field(default=1000, ge=0)
    """Series with fewer points than this are never resampled (upstream's resampler default is 1000)."""
    trigger: int = Field(ge=1)
    """Load the next finer resolution when fewer than this many points are visible."""
    resolutions: list[int] = Field(min_length=1)
    """Resampling target resolutions in seconds, e.g. [600, 300, 60]; the largest is the default query resolution."""


class _TargetConfig(_Section):
    """Where retention writes what it moves or copies: a directory or an S3 bucket."""

    target_kind: Literal["file", "s3"] = "file"
    """Where "copy" and "move" write: a directory ("file") or an S3 bucket ("s3")."""
    target_path: str | None = None
    """Target directory for target-kind "file"."""
    target_endpoint: str | None = None
    """S3 endpoint URL for target-kind "s3"."""
    target_bucket: str | None = None
    """S3 bucket for target-kind "s3"."""
    target_access_key: str | None = None
    """S3 access key for target-kind "s3"."""
    target_secret_key: str | None = None
    """S3 secret key for target-kind "s3"."""
    target_region: str | None = None
    """S3 region for target-kind "s3"."""
    target_use_path_style: bool = False
    """Use path-style S3 URLs (MinIO and other S3-compatible services)."""


class NodeStateRetentionConfig(_TargetConfig):
    """Retention of the node_state table (``main.nodestate-retention``)."""

    policy: Literal["delete", "move"]
    """"delete" removes old rows, "move" writes them to Parquet files at the target first."""
    age: int = Field(default=24, ge=1)
    """Act on rows older than this many hours."""
    max_file_size_mb: int = Field(default=128, ge=1)
    """Start a new Parquet file once the current one reaches this size, in MiB."""


class MainConfig(_Section):
    """The ``main`` section: server, database and general behaviour."""

    addr: str = "localhost:8080"
    """Address the HTTP(S) server listens on, e.g. "0.0.0.0:443"."""
    api_allowed_ips: list[str] | None = None
    """IP addresses allowed to use the JWT-authenticated /api/ endpoints; "*" first allows any; unset means no restriction."""
    trusted_proxies: list[str] = []
    """Addresses (IPs or CIDR networks such as "10.0.0.0/8") of reverse proxies whose X-Real-Ip and X-Forwarded-For headers name the client; from any other peer these headers are ignored. Empty (the default): the client is always the peer address. Extension of this implementation."""
    read_header_timeout: PositiveGoDuration = timedelta(seconds=20)
    """Time a client has to send a complete request head (request line and headers), counted from the connection (or, on a kept-alive connection, from the first byte of the next request); then 408 and the connection is closed (upstream: ReadHeaderTimeout 20 s). Extension of this implementation."""
    read_body_timeout: PositiveGoDuration = timedelta(seconds=60)
    """Time a request body may take to arrive, counted from when the server first waits for it; then 408. Extension of this implementation."""
    api_subjects: ApiSubjectsConfig | None = None
    """Receive job events and node states over NATS (needs the nats section); disables REST start_job/stop_job."""
    user: str | None = None
    """Drop privileges to this user after the listening port was bound."""
    group: str | None = None
    """Drop privileges to this group after the listening port was bound."""
    disable_authentication: bool = False
    """Disable authentication everywhere (API, web UI). Unsupported upstream in practice; never use in production."""
    embed_static_files: bool = True
    """Serve the frontend bundled with the program; set false to serve static-files instead."""
    static_files: str | None = None
    """Directory with frontend files, used when embed-static-files is false."""
    db_driver: Literal["sqlite3", "mysql"] = "sqlite3"
    """Database engine: "sqlite3" or "mysql" (MariaDB too). Extension of this implementation: upstream v1.5 only supports sqlite3."""
    db: str = Field(default="./var/job.db", validate_default=True)
    """SQLite: the database file; relative paths are resolved against the working directory, like upstream. MySQL: a DSN "user:password@tcp(host:3306)/dbname?params" or a URL "mysql+pymysql://user:password@host:3306/dbname"."""
    db_config: DbConfig = Field(default_factory=DbConfig)
    """SQLite tuning."""
    enable_job_taggers: bool = False
    """Run the application and job-class taggers when jobs start and stop."""
    validate_json: bool = Field(default=False, alias="validate")
    """Validate job archive files and imported jobs against the JSON schemas."""
    session_max_age: GoDuration = timedelta(hours=168)
    """Lifetime of a login session cookie; "0" or "" means the session does not expire."""
    https_cert_file: str | None = None
    """TLS certificate (chain) file; with https-key-file, serve HTTPS."""
    https_key_file: str | None = None
    """TLS private key file; with https-cert-file, serve HTTPS."""
    redirect_http_to: str | None = None
    """Also listen on port 80 (on main.addr's host) and redirect every request there to this URL, keeping path and query."""
    machine_state_dir: str | None = None
    """Directory for machine state files; enables /api/machine_state/."""
    stop_jobs_exceeding_walltime: int = Field(default=0, ge=0)
    """If > 0, every night mark running jobs as failed that exceed their walltime by this many seconds."""
    short_running_jobs_duration: int = Field(default=300, ge=0)
    """Jobs shorter than this many seconds count as short and can be hidden in job lists and statistics."""
    emission_constant: int = Field(default=0, ge=0)
    """Energy mix CO2 emission constant in g/kWh; if > 0 the job view shows an estimated CO2 emission."""
    resampling: ResamplingConfig | None = None
    """Dynamic zoom of metric plots; unset means no resampling."""
    systemd_unit: str = "clustercockpit.service"
    """systemd unit whose journal the admin log viewer shows."""
    nodestate_retention: NodeStateRetentionConfig | None = None
    """Retention of node-state history; unset keeps it forever."""
    max_request_body_size: int = Field(default=8 * 1024 * 1024, ge=1024)
    """Largest request body, in bytes, the server accepts on any route (REST, GraphQL, login); a larger one is answered 413 without being read. The default, 8 MiB, holds the largest job documents the database takes. Extension of this implementation."""

    @field_validator("session_max_age", mode="before")
    @classmethod
    def _empty_is_zero(cls, value: Any) -> Any:
        # Upstream treats "" like "0": sessions without expiry.
        return "0" if value == "" else value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise PydanticCustomError("ip_network", 'expected an IP address or a CIDR network such as "10.0.0.0/8", '
                                          "got {got}", {"got": show_value(entry)}) from None
        return value

    @field_validator("db")
    @classmethod
    def _check_db(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("db_driver") == "mysql":
            try:
                target = parse_mysql_db(value)
            except ValueError as exc:
                raise PydanticCustomError("mysql_dsn", "{reason}", {"reason": str(exc)}) from None
            if target.dropped:
                log.warning("main.db: MySQL DSN parameters %s have no PyMySQL equivalent and are ignored", ", ".join(target.dropped))
        elif not value:
            raise PydanticCustomError("sqlite_path", 'expected the path of the SQLite database file, got ""')
        return value

    def database_url(self) -> str:
        """SQLAlchemy URL of the job database (``sqlite:///./var/job.db`` or ``mysql+pymysql://...?charset=utf8mb4``)."""
        if self.db_driver == "mysql":
            return mysql_url(self.db)
        if self.db.startswith("sqlite:"):
            return self.db
        from sqlalchemy.engine import URL  # lazy, see _parse_mysql_url

        # Kept relative on purpose: SQLite resolves it against the working directory, as upstream does.
        return URL.create("sqlite", database=self.db).render_as_string()


class JwtConfig(_Section):
    """JSON Web Tokens (``auth.jwts``): API tokens and JWT-based logins."""

    max_age: PositiveGoDuration
    """Lifetime of tokens issued by this server (the "exp" claim), e.g. "2000h"."""
    cookie_name: str | None = None
    """Cookie that may carry a JWT for cross-login from a trusted external issuer."""
    validate_user: bool = False
    """Trust the database rather than the token: unknown users are rejected and roles come from the database."""
    trusted_issuer: str | None = None
    """Issuer ("iss") whose tokens are verified with CROSS_LOGIN_JWT_PUBLIC_KEY."""
    sync_user_on_login: bool = False
    """Create unknown users from the token's claims at login."""
    update_user_on_login: bool = False
    """Update existing users' roles from the token's claims at login."""


class LdapConfig(_Section):
    """LDAP authentication and user synchronisation (``auth.ldap``); the bind password is LDAP_ADMIN_PASSWORD."""

    url: str
    """LDAP server URL, e.g. "ldap://ldap.example.org"."""
    user_base: str
    """Base DN of user entries, e.g. "ou=people,ou=hpc,dc=example,dc=org"."""
    search_dn: str
    """DN used to bind for searches and synchronisation."""
    user_bind: str
    """Bind DN template for a logging-in user; must contain "{username}"."""
    user_filter: str
    """LDAP filter selecting the users to synchronise, e.g. "(&(objectclass=posixAccount))"."""
    username_attr: str = "gecos"
    """Attribute holding the user's display name."""
    uid_attr: str = "uid"
    """Attribute holding the user name."""
    sync_interval: GoDuration | None = None
    """Synchronise users with LDAP at this interval, e.g. "24h"; unset or "0" disables periodic sync."""
    sync_del_old_users: bool = False
    """During synchronisation, delete LDAP users that vanished from the directory."""
    sync_user_on_login: bool = False
    """Create unknown users that exist in LDAP when they log in."""
    update_user_on_login: bool = False
    """Update existing users from LDAP when they log in."""

    @field_validator("user_bind")
    @classmethod
    def _has_placeholder(cls, value: str) -> str:
        if "{username}" not in value:
            raise PydanticCustomError(
                "ldap_bind", "expected a DN template containing {placeholder}, got {got}", {"placeholder": '"{username}"', "got": show_value(value)}
            )
        return value


class OidcConfig(_Section):
    """OpenID Connect login (``auth.oidc``); client credentials are OID_CLIENT_ID and OID_CLIENT_SECRET."""

    provider: str
    """Issuer URL of the OpenID provider, e.g. "https://keycloak.example.org/realms/hpc"."""
    sync_user_on_login: bool = False
    """Create unknown users from the provider's claims at login."""
    update_user_on_login: bool = False
    """Update existing users' roles and projects from the provider's claims at login."""


class AuthConfig(_Section):
    """The ``auth`` section: token, LDAP and OpenID Connect settings; local accounts need no configuration."""

    jwts: JwtConfig | None = None
    """JWT settings; required for API tokens."""
    ldap: LdapConfig | None = None
    """LDAP settings; unset disables LDAP."""
    oidc: OidcConfig | None = None
    """OpenID Connect settings; unset disables OIDC login."""


class RetentionConfig(_TargetConfig):
    """Job retention (``archive.retention``): delete, copy or move old jobs out of the archive."""

    policy: Literal["none", "delete", "copy", "move"]
    """"none", "delete" (remove), "copy" (copy to the target) or "move" (copy, then remove)."""
    format: Literal["json", "parquet"] = "json"
    """Format written to the target by copy and move."""
    include_db: bool = True
    """Also remove the jobs from the database (delete and move)."""
    omit_tagged: Literal["none", "all", "user"] = "none"
    """Keep tagged jobs: "all" skips jobs with any tag, "user" jobs with a user-scoped tag."""
    age: int = Field(default=0, ge=0)
    """Act on jobs that started more than this many days ago; must be > 0 unless the policy is "none"."""
    max_file_size_mb: int = Field(default=512, ge=1)
    """Start a new Parquet file once the current one reaches this size, in MiB."""


class ArchiveConfig(_Section):
    """The ``archive`` section: the job archive backend and its maintenance."""

    kind: Literal["file", "s3", "sqlite"]
    """Backend: "file" (a directory tree), "s3" (a bucket) or "sqlite" (one database file)."""
    path: str | None = None
    """Archive directory for kind "file"; relative paths are resolved against the working directory."""
    db_path: str | None = None
    """Database file for kind "sqlite"."""
    endpoint: str | None = None
    """S3 endpoint URL for kind "s3" (S3-compatible services like MinIO)."""
    access_key: str | None = None
    """S3 access key for kind "s3"."""
    secret_key: str | None = None
    """S3 secret key for kind "s3"."""
    bucket: str | None = None
    """S3 bucket for kind "s3"."""
    region: str | None = None
    """S3 region for kind "s3"."""
    use_path_style: bool = False
    """Use path-style S3 URLs (MinIO and other S3-compatible services)."""
    compression: int = Field(default=7, ge=0)
    """Compress the data of jobs older than this many days; 0 means the default of 7 (compression always runs)."""
    retention: RetentionConfig | None = None
    """Retention policy; unset keeps every job forever."""


class CronConfig(_Section):
    """The ``cron`` section: intervals of the background workers."""

    commit_job_worker: PositiveGoDuration = timedelta(minutes=2)
    """How often jobs started via the API are moved from the job cache into the job table."""
    duration_worker: PositiveGoDuration = timedelta(minutes=5)
    """How often the duration of running jobs is updated."""
    footprint_worker: PositiveGoDuration = timedelta(minutes=10)
    """How often footprints of running jobs are updated."""


class NatsConfig(_Section):
    """The ``nats`` section: connection to a NATS server."""

    address: str
    """Server URL, e.g. "nats://0.0.0.0:4222"."""
    username: str | None = None
    """User name for user/password authentication."""
    password: str | None = None
    """Password for user/password authentication."""
    creds_file_path: str | None = None
    """NATS credentials file (JWT + NKey) instead of user/password."""


class CheckpointsConfig(_Section):
    """Checkpointing of the built-in metric store (``metric-store.checkpoints``)."""

    file_format: Literal["json", "wal"] = "wal"
    """Checkpoint format: "wal" (binary write-ahead log) or "json"."""
    directory: str = "./var/checkpoints"
    """Directory for checkpoint files."""
    max_wal_size: int = Field(default=0, ge=0)
    """Maximum size of a WAL file in bytes; 0 is unlimited."""


class CleanupConfig(_Section):
    """What happens to expired checkpoints (``metric-store.cleanup``)."""

    mode: Literal["delete", "archive"] = "delete"
    """"delete" removes them, "archive" converts them to Parquet files in directory first."""
    directory: str | None = None
    """Target directory for mode "archive"."""


class NatsSubscriptionConfig(_Section):
    """One NATS subject the built-in metric store ingests line-protocol metrics from."""

    subscribe_to: str
    """Subject to subscribe to."""
    cluster_tag: str | None = None
    """Cluster name assumed for messages without a cluster tag."""


class MetricStoreDebugConfig(_Section):
    """Debugging aids of the built-in metric store (``metric-store.debug``)."""

    dump_to_file: str | None = None
    """Dump the in-memory store to this file for inspection."""
    gops: bool = False
    """Start the gops agent (Go only; accepted and ignored here)."""


class MetricStoreConfig(_Section):
    """The ``metric-store`` section: the built-in in-memory metric store."""

    retention_in_memory: PositiveGoDuration
    """How long samples stay in memory; also the cleanup interval, e.g. "24h"."""
    memory_cap: int = Field(ge=1)
    """Memory limit in GB; above it the oldest buffers are freed."""
    num_workers: int = Field(default=0, ge=0)
    """Worker threads for checkpointing; 0 means min(CPUs/2+1, 10)."""
    checkpoint_interval: PositiveGoDuration = timedelta(hours=12)
    """How often checkpoints are written."""
    checkpoints: CheckpointsConfig = Field(default_factory=CheckpointsConfig)
    """Checkpoint format and location."""
    cleanup: CleanupConfig = Field(default_factory=CleanupConfig)
    """Handling of expired checkpoints."""
    nats_subscriptions: list[NatsSubscriptionConfig] = Field(default_factory=list)
    """NATS subjects to ingest metrics from (needs the nats section)."""
    debug: MetricStoreDebugConfig = Field(default_factory=MetricStoreDebugConfig)
    """Debugging aids."""


#: Placeholders a Prometheus query template may use: ``{host}``, ``{hosts}`` and ``{cluster}``.
PROMETHEUS_PLACEHOLDERS = ("host", "hosts", "cluster")
#: A placeholder in a PromQL template: a bare name in braces, which PromQL itself never has (its
#: label matchers always carry an operator, as in ``{instance="x"}``).
PROMETHEUS_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_-]*)\}")


class ExternalMetricStoreConfig(_Section):
    """One external metric backend (an entry of ``metric-store-external``): a cc-metric-store or a Prometheus server."""

    scope: str
    """Which jobs use this store: "<cluster>-<subcluster>", "<cluster>" or "*" (tried in that order)."""
    url: str
    """Base URL of the store, e.g. "http://localhost:8082" (cc-metric-store) or "http://localhost:9090" (Prometheus)."""
    token: str | None = None
    """JWT sent to a cc-metric-store (required for that kind); for Prometheus an optional bearer token."""
    kind: Literal["cc-metric-store", "prometheus"] = "cc-metric-store"
    """What the store is: "cc-metric-store" or "prometheus" (node scope only, PromQL templates in queries). Extension of this implementation: upstream v1.5 only talks to cc-metric-store."""
    username: str | None = None
    """Prometheus only: user name for HTTP basic authentication (with password)."""
    password: str | None = None
    """Prometheus only: password for HTTP basic authentication (with username)."""
    timeout: PositiveGoDuration = timedelta(seconds=10)
    """How long one request to the store may take, e.g. "10s"."""
    queries: dict[str, str] | None = None
    """Prometheus only (required there): metric name -> PromQL template. Placeholders: ``{host}`` (one hostname, as is; one request per host), ``{hosts}`` (a regex alternation of the escaped hostnames, for ``=~``) and ``{cluster}``; e.g. ``{"cpu_load": "node_load1{instance=~\\"{hosts}:9100\\"}"}``. Several series of one host are combined by the metric's aggregation (sum or avg)."""
    host_label: str = "instance"
    """Prometheus only: the label of the query results that carries the hostname."""
    host_label_strip: str = ""
    """Prometheus only: a suffix removed from host-label values, e.g. ":9100"."""


_DEFAULT_METRICS = ["cpu_load", "flops_any", "mem_bw", "mem_used"]


class JobListUiConfig(_Section):
    """Job list defaults (``ui.job-list``)."""

    use_paging: bool = False
    """Page through jobs instead of loading more on scroll (UI key jobList_usePaging)."""
    show_footprint: bool = False
    """Show the footprint column (UI key jobList_showFootprint)."""


class NodeListUiConfig(_Section):
    """Node list defaults (``ui.node-list``)."""

    use_paging: bool = False
    """Page through nodes instead of loading more on scroll (UI key nodeList_usePaging)."""


class JobViewUiConfig(_Section):
    """Single-job view defaults (``ui.job-view``)."""

    show_polar_plot: bool = True
    """Show the polar plot (UI key jobView_showPolarPlot)."""
    show_footprint: bool = False
    """Show the footprint (UI key jobView_showFootprint)."""
    show_roofline: bool = True
    """Show the roofline plot (UI key jobView_showRoofline)."""
    show_stat_table: bool = True
    """Show the statistics table (UI key jobView_showStatTable)."""


class SubClusterMetricConfig(_Section):
    """Metric selection for one subcluster; unset lists inherit the cluster's."""

    name: str
    """Subcluster name."""
    job_list_metrics: list[str] | None = None
    """Metrics shown in the job list."""
    job_view_plot_metrics: list[str] | None = None
    """Metrics plotted in the job view."""
    job_view_table_metrics: list[str] | None = None
    """Metrics in the job view's statistics table."""


class ClusterMetricConfig(_Section):
    """Metric selection for one cluster; unset lists inherit the global ones."""

    name: str
    """Cluster name."""
    job_list_metrics: list[str] | None = None
    """Metrics shown in the job list."""
    job_view_plot_metrics: list[str] | None = None
    """Metrics plotted in the job view."""
    job_view_table_metrics: list[str] | None = None
    """Metrics in the job view's statistics table."""
    sub_clusters: list[SubClusterMetricConfig] = Field(default_factory=list)
    """Per-subcluster overrides."""


class MetricConfigUi(_Section):
    """Default metric selections (``ui.metric-config``)."""

    job_list_metrics: list[str] = Field(default_factory=lambda: list(_DEFAULT_METRICS))
    """Metrics shown in the job list (UI key metricConfig_jobListMetrics)."""
    job_view_plot_metrics: list[str] = Field(default_factory=lambda: list(_DEFAULT_METRICS))
    """Metrics plotted in the job view (UI key metricConfig_jobViewPlotMetrics)."""
    job_view_table_metrics: list[str] = Field(default_factory=lambda: ["flops_any", "mem_bw", "mem_used"])
    """Metrics in the job view's statistics table (UI key metricConfig_jobViewTableMetrics)."""
    clusters: list[ClusterMetricConfig] = Field(default_factory=list)
    """Per-cluster overrides (UI keys suffixed ":<cluster>" and ":<cluster>:<subcluster>")."""


class PlotConfiguration(_Section):
    """Plot look (``ui.plot-configuration``)."""

    color_background: bool = True
    """Colour plot backgrounds by how a value compares to the metric's thresholds."""
    plots_per_row: int = Field(default=3, ge=1)
    """Number of plots per row."""
    line_width: int = Field(default=3, ge=1)
    """Line width of plots in pixels."""
    color_scheme: list[str] = Field(default_factory=lambda: ["#00bfff", "#0000ff", "#ff00ff", "#ff0000", "#ff8000", "#ffff00", "#80ff00"])
    """Colours of the series, in order."""


class UiConfig(_Section):
    """The ``ui`` section: defaults of the web UI that users can override per account."""

    job_list: JobListUiConfig = Field(default_factory=JobListUiConfig)
    """Job list defaults."""
    node_list: NodeListUiConfig = Field(default_factory=NodeListUiConfig)
    """Node list defaults."""
    job_view: JobViewUiConfig = Field(default_factory=JobViewUiConfig)
    """Single-job view defaults."""
    metric_config: MetricConfigUi = Field(default_factory=MetricConfigUi)
    """Default metric selections."""
    plot_configuration: PlotConfiguration = Field(default_factory=PlotConfiguration)
    """Plot look."""


def _default_archive() -> ArchiveConfig:
    return ArchiveConfig(kind="file", path="./var/job-archive")


class Config(_Section):
    """The whole configuration (``config.json``): one field per upstream v1.5 section."""

    main: MainConfig = Field(default_factory=MainConfig)
    """Server, database and general behaviour (required in a config file)."""
    auth: AuthConfig = Field(default_factory=AuthConfig)
    """Authentication: JWT, LDAP, OpenID Connect."""
    archive: ArchiveConfig = Field(default_factory=_default_archive)
    """Job archive; default {"kind": "file", "path": "./var/job-archive"}."""
    cron: CronConfig = Field(default_factory=CronConfig)
    """Background worker intervals."""
    nats: NatsConfig | None = None
    """NATS connection; unset disables NATS."""
    metric_store: MetricStoreConfig | None = None
    """Built-in metric store; unset disables it."""
    metric_store_external: list[ExternalMetricStoreConfig] = Field(default_factory=list)
    """External cc-metric-store instances by scope."""
    ui: UiConfig = Field(default_factory=UiConfig)
    """Web UI defaults."""

    _source: Path | None = PrivateAttr(default=None)

    @property
    def source(self) -> Path | None:
        """The config file this was read from, or None when defaults were used."""
        return self._source

    def database_url(self) -> str:
        """SQLAlchemy URL of the job database; see ``MainConfig.database_url``."""
        return self.main.database_url()


SECTIONS: tuple[str, ...] = tuple(f.alias or name for name, f in Config.model_fields.items())
