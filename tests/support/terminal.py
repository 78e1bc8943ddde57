"""A real terminal for end-to-end tests: a command in a detached tmux session on a socket of its own.

Each :class:`Terminal` runs its own tmux server (``tmux -L <unique name>``), so sessions of parallel
tests never meet and :meth:`Terminal.close` (``kill-server``) leaves nothing behind. The command runs
in ``sh`` after a marker line is printed, and its exit status is written to a file when it ends, so a
test can check both that the program quit with 0 and that the terminal shows the shell's output again.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

TMUX = shutil.which("tmux") or "/usr/bin/tmux"


def tmux_available() -> bool:
    return Path(TMUX).is_file()


class Terminal:
    """``command`` running in a ``width`` x ``height`` tmux pane, with ``cwd``, extra ``env``, the variables
    ``unset`` removed from the environment, and ``TERM`` set to ``term``.

    Use as a context manager. Before the command starts, the pane prints :attr:`marker`; afterwards the
    shell writes ``exit=<status>`` to a file that :meth:`exit_status` reads and then waits (``sleep``),
    so that the pane stays open and what the program left on screen can still be captured.
    """

    def __init__(self, command: Sequence[str], *, cwd: Path, folder: Path, env: Mapping[str, str] | None = None,
                 unset: Sequence[str] = (), width: int = 100, height: int = 30, term: str = "xterm-256color") -> None:
        self.socket = f"cc-test-{uuid.uuid4().hex[:12]}"
        self.folder = folder
        self.status_file = folder / f"{self.socket}.exit"
        self.marker = f"terminal-{self.socket}-ready"
        self.width, self.height = width, height
        script = (f"printf '%s\\n' {shlex.quote(self.marker)}; {shlex.join(command)}; "
                  f"echo \"exit=$?\" > {shlex.quote(str(self.status_file))}")
        self._env = {**os.environ, **(env or {})}
        # TMUX: a test started inside tmux must still get a server of its own. COLUMNS and LINES (set by some
        # runners, e.g. pytest-xdist's workers) would override the pane's size for the program.
        for name in ("TMUX", "COLUMNS", "LINES", *unset):
            self._env.pop(name, None)
        # The pane's environment: tmux passes its own (default-terminal, the variables given with -e).
        pane_env = [arg for name, value in (env or {}).items() for arg in ("-e", f"{name}={value}")]
        # One tmux invocation: the server starts with the terminal type set before the first pane exists.
        self._tmux("-f", "/dev/null", "set-option", "-g", "default-terminal", term, ";",
                   "new-session", "-d", "-s", "test", "-x", str(width), "-y", str(height), "-c", str(cwd),
                   *pane_env, "sh", "-c", script + "; exec sleep 3600")
        self.socket_path = Path(self.display("socket_path"))

    # -- tmux ------------------------------------------------------------------------------------------

    def _tmux(self, *args: str) -> str:
        r = subprocess.run([TMUX, "-L", self.socket, *args], capture_output=True, text=True, env=self._env,
                           timeout=30)
        if r.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
        return r.stdout

    def send_keys(self, *keys: str, literal: bool = False) -> None:
        """tmux key names (``Enter``, ``Escape``, ``C-c``, ``q``) or, with ``literal``, text typed as it is."""
        self._tmux("send-keys", "-t", "test", *(["-l"] if literal else []), *keys)

    def type_text(self, text: str) -> None:
        self.send_keys(text, literal=True)

    def capture(self, *, escapes: bool = False) -> str:
        """The visible pane as text; with ``escapes`` including the SGR sequences of colours and attributes."""
        return self._tmux("capture-pane", "-p", "-t", "test", *(["-e"] if escapes else []))

    def display(self, variable: str) -> str:
        """A tmux format variable of the pane, e.g. ``alternate_on`` (1 while the program uses the alternate screen)."""
        return self._tmux("display-message", "-p", "-t", "test", f"#{{{variable}}}").strip()

    def resize(self, width: int, height: int) -> None:
        self._tmux("resize-window", "-t", "test", "-x", str(width), "-y", str(height))

    # -- waiting ---------------------------------------------------------------------------------------

    def wait_until(self, predicate: Callable[[str], bool], timeout: float = 10.0, what: str = "the screen", *,
                   escapes: bool = False) -> str:
        """The pane's text (see :meth:`capture`) once ``predicate`` holds for it; AssertionError with the last
        screen otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.capture(escapes=escapes)
            if predicate(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} did not appear within {timeout:g} s; the pane shows:\n{screen}")
            time.sleep(0.05)

    def wait_for(self, text: str, timeout: float = 10.0) -> str:
        """The pane's text once ``text`` is on it."""
        return self.wait_until(lambda screen: text in screen, timeout, repr(text))

    def wait_gone(self, text: str, timeout: float = 10.0) -> str:
        """The pane's text once ``text`` is no longer on it."""
        return self.wait_until(lambda screen: text not in screen, timeout, f"the disappearance of {text!r}")

    def exit_status(self, timeout: float = 10.0) -> int:
        """The command's exit status, waiting for it to end."""
        deadline = time.monotonic() + timeout
        while not self.status_file.exists() or not self.status_file.read_text().strip():
            if time.monotonic() > deadline:
                raise AssertionError(f"the command did not end within {timeout:g} s; the pane shows:\n"
                                     f"{self.capture()}")
            time.sleep(0.05)
        return int(self.status_file.read_text().strip().removeprefix("exit="))

    # -- lifetime --------------------------------------------------------------------------------------

    def close(self) -> None:
        subprocess.run([TMUX, "-L", self.socket, "kill-server"], capture_output=True, env=self._env, timeout=30)
        self.socket_path.unlink(missing_ok=True)  # tmux leaves the socket file of a killed server behind

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
