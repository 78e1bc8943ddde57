"""``cc-backend tui`` in a real terminal (tmux): resize, filter, open a job with its plot, go back, quit; colours."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from support.terminal import Terminal, tmux_available

pytestmark = pytest.mark.skipif(not tmux_available(), reason="tmux is not installed (run-tests.sh installs it)")

CC_BACKEND = str(Path(sys.executable).parent / "cc-backend")
#: A job row of the list: "1250445@fritz    k161sg55 ..." (batch job id @ cluster first).
ROW = re.compile(r"^ (\d+)@([\w.-]+)\s", re.M)
BRAILLE = re.compile("[\u2801-\u28ff]")
SGR = re.compile(r"\x1b\[([0-9;]*)m")


def tui(demo_site, tmp_path, *args: str, env: dict[str, str] | None = None, term: str = "xterm-256color") -> Terminal:
    """``cc-backend tui`` on the demo site's database and archive (local mode), in a 100x30 pane.

    The colour depth depends on ``term`` alone: the test runner's NO_COLOR and COLORTERM do not reach the pane.
    """
    command = [CC_BACKEND, "tui", "--config", str(demo_site.folder / "config.json"), *args]
    return Terminal(command, cwd=demo_site.folder, folder=tmp_path, env=env, unset=("NO_COLOR", "COLORTERM"),
                    term=term)


def rows(screen: str) -> list[tuple[str, str]]:
    return ROW.findall(screen)


def test_resize_filter_open_a_job_with_its_plot_go_back_and_quit_restore_the_terminal(demo_site, tmp_path):
    with demo_site.db() as db:
        total = db.execute("SELECT count(*) FROM job").fetchone()[0]
        completed = db.execute("SELECT count(*) FROM job WHERE job_state = 'completed'").fetchone()[0]
        newest_completed = db.execute("SELECT max(start_time) FROM job WHERE job_state = 'completed'").fetchone()[0]
    assert 0 < completed < total

    with tui(demo_site, tmp_path) as terminal:
        screen = terminal.wait_for(f"of {total}", timeout=20)
        assert terminal.display("alternate_on") == "1"
        assert len(rows(screen)) == 30 - 5  # a page fills the table: header, filter, table header, status, footer

        terminal.resize(80, 24)  # a smaller window: a smaller page, no leftovers of the larger one
        screen = terminal.wait_for(f"jobs 1-19 of {total}")
        assert len(rows(screen)) == 19 and len(screen.splitlines()[0]) <= 80
        terminal.resize(100, 30)
        screen = terminal.wait_for(f"jobs 1-25 of {total}")

        # Textual moves the focus after the key's handler returns: text typed at once would reach the table
        # (whose keys sort, open lists...). A user sees the bar change its look; so does the test.
        filter_bar = terminal.capture(escapes=True).splitlines()[1]
        terminal.send_keys("f")
        terminal.wait_until(lambda s: s.splitlines()[1] != filter_bar, what="the focused filter bar", escapes=True)
        terminal.type_text("state:completed")
        terminal.send_keys("Enter")
        screen = terminal.wait_for(f"of {completed} ", timeout=10)
        shown = rows(screen)
        assert shown, screen
        row_lines = [line for line in screen.splitlines() if ROW.match(line)]
        assert all(" completed " in line for line in row_lines), screen
        assert "state:completed" in screen  # the filter bar keeps what was typed

        job_id, cluster = shown[0]
        with demo_site.db() as db:
            state, start = db.execute("SELECT job_state, start_time FROM job WHERE job_id = ? AND cluster = ?",
                                      (int(job_id), cluster)).fetchone()
        assert (state, start) == ("completed", newest_completed)  # newest first

        terminal.send_keys("Enter")
        terminal.wait_for(f"Job {job_id} @ {cluster}")
        # a job opens on its first metric's plot, no key needed
        screen = terminal.wait_until(lambda s: len(BRAILLE.findall(s)) > 20, what="a braille plot")
        assert re.search(r"metric 1/\d+: \w+ at node scope", screen), screen
        first_metric = re.search(r"metric 1/\d+: (\w+)", screen).group(1)
        assert f"{first_metric} - node scope" in screen  # the plot's title

        terminal.send_keys("Escape")
        screen = terminal.wait_for(f"of {completed} ")
        assert rows(screen)[0] == (job_id, cluster)

        terminal.send_keys("q")
        assert terminal.exit_status() == 0
        assert terminal.display("alternate_on") == "0"
        screen = terminal.capture()
        assert terminal.marker in screen  # what the shell printed before the app is back on screen
        assert "Job id" not in screen and "Traceback" not in screen


def _colour_codes(escaped: str) -> list[list[str]]:
    """The colour parts of every SGR sequence: ['38', '5', '112'], ['92'], ['48', '2', 'r', 'g', 'b'] ..."""
    codes = []
    for params in SGR.findall(escaped):
        parts = params.split(";") if params else ["0"]
        i = 0
        while i < len(parts):
            part = parts[i]
            if part in ("38", "48"):
                size = 3 if parts[i + 1] == "5" else 5
                codes.append(parts[i:i + size])
                i += size
                continue
            if part and (30 <= int(part) <= 37 or 40 <= int(part) <= 47 or 90 <= int(part) <= 97
                         or 100 <= int(part) <= 107):
                codes.append([part])
            i += 1
    return codes


def _is_grey(code: list[str]) -> bool:
    """Black, white and the grey levels: no hue (16 colours: 30/37/90/97 and backgrounds; 256: 232-255 and
    the cube's r=g=b; truecolor: r=g=b)."""
    if len(code) == 1:
        return int(code[0]) % 10 in (0, 7)
    if code[1] == "5":
        index = int(code[2])
        if index >= 232 or index in (0, 7, 8, 15):
            return True
        if 16 <= index <= 231:
            r, rest = divmod(index - 16, 36)
            g, b = divmod(rest, 6)
            return r == g == b
        return False
    return code[2] == code[3] == code[4]


def test_no_color_leaves_greys_only_and_a_16_colour_terminal_gets_16_colours(demo_site, tmp_path):
    with tui(demo_site, tmp_path, env={"NO_COLOR": "1"}) as terminal:
        terminal.wait_for(" of ", timeout=20)
        codes = _colour_codes(terminal.capture(escapes=True))
        terminal.send_keys("q")
        assert terminal.exit_status() == 0
    assert codes, "Textual shows contrast (cursor, header) in greys"
    assert [code for code in codes if not _is_grey(code)] == []

    with tui(demo_site, tmp_path, term="xterm") as terminal:
        screen = terminal.wait_for(" of ", timeout=20)
        codes = _colour_codes(terminal.capture(escapes=True))
        terminal.send_keys("q")
        assert terminal.exit_status() == 0
    assert rows(screen)
    assert [code for code in codes if len(code) > 1] == []  # no 256-colour or truecolor sequences
    assert [code for code in codes if not _is_grey(code)] != []  # but colours: job states, the cursor row

    with tui(demo_site, tmp_path, term="xterm-256color") as terminal:
        terminal.wait_for(" of ", timeout=20)
        codes = _colour_codes(terminal.capture(escapes=True))
        terminal.send_keys("q")
        assert terminal.exit_status() == 0
    assert [code for code in codes if not _is_grey(code)] != []
