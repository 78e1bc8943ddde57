"""Web sessions in tests: users from the command line, logins, cookies and the JSON error shape."""

from __future__ import annotations

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


def login(target: Requests, username: str, password: str, **kwargs) -> dict[str, str]:
    """Log in at a server or an app in process; the headers that carry the new session."""
    r = target.post("/login", data={"username": username, "password": password}, **kwargs)
    assert r.status_code == 302, r.text
    return {"Cookie": "session=" + cookie_attributes(set_cookie(r))["session"]}


def json_error(r: httpx.Response, status: int, reason: str) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["status"] == reason and body["error"], body
    return body["error"]
