"""The job list: a filter bar in the command line's filter syntax, a sortable page of jobs, and paging."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from rich.text import Text
from textual import on, work
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static
from textual.worker import get_current_worker

from cc_backend.errors import CCError, InvalidInput
from cc_backend.tui.format import STATE_STYLES, duration_text, elapsed, number_text, time_text

if TYPE_CHECKING:
    from cc_backend.jobs.filter import JobFilter, OrderBy
    from cc_backend.tui.app import CockpitApp
    from cc_backend.tui.source import JobPage

#: Sort fields in the order ``s`` cycles through them: (OrderBy field, label, first direction).
SORT_FIELDS: list[tuple[str, str, Literal["ASC", "DESC"]]] = [
    ("startTime", "start", "DESC"),
    ("duration", "duration", "DESC"),
    ("numNodes", "nodes", "DESC"),
    ("numHWThreads", "cores", "DESC"),
    ("numAcc", "accelerators", "DESC"),
    ("energy", "energy", "DESC"),
    ("jobId", "job id", "DESC"),
    ("user", "user", "ASC"),
    ("project", "project", "ASC"),
    ("cluster", "cluster", "ASC"),
]
SORT_LABELS = {name: label for name, label, _ in SORT_FIELDS}

#: Lines around the table: header, filter bar, table header, status line, footer.
CHROME_ROWS = 5
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int
    #: Lower numbers stay longer when the terminal is narrow.
    priority: int
    #: The sort field a click on the header selects (None: not sortable).
    sort: str | None = None


COLUMNS = [
    Column("job", "Job id", 15, 0, "jobId"),
    Column("name", "Name", 18, 8),
    Column("user", "User", 10, 1, "user"),
    Column("project", "Project", 10, 6, "project"),
    Column("state", "State", 9, 2),
    Column("start", "Start", 16, 3, "startTime"),
    Column("duration", "Duration", 11, 4, "duration"),
    Column("nodes", "Nodes", 5, 5, "numNodes"),
    Column("cores", "Cores", 6, 7, "numHWThreads"),
    Column("accs", "Accs", 4, 9, "numAcc"),
]
#: DataTable's cell padding on both sides of every column.
CELL_PADDING = 2


def columns_for_width(width: int) -> list[Column]:
    """The columns that fit ``width`` terminal columns, most important first kept, in display order."""
    chosen: set[str] = set()
    used = 0
    for column in sorted(COLUMNS, key=lambda c: c.priority):
        if used + column.width + CELL_PADDING <= width:
            chosen.add(column.key)
            used += column.width + CELL_PADDING
    return [column for column in COLUMNS if column.key in chosen]


def job_cells(job: dict[str, Any], now: float) -> dict[str, Any]:
    """The table cells of one job, keyed as :data:`COLUMNS`."""
    state = job.get("jobState") or ""
    name = (job.get("metaData") or {}).get("jobName") or ""
    return {
        "job": f"{job.get('jobId')}@{job.get('cluster')}",
        "name": name,
        "user": job.get("user") or "",
        "project": job.get("project") or "",
        "state": Text(state, style=STATE_STYLES.get(state, "")),
        "start": time_text(job.get("startTime")),
        "duration": Text(duration_text(elapsed(job, now)), justify="right"),
        "nodes": Text(number_text(job.get("numNodes")), justify="right"),
        "cores": Text(number_text(job.get("numHwthreads")), justify="right"),
        "accs": Text(number_text(job.get("numAcc")), justify="right"),
    }


def problem_text(exc: Exception) -> str:
    """A sentence for a failed load: the core's message, or the library's for the unexpected (no traceback)."""
    if isinstance(exc, CCError):
        return exc.message
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def build_filter(text: str, resolve_tags: Any) -> JobFilter | None:
    """The JobFilter of filter-bar text (None for none); InvalidInput naming the field otherwise."""
    from cc_backend.jobs.filter import JobFilter, parse_filter_text

    options = parse_filter_text(text)
    return JobFilter.from_text_options(options, tag_ids=resolve_tags) if options else None


class JobTable(DataTable):
    """The jobs of one page; paging keys replace the table's own scrolling keys (a page fits the screen)."""

    BINDINGS: ClassVar = [
        Binding("enter", "select_cursor", "Open job"),
        Binding("pagedown,right", "screen.next_page", "Next page", show=False),
        Binding("pageup,left", "screen.previous_page", "Previous page", show=False),
        Binding("home", "screen.first_page", "First page", show=False),
    ]


