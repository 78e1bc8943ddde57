"""config.json loading: upstream examples, the v1.0 flat layout, includes, error messages, durations, DSNs, .env."""

from __future__ import annotations

import json
import logging
import shutil
import typing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from peerdata import UPSTREAM_SPEC
from pydantic import BaseModel
from sqlalchemy.engine import make_url

from cc_backend.config import (
    Config,
    Secrets,
    format_go_duration,
    load_config,
    load_env,
    mysql_url,
    parse_config,
    parse_go_duration,
    parse_mysql_db,
)
from cc_backend.errors import ConfigError

UPSTREAM = UPSTREAM_SPEC / "configs"
OUR_CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, indent=2))
    return path


@pytest.fixture
def upstream_dir(tmp_path: Path) -> Path:
    """A copy of upstream's example configs; ui-config.json is uiConfig.json under the name config.json includes."""
    for name in ("config.json", "config-demo.json", "uiConfig.json", "env-template.txt"):
        shutil.copy(UPSTREAM / name, tmp_path / name)
    shutil.copy(UPSTREAM / "uiConfig.json", tmp_path / "ui-config.json")
    return tmp_path


def config_error(data: Any, **kwargs: Any) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data, **kwargs)
    return str(info.value)


# -- upstream examples -------------------------------------------------------------------------------


def test_upstream_production_example_loads(upstream_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.chdir(upstream_dir.parent)  # includes resolve against the config's directory, not the cwd
    with caplog.at_level(logging.WARNING, logger="cc_backend.config"):
        config = load_config(upstream_dir / "config.json")
    assert config.source == upstream_dir / "config.json"
    assert config.main.addr == "0.0.0.0:443"
    assert config.main.user == "clustercockpit"
    assert config.main.api_allowed_ips == ["*"]
    assert config.main.enable_job_taggers is True
    assert config.main.api_subjects is not None and config.main.api_subjects.subject_job_event == "cc.job.event"
    assert config.main.api_subjects.job_concurrency == 8
    assert config.main.resampling is not None and config.main.resampling.resolutions == [240, 60]
    assert config.main.nodestate_retention is not None and config.main.nodestate_retention.age == 24
    assert config.nats is not None and config.nats.address == "nats://0.0.0.0:4222"
    assert config.auth.jwts is not None and config.auth.jwts.max_age == timedelta(hours=2000)
    assert config.cron.commit_job_worker == timedelta(minutes=1)
    assert config.archive.kind == "s3" and config.archive.bucket == "jobarchive"
    assert config.archive.retention is not None and config.archive.retention.age == 365
    # The legacy retention.location is read as target-path, with a warning.
    assert config.archive.retention.target_path == "./var/archive"
    assert "archive.retention.location is a legacy key" in caplog.text
    assert [e.scope for e in config.metric_store_external] == ["*", "fritz", "fritz-spr1tb", "alex"]
    assert config.metric_store is not None
    assert config.metric_store.retention_in_memory == timedelta(hours=24)
    assert config.metric_store.checkpoint_interval == timedelta(hours=12)
    assert config.metric_store.checkpoints.file_format == "wal"
    assert [s.cluster_tag for s in config.metric_store.nats_subscriptions] == ["fritz", "alex"]
    # ui came from ui-config.json
    assert config.ui.job_view.show_footprint is True
    assert config.ui.node_list.use_paging is True
    assert config.ui.metric_config.job_list_metrics == ["mem_bw", "flops_dp"]
    assert config.ui.metric_config.clusters[0].sub_clusters[0].job_list_metrics == ["mem_used", "flops_sp"]


def test_upstream_demo_example_loads(upstream_dir: Path) -> None:
    config = load_config(upstream_dir / "config-demo.json")
    assert config.main.addr == "127.0.0.1:8080"
    assert config.main.db == "./var/job.db"
    assert (config.cron.commit_job_worker, config.cron.duration_worker, config.cron.footprint_worker) == (
        timedelta(minutes=1),
        timedelta(minutes=3),
        timedelta(minutes=5),
    )
    assert config.metric_store_external[0].scope == "fritz"
    assert config.metric_store is not None and config.metric_store.memory_cap == 100
    assert config.archive.kind == "file" and config.archive.path == "./var/job-archive"  # upstream default


def test_missing_include_names_the_key_and_file(upstream_dir: Path) -> None:
    (upstream_dir / "ui-config.json").unlink()
    with pytest.raises(ConfigError) as info:
        load_config(upstream_dir / "config.json")
    assert str(info.value) == f'{upstream_dir / "config.json"}: ui-file: cannot load the "ui" section: {upstream_dir / "ui-config.json"}: file not found'


@pytest.mark.parametrize("name", ["config.json", "config-demo.json"])
def test_our_example_configs_load(name: str) -> None:
    config = load_config(OUR_CONFIGS / name)
    assert config.main.db_driver == "sqlite3"
    assert config.archive.kind == "file"
    assert config.database_url() == "sqlite:///./var/job.db"


def test_our_demo_config() -> None:
    config = load_config(OUR_CONFIGS / "config-demo.json")
    assert config.main.addr == "127.0.0.1:8080"
    assert config.archive.path == "./var/job-archive"
    assert config.auth.jwts is not None and config.auth.jwts.max_age == timedelta(hours=2000)
    # the built-in store, bounded (a day in at most 2 GB) and checkpointed hourly so a restart keeps the day
    store = config.metric_store
    assert store is not None and store.retention_in_memory == timedelta(hours=24) and store.memory_cap == 2
    assert store.checkpoint_interval == timedelta(hours=1) and store.checkpoints.directory == "./var/checkpoints"
    assert config.metric_store_external == []


# -- missing file and defaults -----------------------------------------------------------------------


def test_default_path_missing_gives_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(None)
    assert config.source is None
    assert config.main.addr == "localhost:8080"
    assert config.main.session_max_age == timedelta(hours=168)
    assert config.main.systemd_unit == "clustercockpit.service"
    assert config.main.db_config.busy_timeout_ms == 60000
    assert config.archive.kind == "file" and config.archive.path == "./var/job-archive"
    assert config.archive.compression == 7
    assert config.cron.commit_job_worker == timedelta(minutes=2)
    assert config.auth.jwts is None and config.nats is None and config.metric_store is None
    assert config.ui.plot_configuration.color_scheme[0] == "#00bfff"
    assert config.ui.metric_config.job_view_table_metrics == ["flops_any", "mem_bw", "mem_used"]
    assert config.database_url() == "sqlite:///./var/job.db"


def test_default_path_present_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_json(tmp_path / "config.json", {"main": {"addr": "0.0.0.0:9000"}})
    config = load_config(None)
    assert config.main.addr == "0.0.0.0:9000"
    assert config.source == Path("config.json")


def test_explicit_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.json")
    assert str(info.value) == f"{tmp_path / 'nope.json'}: configuration file not found"
    assert info.value.exit_code == 78


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected a JSON file, found a directory"):
        load_config(tmp_path)


def test_invalid_json_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{\n  "main": {\n    "addr": "x",\n  }\n}\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: invalid JSON at line 4 column 3:")


def test_duplicate_keys_warn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"main": {"addr": "a:1", "addr": "b:2"}}')
    with caplog.at_level(logging.WARNING, logger="cc_backend.config"):
        assert load_config(path).main.addr == "b:2"
    assert "duplicate keys addr" in caplog.text


