"""Users, roles and manager projects in the ``hpc_user`` table, with upstream's rules.

Every front end (``cc-backend user ...``, the ``-add-user``/``-del-user`` flags, the admin
REST routes, GraphQL) goes through these functions, so the rules live here once:

* roles are ``api``, ``user``, ``manager``, ``support``, ``admin`` (lower case); adding an
  invalid or already held role fails, removing a role the user does not hold fails, and
  ``manager`` cannot be removed while the user still manages projects;
* only managers have projects; adding a project twice or removing one that is not assigned fails;
* usernames are 1..100 characters, without whitespace or ``:`` (``:`` separates the fields of
  ``-add-user name:roles:password``);
* roles and projects are stored as compact JSON arrays (``["admin","api"]``), exactly as
  upstream writes them, so a database can move between both implementations; passwords are
  bcrypt hashes (Go's ``$2a$`` and Python's ``$2b$`` prefixes verify on both sides).

Each function runs one short transaction; read-modify-write updates lock the row
(``SELECT ... FOR UPDATE`` on MariaDB, SQLite serialises writers anyway).
"""

from __future__ import annotations

import enum
import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import bcrypt
from sqlalchemy import Engine, and_, delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from cc_backend.db.engine import connection_for
from cc_backend.db.limits import check_text, varchar_length
from cc_backend.db.tables import configuration_table, job_table, user_table
from cc_backend.errors import Conflict, InvalidInput, NotFound

log = logging.getLogger(__name__)

BCRYPT_ROUNDS: int = int(os.environ.get("CC_BCRYPT_ROUNDS", "12"))
"""bcrypt cost factor for new hashes: 12 (Go's ``bcrypt.DefaultCost`` is 10; 12 is
bcrypt's own default). ``CC_BCRYPT_ROUNDS`` overrides it **for tests only** (4 makes
hashing ~250x faster); never lower it in production."""

MAX_USERNAME_LENGTH = 100
"""Upstream's limit for usernames (``/config/users/`` create)."""
MAX_TEXT_LENGTH = varchar_length(user_table.c.name)
"""Column width of ``name``, ``email`` and ``password`` (VARCHAR(255) on MariaDB)."""
MAX_PASSWORD_BYTES = 72
"""bcrypt only looks at the first 72 bytes; longer passwords are refused, as Go's bcrypt does."""

ADD_USER_FORMAT = "<username>:[admin,support,manager,api,user]:<password>"


class Role(enum.IntEnum):
    """Upstream's roles, ordered by privilege; a user's auth level is its highest role."""

    ANONYMOUS = 0
    API = 1
    USER = 2
    MANAGER = 3
    SUPPORT = 4
    ADMIN = 5

    @property
    def label(self) -> str:
        """The lower-case name stored in ``hpc_user.roles``."""
        return self.name.lower()

    @classmethod
    def parse(cls, name: str) -> Role | None:
        """The role called ``name`` (any case), or None for an unknown name."""
        try:
            return cls[name.strip().upper()]
        except KeyError:
            return None


ASSIGNABLE_ROLES: tuple[str, ...] = tuple(r.label for r in Role if r is not Role.ANONYMOUS)
"""Roles a user can be given (upstream's ``/config/roles/`` list): api, user, manager, support, admin."""


class AuthSource(enum.IntEnum):
    """How a user authenticates; stored in the ``hpc_user.ldap`` column for historic reasons."""

    LOCAL = 0
    LDAP = 1
    TOKEN = 2
    OIDC = 3

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass
class User:
    """One row of ``hpc_user``; ``password_hash`` never leaves the process (not in JSON, not in repr)."""

    username: str
    name: str = ""
    email: str = ""
    roles: list[str] = field(default_factory=list)
    projects: list[str] = field(default_factory=list)
    auth_source: AuthSource = AuthSource.LOCAL
    password_hash: str | None = field(default=None, repr=False, compare=False)

    @property
    def has_password(self) -> bool:
        return bool(self.password_hash)

    def has_role(self, role: Role) -> bool:
        return role.label in self.roles

    def has_any_role(self, roles: Iterable[Role]) -> bool:
        return any(self.has_role(r) for r in roles)

    @property
    def auth_level(self) -> Role | None:
        """The highest role the user holds (None if the user holds no valid role)."""
        held = [r for r in (Role.parse(name) for name in self.roles) if r is not None]
        return max(held) if held else None

    def to_json(self) -> dict[str, Any]:
        """The REST shape of upstream's ``schema.User`` (also the GraphQL ``User`` fields)."""
        return {
            "username": self.username,
            "name": self.name,
            "email": self.email,
            "roles": list(self.roles),
            "projects": list(self.projects),
            "authSource": int(self.auth_source),
        }


