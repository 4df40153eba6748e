// Runs (list, filter, delete), a run's tearsheet, and the comparison of 2 to 6 runs.
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

PAGES.runs = async (args, query) => {
  const mode = query.get("mode") || "", status = query.get("status") || "";
  await modeOptions($("filter-mode"), mode, true);
  $("filter-status").value = status;
  const refilter = () => {  // the filters live in the URL: a filtered list can be shared
    const q = new URLSearchParams();
    if ($("filter-mode").value) q.set("mode", $("filter-mode").value);
    if ($("filter-status").value) q.set("status", $("filter-status").value);
    location.search = q.toString();
  };
  $("filter-mode").addEventListener("change", refilter);
  $("filter-status").addEventListener("change", refilter);
  $("compare").addEventListener("click", () => {
    const ids = [...document.querySelectorAll(".pick:checked")].map((c) => c.value);
    if (ids.length < 2 || ids.length > 6) { $("errors").textContent = "select 2 to 6 finished runs to compare"; return; }
    location.href = `/ui/compare?${ids.map((i) => `ids=${enc(i)}`).join("&")}`;
  });
  const q = new URLSearchParams({ page: "1", page_size: "200" });
  if (mode) q.set("mode", mode);
  if (status) q.set("status", status);
  const page = await api(`/backtests?${q}`);
  $("runs-count").textContent = `${page.items.length} of ${page.total} run(s)`;
  fill($("runs").tBodies[0], page.items.map((r) => {
    const h = r.headline;
    const del = el("button", { type: "button", class: "delete", "data-delete": r.id },
                   ["queued", "running"].includes(r.status) ? "Cancel" : "Delete");
    del.onclick = async () => {
      if (!window.confirm(`Delete run ${r.id}?`)) return;
      try { await api(`/backtests/${enc(r.id)}`, { method: "DELETE" }); route(); } catch (err) { showProblems("errors", err); }
    };
    return el("tr", { "data-run": r.id },
      el("td", {}, el("input", { type: "checkbox", class: "pick", value: r.id, disabled: r.status !== "done" })),
      el("td", { class: "ident" }, link(`/ui/runs/${enc(r.id)}`, r.id, { "data-open": r.id })), el("td", {}, r.mode),
      el("td", { "data-col": "status" }, r.status + (r.error ? ` (${r.error})` : "")),
      el("td", { "data-value": r.created_at || "" }, shortTime(r.created_at)),
      el("td", { class: "nowrap" }, h ? `${h.start.slice(0, 10)} .. ${h.end.slice(0, 10)}` : ""),
      numCell(h?.total_return, h ? fmtPct(h.total_return) : "", { "data-col": "total_return" }),
      numCell(h?.apy, h ? fmtPct(h.apy) : "", { "data-col": "apy" }),
      numCell(h ? -h.max_drawdown : null, h ? fmtPct(h.max_drawdown) : "", { "data-col": "max_drawdown" }),
      plainCell(h?.final_nav, h ? fmtMoney(h.final_nav, h.share_class) : "", { "data-col": "final_nav" }),
      el("td", {}, del));
  }));
};

// --- a run's tearsheet: every panel from GET /backtests/{id}/tearsheet, drawn as the report draws it --------
PAGES.run = async ([id]) => {
  document.title = `basiskit ${id}`;
  $("run-title").textContent = id;
  const s = await followRun(id);
  if (s.status !== "done") {
    $("run-meta").textContent = `${s.mode}: ${s.status}` + (s.error ? ` - ${s.error}` : "");
    return;
  }
  $("run-state").hidden = true;
  const [summary, sheet] = await Promise.all([api(`/backtests/${enc(id)}/result`), api(`/backtests/${enc(id)}/tearsheet`)]);
  const ccy = summary.share_class;
  $("run-title").textContent = `${summary.mode}: ${summary.start.slice(0, 10)} .. ${summary.end.slice(0, 10)}`;
  $("run-meta").textContent = `run ${id}, strategy ${summary.strategy}, share class ${ccy}, ${summary.steps.toLocaleString("en-US")} hourly steps, `
    + `capital ${fmtMoney(summary.initial_capital, ccy)}, config ${summary.config_hash.slice(0, 12)}, data ${summary.data_hash.slice(0, 12)}`;
  await Promise.all([signedLink($("report-link"), `/backtests/${enc(id)}/report`),
                     signedLink($("csv-link"), `/backtests/${enc(id)}/timeseries?format=csv`),
                     signedLink($("parquet-link"), `/backtests/${enc(id)}/timeseries?format=parquet`)]);
  fill($("headline"), sheet.headline.map((m) => el("div", { class: "card", title: m.definition, "data-key": m.key },
    el("div", { class: "label" }, m.label), el("div", { class: "value", "data-value": m.value ?? "" }, fmtMetric(m.unit, m.value, ccy)))));
  monthlyTable(sheet);
  fill($("drawdowns").tBodies[0], sheet.drawdowns.map((d, i) => el("tr", { "data-rank": i },
    el("td", { "data-col": "start" }, shortTime(d.start)), el("td", { "data-col": "trough" }, shortTime(d.trough)),
    el("td", { "data-col": "end" }, d.end ? shortTime(d.end) : "not recovered"),
    numCell(-d.depth, fmtPct(d.depth, 4), { "data-col": "depth", "data-value": d.depth }),
    plainCell(d.hours, fmtHours(d.hours), { "data-col": "hours" }))));
  $("attr-ccy").textContent = ccy;
  const usd = sheet.attribution.usd;
  // the residual is float noise, not a gain or a loss: shown as such
  const cell = (v, digits, k, attrs) => (k === "residual" ? plainCell(v, Number(v).toExponential(2), attrs)
    : numCell(v, fmtFixed(v, digits), attrs));
  fill($("attribution").tBodies[0], Object.entries(sheet.attribution.share_class).map(([k, v]) => el("tr", { "data-source": k },
    el("td", {}, k), cell(v, ccy === "ETH" ? 6 : 2, k, { "data-col": "share_class" }),
    cell(usd[k], 2, k, { "data-col": "usd" }))));
  $("costs-ccy").textContent = ccy;
  fill($("costs").tBodies[0], Object.entries(sheet.costs_by_kind).map(([k, v]) => el("tr", { "data-cost": k },
    el("td", {}, k), numCell(-v, fmtFixed(v, ccy === "ETH" ? 6 : 2), { "data-value": v }))));
  window.tablesAt = performance.now();  // ms from the navigation's start to the figures and tables shown
  fill($("panels"), sheet.panels.map((p) => el("section", { class: "panel" }, el("h2", {}, p.title),
    el("div", { class: "chart", id: `panel-${p.id}` }))));
  // the panels on screen first; the rest one by one after, so the page is usable at once
  const onScreen = (p) => $(`panel-${p.id}`).getBoundingClientRect().top < window.innerHeight;
  const first = sheet.panels.filter(onScreen), later = sheet.panels.filter((p) => !onScreen(p));
  await Promise.all(first.map((p) => plot(`panel-${p.id}`, p.figure.data, p.figure.layout)));
  window.firstScreenAt = performance.now();  // ms from the navigation's start to the first screen drawn
  drawLater(later);
};

