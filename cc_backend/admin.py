"""Administrative operations shared by the CLI flags and subcommands: version, init, tokens."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cc_backend import __version__
from cc_backend.errors import ConfigError

if TYPE_CHECKING:
    from cc_backend.runtime import Runtime

ARCHIVE_VERSION = 3


@dataclass
class VersionInfo:
    program: str
    schema_version: int
    archive_version: int
    database_version: int | None
    database_dirty: bool
    database_url: str | None
    archive_path_version: int | None

    def to_json(self) -> dict:
        return self.__dict__.copy()


def version_info(runtime: "Runtime") -> VersionInfo:
    """Program, supported schema and archive versions, and what the configured database/archive hold."""
    from cc_backend.db.migrate import read_version
    from cc_backend.db.tables import SCHEMA_VERSION

    db_version, dirty, url, archive_version = None, False, None, None
    try:
        url = runtime.database_url
        if not url.startswith("sqlite:///") or Path(url.removeprefix("sqlite:///")).is_file():
            with runtime.raw_engine.connect() as conn:
                db_version, dirty = read_version(conn)
    except Exception:  # --version must work with a broken or unreachable database
        pass
    try:
        version_file = Path(runtime.config.archive.path or "") / "version.txt"
        archive_version = int(version_file.read_text().strip())
    except Exception:
        pass
    return VersionInfo(__version__, SCHEMA_VERSION, ARCHIVE_VERSION, db_version, dirty, _redact(url),
                       archive_version)


def _redact(url: str | None) -> str | None:
    if url is None:
        return None
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def init_here(directory: Path) -> list[Path]:
    """``--init``: config.json, .env, var/job-archive and a migrated var/job.db in ``directory``."""
    from cc_backend.db.engine import make_engine
    from cc_backend.db.migrate import migrate
    from cc_backend.project_init import init_db_path, init_project

    created = init_project(directory)
    db_path = init_db_path(directory)
    engine = make_engine(f"sqlite:///{db_path}")
    try:
        migrate(engine)
    finally:
        engine.dispose()
    return [*created, db_path]


def user_token(runtime: "Runtime", username: str) -> tuple[str, list[str]]:
    """A signed API token for an existing user (upstream -jwt); returns (token, warnings)."""
    from cc_backend.auth.keys import issue_jwt
    from cc_backend.auth.users import get_user

    user = get_user(runtime.engine, username)
    key = runtime.secrets.JWT_PRIVATE_KEY
    if not key:
        raise ConfigError("JWT_PRIVATE_KEY is not set (in .env or the environment): run `cc-backend gen-keypair`")
    jwts = runtime.config.auth.jwts
    max_age = jwts.max_age if jwts is not None else None
    warnings = []
    if "api" not in user.roles:
        warnings.append(f"user {username!r} does not have the api role: the token will not open /api/")
    return issue_jwt(user.username, user.roles, key, max_age), warnings


def ldap_directory(runtime: "Runtime"):  # type: ignore[no-untyped-def]
    """The configured LDAP directory (``auth.ldap``), or a ConfigError saying what is missing."""
    from cc_backend.auth.ldap import LdapDirectory

    if runtime.config.auth.ldap is None:
        raise ConfigError("auth.ldap is not configured")
    return LdapDirectory(runtime.config.auth.ldap, runtime.secrets.LDAP_ADMIN_PASSWORD)
