"""The terminal UI's application: the screens, the key bindings and the data source they share."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on, work
from textual.app import App
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Input, Label

from cc_backend.tui.screens.jobs import JobsScreen, problem_text

if TYPE_CHECKING:
    from cc_backend.tui.source import JobSource

#: What the jump box accepts: ``#42`` (database id), ``1234`` or ``1234@cluster`` (batch job id).
JUMP_SYNTAX = re.compile(r"^(?:#(?P<db_id>\d+)|(?P<job_id>\d+)(?:@(?P<cluster>[A-Za-z0-9_.-]+))?)$")
#: Screens reached by one key, each kept in its own mode so it keeps its state while others are shown.
LIST_SCREENS = {"users": "UsersScreen", "projects": "ProjectsScreen", "tags": "TagsScreen",
                "clusters": "ClustersScreen"}


def _list_screen(class_name: str) -> Screen:
    from cc_backend.tui.screens import lists

    return getattr(lists, class_name)()


class JumpScreen(ModalScreen[str]):
    """A one-line box asking for a job id; dismissed with the text (empty when cancelled)."""

    BINDINGS: ClassVar = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    JumpScreen { align: center middle; }
    JumpScreen > Vertical { width: 60; height: auto; border: round $accent; padding: 0 1; background: $surface; }
    JumpScreen Label { width: 1fr; }
    """

    def compose(self):
        with Vertical():
            yield Label("Jump to job: 1234 or 1234@cluster (batch job id), #42 (database id)")
            yield Input(id="jump", placeholder="1234@fritz")

    @on(Input.Submitted, "#jump")
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss("")


class CockpitCommands(Provider):
    """The app's own entries of the command palette (ctrl+p): screens, common filters, jump, help, quit."""

    def commands(self) -> list[tuple[str, Callable[[], Any], str]]:
        app = self.app
        assert isinstance(app, CockpitApp)
        entries: list[tuple[str, Callable[[], Any], str]] = [
            ("Jobs", app.action_jobs, "The job list (j)"),
            ("Users", partial(app.action_list, "users"), "Users with their job statistics (u)"),
            ("Projects", partial(app.action_list, "projects"), "Projects with their job statistics (p)"),
            ("Tags", partial(app.action_list, "tags"), "Tags and how many jobs carry them (t)"),
            ("Clusters", partial(app.action_list, "clusters"), "Clusters, their nodes and node states (c)"),
            ("Filter: running jobs", partial(app.show_jobs, "state:running"), "Jobs that are running now"),
        ]
        username = app.source.identity.username
        if username and not username.startswith("("):  # "(local admin)" owns no jobs
            entries.append(("Filter: my jobs", partial(app.show_jobs, f"user:{username}"), f"Jobs of {username}"))
        entries += [
            ("Jump to job", app.action_jump, "Open a job by its id (/)"),
            ("Help", app.action_help, "Keys of every screen (?)"),
            ("Quit", app.action_quit, "Leave cc-backend tui (q)"),
        ]
        return entries

    async def discover(self) -> Hits:
        for name, command, help_text in self.commands():
            yield DiscoveryHit(name, command, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, command, help_text in self.commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), command, help=help_text)


