"""Secrets from ``.env`` and the environment (``Secrets``, ``load_env``), never printed."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import MutableMapping
from pathlib import Path

from cc_backend.errors import ConfigError

#: Where ``load_env()`` looks by default.
DEFAULT_ENV_PATH = Path(".env")


@dataclasses.dataclass(frozen=True)
class Secrets:
    """Secrets from the environment and ``.env``; empty values count as unset."""

    JWT_PUBLIC_KEY: str | None = None
    """Base64 Ed25519 public key verifying this server's JWTs."""
    JWT_PRIVATE_KEY: str | None = None
    """Base64 Ed25519 private key (64 bytes, Go layout) signing this server's JWTs."""
    SESSION_KEY: str | None = None
    """Base64 secret for session cookies; required when authentication is enabled."""
    LDAP_ADMIN_PASSWORD: str | None = None
    """Bind password of auth.ldap.search-dn."""
    CROSS_LOGIN_JWT_PUBLIC_KEY: str | None = None
    """Base64 Ed25519 public key of the trusted external JWT issuer."""
    CROSS_LOGIN_JWT_HS512_KEY: str | None = None
    """Base64 HMAC key of HS256/HS512 login tokens (/jwt-login); unset disables them."""
    OID_CLIENT_ID: str | None = None
    """OpenID Connect client id."""
    OID_CLIENT_SECRET: str | None = None
    """OpenID Connect client secret."""
    source: Path | None = None
    """The .env file that was read, or None if there was none."""

    def __repr__(self) -> str:
        # Never print secret values (tracebacks, debug logs); say only which are set.
        shown = ", ".join(f"{f.name}={'***' if getattr(self, f.name) else None}" for f in dataclasses.fields(self) if f.name != "source")
        return f"Secrets({shown}, source={self.source!r})"


SECRET_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Secrets) if f.name != "source")


def load_env(path: str | os.PathLike[str] = DEFAULT_ENV_PATH, *, environ: MutableMapping[str, str] | None = None) -> Secrets:
    """Read ``.env`` into ``environ`` (default ``os.environ``) without overriding variables already set, and return the secrets.

    A missing file is fine (upstream v1.5 aborts; v1.0 did not): everything can come from the real
    environment, e.g. systemd ``EnvironmentFile`` or container secrets.
    """
    from dotenv import dotenv_values  # lazy: only needed when .env is read

    env = os.environ if environ is None else environ
    env_path = Path(path)
    source: Path | None = None
    if env_path.is_file():
        try:
            values = dotenv_values(env_path)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{env_path}: cannot read: {exc}") from None
        source = env_path
        for key, value in values.items():
            # Like godotenv.Load upstream: the file fills gaps, the real environment wins.
            if value is not None and key not in env:
                env[key] = value
    elif env_path.exists():
        raise ConfigError(f"{env_path}: expected a file of KEY=value lines, found something else")
    return Secrets(**{name: env.get(name) or None for name in SECRET_NAMES}, source=source)
