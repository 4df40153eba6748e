// Stress tests: the list and a new test (/ui/stress), one test (/ui/stress/{id}): the baseline and the shocked
// run side by side, both NAVs and liquidation distances, and the liquidation map.
async function submitStress(event) {
  event.preventDefault();
  $("stress-errors").textContent = "";
  const scenarios = [...document.querySelectorAll("#stress-scenarios input:checked")].map((c) => c.value);
  const body = { mode: $("stress-mode").value, scenarios, shocks: lines("stress-shocks"),
                 at: $("stress-at").value.trim() || "worst", grid: lines("stress-grid") };
  if ($("stress-start").value) body.start = $("stress-start").value;
  if ($("stress-end").value) body.end = $("stress-end").value;
  if ($("stress-capital").value) body.capital = Number($("stress-capital").value);
  try {
    const created = await postJson("/stress", body);
    location.href = `/ui/stress/${enc(created.id)}`;
  } catch (err) {
    showProblems("stress-errors", err);
  }
}

PAGES.stresses = async (args, query) => {
  const [, scenarios] = await Promise.all([modeOptions($("stress-mode"), "eth_leveraged"), api("/scenarios")]);
  fill($("stress-scenarios"), scenarios.map((s) => el("label", { class: "scenario" },
    el("input", { type: "checkbox", value: s.name }), " ", el("b", { "data-plain": "1" }, s.name), ` ${s.description}`)));
  $("stress-form").addEventListener("submit", submitStress);
  if (query.get("new") !== null) $("stress-new").open = true;
  const page = await api("/stress?page=1&page_size=200");
  fill($("stress-list").tBodies[0], page.items.map((s) => el("tr", {},
    el("td", {}, link(`/ui/stress/${enc(s.id)}`, s.id, { "data-stress": s.id })), el("td", {}, s.mode),
    el("td", {}, s.status + (s.error ? ` (${s.error})` : "")), el("td", {}, shortTime(s.created_at)))));
  if (!page.items.length) $("stress-new").open = true;
};

PAGES.stress = async ([id]) => {
  $("stress-title").textContent = `Stress test ${id}`;
  for (;;) {
    const s = await api(`/stress/${enc(id)}`);
    $("stress-status").textContent = `${id}: ${s.status}` + (s.error ? ` (${s.error})` : "");
    if (s.status !== "running" && s.status !== "queued") {
      if (s.status === "done") await showStress(id);
      return;
    }
    await sleep(400);
  }
};

async function showStress(id) {
  const r = await api(`/stress/${id}/result`);
  const [base, shocked] = await Promise.all([api(`/backtests/${r.baseline.run_id}/timeseries`),
                                             api(`/backtests/${r.scenario.run_id}/timeseries`)]);
  const ccy = r.baseline.share_class;
  $("stress-title").textContent = `Stress test ${id}: ${r.mode || ""} ${(r.scenarios || []).join(", ")}`;
  await signedLink($("stress-report"), `/stress/${enc(id)}/report`);
  $("stress-report").hidden = false;
  $("stress-headline").textContent = `shocks from ${r.at}: loss against the baseline ${fmtNum(r.loss_vs_baseline)} ${ccy}`
    + ` at the end, ${fmtNum(r.max_loss_vs_baseline.value)} at worst (${r.max_loss_vs_baseline.at}); `
    + (r.time_to_recover_hours === null ? "not recovered within the window" : `recovered in ${r.time_to_recover_hours} h`);
  const rows = [["final NAV", (s) => `${fmtNum(s.final_nav)} ${ccy}`], ["total return", (s) => fmtPct(s.total_return)],
                ["APY", (s) => fmtPct(s.apy)], ["max drawdown", (s) => fmtPct(s.max_drawdown)],
                ["min health factor", (s) => (s.min_health_factor === null ? "" : s.min_health_factor.toFixed(4))],
                ["liquidations", (s) => String(s.liquidations.count)]];
  const venues = Object.keys(r.scenario.min_liquidation_distance || {}).sort();
  for (const v of venues) {
    rows.push([`min liquidation distance ${v}`, (s) => fmtPct((s.min_liquidation_distance || {})[v])]);
  }
  fill($("stress-table"), [el("tr", {}, el("th"), el("th", {}, "baseline"), el("th", {}, "scenario")),
    ...rows.map(([k, f]) => el("tr", {}, el("th", {}, k), el("td", { class: "num", "data-side": "baseline" }, f(r.baseline)),
                                el("td", { class: "num", "data-side": "scenario" }, f(r.scenario))))]);
  fill($("stress-liquidations"), r.liquidations.length
    ? [el("tr", {}, el("th", {}, "liquidation"), el("th", {}, "venue"), el("th")),
       ...r.liquidations.map((l) => el("tr", {}, el("td", {}, l.at), el("td", {}, l.venue), el("td", {}, l.message)))]
    : [el("tr", {}, el("td", {}, "no liquidation in the scenario"))]);
  const at = { type: "line", x0: r.at, x1: r.at, yref: "paper", y0: 0, y1: 1, line: { dash: "dot", color: "red" } };
  await plot("stress-nav", [{ x: base.data.timestamp, y: base.data.nav, name: "baseline" },
                                { x: shocked.data.timestamp, y: shocked.data.nav, name: "scenario" }],
                 { title: { text: `NAV (${ccy})` }, shapes: [at], margin: { t: 40 } });
  const dist = shocked.columns.filter((c) => c.startsWith("liq_distance:"));
  if (dist.length) {
    await plot("stress-distance", dist.flatMap((c) => [
      { x: base.data.timestamp, y: base.data[c], name: `${c.slice(13)} baseline`, line: { dash: "dot" } },
      { x: shocked.data.timestamp, y: shocked.data[c], name: `${c.slice(13)} scenario` }]),
      { title: { text: "Distance to liquidation (fractional adverse move)" }, shapes: [at], margin: { t: 40 },
        yaxis: { tickformat: ".2%" } });
  }
  if (r.grid) await showLiquidationMap(r.grid);
  window.lastStress = r;
}

// One axis: loss per value, red where liquidated; two: liquidated (1) or not (0) over the pair.
async function showLiquidationMap(grid) {
  const [x, y] = grid.axes;
  const uniq = (k) => [...new Set(grid.runs.map((g) => g.params[k]))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (!y) {
    await plot("stress-map", [{ type: "bar", x: grid.runs.map((g) => String(g.params[x])), y: grid.runs.map((g) => g.loss),
      marker: { color: grid.runs.map((g) => (g.liquidated ? "crimson" : "seagreen")) } }],
      { title: { text: `Liquidation map over ${x}: loss against the baseline (red: liquidated)` },
        xaxis: { title: { text: x }, type: "category" }, margin: { t: 40 } });
    return;
  }
  const xs = uniq(x), ys = uniq(y);
  const z = ys.map((vy) => xs.map((vx) => {
    const g = grid.runs.find((q) => q.params[x] === vx && q.params[y] === vy);
    return g ? Number(g.liquidated) : null;
  }));
  await plot("stress-map", [{ type: "heatmap", x: xs.map(String), y: ys.map(String), z, zmin: 0, zmax: 1,
    colorscale: [[0, "seagreen"], [1, "crimson"]], colorbar: { title: { text: "liquidated" } } }],
    { title: { text: `Liquidation map over ${x} and ${y}` }, xaxis: { title: { text: x }, type: "category" },
      yaxis: { title: { text: y }, type: "category" }, margin: { t: 40 } });
}