# ---------------------------------------------------------------- validation helpers


def _dump_list(values: Iterable[str]) -> str:
    """Compact JSON like Go's ``json.Marshal``: ``["admin","api"]``."""
    return json.dumps(list(values), separators=(",", ":"), ensure_ascii=False)


def _load_list(raw: str | None, username: str, column: str) -> list[str]:
    if raw is None or raw == "" or raw == "null":
        return []
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise InvalidInput(f"user {username!r}: column {column} is not a JSON array: {raw!r}", field=column) from exc
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput(f"user {username!r}: column {column} is not a JSON array: {raw!r}", field=column)
    return [str(v) for v in value]


def validate_username(username: str) -> str:
    """Return ``username`` if acceptable, else raise InvalidInput(field="username")."""
    if not isinstance(username, str) or username == "":
        raise InvalidInput("username must not be empty", field="username")
    if len(username) > MAX_USERNAME_LENGTH:
        raise InvalidInput(
            f"username must be between 1 and {MAX_USERNAME_LENGTH} characters (got {len(username)})",
            field="username",
        )
    if any(c.isspace() for c in username):
        raise InvalidInput(f"username {username!r} must not contain whitespace", field="username")
    if ":" in username:
        raise InvalidInput(f"username {username!r} must not contain ':'", field="username")
    return username


def normalize_role(role: str) -> str:
    """The stored spelling of an assignable role (``"Admin"`` -> ``"admin"``); InvalidInput otherwise."""
    parsed = Role.parse(role) if isinstance(role, str) else None
    if parsed is None or parsed is Role.ANONYMOUS:
        raise InvalidInput(
            f"supplied role is no valid option: {role!r} (valid: {', '.join(ASSIGNABLE_ROLES)})", field="roles"
        )
    return parsed.label


def _normalize_roles(roles: Iterable[str]) -> list[str]:
    out: list[str] = []
    for role in roles:
        label = normalize_role(role)
        if label in out:
            raise InvalidInput(f"role {label!r} is given twice", field="roles")
        out.append(label)
    return out


def _validate_project(project: str) -> str:
    if not isinstance(project, str) or project.strip() == "":
        raise InvalidInput("project name must not be empty", field="projects")
    if project != project.strip():
        raise InvalidInput(f"project name {project!r} has leading or trailing whitespace", field="projects")
    return check_text(job_table.c.project, project, "projects")


def _validate_text(value: str | None, field_name: str) -> str | None:
    if value is None or value == "":
        return None
    if len(value) > MAX_TEXT_LENGTH:
        raise InvalidInput(f"{field_name} is longer than {MAX_TEXT_LENGTH} characters", field=field_name)
    return value


def hash_password(password: str) -> str:
    """bcrypt hash of ``password`` at cost :data:`BCRYPT_ROUNDS`; InvalidInput(field="password") if unusable."""
    if not isinstance(password, str) or password == "":
        raise InvalidInput("password must not be empty", field="password")
    raw = password.encode("utf-8")
    if len(raw) > MAX_PASSWORD_BYTES:
        raise InvalidInput(f"password is longer than {MAX_PASSWORD_BYTES} bytes (bcrypt's limit)", field="password")
    return bcrypt.hashpw(raw, bcrypt.gensalt(rounds=BCRYPT_ROUNDS)).decode("ascii")


def check_password(user: User, password: str) -> bool:
    """True if ``password`` matches the user's bcrypt hash; False without a hash or on any mismatch."""
    if not user.password_hash or not password:
        return False
    try:
        return bcrypt.checkpw(password.encode("utf-8"), user.password_hash.encode("ascii"))
    except (ValueError, UnicodeEncodeError):  # malformed hash, or a password bcrypt refuses (> 72 bytes)
        return False


def parse_user_spec(spec: str) -> tuple[str, list[str], str]:
    """Split upstream's ``-add-user`` argument ``name:role1,role2:password`` into its parts.

    Only the first two colons separate fields, so the password may contain ``:``. Roles are
    split on ``,`` with blanks dropped (``name::pw`` gives no roles, which :func:`add_user`
    then refuses). Role names are not checked here; :func:`add_user` does that.
    """
    parts = spec.split(":", 2)
    if len(parts) != 3 or parts[0] == "":
        raise InvalidInput(
            f"could not parse -add-user argument {spec!r}: want {ADD_USER_FORMAT}", field="add-user"
        )
    name, roles, password = parts
    return name, [r.strip() for r in roles.split(",") if r.strip()], password


