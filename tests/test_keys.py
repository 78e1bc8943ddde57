"""Ed25519 keypairs in upstream's format and EdDSA JWTs: issuing, verifying, refusing bad tokens and keys."""

from __future__ import annotations

import base64
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from peerdata import UPSTREAM_SPEC

from cc_backend.auth.keys import (
    DEMO_JWT_PUBLIC_KEY,
    InvalidToken,
    generate_keypair,
    issue_jwt,
    load_private_key,
    load_public_key,
    public_key_of,
    verify_jwt,
)
from cc_backend.config import load_env
from cc_backend.errors import ConfigError, InvalidInput

UPSTREAM = UPSTREAM_SPEC / "configs"


@pytest.fixture
def demo_keys(tmp_path: Path) -> tuple[str, str]:
    """(public, private) of upstream's demo keypair, read from a copy of env-template.txt."""
    shutil.copy(UPSTREAM / "env-template.txt", tmp_path / ".env")
    secrets = load_env(tmp_path / ".env", environ={})
    assert secrets.JWT_PUBLIC_KEY and secrets.JWT_PRIVATE_KEY
    return secrets.JWT_PUBLIC_KEY, secrets.JWT_PRIVATE_KEY


@pytest.fixture
def demo_token(tmp_path: Path) -> str:
    """The demo JWT upstream put into config-demo.json, signed by Go with the demo private key."""
    shutil.copy(UPSTREAM / "config-demo.json", tmp_path / "config-demo.json")
    token: str = json.loads((tmp_path / "config-demo.json").read_text())["metric-store-external"][0]["token"]
    return token


def test_generated_keypair_has_the_go_layout() -> None:
    public, private = generate_keypair()
    public_raw, private_raw = base64.b64decode(public, validate=True), base64.b64decode(private, validate=True)
    assert len(public_raw) == 32 and len(private_raw) == 64
    assert private_raw[32:] == public_raw  # Go's ed25519.PrivateKey is seed || public key
    assert public_key_of(private) == public
    assert generate_keypair() != (public, private)


def test_demo_keypair_loads_and_signs(demo_keys: tuple[str, str]) -> None:
    public, private = demo_keys
    assert public == DEMO_JWT_PUBLIC_KEY
    assert public_key_of(private) == public
    token = issue_jwt("demo", ["admin", "api"], private, timedelta(hours=2000))
    claims = verify_jwt(token, public)
    assert claims["sub"] == "demo" and claims["roles"] == ["admin", "api"]
    assert claims["exp"] - claims["iat"] == 2000 * 3600


def test_go_signed_demo_token_verifies(demo_keys: tuple[str, str], demo_token: str) -> None:
    # Upstream's token expired on 2026-04-10; its signature still proves byte-for-byte compatibility.
    with pytest.raises(InvalidToken, match="expired"):
        verify_jwt(demo_token, demo_keys[0])
    claims = verify_jwt(demo_token, demo_keys[0], leeway=timedelta(days=36500))
    assert claims == {"exp": 1775778844, "iat": 1768578844, "roles": ["admin", "api"], "sub": "demo"}


def test_token_header_and_claims_match_upstream() -> None:
    _, private = generate_keypair()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    token = issue_jwt("alice", ["user"], private, timedelta(hours=1), now=now)
    assert jwt.get_unverified_header(token) == {"alg": "EdDSA", "typ": "JWT"}
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims == {"sub": "alice", "roles": ["user"], "iat": int(now.timestamp()), "exp": int(now.timestamp()) + 3600}


def test_no_max_age_means_no_expiry() -> None:
    public, private = generate_keypair()
    token = issue_jwt("api-user", ["api"], private, None, now=0)
    assert "exp" not in verify_jwt(token, public)


def test_32_byte_seed_is_accepted() -> None:
    public, private = generate_keypair()
    seed = base64.b64encode(base64.b64decode(private)[:32]).decode()
    token = issue_jwt("bob", ["user"], seed, timedelta(minutes=5))
    assert verify_jwt(token, public)["sub"] == "bob"
    assert public_key_of(seed) == public


