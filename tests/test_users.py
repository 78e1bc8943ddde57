"""Users, roles and projects: upstream's ``internal/repository/user_test.go`` cases on SQLite and
MariaDB, the extra rules of this implementation, and ``cc-backend user ...`` as a real process."""

from __future__ import annotations

import json
import subprocess
import sys

import bcrypt
import pytest
from sqlalchemy import insert, select, text
from support.cli import cli as support_cli
from support.cli import run_cli

from cc_backend.auth import users
from cc_backend.auth.users import AuthSource, Role, User
from cc_backend.db.tables import configuration_table, user_table
from cc_backend.errors import Conflict, InvalidInput, NotFound

FAST = {"CC_BCRYPT_ROUNDS": "4"}


@pytest.fixture(autouse=True)
def fast_bcrypt(monkeypatch):
    monkeypatch.setenv("CC_BCRYPT_ROUNDS", "4")
    monkeypatch.setattr(users, "BCRYPT_ROUNDS", 4)


def raw_row(engine, username):
    with engine.connect() as conn:
        return conn.execute(select(user_table).where(user_table.c.username == username)).mappings().first()


# ------------------------------------------------------------------ upstream user_test.go


def test_add_user_with_all_fields(engine):
    # Upstream uses roles ["user"] with projects here; projects are manager-only in this implementation.
    users.add_user(engine, "testuser1", name="Test User One", email="test1@example.com",
                   password="testpassword123", roles=["manager"], projects=["project1", "project2"])
    got = users.get_user(engine, "testuser1")
    assert (got.username, got.name, got.email) == ("testuser1", "Test User One", "test1@example.com")
    assert got.roles == ["manager"]
    assert got.projects == ["project1", "project2"]
    assert got.auth_source is AuthSource.LOCAL
    assert got.has_password and got.password_hash.startswith("$2b$04$")
    assert bcrypt.checkpw(b"testpassword123", got.password_hash.encode())
    assert users.check_password(got, "testpassword123")
    assert not users.check_password(got, "wrong")


def test_add_user_with_minimal_fields(engine):
    users.add_user(engine, "testuser2", roles=["user"], auth_source=AuthSource.LDAP)
    got = users.get_user(engine, "testuser2")
    assert (got.name, got.email, got.password_hash, got.has_password) == ("", "", None, False)
    assert got.auth_source is AuthSource.LDAP
    assert not users.check_password(got, "")
    row = raw_row(engine, "testuser2")
    assert row["password"] is None and row["name"] is None and row["email"] is None and row["ldap"] == 1


def test_add_duplicate_user_fails(engine):
    users.add_user(engine, "testuser3", roles=["user"])
    with pytest.raises(Conflict) as err:
        users.add_user(engine, "testuser3", roles=["admin"])
    assert err.value.field == "username"
    assert users.get_user(engine, "testuser3").roles == ["user"]


def test_get_existing_and_unknown_user(engine):
    users.add_user(engine, "getuser1", name="Get User", email="getuser@example.com",
                   roles=["user", "admin"], auth_source=AuthSource.LOCAL)
    got = users.get_user(engine, "getuser1")
    assert sorted(got.roles) == ["admin", "user"]
    with pytest.raises(NotFound) as err:
        users.get_user(engine, "nonexistent")
    assert err.value.field == "username"
    assert users.find_user(engine, "nonexistent") is None


def test_update_user(engine):
    users.add_user(engine, "updateuser1", name="Original Name", roles=["user"])
    assert users.update_user(engine, "updateuser1", name="Updated Name").name == "Updated Name"
    assert users.get_user(engine, "updateuser1").name == "Updated Name"
    # no changes
    same = users.update_user(engine, "updateuser1")
    assert same.name == "Updated Name"
    users.update_user(engine, "updateuser1", email="u@example.com")
    got = users.get_user(engine, "updateuser1")
    assert (got.name, got.email) == ("Updated Name", "u@example.com")
    users.update_user(engine, "updateuser1", name="")
    assert raw_row(engine, "updateuser1")["name"] is None
    with pytest.raises(NotFound):
        users.update_user(engine, "nobody", name="x")