# -- error messages: file, key path, expectation ------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"main": {"addr": 42}}, "config.json: main.addr: expected a string, got 42"),
        ({"main": {"validate": "yes"}}, 'config.json: main.validate: expected true or false, got "yes"'),
        ({"main": {"short-running-jobs-duration": "300"}}, 'config.json: main.short-running-jobs-duration: expected an integer, got "300"'),
        ({"main": {"short-running-jobs-duration": -1}}, "config.json: main.short-running-jobs-duration: expected a value >= 0, got -1"),
        ({"main": {"api-allowed-ips": "*"}}, 'config.json: main.api-allowed-ips: expected a list, got "*"'),
        ({"main": {"db-config": []}}, "config.json: main.db-config: expected an object, got a list []"),
        ({"main": {"db-driver": "postgres"}}, "config.json: main.db-driver: expected one of 'sqlite3' or 'mysql', got \"postgres\""),
        ({"main": {"resampling": {"trigger": 3}}}, "config.json: main.resampling.resolutions: required key is missing"),
        (
            {"main": {"session-max-age": 3600}},
            'config.json: main.session-max-age: expected a Go duration string such as "1h30m", got 3600 (a bare number has no unit; write e.g. "3600s")',
        ),
        (
            {"main": {}, "cron": {"duration-worker": "5 min"}},
            'config.json: cron.duration-worker: invalid duration "5 min": unknown unit " min" (use one of h, m, s, ms, us, ns)',
        ),
        ({"main": {}, "cron": {"duration-worker": "0"}}, 'config.json: cron.duration-worker: expected a positive duration, got "0"'),
        ({"main": {}, "auth": {"jwts": {}}}, "config.json: auth.jwts.max-age: required key is missing"),
        (
            {"main": {}, "auth": {"jwts": {"max-age": "2000h", "cookieName": "x"}}},
            'config.json: auth.jwts.cookieName: unknown key; did you mean "cookie-name"? (expected one of: max-age, cookie-name, validate-user, trusted-issuer, sync-user-on-login, update-user-on-login)',
        ),
        ({"main": {}, "archive": {"kind": "ftp"}}, "config.json: archive.kind: expected one of 'file', 's3' or 'sqlite', got \"ftp\""),
        ({"main": {}, "archive": {"kind": "file"}}, 'config.json: archive.path: required when kind is "file"'),
        ({"main": {}, "archive": {"kind": "sqlite"}}, 'config.json: archive.db-path: required when kind is "sqlite"'),
        (
            {"main": {}, "archive": {"kind": "file", "path": "a", "retention": {"policy": "delete"}}},
            'config.json: archive.retention.age: expected a number of days > 0 when policy is "delete" (0 would act on every job)',
        ),
        (
            {"main": {}, "archive": {"kind": "file", "path": "a", "retention": {"policy": "copy", "age": 3}}},
            'config.json: archive.retention.target-path: required when policy is "copy" and target-kind is "file"',
        ),
        ({"main": {}, "nats": {"username": "x"}}, "config.json: nats.address: required key is missing"),
        ({"main": {}, "metric-store": {"memory-cap": 1}}, "config.json: metric-store.retention-in-memory: required key is missing"),
        (
            {"main": {}, "metric-store": {"memory-cap": 1, "retention-in-memory": "1h", "cleanup": {"mode": "archive"}}},
            'config.json: metric-store.cleanup.directory: required when mode is "archive"',
        ),
        ({"main": {}, "metric-store-external": {"scope": "*"}}, 'config.json: metric-store-external: expected a list, got an object {"scope": "*"}'),
        ({"main": {}, "metric-store-external": [{"scope": "*", "url": "u"}]}, "config.json: metric-store-external[0].token: required key is missing"),
        (
            {"main": {}, "metric-store-external": [{"scope": "a", "url": "u", "token": "t"}, {"scope": "a", "url": "v", "token": "t"}]},
            'config.json: metric-store-external[1].scope: duplicate scope "a" (also in entry 0)',
        ),
        ({"main": {}, "ui": {"job-list": {"use-paging": 1}}}, "config.json: ui.job-list.use-paging: expected true or false, got 1"),
        ({"main": {}, "ui": {"plot-configuration": {"plots-per-row": 2.5}}}, "config.json: ui.plot-configuration.plots-per-row: expected an integer, got 2.5"),
        ({"main": {"https-cert-file": "c.pem"}}, "config.json: main.https-key-file: required when the other of https-cert-file/https-key-file is set"),
        ({}, 'config.json: main: required section is missing (upstream: "main configuration must be present")'),
        ([], 'config.json: expected a JSON object with sections such as "main", got a list []'),
    ],
)
def test_error_messages(data: Any, message: str) -> None:
    assert config_error(data) == message


