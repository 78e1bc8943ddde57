/* Behaviour shared by every page: local times, JSON data blocks, CSRF headers, confirmations. */

/** The parsed JSON of a <script type="application/json" id="..."> block, or `fallback`. */
export function readJson(id, fallback = null) {
  const element = document.getElementById(id);
  if (!element) return fallback;
  try {
    return JSON.parse(element.textContent);
  } catch (error) {
    console.warn(`data block #${id} is not JSON`, error);
    return fallback;
  }
}

/** This session's CSRF token for requests that change state. */
export function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.content || "";
}

/** fetch() for state changes: same origin, with the CSRF token; rejects with the server's message. */
export async function send(url, { method = "POST", body = null, json = null } = {}) {
  const headers = { "X-CSRF-Token": csrfToken() };
  if (json !== null) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  const response = await fetch(url, { method, body, headers, credentials: "same-origin" });
  const text = await response.text();
  if (!response.ok) {
    let message = text;
    try { message = JSON.parse(text).error || text; } catch (_) { /* plain text */ }
    throw new Error(message || `${response.status} ${response.statusText}`);
  }
  return text;
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

/** Show every <time data-epoch> in the browser's time zone; the UTC text stays in the title. */
export function localizeTimes(root = document) {
  for (const element of root.querySelectorAll("time[data-epoch]")) {
    const epoch = Number(element.dataset.epoch);
    if (!Number.isFinite(epoch) || element.dataset.localized) continue;
    element.textContent = dateFormat.format(new Date(epoch * 1000));
    element.dataset.localized = "1";
  }
}

/** Forms and buttons with data-confirm="question?" ask before they submit. */
function confirmations() {
  document.addEventListener("submit", (event) => {
    const question = event.target.dataset?.confirm;
    if (question && !window.confirm(question)) event.preventDefault();
  });
}

localizeTimes();
confirmations();
