"""The notice of the start page: ``var/notice.txt`` relative to the working directory, as upstream keeps it."""

from __future__ import annotations

import os
from pathlib import Path

from cc_backend.errors import InvalidInput
from cc_backend.fileutil import write_atomic

NOTICE_PATH = Path("var") / "notice.txt"
MAX_NOTICE_LENGTH = 10000
"""Upstream's limit for the notice (characters)."""


def write_notice(content: str, path: str | os.PathLike[str] = NOTICE_PATH) -> bool:
    """Replace the notice (atomically: readers see the old or the new text); True if it is not empty now."""
    if len(content) > MAX_NOTICE_LENGTH:
        raise InvalidInput(f"notice content exceeds maximum length of {MAX_NOTICE_LENGTH} characters "
                           f"(got {len(content)})", field="new-content")
    write_atomic(path, content.encode("utf-8"), mode=0o644)
    return content != ""


def read_notice(path: str | os.PathLike[str] = NOTICE_PATH) -> str:
    """The current notice; empty if there is none."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