def test_unknown_key_suggests_and_lists() -> None:
    message = config_error({"main": {"adr": "x"}})
    assert message.startswith('config.json: main.adr: unknown key; did you mean "addr"? (expected one of: addr, api-allowed-ips,')
    assert config_error({"main": {}, "crom": {}}).startswith('config.json: crom: unknown top-level key; did you mean "cron"?')


def test_unknown_keys_rejected_in_every_section() -> None:
    cases: list[tuple[str, dict[str, Any]]] = [("main", {}), ("auth", {}), ("cron", {}), ("nats", {"address": "a"}), ("ui", {}),
                          ("archive", {"kind": "file", "path": "a"}), ("metric-store", {"memory-cap": 1, "retention-in-memory": "1h"})]  # fmt: skip
    for section, base in cases:
        data: dict[str, Any] = {"main": {}, section: {**base, "bogus": 1}}
        assert config_error(data).startswith(f"config.json: {section}.bogus: unknown key"), section


def test_v10_key_next_to_main_gets_a_hint() -> None:
    assert (
        config_error({"main": {}, "addr": "x"})
        == 'config.json: addr: unknown top-level key; this v1.0 key belongs in the "main" section since v1.5 (as "addr")'
    )
    assert "clusters come from the job archive" in config_error({"main": {}, "clusters": []})


