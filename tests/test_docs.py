"""Docs the tests keep honest: generated references are current, commands have help, keys and examples are real."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
GEN_DOCS = ROOT / "tools" / "gen_docs.py"


def _load_gen_docs():
    spec = importlib.util.spec_from_file_location("gen_docs", GEN_DOCS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen_docs = _load_gen_docs()
COMMANDS = gen_docs.walk_commands()


def _markdown_files() -> list[Path]:
    return sorted(DOCS.glob("*.md")) + [ROOT / "README.md"]


# --------------------------------------------------------------------------------- generated files


def test_generated_docs_are_up_to_date_whatever_the_terminal_width():
    env = {**os.environ, "COLUMNS": "40"}
    result = subprocess.run([sys.executable, str(GEN_DOCS), "--check"], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr


def test_check_mode_names_the_stale_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gen_docs, "DOCS", tmp_path)
    (tmp_path / "cli.md").write_text(gen_docs.render_cli(), encoding="utf-8")
    (tmp_path / "configuration.md").write_text("# outdated\n", encoding="utf-8")
    assert gen_docs.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert "configuration.md is out of date" in err and "cli.md" not in err.replace("configuration.md", "")
    assert gen_docs.main([]) == 0
    assert gen_docs.main(["--check"]) == 0


# --------------------------------------------------------------------------------- commands


@pytest.mark.parametrize("path", [p for p, _, _ in COMMANDS])
def test_every_command_has_help_and_is_documented(path):
    cmd = gen_docs.resolve(path.removeprefix("cc-backend").strip())
    assert cmd is not None
    assert (cmd.help or "").strip(), f"{path} has no help text"
    assert f"\n### {path}\n" in (DOCS / "cli.md").read_text(encoding="utf-8")


def test_lazy_command_table_has_short_help_for_every_subcommand():
    from cc_backend.commands.main import SUBCOMMANDS

    for name, (_target, short) in SUBCOMMANDS.items():
        assert short.strip(), name
        assert gen_docs.resolve(name) is not None, name


# --------------------------------------------------------------------------------- configuration


def test_every_top_level_config_key_is_documented():
    from cc_backend.config import SECTIONS

    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    for key in SECTIONS:
        assert f"| `{key}` |" in text, key
        assert re.search(rf"^### {re.escape(key)}(\[\])?$", text, re.M), key


def test_every_nested_config_key_and_secret_is_documented():
    from cc_backend.config import SECRET_NAMES, Config

    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    for path in gen_docs.config_keys(Config):
        parent, _, leaf = path.rpartition(".")
        assert f"| `{leaf}` |" in text, path
        if parent:
            assert f"\n### {parent}\n" in text, path
    for name in SECRET_NAMES:
        assert f"| `{name}` |" in text, name


# --------------------------------------------------------------------------------- hand-written docs

_OPERATORS = {"|", "||", "&&", ";"}


_SHELL_BLOCKS = {"", "sh", "bash", "shell", "console"}


def _code_lines(text: str) -> list[str]:
    """Command lines inside shell code blocks (```sh, or unlabelled), with backslash continuations joined."""
    lines, in_code, shell, pending = [], False, False, ""
    for raw in text.splitlines():
        if raw.lstrip().startswith("```"):
            in_code = not in_code
            shell = in_code and raw.strip()[3:].strip() in _SHELL_BLOCKS
            continue
        if not shell:
            continue
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        lines.append(line.removeprefix("$ "))
    return lines


def _cc_invocations(text: str) -> list[list[str]]:
    out = []
    for line in _code_lines(text):
        if "cc-backend" not in line or line.startswith("#"):
            continue
        tokens = shlex.split(line, comments=True)
        segment: list[str] = []
        for token in tokens + [";"]:
            if token in _OPERATORS:
                if segment and segment[0].endswith("cc-backend"):
                    out.append(segment[1:])
                segment = []
            else:
                segment.append(token)
    return out


def _check_invocation(args: list[str]) -> None:
    from cc_backend.commands.main import normalize_argv

    cli, ctx = gen_docs._root_context()
    cmd: click.Command = cli
    args = normalize_argv(args)
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--":
            break
        if token.startswith("-") and not re.fullmatch(r"-\d+(\.\d+)?", token):
            name = token.split("=", 1)[0]
            params = [p for p in cmd.get_params(ctx) if isinstance(p, click.Option)]
            option = next((p for p in params if name in p.opts or name in p.secondary_opts), None)
            assert option is not None, f"{' '.join(args)}: {cmd.name} has no option {name}"
            if not option.is_flag and not option.count and "=" not in token:
                i += 1  # its value
        elif isinstance(cmd, click.Group):
            sub = cmd.get_command(ctx, token)
            assert sub is not None, f"{' '.join(args)}: no command {token!r}"
            cmd, ctx = sub, click.Context(sub, info_name=token, parent=ctx)
        i += 1


@pytest.mark.parametrize("path", _markdown_files(), ids=lambda p: p.name)
def test_command_examples_use_real_commands_and_options(path):
    for args in _cc_invocations(path.read_text(encoding="utf-8")):
        _check_invocation(args)


def _anchors(text: str) -> set[str]:
    return {gen_docs._anchor(m.group(1).strip().strip("`")) for m in re.finditer(r"^#+ (.+)$", text, re.M)}


@pytest.mark.parametrize("path", _markdown_files(), ids=lambda p: p.name)
def test_links_point_to_existing_files_and_headings(path):
    text = path.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target) or target.startswith("mailto:"):
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        assert dest.exists(), f"{path.name}: broken link {target}"
        if anchor and dest.suffix == ".md":
            assert anchor in _anchors(dest.read_text(encoding="utf-8")), f"{path.name}: no heading for {target}"


def test_docs_index_lists_every_page():
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    for page in DOCS.glob("*.md"):
        if page.name != "README.md":
            assert f"]({page.name})" in index, page.name


def test_readme_lists_every_page_of_the_documentation():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    pages = [f"docs/{page.name}" for page in (root / "docs").glob("*.md") if page.name != "README.md"]
    assert [page for page in pages + ["init/README.md"] if f"]({page})" not in readme] == []
