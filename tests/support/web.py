"""Web sessions in tests: users from the command line, logins, cookies and the JSON error shape."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from support.cli import cli

if TYPE_CHECKING:
    from support.server import Requests


def add_users(site: Path, *specs: str) -> None:
    for spec in specs:
        r = cli(site, "-add-user", spec)
        assert r.returncode == 0, r.stderr


def set_cookie(r: httpx.Response) -> str:
    """The one Set-Cookie header of ``r`` for the session cookie."""
    headers = [h for h in r.headers.get_list("set-cookie") if h.startswith("session=")]
    assert len(headers) == 1, r.headers
    return headers[0]


def cookie_attributes(header: str) -> dict[str, str]:
    """``{"session": value, "Path": "/", "HttpOnly": "", ...}`` of one Set-Cookie header."""
    out = {}
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        out[key] = value
    return out


def login(target: Requests, username: str, password: str, *, csrf: bool = True, **kwargs) -> dict[str, str]:
    """Log in at a server or an app in process; the headers that carry the new session.

    With ``csrf`` they carry the session's CSRF token too (``X-CSRF-Token``), as the web UI's
    requests do: state changes of /config/ and /frontend/ need it.
    """
    r = target.post("/login", data={"username": username, "password": password}, **kwargs)
    assert r.status_code == 302, r.text
    headers = {"Cookie": "session=" + cookie_attributes(set_cookie(r))["session"]}
    if csrf:
        headers["X-CSRF-Token"] = csrf_token(target, headers, **kwargs)
    return headers


CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]*)">')


def csrf_token(target: Requests, headers: dict[str, str], **kwargs) -> str:
    """The CSRF token of the session in ``headers``: the ``<meta name="csrf-token">`` of its home page."""
    r = target.get("/", headers=headers, **kwargs)
    assert r.status_code == 200, (r.status_code, r.text[:500])
    found = CSRF_META.search(r.text)
    assert found and found.group(1), "the page has no CSRF token"
    return found.group(1)


def json_error(r: httpx.Response, status: int, reason: str) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["status"] == reason and body["error"], body
    return body["error"]