def test_all_errors_are_reported_at_once() -> None:
    message = config_error({"main": {"addr": 1, "validate": 2}, "cron": {"duration-worker": 3}})
    lines = message.splitlines()
    assert len(lines) == 3
    assert all(line.startswith("config.json: ") for line in lines)


def test_error_field_names_the_key_path() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"main": {"addr": 1}})
    assert info.value.field == "main.addr"


def test_ldap_bind_template_needs_placeholder() -> None:
    ldap = {"url": "ldap://x", "user-base": "ou=p", "search-dn": "cn=a", "user-bind": "uid=x,ou=p", "user-filter": "(uid=*)"}
    assert (
        config_error({"main": {}, "auth": {"ldap": ldap}})
        == 'config.json: auth.ldap.user-bind: expected a DN template containing "{username}", got "uid=x,ou=p"'
    )
    ldap["user-bind"] = "uid={username},ou=p"
    config = parse_config({"main": {}, "auth": {"ldap": ldap}})
    assert config.auth.ldap is not None and config.auth.ldap.username_attr == "gecos" and config.auth.ldap.uid_attr == "uid"


def test_session_max_age_empty_means_no_expiry() -> None:
    assert parse_config({"main": {"session-max-age": ""}}).main.session_max_age == timedelta(0)
    assert parse_config({"main": {"session-max-age": "0"}}).main.session_max_age == timedelta(0)


def test_python_names_are_not_config_keys() -> None:
    # Only upstream's hyphenated spelling is accepted in files; underscores are typos there.
    assert config_error({"main": {"short_running_jobs_duration": 5}}).startswith("config.json: main.short_running_jobs_duration: unknown key")


# -- legacy keys inside v1.5 sections ----------------------------------------------------------------


def test_legacy_archive_keys_are_mapped_with_warnings(caplog: pytest.LogCaptureFixture) -> None:
    data = {"main": {}, "archive": {"kind": "s3", "bucket": "b", "accessKey": "AK", "usePathStyle": True,
                                    "retention": {"policy": "delete", "age": 30, "includeDB": False}}}  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="cc_backend.config"):
        config = parse_config(data)
    assert config.archive.access_key == "AK" and config.archive.use_path_style is True
    assert config.archive.retention is not None and config.archive.retention.include_db is False
    assert "archive.accessKey is a legacy key; read as archive.access-key" in caplog.text
    assert "archive.retention.includeDB is a legacy key; read as archive.retention.include-db" in caplog.text


def test_legacy_key_loses_to_new_key(caplog: pytest.LogCaptureFixture) -> None:
    data = {"main": {}, "archive": {"kind": "file", "path": "a", "retention": {"policy": "move", "age": 1, "location": "old", "target-path": "new"}}}
    with caplog.at_level(logging.WARNING, logger="cc_backend.config"):
        config = parse_config(data)
    assert config.archive.retention is not None and config.archive.retention.target_path == "new"
    assert "ignored because archive.retention.target-path is also set" in caplog.text


# -- includes ----------------------------------------------------------------------------------------


def test_includes_are_relative_to_the_config_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "etc"
    conf.mkdir()
    write_json(conf / "main.json", {"addr": "0.0.0.0:1234"})
    write_json(conf / "stores.json", [{"scope": "*", "url": "http://m:8082", "token": "t"}])
    write_json(conf / "config.json", {"main-file": "main.json", "metric-store-external-file": "stores.json"})
    monkeypatch.chdir(tmp_path)
    config = load_config("etc/config.json")
    assert config.main.addr == "0.0.0.0:1234"
    assert config.metric_store_external[0].url == "http://m:8082"


def test_error_inside_include_names_the_included_file(tmp_path: Path) -> None:
    write_json(tmp_path / "ui.json", {"job-list": {"use-paging": "no"}})
    write_json(tmp_path / "config.json", {"main": {}, "ui-file": "ui.json"})
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "config.json")
    assert str(info.value) == f'{tmp_path / "ui.json"}: ui.job-list.use-paging: expected true or false, got "no"'


