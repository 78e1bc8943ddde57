"""Metric plots in the terminal: one line per series or a min/median/max band, drawn with Plotext in braille."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from textual_plotext import PlotextPlot

from cc_backend.jobs.jobview import BAND_ABOVE, metric_plot
from cc_backend.metrics.resampling import lttb
from cc_backend.metrics.statistics import statistics_series

if TYPE_CHECKING:
    from textual.app import RenderResult

    from cc_backend.archive.cluster import SubCluster

#: Plotext's braille marker puts two samples in one terminal column.
SAMPLES_PER_COLUMN = 2
#: Tick marks on the elapsed-time axis; more crowd an 80-column terminal.
X_TICKS = 5
#: Colours of the band, as the web UI draws it (min red, median default, max green).
BAND_COLORS = {"min": "red", "median": "blue", "max": "green"}


def resolution_for(job: Mapping[str, Any], columns: int) -> int:
    """Seconds per sample that give about two samples per plot column over the job's duration.

    The archive keeps its native timestep when that is coarser (resampling never adds samples).
    """
    duration = int(job.get("duration") or 0)
    points = max(1, columns) * SAMPLES_PER_COLUMN
    return max(1, math.ceil(duration / points))


def plot_of(entry: Mapping[str, Any], subcluster: SubCluster | None) -> dict[str, Any]:
    """A ``jobMetrics`` item (``{name, scope, metric}``) as the job view's plot: lines or a band (core rule).

    A source that left out ``statisticsSeries`` (a remote server not asked for it) gets it computed
    here, so a many-node job is a band either way.
    """
    name, scope, metric = entry["name"], entry["scope"], dict(entry["metric"])
    series = metric.get("series") or []
    if len(series) > BAND_ABOVE and not metric.get("statisticsSeries"):
        metric["statisticsSeries"] = statistics_series(series)
    config = subcluster.metric(name) if subcluster is not None else None
    return metric_plot(name, scope, metric, config=config, subcluster=subcluster)


def clock_label(seconds: float) -> str:
    """Elapsed time on the x axis: ``h:mm`` (the job's own clock, not the wall clock)."""
    minutes = int(seconds) // 60
    return f"{minutes // 60}:{minutes % 60:02d}"


def elapsed_ticks(last: float, count: int = X_TICKS) -> tuple[list[float], list[str]]:
    """Tick positions (seconds) spread evenly from 0 to ``last`` and their ``h:mm`` labels."""
    if last <= 0:
        return [0.0], [clock_label(0)]
    positions = [last * i / (count - 1) for i in range(count)]
    return positions, [clock_label(p) for p in positions]


def _points(data: Sequence[Any], timestep: float) -> tuple[list[float], list[float]]:
    """The samples that exist (missing and NaN ones left out) with their elapsed seconds."""
    xs, ys = [], []
    for i, value in enumerate(data):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            xs.append(float(i * timestep))
            ys.append(float(value))
    return xs, ys


def plot_title(plot: Mapping[str, Any]) -> str:
    unit = f" [{plot['unit']}]" if plot.get("unit") else ""
    count = plot.get("seriesCount", 0)
    shape = "min/median/max of" if "band" in plot else "lines:"
    return f"{plot['metric']}{unit} - {plot['scope']} scope, {shape} {count} series"


class MetricPlot(PlotextPlot):
    """One metric at one scope. ``labels`` are the names of the lines handed to Plotext (series or band)."""

    DEFAULT_CSS = """
    MetricPlot {
        width: 1fr;
        height: 1fr;
        min-height: 8;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id, classes=classes)
        self.plot: dict[str, Any] | None = None
        self.labels: list[str] = []
        #: The last drawing and what it was drawn for (plot, size, theme): Textual asks for a render on every
        #: refresh of the screen, and a Plotext build takes tens of milliseconds.
        self._drawn: tuple[tuple[Any, ...], RenderResult] | None = None

    def render(self) -> RenderResult:
        if self.plot is None:
            return ""  # nothing to draw: no empty axes, and no Plotext build while a job is still loading
        key = (id(self.plot), self.size.width, self.size.height, self.app.theme)
        if self._drawn is None or self._drawn[0] != key:
            self._drawn = (key, super().render())
        return self._drawn[1]

    def show_plot(self, plot: dict[str, Any] | None) -> None:
        """Draw ``plot`` (from :func:`plot_of`); None empties the canvas."""
        self.plot = plot
        self._drawn = None
        plt = self.plt
        plt.clear_figure()
        self.labels = []
        if plot is None:
            self.refresh()
            return
        timestep = int(plot.get("timestep") or 0) or 1
        last = 0.0
        lines: list[tuple[str, Sequence[Any], str | None]]
        if "band" in plot:
            lines = [(key, plot["band"].get(key) or [], BAND_COLORS[key]) for key in ("max", "median", "min")]
        else:
            lines = [(s["label"], s["data"], None) for s in plot.get("series") or ()]
        # Braille gives two dots per column: more samples than that only cost Plotext time (it draws
        # every one), so long series are thinned with the core's LTTB, which keeps the peaks.
        target = max(SAMPLES_PER_COLUMN * (self.size.width or self.app.size.width), 64)
        for label, data, color in lines:
            step = timestep
            if len(data) > target:
                thinned = lttb(data, target)
                step, data = timestep * (len(data) - 1) / max(1, len(thinned) - 1), thinned
            xs, ys = _points(data, step)
            self.labels.append(label)
            if not xs:
                continue
            last = max(last, xs[-1])
            options: dict[str, Any] = {"label": label, "marker": "braille"}
            if color:
                options["color"] = color
            plt.plot(xs, ys, **options)
        positions, tick_labels = elapsed_ticks(last)
        plt.xticks(positions, tick_labels)
        plt.xlabel("elapsed (h:mm)")
        if plot.get("unit"):
            plt.ylabel(plot["unit"])
        plt.title(plot_title(plot))
        self.refresh()