def test_delete_user(engine):
    users.add_user(engine, "deluser1", roles=["user"])
    assert users.delete_user(engine, "deluser1") is True
    with pytest.raises(NotFound):
        users.get_user(engine, "deluser1")
    # unknown user: no error, as upstream
    assert users.delete_user(engine, "nonexistent") is False


def test_list_users(engine):
    users.add_user(engine, "listuser1", roles=["user"])
    users.add_user(engine, "listuser2", roles=["admin"])
    users.add_user(engine, "listuser3", roles=["manager"], projects=["proj1"])
    with engine.begin() as conn:  # a role-less row as upstream may have written it
        conn.execute(insert(user_table).values(username="listuser4", roles="[]", projects="[]"))
    names = [u.username for u in users.list_users(engine)]
    assert names == ["listuser1", "listuser2", "listuser3", "listuser4"]
    special = [u.username for u in users.list_users(engine, not_just_user=True)]
    assert special == ["listuser2", "listuser3"]
    listed = {u.username: u for u in users.list_users(engine)}
    assert listed["listuser3"].projects == ["proj1"]


def test_ldap_usernames(engine):
    users.add_user(engine, "ldapuser1", roles=["user"], auth_source=AuthSource.LDAP)
    users.add_user(engine, "localuser1", roles=["user"], auth_source=AuthSource.LOCAL)
    users.add_user(engine, "oidcuser1", roles=["user"], auth_source=AuthSource.OIDC)
    assert users.ldap_usernames(engine) == ["ldapuser1"]


def test_add_role(engine):
    users.add_user(engine, "roleuser1", roles=["user"])
    got = users.add_role(engine, "roleuser1", "admin")
    assert got.roles == ["user", "admin"]
    assert users.get_user(engine, "roleuser1").roles == ["user", "admin"]
    assert raw_row(engine, "roleuser1")["roles"] == '["user","admin"]'
    # upper case is accepted and stored lower case, as upstream
    assert users.add_role(engine, "roleuser1", "API").roles == ["user", "admin", "api"]

    with pytest.raises(InvalidInput, match="already has role") as err:
        users.add_role(engine, "roleuser1", "user")
    assert err.value.field == "roles"
    with pytest.raises(InvalidInput, match="no valid option") as err:
        users.add_role(engine, "roleuser1", "invalidrole")
    assert err.value.field == "roles"
    with pytest.raises(InvalidInput, match="no valid option"):
        users.add_role(engine, "roleuser1", "anonymous")
    with pytest.raises(NotFound):
        users.add_role(engine, "nobody", "admin")
    assert users.get_user(engine, "roleuser1").roles == ["user", "admin", "api"]


def test_remove_role(engine):
    users.add_user(engine, "rmroleuser1", roles=["user", "admin"])
    assert users.remove_role(engine, "rmroleuser1", "admin").roles == ["user"]
    assert users.get_user(engine, "rmroleuser1").roles == ["user"]

    users.add_user(engine, "rmroleuser2", roles=["user"])
    with pytest.raises(InvalidInput, match="already deleted") as err:
        users.remove_role(engine, "rmroleuser2", "admin")
    assert err.value.field == "roles"
    with pytest.raises(InvalidInput, match="no valid option"):
        users.remove_role(engine, "rmroleuser2", "bogus")

    users.add_user(engine, "rmroleuser3", roles=["manager"], projects=["proj1", "proj2"])
    with pytest.raises(InvalidInput, match="still has assigned project") as err:
        users.remove_role(engine, "rmroleuser3", "manager")
    assert err.value.field == "roles"
    # after removing the projects the role can go
    users.remove_project(engine, "rmroleuser3", "proj1")
    users.remove_project(engine, "rmroleuser3", "proj2")
    assert users.remove_role(engine, "rmroleuser3", "manager").roles == []
    assert raw_row(engine, "rmroleuser3")["roles"] == "[]"