def test_include_errors(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text("{")
    assert config_error({"main": {}, "ui": {}, "ui-file": "x.json"}) == 'config.json: ui-file: section "ui" is given both inline and in ui-file; keep one'
    assert config_error({"main": {}, "ui-file": 3}) == 'config.json: ui-file: expected the path of a JSON file holding the "ui" section, got 3'
    message = config_error({"main": {}, "ui-file": "broken.json"}, base_dir=tmp_path)
    assert message.startswith(f'config.json: ui-file: cannot load the "ui" section: {tmp_path / "broken.json"}: invalid JSON at line 1')
    assert config_error({"main": {}, "frontend-file": "x.json"}).startswith('config.json: frontend-file: unknown include: "frontend" is not a section')


def test_https_file_keys_are_not_includes() -> None:
    config = parse_config({"main": {"https-cert-file": "c.pem", "https-key-file": "k.pem"}})
    assert config.main.https_cert_file == "c.pem"


# -- v1.0 flat layout --------------------------------------------------------------------------------

V10_CONFIG: dict[str, Any] = {
    "addr": "0.0.0.0:8080",
    "user": "clustercockpit",
    "group": "clustercockpit",
    "disable-authentication": False,
    "embed-static-files": True,
    "db-driver": "mysql",
    "db": "cockpit:s3cr@t:pw@tcp(db.example.org:3307)/ClusterCockpit?parseTime=true&charset=utf8mb4,utf8",
    "job-archive": {"kind": "file", "path": "/srv/cc/job-archive", "compression": 14,
                    "retention": {"policy": "move", "age": 180, "includeDB": True, "location": "/srv/cc/old-jobs"}},
    "disable-archive": False,
    "validate": True,
    "session-max-age": "24h",
    "stop-jobs-exceeding-walltime": 3600,
    "short-running-jobs-duration": 600,
    "ldap": {
        "url": "ldaps://ldap.example.org",
        "user_base": "ou=people,dc=example,dc=org",
        "search_dn": "cn=hpcmonitoring,ou=roadm,dc=example,dc=org",
        "user_bind": "uid={username},ou=people,dc=example,dc=org",
        "user_filter": "(&(objectclass=posixAccount))",
        "sync_interval": "24h",
        "sync_del_old_users": True,
    },
    "jwts": {"max-age": "2000h", "cookieName": "access_cc", "forceJWTValidationViaDatabase": True, "trustedExternalIssuer": "auth.example.org"},
    "ui-defaults": {"plot_general_lineWidth": 3},
    "clusters": [
        {
            "name": "fritz",
            "metricDataRepository": {"kind": "cc-metric-store", "url": "http://ccms.example.org:8082", "token": "fritz-token"},
            "filterRanges": {"numNodes": {"from": 1, "to": 64}, "duration": {"from": 0, "to": 86400}, "startTime": {"from": "2022-01-01T00:00:00Z", "to": None}},
        },
        {
            "name": "alex",
            "metricDataRepository": {"kind": "cc-metric-store", "url": "http://ccms.example.org:8083", "token": "alex-token"},
            "filterRanges": {"numNodes": {"from": 1, "to": 8}, "duration": {"from": 0, "to": 86400}, "startTime": {"from": "2022-01-01T00:00:00Z", "to": None}},
        },
        {
            "name": "woody",
            "metricDataRepository": {"kind": "influxdb-v2", "url": "http://influx:8086", "token": "x", "bucket": "b", "org": "o"},
        },
    ],
}  # fmt: skip


def test_v10_flat_config_is_mapped_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write_json(tmp_path / "config.json", V10_CONFIG)
    with caplog.at_level(logging.WARNING, logger="cc_backend.config"):
        config = load_config(path)
    main = config.main
    assert (main.addr, main.user, main.group, main.validate_json) == ("0.0.0.0:8080", "clustercockpit", "clustercockpit", True)
    assert main.session_max_age == timedelta(hours=24)
    assert main.stop_jobs_exceeding_walltime == 3600 and main.short_running_jobs_duration == 600
    assert main.db_driver == "mysql"
    url = make_url(config.database_url())
    assert url.drivername == "mysql+pymysql"
    assert (url.username, url.password, url.host, url.port, url.database) == ("cockpit", "s3cr@t:pw", "db.example.org", 3307, "ClusterCockpit")
    assert dict(url.query) == {"charset": "utf8mb4"}
    assert config.archive.path == "/srv/cc/job-archive" and config.archive.compression == 14
    assert config.archive.retention is not None and config.archive.retention.target_path == "/srv/cc/old-jobs"
    ldap = config.auth.ldap
    assert ldap is not None and ldap.user_base == "ou=people,dc=example,dc=org" and ldap.sync_interval == timedelta(hours=24)
    assert ldap.sync_del_old_users is True
    jwts = config.auth.jwts
    assert jwts is not None and jwts.max_age == timedelta(hours=2000)
    assert (jwts.cookie_name, jwts.validate_user, jwts.trusted_issuer) == ("access_cc", True, "auth.example.org")
    assert [(e.scope, e.url, e.token) for e in config.metric_store_external] == [
        ("fritz", "http://ccms.example.org:8082", "fritz-token"),
        ("alex", "http://ccms.example.org:8083", "alex-token"),
    ]
    assert not hasattr(config, "clusters")
    warning = next(r.getMessage() for r in caplog.records if "v1.0 flat layout" in r.getMessage())
    for text in ["addr -> main.addr", "db -> main.db", "job-archive -> archive", "ldap -> auth.ldap", "jwts -> auth.jwts",
                 'clusters[0].metricDataRepository -> metric-store-external[0] (scope "fritz")',
                 "ignored: ", "disable-archive", "ui-defaults", "clusters[0].filterRanges",
                 'clusters[2].metricDataRepository (kind "influxdb-v2"']:  # fmt: skip
        assert text in warning, text
    assert "parseTime have no PyMySQL equivalent" in caplog.text


def test_v10_db_from_environment(tmp_path: Path) -> None:
    data = {"addr": "localhost:8080", "db-driver": "mysql", "db": "env:CC_DSN"}
    config = parse_config(data, environ={"CC_DSN": "u:p@tcp(h:3306)/cc"})
    assert config.database_url() == "mysql+pymysql://u:p@h:3306/cc?charset=utf8mb4"
    assert config_error(data, environ={}) == 'config.json: db: environment variable CC_DSN named by "env:CC_DSN" is not set'


def test_v10_errors_use_the_v10_key_paths() -> None:
    bad_ldap = {**V10_CONFIG, "ldap": {**V10_CONFIG["ldap"], "user_base": 42}}
    assert config_error(bad_ldap) == "config.json: ldap.user_base: expected a string, got 42"
    bad_addr = {**V10_CONFIG, "addr": 8080}
    assert config_error(bad_addr) == "config.json: addr: expected a string, got 8080"
    no_url = {"addr": "x", "clusters": [{"name": "c", "metricDataRepository": {"kind": "cc-metric-store", "token": "t"}}]}
    assert config_error(no_url) == "config.json: clusters[0].metricDataRepository.url: required key is missing"
    assert config_error({"addr": "x", "job-archive": {"kind": "file"}}) == 'config.json: job-archive.path: required when kind is "file"'
    assert config_error({"addr": "x", "jwts": {"maxAge": "1h"}}).startswith("config.json: jwts.maxAge: unknown key")
    assert config_error({"addr": "x", "bogus": 1}).startswith("config.json: bogus: unknown key in a v1.0 (flat) config")
    assert (
        config_error({"addr": "x", "clusters": [{"metricDataRepository": {}}]})
        == "config.json: clusters[0].name: expected the cluster name as a non-empty string, got null"
    )


def test_v12_flat_spellings_are_mapped() -> None:
    data = {"addr": "x", "apiAllowedIPs": ["10.0.0.1"], "jwts": {"max-age": "1h", "validateUser": True, "trustedIssuer": "i", "syncUserOnLogin": True}}
    config = parse_config(data)
    assert config.main.api_allowed_ips == ["10.0.0.1"]
    assert config.auth.jwts is not None and config.auth.jwts.validate_user and config.auth.jwts.sync_user_on_login


# -- durations ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2000h", timedelta(hours=2000)),
        ("1m", timedelta(minutes=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("500ms", timedelta(milliseconds=500)),
        ("1.5h", timedelta(hours=1, minutes=30)),
        ("1h0m0s", timedelta(hours=1)),
        ("2h45m30.25s", timedelta(hours=2, minutes=45, seconds=30.25)),
        ("250us", timedelta(microseconds=250)),
        ("250\u00b5s", timedelta(microseconds=250)),
        ("1500ns", timedelta(microseconds=2)),
        ("0", timedelta(0)),
        ("-1m", timedelta(minutes=-1)),
        (".5s", timedelta(milliseconds=500)),
    ],
)
def test_parse_go_duration(text: str, expected: timedelta) -> None:
    assert parse_go_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", 'invalid duration "": empty'),
        ("10", 'invalid duration "10": missing unit (use one of h, m, s, ms, us, ns)'),
        ("1h30", 'invalid duration "1h30": missing unit (use one of h, m, s, ms, us, ns)'),
        ("3d", 'invalid duration "3d": unknown unit "d" (use one of h, m, s, ms, us, ns)'),
        ("h", 'invalid duration "h": expected a number followed by a unit (h, m, s, ms, us, ns), e.g. "1h30m"'),
        ("1h 30m", 'invalid duration "1h 30m": expected a number followed by a unit (h, m, s, ms, us, ns), e.g. "1h30m"'),
    ],
)
def test_parse_go_duration_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_go_duration(text)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("value", "text"),
    [(timedelta(hours=2000), "2000h"), (timedelta(minutes=90), "1h30m"), (timedelta(milliseconds=500), "500ms"), (timedelta(0), "0s"),
     (timedelta(seconds=90.5), "1m30.5s"), (timedelta(microseconds=7), "7us"), (timedelta(minutes=-5), "-5m")],
)  # fmt: skip
def test_format_go_duration_round_trips(value: timedelta, text: str) -> None:
    assert format_go_duration(value) == text
    assert parse_go_duration(text) == value


