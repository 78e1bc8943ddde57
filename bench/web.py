"""The web UI in a real browser (headless Debian Chromium through Playwright) on a 100,000-job SQLite database.

Site (built once under bench/out/web-<jobs>/, reused with --keep): ``cc-backend demo generate --meta-only``
jobs loaded with ``init-db``, plus 60 demo jobs WITH metric data whose start times all lie after the
others' (a second ``demo generate`` whose 30-day window ends 31 days later, copied into the same archive
before ``init-db``): the job list's first page, newest first, is then 50 jobs with data files. A 16-node
fritz job with 10 metrics (node scope, 12 h at 60 s) is imported with ``--import-job`` for the job view.

Figures, each beside its goal, and the floor measured in the same run (the GraphQL query for the same data):

* job list ``/monitoring/jobs/``: the first page's HTML (p50 of 30 GETs with a session cookie), the first
  row (``[data-testid=job-list] tbody tr``) visible after navigation start, every ``.plot`` drawn
  (``data-plotted`` set); floor: ``jobs`` (50 newest) + ``jobMetrics`` of those 50 jobs x 4 metrics;
* job view ``/monitoring/job/<dbId>`` of the 16-node job: every ``.plot`` drawn; floor: its ``jobMetrics``.

Browser times are from navigation start (``performance.now()``, polled every animation frame), median
of --runs warm navigations (the static files cached, as for any second page view), with the first, cold
one shown too. A page that does not exist yet (404) is reported and skipped. Usage:

    .venv/bin/python bench/web.py [--jobs 100000] [--keep] [--runs 5] [--resolution N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from _support import BIN, JOB_FIELDS, Server, free_port, fresh_folder, user_token, write_big_job, write_config

OUT = Path(__file__).resolve().parent / "out"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
NOW = 1_767_225_600  # the meta-only jobs' window ends here; the jobs with data start a day later
DATA_JOBS = 60
DATA_WINDOW_SHIFT = 31 * 86400
BIG_JOB_ID = 99_000_016
BIG_JOB_NODES = 16
BIG_JOB_METRICS = 10
#: upstream's default ui.metric-config.job-list-metrics
LIST_METRICS = ["cpu_load", "flops_any", "mem_bw", "mem_used"]
USER, PASSWORD = "benchweb", "Bench-web-pw-1"

JOB_LIST_URL = "/monitoring/jobs/"
JOB_VIEW_URL = "/monitoring/job/{id}"
FIRST_ROW = "[data-testid=job-list] tbody tr"
#: Returns the time since navigation start once every .plot of the page is drawn (false until then).
ALL_PLOTTED = """() => {
  const plots = document.querySelectorAll('.plot');
  return plots.length > 0 && Array.from(plots).every((p) => p.dataset.plotted) && performance.now();
}"""
FIRST_ROW_SHOWN = """(selector) => {
  const row = document.querySelector(selector);
  return row !== null && row.getClientRects().length > 0 && performance.now();
}"""

JOBS_QUERY = f"""query($filter: [JobFilter!], $page: PageRequest, $order: OrderByInput) {{
  jobs(filter: $filter, page: $page, order: $order) {{ items {{ {JOB_FIELDS} }} count hasNextPage }}
}}"""
METRICS_FIELDS = "name scope metric { unit { base prefix } timestep series { hostname statistics { avg min max } data } }"


# ------------------------------------------------------------------------------------------- the site


def run(*args: str, cwd: Path, stdin: str | None = None) -> str:
    r = subprocess.run([str(BIN), *args], cwd=cwd, capture_output=True, text=True, input=stdin)
    if r.returncode != 0:
        sys.exit(f"cc-backend {' '.join(args)} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return r.stdout


def build(work: Path, jobs: int, port: int) -> None:
    """The archive, database, keys and account of the site in ``work`` (skipped when job.db exists)."""
    cli = write_config(work, {"addr": f"127.0.0.1:{port}"}, work / "job-archive", session_key="bench-web")
    config = cli[1:]  # run() puts BIN in front
    if (work / "job.db").exists():
        return
    archive, extra = work / "job-archive", work / "with-data"
    for folder in (archive, extra):
        shutil.rmtree(folder, ignore_errors=True)
    t = time.perf_counter()
    run("demo", "generate", str(archive), "--jobs", str(jobs), "--meta-only", "--now", str(NOW), cwd=work)
    run("demo", "generate", str(extra), "--jobs", str(DATA_JOBS), "--seed", "2",
        "--now", str(NOW + DATA_WINDOW_SHIFT), cwd=work)
    for cluster in (p for p in extra.iterdir() if p.is_dir()):
        # Same generator, same cluster.json: only the job folders move over.
        shutil.copytree(cluster, archive / cluster.name, dirs_exist_ok=True, ignore=shutil.ignore_patterns("cluster.json"))
    shutil.rmtree(extra)
    print(f"archive: {jobs:,} jobs without and {DATA_JOBS} with metric data ({time.perf_counter() - t:.0f} s)")
    t = time.perf_counter()
    run(*config, "init-db", cwd=work)
    cluster = json.loads((archive / "fritz" / "cluster.json").read_text())
    meta_path, data_path = write_big_job(work, cluster, job_id=BIG_JOB_ID, nodes=BIG_JOB_NODES, user=USER,
                                         start=NOW - 40 * 86400, host_phase=7, metrics=BIG_JOB_METRICS)
    run(*config, "--import-job", f"{meta_path}:{data_path}", cwd=work)
    print(f"database: init-db and the 16-node job ({time.perf_counter() - t:.0f} s)")


def open_site(folder: Path, jobs: int, keep: bool, user: str, password: str) -> tuple[Path, int, list[str], int, str]:
    """The site in ``folder`` (built, or reused with ``keep``) with ``user`` an admin of ``password``, on a
    free port: (work folder, port, ``--config`` arguments, the big job's database id, ``user``'s token)."""
    work = fresh_folder(folder, keep)
    port = free_port()
    t = time.perf_counter()
    build(work, jobs, port)
    config = ["--config", str(work / "config.json")]
    with sqlite3.connect(work / "job.db") as db:
        count = db.execute("SELECT COUNT(*) FROM job").fetchone()[0]
        big_id = db.execute("SELECT id FROM job WHERE job_id = ?", (BIG_JOB_ID,)).fetchone()[0]
    print(f"site: {work} with {count:,} jobs (built or reused in {time.perf_counter() - t:.0f} s)")
    return work, port, config, big_id, user_token([str(BIN), *config], work, user, "admin,api", password)


def show_all_metrics_in_job_view(work: Path) -> None:
    """The bench user's job view plots the big job's 10 metrics (the default selection has 4)."""
    from cc_backend.db.engine import make_engine
    from cc_backend.ui_config import set_user_ui_config

    cluster = json.loads((work / "job-archive" / "fritz" / "cluster.json").read_text())
    names = [mc["name"] for mc in cluster["metricConfig"][:BIG_JOB_METRICS]]
    engine = make_engine(f"sqlite:///{work / 'job.db'}")
    set_user_ui_config(engine, USER, "metricConfig_jobViewPlotMetrics", json.dumps(names))
    engine.dispose()


# ------------------------------------------------------------------------------------------- figures


def show(label: str, value: float | None, goal: float | None = None, note: str = "", *, width: int = 58,
         missed: str = "OVER") -> None:
    if value is None:
        print(f"  {label:<{width}} {'-':>9}     {note}")
        return
    verdict = "" if goal is None else ("ok" if value <= goal else missed)
    goal_text = f"goal <= {goal:g} ms {verdict}" if goal is not None else ""
    # Flushed: a run takes minutes, and the figures should show up as they are measured.
    print(f"  {label:<{width}} {value:9.1f} ms  {goal_text}{'  ' + note if note else ''}", flush=True)


def p50(values: list[float]) -> float:
    return statistics.median(values)


def graphql(client: httpx.Client, token: str, query: str, variables: dict | None = None) -> tuple[float, dict]:
    t = time.perf_counter()
    r = client.post("/query", json={"query": query, "variables": variables or {}},
                    headers={"Authorization": f"Bearer {token}"})
    elapsed = (time.perf_counter() - t) * 1000
    body = r.json()
    if r.status_code != 200 or body.get("errors"):
        sys.exit(f"GraphQL failed ({r.status_code}): {str(body)[:500]}")
    return elapsed, body["data"]


def metrics_query(ids: list[str], metrics: list[str] | None, resolution: int | None) -> str:
    """One request with an aliased jobMetrics per job: the least a page needs to fetch its plots' data."""
    args = []
    if metrics is not None:
        args.append(f"metrics: {json.dumps(metrics)}")
    args.append("scopes: [node]")
    if resolution:
        args.append(f"resolution: {resolution}")
    parts = [f'j{i}: jobMetrics(id: "{job_id}", {", ".join(args)}) {{ {METRICS_FIELDS} }}'
             for i, job_id in enumerate(ids)]
    return "{ " + "\n".join(parts) + " }"