def test_add_project(engine):
    users.add_user(engine, "projuser1", roles=["manager"])  # CLI path: a manager without projects is fine
    assert users.add_project(engine, "projuser1", "newproject").projects == ["newproject"]
    assert users.get_user(engine, "projuser1").projects == ["newproject"]

    users.add_user(engine, "projuser2", roles=["user"])
    with pytest.raises(InvalidInput, match="not a manager") as err:
        users.add_project(engine, "projuser2", "newproject")
    assert err.value.field == "projects"

    users.add_user(engine, "projuser3", roles=["manager"], projects=["existingproject"])
    with pytest.raises(InvalidInput, match="already manages") as err:
        users.add_project(engine, "projuser3", "existingproject")
    assert err.value.field == "projects"
    with pytest.raises(InvalidInput, match="must not be empty"):
        users.add_project(engine, "projuser3", "")


def test_remove_project(engine):
    users.add_user(engine, "rmprojuser1", roles=["manager"], projects=["proj1", "proj2"])
    assert users.remove_project(engine, "rmprojuser1", "proj1").projects == ["proj2"]
    assert users.get_user(engine, "rmprojuser1").projects == ["proj2"]
    users.remove_project(engine, "rmprojuser1", "proj2")
    assert raw_row(engine, "rmprojuser1")["projects"] == "[]"

    users.add_user(engine, "rmprojuser2", roles=["manager"], projects=["proj1"])
    with pytest.raises(InvalidInput, match="does not manage") as err:
        users.remove_project(engine, "rmprojuser2", "nonexistent")
    assert err.value.field == "projects"

    users.add_user(engine, "rmprojuser3", roles=["user"])
    with pytest.raises(InvalidInput, match="not a manager"):
        users.remove_project(engine, "rmprojuser3", "proj1")


def test_change_access_applies_the_first_given_change(engine):
    """upstream updateUser (/api/user/{id} and /config/user/{id}): one change per request, first field first."""
    users.add_user(engine, "mia", roles=["manager"], projects=["p1"])
    assert users.change_access(engine, "mia", {"add-role": "support", "add-project": "p2"}) == "Add Role"
    assert users.get_user(engine, "mia").roles == ["manager", "support"]
    assert users.get_user(engine, "mia").projects == ["p1"]
    assert users.change_access(engine, "mia", {"add-role": "", "add-project": "p2"}) == "Add Project"
    assert users.change_access(engine, "mia", {"remove-project": "p1"}) == "Remove Project"
    assert users.change_access(engine, "mia", {"remove-role": "support"}) == "Remove Role"
    assert users.get_user(engine, "mia").roles == ["manager"] and users.get_user(engine, "mia").projects == ["p2"]

    with pytest.raises(Conflict) as err:
        users.change_access(engine, "mia", {"add-role": "wizard"})
    assert err.value.message.startswith("adding role failed: ") and err.value.field == "roles"
    with pytest.raises(Conflict, match="removing role failed: .*still has assigned project"):
        users.change_access(engine, "mia", {"remove-role": "manager"})
    with pytest.raises(NotFound, match="adding role failed: no such user") as err:
        users.change_access(engine, "ghost", {"add-role": "user"})
    assert err.value.field == "username"
    with pytest.raises(InvalidInput, match="no operation specified") as err:
        users.change_access(engine, "mia", {"add-role": "", "other": "x"})
    assert err.value.field == "add-role"
    with pytest.raises(InvalidInput, match="add-project must be a string") as err:
        users.change_access(engine, "mia", {"add-project": 5})
    assert err.value.field == "add-project"
    assert users.get_user(engine, "mia").roles == ["manager"] and users.get_user(engine, "mia").projects == ["p2"]


