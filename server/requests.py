"""Request parsing shared by every route module: JSON bodies, 64-bit integers, form fields and bearer tokens.

Each parser raises :class:`~cc_backend.errors.InvalidInput` naming the offending field, which the
app turns into a 400 ``{"status", "error"}``.
"""

from __future__ import annotations

import re
from typing import Any

import bottle
import orjson

from cc_backend.errors import InvalidInput

#: Integers are stored as signed 64-bit (SQLite INTEGER, MySQL BIGINT); upstream decodes them into Go's int64.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: What a number beyond 64 bits must contain: 19 digits in a row, or an exponent (1e300).
_LONG_NUMBER = re.compile(rb"[0-9]{19}|[0-9][eE]")


def int64(value: Any, field: str, *, kind: str = "an integer", minimum: int = INT64_MIN) -> int:
    """``value`` (a path segment, query value or ID) as a signed 64-bit integer of at least ``minimum``.

    The database cannot bind anything wider, which would otherwise be a 500.
    """
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise InvalidInput(f"{field} must be {kind}, got {value!r}", field=field) from None
    if number < minimum:
        raise InvalidInput(f"{field} must be >= {minimum}, got {number}", field=field)
    if not INT64_MIN <= number <= INT64_MAX:
        raise InvalidInput(f"{field} {number} is out of range (64-bit)", field=field)
    return number


def query_int(name: str, value: str, minimum: int) -> int:
    """A numeric query parameter, refused with upstream's message ("invalid query parameter value: page")."""
    try:
        return int64(value, name, minimum=minimum)
    except InvalidInput as exc:
        raise InvalidInput(f"invalid query parameter value: {name} ({exc.message})", field=name) from None


def _check_numbers(value: Any, where: str) -> None:
    """Refuse numbers beyond 64 bits anywhere in a JSON document (the database cannot bind them: a 500 otherwise).

    Iterative: orjson decodes 1,024 levels, deeper than Python's recursion limit. The first bad number in
    document order is reported.
    """
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        item, at = stack.pop()
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            if abs(item) > INT64_MAX:
                raise InvalidInput(f"{at}: the number {item!r} is out of range (64-bit)", field=at)
        elif isinstance(item, dict):
            children = [(child, f"{at}.{key}" if at != where else key) for key, child in item.items()]
            stack.extend(reversed(children))
        elif isinstance(item, list):
            stack.extend(reversed([(child, f"{at}[{i}]") for i, child in enumerate(item)]))


def parse_json(raw: bytes, *, field: str = "body") -> Any:
    """``raw`` as JSON; text that is not JSON, or has numbers beyond 64 bits, is InvalidInput naming ``field``."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the request {field} is not valid JSON: {exc}", field=field) from None
    if _LONG_NUMBER.search(raw):  # only then can an integer beyond 64 bits be in it; walking every body costs
        _check_numbers(value, field)
    return value


def json_body(*, required: bool = True) -> Any:
    """The request body as JSON (see :func:`parse_json`); an empty body is a 400 too, or None when optional."""
    raw = bottle.request.body.read()
    if not raw.strip() and not required:
        return None
    if not raw:
        raise InvalidInput("the request body is empty; expected JSON", field="body")
    return parse_json(raw)


def json_object() -> dict[str, Any]:
    body = json_body()
    if not isinstance(body, dict):
        raise InvalidInput("expected a JSON object", field="body")
    return body


def json_list() -> list[Any]:
    body = json_body()
    if not isinstance(body, list):
        raise InvalidInput("expected a JSON array", field="body")
    return body


def request_fields() -> dict[str, str]:
    """Query parameters and body fields of the request (body wins), as upstream's ``r.FormValue``.

    The body may be urlencoded, multipart (the upstream frontend's FormData) or a JSON object of
    strings; anything else is a 400 naming the field.
    """
    request = bottle.request
    query = request.query.decode()
    fields = {key: query.get(key) for key in query.keys()}
    if request.content_type.startswith("application/json"):
        body = json_body(required=False)
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise InvalidInput("the request body must be a JSON object of fields", field="body")
        for key, value in body.items():
            if not isinstance(value, str):
                raise InvalidInput(f"{key} must be a string", field=key)
        fields.update(body)
    else:
        try:
            forms = request.forms.decode()
        except (ValueError, bottle.MultipartError) as exc:  # a broken multipart body, control characters in its headers
            raise InvalidInput(f"the form body cannot be parsed: {exc}", field="body") from None
        fields.update({key: forms.get(key) for key in forms.keys()})
    return fields


def bearer_token(environ: dict[str, Any]) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header (scheme case-insensitive), None without one."""
    header = environ.get("HTTP_AUTHORIZATION", "").strip()
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return None