async function drawLater(panels) {
  for (const p of panels) {
    await sleep(0);  // between two charts the page answers input
    await plot(`panel-${p.id}`, p.figure.data, p.figure.layout);
  }
  window.allPanelsAt = performance.now();  // ms from the navigation's start to the last panel drawn
  document.body.dataset.panels = "drawn";
}

// Year by month, as the report's table (the same cells: data-month YYYY-MM, data-year YYYY).
function monthlyTable(sheet) {
  const months = Object.fromEntries(sheet.monthly_returns.map((m) => [m.month, m.return]));
  const cell = (v, attrs) => numCell(v, fmtPct(v), attrs);
  fill($("monthly-returns"), [
    el("thead", {}, el("tr", {}, el("th", {}, "year"), MONTHS.map((m) => el("th", { class: "num" }, m)), el("th", { class: "num" }, "year"))),
    el("tbody", {}, sheet.yearly_returns.map((y) => el("tr", {}, el("th", {}, y.year),
      MONTHS.map((_, i) => {
        const key = `${y.year}-${String(i + 1).padStart(2, "0")}`;
        return key in months ? cell(months[key], { "data-month": key }) : el("td");
      }), cell(y.return, { "data-year": y.year }))))]);
}

// --- compare: 2 to 6 runs side by side ------------------------------------------------------------
PAGES.compare = async (args, query) => {
  const ids = query.getAll("ids");
  const page = await api("/backtests?page=1&page_size=200&status=done");
  fill($("compare-choices").tBodies[0], page.items.map((r) => el("tr", {},
    el("td", {}, el("input", { type: "checkbox", class: "pick", value: r.id, checked: ids.includes(r.id) })),
    el("td", {}, link(`/ui/runs/${enc(r.id)}`, r.id)), el("td", {}, r.mode),
    el("td", {}, r.headline ? `${r.headline.start.slice(0, 10)} .. ${r.headline.end.slice(0, 10)}` : ""),
    numCell(r.headline?.apy, r.headline ? fmtPct(r.headline.apy) : ""))));
  $("compare-pick").addEventListener("submit", (e) => {
    e.preventDefault();
    const picked = [...document.querySelectorAll(".pick:checked")].map((c) => `ids=${enc(c.value)}`);
    location.search = picked.join("&");
  });
  if (!ids.length) return;
  const c = await api(`/compare?${ids.map((i) => `ids=${enc(i)}`).join("&")}`);
  await plot("compare-nav", c.series.map((s) => ({ x: s.timestamp, y: s.nav_indexed, name: s.run_id })),
       { title: { text: "NAV indexed to 100 (share index)" }, legend: { orientation: "h" } });
  await plot("compare-drawdown", c.series.map((s) => ({ x: s.timestamp, y: s.drawdown.map((d) => -d), name: s.run_id })),
       { title: { text: "Drawdown" }, yaxis: { tickformat: ".1%" }, legend: { orientation: "h" } });
  const fmt = (name, v) => (name === "final_nav" ? fmtNum(v, 4) : name === "sharpe" ? (nothing(v) ? "n/a" : v.toFixed(3)) : fmtPct(v, 4));
  fill($("compare-table"), [el("thead", {}, el("tr", {}, el("th", {}, "metric"), c.runs.map((id) => el("th", { class: "num" }, id)))),
    el("tbody", {}, c.metrics.map((m) => el("tr", { "data-metric": m.metric }, el("th", {}, m.metric),
      m.values.map((v, i) => plainCell(v, i === 0 ? fmt(m.metric, v)
        : `${fmt(m.metric, v)} (${nothing(m.difference[i]) ? "n/a" : (m.difference[i] >= 0 ? "+" : "") + fmt(m.metric, m.difference[i])})`,
        { "data-run": c.runs[i] })))))]);
  fill($("compare-config"), [el("thead", {}, el("tr", {}, el("th", {}, "config key"), c.runs.map((id) => el("th", {}, id)))),
    el("tbody", {}, c.config_differences.map((d) => el("tr", { "data-key": d.key }, el("th", {}, d.key),
      d.values.map((v) => el("td", {}, v === undefined || v === null ? "(unset)" : typeof v === "object" ? JSON.stringify(v) : String(v))))))]);
};