def test_ui_config(engine):
    users.add_user(engine, "demo", roles=["admin", "api"])
    with engine.begin() as conn:
        conn.execute(insert(configuration_table), [
            {"username": "demo", "confkey": "metricConfig_jobListMetrics:fritz", "value": '["flops_any","mem_bw"]'},
            {"username": "demo", "confkey": "plot_general_colorscheme", "value": "not json"},
        ])
    cfg = users.get_user_ui_config(engine, "demo")
    assert cfg["metricConfig_jobListMetrics:fritz"] == ["flops_any", "mem_bw"]
    assert cfg["plot_general_colorscheme"] == "not json"
    assert users.get_user_ui_config(engine, "nobody") == {}
    # the configuration rows go with the user
    users.delete_user(engine, "demo")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM configuration")).scalar() == 0


# ------------------------------------------------------------------ rules of this implementation


def test_stored_shape_is_upstreams(engine):
    users.add_user(engine, "demo", password="demo", roles=["admin", "api"])
    row = raw_row(engine, "demo")
    assert row["roles"] == '["admin","api"]'
    assert row["projects"] == "[]"
    assert row["ldap"] == 0
    assert row["password"].startswith("$2b$")


def test_hash_written_by_upstream_verifies(engine):
    # Go's bcrypt writes $2a$ hashes; they must verify here.
    go_hash = bcrypt.hashpw(b"demo", bcrypt.gensalt(rounds=4, prefix=b"2a")).decode()
    with engine.begin() as conn:
        conn.execute(insert(user_table).values(username="demo", password=go_hash, ldap=0,
                                               roles='["admin","api"]', projects="[]"))
    assert users.check_password(users.get_user(engine, "demo"), "demo")


@pytest.mark.parametrize("name, message", [
    ("", "must not be empty"),
    ("x" * 101, "between 1 and 100"),
    ("a b", "whitespace"),
    ("a\tb", "whitespace"),
    ("a:b", "':'"),
])
def test_invalid_usernames(engine, name, message):
    with pytest.raises(InvalidInput, match=message) as err:
        users.add_user(engine, name, roles=["user"])
    assert err.value.field == "username"


def test_username_of_100_characters(engine):
    users.add_user(engine, "x" * 100, roles=["user"])
    assert users.get_user(engine, "x" * 100).username == "x" * 100


@pytest.mark.parametrize("roles, message", [
    (["invalid"], "no valid option"),
    (["anonymous"], "no valid option"),
    (["user", "User"], "given twice"),
    ([], "at least one role"),
])
def test_add_user_validates_roles(engine, roles, message):
    with pytest.raises(InvalidInput, match=message) as err:
        users.add_user(engine, "bob", roles=roles)
    assert err.value.field == "roles"
    assert users.find_user(engine, "bob") is None


def test_projects_only_for_managers(engine):
    with pytest.raises(InvalidInput, match="only managers") as err:
        users.add_user(engine, "bob", roles=["user"], projects=["p1"])
    assert err.value.field == "projects"
    with pytest.raises(InvalidInput, match="given twice"):
        users.add_user(engine, "bob", roles=["manager"], projects=["p1", "p1"])
    with pytest.raises(InvalidInput, match="must not be empty"):
        users.add_user(engine, "bob", roles=["manager"], projects=[""])


def test_admin_path_rules(engine):
    # blank password only for users whose only role is api
    with pytest.raises(InvalidInput, match="only API users") as err:
        users.add_user(engine, "bob", roles=["user"], allow_blank_password=False)
    assert err.value.field == "password"
    with pytest.raises(InvalidInput, match="only API users"):
        users.add_user(engine, "bob", roles=["admin", "api"], allow_blank_password=False)
    users.add_user(engine, "apiuser", roles=["api"], allow_blank_password=False)
    users.add_user(engine, "carol", roles=["user"], password="pw", allow_blank_password=False)
    # managers need a project on the admin path only
    with pytest.raises(InvalidInput, match="managers require a project") as err:
        users.add_user(engine, "mgr", roles=["manager"], password="pw", require_manager_project=True)
    assert err.value.field == "projects"
    users.add_user(engine, "mgr", roles=["manager"], password="pw", projects=["p"], require_manager_project=True)
    users.add_user(engine, "mgr2", roles=["manager"], password="pw")


