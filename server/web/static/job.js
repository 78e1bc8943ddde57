/* The job view: the metric plot grid (scope switch, zoom with finer data), polar plot, roofline, metric selection. */
import { readJson, send } from "./app.js";
import { timeSeries } from "./plots.js";
import { polarPlot, rooflinePlot } from "./job-plots.js";

const started = performance.now();
const data = readJson("job-data", {});
const plotted = new Map(); // metric -> { element, spec, plot }

function specOf(plot) {
  return {
    timestep: plot.timestep,
    series: plot.series,
    band: plot.band,
    unit: plot.unit,
    thresholds: plot.thresholds,
    colors: data.colors || undefined,
    lineWidth: data.lineWidth || undefined,
  };
}

async function fetchPlot(metric, scope, resolution) {
  const params = new URLSearchParams({ metric, scope });
  if (resolution !== undefined && resolution !== null) params.set("resolution", String(resolution));
  const response = await fetch(`${data.dataUrl}?${params}`, { credentials: "same-origin" });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

function panelOf(element) {
  return element.closest(".metric-panel");
}

function busy(element, on) {
  panelOf(element)?.querySelector(".spinner-border")?.classList.toggle("d-none", !on);
}

function showError(element, message) {
  const target = panelOf(element)?.querySelector(".plot-error");
  if (target) target.textContent = message || "";
}

/** Draw one plot; after a zoom into data that was thinned out, load the window's finer samples. */
function draw(element, plot, zoom = null) {
  const spec = specOf(plot);
  const chart = timeSeries(element, spec);
  if (!chart) return;
  const entry = { element, plot, chart };
  plotted.set(plot.metric, entry);
  if (zoom) chart.setScale("x", zoom);
  // after the first draw (and the zoom above), so only the user's zooms load finer data
  chart.hooks.setScale = [...(chart.hooks.setScale || []), (u, key) => {
    if (key !== "x" || u.scales.x.min === null || u.scales.x.max === null) return;
    const xs = u.data[0];
    // a live refresh would undo the user's zoom: a zoomed plot is left alone
    entry.zoomed = u.scales.x.min > xs[0] || u.scales.x.max < xs[xs.length - 1];
    refine(entry, u.scales.x.min, u.scales.x.max);
  }];
}

function refine(entry, min, max) {
  const { plot, element } = entry;
  const native = plot.nativeTimestep || 0;
  if (!native || plot.timestep <= native) return; // already at full resolution
  if ((max - min) / plot.timestep >= (data.refineBelow || 100)) return; // enough samples in view
  const wanted = Math.max(native, Math.floor((max - min) / (data.plotPoints || 600)));
  if (wanted >= plot.timestep) return;
  const scope = plot.scope;
  busy(element, true);
  fetchPlot(plot.metric, scope, wanted <= native ? 0 : wanted)
    .then((finer) => { showError(element, ""); draw(element, finer, { min, max }); })
    .catch((error) => showError(element, `Could not load finer data: ${error.message}`))
    .finally(() => busy(element, false));
}

function switchScope(select) {
  const metric = select.dataset.metric;
  const entry = plotted.get(metric);
  if (!entry) return;
  const { element } = entry;
  busy(element, true);
  select.disabled = true;
  fetchPlot(metric, select.value)
    .then((plot) => { showError(element, ""); draw(element, plot); })
    .catch((error) => showError(element, `Could not load ${metric} per ${select.value}: ${error.message}`))
    .finally(() => { busy(element, false); select.disabled = false; });
}

function drawGrid() {
  const byMetric = new Map((data.plots || []).map((plot) => [plot.metric, plot]));
  for (const element of document.querySelectorAll(".metric-plot[data-metric]")) {
    const plot = byMetric.get(element.dataset.metric);
    if (plot) draw(element, plot);
  }
  for (const select of document.querySelectorAll(".scope-select")) {
    select.addEventListener("change", () => switchScope(select));
  }
}

/** Metric selections (plots, statistics table) are the user's settings under upstream's keys. */
function metricSelections() {
  for (const form of document.querySelectorAll("form.metric-selection[data-setting-key]")) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const chosen = [...form.querySelectorAll("input[name=metric]:checked")].map((input) => input.value);
      const error = form.querySelector(".selection-error");
      try {
        await send("/frontend/configuration/", {
          body: new URLSearchParams({ key: form.dataset.settingKey, value: JSON.stringify(chosen) }),
        });
        window.location.reload();
      } catch (failure) {
        error.textContent = `Not saved: ${failure.message}`;
      }
    });
  }
}

/** The statistics table sorts by host or by one metric's min/avg/max; a second click reverses. */
function sortableStatistics() {
  const table = document.querySelector("[data-testid=statistics]");
  if (!table) return;
  const body = table.tBodies[0];
  let current = null;
  let descending = false;
  for (const button of table.querySelectorAll(".sort-button")) {
    button.addEventListener("click", () => {
      const key = `${button.dataset.sort}:${button.dataset.stat || ""}`;
      descending = current === key ? !descending : button.dataset.sort !== "host";
      current = key;
      const valueOf = (row) => {
        if (button.dataset.sort === "host") return row.dataset.host;
        const cell = row.querySelector(`td[data-metric="${CSS.escape(button.dataset.sort)}"][data-stat="${button.dataset.stat}"]`);
        return cell ? Number(cell.dataset.value) : -Infinity;
      };
      const rows = [...body.rows].sort((a, b) => {
        const x = valueOf(a);
        const y = valueOf(b);
        const order = typeof x === "string" ? x.localeCompare(y) : x - y;
        return descending ? -order : order;
      });
      body.append(...rows);
      for (const th of table.querySelectorAll("th[aria-sort]")) th.removeAttribute("aria-sort");
      button.closest("th").setAttribute("aria-sort", descending ? "descending" : "ascending");
    });
  }
}

/** A running job's plots grow: reload each (at its scope) every refreshSeconds, unless the user zoomed in. */
function refreshWhileRunning() {
  if (!data.job?.running || !data.refreshSeconds) return;
  setInterval(() => {
    for (const [metric, entry] of plotted) {
      if (entry.zoomed) continue;
      fetchPlot(metric, entry.plot.scope)
        .then((plot) => { showError(entry.element, ""); draw(entry.element, plot); })
        .catch((error) => showError(entry.element, `Could not refresh ${metric}: ${error.message}`));
    }
  }, data.refreshSeconds * 1000);
}

drawGrid();
refreshWhileRunning();
sortableStatistics();
// how long the grid took to draw, for the performance test (goal: under a second for 16 nodes x 10 metrics)
document.documentElement.dataset.plotsDrawnMs = String(Math.round(performance.now() - started));
metricSelections();
const polar = document.getElementById("polar-plot");
if (polar && data.polar) polarPlot(polar, data.polar);
const roofline = document.getElementById("roofline-plot");
if (roofline && data.roofline) rooflinePlot(roofline, data.roofline);