# ---------------------------------------------------------------- reading


def _row_to_user(row: Any) -> User:
    m = row._mapping
    try:
        source = AuthSource(int(m["ldap"]))
    except ValueError:
        source = AuthSource.LOCAL
    return User(
        username=m["username"],
        name=m["name"] or "",
        email=m["email"] or "",
        roles=_load_list(m["roles"], m["username"], "roles"),
        projects=_load_list(m["projects"], m["username"], "projects"),
        auth_source=source,
        password_hash=m["password"] or None,
    )


def _fetch(conn: Connection, username: str, *, for_update: bool = False) -> User:
    query = select(user_table).where(user_table.c.username == username)
    if for_update:
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise NotFound(f"no such user: {username!r}", field="username")
    return _row_to_user(row)


def get_user(engine: Engine, username: str) -> User:
    """The user called ``username``; NotFound(field="username") if there is none."""
    with engine.connect() as conn:
        return _fetch(conn, username)


def find_user(engine: Engine, username: str) -> User | None:
    """Like :func:`get_user`, but None for an unknown user."""
    try:
        return get_user(engine, username)
    except NotFound:
        return None


#: Usernames per IN list: far below SQLite's bound-parameter limit.
_NAME_CHUNK = 500


def find_users(bind: Engine | Connection, usernames: Iterable[str]) -> dict[str, User]:
    """The users of these names that exist, one query per 500 names (the owners of a job page, statistics rows)."""
    names = sorted(set(usernames))
    found: dict[str, User] = {}
    with connection_for(bind) as conn:
        for i in range(0, len(names), _NAME_CHUNK):
            stmt = select(user_table).where(user_table.c.username.in_(names[i:i + _NAME_CHUNK]))
            found.update({user.username: user for user in map(_row_to_user, conn.execute(stmt))})
    return found


def list_users(engine: Engine, *, not_just_user: bool = False) -> list[User]:
    """All users, sorted by username.

    ``not_just_user`` keeps upstream's "special users" filter: the stored roles text is neither
    ``["user"]`` nor ``[]`` (a plain string comparison, as upstream does).
    """
    query = select(user_table).order_by(user_table.c.username)
    if not_just_user:
        query = query.where(and_(user_table.c.roles != '["user"]', user_table.c.roles != "[]"))
    with engine.connect() as conn:
        return [_row_to_user(row) for row in conn.execute(query)]


def ldap_usernames(engine: Engine) -> list[str]:
    """Usernames of the users that authenticate via LDAP (``ldap = 1``)."""
    query = (
        select(user_table.c.username)
        .where(user_table.c.ldap == int(AuthSource.LDAP))
        .order_by(user_table.c.username)
    )
    with engine.connect() as conn:
        return list(conn.execute(query).scalars())


def get_user_ui_config(engine: Engine, username: str) -> dict[str, Any]:
    """The user's own UI settings from ``configuration`` (``confkey`` -> decoded JSON ``value``).

    Only the stored overrides; merging them over the defaults is the caller's job. A value
    that is not valid JSON is returned as the raw string.
    """
    query = select(configuration_table.c.confkey, configuration_table.c.value).where(
        configuration_table.c.username == username
    )
    out: dict[str, Any] = {}
    with engine.connect() as conn:
        for key, value in conn.execute(query):
            if value is None:
                out[key] = None
                continue
            try:
                out[key] = json.loads(value)
            except ValueError:
                log.warning("configuration %r of user %r is not JSON; returning it as text", key, username)
                out[key] = value
    return out


# ---------------------------------------------------------------- writing