def test_durations_serialise_in_go_syntax() -> None:
    dumped = parse_config({"main": {}, "auth": {"jwts": {"max-age": "2000h"}}}).model_dump(mode="json", by_alias=True)
    assert dumped["auth"]["jwts"]["max-age"] == "2000h"
    assert dumped["cron"] == {"commit-job-worker": "2m", "duration-worker": "5m", "footprint-worker": "10m"}
    assert dumped["main"]["session-max-age"] == "168h"


# -- database URL / MySQL DSN ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("db", "user", "password", "host", "port", "database", "query"),
    [
        ("cc:secret@tcp(db:3306)/cc", "cc", "secret", "db", 3306, "cc", {"charset": "utf8mb4"}),
        ("cc:p@ss:w/rd@tcp(127.0.0.1:3306)/cc", "cc", "p@ss:w/rd", "127.0.0.1", 3306, "cc", {"charset": "utf8mb4"}),
        ("cc:%?#&=+ é@tcp(h:1)/cc?charset=utf8", "cc", "%?#&=+ é", "h", 1, "cc", {"charset": "utf8"}),
        ("cc:)/(@tcp(h)/cc", "cc", ")/(", "h", 3306, "cc", {"charset": "utf8mb4"}),
        ("cc@tcp([::1]:3307)/cc", "cc", None, "::1", 3307, "cc", {"charset": "utf8mb4"}),
        ("cc:pw@/cc", "cc", "pw", "127.0.0.1", 3306, "cc", {"charset": "utf8mb4"}),
        ("/cc", None, None, "127.0.0.1", 3306, "cc", {"charset": "utf8mb4"}),
        ("cc:pw@unix(/run/mysqld/mysqld.sock)/cc", "cc", "pw", None, None, "cc", {"unix_socket": "/run/mysqld/mysqld.sock", "charset": "utf8mb4"}),
        ("cc:pw@tcp(h:3306)/cc?timeout=5s&readTimeout=1m&collation=utf8mb4_bin&parseTime=true",
         "cc", "pw", "h", 3306, "cc", {"connect_timeout": "5", "read_timeout": "60", "collation": "utf8mb4_bin", "charset": "utf8mb4"}),
        ("mysql+pymysql://cc:p%40ss%2Fw@db.example:3306/cc", "cc", "p@ss/w", "db.example", 3306, "cc", {"charset": "utf8mb4"}),
        ("mysql://cc:pw@db/cc?charset=latin1", "cc", "pw", "db", None, "cc", {"charset": "latin1"}),
    ],
)  # fmt: skip
def test_mysql_dsn_to_url(db: str, user: str | None, password: str | None, host: str | None, port: int | None, database: str, query: dict[str, str]) -> None:
    config = parse_config({"main": {"db-driver": "mysql", "db": db}})
    url = make_url(config.database_url())
    assert url.drivername == "mysql+pymysql"
    assert (url.username, url.password, url.host, url.port, url.database) == (user, password, host, port, database)
    assert dict(url.query) == query


