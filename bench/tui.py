"""The terminal UI (``cc-backend tui``) in a real terminal (tmux, 100x30) on a 100,000-job SQLite database.

Site: the one of bench/web.py (its ``build``: ``demo generate --meta-only`` jobs loaded with ``init-db``,
60 newer demo jobs with metric data, and a 16-node fritz job with 10 metrics at 60 s over 12 h imported
with ``--import-job``), built once under bench/out/tui-<jobs>/ and reused with --keep. Remote figures
run against a ``cc-backend serve`` of that site on loopback with an API token of an admin.

Every figure is what a user feels: the time from an action to the text on the terminal, read from the
tmux pane (polled every few ms; a poll costs about as much as the ``tmux + sh`` baseline below says
a screen update costs to observe). Median of --runs:

* start: from launching ``cc-backend tui`` (Python start-up included) to the first job row on screen;
  local (``--config``) and remote (``--url --token``);
* paging: ten pages forward with ``n``, each from the key press to the next page's status line
  ("jobs 26-50 of ...", drawn with the rows) on screen; the figure is the median page;
* job detail: from Enter on the 16-node job to its metadata on screen, and to its first metric's plot
  (braille) on the Metrics tab (``2`` sent as soon as the detail shows).

Floors measured in the same run, without any UI: the data source's calls for the same data (the
first page, a page at an offset, the count, the job with its statistics and its first metric's data),
each the first call in a fresh process (no cache warm, as in a new ``cc-backend tui``), and that
process's time from launch to the first page in hand,
``cc-backend tui --help`` in tmux (Python and CLI start-up), and ``sh -c 'echo'`` in tmux. Usage:

    .venv/bin/python bench/tui.py [--jobs 100000] [--keep] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent / "tests")]

from _support import BIN, Server  # noqa: E402 - bench/_support.py, found through the line above
from support.terminal import Terminal, tmux_available  # noqa: E402 - the tmux driver of the terminal test

import web  # noqa: E402 - bench/web.py: the same site

OUT = BENCH / "out"
USER = "benchtui"
PASSWORD = "Bench-tui-pw-1"
SIZE = (100, 30)
PAGES = 10
#: The jobs screen's status line once a page is drawn (its rows are drawn in the same refresh).
STATUS = re.compile(r"jobs ([\d,]+)-([\d,]+) of ([\d,]+)")
ROW = re.compile(r"^ (\d+)@([\w.-]+)\s", re.M)
BRAILLE = re.compile("[\u2801-\u28ff]")
GOALS_MS = {"start local": 1000, "start remote": 1500, "page": 100, "job detail": 300}


# ------------------------------------------------------------------------------------------- reporting


show = partial(web.show, width=56, missed="MISSED")
p50 = web.p50


def timed(call: Callable[[], object]) -> float:
    t = time.perf_counter()
    call()
    return (time.perf_counter() - t) * 1000


# ------------------------------------------------------------------------------------------- the terminal


class Pane:
    """A Terminal that records when it was launched, and waits by polling its pane as fast as tmux allows."""

    def __init__(self, command: list[str], cwd: Path, scratch: Path) -> None:
        self.launched = time.perf_counter()
        self.terminal = Terminal(command, cwd=cwd, folder=scratch, width=SIZE[0], height=SIZE[1],
                                 unset=("NO_COLOR",))

    def wait(self, predicate: Callable[[str], bool], timeout: float, what: str) -> tuple[float, str]:
        """(perf_counter when ``predicate`` first held, the screen)."""
        deadline = time.perf_counter() + timeout
        while True:
            screen = self.terminal.capture()
            seen = time.perf_counter()
            if predicate(screen):
                return seen, screen
            if seen > deadline:
                raise TimeoutError(f"{what} did not appear within {timeout:g} s; the pane shows:\n{screen}")
            time.sleep(0.002)

    def quit(self) -> None:
        try:
            self.terminal.send_keys("q")
            self.terminal.exit_status(timeout=10)
        finally:
            self.terminal.close()


def first_row_shown(screen: str) -> bool:
    return ROW.search(screen) is not None


def status_of(screen: str) -> tuple[int, int, int] | None:
    match = STATUS.search(screen)
    return tuple(int(part.replace(",", "")) for part in match.groups()) if match else None  # type: ignore[return-value]


def baseline_ms(command: list[str], text: str, cwd: Path, scratch: Path, runs: int) -> float:
    times = []
    for _ in range(runs):
        pane = Pane(command, cwd, scratch)
        try:
            seen, _ = pane.wait(lambda s: text in s, 30, repr(text))
            times.append((seen - pane.launched) * 1000)
        finally:
            pane.terminal.close()
    return p50(times)


def measure_start(command: list[str], cwd: Path, scratch: Path, runs: int) -> float:
    times = []
    for _ in range(runs):
        pane = Pane(command, cwd, scratch)
        try:
            seen, _ = pane.wait(first_row_shown, 60, "the first job row")
            times.append((seen - pane.launched) * 1000)
        finally:
            pane.quit()
    return p50(times)


def measure_paging(command: list[str], cwd: Path, scratch: Path) -> tuple[list[float], int]:
    """ms per page for PAGES pages forward, from the key press to the next page's status line."""
    pane = Pane(command, cwd, scratch)
    try:
        # The count ("of N") runs in the background after the first page: wait for it, it is not paging.
        _, screen = pane.wait(lambda s: status_of(s) is not None, 60, "the first page with its count")
        first, last, total = status_of(screen)  # type: ignore[misc]
        size = last - first + 1
        times = []
        for page in range(2, PAGES + 2):
            expected = f"jobs {(page - 1) * size + 1:,}-{page * size:,} of"
            sent = time.perf_counter()
            pane.terminal.send_keys("n")
            seen, _ = pane.wait(lambda s, e=expected: e in s, 30, expected)
            times.append((seen - sent) * 1000)
        return times, total
    finally:
        pane.quit()


