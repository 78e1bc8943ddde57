"""One job: metadata, tags, footprint, energy, statistics per metric and node, metric plots, job script, Slurm info and efficiency report."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on
from textual.binding import Binding
from textual.containers import Horizontal, ScrollableContainer, Vertical, VerticalScroll
from textual.coordinate import Coordinate
from textual.screen import ModalScreen, Screen
from textual.widget import Widget
from textual.widgets import (
    Button,
    DataTable,
    Footer,
    Header,
    Input,
    Label,
    OptionList,
    RadioButton,
    RadioSet,
    Static,
    TabbedContent,
    TabPane,
)
from textual.widgets.option_list import Option

from cc_backend.errors import CCError
from cc_backend.metrics.jobdata import SCOPES
from cc_backend.tui.format import (
    LEVEL_STYLES,
    STATE_STYLES,
    duration_text,
    elapsed,
    number_text,
    time_text,
)
from cc_backend.tui.plots import MetricPlot, plot_of, resolution_for

if TYPE_CHECKING:
    from cc_backend.archive.cluster import SubCluster
    from cc_backend.auth.security import Viewer
    from cc_backend.tui.source import Identity, JobSource

#: Hostnames listed before the rest fold away (``h`` shows them all), as in the web UI.
HOSTS_SHOWN = 8
#: Characters of a footprint bar at 100 % of the metric's peak.
BAR_WIDTH = 20
#: Tabs in the order the number keys select them; the plots come first, so a job opens on them.
TABS = ("metrics", "details", "statistics", "script", "meta", "report")
#: The tab titles (the tab ids are what tests, the help screen and the key bindings name).
TAB_TITLES = {"metrics": "Metrics", "details": "Footprint & tags", "statistics": "Statistics",
              "script": "Script", "meta": "Slurm/Meta", "report": "Report"}
#: ``[`` and ``]`` share one footer entry.
METRIC_KEYS = Binding.Group("Metric", compact=True)
#: The number keys of the tabs share one footer entry.
TAB_KEYS = Binding.Group("Tab", compact=True)
#: Seconds the job's header waits for its first plot's data, to be drawn with it in one screen update.
HEADER_WAITS_FOR_PLOT = 0.15
NO_DATA_RUNNING = "No metric data yet: the metric store has none for this running job."
NO_DATA_ARCHIVED = "This job has no metric data in the archive."


def once(call: Callable[[], None]) -> Callable[[], None]:
    """``call`` made safe to call from several threads: only the first call runs it."""
    lock = threading.Lock()
    done = False

    def run_once() -> None:
        nonlocal done
        with lock:
            if done:
                return
            done = True
        call()

    return run_once


def error_text(exc: CCError) -> str:
    """The core's message, naming the field when the message does not (as the web UI's tag form shows it)."""
    message = exc.message
    return message if not exc.field or exc.field in message else f"{exc.field}: {message}"


def viewer_of(identity: Identity) -> Viewer:
    """The core's Viewer for the role rules (tag scopes); the server or core checks again on change."""
    from cc_backend.auth.security import Viewer

    return Viewer(username=private_scope(identity) or "", roles=tuple(identity.roles),
                  projects=tuple(identity.projects))


def private_scope(identity: Identity) -> str | None:
    """The identity's private tag scope (its username), or None when it is no account (``(local admin)``)."""
    from cc_backend.auth.users import validate_username

    try:
        return validate_username(identity.username)
    except CCError:
        return None


def assignable_scopes(identity: Identity) -> list[tuple[str, str]]:
    """``(scope, label)`` of the tag scopes the identity may assign: private, then global and admin if the role allows."""
    from cc_backend.auth.security import may_assign_tag_scope

    viewer = viewer_of(identity)
    scopes = []
    if viewer.username:
        scopes.append((viewer.username, f"private ({viewer.username})"))
    scopes += [(scope, scope) for scope in ("global", "admin") if may_assign_tag_scope(viewer, scope)]
    return scopes


