/* The job list: row plots fetched in one batch after the table is shown; page size and metric selection saved per user. */
import { readJson, send } from "./app.js";
import { timeSeries } from "./plots.js";

const data = readJson("job-list-data", { metrics: [], ids: [] });
const PLOTS_PER_FRAME = 24;

function showNote(element, text, state) {
  element.replaceChildren();
  const note = document.createElement("div");
  note.className = "placeholder-text text-body-secondary small";
  note.textContent = text;
  element.append(note);
  element.dataset.plotted = state;
}

function plotSpec(spec) {
  return {
    ...spec,
    compact: true,
    showAxes: true,
    height: 110,
    colors: Array.isArray(data.colors) && data.colors.length ? data.colors : undefined,
    lineWidth: Number(data.lineWidth) > 0 ? Math.min(Number(data.lineWidth), 2) : undefined,
  };
}

/** Draw a few plots per animation frame, so the first rows appear before the last are done. */
function drawInFrames(jobs) {
  const elements = [...document.querySelectorAll(".job-plot[data-job][data-metric]")];
  let next = 0;
  function frame() {
    const end = Math.min(elements.length, next + PLOTS_PER_FRAME);
    for (; next < end; next++) {
      const element = elements[next];
      const row = jobs[element.dataset.job];
      const spec = row ? row[element.dataset.metric] : null;
      if (!row) showNote(element, "Not available", "empty");
      else if (!spec) showNote(element, "No data", "empty");
      else {
        timeSeries(element, plotSpec(spec));
        // Upstream's plotConfiguration_colorBackground: the cell says when the job is below its thresholds.
        if (data.colorBackground && (spec.level === "alert" || spec.level === "caution")) {
          element.classList.add(`plot-${spec.level}`);
          element.title = `${element.dataset.metric}: the job's average is in the ${spec.level} range`;
        }
      }
    }
    if (next < elements.length) requestAnimationFrame(frame);
    else {
      // When the last plot was drawn, in ms since navigation started (for benchmarks).
      document.body.dataset.plotsAt = String(Math.round(performance.now()));
      document.body.dataset.plots = "drawn";
    }
  }
  requestAnimationFrame(frame);
}

async function loadPlots() {
  const first = document.querySelector(".job-plot");
  if (!first || !data.ids.length || !data.metrics.length) {
    document.body.dataset.plots = "none";
    return;
  }
  const params = new URLSearchParams();
  for (const id of data.ids) params.append("dbId", id);
  for (const metric of data.metrics) params.append("metric", metric);
  params.set("width", String(Math.max(20, Math.min(4000, Math.floor(first.clientWidth || 240)))));
  try {
    const response = await fetch(`/monitoring/jobs/plots?${params}`, { credentials: "same-origin" });
    if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
    const body = await response.json();
    drawInFrames(body.plots || {});
  } catch (error) {
    for (const element of document.querySelectorAll(".job-plot")) showNote(element, "Plots could not be loaded", "error");
    document.body.dataset.plots = "error";
    console.warn("row plots:", error);
  }
}

async function saveSetting(key, value) {
  await send("/frontend/configuration/", { body: new URLSearchParams({ key, value: JSON.stringify(value) }) });
}

function pageSizeControl() {
  const select = document.getElementById("page-size");
  if (!select) return;
  select.addEventListener("change", async () => {
    select.disabled = true;
    try {
      await saveSetting(data.pageSizeKey, Number(select.value));
    } finally {
      // The saved size applies from page 1; a size in the URL would override it.
      const url = new URL(window.location.href);
      url.searchParams.delete("page");
      url.searchParams.delete("itemsPerPage");
      window.location.assign(url.toString());
    }
  });
}

function metricDialog() {
  const button = document.querySelector("[data-testid=save-metrics]");
  if (!button) return;
  button.addEventListener("click", async () => {
    const chosen = [...document.querySelectorAll("[data-testid=metric-choices] input:checked")].map((box) => box.value);
    const message = document.querySelector("[data-testid=metric-error]");
    button.disabled = true;
    try {
      await saveSetting(data.metricsKey, chosen);
      window.location.reload();
    } catch (error) {
      message.textContent = `Not saved: ${error.message}`;
      button.disabled = false;
    }
  });
}

/** A GET form sends only the fields that hold a value: short, upstream-style URLs. */
function compactForms() {
  for (const form of document.querySelectorAll("form[method=get][data-compact]")) {
    form.addEventListener("submit", () => {
      for (const field of form.elements) {
        if (field.name && !field.disabled && field.value === "" && field.type !== "checkbox") {
          field.disabled = true;
          field.dataset.compacted = "1";
        }
      }
    });
  }
  // Back from the next page (bfcache): the fields must be editable again.
  window.addEventListener("pageshow", () => {
    for (const field of document.querySelectorAll("[data-compacted]")) {
      field.disabled = false;
      delete field.dataset.compacted;
    }
  });
}

function autoSubmit() {
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.requestSubmit());
  }
}

pageSizeControl();
metricDialog();
autoSubmit();
compactForms();
loadPlots();