def measure_job_detail(command: list[str], cwd: Path, scratch: Path, runs: int,
                       job_title: str) -> tuple[float, float, float]:
    """From Enter on the job's row to (its header on screen, its first plot drawn, the slowest plot of the runs);
    ``command`` lists that job alone.

    The detail screen opens on its Metrics tab: no key is pressed between Enter and the plot.
    """
    shown, plotted = [], []
    for _ in range(runs):
        pane = Pane(command, cwd, scratch)
        try:
            pane.wait(lambda s: status_of(s) is not None and first_row_shown(s), 60, "the job's row")
            sent = time.perf_counter()
            pane.terminal.send_keys("Enter")
            seen, _ = pane.wait(lambda s: job_title in s and "Monitoring" in s, 30, "the job's detail")
            shown.append((seen - sent) * 1000)
            seen, _ = pane.wait(lambda s: len(BRAILLE.findall(s)) > 20, 30, "the plot")
            plotted.append((seen - sent) * 1000)
            pane.terminal.send_keys("Escape")  # a q right after it would read as alt+q: wait for the list
            pane.wait(lambda s: status_of(s) is not None, 30, "the job list")
        finally:
            pane.quit()
    return p50(shown), p50(plotted), max(plotted)


# ------------------------------------------------------------------------------------------- floors


def floor_child(kind: str, work: Path, url: str, token: str, big_id: int) -> None:
    """In a fresh process (``--floor-child``): the data source's calls of the screens, without any UI; prints
    the epoch at which the first page was in hand and the ms of each call as JSON."""
    from cc_backend.jobs.filter import OrderBy

    if kind == "local":
        from cc_backend.runtime import Runtime
        from cc_backend.tui.local import LocalSource

        source = LocalSource(Runtime(str(work / "config.json"), str(work / ".env")))
    else:
        from cc_backend.tui.remote import RemoteSource

        source = RemoteSource(url, token)
    from cc_backend.tui.plots import resolution_for

    order = OrderBy(field="startTime", order="DESC")
    page_size = SIZE[1] - 5
    ms = {"connect": timed(source.connect), "first page": timed(partial(source.jobs, None, order, 1, page_size))}
    first_page_at = time.time()
    ms["page 11"] = timed(partial(source.jobs, None, order, 11, page_size))
    ms["count"] = timed(partial(source.count_jobs, None))
    ms["clusters"] = timed(source.clusters)
    found: dict = {}

    def job_and_stats() -> None:
        found["job"] = source.job(big_id)
        found["stats"] = source.job_stats(found["job"], None)

    ms["job detail"] = timed(job_and_stats)
    job, first_metric = found["job"], sorted(entry["name"] for entry in found["stats"])[0]
    ms["plot data"] = timed(partial(source.job_metrics, job, [first_metric], ["node"],
                                    resolution_for(job, SIZE[0] - 8)))
    source.close()
    print(json.dumps({"first_page_at": first_page_at, "ms": ms}))


