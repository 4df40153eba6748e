// Sweeps: the list and a new sweep (/ui/sweeps), one sweep (/ui/sweeps/{id}): its ranked configs (sortable,
// filterable), heatmap, parallel coordinates, capacity curve, and any config run in full as a backtest.
const lines = (id) => $(id).value.split("\n").map((l) => l.trim()).filter(Boolean);

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
    location.href = `/ui/sweeps/${enc(created.id)}`;  // its page follows it
  } catch (err) {
    showProblems("sweep-errors", err);
  }
}

PAGES.sweeps = async (args, query) => {
  await modeOptions($("sweep-mode"), "usdt_market_neutral");
  $("sweep-form").addEventListener("submit", submitSweep);
  if (query.get("new") !== null) $("sweep-new").open = true;
  const page = await api("/sweeps?page=1&page_size=200");
  fill($("sweeps-list").tBodies[0], page.items.map((s) => el("tr", {},
    el("td", {}, link(`/ui/sweeps/${enc(s.id)}`, s.id, { "data-sweep": s.id })), el("td", {}, s.mode),
    el("td", {}, s.status + (s.error ? ` (${s.error})` : "")), plainCell(s.done, `${s.done}/${s.total}`),
    el("td", {}, shortTime(s.created_at)))));
  if (!page.items.length) $("sweep-new").open = true;
};

