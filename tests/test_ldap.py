"""LDAP login and synchronisation against a real slapd (see tests/ldap_server.py)."""

from __future__ import annotations

import json

import ldap_server as ldap
import pytest
from support.cli import run_cli

from cc_backend.auth.ldap import LdapDirectory, login, sync_users
from cc_backend.auth.users import AuthSource, add_user, find_user, list_users
from cc_backend.config import LdapConfig
from cc_backend.errors import ConfigError, Forbidden


def ldap_config(server, **extra) -> LdapConfig:
    return LdapConfig.model_validate({
        "url": server.url,
        "user-base": ldap.PEOPLE,
        "search-dn": ldap.ADMIN_DN,
        "user-bind": f"uid={{username}},{ldap.PEOPLE}",
        "user-filter": "(&(objectclass=posixAccount))",
        **extra,
    })


@pytest.fixture
def directory(ldap_server):
    return LdapDirectory(ldap_config(ldap_server, **{"sync-user-on-login": True}), ldap.ADMIN_PASSWORD)


def test_password_check_binds_as_the_user(directory):
    assert directory.check_password("alice", "alice-pw")
    assert not directory.check_password("alice", "wrong")
    assert not directory.check_password("alice", "")  # would be an anonymous bind
    assert not directory.check_password("nobody", "x")
    assert not directory.check_password("alice,ou=evil", "alice-pw")  # the DN is escaped


def test_sync_adds_directory_users_and_leaves_local_users_alone(engine, ldap_server, directory):
    add_user(engine, "carol", password="local-pw", roles=["admin"])
    result = sync_users(engine, directory)
    assert result.added == ["alice", "bob", "dave"]
    alice = find_user(engine, "alice")
    assert alice.auth_source == AuthSource.LDAP and alice.roles == ["user"] and alice.name == "Alice Admin"
    carol = find_user(engine, "carol")
    assert carol.auth_source == AuthSource.LOCAL and carol.roles == ["admin"]
    assert sync_users(engine, directory).added == []  # idempotent


def test_sync_deletes_vanished_users_only_when_configured(engine, ldap_server):
    ldap_server.add_user("erin", "Erin Engineer", "erin-pw")
    keep = LdapDirectory(ldap_config(ldap_server), ldap.ADMIN_PASSWORD)
    prune = LdapDirectory(ldap_config(ldap_server, **{"sync-del-old-users": True}), ldap.ADMIN_PASSWORD)
    assert "erin" in sync_users(engine, keep).added
    ldap_server.remove_user("erin")
    assert sync_users(engine, keep).removed == []
    assert find_user(engine, "erin") is not None
    assert sync_users(engine, prune).removed == ["erin"]
    assert find_user(engine, "erin") is None
    assert {u.username for u in list_users(engine)} >= {"alice", "bob", "carol", "dave"}


def test_login(engine, ldap_server, directory):
    user = login(engine, directory, "bob", "bob-pw")  # unknown, created on login
    assert user.username == "bob" and user.auth_source == AuthSource.LDAP and user.name == "Bob Builder"
    assert login(engine, directory, "bob", "bob-pw").username == "bob"
    with pytest.raises(Forbidden, match="password"):
        login(engine, directory, "bob", "nope")
    strict = LdapDirectory(ldap_config(ldap_server), ldap.ADMIN_PASSWORD)
    with pytest.raises(Forbidden, match="unknown user"):
        login(engine, strict, "dave", "dave-pw")
    add_user(engine, "localguy", password="pw", roles=["user"])
    with pytest.raises(Forbidden, match="not an LDAP user"):
        login(engine, directory, "localguy", "pw")


def test_missing_admin_password_is_a_config_error(ldap_server):
    with pytest.raises(ConfigError, match="LDAP_ADMIN_PASSWORD"):
        LdapDirectory(ldap_config(ldap_server), None).users()


def test_sync_ldap_flag(site, ldap_server):
    cfg = json.loads((site / "config.json").read_text())
    cfg["auth"]["ldap"] = {
        "url": ldap_server.url, "user-base": ldap.PEOPLE, "search-dn": ldap.ADMIN_DN,
        "user-bind": f"uid={{username}},{ldap.PEOPLE}", "user-filter": "(&(objectclass=posixAccount))",
    }
    (site / "config.json").write_text(json.dumps(cfg))
    with open(site / ".env", "a") as env:
        env.write(f'LDAP_ADMIN_PASSWORD="{ldap.ADMIN_PASSWORD}"\n')
    args = ("--config", str(site / "config.json"))
    assert run_cli(*args, "-migrate-db", cwd=site).returncode == 0
    r = run_cli(*args, "-sync-ldap", cwd=site)
    assert r.returncode == 0, r.stderr
    assert "4 added" in r.stdout
    r = run_cli(*args, "user", "list", "--format", "json", cwd=site)
    users = {u["username"]: u for u in json.loads(r.stdout)}
    assert set(users) >= {"alice", "bob", "carol", "dave"}
    assert users["alice"]["authSource"] == 1  # AuthSource.LDAP, as upstream stores it