def test_passwords(engine):
    with pytest.raises(InvalidInput, match="72 bytes") as err:
        users.add_user(engine, "bob", roles=["user"], password="x" * 73)
    assert err.value.field == "password"
    with pytest.raises(InvalidInput, match="only local users") as err:
        users.add_user(engine, "bob", roles=["user"], password="pw", auth_source=AuthSource.LDAP)
    assert err.value.field == "password"

    users.add_user(engine, "bob", roles=["user"], password="old")
    users.set_password(engine, "bob", "new:pass word")
    bob = users.get_user(engine, "bob")
    assert users.check_password(bob, "new:pass word") and not users.check_password(bob, "old")
    with pytest.raises(InvalidInput, match="must not be empty"):
        users.set_password(engine, "bob", "")
    with pytest.raises(NotFound):
        users.set_password(engine, "nobody", "pw")
    users.add_user(engine, "ldapbob", roles=["user"], auth_source=AuthSource.LDAP)
    with pytest.raises(InvalidInput, match="via ldap"):
        users.set_password(engine, "ldapbob", "pw")


def test_to_json_and_roles():
    user = User("demo", name="Demo", email="d@x", roles=["user", "admin", "api"], projects=[],
                auth_source=AuthSource.LOCAL, password_hash="$2b$secret")
    assert user.to_json() == {"username": "demo", "name": "Demo", "email": "d@x", "roles": ["user", "admin", "api"],
                              "projects": [], "authSource": 0}
    assert "secret" not in repr(user)
    assert user.auth_level is Role.ADMIN
    assert User("x", roles=["bogus"]).auth_level is None
    assert list(Role) == sorted(Role)
    assert [r.label for r in Role] == ["anonymous", "api", "user", "manager", "support", "admin"]
    assert users.ASSIGNABLE_ROLES == ("api", "user", "manager", "support", "admin")


@pytest.mark.parametrize("spec, expected", [
    ("demo:admin,api:demo", ("demo", ["admin", "api"], "demo")),
    ("demo:admin:pa:ss:word", ("demo", ["admin"], "pa:ss:word")),
    ("demo:api:", ("demo", ["api"], "")),
    ("demo::pw", ("demo", [], "pw")),
    ("demo: admin , api :pw", ("demo", ["admin", "api"], "pw")),
])
def test_parse_user_spec(spec, expected):
    assert users.parse_user_spec(spec) == expected


@pytest.mark.parametrize("spec", ["demo", "demo:admin", ":admin:pw", ""])
def test_parse_user_spec_rejects(spec):
    with pytest.raises(InvalidInput, match="want <username>:"):
        users.parse_user_spec(spec)


def test_core_module_imports_no_click():
    code = "import sys, cc_backend.auth.users; print('click' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_bcrypt_rounds_from_environment():
    code = "import cc_backend.auth.users as u; print(u.BCRYPT_ROUNDS)"
    env_run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**__import__("os").environ, "CC_BCRYPT_ROUNDS": "5"})
    assert env_run.stdout.strip() == "5"
    default_env = {k: v for k, v in __import__("os").environ.items() if k != "CC_BCRYPT_ROUNDS"}
    default_run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                 env=default_env)
    assert default_run.stdout.strip() == "12"


# ------------------------------------------------------------------ cc-backend user ... (real process)