PAGES.sweep = async ([id]) => {
  $("sweep-title").textContent = `Sweep ${id}`;
  for (;;) {
    const s = await api(`/sweeps/${enc(id)}`);
    $("sweep-progress").value = s.progress;
    $("sweep-status").textContent = `${id}: ${s.status} ${s.done}/${s.total}` + (s.error ? ` (${s.error})` : "");
    if (s.status !== "running" && s.status !== "queued") {
      if (s.status === "done" || s.status === "cancelled") await showSweep(id);
      return;
    }
    await sleep(400);
  }
};

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
  const result = await api(`/sweeps/${enc(id)}/result`);
  const configs = rankConfigs(result);
  $("sweep-title").textContent = `Sweep ${id}: ${result.mode}, ${result.n_runs} runs over ${result.params.join(", ")}`;
  await signedLink($("sweep-report"), `/sweeps/${enc(id)}/report`);
  $("sweep-report").hidden = false;
  const head = ["rank", ...result.params, `mean ${result.objective}`, "feasible", ""].map((h, i, all) =>
    el("th", { class: i > result.params.length && i < all.length - 2 ? "num" : "", "data-nosort": i === all.length - 1 ? "" : null }, h));
  const table = $("sweep-table");
  fill(table, [el("thead", {}, el("tr", {}, head)), el("tbody", {}, configs.map((c, i) => {
    const ok = c.runs.some((r) => r.error) ? "error" : c.feasible ? "yes" : "no";
    const run = el("button", { type: "button", class: "run-full", "data-config": c.runs[0].config_index }, "Open in full");
    run.onclick = () => runInFull(result, c);
    return el("tr", { "data-config": c.runs[0].config_index }, plainCell(i + 1, String(i + 1)),
      result.params.map((p) => typeof c.params[p] === "number" ? plainCell(c.params[p], String(c.params[p]))
        : el("td", {}, typeof c.params[p] === "object" ? JSON.stringify(c.params[p]) : String(c.params[p]))),
      numCell(c.mean, c.mean === null ? "" : c.mean.toPrecision(6), { "data-col": "objective" }), el("td", {}, ok), el("td", {}, run));
  }))]);
  delete table.dataset.sortable;
  sortable(table);
  const filter = () => {
    const words = $("sweep-filter").value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    for (const tr of table.tBodies[0].rows) {
      tr.hidden = !words.every((w) => tr.textContent.toLowerCase().includes(w));
      shown += !tr.hidden;
    }
    $("sweep-shown").textContent = `${shown} of ${configs.length} configs`;
  };
  $("sweep-filter").addEventListener("input", filter);
  filter();
  // the charts after the table: it never waits for plotly.js
  if (result.params.length >= 2) {
    const h = heatmapOf(result, configs);
    await plot("sweep-heatmap", [{ type: "heatmap", x: h.xs.map(String), y: h.ys.map(String), z: h.z,
                             colorscale: "Viridis", colorbar: { title: { text: result.objective } } }],
         { title: { text: `mean ${result.objective} over ${h.x} and ${h.y}` },
           xaxis: { title: { text: h.x }, type: "category" }, yaxis: { title: { text: h.y }, type: "category" } });
  }
  const numeric = result.params.filter((p) => configs.every((c) => typeof c.params[p] === "number"));
  const scored = configs.filter((c) => c.mean !== null);
  if (numeric.length && scored.length) {
    await plot("sweep-parcoords", [{ type: "parcoords", line: { color: scored.map((c) => c.mean), colorscale: "Viridis", showscale: true },
      dimensions: [...numeric.map((p) => ({ label: p, values: scored.map((c) => c.params[p]) })),
                   { label: `mean ${result.objective}`, values: scored.map((c) => c.mean) }] }],
      { title: { text: "Parallel coordinates: every config" }, margin: { t: 80, l: 60, r: 60, b: 30 } });
  }
  if (result.capacity) {
    const ran = result.capacity.filter((p) => !p.refused);
    const refused = result.capacity.filter((p) => p.refused);
    const caps = ran.map((p) => p.capital);
    const traces = [{ x: caps, y: ran.map((p) => p.apy), name: "APY", mode: "lines+markers" },
      { x: caps, y: ran.map((p) => p.apy_net_of_exit), name: "APY net of exit", mode: "lines+markers" },
      { x: caps, y: ran.map((p) => p.benchmark_apy), name: `benchmark (${(ran.find((p) => p.benchmark) || {}).benchmark || "none"})`,
        mode: "lines", line: { dash: "dash" } },
      { x: caps, y: ran.map((p) => p.cost_share), name: "transaction costs / capital", yaxis: "y2",
        mode: "lines+markers", line: { dash: "dot" } },
      { x: caps, y: ran.map((p) => (p.rate_impact_share == null ? null : -p.rate_impact_share)), name: "rate impact / capital",
        yaxis: "y2", mode: "lines+markers", line: { dash: "dot" } }];
    if (refused.length) {
      traces.push({ x: refused.map((p) => p.capital), y: refused.map(() => 0), name: "refused: the Aave reserve could not lend it",
        mode: "markers", marker: { symbol: "x", size: 12, color: "#b00" } });
    }
    const below = result.capacity.find((p) => p.below_benchmark);
    await plot("sweep-capacity", traces,
      { title: { text: below ? `Capacity by capital: under the benchmark from ${below.capital.toLocaleString("en-US")}`
                               : "Capacity by capital (rate impact, market impact and exit paid for)" },
        xaxis: { title: { text: "initial capital" }, type: "log" },
        yaxis: { tickformat: ".2%", title: { text: "APY" } },
        yaxis2: { tickformat: ".2%", overlaying: "y", side: "right", title: { text: "share of capital" } } });
    const hours = ran.map((p) => p.constrained_hours || 0);
    $("sweep-capacity-note").textContent = hours.some((h) => h > 0)
      ? `liquidity-constrained hours by capital: ${ran.map((p, i) => `${p.capital.toLocaleString("en-US")}: ${hours[i]}`).join(", ")}`
      : "";
  }
  window.lastSweep = { id, result, configs };
}

// Run a config of the sweep in full as a backtest: the sweep's own overrides and capital, then its params over
// them (a swept initial_capital included), the window of its first run; its page follows it.
async function runInFull(result, config) {
  const request = (await api(`/sweeps/${enc(result.sweep_id)}`)).request || {};
  const [start, end] = config.runs[0].window;
  const capital = nothing(request.capital) ? {} : { initial_capital: request.capital };
  const body = { mode: result.mode, start, end,
                 config_overrides: { ...(request.config_overrides || {}), ...capital, ...config.params } };
  try {
    const created = await postJson("/backtests", body);
    location.href = `/ui/runs/${enc(created.id)}`;
  } catch (err) {
    showProblems("sweep-errors", err);
  }
}
