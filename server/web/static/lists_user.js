/* The user page: histograms of the user's jobs from the #user-plots data block. */

import { readJson } from "./app.js";
import { histogram, metricHistograms } from "./lists_plots.js";

const data = readJson("user-plots", {});
const color = (data.colors || [])[0];
histogram(document.getElementById("hist-duration"), data.histDuration, { xLabel: "Duration", duration: true, color });
histogram(document.getElementById("hist-nodes"), data.histNumNodes, { xLabel: "Nodes", color });
metricHistograms(document.getElementById("metric-histograms"), data.histMetrics, color);
