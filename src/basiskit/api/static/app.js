// basiskit dashboard: every number comes from the API; every value is written as text (never as HTML).
const $ = (id) => document.getElementById(id);
let presetValues = {};

// An element with attributes and children (strings become text nodes): no markup is ever parsed.
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith("data-")) node.dataset[k.slice(5).replace(/-([a-z])/g, (m, c) => c.toUpperCase())] = String(v);
    else if (k === "checked" || k === "selected") node[k] = Boolean(v);
    else node.setAttribute(k, String(v));
  }
  node.append(...children.flat().map((c) => (c instanceof Node ? c : document.createTextNode(String(c ?? "")))));
  return node;
}
const fill = (node, children) => node.replaceChildren(...children);

// The API token: asked once, kept for the browser session; a cookie copy lets report links (GETs) open.
const TOKEN_KEY = "basiskit-token";
function token() {
  let t = sessionStorage.getItem(TOKEN_KEY);
  if (!t) {
    t = (window.prompt("basiskit API token (a line of serve's tokens file)") || "").trim();
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
  }
  document.cookie = `basiskit_token=${encodeURIComponent(t || "")}; path=/; SameSite=Strict`;
  return t;
}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}), Authorization: `Bearer ${token()}` };
  const res = await fetch(path, { ...options, headers });
  const body = res.headers.get("content-type")?.includes("json") ? await res.json() : await res.text();
  if (res.status === 401) sessionStorage.removeItem(TOKEN_KEY);  // asked again on the next call
  if (!res.ok) throw { status: res.status, body };
  return body;
}

const postJson = (path, body) => api(path, { method: "POST", headers: { "content-type": "application/json" },
                                             body: JSON.stringify(body) });

// A refused request's problems (every field, value and reason), or its message.
function showProblems(id, err) {
  const detail = err.body?.detail;
  $(id).textContent = Array.isArray(detail)
    ? detail.map((d) => `${d.field}: ${JSON.stringify(d.value)} -> ${d.message}`).join("\n")
    : (detail || JSON.stringify(err));
}

function flatten(obj, prefix = "", out = {}) {
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v !== null && typeof v === "object" && !Array.isArray(v)) flatten(v, key, out);
    else out[key] = v;
  }
  return out;
}

const SKIP = new Set(["mode", "description", "strategy", "start", "end", "initial_capital", "flows"]);
let configSchema = {};

// The JSON schema of a dotted config key: follows $ref, Optional (anyOf with null) and mappings.
function schemaFor(path) {
  const resolve = (s) => {
    while (s && (s.$ref || s.anyOf)) {
      if (s.$ref) s = configSchema.$defs[s.$ref.split("/").pop()];
      else s = s.anyOf.find((a) => a.type !== "null") || {};
    }
    return s || {};
  };
  let node = resolve(configSchema);
  for (const part of path.split(".")) {
    node = resolve(node.properties?.[part] ?? node.additionalProperties ?? {});
  }
  return node;
}

function inputFor(key, value) {
  const s = schemaFor(key);
  const title = s.description || "";
  if (s.enum) {
    const select = el("select", { "data-key": key }, s.enum.map((e) => el("option", { value: e, selected: e === value }, e)));
    return el("label", { title }, `${key} `, select);
  }
  const type = s.type === "boolean" || typeof value === "boolean" ? "checkbox"
    : ["number", "integer"].includes(s.type) || typeof value === "number" ? "number" : "text";
  const attrs = { "data-key": key, type, step: "any", min: s.minimum, max: s.maximum };
  if (type === "checkbox") attrs.checked = Boolean(value);
  else attrs.value = value ?? "";
  return el("label", { title }, `${key} `, el("input", attrs));
}

async function loadModes() {
  const modes = await api("/modes");
  fill($("mode"), modes.map((m) => el("option", { value: m.mode }, `${m.mode} (${m.share_class})`)));
  $("mode").addEventListener("change", loadPreset);
  await loadPreset();
}

let presetRequest = 0;
async function loadPreset() {
  const mode = $("mode").value, request = ++presetRequest;
  const detail = await api(`/modes/${mode}`);
  if (request !== presetRequest) return;  // the mode changed again meanwhile: only the latest one is shown
  configSchema = detail.config_schema;
  presetValues = flatten(detail.preset);
  $("capital").value = detail.preset.initial_capital;
  $("mode-description").textContent = detail.preset.description;
  const rows = Object.entries(presetValues).filter(([k, v]) => !SKIP.has(k) && !Array.isArray(v));
  fill($("overrides"), rows.map(([k, v]) => inputFor(k, v)));
  $("overrides").dataset.mode = mode;
}

function overrides() {
  const out = {};
  for (const input of $("overrides").querySelectorAll("[data-key]")) {
    const key = input.dataset.key, old = presetValues[key];
    const value = input.type === "checkbox" ? input.checked : input.type === "number" ? Number(input.value) : input.value;
    if (input.type !== "checkbox" && input.value === "" && old === null) continue;  // left unset
    if (value !== old) out[key] = value;
  }
  return out;
}

async function submitRun(event) {
  event.preventDefault();
  $("errors").textContent = "";
  const body = { mode: $("mode").value, config_overrides: overrides() };
  if ($("start").value) body.start = $("start").value;
  if ($("end").value) body.end = $("end").value;
  if ($("capital").value) body.capital = Number($("capital").value);
  try {
    const created = await postJson("/backtests", body);
    $("status").textContent = `${created.id}: queued`;
    await follow(created.id);
  } catch (err) {
    showProblems("errors", err);
  }
}