class JobsScreen(Screen):
    """Jobs matching the filter bar, one page at a time, newest first unless sorted otherwise."""

    BINDINGS: ClassVar = [
        Binding("enter", "open_job", "Open job", show=False),
        Binding("n", "next_page", "Next page"),
        Binding("b", "previous_page", "Prev page"),
        Binding("g", "first_page", "First page", show=False),
        Binding("s", "cycle_sort", "Sort"),
        Binding("S", "reverse_sort", "Reverse sort", show=False),
        Binding("r", "reload", "Refresh"),
        Binding("f", "focus_filter", "Filter"),
        Binding("escape", "leave_filter", "Leave filter", show=False),
    ]

    DEFAULT_CSS = """
    JobsScreen #filter { width: 1fr; }
    JobsScreen #filter-error { width: 1fr; height: auto; color: $error; padding: 0 1; }
    JobsScreen #filter-error.-empty { display: none; }
    JobsScreen JobTable { height: 1fr; }
    JobsScreen #status { height: 1; padding: 0 1; background: $boost; }
    """

    #: Seconds between reloads while the page shows running jobs.
    refresh_seconds: ClassVar[float] = 30.0

    def __init__(self, filter_text: str = "") -> None:
        super().__init__()
        self.filter_text = filter_text
        self.job_filter: JobFilter | None = None
        self.sort_field: str = "startTime"
        self.sort_direction: Literal["ASC", "DESC"] = "DESC"
        self.page = 1
        self.page_size = 20
        self.jobs: list[dict[str, Any]] = []
        self.has_next = False
        self.total: int | None = None
        self.loading_error: str | None = None
        self._width_columns: list[Column] = []

    # --- layout -------------------------------------------------------------------------------------

    def compose(self):
        yield Header()
        yield Input(value=self.filter_text, id="filter", compact=True,
                    placeholder="Filter, e.g. state:running user:k1* duration:1h.. cluster:fritz (Enter applies)")
        yield Static("", id="filter-error", classes="-empty")
        yield JobTable(id="jobs", cursor_type="row", zebra_stripes=True)
        yield Static("loading jobs…", id="status")
        yield Footer(compact=True)

    @property
    def cockpit(self) -> CockpitApp:
        return self.app  # type: ignore[return-value]

    @property
    def table(self) -> JobTable:
        return self.query_one(JobTable)

    def on_mount(self) -> None:
        self.page_size = self._page_size_for(self.app.size.height)
        self._set_columns(self.app.size.width)
        self.table.focus()
        self.set_interval(self.refresh_seconds, self._refresh_running)
        self.set_interval(1.0, self._tick_durations)
        self.apply_filter(self.filter_text)

    def on_resize(self) -> None:
        width, height = self.app.size
        if [c.key for c in columns_for_width(width)] != [c.key for c in self._width_columns]:
            self._set_columns(width)
            self._fill_table(keep_job=self._cursor_job_id())
        size = self._page_size_for(height)
        if size != self.page_size and self.jobs:
            # Keep the first job on screen in the page shown at the new size.
            first = (self.page - 1) * self.page_size
            self.page_size = size
            self.page = first // size + 1
            self.load_page(keep_job=self._cursor_job_id())
        else:
            self.page_size = size

    @staticmethod
    def _page_size_for(height: int) -> int:
        return max(1, min(MAX_PAGE_SIZE, height - CHROME_ROWS))

    def _set_columns(self, width: int) -> None:
        self._width_columns = columns_for_width(width)
        table = self.table
        table.clear(columns=True)
        for column in self._width_columns:
            table.add_column(self._header_label(column), key=column.key, width=column.width)

    def _header_label(self, column: Column) -> Text:
        if column.sort and column.sort == self.sort_field:
            return Text(f"{column.label} {'↓' if self.sort_direction == 'DESC' else '↑'}", style="bold")
        return Text(column.label)

    # --- loading ------------------------------------------------------------------------------------

    @property
    def order(self) -> OrderBy:
        from cc_backend.jobs.filter import OrderBy

        return OrderBy(field=self.sort_field, order=self.sort_direction)

    def apply_filter(self, text: str) -> None:
        """Show page 1 of the jobs matching ``text``; an invalid filter leaves the shown jobs as they are."""
        self.query_one("#filter", Input).value = text
        self._load(text=text, page=1, keep_job=None)

    def load_page(self, keep_job: int | None = None) -> None:
        self._load(text=None, page=self.page, keep_job=keep_job)

    @work(thread=True, exclusive=True, group="jobs-page")
    def _load(self, text: str | None, page: int, keep_job: int | None) -> None:
        source = self.cockpit.source
        worker = get_current_worker()
        job_filter = self.job_filter
        try:
            if text is not None:
                job_filter = build_filter(text, source.resolve_tags)
            result: JobPage = source.jobs(job_filter, self.order, page, self.page_size)
        except InvalidInput as exc:
            if not worker.is_cancelled:
                self.app.call_from_thread(self._show_filter_error, exc.message)
            return
        except Exception as exc:  # a lost server or database: a message, and the app goes on
            if not worker.is_cancelled:
                self.app.call_from_thread(self._show_load_error, problem_text(exc))
            return
        if worker.is_cancelled:
            return
        self.app.call_from_thread(self._show_page, text, job_filter, page, result, keep_job)

    @work(thread=True, exclusive=True, group="jobs-count")
    def _count(self, job_filter: JobFilter | None) -> None:
        worker = get_current_worker()
        try:
            total = self.cockpit.source.count_jobs(job_filter)
        except Exception as exc:
            if not worker.is_cancelled:
                self.app.call_from_thread(self._show_load_error, problem_text(exc))
            return
        if not worker.is_cancelled:
            self.app.call_from_thread(self._show_count, job_filter, total)

    def _show_filter_error(self, message: str) -> None:
        error = self.query_one("#filter-error", Static)
        error.update(Text(message))
        error.set_class(False, "-empty")
        self.query_one("#filter", Input).focus()
        if not self.jobs:
            self.query_one("#status", Static).update("Correct the filter to see jobs (Enter applies it).")

    def _show_load_error(self, message: str) -> None:
        self.loading_error = message
        self.notify(message, title="Cannot load jobs", severity="error")
        self._update_status()

    class PageShown(Message):
        """A page of jobs is on screen (benchmarks and tests wait for it)."""

        def __init__(self, page: int, rows: int) -> None:
            super().__init__()
            self.page = page
            self.rows = rows

    def _show_page(self, text: str | None, job_filter: JobFilter | None, page: int, result: JobPage,
                   keep_job: int | None) -> None:
        self.loading_error = None
        if text is not None:
            self.filter_text = text
            self.job_filter = job_filter
            self.total = None
            self.query_one("#filter-error", Static).update("")
            self.query_one("#filter-error", Static).set_class(True, "-empty")
            self._count(job_filter)
        self.page = page
        self.jobs = result.jobs
        self.has_next = result.has_next
        self._fill_table(keep_job)
        self._update_status()
        self.post_message(self.PageShown(page, len(result.jobs)))

    def _show_count(self, job_filter: JobFilter | None, total: int) -> None:
        if job_filter == self.job_filter:
            self.total = total
            self._update_status()

    def _fill_table(self, keep_job: int | None) -> None:
        table = self.table
        table.clear()
        now = self.cockpit.clock()
        keys = [column.key for column in self._width_columns]
        cursor = 0
        for index, job in enumerate(self.jobs):
            cells = job_cells(job, now)
            table.add_row(*(cells[key] for key in keys), key=str(job["id"]))
            if job["id"] == keep_job:
                cursor = index
        if self.jobs:
            table.move_cursor(row=cursor, animate=False)

    def _update_status(self) -> None:
        self.query_one("#status", Static).update(self.status_text())

    def status_text(self) -> str:
        """``jobs 51-100 of 12,345 · sorted by start ↓ · page 2/247``."""
        arrow = "↓" if self.sort_direction == "DESC" else "↑"
        sort = f"sorted by {SORT_LABELS.get(self.sort_field, self.sort_field)} {arrow}"
        if self.loading_error:
            return f"{self.loading_error} · {sort}"
        if not self.jobs:
            if self.page > 1:
                return f"no jobs on page {self.page} · {sort}"
            return "No jobs match this filter." if self.filter_text.strip() else "There are no jobs."
        first = (self.page - 1) * self.page_size + 1
        last = first + len(self.jobs) - 1
        if self.total is None:
            return f"jobs {first:,}-{last:,} of … · {sort} · page {self.page:,}"
        pages = max(1, -(-self.total // self.page_size))
        return f"jobs {first:,}-{last:,} of {self.total:,} · {sort} · page {self.page:,}/{pages:,}"

    def _cursor_job_id(self) -> int | None:
        table = self.table
        if not self.jobs or table.row_count == 0:
            return None
        row = min(max(table.cursor_row, 0), len(self.jobs) - 1)
        return self.jobs[row]["id"]

    def _tick_durations(self) -> None:
        """Running jobs' durations follow the clock between reloads (no query needed)."""
        if not self.is_current or "duration" not in self.table.columns:
            return
        now = self.cockpit.clock()
        for job in self.jobs:
            if job.get("jobState") == "running":
                text = Text(duration_text(elapsed(job, now)), justify="right")
                self.table.update_cell(str(job["id"]), "duration", text)

    def _refresh_running(self) -> None:
        # A load in progress (a new filter, another page) is newer than what a refresh would fetch.
        busy = any(worker.group == "jobs-page" and worker.is_running for worker in self.workers)
        if not busy and self.is_current and any(job.get("jobState") == "running" for job in self.jobs):
            self.load_page(keep_job=self._cursor_job_id())

    # --- actions ------------------------------------------------------------------------------------

    def action_open_job(self) -> None:
        job_id = self._cursor_job_id()
        if job_id is not None:
            self.cockpit.show_job(job_id)

    @on(DataTable.RowSelected, "#jobs")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        self.cockpit.show_job(int(event.row_key.value or 0))

    # The page number changes when the page arrives: after a failed load it still names the rows shown.
    def action_next_page(self) -> None:
        if self.has_next:
            self._load(text=None, page=self.page + 1, keep_job=None)

    def action_previous_page(self) -> None:
        if self.page > 1:
            self._load(text=None, page=self.page - 1, keep_job=None)

    def action_first_page(self) -> None:
        if self.page != 1:
            self._load(text=None, page=1, keep_job=None)

    def sort_by(self, field: str, order: Literal["ASC", "DESC"]) -> None:
        """Sort by ``field`` (an OrderBy column) in ``order``, from the first page."""
        self.sort_field, self.sort_direction = field, order
        from textual.widgets.data_table import ColumnKey

        for column in self._width_columns:
            self.table.columns[ColumnKey(column.key)].label = self._header_label(column)
        self.table.refresh()
        self.page = 1
        self.load_page()

    def action_cycle_sort(self) -> None:
        names = [name for name, _, _ in SORT_FIELDS]
        position = names.index(self.sort_field) if self.sort_field in names else -1
        field, _, order = SORT_FIELDS[(position + 1) % len(SORT_FIELDS)]
        self.sort_by(field, order)

    def action_reverse_sort(self) -> None:
        self.sort_by(self.sort_field, "ASC" if self.sort_direction == "DESC" else "DESC")

    @on(DataTable.HeaderSelected, "#jobs")
    def _header_selected(self, event: DataTable.HeaderSelected) -> None:
        column = next((c for c in COLUMNS if c.key == event.column_key.value), None)
        if column is None or column.sort is None:
            return
        if column.sort == self.sort_field:
            self.action_reverse_sort()
        else:
            self.sort_by(column.sort, next(order for name, _, order in SORT_FIELDS if name == column.sort))

    def action_reload(self) -> None:
        self.load_page(keep_job=self._cursor_job_id())
        self._count(self.job_filter)

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_leave_filter(self) -> None:
        self.table.focus()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        self._load(text=event.value, page=1, keep_job=None)
        self.table.focus()