def removable_tags(identity: Identity, tags: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from cc_backend.auth.security import may_assign_tag_scope

    viewer = viewer_of(identity)
    return [tag for tag in tags if may_assign_tag_scope(viewer, str(tag.get("scope") or ""))]


def scope_rank(scope: str) -> int:
    """Coarse to fine, the order ``s`` steps through (a scope the core does not know comes last)."""
    return SCOPES.index(scope) if scope in SCOPES else len(SCOPES)


def tag_text(tag: Mapping[str, Any]) -> str:
    return f"{tag.get('type')}:{tag.get('name')} ({tag.get('scope')})"


def find_subcluster(source: JobSource, job: Mapping[str, Any]) -> SubCluster | None:
    for cluster in source.clusters():
        if cluster.name == job.get("cluster"):
            return cluster.find_sub_cluster(job.get("subCluster") or "")
    return None


def metric_order(stats: list[dict[str, Any]], subcluster: SubCluster | None) -> list[str]:
    """The job's metrics (those with statistics the identity may see) in cluster.json order, others after."""
    names = [entry["name"] for entry in stats]
    configured = [m.name for m in subcluster.metric_config] if subcluster is not None else []
    return [name for name in configured if name in names] + [name for name in names if name not in configured]


def unit_of(subcluster: SubCluster | None, metric: str) -> str:
    config = subcluster.metric(metric) if subcluster is not None else None
    return config.unit.text if config is not None else ""


def number_cell(value: Any) -> Text:
    return Text(number_text(value), justify="right")


def footprint_text(bars: list[dict[str, Any]]) -> Text:
    """Footprint bars as text: the share of the peak filled, coloured by level, with value, unit and peak."""
    out = Text()
    if not bars:
        out.append("No footprint for this job.", style="dim")
        return out
    label_width = max(len(f"{bar['metric']} ({bar['stat']})") for bar in bars)
    for bar in bars:
        if out:
            out.append("\n")
        style = LEVEL_STYLES.get(bar["level"], "")
        out.append(f"{bar['metric']} ({bar['stat']})".ljust(label_width + 1))
        filled = round(BAR_WIDTH * bar["percent"] / 100)
        out.append("█" * filled, style=style)
        out.append("░" * (BAR_WIDTH - filled), style="dim")
        peak = f" / {number_text(bar['peak'])}" if bar["peak"] else ""
        out.append(f" {number_text(bar['value'])}{peak} {bar['unit']}".rstrip())
        out.append(f" {bar['level']}", style=style)
    return out


def energy_text(summary: dict[str, Any] | None) -> Text:
    out = Text()
    if summary is None:
        out.append("No energy recorded for this job.", style="dim")
        return out
    out.append(f"Total {number_text(summary['total'])} kWh", style="bold")
    for part in summary["parts"]:
        out.append(f"   {part['metric']} {number_text(part['kwh'])} kWh")
    if "co2_grams" in summary:
        out.append(f"\nCO2 {number_text(summary['co2_grams'] / 1000)} kg "
                   f"({summary['emission_constant']} g/kWh)")
    return out


def meta_text(meta: Mapping[str, Any]) -> Text:
    """Slurm info and the other metaData keys as plain text (job data is untrusted: no markup)."""
    out = Text()
    slurm = meta.get("slurmInfo")
    out.append("Slurm info\n", style="bold")
    out.append(str(slurm) if slurm else "(none)")
    others = {k: v for k, v in meta.items() if k not in ("jobScript", "slurmInfo", "jobName", "message")}
    if others:
        out.append("\n\nOther metadata\n", style="bold")
        for key, value in others.items():
            out.append(f"{key}: ", style="bold")
            out.append(f"{value}\n")
    return out


class AddTagScreen(ModalScreen[tuple[str, str, str] | None]):
    """Type, name and scope of a tag to attach; dismissed with ``(type, name, scope)`` or None."""

    BINDINGS: ClassVar = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    AddTagScreen { align: center middle; }
    AddTagScreen > Vertical { width: 64; height: auto; border: round $accent; padding: 0 1; background: $surface; }
    AddTagScreen Input { width: 1fr; }
    AddTagScreen RadioSet { width: 1fr; }
    AddTagScreen #tag-buttons { height: auto; }
    """

    def __init__(self, scopes: list[tuple[str, str]]) -> None:
        super().__init__()
        self.scopes = scopes

    def compose(self):
        with Vertical():
            yield Label("Add a tag to the job (Enter adds, Esc cancels)")
            yield Input(id="tag-type", placeholder="type, e.g. app")
            yield Input(id="tag-name", placeholder="name, e.g. gromacs")
            with RadioSet(id="tag-scope"):
                for i, (_, label) in enumerate(self.scopes):
                    yield RadioButton(label, value=i == 0)
            with Horizontal(id="tag-buttons"):
                yield Button("Add", id="tag-add", variant="primary")
                yield Button("Cancel", id="tag-cancel")

    def chosen(self) -> tuple[str, str, str] | None:
        tag_type = self.query_one("#tag-type", Input).value.strip()
        tag_name = self.query_one("#tag-name", Input).value.strip()
        index = self.query_one(RadioSet).pressed_index
        if not tag_type or not tag_name or not 0 <= index < len(self.scopes):
            return None
        return tag_type, tag_name, self.scopes[index][0]

    def _submit(self) -> None:
        chosen = self.chosen()
        if chosen is None:
            self.notify("A tag needs a type, a name and a scope.", severity="warning")
            return
        self.dismiss(chosen)

    @on(Input.Submitted)
    def _input_submitted(self) -> None:
        if self.focused is self.query_one("#tag-type", Input) and not self.query_one("#tag-name", Input).value:
            self.query_one("#tag-name", Input).focus()
            return
        self._submit()

    @on(Button.Pressed, "#tag-add")
    def _add_pressed(self) -> None:
        self._submit()

    @on(Button.Pressed, "#tag-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class RemoveTagScreen(ModalScreen[int | None]):
    """The job's tags the identity may detach; dismissed with the chosen tag's id or None."""

    BINDINGS: ClassVar = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    RemoveTagScreen { align: center middle; }
    RemoveTagScreen > Vertical { width: 64; height: auto; max-height: 20; border: round $accent; padding: 0 1;
                                 background: $surface; }
    RemoveTagScreen OptionList { height: auto; max-height: 14; }
    """

    def __init__(self, tags: list[dict[str, Any]], selected: int | None = None) -> None:
        super().__init__()
        self.tags = tags
        self.selected = selected

    def compose(self):
        with Vertical():
            yield Label("Remove which tag? (Enter removes, Esc cancels)")
            yield OptionList(*[Option(Text(tag_text(tag)), id=str(tag["id"])) for tag in self.tags], id="tag-choice")

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        ids = [tag["id"] for tag in self.tags]
        options.highlighted = ids.index(self.selected) if self.selected in ids else 0
        options.focus()

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(int(event.option.id or 0))

    def action_cancel(self) -> None:
        self.dismiss(None)


class JobScreen(Screen):
    """The detail of one job (database id): the job's header above tabs that open on its first metric's plot.

    The header and tables come first; plots load in a worker. The plot is the first tab (not one key
    away) because switching tabs costs a layout of the whole screen: a job opens with its plot drawn.
    """

    BINDINGS: ClassVar = [
        # In the footer's order, most used first: an 80-column footer cuts off the last ones.
        Binding("escape,backspace", "back", "Back", key_display="esc"),
        *[Binding(str(i + 1), f"show_tab('{tab}')", f"{TAB_TITLES[tab]} tab", group=TAB_KEYS)
          for i, tab in enumerate(TABS)],
        Binding("left_square_bracket", "step_metric(-1)", "Previous metric", key_display="[", group=METRIC_KEYS),
        Binding("right_square_bracket", "step_metric(1)", "Next metric", key_display="]", group=METRIC_KEYS),
        Binding("s", "switch_scope", "Scope"),
        Binding("a", "add_tag", "Add tag"),
        Binding("d", "remove_tag", "Remove tag"),
        Binding("r", "reload", "Reload"),
        Binding("h", "toggle_hosts", "All hosts", show=False),
    ]
    #: The tab bar: left and right step through the tabs.
    AUTO_FOCUS = "#job-tabs Tabs"
    #: Seconds between reloads of a running job's data (its plots grow while the metric store fills).
    refresh_seconds: ClassVar[float] = 30.0
    DEFAULT_CSS = """
    JobScreen #job-error { color: $error; padding: 0 1; }
    JobScreen #job-error.hidden { display: none; }
    JobScreen .section { text-style: bold; margin-top: 1; }
    JobScreen #summary-box { height: auto; max-height: 10; padding: 0 1; }
    /* As tall as a job's header from the start: the plot below keeps its size when the job arrives. */
    JobScreen #summary { min-height: 7; }
    JobScreen #job-tabs { height: 1fr; }
    JobScreen #tags { height: auto; max-height: 8; }
    JobScreen #message { color: $warning; }
    JobScreen #plot-status { height: auto; }
    JobScreen #stats { height: 1fr; min-height: 5; }
    JobScreen #scoped { height: 1fr; min-height: 5; }
    JobScreen TabPane { padding: 0 1; }
    /* The report itself as wide as its lines (the tab scrolls sideways); a message wraps as usual. */
    JobScreen #report-text.report { width: auto; }
    """

    def __init__(self, db_id: int) -> None:
        super().__init__()
        self.db_id = db_id
        self.job: dict[str, Any] | None = None
        self.subcluster: SubCluster | None = None
        self.stats: list[dict[str, Any]] = []
        self.metrics: list[str] = []
        self.metric_index = 0
        #: The scope each metric's plot shows; node until ``s`` chooses another.
        self.plot_scope: dict[str, str] = {}
        #: Scopes a metric's data has, learnt on the first ``s`` (no archive access needed: the source says).
        self.scopes_of: dict[str, list[str]] = {}
        self.plots: dict[tuple[str, str], dict[str, Any]] = {}
        #: ``(metric, scope)`` whose data a worker is fetching (the first plot is fetched with the job).
        self.plots_pending: set[tuple[str, str]] = set()
        self.scoped_metric: str | None = None
        self.scoped_stats: list[dict[str, Any]] = []
        self.scoped_index = 0
        self.all_hosts = False
        self.error: str | None = None
        #: Tabs whose widgets exist (the first always does).
        self.built_tabs: set[str] = set()
        #: The efficiency report's text (or why there is none), fetched when its tab is first shown.
        self.report_text: Text | None = None

    @property
    def source(self) -> JobSource:
        return self.app.source  # type: ignore[attr-defined]

    def compose(self):
        yield Header()
        yield Static(id="job-error", classes="hidden")
        with VerticalScroll(id="summary-box"):
            yield Static(Text(f"Loading job {self.db_id}..."), id="summary")
            yield Static(id="message")
        with TabbedContent(id="job-tabs"):
            with TabPane(TAB_TITLES["metrics"], id="metrics"):
                yield Static(id="plot-status")
                yield MetricPlot(id="plot")
            # The other tabs are built when first shown (see _build_tab): their tables and scroll areas
            # would cost Textual more time at the first screen update than the job's data does.
            for tab in TABS[1:]:
                yield TabPane(TAB_TITLES[tab], id=tab)
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(1.0, self._tick)
        self.set_interval(self.refresh_seconds, self._refresh_running)
        self.load()

    def tab_widgets(self, tab: str) -> list[Widget]:
        """The widgets of a tab other than the first, built when it is first shown."""
        if tab == "details":
            tags = DataTable(id="tags", cursor_type="row", zebra_stripes=True)
            tags.add_columns("Type", "Name", "Scope")
            return [VerticalScroll(Label("Footprint", classes="section"), Static(id="footprint"),
                                   Label("Energy", classes="section"), Static(id="energy"),
                                   Label("Tags", classes="section"), tags, id="details-scroll")]
        if tab == "statistics":
            stats = DataTable(id="stats", cursor_type="row", zebra_stripes=True)
            stats.add_columns("Metric", "Unit", "Min", "Avg", "Max")
            scoped = DataTable(id="scoped", cursor_type="row", zebra_stripes=True)
            scoped.add_columns("Host", "Scope", "Id", "Min", "Avg", "Max")
            title = Static(Text("Enter on a metric: its values per node (s: finer scopes)"), id="scoped-title")
            return [stats, title, scoped]
        if tab == "report":
            # Scrolls sideways too: wrapped, the report's aligned columns would no longer line up.
            return [ScrollableContainer(Static(id="report-text"), id="report-scroll")]
        return [VerticalScroll(Static(id=f"{tab}-text"), id=f"{tab}-scroll")]

    async def _build_tab(self, tab: str) -> None:
        if tab in self.built_tabs or tab == TABS[0]:
            return
        self.built_tabs.add(tab)
        await self.query_one(f"#{tab}", TabPane).mount_all(self.tab_widgets(tab))
        if self.job is not None:
            self._fill_tab(tab)

    def _fill_tab(self, tab: str) -> None:
        """Put the job into a built tab."""
        from cc_backend.jobs.footprint import footprint_bars
        from cc_backend.jobs.jobview import energy_summary

        job, subcluster = self.job or {}, self.subcluster
        meta = job.get("metaData") or {}
        if tab == "details":
            bars = footprint_bars(job.get("footprint"), subcluster) if subcluster is not None else []
            self.query_one("#footprint", Static).update(footprint_text(bars))
            emission = int(self.source.identity.extra.get("emission_constant") or 0)
            self.query_one("#energy", Static).update(energy_text(energy_summary(job, subcluster, emission)))
            self._show_tags(job.get("tags") or [])
        elif tab == "statistics":
            self._show_stats()
        elif tab == "script":
            script = meta.get("jobScript")
            self.query_one("#script-text", Static).update(Text(str(script)) if script else Text("(no job script)"))
        elif tab == "meta":
            self.query_one("#meta-text", Static).update(meta_text(meta))
        elif tab == "report":
            self._show_report()

    # --- loading ------------------------------------------------------------------------------------

    def _run(self, work: Callable[[], None], group: str) -> None:
        """``work`` in a thread; any error ends as a message on the screen, never as a traceback."""

        def guarded() -> None:
            try:
                work()
            except CCError as exc:
                self._post(self._show_error, error_text(exc))
            except Exception as exc:  # an unreadable file, a broken connection: the user needs the words, not a crash
                self._post(self._show_error, f"{type(exc).__name__}: {exc}")

        self.run_worker(guarded, thread=True, exclusive=True, group=group, exit_on_error=False)

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        """Run ``callback`` on the event loop from a worker, unless the screen was left meanwhile."""

        def if_shown() -> None:
            if self.is_attached:
                callback(*args)

        self.app.call_from_thread(if_shown)

    def load(self) -> None:
        columns = self.plot_columns()

        def fetch() -> None:
            source = self.source
            try:
                job = source.job(self.db_id)
            except CCError as exc:
                self._post(self._show_error, f"Job {self.db_id} cannot be shown: {error_text(exc)}")
                return
            subcluster = find_subcluster(source, job)
            stats = source.job_stats(job, None)
            metrics = metric_order(stats, subcluster)
            if not metrics:
                self._post(self._show_job, job, subcluster, stats)
                return
            # The first plot's data is fetched in this thread right away, not after a hop to the screen, and
            # the header waits a moment for it: a screen update costs Textual more than the data, so the
            # header and the plot come in one when the data is quick and the header goes first when not.
            first = metrics[0]
            self.plots_pending.add((first, "node"))
            show_job = once(partial(self._show_job, job, subcluster, stats))
            timer = threading.Timer(HEADER_WAITS_FOR_PLOT, self._post, (show_job,))
            timer.start()
            try:
                entries = source.job_metrics(job, [first], ["node"], resolution_for(job, columns))
                timer.cancel()
                self._post(lambda: (show_job(), self._plots_loaded(first, ["node"], entries, subcluster)))
            finally:
                timer.cancel()
                self.plots_pending.discard((first, "node"))
                self._post(show_job)

        self._run(fetch, "job")

    def _show_error(self, message: str) -> None:
        self.error = message
        error = self.query_one("#job-error", Static)
        error.update(Text(message))
        error.remove_class("hidden")
        self.notify(message, severity="error")
        if self.job is None:
            self.query_one("#summary", Static).update(Text(message))

    def _show_job(self, job: dict[str, Any], subcluster: SubCluster | None, stats: list[dict[str, Any]]) -> None:
        self.error = None
        self.query_one("#job-error", Static).add_class("hidden")
        self.job, self.subcluster, self.stats = job, subcluster, stats
        self.report_text = None  # of the job as it was: computed again from what was just loaded
        self.sub_title = f"Job {job.get('jobId')} @ {job.get('cluster')}"
        meta = job.get("metaData") or {}
        self._show_summary()
        message = meta.get("message")
        shown = self.query_one("#message", Static)
        shown.update(Text(f"Message: {message}") if message else Text())
        shown.display = bool(message)
        for tab in self.built_tabs:
            self._fill_tab(tab)
        metrics = metric_order(stats, subcluster)
        if metrics != self.metrics:
            self.metrics, self.metric_index = metrics, 0
        self.metric_index = min(self.metric_index, max(0, len(self.metrics) - 1))
        self._show_plot()

    def summary_text(self) -> Text:
        """The header lines: who, where, when, how big, and the state in its colour."""
        from cc_backend.jobs.jobview import MONITORING_STATUS

        job = self.job or {}
        meta = job.get("metaData") or {}
        state = str(job.get("jobState") or "")
        out = Text()
        out.append(f"Job {job.get('jobId')}", style="bold")
        out.append(f" @ {job.get('cluster')} ({job.get('subCluster')}, {job.get('partition') or '-'})  ")
        out.append(state, style=STATE_STYLES.get(state, ""))
        out.append(f"  db id {job.get('id')}\n")
        out.append(f"User {job.get('user')}   Project {job.get('project')}\n")
        out.append("Name ")
        out.append(str(meta.get("jobName") or "-"))
        out.append("\n")
        duration = elapsed(job, self.app.clock())  # type: ignore[attr-defined]
        out.append(f"Start {time_text(job.get('startTime')) or '-'}   Duration {duration_text(duration)}"
                   f" of {duration_text(job.get('walltime'))} walltime\n")
        accelerators = [a for r in job.get("resources") or () for a in r.get("accelerators") or ()]
        out.append(f"Nodes {job.get('numNodes')}   Cores {job.get('numHwthreads')}   "
                   f"Accelerators {job.get('numAcc') or 0}   Shared {job.get('shared')}   SMT {job.get('smt')}\n")
        hosts = [str(r.get("hostname")) for r in job.get("resources") or () if r.get("hostname")]
        shown = hosts if self.all_hosts else hosts[:HOSTS_SHOWN]
        out.append(f"Hosts {' '.join(shown)}")
        if len(shown) < len(hosts):
            out.append(f" (+{len(hosts) - len(shown)} more, h shows all)", style="dim")
        if accelerators:
            out.append(f"\nAccelerator ids {' '.join(map(str, accelerators))}")
        status = job.get("monitoringStatus")
        out.append(f"\nMonitoring {MONITORING_STATUS.get(status, str(status)) if isinstance(status, int) else '-'}")
        if job.get("arrayJobId"):
            out.append(f"   Array job {job.get('arrayJobId')}")
        return out

    def _show_summary(self) -> None:
        self.query_one("#summary", Static).update(self.summary_text())

    def _tick(self) -> None:
        if self.job is not None and self.job.get("jobState") == "running":
            self._show_summary()

    def _refresh_running(self) -> None:
        """A running job's header, statistics and plots again, keeping the metric, scope and tab shown."""
        if self.job is not None and self.job.get("jobState") == "running":
            self.action_reload()

    def _show_tags(self, tags: list[dict[str, Any]]) -> None:
        if self.job is not None:
            self.job["tags"] = tags
        if "details" not in self.built_tabs:
            return
        table = self.query_one("#tags", DataTable)
        table.clear()
        for tag in tags:
            table.add_row(Text(str(tag.get("type"))), Text(str(tag.get("name"))), Text(str(tag.get("scope"))),
                          key=str(tag["id"]))
        if not tags:
            table.add_row(Text("(no tags: a adds one)", style="dim"), "", "", key="none")

    def _show_stats(self) -> None:
        if "statistics" not in self.built_tabs:
            return
        table = self.query_one("#stats", DataTable)
        table.clear()
        for entry in self.stats:
            data = entry.get("data") or {}
            table.add_row(entry["name"], unit_of(self.subcluster, entry["name"]),
                          *[number_cell(data.get(stat)) for stat in ("min", "avg", "max")], key=entry["name"])
        if not self.stats:
            table.add_row(self._no_data_line(), "", "", "", "", key="none")

    def _no_data_line(self) -> str:
        return NO_DATA_RUNNING if (self.job or {}).get("jobState") == "running" else NO_DATA_ARCHIVED

    # --- efficiency report --------------------------------------------------------------------------

    def _show_report(self) -> None:
        """The report's text, or a note that it is being computed (by the source, in a worker)."""
        if self.report_text is not None:
            self._put_report(self.report_text)
            return
        self._put_report(Text("Computing the efficiency report...", style="dim"))
        job = self.job
        if job is None:
            return

        def fetch() -> None:
            from cc_backend.jobs.report import render_report_text

            try:
                text = Text(render_report_text(self.source.job_report(job["id"])), no_wrap=True)
            except CCError as exc:
                # Only this tab lacks its data: the rest of the job stays usable, so no error bar.
                text = Text(f"The efficiency report cannot be shown: {error_text(exc)}")
            self._post(self._report_loaded, job, text)

        self._run(fetch, "report")

    def _report_loaded(self, job: dict[str, Any], text: Text) -> None:
        if self.job is not job:  # a reload came in between: its own report is on the way
            return
        self.report_text = text
        if "report" in self.built_tabs:
            self._put_report(text)

    def _put_report(self, text: Text) -> None:
        shown = self.query_one("#report-text", Static)
        shown.set_class(bool(text.no_wrap), "report")
        shown.update(text)

    # --- plots --------------------------------------------------------------------------------------

    @property
    def current_metric(self) -> str | None:
        return self.metrics[self.metric_index] if self.metrics else None

    def plot_columns(self) -> int:
        width = self.query_one("#plot", MetricPlot).size.width
        return width if width > 0 else max(40, self.app.size.width - 4)

    def _show_plot(self) -> None:
        """The current metric at its scope: from the cache, else loaded in a worker."""
        status = self.query_one("#plot-status", Static)
        plot = self.query_one("#plot", MetricPlot)
        name = self.current_metric
        if name is None:
            status.update(Text(self._no_data_line()))
            plot.show_plot(None)
            return
        scope = self.plot_scope.get(name, "node")
        cached = self.plots.get((name, scope))
        if cached is not None:
            self._draw(name, cached)
            return
        status.update(Text(f"{self._position(name)} loading {name} ({scope} scope)..."))
        if (name, scope) not in self.plots_pending:
            self._load_plot(name, [scope])

    def _position(self, name: str) -> str:
        return f"metric {self.metrics.index(name) + 1}/{len(self.metrics)}:" if name in self.metrics else ""

    def _load_plot(self, name: str, scopes: list[str], *, then_next_scope: bool = False) -> None:
        """``name`` at ``scopes`` in a thread; every scope the source answers with is remembered."""
        job, subcluster, columns = self.job, self.subcluster, self.plot_columns()
        assert job is not None

        def fetch() -> None:
            self._fetch_plot(job, subcluster, name, scopes, columns)
            if then_next_scope:
                self._post(self._next_scope, name)

        self._run(fetch, "plot")

    def _fetch_plot(self, job: dict[str, Any], subcluster: SubCluster | None, name: str, scopes: list[str],
                    columns: int) -> None:
        """In a worker thread: ``name``'s data at ``scopes``, handed to the screen."""
        entries = self.source.job_metrics(job, [name], scopes, resolution_for(job, columns))
        self._post(self._plots_loaded, name, scopes, entries, subcluster)

    def _plots_loaded(self, name: str, scopes: list[str], entries: list[dict[str, Any]],
                      subcluster: SubCluster | None) -> None:
        found = [entry for entry in entries if entry.get("name") == name]
        for entry in found:
            self.plots[(name, entry["scope"])] = plot_of(entry, subcluster)
        if len(scopes) > 1:
            self.scopes_of[name] = sorted({e["scope"] for e in found} | {"node"}, key=scope_rank)
        wanted = self.plot_scope.get(name, "node")
        if (name, wanted) not in self.plots and found:
            # The source stands in with the coarsest scope it has when the asked one was not archived.
            wanted = self.plot_scope[name] = found[0]["scope"]
        if not found:
            self.plots[(name, wanted)] = {}
        if name == self.current_metric:
            self._show_plot()

    def _draw(self, name: str, plot: dict[str, Any]) -> None:
        status = self.query_one("#plot-status", Static)
        widget = self.query_one("#plot", MetricPlot)
        if not plot:
            status.update(Text(f"{self._position(name)} {name}: no data"))
            widget.show_plot(None)
            return
        scopes = self.scopes_of.get(name)
        choice = f"scopes {', '.join(scopes)}" if scopes else "s: finer scopes"
        status.update(Text(f"{self._position(name)} {name} at {plot['scope']} scope ({choice}; [ ] other metrics)"))
        widget.show_plot(plot)

    # --- statistics per node and finer scope --------------------------------------------------------

    @on(DataTable.RowSelected, "#stats")
    def _stats_row_selected(self, event: DataTable.RowSelected) -> None:
        name = event.row_key.value
        if self.job is None or not name or name == "none":
            return
        self.scoped_metric = name
        self.query_one("#scoped-title", Static).update(Text(f"{name}: loading values per node..."))
        job = self.job

        def fetch() -> None:
            entries = self.source.scoped_job_stats(job, [name], list(SCOPES))
            self._post(self._scoped_loaded, name, entries)

        self._run(fetch, "scoped")

    def _scoped_loaded(self, name: str, entries: list[dict[str, Any]]) -> None:
        if name != self.scoped_metric:
            return
        self.scoped_stats = [entry for entry in entries if entry.get("name") == name]
        self.scoped_index = 0
        self._show_scoped()

    def _show_scoped(self) -> None:
        table = self.query_one("#scoped", DataTable)
        table.clear()
        title = self.query_one("#scoped-title", Static)
        if not self.scoped_stats:
            title.update(Text(f"{self.scoped_metric}: no values per node"))
            return
        entry = self.scoped_stats[self.scoped_index]
        scopes = ", ".join(e["scope"] for e in self.scoped_stats)
        unit = unit_of(self.subcluster, entry["name"])
        unit = f" [{unit}]" if unit else ""
        title.update(Text(f"{entry['name']}{unit} per {entry['scope']} (scopes {scopes}; s switches)"))
        for i, row in enumerate(entry.get("stats") or ()):
            data = row.get("data") or {}
            table.add_row(Text(str(row.get("hostname") or "")), entry["scope"], Text(str(row.get("id") or "")),
                          *[number_cell(data.get(stat)) for stat in ("min", "avg", "max")], key=str(i))

    # --- actions ------------------------------------------------------------------------------------

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()

    def action_reload(self) -> None:
        self.plots.clear()
        self.scopes_of.clear()
        self.load()

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    @on(TabbedContent.TabActivated)
    async def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        await self._build_tab(event.pane.id or "")
        # Keys act on what the tab shows: arrows and Enter on its table, page keys on its text.
        focus = {"metrics": "#job-tabs Tabs", "details": "#tags", "statistics": "#stats",
                 "script": "#script-scroll", "meta": "#meta-scroll", "report": "#report-scroll"}
        target = focus.get(event.pane.id or "")
        if target and self.focused is not self.query_one(target):
            self.query_one(target).focus()

    def action_toggle_hosts(self) -> None:
        self.all_hosts = not self.all_hosts
        if self.job is not None:
            self._show_summary()

    def action_step_metric(self, step: int) -> None:
        if not self.metrics:
            return
        self.metric_index = (self.metric_index + step) % len(self.metrics)
        self.query_one(TabbedContent).active = "metrics"
        self._show_plot()

    def action_switch_scope(self) -> None:
        """The next finer scope the data has (after the finest, node again), of the plot or the per-node table."""
        if self.query_one(TabbedContent).active == "statistics":
            if len(self.scoped_stats) > 1:
                self.scoped_index = (self.scoped_index + 1) % len(self.scoped_stats)
                self._show_scoped()
            return
        name = self.current_metric
        if name is None or self.job is None:
            return
        self.query_one(TabbedContent).active = "metrics"
        scopes = self.scopes_of.get(name)
        if scopes is None:
            # Which scopes exist is the answer to asking for all of them (no archive access: works remotely).
            self.query_one("#plot-status", Static).update(Text(f"{name}: looking for finer scopes..."))
            self._load_plot(name, list(SCOPES), then_next_scope=True)
            return
        self._next_scope(name)

    def _next_scope(self, name: str) -> None:
        scopes = self.scopes_of.get(name) or ["node"]
        current = self.plot_scope.get(name, "node")
        if len(scopes) < 2:
            self.notify(f"{name} has no finer scope than {current} for this job.")
        index = scopes.index(current) if current in scopes else -1
        self.plot_scope[name] = scopes[(index + 1) % len(scopes)]
        if name == self.current_metric:
            self._show_plot()

    def action_add_tag(self) -> None:
        if self.job is None:
            return
        scopes = assignable_scopes(self.source.identity)
        if not scopes:
            self.notify("Your role may not assign tags.", severity="warning")
            return
        self.app.push_screen(AddTagScreen(scopes), callback=self._add_tag)

    def _add_tag(self, chosen: tuple[str, str, str] | None) -> None:
        if chosen is None or self.job is None:
            return
        db_id = self.job["id"]

        def change() -> None:
            try:
                tags = self.source.add_tag(db_id, *chosen)
            except CCError as exc:
                self.app.call_from_thread(self.app.notify, error_text(exc), title="Tag not added", severity="error")
                return
            self.app.call_from_thread(self.app.notify, f"Tag {chosen[0]}:{chosen[1]} added.")
            self._post(self._tags_changed, tags)

        self._run(change, "tags")

    def action_remove_tag(self) -> None:
        if self.job is None:
            return
        tags = removable_tags(self.source.identity, self.job.get("tags") or [])
        if not tags:
            self.notify("This job has no tag your role may remove.", severity="warning")
            return
        selected = None
        table = self.query_one("#tags", DataTable) if "details" in self.built_tabs else None
        if table is not None and table.row_count and table.cursor_row >= 0:
            key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
            selected = int(key) if key and key.isdigit() else None
        self.app.push_screen(RemoveTagScreen(tags, selected), callback=self._remove_tag)

    def _remove_tag(self, tag_id: int | None) -> None:
        if tag_id is None or self.job is None:
            return
        db_id = self.job["id"]
        removed = next((tag_text(t) for t in self.job.get("tags") or () if t["id"] == tag_id), str(tag_id))

        def change() -> None:
            try:
                tags = self.source.remove_tag(db_id, tag_id)
            except CCError as exc:
                self.app.call_from_thread(self.app.notify, error_text(exc), title="Tag not removed", severity="error")
                return
            self.app.call_from_thread(self.app.notify, f"Tag {removed} removed.")
            self._post(self._tags_changed, tags)

        self._run(change, "tags")

    def _tags_changed(self, tags: list[dict[str, Any]]) -> None:
        self._show_tags(tags)
