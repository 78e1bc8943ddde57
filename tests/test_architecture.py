"""Layering rules: the core imports no front-end library; the CLI stays lazy."""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import cc_backend

FRONT_END_LIBRARIES = ("click", "bottle", "tartiflette", "textual", "tabulate", "tqdm")
FRONT_END_PACKAGES = ("cc_backend.commands", "cc_backend.server", "cc_backend.tui")
ROOT = Path(__file__).resolve().parents[1]


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
    import ast
    import importlib

    for name in core_modules():
        module = importlib.import_module(name)
        assert module.__doc__ and module.__doc__.strip(), name
    # front ends are read, not imported: importing every resolver module has side effects
    front_ends = [path for folder in ("commands", "server", "tui") for path in sorted((ROOT / folder).rglob("*.py"))]
    assert len(front_ends) > 20
    for path in front_ends:
        doc = ast.get_docstring(ast.parse(path.read_text()))
        assert doc and doc.strip(), path.relative_to(ROOT)


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, imported names) of every import in ``path``, relative imports resolved within the server."""
    import ast

    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.append((node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            out += [(alias.name, []) for alias in node.names]
    return out


def test_route_modules_do_not_import_each_other():
    """Shared request parsing lives in server/requests.py; a route module mounts routes, nothing imports it but the app."""
    routes = sorted((ROOT / "server").glob("routes_*.py"))
    names = {f"cc_backend.server.{path.stem}" for path in routes}
    assert len(names) >= 6
    offenders = []
    for path in (ROOT / "server").rglob("*.py"):
        if path.name == "app.py":
            continue
        for module, imported in _imports(path):
            targets = {module} | {f"{module}.{name}" for name in imported}
            if targets & names:
                offenders.append(f"{path.relative_to(ROOT)}: {module}")
    assert offenders == []


def test_front_ends_import_no_private_names_of_other_modules():
    offenders = []
    for folder in ("commands", "server", "tui"):
        for path in (ROOT / folder).rglob("*.py"):
            for module, imported in _imports(path):
                private = [name for name in imported if name.startswith("_") and name != "__version__"]
                if module.startswith("cc_backend") and private:
                    offenders.append(f"{path.relative_to(ROOT)}: {module} {private}")
    assert offenders == []


def _python_files(folder: Path, skipped: set[Path]) -> list[Path]:
    found = []
    for current, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if Path(current, d) not in skipped and d != "__pycache__"]
        found.extend(Path(current, f) for f in files if f.endswith(".py"))
    return found


def test_nothing_reads_outside_the_repository():
    """A clone alone runs the suite: fixtures come from tests/fixtures, never from a folder beside the clone."""
    import re

    root = Path(__file__).resolve().parents[1]
    outside = re.compile(r"""\.\./shared|/work/shared|["']shared["']\s*/|/\s*["']shared["']|parents\[\d\]\s*\.parent""")
    offenders = []
    # bench/out/ holds the benchmarks' generated sites (git-ignored; 100,000s of folders): not source.
    skipped = {root / "bench" / "out"}
    for folder in ("tests", "tools", "bench", "cc_backend", "commands", "server", "tui"):
        for path in _python_files(root / folder, skipped):
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