def test_mysql_url_escapes_special_characters() -> None:
    url = mysql_url("user:p@ss:w/rd%?#@tcp(db:3306)/cc")
    assert url == "mysql+pymysql://user:p%40ss%3Aw%2Frd%25%3F%23@db:3306/cc?charset=utf8mb4"
    assert parse_mysql_db("user:p@ss:w/rd%?#@tcp(db:3306)/cc").password == "p@ss:w/rd%?#"


@pytest.mark.parametrize(
    ("db", "message"),
    [
        (
            "./var/job.db",
            'expected a MySQL DSN like "user:password@tcp(host:3306)/dbname" or a URL like "mysql+pymysql://user:password@host:3306/dbname", got "./var/job.db"',
        ),
        ("cc:pw@tcp(h:3306)/", 'the MySQL DSN names no database (expected ".../dbname")'),
        ("cc:pw@tcp(h:port)/cc", 'invalid port "port" in MySQL address "h:port"'),
        ("cc:pw@udp(h:1)/cc", 'unsupported network "udp" in MySQL DSN (expected tcp or unix)'),
        ("postgresql://u:p@h/db", 'expected a mysql:// or mysql+pymysql:// URL for db-driver "mysql", got scheme "postgresql"'),
        ("mysql+pymysql://u:p@h/", 'the MySQL URL names no database (expected ".../dbname")'),
    ],
)
def test_mysql_dsn_errors(db: str, message: str) -> None:
    assert config_error({"main": {"db-driver": "mysql", "db": db}}) == f"config.json: main.db: {message}"


