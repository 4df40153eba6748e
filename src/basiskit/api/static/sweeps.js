// basiskit dashboard, Sweeps page: submit a sweep, follow it, chart its heatmap, rank its configs,
// run any of them in full as a backtest. Every number comes from the API.
const lines = (id) => $(id).value.split("\n").map((l) => l.trim()).filter(Boolean);

async function loadSweepModes() {
  const modes = await api("/modes");
  fill($("sweep-mode"), modes.map((m) => el("option", { value: m.mode }, m.mode)));
  $("sweep-mode").value = "usdt_market_neutral";
}

async function submitSweep(event) {
  event.preventDefault();
  $("sweep-errors").textContent = "";
  const body = { mode: $("sweep-mode").value, params: lines("sweep-params"), windows: lines("sweep-windows"),
                 objective: $("sweep-objective").value || "apy", constraints: lines("sweep-constraints") };
  if ($("sweep-start").value) body.start = $("sweep-start").value;
  if ($("sweep-end").value) body.end = $("sweep-end").value;
  if ($("sweep-capital").value) body.capital = Number($("sweep-capital").value);
  try {
    const created = await postJson("/sweeps", body);
    await followSweep(created.id);
  } catch (err) {
    showProblems("sweep-errors", err);
  }
}

async function followSweep(id) {
  for (;;) {
    const s = await api(`/sweeps/${id}`);
    $("sweep-progress").value = s.progress;
    $("sweep-status").textContent = `${id}: ${s.status} ${s.done}/${s.total}` + (s.error ? ` (${s.error})` : "");
    if (s.status !== "running") {
      if (s.status === "done" || s.status === "cancelled") await showSweep(id);
      await loadSweeps();
      return;
    }
    await new Promise((r) => setTimeout(r, 400));
  }
}

// One entry per config, best first: feasible before not, then mean objective (null last), as the sweep ranks.
function rankConfigs(result) {
  const byConfig = new Map();
  for (const run of result.runs) {
    if (!byConfig.has(run.config_index)) byConfig.set(run.config_index, []);
    byConfig.get(run.config_index).push(run);
  }
  const configs = [...byConfig.values()].map((runs) => {
    const values = runs.map((r) => r.objective);
    const mean = values.some((v) => v === null) ? null : values.reduce((a, b) => a + b, 0) / values.length;
    return { runs, params: runs[0].params, mean, feasible: runs.every((r) => r.constraints_met) };
  });
  return configs.sort((a, b) => (a.feasible === b.feasible ? 0 : a.feasible ? -1 : 1)
    || ((a.mean === null) - (b.mean === null)) || ((b.mean ?? 0) - (a.mean ?? 0))
    || (a.runs[0].config_index - b.runs[0].config_index));
}

// The best mean objective for each pair of the first two params (the others at their best).
function heatmapOf(result, configs) {
  const [x, y] = result.params;
  const uniq = (k) => [...new Set(configs.map((c) => c.params[k]))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const xs = uniq(x), ys = uniq(y);
  const z = ys.map(() => xs.map(() => null));
  for (const c of configs) {
    if (c.mean === null) continue;
    const i = ys.indexOf(c.params[y]), j = xs.indexOf(c.params[x]);
    if (z[i][j] === null || c.mean > z[i][j]) z[i][j] = c.mean;
  }
  return { x, y, xs, ys, z };
}

async function showSweep(id) {
  const result = await api(`/sweeps/${id}/result`);
  const configs = rankConfigs(result);
  $("sweep-report").href = `/sweeps/${encodeURIComponent(id)}/report`;
  $("sweep-report").hidden = false;
  if (result.params.length >= 2) {
    const h = heatmapOf(result, configs);
    Plotly.newPlot("sweep-heatmap", [{ type: "heatmap", x: h.xs.map(String), y: h.ys.map(String), z: h.z,
                                       colorscale: "Viridis", colorbar: { title: { text: result.objective } } }],
                   { title: { text: `mean ${result.objective} over ${h.x} and ${h.y}` },
                     xaxis: { title: { text: h.x }, type: "category" }, yaxis: { title: { text: h.y }, type: "category" },
                     margin: { t: 40 } });
  } else Plotly.purge("sweep-heatmap");
  const head = ["rank", ...result.params, `mean ${result.objective}`, "ok", ""].map((h) => el("th", {}, h));
  fill($("sweep-table"), [el("tr", {}, head), ...configs.map((c, i) => {
    const ok = c.runs.some((r) => r.error) ? "error" : c.feasible ? "yes" : "no";
    const cells = [i + 1, ...result.params.map((p) => c.params[p]), c.mean === null ? "" : c.mean.toPrecision(6), ok];
    const run = el("button", { type: "button", class: "run-full", "data-config": c.runs[0].config_index }, "Run in full");
    run.onclick = () => runInFull(result, c);
    return el("tr", {}, cells.map((v) => el("td", {}, typeof v === "object" ? JSON.stringify(v) : v)), el("td", {}, run));
  })]);
  window.lastSweep = { id, result, configs };
}

// Run a config of the sweep in full as a backtest: the sweep's own overrides and capital, its params,
// the window of its first run; then follow it on the Backtests page.
async function runInFull(result, config) {
  const request = (await api(`/sweeps/${result.sweep_id}`)).request || {};
  const [start, end] = config.runs[0].window;
  const body = { mode: result.mode, start, end, config_overrides: { ...(request.config_overrides || {}), ...config.params } };
  if (request.capital !== null && request.capital !== undefined) body.capital = request.capital;
  try {
    const created = await postJson("/backtests", body);
    $("status").textContent = `${created.id}: queued`;
    $("new-run").scrollIntoView();
    await follow(created.id);
  } catch (err) {
    showProblems("sweep-errors", err);
  }
}

async function loadSweeps() {
  const page = await api("/sweeps?page=1&page_size=50");
  fill($("sweeps-list").querySelector("tbody"), page.items.map((s) => {
    const open = el("a", { href: "#", "data-sweep": s.id }, s.id);
    open.onclick = (e) => { e.preventDefault(); showSweep(s.id); };
    return el("tr", {}, el("td", {}, open), el("td", {}, s.mode), el("td", {}, s.status), el("td", {}, `${s.done}/${s.total}`));
  }));
}

$("sweep-form").addEventListener("submit", submitSweep);
$("sweeps-refresh").addEventListener("click", loadSweeps);
loadSweepModes().then(loadSweeps);
