"""The admin log viewer: validated ``journalctl --output=json`` queries (upstream ``internal/api/log.go``)."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

import orjson

from cc_backend.errors import CCError, InvalidInput

log = logging.getLogger(__name__)

#: Upstream's whitelist for ``since`` and ``search``: they end up as journalctl arguments.
SAFE_TEXT = re.compile(r"^[a-zA-Z0-9 :\-.]+$")
DEFAULT_SINCE = "1 hour ago"
DEFAULT_LINES = 200
MAX_LINES = 1000
JOURNALCTL_TIMEOUT_S = 30


class JournalUnavailable(CCError):
    """journalctl is missing or does not answer."""

    status = 503


@dataclass(frozen=True)
class JournalQuery:
    """What the log viewer asks for; build it with :meth:`parse`, which validates like upstream."""

    since: str = DEFAULT_SINCE
    lines: int = DEFAULT_LINES
    level: int | None = None
    search: str | None = None

    @classmethod
    def parse(cls, *, since: str | None = None, lines: str | None = None, level: str | None = None,
              search: str | None = None) -> JournalQuery:
        """Query parameters as given (strings or None); InvalidInput naming the parameter otherwise."""
        since = since or DEFAULT_SINCE
        if not SAFE_TEXT.match(since):
            raise InvalidInput("invalid 'since' parameter (letters, digits, blanks and : - . only, "
                               "e.g. \"1 hour ago\" or \"2024-01-31 12:00\")", field="since")
        count = DEFAULT_LINES
        if lines:
            try:
                count = int(lines)
            except ValueError:
                count = 0
            if count < 1:
                raise InvalidInput("invalid 'lines' parameter (a whole number >= 1)", field="lines")
            count = min(count, MAX_LINES)  # upstream caps instead of refusing
        priority = None
        if level:
            try:
                priority = int(level)
            except ValueError:
                priority = -1
            if not 0 <= priority <= 7:
                raise InvalidInput("invalid 'level' parameter (must be 0-7)", field="level")
        if search and not SAFE_TEXT.match(search):
            raise InvalidInput("invalid 'search' parameter (letters, digits, blanks and : - . only)", field="search")
        return cls(since=since, lines=count, level=priority, search=search or None)

    def arguments(self, unit: str) -> list[str]:
        """journalctl's arguments; values are attached with ``=`` so none can pass for an option."""
        args = ["--output=json", "--no-pager", "-n", str(self.lines), f"--since={self.since}", "-u", unit]
        if self.level is not None:
            args.append(f"--priority={self.level}")
        if self.search:
            args.append(f"--grep={self.search}")
        return args


def _text(value: Any) -> str:
    # journald exports non-UTF-8 fields as arrays of byte values.
    if isinstance(value, list) and all(isinstance(b, int) and 0 <= b < 256 for b in value):
        return bytes(value).decode("utf-8", errors="replace")
    return value if isinstance(value, str) else ""


def parse_entry(line: bytes) -> dict[str, Any] | None:
    """One journal record as the log viewer shows it: timestamp (µs since epoch, text), priority, message, unit."""
    try:
        raw = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(raw, dict):
        return None
    priority = 6  # info, upstream's default
    value = raw.get("PRIORITY")
    if isinstance(value, (str, int)):
        try:
            priority = int(value)
        except ValueError:
            pass
    return {"timestamp": _text(raw.get("__REALTIME_TIMESTAMP")), "priority": priority,
            "message": _text(raw.get("MESSAGE")), "unit": _text(raw.get("_SYSTEMD_UNIT"))}


def read_journal(unit: str, query: JournalQuery) -> list[dict[str, Any]]:
    """The newest entries of ``unit`` matching ``query``; JournalUnavailable (503) without journalctl."""
    exe = shutil.which("journalctl")
    if exe is None:
        raise JournalUnavailable("journalctl is not installed on this host; the log viewer needs systemd's journal")
    try:
        proc = subprocess.run([exe, *query.arguments(unit)], capture_output=True, timeout=JOURNALCTL_TIMEOUT_S,
                              check=False)
    except subprocess.TimeoutExpired:
        raise JournalUnavailable(f"journalctl did not answer within {JOURNALCTL_TIMEOUT_S} s") from None
    except OSError as exc:
        raise JournalUnavailable(f"journalctl cannot be run: {exc}") from None
    entries = [e for e in (parse_entry(line) for line in proc.stdout.splitlines() if line.strip()) if e is not None]
    if proc.returncode != 0 and not entries:
        # Exit code 1 also means "--grep matched nothing"; an empty list is the right answer then.
        log.debug("journalctl exited with %d: %s", proc.returncode, proc.stderr.decode(errors="replace").strip())
    return entries