def test_mysql_needs_a_dsn_rather_than_the_default_path() -> None:
    assert config_error({"main": {"db-driver": "mysql"}}).startswith("config.json: main.db: expected a MySQL DSN")


@pytest.mark.parametrize(
    ("db", "url"),
    [("./var/job.db", "sqlite:///./var/job.db"), ("/srv/cc/job.db", "sqlite:////srv/cc/job.db"), ("var/my job?.db", "sqlite:///var/my job%3F.db")],
)
def test_sqlite_url_keeps_relative_paths_relative(db: str, url: str) -> None:
    config = parse_config({"main": {"db": db}})
    assert config.database_url() == url
    assert make_url(url).database == db


# -- .env --------------------------------------------------------------------------------------------


def test_env_file_fills_gaps_but_does_not_override(upstream_dir: Path) -> None:
    shutil.copy(upstream_dir / "env-template.txt", upstream_dir / ".env")
    environ = {"JWT_PUBLIC_KEY": "from-the-environment", "OID_CLIENT_ID": "oidc-client"}
    secrets = load_env(upstream_dir / ".env", environ=environ)
    assert secrets.JWT_PUBLIC_KEY == "from-the-environment"
    assert secrets.JWT_PRIVATE_KEY is not None and secrets.JWT_PRIVATE_KEY.startswith("dtPC/")
    assert secrets.SESSION_KEY == "67d829bf61dc5f87a73fd814e2c9f629"
    assert secrets.LDAP_ADMIN_PASSWORD == "mashup"
    assert secrets.CROSS_LOGIN_JWT_PUBLIC_KEY is None  # "" in the file counts as unset
    assert secrets.OID_CLIENT_ID == "oidc-client"
    assert secrets.source == upstream_dir / ".env"
    assert environ["JWT_PUBLIC_KEY"] == "from-the-environment"
    assert environ["LDAP_ADMIN_PASSWORD"] == "mashup"  # copied into the environment, like godotenv.Load


def test_missing_env_file_is_fine(tmp_path: Path) -> None:
    secrets = load_env(tmp_path / ".env", environ={"SESSION_KEY": "abc"})
    assert secrets == Secrets(SESSION_KEY="abc")
    assert secrets.source is None


def test_env_directory_is_an_error(tmp_path: Path) -> None:
    (tmp_path / ".env").mkdir()
    with pytest.raises(ConfigError, match=r"\.env: expected a file"):
        load_env(tmp_path / ".env", environ={})


def test_secrets_repr_hides_values() -> None:
    text = repr(Secrets(JWT_PRIVATE_KEY="very-secret", SESSION_KEY=None))
    assert "very-secret" not in text
    assert "JWT_PRIVATE_KEY=***" in text and "SESSION_KEY=None" in text


# -- documentation -----------------------------------------------------------------------------------


def _models(model: type[BaseModel], seen: set[type[BaseModel]]) -> None:
    if model in seen:
        return
    seen.add(model)
    for field in model.model_fields.values():
        stack = [field.annotation]
        while stack:
            tp = stack.pop()
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                _models(tp, seen)
            stack.extend(typing.get_args(tp))


def test_every_field_and_section_is_documented() -> None:
    seen: set[type[BaseModel]] = set()
    _models(Config, seen)
    assert len(seen) > 20
    for model in seen:
        assert model.__doc__, model.__name__
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name}"
    schema = Config.model_json_schema(by_alias=True)
    assert schema["$defs"]["CronConfig"]["properties"]["commit-job-worker"]["default"] == "2m"
    assert "metric-store-external" in schema["properties"]