@pytest.fixture
def site(tmp_path):
    """A working directory with config.json whose main.db is a migrated SQLite file."""
    from cc_backend.db.engine import make_engine
    from cc_backend.db.migrate import migrate

    db = tmp_path / "var" / "job.db"
    db.parent.mkdir()
    (tmp_path / "config.json").write_text(json.dumps({"main": {"db": str(db)}}))
    engine = make_engine(f"sqlite:///{db}")
    migrate(engine)
    engine.dispose()
    return tmp_path


@pytest.fixture
def site_engine(site):
    from cc_backend.db.engine import make_engine

    engine = make_engine(f"sqlite:///{site / 'var' / 'job.db'}")
    yield engine
    engine.dispose()


def cli(site, *args, input=None):
    return support_cli(site, "user", *args, input=input)


def test_cli_add_with_password_stdin(site, site_engine):
    res = cli(site, "add", "alice", "--roles", "admin,api", "--name", "Alice A.", "--email", "a@example.com",
              "--password-stdin", input="s3cr:et pw\nignored\n")
    assert res.returncode == 0, res.stderr
    assert "Added user 'alice' with roles admin,api." in res.stdout
    alice = users.get_user(site_engine, "alice")
    assert alice.roles == ["admin", "api"] and alice.name == "Alice A." and alice.email == "a@example.com"
    assert alice.password_hash.startswith("$2b$04$")  # CC_BCRYPT_ROUNDS reached the process
    assert users.check_password(alice, "s3cr:et pw")


def test_cli_add_repeated_roles_projects_and_default_role(site, site_engine):
    res = cli(site, "add", "mgr", "--role", "manager", "--role", "API", "--project", "p1", "--project", "p2",
              "--no-password")
    assert res.returncode == 0, res.stderr
    assert "projects p1,p2" in res.stdout
    assert "no password" in res.stderr  # warned: not an api-only user
    mgr = users.get_user(site_engine, "mgr")
    assert (mgr.roles, mgr.projects, mgr.has_password) == (["manager", "api"], ["p1", "p2"], False)

    res = cli(site, "add", "plain", "--password", "pw")
    assert res.returncode == 0, res.stderr
    assert users.get_user(site_engine, "plain").roles == ["user"]

    res = cli(site, "add", "ldapuser", "--ldap")
    assert res.returncode == 0, res.stderr
    assert users.get_user(site_engine, "ldapuser").auth_source is AuthSource.LDAP
    assert users.ldap_usernames(site_engine) == ["ldapuser"]

    res = cli(site, "add", "tokenonly", "--role", "api", "--no-password")
    assert res.returncode == 0 and res.stderr == ""


def test_cli_add_errors(site, site_engine):
    res = cli(site, "add", "bob", "--role", "superuser", "--password", "pw")
    assert res.returncode == 2
    assert "Error: supplied role is no valid option: 'superuser'" in res.stderr
    assert "api, user, manager, support, admin" in res.stderr
    assert users.find_user(site_engine, "bob") is None

    res = cli(site, "add", "bob", "--role", "user", "--project", "p1", "--password", "pw")
    assert res.returncode == 2 and "only managers have projects" in res.stderr

    res = cli(site, "add", "bad:name", "--password", "pw")
    assert res.returncode == 2 and "must not contain ':'" in res.stderr

    # stdin is not a terminal and no password option: refuse rather than create a password-less user
    res = cli(site, "add", "bob", input="")
    assert res.returncode == 2 and "--password-stdin" in res.stderr
    assert users.find_user(site_engine, "bob") is None

    res = cli(site, "add", "bob", "--password", "pw", "--password-stdin", input="x\n")
    assert res.returncode == 2 and "not both" in res.stderr

    assert cli(site, "add", "bob", "--password", "pw").returncode == 0
    res = cli(site, "add", "bob", "--password", "pw")
    assert res.returncode == 4 and "Error: user 'bob' already exists" in res.stderr


def test_cli_help_warns_about_password_option(site):
    res = cli(site, "add", "--help")
    assert res.returncode == 0
    assert "process list" in " ".join(res.stdout.split())


