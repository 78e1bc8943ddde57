/* The analysis page: histograms (uPlot bars), the roofline heatmap and the footprint scatter plot (canvas). */

import { readJson } from "./app.js";
import { formatValue } from "./plots.js";
import { histogram, metricHistograms } from "./lists_plots.js";

const data = readJson("analysis-plots", null);
const MARGIN = { left: 58, right: 22, top: 12, bottom: 42 };
const HEIGHT = 300;

function cssVar(name, fallback) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

/** A canvas filling `element`'s width, scaled for the screen; returns its 2d context and plot area. */
function canvasIn(element, height = HEIGHT) {
  const width = Math.max(240, Math.floor(element.clientWidth || 300));
  const ratio = window.devicePixelRatio || 1;
  const canvas = document.createElement("canvas");
  canvas.width = Math.floor(width * ratio);
  canvas.height = Math.floor(height * ratio);
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  element.replaceChildren(canvas);
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  const area = { left: MARGIN.left, top: MARGIN.top, width: width - MARGIN.left - MARGIN.right,
                 height: height - MARGIN.top - MARGIN.bottom };
  return { ctx, area, width, height };
}

/** Axes with ticks: `ticks` = [[position in px, label]] per axis; titles under and beside the area. */
function drawAxes(ctx, area, xTicks, yTicks, xTitle, yTitle) {
  const text = cssVar("--bs-body-color", "#212529");
  const grid = cssVar("--bs-border-color-translucent", "rgba(0,0,0,.12)");
  ctx.save();
  ctx.strokeStyle = grid;
  ctx.lineWidth = 1;
  ctx.fillStyle = text;
  ctx.font = "11px system-ui, sans-serif";
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (const [x, label] of xTicks) {
    ctx.beginPath(); ctx.moveTo(x, area.top); ctx.lineTo(x, area.top + area.height); ctx.stroke();
    ctx.fillText(label, x, area.top + area.height + 4);
  }
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (const [y, label] of yTicks) {
    ctx.beginPath(); ctx.moveTo(area.left, y); ctx.lineTo(area.left + area.width, y); ctx.stroke();
    ctx.fillText(label, area.left - 4, y);
  }
  ctx.strokeStyle = text;
  ctx.strokeRect(area.left, area.top, area.width, area.height);
  ctx.textAlign = "center";
  ctx.textBaseline = "bottom";
  ctx.fillText(xTitle, area.left + area.width / 2, area.top + area.height + 38);
  ctx.translate(12, area.top + area.height / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textBaseline = "middle";
  ctx.fillText(yTitle, 0, 0);
  ctx.restore();
}

/** 0.01, 0.1, 1, 10, 100, 1k, 10k: decade ticks without trailing zeros. */
function decadeLabel(value) {
  if (value >= 1e6) return `${value / 1e6}M`;
  if (value >= 1e3) return `${value / 1e3}k`;
  return String(value);
}

function decades(low, high) {
  const out = [];
  for (let exponent = Math.ceil(Math.log10(low)); exponent <= Math.floor(Math.log10(high)); exponent += 1) {
    out.push(10 ** exponent);
  }
  return out;
}

/** The roofline heatmap: tiles of node samples (log-log), and each subcluster's ceilings. */
function roofline(element, frame) {
  if (!element || !frame) return;
  const { ctx, area } = canvasIn(element);
  const lx = Math.log10(frame.minX), hx = Math.log10(frame.maxX);
  const ly = Math.log10(frame.minY), hy = Math.log10(frame.maxY);
  const px = (v) => area.left + ((Math.log10(v) - lx) / (hx - lx)) * area.width;
  const py = (v) => area.top + area.height - ((Math.log10(v) - ly) / (hy - ly)) * area.height;
  drawAxes(ctx, area, decades(frame.minX, frame.maxX).map((v) => [px(v), decadeLabel(v)]),
           decades(frame.minY, frame.maxY).map((v) => [py(v), decadeLabel(v)]),
           "Arithmetic intensity [FLOP/byte]", "Performance [GFLOP/s]");
  const tiles = frame.tiles || [];
  const largest = Math.max(0, ...tiles.map((row) => Math.max(0, ...row)));
  const tileWidth = area.width / frame.cols, tileHeight = area.height / frame.rows;
  let filled = 0;
  tiles.forEach((row, r) => row.forEach((count, c) => {
    if (!(count > 0)) return;
    filled += 1;
    const alpha = 0.15 + 0.85 * (Math.log1p(count) / Math.log1p(largest));
    ctx.fillStyle = `rgba(209, 60, 60, ${alpha.toFixed(3)})`;
    ctx.fillRect(area.left + c * tileWidth, area.top + area.height - (r + 1) * tileHeight, tileWidth + 0.5, tileHeight + 0.5);
  }));
  ctx.save();
  ctx.beginPath();
  ctx.rect(area.left, area.top, area.width, area.height);
  ctx.clip();
  ctx.strokeStyle = cssVar("--bs-body-color", "#212529");
  ctx.lineWidth = 1.5;
  for (const ceiling of frame.ceilings || []) {
    if (!(ceiling.bandwidth > 0 && ceiling.simd > 0)) continue;
    const knee = ceiling.simd / ceiling.bandwidth;
    ctx.setLineDash([]);
    ctx.beginPath();
    ctx.moveTo(px(frame.minX), py(Math.max(frame.minY, ceiling.bandwidth * frame.minX)));
    ctx.lineTo(px(knee), py(ceiling.simd));
    ctx.lineTo(px(frame.maxX), py(ceiling.simd));
    ctx.stroke();
    if (ceiling.scalar > 0) {
      ctx.setLineDash([5, 4]);
      ctx.beginPath();
      ctx.moveTo(px(ceiling.scalar / ceiling.bandwidth), py(ceiling.scalar));
      ctx.lineTo(px(frame.maxX), py(ceiling.scalar));
      ctx.stroke();
    }
  }
  ctx.restore();
  element.dataset.plotted = String(filled);
  element.dataset.tiles = String(filled);
}

/** About five round ticks (multiples of 1, 2, 2.5 or 5 times a power of ten) from 0 to `most`. */
function niceTicks(most) {
  const raw = most / 5;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((factor) => factor * magnitude).find((candidate) => candidate >= raw);
  const ticks = [];
  for (let i = 0; i * step <= most * (1 + 1e-9); i += 1) ticks.push(i * step);
  return ticks;
}

/** Fetch the heatmap (a page of its own: it reads every job's metric data) and draw it; errors are shown in place. */
async function loadRoofline(element, url) {
  if (!element || !url) return;
  element.textContent = "Loading the node samples of the matching jobs...";
  element.classList.add("text-body-secondary", "small");
  try {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
    const doc = new DOMParser().parseFromString(await response.text(), "text/html");
    const block = doc.getElementById("roofline-data");
    if (!response.ok || !block) {
      const message = doc.querySelector("[data-testid=error-message]")?.textContent;
      throw new Error(message || `${response.status} ${response.statusText}`);
    }
    element.classList.remove("text-body-secondary", "small");
    roofline(element, JSON.parse(block.textContent));
  } catch (error) {
    element.textContent = `The roofline heatmap could not be computed: ${error.message}`;
    element.dataset.plotted = "error";
  }
}

/** One circle per job: x and y the chosen footprint metrics, area by node hours. */
function scatter(element, footprints, metrics, xName, yName, color) {
  if (!element || !footprints) return;
  const column = (name) => (footprints.metrics || []).find((item) => item.metric === name)?.data || [];
  const info = (name) => metrics.find((metric) => metric.name === name) || { name, unit: "" };
  const xs = column(xName), ys = column(yName);
  const weights = footprints.timeWeights?.nodeHours || [];
  const points = [];
  xs.forEach((x, i) => {
    const y = ys[i];
    if (x === null || y === null || x === undefined || y === undefined) return;
    points.push({ x, y, weight: weights[i] || 0 });
  });
  if (!points.length) {
    element.replaceChildren();
    element.textContent = "No job has footprint values of both metrics.";
    element.dataset.plotted = "empty";
    return;
  }
  const { ctx, area } = canvasIn(element, 340);
  const top = (values) => { const most = Math.max(...values); return most > 0 ? most * 1.05 : 1; };
  const maxX = top(points.map((p) => p.x)), maxY = top(points.map((p) => p.y));
  const px = (v) => area.left + (v / maxX) * area.width;
  const py = (v) => area.top + area.height - (v / maxY) * area.height;
  const ticks = (most, position) => niceTicks(most).map((v) => [position(v), formatValue(v)]);
  const label = (name) => `${info(name).name}${info(name).unit ? ` [${info(name).unit}]` : ""}`;
  drawAxes(ctx, area, ticks(maxX, px), ticks(maxY, py), label(xName), label(yName));
  const heaviest = Math.max(...points.map((p) => p.weight), 1e-9);
  const rgb = /^#[0-9a-f]{6}$/i.test(color || "") ? color : "#3a6fd8";
  ctx.save();
  ctx.fillStyle = `${rgb}55`;
  ctx.strokeStyle = rgb;
  // Heavy jobs first, so that small circles stay visible on top.
  points.sort((a, b) => b.weight - a.weight);
  for (const point of points) {
    const radius = 2.5 + 12 * Math.sqrt(Math.max(0, point.weight) / heaviest);
    ctx.beginPath();
    ctx.arc(px(point.x), py(point.y), radius, 0, 2 * Math.PI);
    ctx.fill();
    ctx.stroke();
  }
  ctx.restore();
  hoverValues(element, points.map((p) => ({ ...p, px: px(p.x), py: py(p.y) })), label(xName), label(yName));
  element.dataset.plotted = String(points.length);
  element.dataset.points = String(points.length);
}

/** The values of the circle under the mouse, in a small box beside it. */
function hoverValues(element, points, xLabel, yLabel) {
  const canvas = element.querySelector("canvas");
  const box = document.createElement("div");
  box.className = "scatter-tip small bg-body border rounded shadow-sm px-2 py-1";
  box.style.cssText = "position:absolute; pointer-events:none; display:none; white-space:nowrap";
  element.append(box);
  canvas.addEventListener("mousemove", (event) => {
    const bounds = canvas.getBoundingClientRect();
    const mx = event.clientX - bounds.left, my = event.clientY - bounds.top;
    let best = null, bestDistance = 15 * 15;
    for (const point of points) {
      const distance = (point.px - mx) ** 2 + (point.py - my) ** 2;
      if (distance < bestDistance) { best = point; bestDistance = distance; }
    }
    if (!best) { box.style.display = "none"; return; }
    box.textContent = `${xLabel}: ${formatValue(best.x)} · ${yLabel}: ${formatValue(best.y)} · `
      + `${formatValue(best.weight / 60)} node hours`;
    box.style.left = `${Math.min(best.px + 12, bounds.width - 260)}px`;
    box.style.top = `${Math.max(0, best.py - 30)}px`;
    box.style.display = "block";
  });
  canvas.addEventListener("mouseleave", () => { box.style.display = "none"; });
}

function main() {
  if (!data) return;
  const color = (data.colors || [])[0];
  histogram(document.getElementById("hist-duration"), data.histDuration, { xLabel: "Duration", duration: true, color });
  histogram(document.getElementById("hist-nodes"), data.histNumNodes, { xLabel: "Nodes", color });
  histogram(document.getElementById("hist-cores"), data.histNumCores, { xLabel: "Hardware threads", color });
  histogram(document.getElementById("hist-accs"), data.histNumAccs, { xLabel: "Accelerators", color });
  metricHistograms(document.getElementById("metric-histograms"), data.histMetrics, color);
  loadRoofline(document.getElementById("roofline"), data.roofline);
  const scatterElement = document.getElementById("scatter");
  const xSelect = document.getElementById("scatter-x"), ySelect = document.getElementById("scatter-y");
  const drawScatter = () => scatter(scatterElement, data.footprints, data.metrics || [],
                                    xSelect?.value || data.x, ySelect?.value || data.y, color);
  drawScatter();
  for (const select of [xSelect, ySelect]) {
    select?.addEventListener("change", () => {
      drawScatter();
      const url = new URL(window.location.href);
      url.searchParams.set(select.name, select.value);
      window.history.replaceState(null, "", url);
    });
  }
}

main();
