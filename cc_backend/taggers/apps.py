"""Application detection: upstream-format pattern files matched against lower-cased job scripts, tags app:<name>."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SHIPPED_DIR = Path(__file__).parent / "apps"
SITE_DIR = Path("var/tagger/apps")
TAG_TYPE = "app"


@dataclass
class AppDetector:
    """All applications' patterns, combined into one regex with a named group per application."""

    patterns: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._compile()

    @classmethod
    def load(cls, *dirs: Path | str) -> AppDetector:
        """Read ``<name>.txt`` files from ``dirs`` in order; a later directory's file replaces an earlier one."""
        files: dict[str, Path] = {}
        for directory in dirs or (SHIPPED_DIR, SITE_DIR):
            directory = Path(directory)
            if directory.is_dir():
                for path in sorted(directory.glob("*.txt")):
                    files[path.stem] = path
        patterns: dict[str, list[str]] = {}
        errors: list[str] = []
        for name, path in sorted(files.items()):
            for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    re.compile(line)
                except re.error as exc:
                    errors.append(f"{path}:{lineno}: {exc}")
                    continue
                patterns.setdefault(name, []).append(line)
        return cls(patterns, errors)

    def _compile(self) -> None:
        # Per application: a regex, and the literal words one of which must occur for any of its lines to match.
        self._apps: list[tuple[str, re.Pattern[str], tuple[str, ...] | None]] = []
        for name, lines in sorted(self.patterns.items()):
            regex = re.compile("|".join(f"(?:{line})" for line in lines), re.MULTILINE)
            words = [_literal(line) for line in lines]
            self._apps.append((name, regex, None if None in words else tuple(w for w in words if w)))

    def detect(self, script: str) -> list[str]:
        """Sorted names of the applications whose patterns match ``script`` (case-insensitively)."""
        if not script:
            return []
        text = script.lower()
        stripped: str | None = None
        found = []
        for name, regex, words in self._apps:
            if words is not None and not any(word in text for word in words):
                continue
            if stripped is None:
                # Upstream's (?m)^[^#]*<line> means "before the line's first '#'": cutting comments once is equivalent.
                stripped = _COMMENT.sub("", text)
            if regex.search(stripped):
                found.append(name)
        return found


_COMMENT = re.compile(r"#[^\n]*")
_GROUP = re.compile(r"\((?:[^()]|\([^()]*\))*\)[?*]?|\[[^\]]*\][?*]?|.[?*]|\\[bBsSdDwW]")


def _literal(line: str) -> str | None:
    """The longest literal word every match of ``line`` contains, or None when there is none worth testing."""
    core = _GROUP.sub(" ", line).replace("\\.", ".")
    words = [w for w in re.split(r"[\\^$|+{}()\[\]*?\s]+", core) if len(w) >= 2]
    if "|" in _GROUP.sub("", line) or not words:
        return None
    return max(words, key=len)


def job_script(meta_data: Any) -> str:
    """The ``jobScript`` of a job's metadata (a dict or its JSON text), or "" when there is none."""
    if isinstance(meta_data, str):
        try:
            meta_data = json.loads(meta_data)
        except ValueError:
            return ""
    if isinstance(meta_data, dict):
        script = meta_data.get("jobScript")
        return script if isinstance(script, str) else ""
    return ""

