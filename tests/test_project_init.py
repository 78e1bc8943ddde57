"""``--init``: the files it creates, their permissions, and its refusal to overwrite anything."""

from __future__ import annotations

import json
import stat
from datetime import timedelta
from pathlib import Path

import pytest

from cc_backend.auth.keys import DEMO_JWT_PUBLIC_KEY, issue_jwt, public_key_of, verify_jwt
from cc_backend.config import load_config, load_env
from cc_backend.errors import ConfigError
from cc_backend.project_init import CONFIG_TEMPLATE, init_db_path, init_project


def test_init_creates_the_project(tmp_path: Path) -> None:
    created = init_project(tmp_path)
    assert created == [
        tmp_path / "config.json",
        tmp_path / ".env",
        tmp_path / "var",
        tmp_path / "var" / "job-archive",
        tmp_path / "var" / "job-archive" / "version.txt",
    ]
    assert (tmp_path / "var" / "job-archive" / "version.txt").read_text() == "3\n"
    assert init_db_path(tmp_path) == tmp_path / "var" / "job.db"
    assert not init_db_path(tmp_path).exists()  # the caller's db layer creates it
    assert stat.S_IMODE((tmp_path / ".env").stat().st_mode) == 0o600


def test_config_is_the_upstream_template_and_loads(tmp_path: Path) -> None:
    init_project(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text()) == CONFIG_TEMPLATE
    config = load_config(tmp_path / "config.json")
    assert config.main.addr == "127.0.0.1:8080"
    assert config.main.emission_constant == 317
    assert config.main.resampling is not None and config.main.resampling.trigger == 300
    assert config.cron.commit_job_worker == timedelta(minutes=1)
    assert config.archive.path == "./var/job-archive"
    assert config.auth.jwts is not None and config.auth.jwts.max_age == timedelta(hours=2000)
    assert config.metric_store is None and config.metric_store_external == []


def test_env_holds_a_fresh_keypair_that_round_trips_a_jwt(tmp_path: Path) -> None:
    init_project(tmp_path)
    secrets = load_env(tmp_path / ".env", environ={})
    assert secrets.JWT_PUBLIC_KEY and secrets.JWT_PRIVATE_KEY and secrets.SESSION_KEY
    assert secrets.JWT_PUBLIC_KEY != DEMO_JWT_PUBLIC_KEY
    assert public_key_of(secrets.JWT_PRIVATE_KEY) == secrets.JWT_PUBLIC_KEY
    token = issue_jwt("admin", ["admin", "api"], secrets.JWT_PRIVATE_KEY, timedelta(hours=2000))
    assert verify_jwt(token, secrets.JWT_PUBLIC_KEY)["roles"] == ["admin", "api"]


def test_each_init_gets_its_own_secrets(tmp_path: Path) -> None:
    init_project(tmp_path / "a")
    init_project(tmp_path / "b")
    a, b = (load_env(tmp_path / d / ".env", environ={}) for d in "ab")
    assert a.JWT_PRIVATE_KEY != b.JWT_PRIVATE_KEY and a.SESSION_KEY != b.SESSION_KEY


@pytest.mark.parametrize("existing", ["config.json", ".env", "var"])
def test_init_refuses_to_overwrite_and_writes_nothing(tmp_path: Path, existing: str) -> None:
    target = tmp_path / existing
    if existing == "var":
        target.mkdir()
    else:
        target.write_text("keep me")
    with pytest.raises(ConfigError) as info:
        init_project(tmp_path)
    name = "var/" if existing == "var" else existing
    assert str(info.value) == f"{tmp_path}: refusing to initialise over existing {name}; move them away or use another directory"
    assert sorted(p.name for p in tmp_path.iterdir()) == [existing]
    if existing != "var":
        assert target.read_text() == "keep me"


def test_init_names_everything_that_exists(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "var").mkdir()
    with pytest.raises(ConfigError, match="existing config.json, var/;"):
        init_project(tmp_path)
    assert not (tmp_path / ".env").exists()
