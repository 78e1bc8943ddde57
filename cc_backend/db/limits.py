"""What the columns of db/tables.py hold (text lengths, integer ranges, JSON document sizes), checked before writing.

SQLite stores anything; MariaDB refuses a value longer than its VARCHAR, an integer beyond its INT or
a statement beyond max_allowed_packet with a DataError, which would be a 500. Every write path
(REST, GraphQL, init-db, import) checks its values here first, so both databases answer the same 400
naming the field. The limits are read from the column types, never repeated as numbers.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, SmallInteger, String

from cc_backend.errors import InvalidInput

# BigInteger and SmallInteger are subclasses of Integer: the specific ones first.
_INT_BITS = ((BigInteger, 64), (SmallInteger, 16), (Integer, 32))


def max_chars(column: Column) -> int | None:
    """Characters a VARCHAR column holds (None: not a bounded string column)."""
    return getattr(column.type, "length", None) if isinstance(column.type, String) else None


def varchar_length(column: Column) -> int:
    """Characters a VARCHAR column holds; TypeError for a column that is not a bounded string."""
    length = max_chars(column)
    if length is None:
        raise TypeError(f"column {column.name} is not a bounded string column")
    return length


def max_bytes(column: Column) -> int | None:
    """UTF-8 bytes of the JSON document a TEXT/LONGTEXT column takes (``info["max_bytes"]`` in db/tables.py)."""
    return column.info.get("max_bytes")


def int_range(column: Column) -> tuple[int, int]:
    """The smallest and largest integer the column holds on MariaDB (SQLite holds 64 bits everywhere)."""
    for kind, bits in _INT_BITS:
        if isinstance(column.type, kind):
            return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    raise TypeError(f"column {column.name} is not an integer column")


def check_text(column: Column, value: str, field: str) -> str:
    """``value`` if it fits the column, else InvalidInput naming ``field``."""
    limit = max_chars(column)
    if limit is not None and len(value) > limit:
        raise InvalidInput(f"{field} is longer than {limit} characters ({len(value)})", field=field)
    limit = max_bytes(column)
    # len() counts characters; a character is at most 4 bytes, so short documents skip the encoding.
    if limit is not None and len(value) * 4 > limit:
        size = len(value.encode("utf-8", "surrogatepass"))
        if size > limit:
            raise InvalidInput(f"{field} is too large: {size} bytes as JSON, at most {limit}", field=field)
    return value


def check_int(column: Column, value: int, field: str, *, minimum: int | None = None,
              maximum: int | None = None) -> int:
    """``value`` if it lies within the column's range (narrowed by ``minimum``/``maximum``), else InvalidInput."""
    low, high = int_range(column)
    low = low if minimum is None else max(low, minimum)
    high = high if maximum is None else min(high, maximum)
    if not low <= value <= high:
        raise InvalidInput(f"{field} must be between {low} and {high}, got {value}", field=field)
    return value

