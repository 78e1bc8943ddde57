"""The one output path of every command: tables (tabulate), JSON or CSV."""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click

FORMATS = ("table", "json", "csv")


def format_option(func: Callable) -> Callable:
    return click.option(
        "--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
        help="Output format: a table for people, JSON or CSV for scripts.",
    )(func)


def _cell(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        import orjson

        return orjson.dumps(value).decode()
    return value


def emit(rows: Sequence[dict], columns: Sequence[str], fmt: str, *, json_value: Any = None, headers: Sequence[str] | None = None) -> None:
    """Print rows; JSON prints ``json_value`` if given (e.g. the full REST-shaped objects)."""
    out = sys.stdout
    if fmt == "json":
        import orjson

        payload = json_value if json_value is not None else list(rows)
        out.write(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())
        out.write("\n")
    elif fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row.get(c)) for c in columns])
    else:
        from tabulate import tabulate

        table = [[_cell(row.get(c)) for c in columns] for row in rows]
        out.write(tabulate(table, headers=list(headers or columns), tablefmt="simple", disable_numparse=True))
        out.write("\n")


def emit_object(obj: Any, fmt: str) -> None:
    """Print one object: JSON as is, otherwise a two-column key/value table."""
    if fmt == "json":
        import orjson

        sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    rows = [{"key": k, "value": v} for k, v in obj.items()]
    emit(rows, ["key", "value"], fmt)


def progress_bar(desc: str, total: int | None = None, unit: str = " jobs"):
    """A tqdm bar (count and rate, and percent with a total) on stderr when it is a terminal, else None."""
    if not sys.stderr.isatty():
        return None
    import os

    from tqdm import tqdm

    try:
        size = os.get_terminal_size(sys.stderr.fileno())
    except OSError:
        size = os.terminal_size((0, 0))
    if size.columns and size.lines:
        return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True)
    # A pseudo-terminal without a size (`script`, some SSH setups) reports 0x0, and tqdm then draws nothing.
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, ncols=80, nrows=24)
