"""Rule-based job classes: load upstream-format rule files and classify one job against its subcluster."""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cc_backend.archive.cluster import SubCluster
from cc_backend.taggers.rules import Compiled, RuleError, compile_expr

log = logging.getLogger(__name__)

SHIPPED_RULES = Path(__file__).parent / "jobclasses"
_PLACEHOLDER = re.compile(r"\{\{\s*\.([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}")


@dataclass(frozen=True)
class JobClassRule:
    """One compiled rule file."""

    source: str
    name: str
    tag: str
    parameters: tuple[str, ...]
    metrics: tuple[str, ...]
    requirements: tuple[Compiled, ...]
    variables: tuple[tuple[str, Compiled], ...]
    rule: Compiled
    hint: str


@dataclass
class RuleSet:
    """Rules and parameters of one directory, plus the problems found while loading it."""

    rules: list[JobClassRule] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def _compile(text: Any, source: str, where: str) -> Compiled:
    if not isinstance(text, str):
        raise RuleError(f"{source}: {where}: expected an expression string")
    try:
        return compile_expr(text)
    except RuleError as exc:
        raise RuleError(f"{source}: {where}: {exc.message}") from None


def load_rule(raw: Any, source: str) -> JobClassRule:
    """Compile one rule file's JSON; a RuleError names ``source``, the field and ``line:column``."""
    if not isinstance(raw, Mapping):
        raise RuleError(f"{source}: a rule file must hold a JSON object")
    for key in ("tag", "rule"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise RuleError(f"{source}: missing {key!r}")
    variables = []
    for i, var in enumerate(raw.get("variables") or []):
        if not isinstance(var, Mapping) or not isinstance(var.get("name"), str):
            raise RuleError(f"{source}: variables[{i}] needs a name and an expr")
        variables.append((var["name"], _compile(var.get("expr"), source, f"variables[{i}] {var['name']}")))
    return JobClassRule(
        source=source,
        name=str(raw.get("name") or raw["tag"]),
        tag=raw["tag"],
        parameters=tuple(raw.get("parameters") or ()),
        metrics=tuple(raw.get("metrics") or ()),
        requirements=tuple(_compile(r, source, f"requirements[{i}]") for i, r in enumerate(raw.get("requirements") or [])),
        variables=tuple(variables),
        rule=_compile(raw["rule"], source, "rule"),
        hint=str(raw.get("hint") or ""),
    )


def load_rules(directory: Path = SHIPPED_RULES) -> RuleSet:
    """Load ``parameters.json`` and every other ``*.json`` of ``directory``; broken files are reported and skipped."""
    result = RuleSet()
    params = directory / "parameters.json"
    if params.is_file():
        try:
            result.parameters = dict(json.loads(params.read_text()))
        except (ValueError, TypeError) as exc:
            result.errors.append(f"{params}: {exc}")
    for path in sorted(directory.glob("*.json")):
        if path.name == "parameters.json":
            continue
        try:
            result.rules.append(load_rule(json.loads(path.read_text()), str(path)))
        except ValueError as exc:  # JSONDecodeError is a ValueError and carries line/column itself
            result.errors.append(f"{path}: {exc}")
        except RuleError as exc:
            result.errors.append(exc.message)
    for message in result.errors:
        log.warning("job class rule skipped: %s", message)
    return result


class JobClassifier:
    """Rules of one directory, reloaded when a file in it changes (mtime check)."""

    def __init__(self, directory: Path = SHIPPED_RULES) -> None:
        self.directory = Path(directory)
        self._stamp: tuple[tuple[str, float], ...] | None = None
        self.ruleset = RuleSet()
        self.reload_if_changed()

    def _current_stamp(self) -> tuple[tuple[str, float], ...]:
        return tuple(sorted((p.name, p.stat().st_mtime) for p in self.directory.glob("*.json")))

    def reload_if_changed(self) -> bool:
        stamp = self._current_stamp()
        if stamp == self._stamp:
            return False
        self.ruleset = load_rules(self.directory)
        self._stamp = stamp
        return True

    def classify(self, job: Mapping[str, Any], subcluster: SubCluster) -> list[tuple[str, str]]:
        return classify(job, subcluster, self.ruleset)


def job_environment(job: Mapping[str, Any]) -> dict[str, Any]:
    """The ``job.*`` part of upstream's environment."""
    return {
        "shared": job.get("shared", "none"),
        "duration": job.get("duration", 0),
        "numCores": job.get("numHwthreads", 0),
        "numNodes": job.get("numNodes", 0),
        "jobState": job.get("jobState", ""),
        "numAcc": job.get("numAcc", 0),
        "smt": job.get("smt", 0),
    }


def metric_environment(job: Mapping[str, Any], subcluster: SubCluster, metrics: tuple[str, ...]) -> dict[str, Any] | None:
    """``<metric>.{min,max,avg,limits}`` for each metric, or None when the job or subcluster lacks one."""
    stats = job.get("statistics") or {}
    env: dict[str, Any] = {}
    for name in metrics:
        stat = stats.get(name)
        config = subcluster.metric(name)
        if not isinstance(stat, Mapping) or config is None:
            return None
        env[name] = {
            "min": stat.get("min", 0.0), "max": stat.get("max", 0.0), "avg": stat.get("avg", 0.0),
            "limits": {"peak": config.peak, "normal": config.normal, "caution": config.caution, "alert": config.alert},
        }
    return env


def _format(value: Any) -> str:
    # Upstream rounds floats to 2 places before rendering; Go prints 600.0 as "600".
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isfinite(value):
            value = round(value, 2)
            return str(int(value)) if value.is_integer() else repr(value)
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    return str(value)


def render_hint(template: str, env: Mapping[str, Any]) -> str:
    """Substitute Go-template ``{{.a.b}}`` placeholders; an unknown one renders as ``<no value>`` (as Go does)."""

    def substitute(m: re.Match[str]) -> str:
        value: Any = env
        for part in m.group(1).split("."):
            if not isinstance(value, Mapping) or part not in value:
                return "<no value>"
            value = value[part]
        return _format(value)

    return _PLACEHOLDER.sub(substitute, template)


def classify(job: Mapping[str, Any], subcluster: SubCluster, ruleset: RuleSet) -> list[tuple[str, str]]:
    """``[(tag, hint)]`` of every rule the job matches; a rule that fails to evaluate is logged and skipped."""
    matches: list[tuple[str, str]] = []
    job_env = job_environment(job)
    for rule in ruleset.rules:
        metrics = metric_environment(job, subcluster, rule.metrics)
        if metrics is None:
            continue
        env: dict[str, Any] = {**ruleset.parameters, **metrics, "job": job_env}
        try:
            if not all(req(env) for req in rule.requirements):
                continue
            for name, expr in rule.variables:
                env[name] = expr(env)
            if not rule.rule(env):
                continue
        except RuleError as exc:
            log.warning("job class rule %s on job %s: %s", rule.source, job.get("jobId"), exc.message)
            continue
        matches.append((rule.tag, render_hint(rule.hint, env)))
    return matches


def job_class_tags(matches: list[tuple[str, str]]) -> tuple[list[str], str]:
    """Tags ``jobClass:<tag>`` and the metaData ``message`` (hints joined by newlines)."""
    return [f"jobClass:{tag}" for tag, _ in matches], "\n".join(hint for _, hint in matches if hint)
