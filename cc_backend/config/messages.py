"""How configuration values appear in error messages (short JSON, with their kind)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def show_value(value: Any) -> str:
    """A short JSON rendering of a config value for error messages."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    if isinstance(value, Mapping):
        return f"an object {text}"
    if isinstance(value, (list, tuple)):
        return f"a list {text}"
    return text
