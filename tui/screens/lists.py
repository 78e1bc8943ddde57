"""The users, projects, tags and clusters screens: overviews of the jobs and the machines that drill into job lists."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, cast

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static
from textual.widgets.data_table import RowDoesNotExist
from textual.worker import Worker, WorkerState

from cc_backend.errors import CCError, Forbidden
from cc_backend.tui.format import number_text

if TYPE_CHECKING:
    from textual.app import ComposeResult

    from cc_backend.archive.cluster import Cluster, MetricValue, SubCluster
    from cc_backend.tui.app import CockpitApp
    from cc_backend.tui.source import GroupBy, JobSource

#: Rich styles of the scheduler's node states (cc_backend.db.tables.NODE_STATES); 16-colour names.
NODE_STATE_STYLES = {"allocated": "bold green", "mixed": "green", "idle": "blue", "reserved": "cyan",
                     "down": "bold red", "unknown": "dim"}
#: Rich styles of node health states (cc_backend.db.tables.HEALTH_STATES).
HEALTH_STYLES = {"full": "green", "partial": "yellow", "failed": "red"}
#: Below this many terminal columns the tables leave out what is least needed (display names, wide labels).
WIDE_TERMINAL = 100
NODES_FORBIDDEN = "Node states are for admin and support users."
NO_NODE_STATES = "no node states reported yet"


class DrillTable(DataTable):
    """A row table whose ``enter`` opens the row's jobs, said so in the footer (DataTable hides its enter)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "select_cursor", "Open jobs")]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)

    def selected_key(self) -> str | None:
        """The key of the row under the cursor (None in an empty table)."""
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value


class _FilterError(Exception):
    """The filter text is wrong (shown next to the filter field, not as a load failure)."""

    def __init__(self, error: CCError) -> None:
        super().__init__(error.message)
        self.error = error