def test_key_objects_are_accepted() -> None:
    public, private = generate_keypair()
    token = issue_jwt("carol", [], load_private_key(private), timedelta(minutes=5))
    assert verify_jwt(token, load_public_key(public))["roles"] == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "JWT_PRIVATE_KEY: expected a base64-encoded Ed25519 key, got an empty value"),
        ("not base64 at all!", "JWT_PRIVATE_KEY: expected a base64-encoded (standard alphabet) Ed25519 key, got text that is not base64"),
        (
            base64.b64encode(b"x" * 16).decode(),
            "JWT_PRIVATE_KEY: expected base64 of a 64-byte Ed25519 private key (seed followed by public key) or of a 32-byte seed, got 16 bytes",
        ),
    ],
)
def test_garbage_private_keys(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_private_key(value)
    assert str(info.value) == message
    assert info.value.field == "JWT_PRIVATE_KEY"


def test_corrupt_64_byte_private_key() -> None:
    _, private = generate_keypair()
    raw = bytearray(base64.b64decode(private))
    raw[-1] ^= 0xFF
    with pytest.raises(ConfigError, match="does not match its seed"):
        load_private_key(base64.b64encode(bytes(raw)).decode())


def test_garbage_public_keys() -> None:
    public, private = generate_keypair()
    with pytest.raises(ConfigError, match=r"JWT_PUBLIC_KEY: expected a 32-byte Ed25519 public key, got 64 bytes \(is this the private key\?\)"):
        load_public_key(private)
    with pytest.raises(ConfigError, match="CROSS_LOGIN_JWT_PUBLIC_KEY: expected base64 of a 32-byte Ed25519 public key, got 3 bytes"):
        load_public_key("AAAA", name="CROSS_LOGIN_JWT_PUBLIC_KEY")
    assert load_public_key(f'"{public}"\n')  # quotes and whitespace copied from a .env line


def test_expired_token_is_rejected() -> None:
    public, private = generate_keypair()
    token = issue_jwt("alice", ["user"], private, timedelta(minutes=1), now=datetime.now(UTC) - timedelta(hours=1))
    with pytest.raises(InvalidToken, match="token is expired") as info:
        verify_jwt(token, public)
    assert info.value.status == 401
    assert isinstance(info.value, InvalidInput)


def test_wrong_key_is_rejected() -> None:
    _, private = generate_keypair()
    other_public, _ = generate_keypair()
    token = issue_jwt("alice", ["user"], private, timedelta(minutes=5))
    with pytest.raises(InvalidToken, match="signature is invalid"):
        verify_jwt(token, other_public)


def test_tampered_claims_are_rejected() -> None:
    public, private = generate_keypair()
    header, _, signature = issue_jwt("alice", ["user"], private, timedelta(minutes=5)).split(".")
    forged = base64.urlsafe_b64encode(json.dumps({"sub": "alice", "roles": ["admin"]}).encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidToken, match="signature is invalid"):
        verify_jwt(f"{header}.{forged}.{signature}", public)


def _b64url(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_alg_none_is_rejected() -> None:
    public, _ = generate_keypair()
    token = f"{_b64url({'alg': 'none', 'typ': 'JWT'})}.{_b64url({'sub': 'admin', 'roles': ['admin']})}."
    with pytest.raises(InvalidToken, match="algorithm 'none' is not allowed; expected EdDSA"):
        verify_jwt(token, public)


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # the attacker's short key, on purpose
@pytest.mark.parametrize("algorithm", ["HS256", "HS512"])
def test_hmac_signed_with_the_public_key_is_rejected(algorithm: str) -> None:
    # The classic confusion attack: an HMAC token keyed with the (public) verification key.
    public, _ = generate_keypair()
    token = jwt.encode({"sub": "admin", "roles": ["admin"]}, base64.b64decode(public), algorithm=algorithm)
    with pytest.raises(InvalidToken, match=f"algorithm '{algorithm}' is not allowed"):
        verify_jwt(token, public)


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "eyJhbGciOiJFZERTQSJ9.%%%.x"])
def test_malformed_tokens_are_rejected(token: str) -> None:
    public, _ = generate_keypair()
    with pytest.raises(InvalidToken):
        verify_jwt(token, public)


def test_issue_jwt_checks_its_input() -> None:
    _, private = generate_keypair()
    with pytest.raises(InvalidInput, match="username"):
        issue_jwt("", ["user"], private, timedelta(hours=1))
    with pytest.raises(InvalidInput, match="max_age: expected a positive duration"):
        issue_jwt("alice", ["user"], private, timedelta(0))
    with pytest.raises(InvalidInput, match="timezone-aware"):
        issue_jwt("alice", ["user"], private, timedelta(hours=1), now=datetime(2026, 1, 1))
