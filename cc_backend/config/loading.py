"""Reading ``config.json``: ``<section>-file`` includes, the v1.0 flat layout mapped onto v1.5, validation messages naming file and key."""

from __future__ import annotations

import difflib
import json
import logging
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from cc_backend.config.messages import show_value
from cc_backend.config.sections import (
    PROMETHEUS_PLACEHOLDER,
    PROMETHEUS_PLACEHOLDERS,
    SECTIONS,
    Config,
    ExternalMetricStoreConfig,
)
from cc_backend.errors import ConfigError

Loc = tuple[str | int, ...]

log = logging.getLogger("cc_backend.config")

#: Where ``load_config(None)`` looks; relative to the working directory, as upstream's ``-config`` default.
DEFAULT_CONFIG_PATH = Path("config.json")

# Keys that older upstream versions wrote inside v1.5 sections: old name -> new name (None = ignored).
_LEGACY_KEYS: dict[Loc, dict[str, str | None]] = {
    ("archive",): {"dbPath": "db-path", "accessKey": "access-key", "secretKey": "secret-key", "usePathStyle": "use-path-style"},
    ("archive", "retention"): {"includeDB": "include-db", "location": "target-path"},
}

# v1.0 flat keys that became main.<same key>.
_FLAT_MAIN_KEYS = frozenset({
    "addr", "user", "group", "disable-authentication", "embed-static-files", "static-files", "db-driver", "db", "validate",
    "session-max-age", "https-cert-file", "https-key-file", "redirect-http-to", "machine-state-dir",
    "stop-jobs-exceeding-walltime", "short-running-jobs-duration",
})  # fmt: skip
_FLAT_RENAMED_MAIN = {"apiAllowedIPs": "api-allowed-ips"}
_FLAT_IGNORED = {
    "disable-archive": "v1.5 always writes the job archive",
    "ui-defaults": "v1.5 does not honour the v1.0 per-user UI keys; configure the ui section instead",
}
_FLAT_LDAP = {
    "url": "url", "user_base": "user-base", "search_dn": "search-dn", "user_bind": "user-bind", "user_filter": "user-filter",
    "username_attr": "username-attr", "uid_attr": "uid-attr", "sync_interval": "sync-interval",
    "sync_del_old_users": "sync-del-old-users", "syncUserOnLogin": "sync-user-on-login", "updateUserOnLogin": "update-user-on-login",
}  # fmt: skip
_FLAT_JWTS = {
    "max-age": "max-age", "cookieName": "cookie-name", "forceJWTValidationViaDatabase": "validate-user", "validateUser": "validate-user",
    "trustedExternalIssuer": "trusted-issuer", "trustedIssuer": "trusted-issuer", "syncUserOnLogin": "sync-user-on-login",
    "updateUserOnLogin": "update-user-on-login",
}  # fmt: skip
_FLAT_DETECT = _FLAT_MAIN_KEYS | _FLAT_RENAMED_MAIN.keys() | _FLAT_IGNORED.keys() | {"ldap", "jwts", "clusters", "job-archive"}


