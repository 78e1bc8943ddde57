"""The ``cc-backend`` command line in tests: in process through click's runner, or as a real process.

In process is the default (a subprocess costs 0.5-0.8 s of interpreter start and imports); tests of
exit codes as a shell sees them, of lazy imports and of the server process use :func:`run_cli`.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

EXE = Path(sys.executable).parent / "cc-backend"
FAST_BCRYPT = {"CC_BCRYPT_ROUNDS": "4"}


def run_cli(*args: str, cwd: Path | None = None, input: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the installed ``cc-backend`` console script as a real process."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([str(EXE), *args], cwd=cwd, input=input, capture_output=True, text=True, env=full_env,
                          timeout=300)


@dataclass
class Result:
    """What a test needs of a finished command: the same names as ``subprocess.CompletedProcess``."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


class _Entry:
    """The console script's ``main`` (flag normalisation, error-to-exit-code mapping) for click's runner."""

    name = "cc-backend"

    @staticmethod
    def main(args: list[str], prog_name: str, **_: object) -> None:
        from cc_backend.commands.main import main

        main(list(args))


def invoke(*args: str, cwd: Path, input: str | None = None) -> Result:
    """Run ``cc-backend ARGS`` in this process with ``cwd`` as working directory.

    The .env secrets the command reads into ``os.environ`` are removed again afterwards, so that each
    invocation sees its own site's keys, as a fresh process would. Exceptions other than the exits
    ``main`` maps are raised into the test (a process would print a traceback and exit with 1).
    """
    from click.testing import CliRunner

    from cc_backend.config import SECRET_NAMES

    env = {name: None for name in SECRET_NAMES}
    with contextlib.chdir(cwd):
        result = CliRunner().invoke(_Entry(), list(args), input=input, env=env, prog_name="cc-backend",  # type: ignore[arg-type]
                                    catch_exceptions=False)
    return Result(args, result.exit_code, result.stdout, result.stderr)


def cli(site: Path, *args: str, input: str | None = None) -> Result:
    """``cc-backend --config SITE/config.json ARGS`` in process, in the site's folder."""
    return invoke("--config", str(site / "config.json"), *args, cwd=site, input=input)


def cli_process(site: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    """``cc-backend --config SITE/config.json ARGS`` as a real process (exit codes, imports, stderr logging)."""
    return run_cli("--config", str(site / "config.json"), *args, cwd=site, input=input, env=FAST_BCRYPT)
