/* Histograms of the user and analysis pages: job_statistics' histograms drawn with plots.js bars(). */

import { bars, formatValue } from "./plots.js";

/** "12h" / "1.5h" for a number of hours (duration histogram axes). */
export function formatHours(hours) {
  return `${formatValue(hours)}h`;
}

/** A histogram [{value, count}] into the element; durations get hour labels. */
export function histogram(element, points, { xLabel, duration = false, color } = {}) {
  if (!element) return null;
  const list = points || [];
  if (!list.some((point) => point.count > 0)) {
    element.textContent = "No jobs.";
    element.classList.add("text-body-secondary", "small");
    element.dataset.plotted = "empty";
    return null;
  }
  // Durations in hours, so that the axis ticks fall on whole hours.
  const x = list.map((point) => (duration ? point.value / 3600 : point.value));
  const y = list.map((point) => point.count);
  // An empty bin on either side: uPlot's x range ends at the outer bars' centres and would cut them in half.
  const gaps = x.slice(1).map((value, i) => value - x[i]).filter((gap) => gap > 0);
  const step = gaps.length ? Math.min(...gaps) : 1;
  return bars(element, {
    x: [x[0] - step, ...x, x[x.length - 1] + step],
    y: [0, ...y, 0],
    xLabel,
    yLabel: "Jobs",
    height: 200,
    // bars() appends an alpha to the colour: only #rrggbb colours can take it.
    color: /^#[0-9a-f]{6}$/i.test(color || "") ? color : undefined,
    formatX: duration ? formatHours : formatValue,
  });
}

/** One card per metric histogram ({metric, unit, stat, data: [{bin, count, min, max}]}) into `container`. */
export function metricHistograms(container, histograms, color) {
  if (!container) return;
  for (const hist of histograms || []) {
    const column = document.createElement("div");
    column.className = "col-12 col-md-6 col-xl-4";
    const title = document.createElement("div");
    title.className = "small fw-semibold mb-1";
    title.textContent = `${hist.metric} (${hist.stat || "avg"})${hist.unit ? ` [${hist.unit}]` : ""}`;
    const plot = document.createElement("div");
    plot.className = "plot";
    plot.dataset.metric = hist.metric;
    column.append(title, plot);
    container.append(column);
    // Bars at each bin's middle, so that the x axis reads in the metric's unit.
    const points = hist.data.map((bin) => ({ value: (bin.min + bin.max) / 2, count: bin.count }));
    histogram(plot, points, { xLabel: hist.unit || hist.metric, color });
  }
}
