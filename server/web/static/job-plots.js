/* The job view's own canvas plots: the footprint polar plot and the job roofline (log-log). */
import { formatValue } from "./plots.js";

const css = (name, fallback) => getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;

/** A canvas sized for the screen's pixel ratio; drawing uses CSS pixels. */
function prepare(canvas, height) {
  const width = Math.max(200, Math.floor(canvas.parentElement?.clientWidth || canvas.clientWidth || 300));
  const ratio = window.devicePixelRatio || 1;
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.font = `12px ${css("--bs-body-font-family", "sans-serif")}`;
  return { ctx, width, height };
}

/** Colour of a point at share t (0 start .. 1 end) of the job: blue over green to red. */
export function timeColor(t) {
  return `hsl(${Math.round(240 * (1 - Math.min(1, Math.max(0, t))))}, 85%, 48%)`;
}

/**
 * Polar plot: spec = { metrics: [names], avg: [share of peak], max: [share of peak], units, peaks }.
 * One axis per metric; the outer ring is the peak (values above it reach beyond).
 */
export function polarPlot(canvas, spec) {
  const { ctx, width, height } = prepare(canvas, Number(canvas.getAttribute("height")) || 280);
  const text = css("--bs-body-color", "#212529");
  const grid = css("--bs-border-color", "#dee2e6");
  const count = spec.metrics.length;
  const cx = width / 2;
  const cy = height / 2 + 10;
  const angle = (i) => -Math.PI / 2 + (2 * Math.PI * i) / count;
  const labels = spec.metrics.map(labelLines);
  // the largest radius that leaves room beside the circle for each axis' label
  let radius = Math.min(width / 2, height / 2 - 34);
  labels.forEach((lines, i) => {
    const across = Math.abs(Math.cos(angle(i)));
    const needed = Math.max(...lines.map((line) => ctx.measureText(line).width)) + 8;
    if (across > 0.2) radius = Math.min(radius, (width / 2 - needed) / across / 1.12);
  });
  radius = Math.max(30, radius);
  const top = Math.max(1, ...spec.max, ...spec.avg);
  const at = (i, share) => [cx + Math.cos(angle(i)) * radius * (share / top), cy + Math.sin(angle(i)) * radius * (share / top)];
  ctx.strokeStyle = grid;
  ctx.lineWidth = 1;
  for (const ring of [0.25, 0.5, 0.75, 1]) {
    ctx.beginPath();
    for (let i = 0; i <= count; i++) {
      const [x, y] = at(i % count, ring);
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    }
    ctx.stroke();
  }
  ctx.fillStyle = text;
  ctx.textBaseline = "middle";
  for (let i = 0; i < count; i++) {
    const [x, y] = at(i, top);
    ctx.beginPath();
    ctx.moveTo(cx, cy);
    ctx.lineTo(x, y);
    ctx.stroke();
    const [lx, ly] = at(i, top * 1.12);
    ctx.textAlign = Math.abs(lx - cx) < 4 ? "center" : lx > cx ? "left" : "right";
    const lines = labels[i];
    lines.forEach((line, n) => ctx.fillText(line, lx, ly + (n - (lines.length - 1) / 2) * 13));
  }
  const shapes = [
    { values: spec.max, stroke: "rgb(40, 60, 200)", fill: "rgba(40, 60, 200, .15)", label: "max" },
    { values: spec.avg, stroke: "rgb(220, 170, 0)", fill: "rgba(255, 210, 0, .35)", label: "avg" },
  ];
  for (const shape of shapes) {
    ctx.beginPath();
    shape.values.forEach((value, i) => {
      const [x, y] = at(i, Math.max(0, value));
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.closePath();
    ctx.fillStyle = shape.fill;
    ctx.fill();
    ctx.strokeStyle = shape.stroke;
    ctx.lineWidth = 2;
    ctx.stroke();
  }
  // legend, top left
  ctx.textAlign = "left";
  shapes.forEach((shape, i) => {
    const x = 4 + i * 60;
    ctx.fillStyle = shape.fill;
    ctx.strokeStyle = shape.stroke;
    ctx.fillRect(x, 4, 18, 10);
    ctx.strokeRect(x, 4, 18, 10);
    ctx.fillStyle = text;
    ctx.fillText(shape.label, x + 22, 9);
  });
  canvas.title = spec.metrics.map((name, i) =>
    `${name}: avg ${Math.round(spec.avg[i] * 100)} %, max ${Math.round(spec.max[i] * 100)} % of peak ${formatValue(spec.peaks[i])} ${spec.units[i]}`).join("\n");
  canvas.dataset.plotted = String(count);
}

/** 10^d as an axis label: 0.01, 0.1, 1, 10, 100, 1k, 10k, 1M... */
function decadeLabel(d) {
  if (d < 0) return (10 ** d).toFixed(-d);
  const prefixes = ["", "k", "M", "G", "T", "P"];
  const group = Math.min(prefixes.length - 1, Math.floor(d / 3));
  return `${10 ** (d - 3 * group)}${prefixes[group]}`;
}

/** A metric name on one line, or two split at an underscore when it is long (acc_mem / used). */
function labelLines(name) {
  const cut = name.indexOf("_", 3);
  return name.length > 9 && cut > 0 ? [name.slice(0, cut), name.slice(cut + 1)] : [name];
}

function decades(lo, hi) {
  return [Math.floor(Math.log10(lo)), Math.ceil(Math.log10(hi))];
}

/**
 * Roofline: spec = { x: [FLOP/byte], y: [GFLOP/s], t: [0..1], ceilings: { scalar, simd, bandwidth } (GFLOP/s, GB/s) }.
 */
export function rooflinePlot(canvas, spec) {
  const { ctx, width, height } = prepare(canvas, Number(canvas.getAttribute("height")) || 320);
  const text = css("--bs-body-color", "#212529");
  const grid = css("--bs-border-color", "#dee2e6");
  const { scalar, simd, bandwidth } = spec.ceilings;
  const peak = Math.max(simd || 0, scalar || 0, 1);
  const [x0, x1] = decades(Math.min(0.01, ...spec.x.filter((v) => v > 0)), Math.max(1000, ...spec.x));
  const [y0, y1] = decades(Math.min(1, ...spec.y.filter((v) => v > 0)), Math.max(peak * 2, ...spec.y));
  const box = { left: 50, right: width - 22, top: 26, bottom: height - 40 };
  const px = (v) => box.left + ((Math.log10(v) - x0) / (x1 - x0)) * (box.right - box.left);
  const py = (v) => box.bottom - ((Math.log10(v) - y0) / (y1 - y0)) * (box.bottom - box.top);

  ctx.strokeStyle = grid;
  ctx.fillStyle = text;
  ctx.lineWidth = 1;
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (let d = x0; d <= x1; d++) {
    const x = px(10 ** d);
    ctx.beginPath(); ctx.moveTo(x, box.top); ctx.lineTo(x, box.bottom); ctx.stroke();
    ctx.fillText(decadeLabel(d), x, box.bottom + 4);
  }
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (let d = y0; d <= y1; d++) {
    const y = py(10 ** d);
    ctx.beginPath(); ctx.moveTo(box.left, y); ctx.lineTo(box.right, y); ctx.stroke();
    ctx.fillText(decadeLabel(d), box.left - 4, y);
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "bottom";
  ctx.fillText("Arithmetic intensity [FLOP/byte]", (box.left + box.right) / 2, height - 2);
  ctx.save();
  ctx.translate(12, (box.top + box.bottom) / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textBaseline = "middle";
  ctx.fillText("Performance [GFLOP/s]", 0, 0);
  ctx.restore();

  // ceilings: memory bandwidth up to each flop rate, then flat
  ctx.save();
  ctx.beginPath();
  ctx.rect(box.left, box.top, box.right - box.left, box.bottom - box.top);
  ctx.clip();
  ctx.strokeStyle = text;
  ctx.lineWidth = 2;
  for (const rate of [simd, scalar]) {
    if (!rate || !bandwidth) continue;
    const knee = rate / bandwidth;
    const start = 10 ** x0;
    ctx.beginPath();
    ctx.moveTo(px(start), py(Math.max(10 ** y0 / 10, bandwidth * start)));
    ctx.lineTo(px(knee), py(rate));
    ctx.lineTo(px(10 ** x1), py(rate));
    ctx.stroke();
  }
  for (let i = 0; i < spec.x.length; i++) {
    if (!(spec.x[i] > 0 && spec.y[i] > 0)) continue;
    ctx.fillStyle = timeColor(spec.t[i]);
    ctx.beginPath();
    ctx.arc(px(spec.x[i]), py(spec.y[i]), 2.5, 0, 2 * Math.PI);
    ctx.fill();
  }
  ctx.restore();

  // legend: start -> end
  const legendX = box.right - 150;
  ctx.textBaseline = "middle";
  ctx.textAlign = "right";
  ctx.fillStyle = text;
  ctx.fillText("Start", legendX - 4, 12);
  for (let i = 0; i < 100; i++) {
    ctx.fillStyle = timeColor(i / 99);
    ctx.fillRect(legendX + i, 7, 1.2, 10);
  }
  ctx.textAlign = "left";
  ctx.fillStyle = text;
  ctx.fillText("End", legendX + 104, 12);
  canvas.dataset.plotted = String(spec.x.length);
}
