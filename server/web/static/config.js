/* The settings page: saves settings through /frontend/configuration/, administers users and the notice through /config/. */
import { readJson, send } from "./app.js";
import { timeSeries } from "./plots.js";

/** Show `text` in the status line `id`: green for success, red for a refusal (the server's message names the field). */
function say(id, text, ok = true) {
  const element = document.getElementById(id);
  if (!element) return;
  element.className = `small mt-2 ${ok ? "text-success" : "text-danger"}`;
  element.replaceChildren();
  const icon = document.createElement("i");
  icon.className = `bi ${ok ? "bi-check-circle" : "bi-exclamation-triangle"} me-1`;
  element.append(icon, document.createTextNode(text));
}

/** Empty the status line `id` while a request is under way (the outcome replaces it). */
function pending(id) {
  const element = document.getElementById(id);
  if (!element) return;
  element.className = "small mt-2 text-body-secondary";
  element.textContent = "Saving…";
}

/** Run `action` for a form's submission with its buttons disabled; its outcome goes to the status line. */
async function submitting(form, statusId, action) {
  const buttons = form.querySelectorAll("button");
  buttons.forEach((b) => { b.disabled = true; });
  pending(statusId);
  try {
    say(statusId, await action());
  } catch (error) {
    say(statusId, error.message, false);
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

const formBody = (fields) => new URLSearchParams(fields);

// ------------------------------------------------------------------ the viewer's own settings

/** The JSON text of a setting form's value, as upstream's frontend stores it. */
function settingValue(form) {
  const field = new FormData(form).get("value");
  if (field === null) throw new Error("value: choose one of the options");
  switch (form.dataset.type) {
    case "int": {
      const number = Number(field);
      if (field === "" || !Number.isInteger(number)) throw new Error("value: enter a whole number");
      return JSON.stringify(number);
    }
    case "bool": return JSON.stringify(field === "true");
    default: return String(field); // already JSON text (the colour scheme's radio values)
  }
}

for (const form of document.querySelectorAll("form.js-setting")) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = form.dataset.key;
    submitting(form, `status-${key}`, async () => {
      await send("/frontend/configuration/", { body: formBody({ key, value: settingValue(form) }) });
      return "Saved.";
    });
  });
}

/** A small plot of made-up series in the checked colours and the entered line width, redrawn on every change. */
function preview() {
  const container = document.getElementById("scheme-preview");
  if (!container) return;
  const checked = document.querySelector("form[data-key=plotConfiguration_colorScheme] input[name=value]:checked");
  let colors;
  try { colors = JSON.parse(checked?.value || "null"); } catch (_) { colors = null; }
  const width = Number(document.getElementById("plotConfiguration_lineWidth")?.value) || 1;
  const count = Math.min(8, Array.isArray(colors) && colors.length ? colors.length : 7);
  const series = Array.from({ length: count }, (_, k) => ({
    label: `node ${k + 1}`,
    data: Array.from({ length: 90 }, (_, i) => 50 + 30 * Math.sin((i + 9 * k) / 11) + 4 * k),
  }));
  // A fresh host per drawing: the previous plot's resize observer stays with the detached one.
  const host = document.createElement("div");
  host.className = "plot";
  container.replaceChildren(host);
  timeSeries(host, { timestep: 60, series, colors: colors || undefined, lineWidth: Math.min(5, Math.max(1, width)),
    unit: "%", height: 180, compact: true, showAxes: true });
}

preview();
document.querySelector("form[data-key=plotConfiguration_colorScheme]")?.addEventListener("change", preview);
document.getElementById("plotConfiguration_lineWidth")?.addEventListener("input", preview);

// ------------------------------------------------------------------ API tokens

async function fetchToken(username) {
  const response = await fetch(`/frontend/jwt/?username=${encodeURIComponent(username)}`, { credentials: "same-origin" });
  const text = await response.text();
  if (!response.ok) {
    let message = text;
    try { message = JSON.parse(text).error || text; } catch (_) { /* plain text */ }
    throw new Error(message || `${response.status} ${response.statusText}`);
  }
  return text.trim();
}

const ownButton = document.getElementById("own-token-button");
ownButton?.addEventListener("click", async () => {
  ownButton.disabled = true;
  pending("status-own-token");
  try {
    document.getElementById("own-token-text").value = await fetchToken(ownButton.dataset.username);
    document.getElementById("own-token-field").hidden = false;
    say("status-own-token", "Token generated.");
  } catch (error) {
    say("status-own-token", error.message, false);
  } finally {
    ownButton.disabled = false;
  }
});

for (const button of document.querySelectorAll(".js-copy")) {
  button.addEventListener("click", async () => {
    const field = document.getElementById(button.dataset.copy);
    const statusId = button.dataset.copy === "own-token-text" ? "status-own-token" : "status-user-token";
    try {
      await navigator.clipboard.writeText(field.value);
      say(statusId, "Copied to the clipboard.");
    } catch (_) {
      field.select(); // no clipboard permission (plain http): leave it selected for Ctrl+C
      say(statusId, "Selected: press Ctrl+C to copy.");
    }
  });
}

// ------------------------------------------------------------------ administration (admins only)

const usersTable = document.getElementById("users-table");
const authSources = readJson("auth-sources", {});
let users = readJson("users-data", []);

function cell(row, text, className = "") {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.append(td);
  return td;
}