class _Problems:
    """Collects (file, key path, message) triples so that one ConfigError can report all of them."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str, str]] = []

    def add(self, file: str, loc: Loc, message: str) -> None:
        self.items.append((file, _format_loc(loc), message))

    def raise_if_any(self) -> None:
        if self.items:
            lines = [f"{file}: {path}: {msg}" if path else f"{file}: {msg}" for file, path, msg in self.items]
            raise ConfigError("\n".join(lines), field=self.items[0][1] or None)


def _format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _Source:
    """A JSON document being loaded: its label for messages and the directory includes are relative to."""

    def __init__(self, label: str, base_dir: Path) -> None:
        self.label = label
        self.base_dir = base_dir


def _read_json(path: Path, label: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{label}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{label}: expected a JSON file, found a directory") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{label}: cannot read: {exc}") from None
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for key, value in items:
            if key in obj:
                duplicates.append(key)
            obj[key] = value
        return obj

    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    try:
        data = json.loads(text, object_pairs_hook=pairs, parse_constant=no_constants)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{label}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except ValueError as exc:
        raise ConfigError(f"{label}: invalid JSON: {exc}") from None
    if duplicates:
        # Go's decoder also keeps the last value; say so because it is usually an editing mistake.
        log.warning("%s: duplicate keys %s; the last value of each is used", label, ", ".join(sorted(set(duplicates))))
    return data


def load_config(path: str | os.PathLike[str] | None = None, *, environ: Mapping[str, str] | None = None) -> Config:
    """Load and validate ``config.json``.

    ``path=None`` means ``./config.json`` if it exists and the built-in defaults otherwise, so that
    commands such as ``--version`` or ``gen-keypair`` work anywhere. An explicitly given path that does
    not exist is an error. Relative paths *inside* the config (db, archive path, ...) are resolved
    against the working directory, like upstream; ``<section>-file`` includes are resolved against the
    config file's directory. Raises ConfigError naming file, key path and expectation.
    """
    explicit = path is not None
    config_path = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    if not explicit and not config_path.exists():
        log.info("no %s in %s; using the built-in defaults", config_path, Path.cwd())
        return Config()
    if explicit and not config_path.exists():
        raise ConfigError(f"{config_path}: configuration file not found")
    data = _read_json(config_path, str(config_path))
    config = parse_config(data, filename=str(config_path), base_dir=config_path.parent, environ=environ)
    config._source = config_path
    return config


def parse_config(data: Any, *, filename: str = "config.json", base_dir: str | os.PathLike[str] = ".", environ: Mapping[str, str] | None = None) -> Config:
    """Validate an already decoded ``config.json`` document; ``filename`` labels messages, ``base_dir`` anchors includes."""
    env = os.environ if environ is None else environ
    top = _Source(filename, Path(base_dir))
    if not isinstance(data, dict):
        raise ConfigError(f'{filename}: expected a JSON object with sections such as "main", got {show_value(data)}')
    problems = _Problems()
    sections, section_files = _resolve_includes(data, top, problems)
    problems.raise_if_any()

    loc_map: dict[Loc, Loc] = {}
    if "main" not in sections and _FLAT_DETECT & sections.keys():
        sections, loc_map = _map_flat(sections, filename, env, problems)
        problems.raise_if_any()
    else:
        for key in list(sections):
            if key not in SECTIONS:
                problems.add(section_files.get(key, filename), (key,), _unknown_top_level(key))
        if "main" not in sections:
            problems.add(filename, ("main",), 'required section is missing (upstream: "main configuration must be present")')
        problems.raise_if_any()

    _apply_legacy_keys(sections, section_files, filename)
    try:
        config = Config.model_validate(sections, by_alias=True, by_name=False)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            loc: Loc = tuple(err["loc"])
            file = section_files.get(str(loc[0]), filename) if loc else filename
            problems.add(file, _translate_loc(loc, loc_map), _describe_error(err))
        problems.raise_if_any()
        raise  # unreachable: every ValidationError has at least one error
    for loc, message in _semantic_problems(config):
        file = section_files.get(str(loc[0]), filename)
        problems.add(file, _translate_loc(loc, loc_map), message)
    problems.raise_if_any()
    return config


def _unknown_top_level(key: str) -> str:
    if key in _FLAT_MAIN_KEYS or key in _FLAT_RENAMED_MAIN:
        return f'unknown top-level key; this v1.0 key belongs in the "main" section since v1.5 (as "{_FLAT_RENAMED_MAIN.get(key, key)}")'
    if key in ("ldap", "jwts"):
        return f'unknown top-level key; since v1.5 this is "auth.{key}"'
    if key == "clusters":
        return 'unknown top-level key; since v1.5 clusters come from the job archive (cluster.json) and metric stores from "metric-store-external"'
    if key.endswith("-file"):
        return f'unknown include: "{key[:-5]}" is not a section (sections: {", ".join(SECTIONS)})'
    return f"unknown top-level key{_did_you_mean(key, SECTIONS)} (sections: {', '.join(SECTIONS)}, or <section>-file)"


def _did_you_mean(key: str, choices: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(choices), n=1, cutoff=0.7)
    return f'; did you mean "{close[0]}"?' if close else ""


def _resolve_includes(data: dict[str, Any], top: _Source, problems: _Problems) -> tuple[dict[str, Any], dict[str, str]]:
    """Replace ``<section>-file`` keys by the sections they name; returns the sections and the file each came from."""
    sections: dict[str, Any] = {}
    files: dict[str, str] = {}
    for key, value in data.items():
        section = key[:-5] if key.endswith("-file") else None
        if section is None or section not in SECTIONS:
            sections.setdefault(key, value)
            continue
        if section in data:
            problems.add(top.label, (key,), f'section "{section}" is given both inline and in {key}; keep one')
            continue
        if not isinstance(value, str) or not value:
            problems.add(top.label, (key,), f'expected the path of a JSON file holding the "{section}" section, got {show_value(value)}')
            continue
        include = top.base_dir / value  # relative to the config file (upstream: working directory)
        try:
            sections[section] = _read_json(include, str(include))
        except ConfigError as exc:
            problems.add(top.label, (key,), f'cannot load the "{section}" section: {exc.message}')
            continue
        files[section] = str(include)
    return sections, files


def _apply_legacy_keys(sections: dict[str, Any], section_files: dict[str, str], filename: str) -> None:
    """Rename or drop keys older upstream versions wrote, with a warning naming each."""
    for loc, renames in _LEGACY_KEYS.items():
        node: Any = sections
        for part in loc:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            continue
        file = section_files.get(str(loc[0]), filename)
        for old, new in renames.items():
            if old not in node:
                continue
            value = node.pop(old)
            where = _format_loc(loc + (old,))
            if new is None:
                log.warning("%s: %s is a legacy key and is ignored", file, where)
            elif new in node:
                log.warning("%s: %s is a legacy key; ignored because %s is also set", file, where, _format_loc(loc + (new,)))
            else:
                node[new] = value
                # Upstream ignores retention.location; we read it as target-path so that configs
                # written for older versions keep moving jobs where they did before.
                log.warning("%s: %s is a legacy key; read as %s", file, where, _format_loc(loc + (new,)))


def _map_flat(flat: dict[str, Any], filename: str, env: Mapping[str, str], problems: _Problems) -> tuple[dict[str, Any], dict[Loc, Loc]]:
    """Map the v1.0 flat layout onto v1.5 sections; returns them with a v1.5 -> v1.0 key-path map for messages."""
    out: dict[str, Any] = {}
    main: dict[str, Any] = {}
    loc_map: dict[Loc, Loc] = {}
    mapped: list[str] = []
    ignored: list[str] = []
    for key, value in flat.items():
        if key in _FLAT_MAIN_KEYS or key in _FLAT_RENAMED_MAIN:
            new = _FLAT_RENAMED_MAIN.get(key, key)
            if key == "db" and isinstance(value, str) and value.startswith("env:"):
                var = value[4:]
                if var not in env:
                    problems.add(filename, ("db",), f'environment variable {var} named by "{value}" is not set')
                    continue
                value = env[var]
                mapped.append(f"db (from ${var}) -> main.db")
            else:
                mapped.append(f"{key} -> main.{new}")
            main[new] = value
            loc_map[("main", new)] = (key,)
        elif key in _FLAT_IGNORED:
            ignored.append(f"{key} ({_FLAT_IGNORED[key]})")
        elif key in ("archive", "job-archive"):
            if "archive" in out:
                problems.add(filename, (key,), 'both "archive" and "job-archive" are given; keep one')
                continue
            out["archive"] = value
            loc_map[("archive",)] = (key,)
            mapped.append(f"{key} -> archive")
        elif key in ("ldap", "jwts"):
            table = _FLAT_LDAP if key == "ldap" else _FLAT_JWTS
            out.setdefault("auth", {})[key] = _rename_keys(value, table, (key,), ("auth", key), filename, problems, loc_map)
            mapped.append(f"{key} -> auth.{key}")
        elif key == "clusters":
            out["metric-store-external"] = _map_clusters(value, filename, problems, loc_map, mapped, ignored)
        elif key in SECTIONS and key != "main":
            out[key] = value  # a v1.5 section next to flat keys: take it as it is
        else:
            problems.add(filename, (key,), f"unknown key in a v1.0 (flat) config{_did_you_mean(key, _FLAT_DETECT)}")
    out["main"] = main
    log.warning(
        "%s uses the v1.0 flat layout; mapped to v1.5: %s%s. Convert it to the v1.5 sections (main, auth, archive, ...) to silence this warning.",
        filename,
        ", ".join(mapped) or "nothing",
        f"; ignored: {', '.join(ignored)}" if ignored else "",
    )
    return out, loc_map


def _rename_keys(value: Any, table: Mapping[str, str], old_loc: Loc, new_loc: Loc, filename: str, problems: _Problems, loc_map: dict[Loc, Loc]) -> Any:
    if not isinstance(value, dict):
        loc_map[new_loc] = old_loc
        return value  # the model reports the type error, translated back to the old path
    loc_map[new_loc] = old_loc
    out: dict[str, Any] = {}
    for key, item in value.items():
        new = table.get(key)
        if new is None:
            problems.add(filename, old_loc + (key,), f"unknown key{_did_you_mean(key, table)} (expected one of: {', '.join(table)})")
            continue
        out[new] = item
        loc_map[new_loc + (new,)] = old_loc + (key,)
    return out


def _map_clusters(clusters: Any, filename: str, problems: _Problems, loc_map: dict[Loc, Loc], mapped: list[str], ignored: list[str]) -> list[dict[str, Any]]:
    if not isinstance(clusters, list):
        problems.add(filename, ("clusters",), f"expected a list of clusters, got {show_value(clusters)}")
        return []
    stores: list[dict[str, Any]] = []
    for i, cluster in enumerate(clusters):
        loc: Loc = ("clusters", i)
        if not isinstance(cluster, dict):
            problems.add(filename, loc, f'expected an object with "name" and "metricDataRepository", got {show_value(cluster)}')
            continue
        name = cluster.get("name")
        if not isinstance(name, str) or not name:
            problems.add(filename, loc + ("name",), f"expected the cluster name as a non-empty string, got {show_value(name)}")
            continue
        for key in cluster:
            if key not in ("name", "metricDataRepository", "filterRanges"):
                problems.add(filename, loc + (key,), "unknown key (expected name, metricDataRepository, filterRanges)")
        if "filterRanges" in cluster:
            ignored.append(f"clusters[{i}].filterRanges (v1.5 derives filter ranges from the jobs)")
        repo = cluster.get("metricDataRepository")
        if repo is None:
            continue
        repo_loc = loc + ("metricDataRepository",)
        if not isinstance(repo, dict):
            problems.add(filename, repo_loc, f"expected an object, got {show_value(repo)}")
            continue
        kind = repo.get("kind")
        if kind == "prometheus":
            # v1.0's Go-template placeholders do not carry over; the admin rewrites them as "queries"
            ignored.append(f'clusters[{i}].metricDataRepository (kind "prometheus": write it as a metric-store-external '
                           f'entry of kind "prometheus" with PromQL "queries")')
            continue
        if kind != "cc-metric-store":
            ignored.append(f"clusters[{i}].metricDataRepository (kind {show_value(kind)}; v1.5 only talks to cc-metric-store)")
            continue
        extra = sorted(set(repo) - {"kind", "url", "token"})
        if extra:
            ignored.append(f"clusters[{i}].metricDataRepository.{{{', '.join(extra)}}}")
        entry = {"scope": name, "url": repo.get("url"), "token": repo.get("token", "")}
        if entry["url"] is None:
            del entry["url"]  # reported as missing by the model, at the v1.0 path
        j = len(stores)
        stores.append(entry)
        loc_map[("metric-store-external", j)] = repo_loc
        loc_map[("metric-store-external", j, "scope")] = loc + ("name",)
        mapped.append(f'clusters[{i}].metricDataRepository -> metric-store-external[{j}] (scope "{name}")')
    return stores


def _translate_loc(loc: Loc, loc_map: Mapping[Loc, Loc]) -> Loc:
    """Express a v1.5 key path in the v1.0 file's own terms when the file was flat."""
    for n in range(len(loc), 0, -1):
        old = loc_map.get(loc[:n])
        if old is not None:
            return old + loc[n:]
    return loc