async function follow(id) {
  for (;;) {
    const s = await api(`/backtests/${id}`);
    $("progress").value = s.progress;
    $("status").textContent = `${id}: ${s.status} ${(100 * s.progress).toFixed(0)}%` + (s.error ? ` (${s.error})` : "");
    if (["done", "failed", "cancelled"].includes(s.status)) {
      if (s.status === "done") await showResult(id);
      await loadRuns();
      return;
    }
    await new Promise((r) => setTimeout(r, 300));
  }
}

const fmtPct = (v) => (v === null || v === undefined ? "" : `${(100 * v).toFixed(4)}%`);
const fmtNum = (v) => (v === null || v === undefined ? "" : Number(v).toLocaleString("en-US", { maximumFractionDigits: 6 }));

async function showResult(id) {
  const [summary, ts] = await Promise.all([api(`/backtests/${id}/result`), api(`/backtests/${id}/timeseries`)]);
  $("result").hidden = false;
  $("result-title").textContent = `${summary.mode} ${summary.start} .. ${summary.end}`;
  $("report-link").href = `/backtests/${encodeURIComponent(id)}/report`;
  const rows = [["final NAV", `${fmtNum(summary.final_nav)} ${summary.share_class}`], ["total return", fmtPct(summary.total_return)],
                ["APY", fmtPct(summary.apy)], ["max drawdown", fmtPct(summary.max_drawdown)],
                ["max |residual|", Number(summary.reconciliation_max_residual).toExponential(3)],
                ...Object.entries(summary.pnl_attribution).map(([k, v]) => [`PnL ${k}`, fmtNum(v)])];
  fill($("metrics"), rows.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", { "data-metric": k }, v))));
  const x = ts.data.timestamp;
  Plotly.newPlot("nav-chart", [{ x, y: ts.data.nav, name: `NAV (${summary.share_class})` }],
                 { title: { text: "NAV" }, margin: { t: 40 } });
  const cum = ts.columns.filter((c) => c.startsWith("cum_pnl_"));
  Plotly.newPlot("attr-chart", cum.map((c) => ({ x, y: ts.data[c], name: c.slice(8) })),
                 { title: { text: "Cumulative attribution" }, margin: { t: 40 } });
  const risk = ts.columns.filter((c) => (c === "health_factor" || c === "ltv" || c.startsWith("margin_ratio:"))
    && ts.data[c].some((v) => v !== null && v !== 0));  // only what the mode has
  if (risk.length) Plotly.newPlot("risk-chart", risk.map((c) => ({ x, y: ts.data[c], name: c })),
                                  { title: { text: "Risk: health factor, LTV, margin ratio" }, margin: { t: 40 } });
  else Plotly.purge("risk-chart");
}

async function loadRuns() {
  const page = await api("/backtests?page=1&page_size=50");
  const details = await Promise.all(page.items.map((r) => r.status === "done" ? api(`/backtests/${r.id}/result`) : null));
  fill($("runs").querySelector("tbody"), page.items.map((r, i) => {
    const s = details[i];
    const open = el("a", { href: "#", "data-open": r.id }, r.id);
    open.onclick = (e) => { e.preventDefault(); showResult(r.id); };
    return el("tr", {}, el("td", {}, el("input", { type: "checkbox", class: "pick", value: r.id })), el("td", {}, open),
      el("td", {}, r.mode), el("td", {}, r.status), el("td", {}, s ? fmtPct(s.total_return) : ""),
      el("td", {}, s ? fmtPct(s.apy) : ""), el("td", {}, s ? `${fmtNum(s.final_nav)} ${s.share_class}` : (r.error || "")));
  }));
}

async function compare() {
  const ids = [...document.querySelectorAll(".pick:checked")].map((c) => c.value);
  if (ids.length < 2) { $("errors").textContent = "select two runs to compare"; return; }
  const results = await Promise.all(ids.map((id) => api(`/backtests/${id}/result`)));
  const series = await Promise.all(ids.map((id) => api(`/backtests/${id}/timeseries`)));
  const keys = [["mode", (s) => s.mode], ["total return", (s) => fmtPct(s.total_return)], ["APY", (s) => fmtPct(s.apy)],
                ["max drawdown", (s) => fmtPct(s.max_drawdown)], ["final NAV", (s) => fmtNum(s.final_nav)]];
  fill($("compare-table"), [el("tr", {}, el("th"), ids.map((id) => el("th", {}, id))),
    ...keys.map(([k, f]) => el("tr", {}, el("th", {}, k), results.map((s) => el("td", {}, f(s)))))]);
  Plotly.newPlot("compare-chart", series.map((ts, i) => ({ x: ts.data.timestamp, y: ts.data.share_index, name: ids[i] })),
                 { title: { text: "Share index" }, margin: { t: 40 } });
}

$("run-form").addEventListener("submit", submitRun);
$("refresh").addEventListener("click", loadRuns);
$("compare").addEventListener("click", compare);
api("/health").then((h) => { $("health").textContent = `API ${h.status}, v${h.version}`; });
loadModes().then(loadRuns);
