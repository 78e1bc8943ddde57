"""Typed configuration: upstream's v1.5 ``config.json`` sections, the v1.0 flat layout, ``-file`` includes and ``.env`` secrets.

The names below are the configuration's public interface; the submodules hold one concern each
(durations, MySQL DSNs, section models, secrets, loading).
"""

from cc_backend.config.dsn import mysql_url, parse_mysql_db
from cc_backend.config.durations import format_go_duration, parse_go_duration
from cc_backend.config.loading import DEFAULT_CONFIG_PATH, load_config, parse_config
from cc_backend.config.secrets import DEFAULT_ENV_PATH, SECRET_NAMES, Secrets, load_env
from cc_backend.config.sections import SECTIONS, Config, LdapConfig

__all__ = [
    "DEFAULT_CONFIG_PATH", "DEFAULT_ENV_PATH", "SECRET_NAMES", "SECTIONS", "Config", "LdapConfig", "Secrets",
    "format_go_duration", "load_config", "load_env", "mysql_url", "parse_config", "parse_go_duration",
    "parse_mysql_db",
]
