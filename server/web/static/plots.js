/* uPlot wrappers shared by the pages: time series (one line per series, or a min/median/max band) and bars. */

/** Upstream's default colour scheme (ui.plot-configuration.color-scheme). */
export const DEFAULT_COLORS = ["#00bfff", "#0000ff", "#ff00ff", "#ff0000", "#ff8000", "#ffff00", "#80ff00"];

const cssVar = (name, fallback) =>
  getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;

const pad = (n) => String(n).padStart(2, "0");

/** "01:23" / "1d 02:03" (or "01:23:45" with seconds) for a number of seconds since the job's start. */
export function formatElapsed(seconds, withSeconds = false) {
  const s = Math.max(0, Math.round(seconds));
  const days = Math.floor(s / 86400);
  const clock = `${pad(Math.floor((s % 86400) / 3600))}:${pad(Math.floor((s % 3600) / 60))}` +
    (withSeconds ? `:${pad(s % 60)}` : "");
  return days ? `${days}d ${clock}` : clock;
}

/** Axis labels of elapsed time: with seconds when ticks are less than a minute apart (short jobs, zoom). */
export function elapsedTicks(ticks) {
  const fine = ticks.length > 1 && ticks[1] - ticks[0] < 60;
  return ticks.map((t) => formatElapsed(t, fine));
}

/** Numbers on axes and legends with SI prefixes. */
export function formatValue(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "-";
  const magnitude = Math.abs(value);
  for (const [factor, prefix] of [[1e15, "P"], [1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]]) {
    if (magnitude >= factor) return `${(value / factor).toFixed(2)}${prefix}`;
  }
  return Number.isInteger(value) ? String(value) : value.toFixed(2);
}

function noData(element, text = "No data") {
  element.replaceChildren();
  const note = document.createElement("div");
  note.className = "placeholder-text text-body-secondary small";
  note.textContent = text;
  element.append(note);
  element.dataset.plotted = "empty";
}

function axisStyle() {
  const text = cssVar("--bs-body-color", "#212529");
  const grid = cssVar("--bs-border-color-translucent", "rgba(0,0,0,.1)");
  return { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
}

function widthOf(element) {
  return Math.max(120, Math.floor(element.clientWidth || element.parentElement?.clientWidth || 300));
}

/** Redraw at the new width when the element is resized. */
function followWidth(element, plot) {
  if (!window.ResizeObserver) return;
  let last = widthOf(element);
  new ResizeObserver(() => {
    const width = widthOf(element);
    if (Math.abs(width - last) > 2) {
      last = width;
      plot.setSize({ width, height: plot.height });
    }
  }).observe(element);
}

/**
 * A time series plot.
 * spec = { timestep (s), series: [{label, data: [numbers|null]}], unit, height, compact,
 *          band: {min: [...], median: [...], max: [...]} (instead of series, for many nodes),
 *          thresholds: {peak, normal, caution, alert}, colors: [...], lineWidth }
 */
export function timeSeries(element, spec) {
  if (!window.uPlot) return noData(element, "Plot library not installed");
  const timestep = spec.timestep || 60;
  const lines = spec.band
    ? [{ label: "min", data: spec.band.min }, { label: "median", data: spec.band.median }, { label: "max", data: spec.band.max }]
    : (spec.series || []);
  const length = Math.max(0, ...lines.map((line) => (line.data || []).length));
  if (!length) return noData(element);
  const x = Array.from({ length }, (_, i) => i * timestep);
  const colors = spec.colors || DEFAULT_COLORS;
  const lineWidth = spec.lineWidth || (spec.compact ? 1 : 1.5);
  const series = [{ label: "Time", value: (_, v) => (v === null ? "-" : formatElapsed(v, true)) }];
  lines.forEach((line, i) => {
    const band = spec.band && { min: "#d14b4b", median: "#2d8a4e", max: "#3a6fd8" }[line.label];
    series.push({
      label: line.label,
      stroke: band || colors[i % colors.length],
      width: lineWidth,
      spanGaps: false,
      points: { show: false },
      value: (_, v) => formatValue(v) + (spec.unit ? ` ${spec.unit}` : ""),
    });
  });
  const data = [x, ...lines.map((line) => (line.data || []).map((v) => (v === null || Number.isNaN(v) ? null : v)))];
  const axes = [
    { ...axisStyle(), values: (_, ticks) => elapsedTicks(ticks), show: !spec.compact || spec.showAxes },
    { ...axisStyle(), values: (_, ticks) => ticks.map(formatValue), size: 50, show: !spec.compact || spec.showAxes,
      label: spec.compact ? undefined : spec.unit },
  ];
  const bands = spec.band ? [{ series: [3, 1], fill: "rgba(58,111,216,.12)" }] : [];
  const thresholds = spec.thresholds;
  const opts = {
    width: widthOf(element),
    height: spec.height || (spec.compact ? 90 : 220),
    legend: { show: !spec.compact },
    cursor: { drag: { x: !spec.compact, y: false } },
    scales: { x: { time: false }, y: { range: (_, lo, hi) => [Math.min(0, lo ?? 0), Math.max(hi ?? 1, thresholds?.peak ? 0 : 1) * 1.05] } },
    series,
    axes,
    bands,
    hooks: thresholds?.peak ? { draw: [(u) => drawThreshold(u, thresholds.peak, "rgba(209,75,75,.6)")] } : {},
  };
  element.replaceChildren();
  const plot = new window.uPlot(opts, data, element);
  element.dataset.plotted = String(lines.length);
  followWidth(element, plot);
  return plot;
}

function drawThreshold(u, value, color) {
  const y = u.valToPos(value, "y", true);
  if (!Number.isFinite(y) || y < u.bbox.top || y > u.bbox.top + u.bbox.height) return;
  const ctx = u.ctx;
  ctx.save();
  ctx.strokeStyle = color;
  ctx.setLineDash([6, 4]);
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(u.bbox.left, y);
  ctx.lineTo(u.bbox.left + u.bbox.width, y);
  ctx.stroke();
  ctx.restore();
}

/** A bar chart (histograms): spec = { x: [...], y: [...], xLabel, yLabel, height, color, formatX } */
export function bars(element, spec) {
  if (!window.uPlot) return noData(element, "Plot library not installed");
  if (!spec.x || !spec.x.length) return noData(element);
  const color = spec.color || "#3a6fd8";
  const formatX = spec.formatX || formatValue;
  const opts = {
    width: widthOf(element),
    height: spec.height || 220,
    legend: { show: false },
    scales: { x: { time: false }, y: { range: (_, lo, hi) => [0, Math.max(1, hi) * 1.05] } },
    series: [{}, { label: spec.yLabel || "count", stroke: color, fill: color + "99",
                   paths: window.uPlot.paths.bars({ size: [0.8, 64] }), points: { show: false } }],
    axes: [
      { ...axisStyle(), label: spec.xLabel, values: (_, ticks) => ticks.map(formatX) },
      { ...axisStyle(), label: spec.yLabel, values: (_, ticks) => ticks.map(formatValue), size: 50 },
    ],
  };
  element.replaceChildren();
  const plot = new window.uPlot(opts, [spec.x, spec.y], element);
  element.dataset.plotted = "1";
  followWidth(element, plot);
  return plot;
}