def _field_model(annotation: Any) -> type[BaseModel] | None:
    """The section model inside an annotation such as ``X | None`` or ``list[X]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, Annotated):
        for arg in get_args(annotation):
            found = _field_model(arg)
            if found is not None:
                return found
    return None


def _model_at(loc: Loc) -> type[BaseModel] | None:
    model: type[BaseModel] | None = Config
    for part in loc:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        field = next((f for name, f in model.model_fields.items() if (f.alias or name) == part), None)
        model = _field_model(field.annotation) if field is not None else None
    return model


_EXPECTED = {
    "string_type": "expected a string",
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "int_from_float": "expected an integer",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "list_type": "expected a list",
    "model_type": "expected an object",
    "dict_type": "expected an object",
    "model_attributes_type": "expected an object",
}
_BOUNDS = {"greater_than_equal": ("ge", ">="), "greater_than": ("gt", ">"), "less_than_equal": ("le", "<="), "less_than": ("lt", "<")}


def _describe_error(err: Mapping[str, Any]) -> str:
    kind = err["type"]
    got = show_value(err.get("input"))
    ctx = err.get("ctx") or {}
    if kind in _EXPECTED:
        return f"{_EXPECTED[kind]}, got {got}"
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        loc = tuple(err["loc"])
        model = _model_at(loc[:-1])
        keys = [f.alias or n for n, f in model.model_fields.items()] if model else []
        return f"unknown key{_did_you_mean(str(loc[-1]), keys)}" + (f" (expected one of: {', '.join(keys)})" if keys else "")
    if kind == "literal_error":
        return f"expected one of {ctx.get('expected')}, got {got}"
    if kind in _BOUNDS:
        key, op = _BOUNDS[kind]
        return f"expected a value {op} {ctx.get(key)}, got {got}"
    if kind == "too_short":
        return f"expected at least {ctx.get('min_length')} item(s), got {got}"
    message = str(err.get("msg", "invalid value"))
    return message.removeprefix("Value error, ")


def _semantic_problems(config: Config) -> list[tuple[Loc, str]]:
    """Checks that span several keys, reported at the key that is missing or wrong."""
    found: list[tuple[Loc, str]] = []
    archive = config.archive
    need = {"file": ("path", archive.path), "sqlite": ("db-path", archive.db_path), "s3": ("bucket", archive.bucket)}[archive.kind]
    if not need[1]:
        found.append((("archive", need[0]), f'required when kind is "{archive.kind}"'))
    retention = archive.retention
    if retention is not None and retention.policy != "none":
        if retention.age <= 0:
            found.append((("archive", "retention", "age"), f'expected a number of days > 0 when policy is "{retention.policy}" (0 would act on every job)'))
        if retention.policy in ("copy", "move"):
            found.extend(_target_problems(("archive", "retention"), retention.target_kind, retention.target_path, retention.target_bucket, retention.policy))
    state = config.main.nodestate_retention
    if state is not None and state.policy == "move":
        found.extend(_target_problems(("main", "nodestate-retention"), state.target_kind, state.target_path, state.target_bucket, state.policy))
    if bool(config.main.https_cert_file) != bool(config.main.https_key_file):
        missing = "https-key-file" if config.main.https_cert_file else "https-cert-file"
        found.append((("main", missing), "required when the other of https-cert-file/https-key-file is set"))
    store = config.metric_store
    if store is not None and store.cleanup.mode == "archive" and not store.cleanup.directory:
        found.append((("metric-store", "cleanup", "directory"), 'required when mode is "archive"'))
    seen: dict[str, int] = {}
    for i, entry in enumerate(config.metric_store_external):
        if entry.scope in seen:
            found.append((("metric-store-external", i, "scope"), f'duplicate scope "{entry.scope}" (also in entry {seen[entry.scope]})'))
        seen.setdefault(entry.scope, i)
        found.extend(_external_store_problems(("metric-store-external", i), entry))
    return found


_PROMETHEUS_ONLY = ("username", "password", "queries", "host_label", "host_label_strip")


def _external_store_problems(loc: Loc, entry: ExternalMetricStoreConfig) -> list[tuple[Loc, str]]:
    """Keys one kind of external store needs or must not have; every PromQL template's placeholders known."""
    found: list[tuple[Loc, str]] = []
    if entry.kind == "cc-metric-store":
        if entry.token is None:
            found.append((loc + ("token",), "required key is missing"))
        for name in _PROMETHEUS_ONLY:
            if name in entry.model_fields_set:
                found.append((loc + (name.replace("_", "-"),), 'only allowed when kind is "prometheus"'))
        return found
    if not entry.queries:
        found.append((loc + ("queries",), 'required when kind is "prometheus": an object of metric name -> PromQL template, '
                                          'e.g. {"cpu_load": "node_load1{instance=~\\"{hosts}:9100\\"}"}'))
    for metric, template in (entry.queries or {}).items():
        if not template.strip():
            found.append((loc + ("queries", metric), "expected a PromQL template, got an empty string"))
        unknown = sorted({m.group(1) for m in PROMETHEUS_PLACEHOLDER.finditer(template)} - set(PROMETHEUS_PLACEHOLDERS))
        if unknown:
            names = ", ".join("{" + name + "}" for name in unknown)
            known = ", ".join("{" + name + "}" for name in PROMETHEUS_PLACEHOLDERS)
            found.append((loc + ("queries", metric), f"unknown placeholder {names} (known: {known})"))
    if (entry.username is None) != (entry.password is None):
        missing = "password" if entry.username is not None else "username"
        found.append((loc + (missing,), "required when the other of username/password is set"))
    if entry.username is not None and entry.token is not None:
        found.append((loc + ("token",), "set either token (bearer) or username/password (basic), not both"))
    return found


def _target_problems(loc: Loc, kind: str, path: str | None, bucket: str | None, policy: str) -> list[tuple[Loc, str]]:
    if kind == "file" and not path:
        return [(loc + ("target-path",), f'required when policy is "{policy}" and target-kind is "file"')]
    if kind == "s3" and not bucket:
        return [(loc + ("target-bucket",), f'required when policy is "{policy}" and target-kind is "s3"')]
    return []