/** A compact icon button; `label` is its accessible name and tooltip. */
function actionButton(action, label, icon, className, handler) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = `btn btn-sm ${className} ms-1`;
  button.dataset.action = action;
  button.title = label;
  button.setAttribute("aria-label", label);
  const i = document.createElement("i");
  i.className = `bi ${icon}`;
  button.append(i);
  button.addEventListener("click", handler);
  return button;
}

function renderUsers() {
  if (!usersTable) return;
  const onlySpecial = document.getElementById("only-special")?.checked;
  const rows = users
    .filter((user) => !onlySpecial || user.roles.some((role) => role !== "user"))
    .map((user) => {
      const row = document.createElement("tr");
      row.dataset.username = user.username;
      const name = document.createElement("th");
      name.scope = "row";
      name.textContent = user.username;
      row.append(name);
      cell(row, user.name || "");
      cell(row, user.email || "");
      cell(row, user.roles.join(", "), "font-monospace small");
      cell(row, user.projects.join(", "), "font-monospace small");
      cell(row, authSources[user.authSource] || String(user.authSource), "small");
      const actions = cell(row, "", "text-nowrap text-end");
      actions.append(
        actionButton("token", `API token for ${user.username}`, "bi-key", "btn-outline-success",
          () => showUserToken(user.username)),
        actionButton("delete", `Delete ${user.username}`, "bi-trash", "btn-outline-danger",
          () => deleteUser(user.username)),
      );
      return row;
    });
  usersTable.tBodies[0].replaceChildren(...rows);
  const names = document.getElementById("usernames");
  names?.replaceChildren(...users.map((user) => Object.assign(document.createElement("option"), { value: user.username })));
}

async function reloadUsers() {
  const response = await fetch("/config/users/", { credentials: "same-origin" });
  if (!response.ok) throw new Error(`reloading the users failed: ${response.status} ${response.statusText}`);
  users = await response.json();
  renderUsers();
}

async function showUserToken(username) {
  const box = document.getElementById("user-token");
  pending("status-user-token");
  try {
    document.getElementById("user-token-text").value = await fetchToken(username);
    document.getElementById("user-token-name").textContent = username;
    box.hidden = false;
    say("status-user-token", `Token for ${username} generated.`);
    box.scrollIntoView({ block: "nearest" });
  } catch (error) {
    say("status-users", error.message, false);
  }
}

async function deleteUser(username) {
  if (!window.confirm(`Delete the user ${username}? Their sessions end at once.`)) return;
  pending("status-users");
  try {
    await send("/config/users/", { method: "DELETE", body: formBody({ username }) });
    await reloadUsers();
    say("status-users", `User ${username} deleted.`);
  } catch (error) {
    say("status-users", error.message, false);
  }
}

if (usersTable) {
  renderUsers();
  document.getElementById("only-special")?.addEventListener("change", renderUsers);

  const create = document.getElementById("create-user");
  create.addEventListener("submit", (event) => {
    event.preventDefault();
    submitting(create, "status-create-user", async () => {
      const fields = Object.fromEntries(new FormData(create));
      const answer = await send("/config/users/", { body: formBody(fields) });
      create.reset();
      await reloadUsers();
      return answer.trim();
    });
  });

  // Roles and projects: the clicked button (Add / Remove) names the change, as upstream's fields do.
  for (const [formId, valueField] of [["user-roles", "role"], ["user-projects", "project"]]) {
    const form = document.getElementById(formId);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const op = event.submitter?.value || `add-${valueField}`;
      const data = new FormData(form);
      const username = String(data.get("username") || "").trim();
      submitting(form, `status-${formId}`, async () => {
        if (!username) throw new Error("username: enter the user to change");
        const answer = JSON.parse(await send(`/config/user/${encodeURIComponent(username)}`,
          { body: formBody({ [op]: String(data.get(valueField) || "") }) }));
        await reloadUsers();
        return `${username}: ${answer.msg}`;
      });
    });
  }

  // Taggers: a run goes on in the server; its row shows "running" until /config/taggers/ says it ended.
  const taggers = document.getElementById("taggers");
  const showTagger = (row, running, text) => {
    row.querySelector(".js-run-tagger").disabled = running;
    const state = row.querySelector(".js-tagger-state");
    state.replaceChildren();
    if (running) {
      const badge = document.createElement("span");
      badge.className = "badge text-bg-warning";
      badge.textContent = "running";
      state.append(badge);
    } else {
      state.textContent = text;
    }
  };
  const followTagger = async (name, row) => {
    for (;;) {
      await new Promise((resolve) => { setTimeout(resolve, 1000); });
      const listed = JSON.parse(await send("/config/taggers/", { method: "GET" }));
      if (!listed.find((t) => t.name === name)?.running) {
        showTagger(row, false, "finished");
        return;
      }
    }
  };
  taggers.addEventListener("click", async (event) => {
    const button = event.target.closest(".js-run-tagger");
    if (!button) return;
    const row = button.closest("tr");
    pending("status-taggers");
    try {
      const answer = await send("/config/taggers/run/", { body: formBody({ name: button.value }) });
      showTagger(row, true);
      say("status-taggers", answer.trim());
      followTagger(button.value, row).catch((error) => say("status-taggers", error.message, false));
    } catch (error) {
      say("status-taggers", error.message, false);
    }
  });

  const notice = document.getElementById("notice-form");
  notice.addEventListener("submit", (event) => {
    event.preventDefault();
    submitting(notice, "status-notice", async () => {
      const text = await send("/config/notice/", { body: formBody({ "new-content": notice.elements["new-content"].value }) });
      return text.startsWith("Empty") ? "Notice removed from the home page." : "Notice saved: the home page shows it.";
    });
  });
}
