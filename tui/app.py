"""The terminal UI's application: the screens, the key bindings and the data source they share."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from textual.app import App

if TYPE_CHECKING:
    from cc_backend.tui.source import JobSource


class CockpitApp(App):
    """Every screen reads ``self.app.source`` and ``self.app.clock()``; navigation goes through
    :meth:`show_jobs` and :meth:`show_job`, so a screen does not need to know the others."""

    TITLE = "cc-backend"

    def __init__(self, source: JobSource, *, filter_text: str = "", clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.source = source
        self.clock = clock
        self.initial_filter = filter_text

    def show_jobs(self, filter_text: str) -> None:
        """The job list filtered by ``filter_text`` (the filter bar's syntax, e.g. ``user:k1* state:running``)."""
        raise NotImplementedError

    def show_job(self, db_id: int) -> None:
        """The job detail screen of one job (database id), on top of the current screen."""
        raise NotImplementedError
