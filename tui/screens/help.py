"""The help screen: every key of the screen below it and of the app, grouped, and the filter syntax with examples."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

if TYPE_CHECKING:
    from textual.app import ComposeResult
    from textual.dom import DOMNode

#: How each kind of filter value is written (the kinds of cc_backend.jobs.filter.TEXT_OPTIONS).
FILTER_VALUE_SYNTAX = {
    "match": "exact, prefix*, *suffix or *part*",
    "int": "a whole number",
    "list": "one value; repeat the option for more",
    "time": "last6h, last24h, last7d, last30d or FROM..TO (epoch seconds or ISO dates)",
    "duration": "A..B, A.. or ..B with s/m/h/d, e.g. 1h..",
    "count": "N, A..B, A.. or ..B",
    "float": "A..B, A.. or ..B",
    "metric": "NAME=A..B on the footprint value; repeatable",
    "tag": "type:name or a tag id; repeatable",
    "text": "one of the values below",
}
FILTER_EXAMPLES = (
    ("user:k1* state:running", "running jobs of users whose name starts with k1"),
    ("cluster:fritz start-time:last30d", "jobs of fritz started in the last 30 days"),
    ("state:failed state:timeout duration:1h..", "failed or timed out after at least an hour"),
    ("nodes:4.. metric:flops_any=..10", "jobs on 4 or more nodes with a low flop rate"),
    ("tag:app:gromacs", "jobs tagged app:gromacs"),
    ('"job-name:my job" node:f0101', "quotes keep spaces; jobs that ran on node f0101"),
    ("--user alice --state completed", "the command line's form works too"),
)
#: Headings of the bindings of focused widgets, by widget class (else the class name).
WIDGET_HEADINGS = {"DataTable": "In the table", "DrillTable": "In the table", "Input": "In a text field"}


def _option_values(option: str, kind: str) -> str:
    from cc_backend.db.tables import JOB_STATES, SHARED_MODES

    if option == "state":
        return f"{FILTER_VALUE_SYNTAX[kind]}: {', '.join(JOB_STATES)}"
    if option == "shared":
        return ", ".join(SHARED_MODES)
    if option == "schedule":
        return "interactive or batch"
    return FILTER_VALUE_SYNTAX.get(kind, "")


def filter_syntax_text() -> Text:
    """The filter bar's options (those of ``cc-backend`` job filters) and examples."""
    from cc_backend.jobs.filter import TEXT_OPTIONS

    text = Text()
    text.append("Filter syntax", style="bold underline")
    text.append("\nWords name:value (or --name value) combine with AND; quote values with spaces.\n\n")
    width = max(len(option) for option in TEXT_OPTIONS) + 2
    for option, (kind, _field) in TEXT_OPTIONS.items():
        text.append(f"  {option:<{width}}", style="bold")
        text.append(_option_values(option, kind) + "\n")
    text.append("\nExamples\n", style="bold")
    for example, meaning in FILTER_EXAMPLES:
        text.append(f"  {example}\n", style="bold")
        text.append(f"      {meaning}\n", style="dim")
    return text


def binding_groups(screen: Screen) -> list[tuple[str, list[tuple[str, str]]]]:
    """The keys active on ``screen``: the screen's, the focused widget's, then the app's ("Everywhere").

    Each group is (heading, [(key, description)]). Textual decides which binding of a key acts (the one
    closest to the focus, or a priority one), so only those are listed, under the node that owns them.
    """
    app = screen.app
    by_node: dict[DOMNode, list[tuple[str, str]]] = {}
    for active in screen.active_bindings.values():
        binding = active.binding
        if binding.system:  # Textual's own plumbing (e.g. ctrl+c's "press ctrl+q to quit" hint)
            continue
        description = binding.description or binding.action.replace("_", " ")
        by_node.setdefault(active.node, []).append((app.get_key_display(binding), description))
    groups = [(_heading(node, screen), _merge_keys(rows)) for node, rows in by_node.items()]
    # Read in the order that matters to a reader: this screen's own keys first.
    screen_heading = _heading(screen, screen)
    return sorted(groups, key=lambda group: group[0] != screen_heading)


def _merge_keys(rows: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """One line per action: ``? / f1`` rather than a line per key of the same binding."""
    merged: dict[str, list[str]] = {}
    for key, description in rows:
        keys = merged.setdefault(description, [])
        if key not in keys:
            keys.append(key)
    return [(" / ".join(keys), description) for description, keys in merged.items()]


def _heading(node: DOMNode, screen: Screen) -> str:
    if node is screen:
        return f"On this screen ({screen.title or type(screen).__name__.removesuffix('Screen')})"
    if node is screen.app:
        return "Everywhere"
    for cls in type(node).__mro__:
        if cls.__name__ in WIDGET_HEADINGS:
            return WIDGET_HEADINGS[cls.__name__]
    return f"In the {type(node).__name__}"


def bindings_text(groups: list[tuple[str, list[tuple[str, str]]]]) -> Text:
    text = Text()
    width = max((len(key) for _heading, rows in groups for key, _desc in rows), default=0) + 2
    for heading, rows in groups:
        text.append(heading + "\n", style="bold underline")
        for key, description in rows:
            text.append(f"  {key:<{width}}", style="bold")
            text.append(description + "\n")
        text.append("\n")
    return text


class HelpScreen(ModalScreen[None]):
    """Shows the keys of the screen it was opened over (pass it, or the one below on the stack is used)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "close", "Close help", key_display="esc"),
        Binding("up,k", "scroll('up')", "Scroll up", show=False),
        Binding("down,j", "scroll('down')", "Scroll down", show=False),
        Binding("pageup", "scroll('page_up')", "Page up", show=False),
        Binding("pagedown,space", "scroll('page_down')", "Page down", show=False),
    ]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 90%; max-width: 100; height: 90%; border: round $accent; background: $surface; padding: 0 1;
    }
    HelpScreen #help-title { text-style: bold; }
    """

    def __init__(self, below: Screen | None = None) -> None:
        super().__init__()
        self._below = below
        self.groups: list[tuple[str, list[tuple[str, str]]]] = []

    def below(self) -> Screen | None:
        if self._below is not None:
            return self._below
        stack = self.app.screen_stack
        if self in stack:
            index = stack.index(self)
            return stack[index - 1] if index > 0 else None
        return stack[-1] if stack else None  # not pushed yet: the screen it will cover

    def compose(self) -> ComposeResult:
        below = self.below()
        self.groups = binding_groups(below) if below is not None else []
        with VerticalScroll(id="help"):
            yield Static("Keys (escape, q or ? closes this help; up/down/space scroll)", id="help-title")
            yield Static(bindings_text(self.groups), id="help-keys")
            yield Static(filter_syntax_text(), id="help-filter")

    def action_close(self) -> None:
        self.dismiss(None)

    def action_scroll(self, where: str) -> None:
        scroller = self.query_one("#help", VerticalScroll)
        {"up": scroller.scroll_up, "down": scroller.scroll_down, "page_up": scroller.scroll_page_up,
         "page_down": scroller.scroll_page_down}[where]()

    def text(self) -> str:
        """Everything the help says, as plain text (what a reader sees, without the styles)."""
        return "\n".join(static.content.plain if isinstance(static.content, Text) else str(static.content)
                          for static in self.query(Static))
