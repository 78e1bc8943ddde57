"""Typed configuration: upstream v1.5 ``config.json`` sections, the v1.0 flat layout, ``-file`` includes and ``.env`` secrets."""

from __future__ import annotations

import dataclasses
import ipaddress
import difflib
import json
import logging
import math
import os
import re
import types
import typing
from collections.abc import Mapping, MutableMapping
from datetime import timedelta
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin
from urllib.parse import parse_qsl

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

from cc_backend.errors import ConfigError

log = logging.getLogger("cc_backend.config")

#: Where ``load_config(None)`` looks; relative to the working directory, as upstream's ``-config`` default.
DEFAULT_CONFIG_PATH = Path("config.json")
#: Where ``load_env()`` looks by default.
DEFAULT_ENV_PATH = Path(".env")

# --------------------------------------------------------------------------------------------------
# Go durations
# --------------------------------------------------------------------------------------------------

_DURATION_UNITS_NS: dict[str, int] = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign
    "\u03bcs": 1_000,  # Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
_DURATION_PART = re.compile(r"(\d*)(?:\.(\d*))?(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


def parse_go_duration(text: str) -> timedelta:
    """Parse a Go ``time.ParseDuration`` string ("2000h", "1h30m", "500ms", "-1.5h") into a timedelta.

    Raises ``ValueError`` with a message that says what was wrong; sub-microsecond parts are rounded
    because timedelta cannot hold nanoseconds.
    """
    if not isinstance(text, str):
        raise TypeError(f"expected a duration string, got {type(text).__name__}")
    original = text
    sign = 1
    if text and text[0] in "+-":
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if text == "0":
        return timedelta(0)
    if not text:
        raise ValueError('invalid duration "": empty')
    total = Fraction(0)
    pos = 0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if match is None or (not match.group(1) and not match.group(2)):
            number = re.match(r"[\d.]*\d[\d.]*([^\d.]*)", text[pos:])
            if number and not number.group(1):
                raise ValueError(f"invalid duration {json.dumps(original)}: missing unit (use one of h, m, s, ms, us, ns)")
            if number:
                raise ValueError(f"invalid duration {json.dumps(original)}: unknown unit {json.dumps(number.group(1))} (use one of h, m, s, ms, us, ns)")
            raise ValueError(f'invalid duration {json.dumps(original)}: expected a number followed by a unit (h, m, s, ms, us, ns), e.g. "1h30m"')
        whole, frac, unit = match.group(1) or "0", match.group(2) or "", match.group(3)
        value = Fraction(int(whole)) + (Fraction(int(frac), 10 ** len(frac)) if frac else 0)
        total += value * _DURATION_UNITS_NS[unit]
        pos = match.end()
    return timedelta(microseconds=sign * round(total / 1000))


def format_go_duration(value: timedelta) -> str:
    """Format a timedelta the way a human writes a Go duration ("2000h", "1h30m", "1.5s", "500ms"), parseable by Go."""
    micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    if micros == 0:
        return "0s"
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    if micros < 1_000_000:
        return f"{sign}{micros // 1000}ms" if micros % 1000 == 0 else f"{sign}{micros}us"
    hours, rest = divmod(micros, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    out = sign + (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    if rest:
        seconds, frac = divmod(rest, 1_000_000)
        out += f"{seconds}.{frac:06d}".rstrip("0").rstrip(".") + "s" if frac else f"{seconds}s"
    return out


def _duration_validator(*, positive: bool) -> BeforeValidator:
    def validate(value: Any) -> timedelta:
        if isinstance(value, timedelta):
            parsed = value
        elif isinstance(value, bool) or not isinstance(value, str):
            hint = f' (a bare number has no unit; write e.g. "{value}s")' if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
            raise PydanticCustomError("go_duration", 'expected a Go duration string such as "1h30m", got {got}{hint}', {"got": _show(value), "hint": hint})
        else:
            try:
                parsed = parse_go_duration(value)
            except ValueError as exc:
                raise PydanticCustomError("go_duration", "{reason}", {"reason": str(exc)}) from None
        if parsed < timedelta(0) or (positive and parsed == timedelta(0)):
            need = "a positive duration" if positive else "a duration that is not negative"
            raise PydanticCustomError("go_duration", "expected {need}, got {got}", {"need": need, "got": _show(value)})
        return parsed

    return BeforeValidator(validate)


_DURATION_SCHEMA = WithJsonSchema({"type": "string", "format": "go-duration", "examples": ["1h30m", "10m", "500ms"]})
_DURATION_SERIALIZER = PlainSerializer(format_go_duration, return_type=str)

#: A Go duration string ("2000h", "1m", "1h30m", "500ms") that may be zero but not negative.
GoDuration = Annotated[timedelta, _duration_validator(positive=False), _DURATION_SERIALIZER, _DURATION_SCHEMA]
#: A Go duration string that must be greater than zero (intervals, lifetimes).
PositiveGoDuration = Annotated[timedelta, _duration_validator(positive=True), _DURATION_SERIALIZER, _DURATION_SCHEMA]


# --------------------------------------------------------------------------------------------------
# MySQL DSN (our extension: upstream v1.5 is SQLite-only, v1.0 took a go-sql-driver DSN)
# --------------------------------------------------------------------------------------------------

# go-sql-driver/mysql form: [user[:password]@][net[(addr)]]/dbname[?params]. The password part is
# greedy so that it may contain '@', ':' and '/'; backtracking picks the last '@' that still leaves a
# valid address and database name behind it, which is what the Go parser does.
_GO_DSN = re.compile(
    r"^(?:(?P<user>[^:@]*)(?::(?P<password>.*))?@)?"
    r"(?:(?P<net>[A-Za-z0-9]+)(?:\((?P<addr>[^)]*)\))?)?"
    r"/(?P<dbname>[^?/]*)(?:\?(?P<params>.*))?$",
    re.DOTALL,
)
# go-sql-driver parameters that mean something to PyMySQL, with PyMySQL's name.
_DSN_PARAM_MAP = {"charset": "charset", "collation": "collation", "timeout": "connect_timeout", "readTimeout": "read_timeout", "writeTimeout": "write_timeout"}


@dataclasses.dataclass(frozen=True)
class MySQLTarget:
    """The parts of a MySQL connection, whichever syntax ``main.db`` used."""

    username: str | None
    password: str | None
    host: str | None
    port: int | None
    database: str
    query: dict[str, str]
    #: DSN parameters that have no PyMySQL equivalent and were left out.
    dropped: tuple[str, ...] = ()


def parse_mysql_db(db: str) -> MySQLTarget:
    """Parse ``main.db`` for ``db-driver: mysql``: a go-sql-driver DSN or a ``mysql[+pymysql]://`` URL.

    Raises ``ValueError`` naming what is wrong.
    """
    if "://" in db:
        return _parse_mysql_url(db)
    match = _GO_DSN.match(db)
    if match is None:
        raise ValueError(
            f'expected a MySQL DSN like "user:password@tcp(host:3306)/dbname" or a URL like "mysql+pymysql://user:password@host:3306/dbname", got {_show(db)}'
        )
    net = match.group("net") or "tcp"
    addr = match.group("addr")
    host: str | None
    port: int | None = None
    query: dict[str, str] = {}
    if net == "unix":
        if not addr:
            raise ValueError('unix(...) needs the socket path, e.g. "user:pw@unix(/run/mysqld/mysqld.sock)/dbname"')
        host = None
        query["unix_socket"] = addr
    elif net in ("tcp", "tcp6"):
        host, port = _split_host_port(addr or "127.0.0.1:3306")
    else:
        raise ValueError(f"unsupported network {_show(net)} in MySQL DSN (expected tcp or unix)")
    if not match.group("dbname"):
        raise ValueError('the MySQL DSN names no database (expected ".../dbname")')
    dropped: list[str] = []
    for key, value in parse_qsl(match.group("params") or "", keep_blank_values=True):
        target = _DSN_PARAM_MAP.get(key)
        if target is None:
            dropped.append(key)
        elif target == "charset":
            # Go accepts a fallback list ("utf8mb4,utf8"); PyMySQL takes exactly one charset.
            query[target] = value.split(",")[0]
        elif target.endswith("timeout"):
            try:
                seconds = parse_go_duration(value).total_seconds()
            except ValueError as exc:
                raise ValueError(f"DSN parameter {key}: {exc}") from None
            query[target] = str(max(1, math.ceil(seconds)))
        else:
            query[target] = value
    query.setdefault("charset", "utf8mb4")
    return MySQLTarget(match.group("user") or None, match.group("password"), host, port, match.group("dbname"), query, tuple(dropped))


def _parse_mysql_url(db: str) -> MySQLTarget:
    from sqlalchemy.engine import make_url  # lazy: importing SQLAlchemy costs ~180 ms, only needed here
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(db)
    except ArgumentError as exc:
        raise ValueError(f"not a valid SQLAlchemy URL: {exc}") from None
    if url.get_backend_name() not in ("mysql", "mariadb"):
        raise ValueError(f'expected a mysql:// or mysql+pymysql:// URL for db-driver "mysql", got scheme {_show(url.drivername)}')
    if url.get_driver_name() not in ("pymysql", "mysqldb") and "+" in url.drivername:
        raise ValueError(f"only the pymysql driver is installed, got {_show(url.drivername)}")
    if not url.database:
        raise ValueError('the MySQL URL names no database (expected ".../dbname")')
    query = {k: v if isinstance(v, str) else v[-1] for k, v in url.query.items()}
    query.setdefault("charset", "utf8mb4")
    return MySQLTarget(url.username, url.password, url.host, url.port, url.database, query)


def _split_host_port(addr: str) -> tuple[str, int | None]:
    if addr.startswith("["):  # [ipv6]:port
        host, _, rest = addr[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = addr.rpartition(":") if ":" in addr else (addr, "", "")
    if port_text and not port_text.isdigit():
        raise ValueError(f"invalid port {_show(port_text)} in MySQL address {_show(addr)}")
    return host or "127.0.0.1", int(port_text) if port_text else 3306


def mysql_url(db: str) -> str:
    """The SQLAlchemy URL (``mysql+pymysql://...``) for a ``main.db`` DSN or URL; special characters are escaped."""
    from sqlalchemy.engine import URL  # lazy, see _parse_mysql_url

    target = parse_mysql_db(db)
    url = URL.create("mysql+pymysql", target.username, target.password, target.host, target.port, target.database, target.query)
    return url.render_as_string(hide_password=False)


# --------------------------------------------------------------------------------------------------
# Section models
# --------------------------------------------------------------------------------------------------


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
                                          "got {got}", {"got": _show(entry)}) from None
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
                "ldap_bind", "expected a DN template containing {placeholder}, got {got}", {"placeholder": '"{username}"', "got": _show(value)}
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


class ExternalMetricStoreConfig(_Section):
    """One external cc-metric-store (an entry of ``metric-store-external``)."""

    scope: str
    """Which jobs use this store: "<cluster>-<subcluster>", "<cluster>" or "*" (tried in that order)."""
    url: str
    """Base URL of the cc-metric-store, e.g. "http://localhost:8082"."""
    token: str
    """JWT sent to the store."""


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


# --------------------------------------------------------------------------------------------------
# .env secrets
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Secrets:
    """Secrets from the environment and ``.env``; empty values count as unset."""

    JWT_PUBLIC_KEY: str | None = None
    """Base64 Ed25519 public key verifying this server's JWTs."""
    JWT_PRIVATE_KEY: str | None = None
    """Base64 Ed25519 private key (64 bytes, Go layout) signing this server's JWTs."""
    SESSION_KEY: str | None = None
    """Base64 secret for session cookies; required when authentication is enabled."""
    LDAP_ADMIN_PASSWORD: str | None = None
    """Bind password of auth.ldap.search-dn."""
    CROSS_LOGIN_JWT_PUBLIC_KEY: str | None = None
    """Base64 Ed25519 public key of the trusted external JWT issuer."""
    CROSS_LOGIN_JWT_HS512_KEY: str | None = None
    """Base64 HMAC key of HS256/HS512 login tokens (/jwt-login); unset disables them."""
    OID_CLIENT_ID: str | None = None
    """OpenID Connect client id."""
    OID_CLIENT_SECRET: str | None = None
    """OpenID Connect client secret."""
    source: Path | None = None
    """The .env file that was read, or None if there was none."""

    def __repr__(self) -> str:
        # Never print secret values (tracebacks, debug logs); say only which are set.
        shown = ", ".join(f"{f.name}={'***' if getattr(self, f.name) else None}" for f in dataclasses.fields(self) if f.name != "source")
        return f"Secrets({shown}, source={self.source!r})"


SECRET_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Secrets) if f.name != "source")


def load_env(path: str | os.PathLike[str] = DEFAULT_ENV_PATH, *, environ: MutableMapping[str, str] | None = None) -> Secrets:
    """Read ``.env`` into ``environ`` (default ``os.environ``) without overriding variables already set, and return the secrets.

    A missing file is fine (upstream v1.5 aborts; v1.0 did not): everything can come from the real
    environment, e.g. systemd ``EnvironmentFile`` or container secrets.
    """
    from dotenv import dotenv_values  # lazy: only needed when .env is read

    env = os.environ if environ is None else environ
    env_path = Path(path)
    source: Path | None = None
    if env_path.is_file():
        try:
            values = dotenv_values(env_path)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{env_path}: cannot read: {exc}") from None
        source = env_path
        for key, value in values.items():
            # Like godotenv.Load upstream: the file fills gaps, the real environment wins.
            if value is not None and key not in env:
                env[key] = value
    elif env_path.exists():
        raise ConfigError(f"{env_path}: expected a file of KEY=value lines, found something else")
    return Secrets(**{name: env.get(name) or None for name in SECRET_NAMES}, source=source)


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------

Loc = tuple[str | int, ...]

# Keys that older upstream versions wrote inside v1.5 sections: old name -> new name (None = ignored).
_LEGACY_KEYS: dict[Loc, dict[str, str | None]] = {
    ("archive",): {"dbPath": "db-path", "accessKey": "access-key", "secretKey": "secret-key", "usePathStyle": "use-path-style"},
    ("archive", "retention"): {"includeDB": "include-db", "location": "target-path"},
}

# v1.0 flat keys that became main.<same key>.
_FLAT_MAIN_KEYS = frozenset({
    "addr", "user", "group", "disable-authentication", "embed-static-files", "static-files", "db-driver", "db", "validate",
    "session-max-age", "https-cert-file", "https-key-file", "redirect-http-to", "machine-state-dir",
    "stop-jobs-exceeding-walltime", "short-running-jobs-duration",
})  # fmt: skip
_FLAT_RENAMED_MAIN = {"apiAllowedIPs": "api-allowed-ips"}
_FLAT_IGNORED = {
    "disable-archive": "v1.5 always writes the job archive",
    "ui-defaults": "v1.5 does not honour the v1.0 per-user UI keys; configure the ui section instead",
}
_FLAT_LDAP = {
    "url": "url", "user_base": "user-base", "search_dn": "search-dn", "user_bind": "user-bind", "user_filter": "user-filter",
    "username_attr": "username-attr", "uid_attr": "uid-attr", "sync_interval": "sync-interval",
    "sync_del_old_users": "sync-del-old-users", "syncUserOnLogin": "sync-user-on-login", "updateUserOnLogin": "update-user-on-login",
}  # fmt: skip
_FLAT_JWTS = {
    "max-age": "max-age", "cookieName": "cookie-name", "forceJWTValidationViaDatabase": "validate-user", "validateUser": "validate-user",
    "trustedExternalIssuer": "trusted-issuer", "trustedIssuer": "trusted-issuer", "syncUserOnLogin": "sync-user-on-login",
    "updateUserOnLogin": "update-user-on-login",
}  # fmt: skip
_FLAT_DETECT = _FLAT_MAIN_KEYS | _FLAT_RENAMED_MAIN.keys() | _FLAT_IGNORED.keys() | {"ldap", "jwts", "clusters", "job-archive"}


class _Problems:
    """Collects (file, key path, message) triples so that one ConfigError can report all of them."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str, str]] = []

    def add(self, file: str, loc: Loc, message: str) -> None:
        self.items.append((file, _format_loc(loc), message))

    def raise_if_any(self) -> None:
        if self.items:
            lines = [f"{file}: {path}: {msg}" if path else f"{file}: {msg}" for file, path, msg in self.items]
            raise ConfigError("\n".join(lines), field=self.items[0][1] or None)


def _format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _show(value: Any) -> str:
    """A short JSON rendering of a config value for error messages."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    if isinstance(value, Mapping):
        return f"an object {text}"
    if isinstance(value, (list, tuple)):
        return f"a list {text}"
    return text


class _Source:
    """A JSON document being loaded: its label for messages and the directory includes are relative to."""

    def __init__(self, label: str, base_dir: Path) -> None:
        self.label = label
        self.base_dir = base_dir


def _read_json(path: Path, label: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{label}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{label}: expected a JSON file, found a directory") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{label}: cannot read: {exc}") from None
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for key, value in items:
            if key in obj:
                duplicates.append(key)
            obj[key] = value
        return obj

    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    try:
        data = json.loads(text, object_pairs_hook=pairs, parse_constant=no_constants)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{label}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except ValueError as exc:
        raise ConfigError(f"{label}: invalid JSON: {exc}") from None
    if duplicates:
        # Go's decoder also keeps the last value; say so because it is usually an editing mistake.
        log.warning("%s: duplicate keys %s; the last value of each is used", label, ", ".join(sorted(set(duplicates))))
    return data


def load_config(path: str | os.PathLike[str] | None = None, *, environ: Mapping[str, str] | None = None) -> Config:
    """Load and validate ``config.json``.

    ``path=None`` means ``./config.json`` if it exists and the built-in defaults otherwise, so that
    commands such as ``--version`` or ``gen-keypair`` work anywhere. An explicitly given path that does
    not exist is an error. Relative paths *inside* the config (db, archive path, ...) are resolved
    against the working directory, like upstream; ``<section>-file`` includes are resolved against the
    config file's directory. Raises ConfigError naming file, key path and expectation.
    """
    explicit = path is not None
    config_path = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    if not explicit and not config_path.exists():
        log.info("no %s in %s; using the built-in defaults", config_path, Path.cwd())
        return Config()
    if explicit and not config_path.exists():
        raise ConfigError(f"{config_path}: configuration file not found")
    data = _read_json(config_path, str(config_path))
    config = parse_config(data, filename=str(config_path), base_dir=config_path.parent, environ=environ)
    config._source = config_path
    return config


def parse_config(data: Any, *, filename: str = "config.json", base_dir: str | os.PathLike[str] = ".", environ: Mapping[str, str] | None = None) -> Config:
    """Validate an already decoded ``config.json`` document; ``filename`` labels messages, ``base_dir`` anchors includes."""
    env = os.environ if environ is None else environ
    top = _Source(filename, Path(base_dir))
    if not isinstance(data, dict):
        raise ConfigError(f'{filename}: expected a JSON object with sections such as "main", got {_show(data)}')
    problems = _Problems()
    sections, section_files = _resolve_includes(data, top, problems)
    problems.raise_if_any()

    loc_map: dict[Loc, Loc] = {}
    if "main" not in sections and _FLAT_DETECT & sections.keys():
        sections, loc_map = _map_flat(sections, filename, env, problems)
        problems.raise_if_any()
    else:
        for key in list(sections):
            if key not in SECTIONS:
                problems.add(section_files.get(key, filename), (key,), _unknown_top_level(key))
        if "main" not in sections:
            problems.add(filename, ("main",), 'required section is missing (upstream: "main configuration must be present")')
        problems.raise_if_any()

    _apply_legacy_keys(sections, section_files, filename)
    try:
        config = Config.model_validate(sections, by_alias=True, by_name=False)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            loc: Loc = tuple(err["loc"])
            file = section_files.get(str(loc[0]), filename) if loc else filename
            problems.add(file, _translate_loc(loc, loc_map), _describe_error(err))
        problems.raise_if_any()
        raise  # unreachable: every ValidationError has at least one error
    for loc, message in _semantic_problems(config):
        file = section_files.get(str(loc[0]), filename)
        problems.add(file, _translate_loc(loc, loc_map), message)
    problems.raise_if_any()
    return config


def _unknown_top_level(key: str) -> str:
    if key in _FLAT_MAIN_KEYS or key in _FLAT_RENAMED_MAIN:
        return f'unknown top-level key; this v1.0 key belongs in the "main" section since v1.5 (as "{_FLAT_RENAMED_MAIN.get(key, key)}")'
    if key in ("ldap", "jwts"):
        return f'unknown top-level key; since v1.5 this is "auth.{key}"'
    if key == "clusters":
        return 'unknown top-level key; since v1.5 clusters come from the job archive (cluster.json) and metric stores from "metric-store-external"'
    if key.endswith("-file"):
        return f'unknown include: "{key[:-5]}" is not a section (sections: {", ".join(SECTIONS)})'
    return f"unknown top-level key{_did_you_mean(key, SECTIONS)} (sections: {', '.join(SECTIONS)}, or <section>-file)"


def _did_you_mean(key: str, choices: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(choices), n=1, cutoff=0.7)
    return f'; did you mean "{close[0]}"?' if close else ""


def _resolve_includes(data: dict[str, Any], top: _Source, problems: _Problems) -> tuple[dict[str, Any], dict[str, str]]:
    """Replace ``<section>-file`` keys by the sections they name; returns the sections and the file each came from."""
    sections: dict[str, Any] = {}
    files: dict[str, str] = {}
    for key, value in data.items():
        section = key[:-5] if key.endswith("-file") else None
        if section is None or section not in SECTIONS:
            sections.setdefault(key, value)
            continue
        if section in data:
            problems.add(top.label, (key,), f'section "{section}" is given both inline and in {key}; keep one')
            continue
        if not isinstance(value, str) or not value:
            problems.add(top.label, (key,), f'expected the path of a JSON file holding the "{section}" section, got {_show(value)}')
            continue
        include = top.base_dir / value  # relative to the config file (upstream: working directory)
        try:
            sections[section] = _read_json(include, str(include))
        except ConfigError as exc:
            problems.add(top.label, (key,), f'cannot load the "{section}" section: {exc.message}')
            continue
        files[section] = str(include)
    return sections, files


def _apply_legacy_keys(sections: dict[str, Any], section_files: dict[str, str], filename: str) -> None:
    """Rename or drop keys older upstream versions wrote, with a warning naming each."""
    for loc, renames in _LEGACY_KEYS.items():
        node: Any = sections
        for part in loc:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            continue
        file = section_files.get(str(loc[0]), filename)
        for old, new in renames.items():
            if old not in node:
                continue
            value = node.pop(old)
            where = _format_loc(loc + (old,))
            if new is None:
                log.warning("%s: %s is a legacy key and is ignored", file, where)
            elif new in node:
                log.warning("%s: %s is a legacy key; ignored because %s is also set", file, where, _format_loc(loc + (new,)))
            else:
                node[new] = value
                # Upstream ignores retention.location; we read it as target-path so that configs
                # written for older versions keep moving jobs where they did before.
                log.warning("%s: %s is a legacy key; read as %s", file, where, _format_loc(loc + (new,)))


def _map_flat(flat: dict[str, Any], filename: str, env: Mapping[str, str], problems: _Problems) -> tuple[dict[str, Any], dict[Loc, Loc]]:
    """Map the v1.0 flat layout onto v1.5 sections; returns them with a v1.5 -> v1.0 key-path map for messages."""
    out: dict[str, Any] = {}
    main: dict[str, Any] = {}
    loc_map: dict[Loc, Loc] = {}
    mapped: list[str] = []
    ignored: list[str] = []
    for key, value in flat.items():
        if key in _FLAT_MAIN_KEYS or key in _FLAT_RENAMED_MAIN:
            new = _FLAT_RENAMED_MAIN.get(key, key)
            if key == "db" and isinstance(value, str) and value.startswith("env:"):
                var = value[4:]
                if var not in env:
                    problems.add(filename, ("db",), f'environment variable {var} named by "{value}" is not set')
                    continue
                value = env[var]
                mapped.append(f"db (from ${var}) -> main.db")
            else:
                mapped.append(f"{key} -> main.{new}")
            main[new] = value
            loc_map[("main", new)] = (key,)
        elif key in _FLAT_IGNORED:
            ignored.append(f"{key} ({_FLAT_IGNORED[key]})")
        elif key in ("archive", "job-archive"):
            if "archive" in out:
                problems.add(filename, (key,), 'both "archive" and "job-archive" are given; keep one')
                continue
            out["archive"] = value
            loc_map[("archive",)] = (key,)
            mapped.append(f"{key} -> archive")
        elif key in ("ldap", "jwts"):
            table = _FLAT_LDAP if key == "ldap" else _FLAT_JWTS
            out.setdefault("auth", {})[key] = _rename_keys(value, table, (key,), ("auth", key), filename, problems, loc_map)
            mapped.append(f"{key} -> auth.{key}")
        elif key == "clusters":
            out["metric-store-external"] = _map_clusters(value, filename, problems, loc_map, mapped, ignored)
        elif key in SECTIONS and key != "main":
            out[key] = value  # a v1.5 section next to flat keys: take it as it is
        else:
            problems.add(filename, (key,), f"unknown key in a v1.0 (flat) config{_did_you_mean(key, _FLAT_DETECT)}")
    out["main"] = main
    log.warning(
        "%s uses the v1.0 flat layout; mapped to v1.5: %s%s. Convert it to the v1.5 sections (main, auth, archive, ...) to silence this warning.",
        filename,
        ", ".join(mapped) or "nothing",
        f"; ignored: {', '.join(ignored)}" if ignored else "",
    )
    return out, loc_map


def _rename_keys(value: Any, table: Mapping[str, str], old_loc: Loc, new_loc: Loc, filename: str, problems: _Problems, loc_map: dict[Loc, Loc]) -> Any:
    if not isinstance(value, dict):
        loc_map[new_loc] = old_loc
        return value  # the model reports the type error, translated back to the old path
    loc_map[new_loc] = old_loc
    out: dict[str, Any] = {}
    for key, item in value.items():
        new = table.get(key)
        if new is None:
            problems.add(filename, old_loc + (key,), f"unknown key{_did_you_mean(key, table)} (expected one of: {', '.join(table)})")
            continue
        out[new] = item
        loc_map[new_loc + (new,)] = old_loc + (key,)
    return out


def _map_clusters(clusters: Any, filename: str, problems: _Problems, loc_map: dict[Loc, Loc], mapped: list[str], ignored: list[str]) -> list[dict[str, Any]]:
    if not isinstance(clusters, list):
        problems.add(filename, ("clusters",), f"expected a list of clusters, got {_show(clusters)}")
        return []
    stores: list[dict[str, Any]] = []
    for i, cluster in enumerate(clusters):
        loc: Loc = ("clusters", i)
        if not isinstance(cluster, dict):
            problems.add(filename, loc, f'expected an object with "name" and "metricDataRepository", got {_show(cluster)}')
            continue
        name = cluster.get("name")
        if not isinstance(name, str) or not name:
            problems.add(filename, loc + ("name",), f"expected the cluster name as a non-empty string, got {_show(name)}")
            continue
        for key in cluster:
            if key not in ("name", "metricDataRepository", "filterRanges"):
                problems.add(filename, loc + (key,), "unknown key (expected name, metricDataRepository, filterRanges)")
        if "filterRanges" in cluster:
            ignored.append(f"clusters[{i}].filterRanges (v1.5 derives filter ranges from the jobs)")
        repo = cluster.get("metricDataRepository")
        if repo is None:
            continue
        repo_loc = loc + ("metricDataRepository",)
        if not isinstance(repo, dict):
            problems.add(filename, repo_loc, f"expected an object, got {_show(repo)}")
            continue
        kind = repo.get("kind")
        if kind != "cc-metric-store":
            ignored.append(f"clusters[{i}].metricDataRepository (kind {_show(kind)}; v1.5 only talks to cc-metric-store)")
            continue
        extra = sorted(set(repo) - {"kind", "url", "token"})
        if extra:
            ignored.append(f"clusters[{i}].metricDataRepository.{{{', '.join(extra)}}}")
        entry = {"scope": name, "url": repo.get("url"), "token": repo.get("token", "")}
        if entry["url"] is None:
            del entry["url"]  # reported as missing by the model, at the v1.0 path
        j = len(stores)
        stores.append(entry)
        loc_map[("metric-store-external", j)] = repo_loc
        loc_map[("metric-store-external", j, "scope")] = loc + ("name",)
        mapped.append(f'clusters[{i}].metricDataRepository -> metric-store-external[{j}] (scope "{name}")')
    return stores


def _translate_loc(loc: Loc, loc_map: Mapping[Loc, Loc]) -> Loc:
    """Express a v1.5 key path in the v1.0 file's own terms when the file was flat."""
    for n in range(len(loc), 0, -1):
        old = loc_map.get(loc[:n])
        if old is not None:
            return old + loc[n:]
    return loc


def _field_model(annotation: Any) -> type[BaseModel] | None:
    """The section model inside an annotation such as ``X | None`` or ``list[X]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, Annotated):
        for arg in get_args(annotation):
            found = _field_model(arg)
            if found is not None:
                return found
    return None


def _model_at(loc: Loc) -> type[BaseModel] | None:
    model: type[BaseModel] | None = Config
    for part in loc:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        field = next((f for name, f in model.model_fields.items() if (f.alias or name) == part), None)
        model = _field_model(field.annotation) if field is not None else None
    return model


_EXPECTED = {
    "string_type": "expected a string",
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "int_from_float": "expected an integer",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "list_type": "expected a list",
    "model_type": "expected an object",
    "dict_type": "expected an object",
    "model_attributes_type": "expected an object",
}
_BOUNDS = {"greater_than_equal": ("ge", ">="), "greater_than": ("gt", ">"), "less_than_equal": ("le", "<="), "less_than": ("lt", "<")}


def _describe_error(err: Mapping[str, Any]) -> str:
    kind = err["type"]
    got = _show(err.get("input"))
    ctx = err.get("ctx") or {}
    if kind in _EXPECTED:
        return f"{_EXPECTED[kind]}, got {got}"
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        loc = tuple(err["loc"])
        model = _model_at(loc[:-1])
        keys = [f.alias or n for n, f in model.model_fields.items()] if model else []
        return f"unknown key{_did_you_mean(str(loc[-1]), keys)}" + (f" (expected one of: {', '.join(keys)})" if keys else "")
    if kind == "literal_error":
        return f"expected one of {ctx.get('expected')}, got {got}"
    if kind in _BOUNDS:
        key, op = _BOUNDS[kind]
        return f"expected a value {op} {ctx.get(key)}, got {got}"
    if kind == "too_short":
        return f"expected at least {ctx.get('min_length')} item(s), got {got}"
    message = str(err.get("msg", "invalid value"))
    return message.removeprefix("Value error, ")


def _semantic_problems(config: Config) -> list[tuple[Loc, str]]:
    """Checks that span several keys, reported at the key that is missing or wrong."""
    found: list[tuple[Loc, str]] = []
    archive = config.archive
    need = {"file": ("path", archive.path), "sqlite": ("db-path", archive.db_path), "s3": ("bucket", archive.bucket)}[archive.kind]
    if not need[1]:
        found.append((("archive", need[0]), f'required when kind is "{archive.kind}"'))
    retention = archive.retention
    if retention is not None and retention.policy != "none":
        if retention.age <= 0:
            found.append((("archive", "retention", "age"), f'expected a number of days > 0 when policy is "{retention.policy}" (0 would act on every job)'))
        if retention.policy in ("copy", "move"):
            found.extend(_target_problems(("archive", "retention"), retention.target_kind, retention.target_path, retention.target_bucket, retention.policy))
    state = config.main.nodestate_retention
    if state is not None and state.policy == "move":
        found.extend(_target_problems(("main", "nodestate-retention"), state.target_kind, state.target_path, state.target_bucket, state.policy))
    if bool(config.main.https_cert_file) != bool(config.main.https_key_file):
        missing = "https-key-file" if config.main.https_cert_file else "https-cert-file"
        found.append((("main", missing), "required when the other of https-cert-file/https-key-file is set"))
    store = config.metric_store
    if store is not None and store.cleanup.mode == "archive" and not store.cleanup.directory:
        found.append((("metric-store", "cleanup", "directory"), 'required when mode is "archive"'))
    seen: dict[str, int] = {}
    for i, entry in enumerate(config.metric_store_external):
        if entry.scope in seen:
            found.append((("metric-store-external", i, "scope"), f'duplicate scope "{entry.scope}" (also in entry {seen[entry.scope]})'))
        seen.setdefault(entry.scope, i)
    return found


def _target_problems(loc: Loc, kind: str, path: str | None, bucket: str | None, policy: str) -> list[tuple[Loc, str]]:
    if kind == "file" and not path:
        return [(loc + ("target-path",), f'required when policy is "{policy}" and target-kind is "file"')]
    if kind == "s3" and not bucket:
        return [(loc + ("target-bucket",), f'required when policy is "{policy}" and target-kind is "s3"')]
    return []
