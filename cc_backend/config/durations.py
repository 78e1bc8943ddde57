"""Go duration strings (``"1h30m"``) as upstream's config writes them, parsed into ``timedelta`` and written back."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from fractions import Fraction
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema
from pydantic_core import PydanticCustomError

from cc_backend.config.messages import show_value

_DURATION_UNITS_NS: dict[str, int] = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign
    "\u03bcs": 1_000,  # Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
_DURATION_PART = re.compile(r"(\d*)(?:\.(\d*))?(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


def parse_go_duration(text: str) -> timedelta:
    """Parse a Go ``time.ParseDuration`` string ("2000h", "1h30m", "500ms", "-1.5h") into a timedelta.

    Raises ``ValueError`` with a message that says what was wrong; sub-microsecond parts are rounded
    because timedelta cannot hold nanoseconds.
    """
    if not isinstance(text, str):
        raise TypeError(f"expected a duration string, got {type(text).__name__}")
    original = text
    sign = 1
    if text and text[0] in "+-":
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if text == "0":
        return timedelta(0)
    if not text:
        raise ValueError('invalid duration "": empty')
    total = Fraction(0)
    pos = 0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if match is None or (not match.group(1) and not match.group(2)):
            number = re.match(r"[\d.]*\d[\d.]*([^\d.]*)", text[pos:])
            if number and not number.group(1):
                raise ValueError(f"invalid duration {json.dumps(original)}: missing unit (use one of h, m, s, ms, us, ns)")
            if number:
                raise ValueError(f"invalid duration {json.dumps(original)}: unknown unit {json.dumps(number.group(1))} (use one of h, m, s, ms, us, ns)")
            raise ValueError(f'invalid duration {json.dumps(original)}: expected a number followed by a unit (h, m, s, ms, us, ns), e.g. "1h30m"')
        whole, frac, unit = match.group(1) or "0", match.group(2) or "", match.group(3)
        value = Fraction(int(whole)) + (Fraction(int(frac), 10 ** len(frac)) if frac else 0)
        total += value * _DURATION_UNITS_NS[unit]
        pos = match.end()
    return timedelta(microseconds=sign * round(total / 1000))


def format_go_duration(value: timedelta) -> str:
    """Format a timedelta the way a human writes a Go duration ("2000h", "1h30m", "1.5s", "500ms"), parseable by Go."""
    micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    if micros == 0:
        return "0s"
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    if micros < 1_000_000:
        return f"{sign}{micros // 1000}ms" if micros % 1000 == 0 else f"{sign}{micros}us"
    hours, rest = divmod(micros, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    out = sign + (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    if rest:
        seconds, frac = divmod(rest, 1_000_000)
        out += f"{seconds}.{frac:06d}".rstrip("0").rstrip(".") + "s" if frac else f"{seconds}s"
    return out


def _duration_validator(*, positive: bool) -> BeforeValidator:
    def validate(value: Any) -> timedelta:
        if isinstance(value, timedelta):
            parsed = value
        elif isinstance(value, bool) or not isinstance(value, str):
            hint = f' (a bare number has no unit; write e.g. "{value}s")' if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
            raise PydanticCustomError("go_duration", 'expected a Go duration string such as "1h30m", got {got}{hint}', {"got": show_value(value), "hint": hint})
        else:
            try:
                parsed = parse_go_duration(value)
            except ValueError as exc:
                raise PydanticCustomError("go_duration", "{reason}", {"reason": str(exc)}) from None
        if parsed < timedelta(0) or (positive and parsed == timedelta(0)):
            need = "a positive duration" if positive else "a duration that is not negative"
            raise PydanticCustomError("go_duration", "expected {need}, got {got}", {"need": need, "got": show_value(value)})
        return parsed

    return BeforeValidator(validate)


_DURATION_SCHEMA = WithJsonSchema({"type": "string", "format": "go-duration", "examples": ["1h30m", "10m", "500ms"]})
_DURATION_SERIALIZER = PlainSerializer(format_go_duration, return_type=str)

#: A Go duration string ("2000h", "1m", "1h30m", "500ms") that may be zero but not negative.
GoDuration = Annotated[timedelta, _duration_validator(positive=False), _DURATION_SERIALIZER, _DURATION_SCHEMA]
#: A Go duration string that must be greater than zero (intervals, lifetimes).
PositiveGoDuration = Annotated[timedelta, _duration_validator(positive=True), _DURATION_SERIALIZER, _DURATION_SCHEMA]