def test_cli_list_formats(site, site_engine):
    users.add_user(site_engine, "alice", roles=["admin", "api"], name="Alice", email="a@x", password="pw")
    users.add_user(site_engine, "bob", roles=["user"])
    users.add_user(site_engine, "mgr", roles=["manager"], projects=["p1", "p2"])

    res = cli(site, "list", "--format", "json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == [
        {"username": "alice", "name": "Alice", "email": "a@x", "roles": ["admin", "api"], "projects": [],
         "authSource": 0},
        {"username": "bob", "name": "", "email": "", "roles": ["user"], "projects": [], "authSource": 0},
        {"username": "mgr", "name": "", "email": "", "roles": ["manager"], "projects": ["p1", "p2"],
         "authSource": 0},
    ]

    res = cli(site, "list", "--not-just-user", "--format", "json")
    assert [u["username"] for u in json.loads(res.stdout)] == ["alice", "mgr"]

    res = cli(site, "list")
    assert res.returncode == 0
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["username", "name", "email", "roles", "projects", "auth", "password"]
    assert lines[2].split() == ["alice", "Alice", "a@x", "admin,api", "local", "yes"]
    assert lines[3].split() == ["bob", "user", "local", "no"]
    assert lines[4].split() == ["mgr", "manager", "p1,p2", "local", "no"]

    res = cli(site, "list", "--format", "csv")
    assert res.stdout.splitlines()[:2] == ["username,name,email,roles,projects,auth,password",
                                           'alice,Alice,a@x,"admin,api",,local,yes']


def test_cli_show(site, site_engine):
    users.add_user(site_engine, "alice", roles=["admin", "api"], name="Alice", password="pw")
    res = cli(site, "show", "alice", "--format", "json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"username": "alice", "name": "Alice", "email": "", "roles": ["admin", "api"],
                                      "projects": [], "authSource": 0}
    res = cli(site, "show", "alice")
    table = {line.split()[0]: line.split()[1:] for line in res.stdout.splitlines()[2:]}
    assert table["roles"] == ["admin,api"] and table["password"] == ["yes"] and table["auth"] == ["local"]

    res = cli(site, "show", "nobody")
    assert res.returncode == 3 and "Error: no such user: 'nobody'" in res.stderr


def test_cli_delete(site, site_engine):
    users.add_user(site_engine, "alice", roles=["user"])
    res = cli(site, "delete", "alice", input="n\n")
    assert res.returncode == 1 and "Aborted" in res.stderr
    assert users.find_user(site_engine, "alice") is not None

    res = cli(site, "delete", "alice", input="y\n")
    assert res.returncode == 0 and "Deleted user 'alice'." in res.stdout
    assert users.find_user(site_engine, "alice") is None

    users.add_user(site_engine, "bob", roles=["user"])
    assert cli(site, "delete", "bob", "--yes").returncode == 0
    assert users.find_user(site_engine, "bob") is None

    res = cli(site, "delete", "nobody", "--yes")
    assert res.returncode == 3 and "no such user" in res.stderr


def test_cli_roles_and_projects(site, site_engine):
    users.add_user(site_engine, "u", roles=["user"])
    res = cli(site, "add-role", "u", "manager")
    assert res.returncode == 0 and "now has roles user,manager" in res.stdout
    res = cli(site, "add-role", "u", "manager")
    assert res.returncode == 2 and "already has role 'manager'" in res.stderr
    res = cli(site, "add-role", "u", "wizard")
    assert res.returncode == 2 and "no valid option" in res.stderr
    res = cli(site, "add-role", "nobody", "admin")
    assert res.returncode == 3

    assert cli(site, "add-project", "u", "p1").returncode == 0
    res = cli(site, "add-project", "u", "p1")
    assert res.returncode == 2 and "already manages project 'p1'" in res.stderr
    res = cli(site, "remove-role", "u", "manager")
    assert res.returncode == 2 and "still has assigned project(s): p1" in res.stderr
    res = cli(site, "remove-project", "u", "p2")
    assert res.returncode == 2 and "does not manage project 'p2'" in res.stderr
    res = cli(site, "remove-project", "u", "p1")
    assert res.returncode == 0 and "(no projects)" in res.stdout
    res = cli(site, "remove-role", "u", "manager")
    assert res.returncode == 0 and "now has roles user." in res.stdout
    res = cli(site, "remove-role", "u", "admin")
    assert res.returncode == 2 and "already deleted" in res.stderr
    res = cli(site, "add-project", "u", "p1")
    assert res.returncode == 2 and "is not a manager" in res.stderr
    assert users.get_user(site_engine, "u").roles == ["user"]


