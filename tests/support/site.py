"""Installations on disk for tests: config.json and .env writers, config edits, signed API tokens."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path


def write_site(folder: Path, main: dict, archive: Path, *, validate_user: bool = False,
               session_key: str = "abc") -> Path:
    """config.json (``main``, the file archive, JWTs of 2 h) and .env with a fresh Ed25519 key pair."""
    from cc_backend.auth.keys import generate_keypair

    jwts: dict[str, object] = {"max-age": "2h"}
    if validate_user:
        jwts["validate-user"] = True
    config = {"main": main, "archive": {"kind": "file", "path": str(archive)}, "auth": {"jwts": jwts}}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    public, private = generate_keypair()
    (folder / ".env").write_text(f'JWT_PUBLIC_KEY="{public}"\nJWT_PRIVATE_KEY="{private}"\nSESSION_KEY="{session_key}"\n')
    return folder


def main_section(db_url: str) -> dict:
    """config.json's main section for a database URL (SQLite: the URL's file)."""
    if db_url.startswith("sqlite"):
        return {"addr": "127.0.0.1:0", "db": db_url.removeprefix("sqlite:///")}
    return {"addr": "127.0.0.1:0", "db-driver": "mysql", "db": db_url}


def configure(site: Path, **main: object) -> dict:
    """Set ``main.<key>`` in the site's config.json (``_`` in keys becomes ``-``; ``validate_user`` is auth.jwts)."""
    config = json.loads((site / "config.json").read_text())
    for key, value in main.items():
        if key == "validate_user":
            config["auth"]["jwts"]["validate-user"] = value
        else:
            config["main"][key.replace("_", "-")] = value
    (site / "config.json").write_text(json.dumps(config, indent=2))
    return config


def secrets(site: Path):
    """The site's .env secrets, read without touching ``os.environ``."""
    from cc_backend.config import load_env

    return load_env(site / ".env", environ={})


def token(site: Path, roles: list[str], sub: str = "apiuser", *, key: str | None = None, now: float | None = None,
          lifetime: dt.timedelta = dt.timedelta(hours=1)) -> str:
    """An EdDSA JWT signed with the site's private key (or ``key``)."""
    from cc_backend.auth.keys import issue_jwt

    return issue_jwt(sub, roles, key or secrets(site).JWT_PRIVATE_KEY, lifetime, now=now)


def auth(jwt: str) -> dict[str, str]:
    """The header that carries an API token."""
    return {"X-Auth-Token": jwt}
