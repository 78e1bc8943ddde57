"""``cc-backend user ...``: add, list, show and delete users, change roles, projects and passwords.

A thin layer over :mod:`cc_backend.auth.users`: domain errors propagate to ``main()``, which prints
them and exits with their code (2 invalid input, 3 not found, 4 conflict).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from cc_backend.commands.output import emit, emit_object, format_option

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from cc_backend.auth.users import User


def _engine() -> Engine:
    from cc_backend.commands.common import runtime

    return runtime().engine


def _read_password_stdin() -> str:
    line = sys.stdin.readline()
    return line.removesuffix("\n").removesuffix("\r")


def _obtain_password(password: str | None, password_stdin: bool, *, required: bool) -> str | None:
    """The password from --password, --password-stdin or a prompt (terminals only)."""
    if password is not None and password_stdin:
        raise click.UsageError("use either --password or --password-stdin, not both")
    if password_stdin:
        return _read_password_stdin()
    if password is not None:
        return password
    if sys.stdin.isatty():
        return click.prompt("Password", hide_input=True, confirmation_prompt=True,
                            default="" if not required else None, show_default=False)
    from cc_backend.errors import InvalidInput

    raise InvalidInput(
        "no password given and stdin is not a terminal: use --password-stdin"
        + ("" if required else ", or --no-password for a user that logs in with tokens only"),
        field="password",
    )


def _split_roles(roles: tuple[str, ...], roles_csv: str | None) -> list[str]:
    out = list(roles)
    if roles_csv:
        out += [r.strip() for r in roles_csv.split(",") if r.strip()]
    return out


def _display(user: User) -> dict:
    """Row for tables and CSV: lists joined with commas."""
    return {
        "username": user.username,
        "name": user.name,
        "email": user.email,
        "roles": ",".join(user.roles),
        "projects": ",".join(user.projects),
        "auth": user.auth_source.label,
        "password": "yes" if user.has_password else "no",
    }


@click.group("user")
def user_group() -> None:
    """Manage users: add, list, show, delete, roles, projects and passwords.

    \b
    Roles: api, user, manager, support, admin. Only managers have projects.
    """


@user_group.command("add")
@click.argument("username")
@click.option("--role", "roles", multiple=True, metavar="ROLE",
              help="Role to give (repeatable): api, user, manager, support, admin. Default: user.")
@click.option("--roles", "roles_csv", metavar="A,B", help="Roles as a comma-separated list, e.g. admin,api.")
@click.option("--project", "projects", multiple=True, metavar="PROJECT",
              help="Project a manager manages (repeatable).")
@click.option("--name", help="Full name.")
@click.option("--email", help="Email address.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@click.option("--password", metavar="PASSWORD",
              help="The password. Visible in the process list and shell history: prefer --password-stdin "
                   "or the prompt.")
@click.option("--no-password", is_flag=True,
              help="Create the user without a password (API users that log in with tokens only).")
@click.option("--ldap", is_flag=True, help="The user authenticates via LDAP (no local password).")
def add_cmd(username, roles, roles_csv, projects, name, email, password_stdin, password, no_password, ldap) -> None:
    """Add a local (or --ldap) user.

    Without a password option the password is asked for twice when stdin is a terminal.

    \b
    Example:
      cc-backend user add alice --roles admin,api --name "Alice A."
      echo "$PW" | cc-backend user add bob --role manager --project p1 --password-stdin
    """
    from cc_backend.auth.users import AuthSource, Role, add_user

    role_list = _split_roles(roles, roles_csv) or [Role.USER.label]
    if (ldap or no_password) and (password is not None or password_stdin):
        raise click.UsageError("--ldap and --no-password take no password")
    if ldap and no_password:
        raise click.UsageError("use either --ldap or --no-password, not both")
    pw: str | None = None
    if not ldap and not no_password:
        pw = _obtain_password(password, password_stdin, required=False)
    user = add_user(
        _engine(), username, password=pw or None, roles=role_list, projects=projects, name=name, email=email,
        auth_source=AuthSource.LDAP if ldap else AuthSource.LOCAL,
    )
    click.echo(f"Added user {user.username!r} with roles {','.join(user.roles)}"
               + (f" and projects {','.join(user.projects)}" if user.projects else "") + ".")
    if user.auth_source is AuthSource.LOCAL and not user.has_password and user.roles != [Role.API.label]:
        click.echo(f"Warning: {user.username!r} has no password, so password login is impossible "
                   f"(set one with `cc-backend user passwd {user.username}`).", err=True)


@user_group.command("list")
@format_option
@click.option("--not-just-user", is_flag=True,
              help="Only users with roles other than just 'user' (upstream's 'special users').")
def list_cmd(fmt, not_just_user) -> None:
    """List users."""
    from cc_backend.auth.users import list_users

    users = list_users(_engine(), not_just_user=not_just_user)
    emit([_display(u) for u in users], ["username", "name", "email", "roles", "projects", "auth", "password"], fmt,
         json_value=[u.to_json() for u in users])


@user_group.command("show")
@click.argument("username")
@format_option
def show_cmd(username, fmt) -> None:
    """Show one user."""
    from cc_backend.auth.users import get_user

    user = get_user(_engine(), username)
    emit_object(user.to_json() if fmt == "json" else _display(user), fmt)


@user_group.command("delete")
@click.argument("username")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def delete_cmd(username, yes) -> None:
    """Delete a user and its UI settings (exit 3 if there is no such user)."""
    from cc_backend.auth.users import delete_user, get_user

    engine = _engine()
    get_user(engine, username)  # NotFound -> "Error: no such user" and exit 3
    if not yes:
        click.confirm(f"Delete user {username!r}?", abort=True)
    delete_user(engine, username)
    click.echo(f"Deleted user {username!r}.")


@user_group.command("add-role")
@click.argument("username")
@click.argument("role")
def add_role_cmd(username, role) -> None:
    """Give a user one more role."""
    from cc_backend.auth.users import add_role

    user = add_role(_engine(), username, role)
    click.echo(f"User {username!r} now has roles {','.join(user.roles)}.")


@user_group.command("remove-role")
@click.argument("username")
@click.argument("role")
def remove_role_cmd(username, role) -> None:
    """Take a role away from a user (a manager's projects must be removed first)."""
    from cc_backend.auth.users import remove_role

    user = remove_role(_engine(), username, role)
    click.echo(f"User {username!r} now has roles {','.join(user.roles) or '(none)'}.")


@user_group.command("add-project")
@click.argument("username")
@click.argument("project")
def add_project_cmd(username, project) -> None:
    """Let a manager manage one more project."""
    from cc_backend.auth.users import add_project

    user = add_project(_engine(), username, project)
    click.echo(f"User {username!r} now manages {','.join(user.projects)}.")


@user_group.command("remove-project")
@click.argument("username")
@click.argument("project")
def remove_project_cmd(username, project) -> None:
    """Stop a manager managing a project."""
    from cc_backend.auth.users import remove_project

    user = remove_project(_engine(), username, project)
    click.echo(f"User {username!r} now manages {','.join(user.projects) or '(no projects)'}.")


@user_group.command("passwd")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the new password from the first line of stdin.")
@click.option("--password", metavar="PASSWORD",
              help="The new password. Visible in the process list and shell history: prefer --password-stdin "
                   "or the prompt.")
def passwd_cmd(username, password_stdin, password) -> None:
    """Set a local user's password (asked for twice when stdin is a terminal)."""
    from cc_backend.auth.users import get_user, set_password

    engine = _engine()
    get_user(engine, username)  # fail before prompting
    pw = _obtain_password(password, password_stdin, required=True)
    set_password(engine, username, pw or "")
    click.echo(f"Password of {username!r} changed.")