def test_cli_passwd(site, site_engine):
    users.add_user(site_engine, "u", roles=["user"], password="old")
    res = cli(site, "passwd", "u", "--password-stdin", input="n3w:pw\n")
    assert res.returncode == 0, res.stderr
    assert users.check_password(users.get_user(site_engine, "u"), "n3w:pw")
    res = cli(site, "passwd", "u", input="")
    assert res.returncode == 2 and "--password-stdin" in res.stderr
    res = cli(site, "passwd", "u", "--password-stdin", input="\n")
    assert res.returncode == 2 and "must not be empty" in res.stderr
    res = cli(site, "passwd", "nobody", "--password-stdin", input="x\n")
    assert res.returncode == 3


def test_upstream_flags_add_and_delete_user(site, site_engine):
    pytest.importorskip("cc_backend.commands.actions")
    res = run_cli("--config", str(site / "config.json"), "-add-user", "demo:admin,api:de:mo", cwd=site, env=FAST)
    assert res.returncode == 0, res.stderr
    demo = users.get_user(site_engine, "demo")
    assert demo.roles == ["admin", "api"] and users.check_password(demo, "de:mo")
    res = run_cli("--config", str(site / "config.json"), "-del-user", "demo", cwd=site, env=FAST)
    assert res.returncode == 0, res.stderr
    assert users.find_user(site_engine, "demo") is None
    # upstream: deleting an unknown user is silent success
    res = run_cli("--config", str(site / "config.json"), "-del-user", "demo", cwd=site, env=FAST)
    assert res.returncode == 0, res.stderr


def test_cli_help_needs_no_database(tmp_path):
    res = run_cli("user", "--help", cwd=tmp_path, env=FAST)
    assert res.returncode == 0
    for sub in ("add", "list", "show", "delete", "add-role", "remove-role", "add-project", "remove-project", "passwd"):
        assert sub in res.stdout
    assert not (tmp_path / "var").exists()


def test_cli_add_prompts_twice_on_a_terminal(site, site_engine):
    """On a terminal the password is asked for and confirmed (no echo)."""
    import os
    import pty
    import time
    from pathlib import Path

    exe = str(Path(sys.executable).parent / "cc-backend")
    pid, fd = pty.fork()
    if pid == 0:  # child: stdin/stdout/stderr are the pty
        os.chdir(site)
        os.execve(exe, [exe, "--config", str(site / "config.json"), "user", "add", "tty", "--role", "admin"],
                  {**os.environ, **FAST})
    output = b""

    def read_until(marker: bytes, timeout: float = 60) -> None:
        nonlocal output
        deadline = time.monotonic() + timeout
        while marker not in output:
            assert time.monotonic() < deadline, output
            try:
                output += os.read(fd, 1024)
            except OSError:
                break

    read_until(b"Password:")
    os.write(fd, b"tty:secret\n")
    read_until(b"Repeat for confirmation:")
    os.write(fd, b"tty:secret\n")
    read_until(b"Added user")
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, output
    assert b"tty:secret" not in output  # not echoed
    assert users.check_password(users.get_user(site_engine, "tty"), "tty:secret")