def source_floor(kind: str, work: Path, url: str, token: str, big_id: int, runs: int) -> dict[str, float]:
    """p50 of ``runs`` fresh processes of :func:`floor_child`; "start" is from launching the process (Python
    start-up and imports included) to the first page in hand."""
    figures: dict[str, list[float]] = {}
    for _ in range(runs):
        launched = time.time()
        r = subprocess.run([sys.executable, __file__, "--floor-child", kind, "--work", str(work), "--url", url,
                            "--token", token, "--big-id", str(big_id)], capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"the floor process failed:\n{r.stderr[-3000:]}")
        answer = json.loads(r.stdout.strip().splitlines()[-1])
        figures.setdefault("start", []).append((answer["first_page_at"] - launched) * 1000)
        for name, value in answer["ms"].items():
            figures.setdefault(name, []).append(value)
    return {name: p50(values) for name, values in figures.items()}


def print_floor(label: str, floor: dict[str, float]) -> None:
    print(f"\nfloor: {label} data source alone (no UI), each call the first of a fresh process, p50:")
    show("process launch to the first page in hand (no UI)", floor["start"])
    show("connect (schema version / server and token check)", floor["connect"])
    show(f"jobs page 1 ({SIZE[1] - 5} jobs, newest first)", floor["first page"])
    show("jobs page 11 (offset paging)", floor["page 11"])
    show("count of all jobs", floor["count"])
    show("clusters (the first job detail needs them; then cached)", floor["clusters"])
    show("job + jobStats of the 16-node job", floor["job detail"])
    show("jobMetrics: its first metric at node scope (the plot)", floor["plot data"])


# ------------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=100_000, help="jobs without metric data (default 100,000)")
    parser.add_argument("--keep", action="store_true", help="reuse the site under bench/out/ if it exists")
    parser.add_argument("--runs", type=int, default=5, help="repetitions of each figure (default 5)")
    parser.add_argument("--floor-child", choices=["local", "remote"], help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--big-id", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_child:
        floor_child(args.floor_child, args.work, args.url, args.token, args.big_id)
        return
    if not tmux_available():
        sys.exit("tmux is needed (apt install tmux)")

    work, port, config, big_id, token = web.open_site(OUT / f"tui-{args.jobs}", args.jobs, args.keep, USER,
                                                      PASSWORD)
    url = f"http://127.0.0.1:{port}"
    local = [str(BIN), "tui", *config]
    remote = [str(BIN), "tui", "--url", url, "--token", token]
    big_filter = [f"job-id:{web.BIG_JOB_ID}", "cluster:fritz"]

    with (tempfile.TemporaryDirectory(prefix="bench-tui-", ignore_cleanup_errors=True) as tmp,
          Server(work, [str(BIN), *config], port)):
        scratch = Path(tmp)
        print(f"\nterminal: tmux {SIZE[0]}x{SIZE[1]}, TERM=xterm-256color; p50 of {args.runs} unless said")
        print("\nbaselines in the terminal (launch to text on screen):")
        show("tmux + sh -c 'echo ready'", baseline_ms(["sh", "-c", "echo ready"], "ready", work, scratch,
                                                        args.runs))
        show("cc-backend tui --help (Python + CLI start-up)",
             baseline_ms([str(BIN), "tui", "--help"], "Show this message and exit", work, scratch, args.runs))

        for label, command in (("local", local), ("remote", remote)):
            print_floor(label, source_floor(label, work, url, token, big_id, args.runs))
            print(f"\n{label} terminal UI ({'cc-backend tui --config' if label == 'local' else 'cc-backend tui --url'}):")
            show("start: launch to the first job row on screen", measure_start(command, work, scratch, args.runs),
                 GOALS_MS[f"start {label}"])
            pages, total = measure_paging(command, work, scratch)
            show(f"paging: key n to the next page drawn (median of {PAGES} pages)", p50(pages), GOALS_MS["page"],
                 f"[max {max(pages):.0f} ms; {total:,} jobs]")
            shown, plotted, slowest = measure_job_detail(command + big_filter, work, scratch, args.runs,
                                                         f"Job {web.BIG_JOB_ID} @ fritz")
            show("job detail: Enter to the job's header", shown)
            show("job detail: Enter to the first plot drawn (16 nodes)", plotted, GOALS_MS["job detail"],
                 f"[max {slowest:.0f} ms]")


if __name__ == "__main__":
    main()