def add_user(
    engine: Engine,
    username: str,
    *,
    password: str | None = None,
    roles: Iterable[str] = (),
    projects: Iterable[str] = (),
    name: str | None = None,
    email: str | None = None,
    auth_source: AuthSource = AuthSource.LOCAL,
    allow_blank_password: bool = True,
    require_manager_project: bool = False,
) -> User:
    """Insert a user and return it as stored.

    Unlike upstream's ``-add-user`` (which stored whatever role names it was given), the role
    names are validated: at least one role, each one of :data:`ASSIGNABLE_ROLES` (any case,
    stored lower case), none twice. Projects are only accepted for managers.

    The two flags select the rules of the caller's path:

    * ``allow_blank_password=False`` (web admin ``/config/users/``): a blank password is only
      accepted for a user whose only role is ``api`` (such users log in with tokens only).
      The CLI paths keep the default True, like upstream's ``-add-user``.
    * ``require_manager_project=True`` (web admin): a manager must get at least one project.
      The CLI allows a manager without projects, like upstream.

    Raises InvalidInput (``field`` = "username", "roles", "projects", "password", "name",
    "email") or Conflict(field="username") if the username is taken.
    """
    validate_username(username)
    role_list = _normalize_roles(roles)
    if not role_list:
        raise InvalidInput(f"user {username!r} needs at least one role ({', '.join(ASSIGNABLE_ROLES)})", field="roles")
    project_list: list[str] = []
    for project in projects:
        _validate_project(project)
        if project in project_list:
            raise InvalidInput(f"project {project!r} is given twice", field="projects")
        project_list.append(project)
    is_manager = Role.MANAGER.label in role_list
    if project_list and not is_manager:
        raise InvalidInput(
            f"only managers have projects; user {username!r} has roles {', '.join(role_list)}", field="projects"
        )
    if is_manager and not project_list and require_manager_project:
        raise InvalidInput("managers require a project to manage (can be changed later)", field="projects")
    name = _validate_text(name, "name")
    email = _validate_text(email, "email")
    auth_source = AuthSource(auth_source)

    if password:
        if auth_source is not AuthSource.LOCAL:
            raise InvalidInput(
                f"only local users have a password; user {username!r} authenticates via {auth_source.label}",
                field="password",
            )
        password_hash: str | None = hash_password(password)
    else:
        password_hash = None
        if not allow_blank_password and role_list != [Role.API.label]:
            raise InvalidInput(
                "only API users are allowed to have a blank password (login will be impossible)", field="password"
            )

    values = {
        "username": username,
        "password": password_hash,
        "ldap": int(auth_source),
        "name": name,
        "roles": _dump_list(role_list),
        "email": email,
        "projects": check_text(user_table.c.projects, _dump_list(project_list), "projects"),
    }
    try:
        with engine.begin() as conn:
            exists = conn.execute(select(user_table.c.username).where(user_table.c.username == username)).first()
            if exists is not None:
                raise Conflict(f"user {username!r} already exists", field="username")
            conn.execute(insert(user_table).values(**values))
    except IntegrityError as exc:  # lost a race against a concurrent insert of the same name
        raise Conflict(f"user {username!r} already exists", field="username") from exc
    log.info("new user %r created (roles: %s, auth source: %s, projects: %s)",
             username, values["roles"], auth_source.label, values["projects"])
    return User(username=username, name=name or "", email=email or "", roles=role_list, projects=project_list,
                auth_source=auth_source, password_hash=password_hash)


def delete_user(engine: Engine, username: str) -> bool:
    """Delete a user (and, by cascade, its UI configuration); True if a row was deleted.

    An unknown username is not an error, as upstream's ``DelUser``.
    """
    with engine.begin() as conn:
        # Explicit, so the configuration rows go even where foreign keys are not enforced.
        conn.execute(delete(configuration_table).where(configuration_table.c.username == username))
        deleted = conn.execute(delete(user_table).where(user_table.c.username == username)).rowcount
    if deleted:
        log.info("deleted user %r", username)
    return bool(deleted)


_UNCHANGED: Any = object()


def update_user(engine: Engine, username: str, *, name: str | None = _UNCHANGED,
                email: str | None = _UNCHANGED) -> User:
    """Change name and/or email (omitted: unchanged; None or "": cleared); returns the updated user."""
    values: dict[str, Any] = {}
    if name is not _UNCHANGED:
        values["name"] = _validate_text(name, "name")
    if email is not _UNCHANGED:
        values["email"] = _validate_text(email, "email")
    with engine.begin() as conn:
        user = _fetch(conn, username, for_update=True)
        if values:
            conn.execute(update(user_table).where(user_table.c.username == username).values(**values))
    if "name" in values:
        user.name = values["name"] or ""
    if "email" in values:
        user.email = values["email"] or ""
    return user


