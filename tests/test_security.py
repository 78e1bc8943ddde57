"""The role rules of cc_backend.auth.security, and that the front ends leave role checks to them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cc_backend.auth.security import KNOWN_ROLES, Viewer, admits_api, admits_userapi, may_administer, may_sign_token_for

ROOT = Path(__file__).resolve().parents[1]


def viewer(*roles: str, username: str = "u") -> Viewer:
    return Viewer(username=username, roles=roles)


@pytest.mark.parametrize("roles, api, userapi", [
    (("api",), True, True),
    (("admin", "api"), True, True),
    (("api", "admin", "user"), True, True),
    (("api", "user"), False, True),
    (("api", "manager"), False, True),
    (("api", "support"), False, True),
    (("admin",), False, False),
    (("user",), False, False),
    (("admin", "support"), False, False),
    ((), False, False),
])
def test_route_admission_follows_upstream(roles, api, userapi):
    """upstream internal/auth/auth.go: /api needs exactly [api] or admin plus api; /userapi api plus any role."""
    assert admits_api(viewer(*roles)) is api
    assert admits_userapi(viewer(*roles)) is userapi


def test_administration_is_for_admins():
    assert may_administer(viewer("admin"))
    assert may_administer(None)  # the command line acts as a local administrator
    for roles in (("api",), ("support", "api"), ("manager",), ("user",), ()):
        assert not may_administer(viewer(*roles)), roles


def test_tokens_for_oneself_or_by_an_admin():
    assert may_sign_token_for(viewer("user", username="ann"), "ann")
    assert not may_sign_token_for(viewer("user", username="ann"), "bob")
    assert not may_sign_token_for(viewer("support", "manager", username="ann"), "bob")
    assert may_sign_token_for(viewer("admin", username="ann"), "bob")
    assert not may_sign_token_for(viewer("user", username=""), "")


def test_known_roles_are_upstreams():
    assert KNOWN_ROLES == {"api", "user", "manager", "support", "admin"}


def test_front_ends_check_roles_only_through_the_core():
    """REST handlers, GraphQL resolvers and commands ask auth/security.py; none compares role names itself."""
    inline = re.compile(r"""has_role\(|\.roles\b[^\n]*\b(in|==)\b|["'](admin|support|manager)["']\s+(not\s+)?in\b""")
    offenders = []
    for folder in ("server", "commands"):
        for path in (ROOT / folder).rglob("*.py"):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if inline.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []
