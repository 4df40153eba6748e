// basiskit dashboard: pages under /ui/..., each with its own URL. Every number comes from the API; every value
// is written as text (never parsed as HTML). Each page script registers PAGES[name] = async (params) => {...}.
const $ = (id) => document.getElementById(id);
const PAGES = {};

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
const link = (href, text, attrs = {}) => el("a", { href, ...attrs }, text);
const enc = encodeURIComponent;

// The API token: asked once, kept in this tab's sessionStorage only (never a cookie: cookies are shared with
// every port of the host). Report links and downloads carry a short-lived signature instead (GET /links).
const TOKEN_KEY = "basiskit-token";
document.cookie = "basiskit_token=; Max-Age=0; path=/";  // an earlier version's cookie copy, removed
function token() {
  let t = sessionStorage.getItem(TOKEN_KEY);
  if (!t) {
    t = (window.prompt("basiskit API token (a line of serve's tokens file)") || "").trim();
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
  }
  return t;
}

// A link (report, download) to an API path that opens without the token: signed now, and again as it is
// followed (a signature lives minutes).
async function signedLink(a, target) {
  a.href = (await api(`/links?target=${enc(target)}`)).url;
  a.onclick = async (e) => {
    e.preventDefault();
    const url = (await api(`/links?target=${enc(target)}`)).url;
    if (e.ctrlKey || e.metaKey || e.shiftKey || a.target === "_blank") window.open(url, "_blank", "noopener");
    else location.href = url;
  };
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
function problemText(err) {
  const detail = err.body?.detail;
  return Array.isArray(detail)
    ? detail.map((d) => `${d.field}: ${JSON.stringify(d.value)} -> ${d.message}`).join("\n")
    : (detail || (err instanceof Error ? err.message : JSON.stringify(err)));
}
function showProblems(id, err) { $(id).textContent = problemText(err); }

// --- numbers with their units ---------------------------------------------------------------------
const nothing = (v) => v === null || v === undefined || (typeof v === "number" && !Number.isFinite(v));
const fmtPct = (v, digits = 2) => (nothing(v) ? "n/a" : `${(100 * v).toFixed(digits)}%`);
const fmtNum = (v, digits = 6) => (nothing(v) ? "" : Number(v).toLocaleString("en-US", { maximumFractionDigits: digits }));
const fmtFixed = (v, digits) => (nothing(v) ? "" : Number(v).toLocaleString("en-US", { minimumFractionDigits: digits,
                                                                                      maximumFractionDigits: digits }));
const fmtMoney = (v, ccy) => (nothing(v) ? "n/a" : `${Number(v).toLocaleString("en-US", {
  minimumFractionDigits: 2, maximumFractionDigits: ccy === "ETH" ? 4 : 2 })} ${ccy}`);
const fmtHours = (h) => (nothing(h) ? "" : h >= 48 ? `${(h / 24).toFixed(1)} d` : `${h} h`);
// A headline metric as the run report writes it (results/report.py formatted(); same units).
function fmtMetric(unit, value, ccy) {
  if (nothing(value)) return "n/a";
  return { pct: () => fmtPct(value, 4), ratio: () => value.toFixed(4), ccy: () => fmtMoney(value, ccy),
           hours: () => `${value.toLocaleString("en-US")} h`, count: () => value.toLocaleString("en-US"),
           sci: () => value.toExponential(3) }[unit]();
}
const signClass = (v) => (nothing(v) || v === 0 ? "num" : v < 0 ? "num neg" : "num pos");
// A number cell: the shown text, its exact value for sorting and reading back.
const numCell = (v, text, attrs = {}) => el("td", { class: signClass(v), "data-value": nothing(v) ? "" : v, ...attrs }, text);
// A number that is a setting or a count, not a gain or a loss: aligned, not coloured.
const plainCell = (v, text, attrs = {}) => el("td", { class: "num", "data-value": nothing(v) ? "" : v, ...attrs }, text);
const shortTime = (iso) => (iso ? String(iso).replace("T", " ").replace(/:00(\.\d+)?(Z|\+00:00)$/, "").slice(0, 16) : "");

// --- tables that sort: a click on a header sorts by that column (numbers by data-value) ---------
function sortable(table) {
  const head = table.tHead;
  if (!head || table.dataset.sortable) return;
  table.dataset.sortable = "1";
  head.addEventListener("click", (e) => {
    const th = e.target.closest("th");
    if (!th || th.hasAttribute("data-nosort")) return;
    const col = [...th.parentNode.children].indexOf(th);
    const dir = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
    for (const other of th.parentNode.children) other.removeAttribute("aria-sort");
    th.setAttribute("aria-sort", dir);
    const key = (tr) => {
      const td = tr.children[col];
      if (!td) return "";
      const v = td.dataset.value;
      return v !== undefined && v !== "" && !Number.isNaN(Number(v)) ? Number(v) : td.textContent.trim().toLowerCase();
    };
    const body = table.tBodies[0];
    const rows = [...body.rows].sort((a, b) => {
      const x = key(a), y = key(b);
      const c = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
      return dir === "ascending" ? c : -c;
    });
    body.append(...rows);
  });
}

// --- charts in the page's theme --------------------------------------------------------------
function themed(layout = {}) {
  const dark = document.documentElement.dataset.theme === "dark";
  const fg = dark ? "#d9e1ea" : "#1d2530", grid = dark ? "#2c3640" : "#e3e8ee";
  const title = typeof layout.title === "string" ? { text: layout.title } : layout.title;
  const out = { ...layout, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
                font: { ...(layout.font || {}), color: fg }, template: undefined,
                ...(title ? { title: { ...title, x: 0.01, xanchor: "left" } } : {}) };  // clear of the mode bar
  if (layout.updatemenus) {  // the linear / log buttons
    out.updatemenus = layout.updatemenus.map((u) => ({ ...u, bgcolor: dark ? "#161d25" : "#f6f8fa", bordercolor: grid,
                                                       font: { ...(u.font || {}), color: fg } }));
  }
  for (const key of Object.keys(layout).concat(["xaxis", "yaxis"])) {
    if (/^[xy]axis\d*$/.test(key)) out[key] = { ...(layout[key] || {}), gridcolor: grid, zerolinecolor: grid };
  }
  return out;
}
async function plot(id, data, layout = {}) {
  await window.loadPlotly();  // run on the first chart (boot.js)
  return Plotly.react(id, data, themed({ margin: { t: 40, l: 60, r: 30, b: 40 }, ...layout }),
                      { responsive: true, displaylogo: false });
}

// A select of the presets (GET /modes), `chosen` selected; `withAll` adds an "all" choice first.
async function modeOptions(select, chosen, withAll = false) {
  const modes = await api("/modes");
  fill(select, [...(withAll ? [el("option", { value: "" }, "all")] : []),
                ...modes.map((m) => el("option", { value: m.mode, selected: m.mode === chosen }, `${m.mode} (${m.share_class})`))]);
  return modes;
}

// --- jobs that run for a while: poll until done, showing progress ------------------------------
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function followRun(id, onDone) {
  for (;;) {
    const s = await api(`/backtests/${enc(id)}`);
    if ($("progress")) $("progress").value = s.progress;
    if ($("status")) $("status").textContent = `${id}: ${s.status} ${(100 * s.progress).toFixed(0)}%` + (s.error ? ` (${s.error})` : "");
    if (["done", "failed", "cancelled"].includes(s.status)) return onDone ? onDone(s) : s;
    await sleep(300);
  }
}

// --- the router: /ui/<page>/<id...> -> PAGES[name](params); the URL is the page's whole state -----
const ROUTES = [
  [/^\/ui\/?$/, "runs"], [/^\/ui\/runs\/?$/, "runs"], [/^\/ui\/runs\/([^/]+)$/, "run"], [/^\/ui\/new\/?$/, "new"],
  [/^\/ui\/compare\/?$/, "compare"], [/^\/ui\/sweeps\/?$/, "sweeps"], [/^\/ui\/sweeps\/([^/]+)$/, "sweep"],
  [/^\/ui\/stress\/?$/, "stresses"], [/^\/ui\/stress\/([^/]+)$/, "stress"], [/^\/ui\/sessions\/?$/, "sessions"],
  [/^\/ui\/sessions\/paper\/([^/]+)$/, "paper"], [/^\/ui\/sessions\/live\/([^/]+)$/, "live"],
];
const NAV = { run: "runs", stresses: "stress", paper: "sessions", live: "sessions" };
const CHARTED = new Set(["run", "compare", "sweep", "stress", "paper", "live"]);  // pages that draw charts

async function route() {
  const path = location.pathname;
  let name = "missing", args = [];
  for (const [re, page] of ROUTES) {
    const m = path.match(re);
    if (m) { name = page; args = m.slice(1).map(decodeURIComponent); break; }
  }
  if (CHARTED.has(name)) preloadPlotly();
  const nav = NAV[name] || name;
  for (const a of document.querySelectorAll("header nav a")) {
    if (a.dataset.nav === nav) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  fill($("page"), [$(`t-${name}`).content.cloneNode(true)]);
  for (const t of document.querySelectorAll("table.sortable")) sortable(t);
  document.body.dataset.page = name;
  try {
    if (PAGES[name]) await PAGES[name](args, new URLSearchParams(location.search));
    document.body.dataset.ready = name;
  } catch (err) {
    const box = document.querySelector("#page .errors") || $("page").appendChild(el("p", { class: "errors" }));
    box.textContent = err.status === 404 ? `Not found: ${problemText(err)}` : problemText(err);
    document.body.dataset.ready = "error";
  }
}

function setTheme(theme) {
  document.documentElement.dataset.theme = theme;
  localStorage.setItem("basiskit-theme", theme);
  $("theme").textContent = theme === "dark" ? "Light" : "Dark";
  if (window.Plotly) for (const div of document.querySelectorAll(".js-plotly-plot")) Plotly.relayout(div, themed(div.layout));
}

window.addEventListener("DOMContentLoaded", () => {
  $("theme").textContent = document.documentElement.dataset.theme === "dark" ? "Light" : "Dark";
  $("theme").addEventListener("click", () => setTheme(document.documentElement.dataset.theme === "dark" ? "light" : "dark"));
  api("/health").then((h) => { $("health").textContent = `API ${h.status}, v${h.version}`; }).catch(() => {});
  route();
});