def set_password(engine: Engine, username: str, password: str) -> None:
    """Replace a local user's password (bcrypt); InvalidInput(field="password") for non-local users."""
    password_hash = hash_password(password)
    with engine.begin() as conn:
        user = _fetch(conn, username, for_update=True)
        if user.auth_source is not AuthSource.LOCAL:
            raise InvalidInput(
                f"user {username!r} authenticates via {user.auth_source.label}; a local password would never be used",
                field="password",
            )
        conn.execute(update(user_table).where(user_table.c.username == username).values(password=password_hash))


def _set_list(conn: Connection, username: str, column: str, values: list[str]) -> None:
    text = check_text(user_table.c[column], _dump_list(values), column)
    conn.execute(update(user_table).where(user_table.c.username == username).values({column: text}))


def add_role(engine: Engine, username: str, role: str) -> User:
    """Give ``username`` one more role (case-insensitive); invalid or already held roles are refused."""
    label = normalize_role(role)
    with engine.begin() as conn:
        user = _fetch(conn, username, for_update=True)
        if label in user.roles:
            raise InvalidInput(f"user {username!r} already has role {label!r}", field="roles")
        user.roles.append(label)
        _set_list(conn, username, "roles", user.roles)
    return user


def remove_role(engine: Engine, username: str, role: str) -> User:
    """Take a role away; refused if the user lacks it, or for ``manager`` while projects are assigned."""
    label = normalize_role(role)
    with engine.begin() as conn:
        user = _fetch(conn, username, for_update=True)
        if label not in user.roles:
            raise InvalidInput(f"role already deleted for user {username!r}: {label!r}", field="roles")
        if label == Role.MANAGER.label and user.projects:
            raise InvalidInput(
                f"cannot remove role 'manager' while user {username!r} still has assigned project(s): "
                f"{', '.join(user.projects)}",
                field="roles",
            )
        user.roles = [r for r in user.roles if r != label]
        _set_list(conn, username, "roles", user.roles)
    return user


def add_project(engine: Engine, username: str, project: str) -> User:
    """Let a manager manage one more project; refused for non-managers and for a project held already."""
    _validate_project(project)
    with engine.begin() as conn:
        user = _fetch(conn, username, for_update=True)
        if not user.has_role(Role.MANAGER):
            raise InvalidInput(f"user {username!r} is not a manager", field="projects")
        if project in user.projects:
            raise InvalidInput(f"user {username!r} already manages project {project!r}", field="projects")
        user.projects.append(project)
        _set_list(conn, username, "projects", user.projects)
    return user


def remove_project(engine: Engine, username: str, project: str) -> User:
    """Stop a manager managing a project; refused for non-managers and for a project not held."""
    with engine.begin() as conn:
        user = _fetch(conn, username, for_update=True)
        if not user.has_role(Role.MANAGER):
            raise InvalidInput(f"user {username!r} is not a manager", field="projects")
        if project not in user.projects:
            raise InvalidInput(f"user {username!r} does not manage project {project!r}", field="projects")
        user.projects = [p for p in user.projects if p != project]
        _set_list(conn, username, "projects", user.projects)
    return user


#: One change of roles or projects per request (upstream's updateUser, both /api/user/{id} and
#: /config/user/{id}): (field, change, label of the success message, what failed), first field first.
ACCESS_CHANGES = (
    ("add-role", add_role, "Add Role", "adding role failed"),
    ("remove-role", remove_role, "Remove Role", "removing role failed"),
    ("add-project", add_project, "Add Project", "adding project failed"),
    ("remove-project", remove_project, "Remove Project", "removing project failed"),
)


def change_access(engine: Engine, username: str, fields: Mapping[str, Any]) -> str:
    """Apply the first non-empty of add-role, remove-role, add-project, remove-project; returns its label.

    The label (``"Add Role"``) starts each front end's success message. A refused change is a
    Conflict (422, as upstream answers) saying what failed, an unknown user NotFound (which
    ``/config/user/`` answers with 422 as upstream, ``/api/user/`` with 404); no field given is InvalidInput.
    """
    for key, change, label, failure in ACCESS_CHANGES:
        value = fields.get(key)
        if not value:
            continue
        if not isinstance(value, str):
            raise InvalidInput(f"{key} must be a string, got {value!r}", field=key)
        try:
            change(engine, username, value)
        except InvalidInput as exc:
            raise Conflict(f"{failure}: {exc.message}", field=exc.field or key) from None
        except NotFound as exc:
            raise NotFound(f"{failure}: {exc.message}", field=exc.field or key) from None
        return label
    raise InvalidInput("no operation specified: must provide add-role, remove-role, add-project, or remove-project",
                       field="add-role")