class CockpitApp(App):
    """Every screen reads ``self.app.source`` and ``self.app.clock()``; navigation goes through
    :meth:`show_jobs` and :meth:`show_job`, so a screen does not need to know the others."""

    TITLE = "cc-backend"
    COMMANDS = App.COMMANDS | {CockpitCommands}
    BINDINGS: ClassVar = [
        Binding("j", "jobs", "Jobs"),
        Binding("u", "list('users')", "Users"),
        Binding("p", "list('projects')", "Projects"),
        Binding("t", "list('tags')", "Tags"),
        Binding("c", "list('clusters')", "Clusters"),
        Binding("slash", "jump", "Jump to job", key_display="/"),
        Binding("question_mark,f1", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, source: JobSource, *, filter_text: str = "", clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.source = source
        self.clock = clock
        self.initial_filter = filter_text
        self.add_mode("jobs", self._new_jobs_screen)
        for mode, class_name in LIST_SCREENS.items():
            self.add_mode(mode, partial(_list_screen, class_name))

    def _new_jobs_screen(self) -> JobsScreen:
        return JobsScreen(self.initial_filter)

    def on_mount(self) -> None:
        identity = self.source.identity
        self.sub_title = " · ".join(part for part in (identity.where, identity.username) if part)
        self.switch_mode("jobs")

    @property
    def jobs_screen(self) -> JobsScreen:
        """The job list (the base of the ``jobs`` mode, created on mount)."""
        screen = self._screen_stacks["jobs"][0]
        assert isinstance(screen, JobsScreen)
        return screen

    # --- navigation (the contract of every screen) --------------------------------------------------

    def show_jobs(self, filter_text: str) -> None:
        """The job list filtered by ``filter_text`` (the filter bar's syntax, e.g. ``user:k1* state:running``)."""
        self.action_jobs()
        self.jobs_screen.apply_filter(filter_text)

    def show_job(self, db_id: int) -> None:
        """The job detail screen of one job (database id), on top of the current screen."""
        from cc_backend.tui.screens.job import JobScreen

        self.push_screen(JobScreen(db_id))

    # --- actions ------------------------------------------------------------------------------------

    def action_jobs(self) -> None:
        """The job list as it was left, without the screens opened on top of it."""
        self.switch_mode("jobs")
        while len(self.screen_stack) > 1:
            self.pop_screen()

    def action_list(self, mode: str) -> None:
        if isinstance(self.screen, ModalScreen):
            self.pop_screen()
        self.switch_mode(mode)

    def action_help(self) -> None:
        from cc_backend.tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_jump(self) -> None:
        if not isinstance(self.screen, JumpScreen):
            self.push_screen(JumpScreen(), callback=self.jump_to_job)

    def jump_to_job(self, text: str | None) -> None:
        """Open the job ``text`` names (see :data:`JUMP_SYNTAX`); several matches show them in the job list."""
        text = (text or "").strip()
        if not text:
            return
        match = JUMP_SYNTAX.match(text)
        if match is None:
            self.notify(f"{text!r} is not a job id: type 1234, 1234@cluster or #42 (database id)",
                        severity="error")
            return
        self._resolve_jump(match.group("db_id"), match.group("job_id"), match.group("cluster"))

    @work(thread=True, exclusive=True, group="jump")
    def _resolve_jump(self, db_id: str | None, job_id: str | None, cluster: str | None) -> None:
        from cc_backend.errors import NotFound
        from cc_backend.jobs.filter import JobFilter, StringInput

        try:
            if db_id is not None:
                self.source.job(int(db_id))
                self.call_from_thread(self.show_job, int(db_id))
                return
            assert job_id is not None
            conditions: dict[str, Any] = {"jobId": StringInput(eq=job_id)}
            if cluster:
                conditions["cluster"] = StringInput(eq=cluster)
            matches = self.source.jobs(JobFilter(**conditions), None, 1, 2).jobs
            if len(matches) == 1:
                self.call_from_thread(self.show_job, matches[0]["id"])
            elif matches:
                words = f"job-id:{job_id}" + (f" cluster:{cluster}" if cluster else "")
                self.call_from_thread(self.show_jobs, words)
            elif cluster is None and self._visible_db_id(int(job_id)):
                # A bare number that is no batch job id may be a database id (the web UI's job URLs show those).
                self.call_from_thread(self.show_job, int(job_id))
            else:
                where = f"@{cluster}" if cluster else ""
                self.call_from_thread(self.notify, f"There is no job {job_id}{where}.", severity="warning")
        except NotFound:
            self.call_from_thread(self.notify, f"There is no job with database id {db_id}.", severity="warning")
        except Exception as exc:  # a lost server or database: a message, and the app goes on
            self.call_from_thread(self.notify, problem_text(exc), title="Cannot open the job", severity="error")

    def _visible_db_id(self, db_id: int) -> bool:
        from cc_backend.errors import NotFound

        try:
            self.source.job(db_id)
        except NotFound:
            return False
        return True