def list_floor(client: httpx.Client, token: str, runs: int, resolution: int | None) -> tuple[float, list[str]]:
    """p50 of the job list's data as GraphQL: 50 newest jobs, then their 4 metrics; returns (ms, job ids)."""
    variables = {"filter": [], "order": {"field": "startTime", "type": "col", "order": "DESC"},
                 "page": {"itemsPerPage": 50, "page": 1}}
    totals, ids = [], []
    for _ in range(runs):
        t_jobs, data = graphql(client, token, JOBS_QUERY, variables)
        ids = [job["id"] for job in data["jobs"]["items"]]
        t_metrics, _ = graphql(client, token, metrics_query(ids, LIST_METRICS, resolution))
        totals.append(t_jobs + t_metrics)
    return p50(totals), ids


def page_or_none(client: httpx.Client, path: str) -> str | None:
    r = client.get(path)
    if r.status_code == 404:
        print(f"  {path}: 404, the page does not exist in this build: skipped")
        return None
    if r.status_code != 200:
        sys.exit(f"GET {path}: {r.status_code}\n{r.text[:500]}")
    return r.text


def browser_times(browser, url: str, cookie: str, runs: int, timeout_s: float, *, row: str | None = None,
                  plots: bool = True) -> dict:
    """Times from navigation start for ``url``: the first ``row`` shown and every plot drawn, cold and p50 warm."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.add_cookies([{"name": "session", "value": cookie, "url": url}])
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    rows: list[float] = []
    drawn: list[float] = []
    try:
        for _ in range(runs + 1):  # the first run is cold (no cached static files)
            page.goto(url, wait_until="commit")
            if row:
                rows.append(page.wait_for_function(FIRST_ROW_SHOWN, arg=row, polling="raf",
                                                   timeout=timeout_s * 1000).json_value())
            if plots:
                drawn.append(page.wait_for_function(ALL_PLOTTED, polling="raf",
                                                    timeout=timeout_s * 1000).json_value())
        count = page.locator(".plot").count()
    except Exception as exc:  # noqa: BLE001 - a timeout says what did not appear
        context.close()
        return {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}", "console": errors}
    context.close()
    return {"row_cold": rows[0] if rows else None, "row": p50(rows[1:]) if rows else None,
            "plots_cold": drawn[0] if drawn else None, "plots": p50(drawn[1:]) if drawn else None,
            "count": count, "console": errors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=100_000, help="jobs without metric data (default 100,000)")
    parser.add_argument("--keep", action="store_true", help="reuse the site under bench/out/ if it exists")
    parser.add_argument("--runs", type=int, default=5, help="warm browser navigations per page (default 5)")
    parser.add_argument("--requests", type=int, default=30, help="GETs for the HTML figure (default 30)")
    parser.add_argument("--resolution", type=int, default=None,
                        help="jobMetrics resolution of the floor (default: full data, as the pages' default)")
    parser.add_argument("--timeout", type=float, default=30, help="seconds to wait for a page's plots")
    args = parser.parse_args()

    work, port, config, big_id, token = open_site(OUT / f"web-{args.jobs}", args.jobs, args.keep, USER, PASSWORD)
    show_all_metrics_in_job_view(work)

    with Server(work, [str(BIN), *config], port):
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=120) as client:
            login = client.post("/login", data={"username": USER, "password": PASSWORD})
            if login.status_code != 302 or "session" not in client.cookies:
                sys.exit(f"login failed: {login.status_code} {login.text[:300]}")
            cookie = client.cookies["session"]
            client.get("/healthz")
            graphql(client, token, "{ jobs(page: {itemsPerPage: 1, page: 1}) { hasNextPage } }")  # warm-up

            print(f"\nfloor (GraphQL, p50 of {args.runs}; resolution {args.resolution or 'full'}):")
            floor_list, ids = list_floor(client, token, args.runs, args.resolution)
            show(f"jobs (50 newest) + jobMetrics 50 jobs x {len(LIST_METRICS)} metrics", floor_list)
            with sqlite3.connect(work / "job.db") as db:
                with_data = sum(1 for (job_id,) in db.execute(
                    f"SELECT id FROM job WHERE id IN ({','.join('?' * len(ids))}) AND start_time > ? "
                    "AND job_state != 'running'",
                    (*[int(i) for i in ids], NOW)))
            print(f"  (of the first page's 50 jobs, {with_data} have metric data files)")
            big_query = metrics_query([str(big_id)], None, args.resolution)
            floor_view = p50([graphql(client, token, big_query)[0] for _ in range(args.runs)])
            show(f"jobMetrics of the {BIG_JOB_NODES}-node job, {BIG_JOB_METRICS} metrics", floor_view)
            healthz = []
            for _ in range(args.requests):
                t0 = time.perf_counter()
                client.get("/healthz")
                healthz.append((time.perf_counter() - t0) * 1000)
            show("GET /healthz (baseline)", p50(healthz))

            print(f"\njob list {JOB_LIST_URL}:")
            list_html = page_or_none(client, JOB_LIST_URL)
            if list_html is not None:
                for label, url, goal in ((f"HTML of the first page (p50 of {args.requests})", JOB_LIST_URL, 50),
                                         ("  sorted by a footprint metric (no index)",
                                          JOB_LIST_URL + "?sort=foot.flops_any:desc", None)):
                    times = []
                    for _ in range(args.requests):
                        t0 = time.perf_counter()
                        r = client.get(url)
                        times.append((time.perf_counter() - t0) * 1000)
                        assert r.status_code == 200, (url, r.status_code)
                    show(label, p50(times), goal)
            view_path = JOB_VIEW_URL.format(id=big_id)
            print(f"\njob view {view_path} ({BIG_JOB_NODES} nodes, {BIG_JOB_METRICS} metrics):")
            view_html = page_or_none(client, view_path)

        if list_html is None and view_html is None:
            print("\nno page to measure in the browser")
            return
        if not Path(CHROMIUM).is_file():
            print(f"\nno Chromium at {CHROMIUM} (apt install chromium): the browser figures are skipped")
            return
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            print("\nPlaywright is not installed in this environment: the browser figures are skipped")
            return

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
            print(f"\nbrowser (headless {Path(CHROMIUM).name}, 1280x800; from navigation start; "
                  f"p50 of {args.runs} warm, cold in brackets):")
            if list_html is not None:
                got = browser_times(browser, base + JOB_LIST_URL, cookie, args.runs, args.timeout, row=FIRST_ROW)
                report("job list", got, [("first row visible", "row", 300),
                                         ("all row plots drawn", "plots", 1500)], floor_list)
            if view_html is not None:
                got = browser_times(browser, base + view_path, cookie, args.runs, args.timeout)
                report("job view", got, [("all plots drawn", "plots", 1000)], floor_view)
            browser.close()


def report(page: str, got: dict, figures: list[tuple[str, str, float]], floor: float) -> None:
    if "error" in got:
        print(f"  {page}: did not finish: {got['error']}")
    else:
        for label, key, goal in figures:
            show(f"{page}: {label} ({got['count']} plots)" if key == "plots" else f"{page}: {label}",
                 got[key], goal, f"[cold {got[key + '_cold']:.0f} ms]")
        show(f"{page}: floor (GraphQL for the same data)", floor)
    if got.get("console"):
        print(f"  {page}: console errors: {got['console'][:3]}")


if __name__ == "__main__":
    main()