class DataScreen(Screen):
    """A screen that loads its data in a thread worker: ``r`` loads it again, ``escape`` goes back.

    Subclasses fetch in :meth:`fetch` (in the worker thread: source calls block) and fill their widgets in
    :meth:`show` (on the event loop). Errors of the core or the source become messages, never tracebacks.
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "Back"), Binding("r", "reload", "Refresh")]
    AUTO_FOCUS = "DataTable"

    def __init__(self) -> None:
        super().__init__()
        self._loader: Worker | None = None

    @property
    def source(self) -> JobSource:
        return cast("CockpitApp", self.app).source

    def drill(self, filter_text: str) -> None:
        cast("CockpitApp", self.app).show_jobs(filter_text)

    def on_mount(self) -> None:
        # Textual calls the on_mount of every class along the MRO: subclasses must not define another.
        self.action_reload()

    async def action_back(self) -> None:
        if isinstance(self.focused, Input):  # leave the text field first, as the job list does
            self.query(DrillTable).first().focus()
            return
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()
        else:  # the base of its own mode (the app keeps one per list): back is the job list
            await self.app.run_action("jobs")

    def action_reload(self) -> None:
        self.set_status("Loading…")
        self._loader = self.run_worker(self.fetch, thread=True, exclusive=True, group="load", exit_on_error=False,
                                       description=f"load {type(self).__name__}")

    def fetch(self) -> Any:
        raise NotImplementedError

    def show(self, data: Any) -> None:
        raise NotImplementedError

    def show_error(self, error: BaseException) -> None:
        message = error.message if isinstance(error, CCError) else f"{type(error).__name__}: {error}"
        self.set_status(Text(message, style="bold red"))
        self.notify(message, title="Could not load", severity="error")

    def set_status(self, text: str | Text) -> None:
        status = self.query_one("#status", Static)
        status.update(text)
        status.display = bool(text)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # A reload replaces the worker: only the newest one's outcome is shown.
        if event.worker is not self._loader:
            return
        if event.state == WorkerState.SUCCESS:
            self.set_status("")
            self.show(event.worker.result)
        elif event.state == WorkerState.ERROR and event.worker.error is not None:
            self.show_error(event.worker.error)


def _restore_cursor(table: DataTable, key: str | None) -> None:
    """Keep the cursor on the same row across a reload or re-sort (the first row when it is gone)."""
    if key is None:
        return
    try:
        table.move_cursor(row=table.get_row_index(key), animate=False)
    except RowDoesNotExist:  # the row is gone: the first row
        table.move_cursor(row=0, animate=False)


def _drill_text(options: dict[str, Any], **override: str | list[str]) -> str:
    """Filter text of ``options`` with ``override`` in front, replacing the same options."""
    from cc_backend.jobs.filter import filter_text

    return filter_text({**override, **{k: v for k, v in options.items() if k not in override}})


# ------------------------------------------------------------------------------ users and projects

@dataclass(frozen=True)
class GroupColumn:
    """One statistic of the users/projects table: its jobsStatistics field and its header."""

    field: str
    label: str
    short_label: str


#: The totals of a group as jobsStatistics returns them (hours are whole hours, rounded by the core).
GROUP_COLUMNS = (
    GroupColumn("totalJobs", "Jobs", "Jobs"),
    GroupColumn("runningJobs", "Running", "Run"),
    GroupColumn("totalWalltime", "Walltime h", "Wall h"),
    GroupColumn("totalCoreHours", "Core h", "Core h"),
    GroupColumn("totalAccHours", "Acc h", "Acc h"),
    GroupColumn("totalNodeHours", "Node h", "Node h"),
)
NAME_COLUMN = "name"
SORT_KEYS = (NAME_COLUMN, *(column.field for column in GROUP_COLUMNS))


class GroupScreen(DataScreen):
    """Totals per user or project of the jobs the identity may see (GraphQL ``jobsStatistics(groupBy:)``)."""

    GROUP_BY: ClassVar[GroupBy]
    #: The filter option of one group's jobs (``user`` / ``project``).
    OPTION: ClassVar[str]
    NOUN: ClassVar[tuple[str, str]]

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "next_sort", "Sort"),
        Binding("S", "reverse_sort", "Reverse"),
        Binding("f", "focus_filter", "Filter"),
    ]
    DEFAULT_CSS = """
    GroupScreen #filter-bar { height: auto; }
    GroupScreen #filter { width: 1fr; }
    GroupScreen #filter-error { height: auto; color: $error; }
    GroupScreen #filter-error.-empty { display: none; }
    GroupScreen DrillTable { height: 1fr; }
    GroupScreen #total { height: auto; padding: 0 1; background: $boost; }
    GroupScreen #status { height: auto; padding: 0 1; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, Any]] = []
        self.sort_key = "totalJobs"
        self.descending = True
        #: The filter of the rows shown: options of parse_filter_text (drilling adds the group to them).
        self.filter_options: dict[str, Any] = {}
        self._pending_options: dict[str, Any] = {}
        self._wide = True
        self._focus_table_when_shown = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="filter-bar"):
            yield Input(placeholder="Filter, e.g. cluster:fritz start-time:last30d (Enter applies)", id="filter",
                        compact=True)
        yield Static("", id="filter-error", classes="-empty")
        yield Static("", id="status")
        yield DrillTable(id="table")
        yield Static("", id="total")
        yield Footer()

    # --- loading ---

    def action_reload(self) -> None:
        self.load(self.filter_options)

    def load(self, options: dict[str, Any]) -> None:
        self._pending_options = options
        super().action_reload()

    def fetch(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        from cc_backend.jobs.filter import JobFilter

        options = self._pending_options
        source = self.source
        flt: JobFilter | None = None
        if options:
            try:
                flt = JobFilter.from_text_options(options, tag_ids=source.resolve_tags)
            except CCError as exc:
                raise _FilterError(exc) from None
        return options, source.group_statistics(self.GROUP_BY, flt)

    def show(self, data: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
        self.filter_options, self.rows = data
        self._set_filter_error("")
        self._render_rows()
        if self._focus_table_when_shown:
            self._focus_table_when_shown = False
            self.query_one(DrillTable).focus()

    def show_error(self, error: BaseException) -> None:
        self._focus_table_when_shown = False
        if isinstance(error, _FilterError):
            self.set_status("")
            self._set_filter_error(error.error.message)
        else:
            super().show_error(error)

    def _set_filter_error(self, message: str) -> None:
        label = self.query_one("#filter-error", Static)
        label.update(message)
        label.set_class(not message, "-empty")

    # --- the filter field ---

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        from cc_backend.jobs.filter import parse_filter_text

        event.stop()
        try:
            options = parse_filter_text(event.value)
        except CCError as exc:
            self._set_filter_error(exc.message)
            return
        self._set_filter_error("")
        # The table takes the focus once the filter proved right; a wrong one keeps it here to be fixed.
        self._focus_table_when_shown = True
        self.load(options)

    # --- the table ---

    def _name_cell(self, row: dict[str, Any]) -> Text:
        text = Text(row["id"])
        if self._wide and row.get("name") and row["name"] != row["id"]:
            text.append(f" {row['name'][:24]}", style="dim")
        return text

    def _render_rows(self) -> None:
        self._wide = self.app.size.width >= WIDE_TERMINAL
        table = self.query_one(DrillTable)
        kept = table.selected_key()
        table.clear(columns=True)
        arrow = " ▼" if self.descending else " ▲"
        name_label = self.NOUN[0].capitalize() + (arrow if self.sort_key == NAME_COLUMN else "")
        table.add_column(name_label, key=NAME_COLUMN)
        for column in GROUP_COLUMNS:
            label = column.label if self._wide else column.short_label
            table.add_column(label + (arrow if self.sort_key == column.field else ""), key=column.field)
        for row in self._sorted_rows():
            table.add_row(self._name_cell(row), *(Text(number_text(row.get(c.field)), justify="right")
                                                 for c in GROUP_COLUMNS), key=row["id"])
        _restore_cursor(table, kept)
        self._render_total()

    def _sorted_rows(self) -> list[dict[str, Any]]:
        if self.sort_key == NAME_COLUMN:
            return sorted(self.rows, key=lambda row: row["id"], reverse=self.descending)
        # Ties stay in name order whichever the direction, so the table reads the same on every load.
        by_name = sorted(self.rows, key=lambda row: row["id"])
        return sorted(by_name, key=lambda row: row.get(self.sort_key) or 0, reverse=self.descending)

    def _render_total(self) -> None:
        count = len(self.rows)
        noun = self.NOUN[0] if count == 1 else self.NOUN[1]

        def total(field: str) -> str:
            return number_text(sum(row.get(field) or 0 for row in self.rows))

        line = (f"Total: {count:,} {noun} · {total('totalJobs')} jobs ({total('runningJobs')} running) · "
                f"walltime {total('totalWalltime')} h · core {total('totalCoreHours')} h · "
                f"acc {total('totalAccHours')} h · node {total('totalNodeHours')} h")
        if self.filter_options:
            line += f" · filter: {_drill_text(self.filter_options)}"
        self.query_one("#total", Static).update(line)

    def sort_by(self, key: str, descending: bool | None = None) -> None:
        """Sort by a column; a new column starts in its natural direction (names up, numbers down)."""
        self.sort_key = key
        self.descending = key != NAME_COLUMN if descending is None else descending
        self._render_rows()

    def action_next_sort(self) -> None:
        self.sort_by(SORT_KEYS[(SORT_KEYS.index(self.sort_key) + 1) % len(SORT_KEYS)])

    def action_reverse_sort(self) -> None:
        self.sort_by(self.sort_key, not self.descending)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = event.column_key.value or NAME_COLUMN
        self.sort_by(key, not self.descending if key == self.sort_key else None)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.drill(_drill_text(self.filter_options, **{self.OPTION: event.row_key.value}))

    def on_resize(self) -> None:
        if self.rows and (self.app.size.width >= WIDE_TERMINAL) != self._wide:
            self._render_rows()


class UsersScreen(GroupScreen):
    """Jobs, running jobs, walltime and core, accelerator and node hours per user; ``enter`` lists a user's jobs."""

    TITLE = "Users"
    GROUP_BY = "USER"
    OPTION = "user"
    NOUN = ("user", "users")


class ProjectsScreen(GroupScreen):
    """The same totals per project; ``enter`` lists a project's jobs."""

    TITLE = "Projects"
    GROUP_BY = "PROJECT"
    OPTION = "project"
    NOUN = ("project", "projects")


# ------------------------------------------------------------------------------ tags

class TagsScreen(DataScreen):
    """Every tag the identity may read with the number of its visible jobs, by type and name."""

    TITLE = "Tags"
    DEFAULT_CSS = """
    TagsScreen DrillTable { height: 1fr; }
    TagsScreen #status, TagsScreen #total { height: auto; padding: 0 1; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="status")
        yield DrillTable(id="table")
        yield Static("", id="total")
        yield Footer()

    def fetch(self) -> list[dict[str, Any]]:
        return self.source.tags()

    def show(self, data: list[dict[str, Any]]) -> None:
        self.tags = sorted(data, key=lambda tag: (tag["type"], tag["name"], tag["scope"]))
        table = self.query_one(DrillTable)
        kept = table.selected_key()
        table.clear(columns=True)
        table.add_column("Type", key="type")
        table.add_column("Name", key="name")
        table.add_column("Scope", key="scope")
        table.add_column("Jobs", key="count")
        previous_type = None
        for tag in self.tags:
            # The type once per group, so the groups stand out.
            type_cell = Text(tag["type"], style="bold") if tag["type"] != previous_type else Text("")
            previous_type = tag["type"]
            scope_style = "dim" if tag["scope"] == "global" else "cyan"
            table.add_row(type_cell, tag["name"], Text(tag["scope"], style=scope_style),
                          Text(number_text(tag.get("count")), justify="right"), key=str(tag["id"]))
        _restore_cursor(table, kept)
        types = len({tag["type"] for tag in self.tags})
        self.query_one("#total", Static).update(
            f"{len(self.tags):,} tags of {types:,} types" if self.tags else "No tags yet.")

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        from cc_backend.jobs.filter import filter_text

        tag = next((t for t in self.tags if str(t["id"]) == event.row_key.value), None)
        if tag is not None:
            self.drill(filter_text({"tag": [f"{tag['type']}:{tag['name']}"]}))


# ------------------------------------------------------------------------------ clusters

def _value_text(value: MetricValue) -> str:
    return f"{number_text(value.value, 0)} {value.unit.text}".strip()


def _accelerators_text(subcluster: SubCluster) -> str:
    models = Counter(acc.model or acc.type for acc in subcluster.topology.accelerators)
    return ", ".join(f"{count} {model}" for model, count in models.items()) or "-"


def _processor_text(processor: str, width: int) -> str:
    """``Intel Xeon Platinum 8360Y``: the model without trademarks and clock, cut to ``width``."""
    words = processor.replace("(R)", "").replace("(TM)", "").split(" CPU @")[0].replace(" Processor", "").split()
    text = " ".join(words)
    return text if len(text) <= width else text[:width - 1] + "…"


def _node_count_text(subcluster: SubCluster) -> str:
    return "any" if subcluster.nodelist.is_wildcard else f"{subcluster.nodelist.count():,}"


class ClustersScreen(DataScreen):
    """The clusters with their subclusters, and the newest state of each node of the highlighted cluster."""

    TITLE = "Clusters"
    DEFAULT_CSS = """
    ClustersScreen #clusters { height: auto; max-height: 45%; }
    ClustersScreen #nodes { height: 1fr; }
    ClustersScreen #status, ClustersScreen #node-status { height: auto; padding: 0 1; }
    ClustersScreen #node-status { background: $boost; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.clusters: list[Cluster] = []
        #: Node states per cluster; a message instead where there are none to show.
        self.nodes: dict[str, list[dict[str, Any]] | str] = {}
        self.shown_cluster: str | None = None
        #: Cluster and subcluster (None on a cluster's own row) of each row of the cluster table.
        self._cluster_rows: dict[str, tuple[str, str | None]] = {}
        #: The node under the cursor per cluster, to come back to it (highlighting moves between clusters).
        self._node_cursor: dict[str, str | None] = {}
        self._wide = True

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="status")
        yield DrillTable(id="clusters")
        yield Static("", id="node-status")
        yield DrillTable(id="nodes")
        yield Footer()

    def fetch(self) -> tuple[list[Cluster], dict[str, list[dict[str, Any]] | str]]:
        source = self.source
        clusters = source.clusters()
        nodes: dict[str, list[dict[str, Any]] | str] = {}
        for cluster in clusters:
            try:
                nodes[cluster.name] = source.nodes(cluster.name) or NO_NODE_STATES
            except Forbidden:
                # The same answer for every cluster: the role sees no node states at all.
                return clusters, dict.fromkeys((c.name for c in clusters), NODES_FORBIDDEN)
        return clusters, nodes

    def show(self, data: tuple[list[Cluster], dict[str, list[dict[str, Any]] | str]]) -> None:
        self.clusters, self.nodes = data
        table = self.query_one("#clusters", DrillTable)
        kept = table.selected_key()
        table.clear(columns=True)
        wide = self._wide = self.app.size.width >= WIDE_TERMINAL
        processor_width = 32 if wide else 16
        for label, key in (("Cluster", "name"), ("Processor", "cpu"), ("Nodes", "nodes"), ("Cores", "cores"),
                           ("Accelerators" if wide else "Accs", "accs"), ("Peak flops", "flops"),
                           ("Mem bw", "membw")):
            table.add_column(label, key=key)
        self._cluster_rows = {}
        for cluster in self.clusters:
            count = len(cluster.sub_clusters)
            key = f"cluster:{cluster.name}"
            self._cluster_rows[key] = (cluster.name, None)
            table.add_row(Text(cluster.name, style="bold"),
                          Text(f"{count} subcluster{'s' * (count != 1)}", style="dim"), "", "", "", "", "", key=key)
            for sub in cluster.sub_clusters:
                cores = f"{sub.sockets_per_node}x{sub.cores_per_socket}"
                if sub.threads_per_core > 1:
                    cores += f"x{sub.threads_per_core}"
                key = f"subcluster:{cluster.name}:{sub.name}"
                self._cluster_rows[key] = (cluster.name, sub.name)
                table.add_row(f"  {sub.name}", _processor_text(sub.processor_type, processor_width),
                              Text(_node_count_text(sub), justify="right"), cores, _accelerators_text(sub),
                              _value_text(sub.flop_rate_simd), _value_text(sub.memory_bandwidth), key=key)
        if not self.clusters:
            self.set_status("No clusters in the job archive.")
        _restore_cursor(table, kept)
        self._show_nodes(self._cluster_of(table.selected_key()), force=True)

    def _cluster_of(self, row_key: str | None) -> str | None:
        return self._cluster_rows[row_key][0] if row_key in self._cluster_rows else None

    def _show_nodes(self, cluster: str | None, *, force: bool = False) -> None:
        if cluster == self.shown_cluster and not force:
            return
        status = self.query_one("#node-status", Static)
        table = self.query_one("#nodes", DrillTable)
        if self.shown_cluster is not None and table.display and table.row_count:
            self._node_cursor[self.shown_cluster] = table.selected_key()
        self.shown_cluster = cluster
        table.clear(columns=True)
        nodes = self.nodes.get(cluster or "", [])
        if isinstance(nodes, str):
            status.update(f"{cluster}: {nodes}" if nodes == NO_NODE_STATES else nodes)
            table.display = False
            return
        table.display = True
        status.update(f"Nodes of {cluster}: {len(nodes):,} with a reported state (enter lists a node's running jobs)")
        for label, key in (("Host", "host"), ("Subcluster", "sub"), ("State", "state"), ("Health", "health"),
                           ("Jobs", "jobs"), ("CPUs", "cpus"), ("Memory", "mem"), ("GPUs", "gpus")):
            table.add_column(label, key=key)
        for node in nodes:
            state, health = node.get("schedulerState") or "", node.get("healthState") or ""
            table.add_row(node["hostname"], node.get("subCluster") or "",
                          Text(state, style=NODE_STATE_STYLES.get(state, "")),
                          Text(health, style=HEALTH_STYLES.get(health, "")),
                          *(Text(number_text(node.get(field)), justify="right")
                            for field in ("jobsRunning", "cpusAllocated", "memoryAllocated", "gpusAllocated")),
                          key=node["hostname"])
        _restore_cursor(table, self._node_cursor.get(cluster or ""))

    def on_resize(self) -> None:
        if self.clusters and (self.app.size.width >= WIDE_TERMINAL) != self._wide:
            self.show((self.clusters, self.nodes))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "clusters" and event.row_key.value is not None:
            self._show_nodes(self._cluster_of(event.row_key.value))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        from cc_backend.jobs.filter import filter_text

        key = event.row_key.value
        if key is None:
            return
        if event.data_table.id == "nodes":
            self.drill(filter_text({"node": key, "state": ["running"]}))
            return
        cluster, subcluster = self._cluster_rows[key]
        self.drill(filter_text({"cluster": cluster, "subcluster": subcluster or ""}))

