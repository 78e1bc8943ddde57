"""Ed25519 keypairs in upstream's base64 format and the EdDSA JWTs signed with them."""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from cc_backend.errors import ConfigError, InvalidInput

if TYPE_CHECKING:
    from cc_backend.runtime import Runtime

#: The public half of the demo keypair shipped in upstream's configs/env-template.txt; never trust it in production.
DEMO_JWT_PUBLIC_KEY = "kzfYrYy+TzpanWZHJ5qSdMj5uKUWgq74BWhQG6copP0="

_ALGORITHM = "EdDSA"


class InvalidToken(InvalidInput):
    """A JWT that is malformed, expired, signed with the wrong key or with an algorithm other than EdDSA."""

    status = 401


def generate_keypair() -> tuple[str, str]:
    """A fresh Ed25519 keypair as (public, private) base64 strings, laid out like Go's ed25519 keys.

    The public key is the 32 raw bytes; the private key is 64 bytes, seed followed by public key,
    exactly what upstream's gen-keypair writes into JWT_PUBLIC_KEY and JWT_PRIVATE_KEY.
    """
    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes_raw()
    public = key.public_key().public_bytes_raw()
    return _b64(public), _b64(seed + public)


def generate_session_key(nbytes: int = 32) -> str:
    """A random base64 secret for SESSION_KEY."""
    return _b64(secrets.token_bytes(nbytes))


def load_private_key(b64: str, *, name: str = "JWT_PRIVATE_KEY") -> Ed25519PrivateKey:
    """Decode a base64 Ed25519 private key: Go's 64-byte form (seed || public) or a bare 32-byte seed.

    Raises ConfigError naming ``name`` when the value is not base64, has the wrong length, or its
    public half does not belong to its seed (a truncated or mixed-up key).
    """
    raw = _decode(b64, name)
    if len(raw) == 32:
        return Ed25519PrivateKey.from_private_bytes(raw)
    if len(raw) == 64:
        key = Ed25519PrivateKey.from_private_bytes(raw[:32])
        if key.public_key().public_bytes_raw() != raw[32:]:
            raise ConfigError(f"{name}: the public half of this 64-byte Ed25519 private key does not match its seed; the key is corrupt", field=name)
        return key
    raise ConfigError(
        f"{name}: expected base64 of a 64-byte Ed25519 private key (seed followed by public key) or of a 32-byte seed, got {len(raw)} bytes", field=name
    )


def load_public_key(b64: str, *, name: str = "JWT_PUBLIC_KEY") -> Ed25519PublicKey:
    """Decode a base64 Ed25519 public key (32 raw bytes); raises ConfigError naming ``name`` otherwise."""
    raw = _decode(b64, name)
    if len(raw) == 64:
        # A 64-byte value is a Go private key; accepting it here would hide a swapped .env entry.
        raise ConfigError(f"{name}: expected a 32-byte Ed25519 public key, got 64 bytes (is this the private key?)", field=name)
    if len(raw) != 32:
        raise ConfigError(f"{name}: expected base64 of a 32-byte Ed25519 public key, got {len(raw)} bytes", field=name)
    return Ed25519PublicKey.from_public_bytes(raw)


def public_key_of(private_key_b64: str) -> str:
    """The base64 public key that belongs to a base64 private key (either accepted form)."""
    return _b64(load_private_key(private_key_b64).public_key().public_bytes_raw())


