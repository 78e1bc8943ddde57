"""Layering rules: the core imports no front-end library; the CLI stays lazy."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import cc_backend

FRONT_END_LIBRARIES = ("click", "bottle", "tartiflette", "textual", "tabulate", "tqdm")
FRONT_END_PACKAGES = ("cc_backend.commands", "cc_backend.server", "cc_backend.tui")


def core_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(cc_backend.__path__, "cc_backend."):
        if not info.name.startswith(FRONT_END_PACKAGES):
            names.append(info.name)
    return names


def test_core_modules_import_no_front_end_library():
    modules = core_modules()
    assert "cc_backend.jobs.query" in modules and "cc_backend.importer" in modules
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"print(json.dumps([m for m in {FRONT_END_LIBRARIES!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_cli_help_imports_no_database_or_server_code():
    code = (
        "import sys, json\n"
        "from cc_backend.commands.main import cli\n"
        "try:\n    cli.main(['--help'], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('sqlalchemy', 'sqlmodel', 'pydantic', 'orjson', 'bcrypt', 'jwt', 'cryptography', 'jsonschema'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.splitlines()[-1]) == []


def test_every_module_has_a_docstring():
    import importlib

    for name in core_modules() + ["cc_backend.commands.main", "cc_backend.commands.jobs",
                                  "cc_backend.commands.users", "cc_backend.commands.admin"]:
        module = importlib.import_module(name)
        assert module.__doc__ and module.__doc__.strip(), name


def test_nothing_reads_outside_the_repository():
    """A clone alone runs the suite: fixtures come from tests/fixtures, never from a folder beside the clone."""
    import re

    root = Path(__file__).resolve().parents[1]
    outside = re.compile(r"""\.\./shared|/work/shared|["']shared["']\s*/|/\s*["']shared["']|parents\[\d\]\s*\.parent""")
    offenders = []
    for folder in ("tests", "tools", "bench", "cc_backend", "commands", "server", "tui"):
        for path in (root / folder).rglob("*.py"):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if outside.search(line) and "outside.search" not in line and "re.compile" not in line:
                    offenders.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    for script in ("run-tests.sh", "startDemo.sh", ".ci/run"):
        if "shared" in (root / script).read_text():
            offenders.append(script)
    assert offenders == []
    readme = (root / "tests" / "fixtures" / "README.md").read_text()
    for folder in ("peer-data/archive/", "peer-data/db/job.db", "peer-data/importer/", "upstream-spec/cc-backend/api/",
                   "upstream-spec/cc-backend/configs/"):
        assert f"`{folder}`" in readme and (root / "tests" / "fixtures" / folder).exists(), folder
