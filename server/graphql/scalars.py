"""The schema's custom scalars: Time (RFC 3339 <-> epoch seconds), Any, NullableFloat (NaN as null) and the enum-like strings."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from tartiflette import Scalar
from tartiflette.constants import UNDEFINED_VALUE
from tartiflette.language.ast import EnumValueNode, FloatValueNode, IntValueNode, StringValueNode

from cc_backend.db.tables import HEALTH_STATES, JOB_STATES, NODE_STATES
from cc_backend.errors import InvalidInput
from cc_backend.metrics.jobdata import SCOPES
from cc_backend.server.graphql.executor import SCHEMA_NAME
from cc_backend.server.requests import INT64_MAX, INT64_MIN


def time_to_epoch(value: Any) -> int:
    """An RFC 3339 timestamp (or epoch seconds) as epoch seconds; InvalidInput naming the value otherwise."""
    if isinstance(value, bool):
        raise InvalidInput(f"not a time: {value!r}", field="Time")
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "Zz" else text)
        except ValueError:
            raise InvalidInput(f"not an RFC 3339 time: {value!r}", field="Time") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return int(parsed.timestamp())
    raise InvalidInput(f"not a time: {value!r}", field="Time")


def epoch_to_time(value: int) -> str:
    return datetime.fromtimestamp(int(value), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@Scalar("Time", schema_name=SCHEMA_NAME)
class TimeScalar:
    def coerce_output(self, value: Any) -> str:
        return value if isinstance(value, str) else epoch_to_time(value)

    def coerce_input(self, value: Any) -> int:
        return time_to_epoch(value)

    def parse_literal(self, ast: Any) -> Any:
        if isinstance(ast, (StringValueNode, IntValueNode)):
            try:
                return time_to_epoch(ast.value if isinstance(ast, StringValueNode) else int(ast.value))
            except InvalidInput:
                return UNDEFINED_VALUE
        return UNDEFINED_VALUE


@Scalar("Any", schema_name=SCHEMA_NAME)
class AnyScalar:
    def coerce_output(self, value: Any) -> Any:
        return value

    def coerce_input(self, value: Any) -> Any:
        return value

    def parse_literal(self, ast: Any) -> Any:
        return getattr(ast, "value", UNDEFINED_VALUE)


@Scalar("NullableFloat", schema_name=SCHEMA_NAME)
class NullableFloatScalar:
    def coerce_output(self, value: Any) -> Any:
        if value is None:
            return None
        number = float(value)
        return None if math.isnan(number) or math.isinf(number) else number

    def coerce_input(self, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidInput(f"not a number: {value!r}", field="NullableFloat")
        return float(value)

    def parse_literal(self, ast: Any) -> Any:
        if isinstance(ast, (FloatValueNode, IntValueNode)):
            return float(ast.value)
        return UNDEFINED_VALUE


def _choice_scalar(name: str, choices: tuple[str, ...]) -> None:
    allowed = frozenset(choices)

    def check(value: Any) -> str:
        if not isinstance(value, str) or value not in allowed:
            raise InvalidInput(f"{name} must be one of {', '.join(choices)}, got {value!r}", field=name)
        return value

    class ChoiceScalar:
        def coerce_output(self, value: Any) -> Any:
            return value

        def coerce_input(self, value: Any) -> str:
            return check(value)

        def parse_literal(self, ast: Any) -> Any:
            # Written as a string ("node") or bare (node), as gqlgen accepts either for these scalars.
            value = getattr(ast, "value", None)
            return value if isinstance(ast, (StringValueNode, EnumValueNode)) and value in allowed else UNDEFINED_VALUE

    ChoiceScalar.__name__ = f"{name}Scalar"
    Scalar(name, schema_name=SCHEMA_NAME)(ChoiceScalar)


_choice_scalar("MetricScope", tuple(SCOPES))
_choice_scalar("JobState", JOB_STATES)
_choice_scalar("SchedulerState", NODE_STATES)
_choice_scalar("MonitoringState", HEALTH_STATES)


def _int64(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise InvalidInput(f"Int must be a whole number, got {value!r}", field="Int")
    number = int(value)
    if not INT64_MIN <= number <= INT64_MAX:
        raise InvalidInput(f"Int must fit in 64 bits, got {number}", field="Int")
    return number


@Scalar("Int", schema_name=SCHEMA_NAME)
class Int64Scalar:
    """GraphQL's Int, 64 bits wide as gqlgen's (Go int): job ids, core hours and byte counts outgrow 32 bits.

    tartiflette's built-in Int refuses anything beyond 2^31 - 1, which failed jobsStatistics on a
    large site (totalCoreHours of one user > 2.1 billion); registered here, it replaces the built-in.
    """

    def coerce_output(self, value: Any) -> int:
        return _int64(value)

    def coerce_input(self, value: Any) -> int:
        return _int64(value)

    def parse_literal(self, ast: Any) -> Any:
        if not isinstance(ast, IntValueNode):
            return UNDEFINED_VALUE
        try:
            return _int64(int(ast.value))
        except (InvalidInput, ValueError):
            return UNDEFINED_VALUE


def bake(schema_name: str, config: Any = None) -> str:
    """tartiflette's hook for a module's extra SDL: declares Int, whose built-in declaration is skipped now."""
    del schema_name, config
    return '"""A signed whole number of up to 64 bits (gqlgen\'s Int)."""\nscalar Int\n'