def issue_jwt(
    username: str,
    roles: Iterable[str],
    private_key_b64: str | Ed25519PrivateKey,
    max_age: timedelta | None,
    now: datetime | float | None = None,
) -> str:
    """Sign an EdDSA JWT with claims ``sub``, ``roles``, ``iat`` and ``exp = iat + max_age``, as upstream's ``-jwt``.

    ``max_age=None`` leaves out ``exp`` (upstream does that when auth.jwts.max-age is unset), making a
    token that never expires. ``now`` (datetime or Unix seconds) defaults to the current time.
    """
    if not isinstance(username, str) or not username:
        raise InvalidInput("username: expected a non-empty string", field="username")
    role_list = [roles] if isinstance(roles, str) else list(roles)
    if not all(isinstance(r, str) for r in role_list):
        raise InvalidInput("roles: expected a list of role names", field="roles")
    key = private_key_b64 if isinstance(private_key_b64, Ed25519PrivateKey) else load_private_key(private_key_b64)
    issued_at = _unix(now)
    claims: dict[str, Any] = {"sub": username, "roles": role_list, "iat": issued_at}
    if max_age is not None:
        if max_age <= timedelta(0):
            raise InvalidInput(f"max_age: expected a positive duration, got {max_age}", field="max_age")
        claims["exp"] = issued_at + int(max_age.total_seconds())
    return jwt.encode(claims, key, algorithm=_ALGORITHM)


def verify_jwt(token: str, public_key_b64: str | Ed25519PublicKey, *, leeway: timedelta = timedelta(0)) -> dict[str, Any]:
    """Verify an EdDSA JWT and return its claims; raises InvalidToken otherwise.

    Only EdDSA is accepted, so "none" and HMAC tokens (which an attacker could sign with the public
    key as the secret) are refused. ``exp`` and ``nbf`` are checked when present; ``iat`` is not,
    matching upstream (golang-jwt v5 ignores it by default), so clock skew does not reject fresh tokens.
    """
    key = public_key_b64 if isinstance(public_key_b64, Ed25519PublicKey) else load_public_key(public_key_b64)
    if not isinstance(token, str) or not token:
        raise InvalidToken("token: expected a JWT string", field="token")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError as exc:
        raise InvalidToken(f"token is malformed: {exc}", field="token") from None
    algorithm = header.get("alg")
    if algorithm != _ALGORITHM:
        raise InvalidToken(f"token algorithm {algorithm!r} is not allowed; expected {_ALGORITHM}", field="token")
    try:
        claims: dict[str, Any] = jwt.decode(token, key, algorithms=[_ALGORITHM], leeway=leeway, options={"verify_iat": False, "verify_aud": False})
    except jwt.ExpiredSignatureError:
        raise InvalidToken("token is expired", field="token") from None
    except jwt.ImmatureSignatureError:
        raise InvalidToken("token is not valid yet (nbf in the future)", field="token") from None
    except jwt.InvalidSignatureError:
        raise InvalidToken("token signature is invalid (signed with another key?)", field="token") from None
    except jwt.InvalidTokenError as exc:
        raise InvalidToken(f"token is invalid: {exc}", field="token") from None
    return claims


def user_token(runtime: Runtime, username: str) -> tuple[str, list[str]]:
    """A signed API token for an existing user (upstream -jwt); returns (token, warnings)."""
    from cc_backend.auth.users import get_user

    user = get_user(runtime.engine, username)
    key = runtime.secrets.JWT_PRIVATE_KEY
    if not key:
        raise ConfigError("JWT_PRIVATE_KEY is not set (in .env or the environment): run `cc-backend gen-keypair`")
    jwts = runtime.config.auth.jwts
    max_age = jwts.max_age if jwts is not None else None
    warnings = []
    if "api" not in user.roles:
        warnings.append(f"user {username!r} does not have the api role: the token will not open /api/")
    return issue_jwt(user.username, user.roles, key, max_age), warnings


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _decode(b64: str, name: str) -> bytes:
    if not isinstance(b64, str) or not b64.strip():
        raise ConfigError(f"{name}: expected a base64-encoded Ed25519 key, got an empty value", field=name)
    text = b64.strip().strip("\"'")  # tolerate quotes copied along from a .env line
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{name}: expected a base64-encoded (standard alphabet) Ed25519 key, got text that is not base64", field=name) from None


def _unix(now: datetime | float | None) -> int:
    if now is None:
        return int(datetime.now(UTC).timestamp())
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise InvalidInput("now: expected a timezone-aware datetime", field="now")
        return int(now.timestamp())
    return int(now)
