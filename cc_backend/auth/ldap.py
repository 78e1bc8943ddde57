"""LDAP: log users in by binding as them, and keep the user table in sync with the directory (ldap3)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cc_backend.auth.users import AuthSource, User, add_user, delete_user, find_user, ldap_usernames, update_user
from cc_backend.errors import CCError, ConfigError, Forbidden

if TYPE_CHECKING:
    from ldap3 import Connection, Server
    from sqlalchemy import Engine

    from cc_backend.config import LdapConfig
    from cc_backend.runtime import Runtime

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10
RECEIVE_TIMEOUT_S = 30


@dataclass
class SyncResult:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DirectoryUser:
    username: str
    name: str


class LdapDirectory:
    """One LDAP server as configured in ``auth.ldap``; the search DN's password is LDAP_ADMIN_PASSWORD."""

    def __init__(self, config: LdapConfig, admin_password: str | None) -> None:
        self.config = config
        self.admin_password = admin_password

    def _server(self) -> Server:
        from ldap3 import Server

        return Server(self.config.url, connect_timeout=CONNECT_TIMEOUT_S)

    def _connect(self, dn: str, password: str) -> Connection:
        from ldap3 import Connection

        return Connection(self._server(), user=dn, password=password, receive_timeout=RECEIVE_TIMEOUT_S,
                          raise_exceptions=False, read_only=True)

    def _admin(self) -> Connection:
        if not self.admin_password:
            raise ConfigError("LDAP_ADMIN_PASSWORD is not set (in .env or the environment); it is needed to "
                              f"search the directory as {self.config.search_dn}")
        conn = self._connect(self.config.search_dn, self.admin_password)
        if not conn.bind():
            raise ConfigError(f"LDAP: cannot bind as {self.config.search_dn}: {conn.result.get('description')}")
        return conn

    def check_password(self, username: str, password: str) -> bool:
        """Bind as the user (``user-bind`` with the escaped name); an empty password never binds."""
        from ldap3.utils.dn import escape_rdn

        if not password:  # an empty password would be an anonymous bind, which "succeeds"
            return False
        dn = self.config.user_bind.replace("{username}", escape_rdn(username))
        conn = self._connect(dn, password)
        try:
            return bool(conn.bind())
        finally:
            conn.unbind()

    def _search(self, extra_filter: str = "") -> list[DirectoryUser]:
        from ldap3 import SUBTREE
        from ldap3.core.exceptions import LDAPException

        cfg = self.config
        query = f"(&{cfg.user_filter}{extra_filter})" if extra_filter else cfg.user_filter
        try:
            conn = self._admin()
            try:
                conn.search(cfg.user_base, query, search_scope=SUBTREE, attributes=[cfg.uid_attr, cfg.username_attr])
                entries = list(conn.entries)
                result = conn.result or {}
            finally:
                conn.unbind()
        except LDAPException as exc:
            # An unreachable directory is an operational error, reported in one line (by -sync-ldap
            # and the periodic sync), not a traceback.
            raise CCError(f"LDAP: cannot search {cfg.url}: {exc}") from exc
        if result.get("result", 0) != 0:
            # A failed or truncated search (e.g. sizeLimitExceeded) must not look like a smaller
            # directory: with sync-del-old-users the sync would delete the users it did not see.
            raise CCError(f"LDAP: search of {cfg.user_base!r} with {query!r} failed: "
                          f"{result.get('description')} {result.get('message') or ''}".rstrip())
        users = []
        for entry in entries:
            attrs = entry.entry_attributes_as_dict
            uid = (attrs.get(cfg.uid_attr) or [None])[0]
            if not uid:
                continue
            name = (attrs.get(cfg.username_attr) or [""])[0]
            users.append(DirectoryUser(str(uid), str(name)))
        return users

    def find(self, username: str) -> DirectoryUser | None:
        from ldap3.utils.conv import escape_filter_chars

        found = self._search(f"({self.config.uid_attr}={escape_filter_chars(username)})")
        return found[0] if found else None

    def users(self) -> list[DirectoryUser]:
        return self._search()


def ldap_directory(runtime: Runtime) -> LdapDirectory:
    """The configured LDAP directory (``auth.ldap``), or a ConfigError saying what is missing."""
    if runtime.config.auth.ldap is None:
        raise ConfigError("auth.ldap is not configured")
    return LdapDirectory(runtime.config.auth.ldap, runtime.secrets.LDAP_ADMIN_PASSWORD)


def sync_users(engine: Engine, directory: LdapDirectory, *, delete_old: bool | None = None) -> SyncResult:
    """Add directory users missing from the database (role user, auth source LDAP); with ``delete_old``
    (default: ``sync-del-old-users``) remove LDAP users that left the directory. Local users are never touched."""
    delete_old = directory.config.sync_del_old_users if delete_old is None else delete_old
    result = SyncResult()
    in_directory = {u.username: u for u in directory.users()}
    in_db = set(ldap_usernames(engine))
    for username, entry in sorted(in_directory.items()):
        if username in in_db:
            continue
        if find_user(engine, username) is not None:
            log.warning("LDAP user %r exists as a local user; left unchanged", username)
            continue
        add_user(engine, username, roles=["user"], name=entry.name or None, auth_source=AuthSource.LDAP)
        result.added.append(username)
    if delete_old:
        for username in sorted(in_db - set(in_directory)):
            delete_user(engine, username)
            result.removed.append(username)
    # debug: the callers (-sync-ldap, the periodic task) report the result themselves
    log.debug("LDAP sync: %d added, %d removed", len(result.added), len(result.removed))
    return result


def login(engine: Engine, directory: LdapDirectory, username: str, password: str) -> User:
    """Authenticate an LDAP user by binding as them; unknown users are created if ``sync-user-on-login``."""
    cfg = directory.config
    user = find_user(engine, username)
    if user is not None and user.auth_source != AuthSource.LDAP:
        raise Forbidden("not an LDAP user", field="username")
    if user is None and not cfg.sync_user_on_login:
        raise Forbidden("unknown user", field="username")
    if not directory.check_password(username, password):
        raise Forbidden("wrong user name or password", field="password")
    if user is None or cfg.update_user_on_login:
        entry = directory.find(username)
        if entry is None:
            raise Forbidden(f"{username!r} is not matched by auth.ldap.user-filter", field="username")
        if user is None:
            user = add_user(engine, username, roles=["user"], name=entry.name or None, auth_source=AuthSource.LDAP)
        elif entry.name and entry.name != user.name:
            user = update_user(engine, username, name=entry.name)
    return user
