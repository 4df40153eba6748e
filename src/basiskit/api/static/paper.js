// basiskit dashboard, Paper page: follow a paper session (started with `basiskit paper run`) as it
// advances: NAV hour by hour, health factor, margin ratios, liquidation distances, alerts. Every number
// comes from the API.
let paperFollowing = null;

async function loadPaperSessions() {
  const sessions = await api("/paper");
  const select = $("paper-session");
  const current = select.value;
  fill(select, sessions.map((s) => el("option", { value: s.name }, `${s.name} (${s.mode}, ${s.status})`)));
  if (current && sessions.some((s) => s.name === current)) select.value = current;
  if (!paperFollowing && sessions.length) followPaper(select.value);
}

function paperMetrics(st) {
  const ccy = st.share_class;
  const rows = [["NAV", st.nav === null ? "" : `${fmtNum(st.nav)} ${ccy}`],
                ["NAV (USD)", st.nav_usd === null ? "" : `${fmtNum(st.nav_usd)} USD`]];
  const r = st.risk || {};
  if (r.health_factor !== undefined && r.health_factor !== null) rows.push(["health factor", r.health_factor.toFixed(4)]);
  for (const [v, x] of Object.entries(r.margin_ratio || {})) rows.push([`margin ratio ${v}`, x === null ? "" : x.toFixed(4)]);
  for (const [v, x] of Object.entries(r.liq_distance || {})) rows.push([`liquidation distance ${v}`, fmtPct(x)]);
  if (r.net_delta_pct !== undefined) rows.push(["|net delta| / NAV", fmtPct(r.net_delta_pct)]);
  for (const [k, q] of Object.entries(st.positions || {})) rows.push([k, fmtNum(q)]);
  fill($("paper-metrics"), rows.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", { "data-metric": k }, v))));
  fill($("paper-alerts"), st.alerts.map((a) =>
    el("li", { "data-kind": a.kind }, `${a.timestamp} `, el("b", {}, a.kind), `: ${a.message}`)));
  $("paper-alert-count").textContent = `(${st.alert_count})`;
}

async function followPaper(name) {
  const token = {};
  paperFollowing = token;
  let after = -1;
  Plotly.newPlot("paper-nav", [{ x: [], y: [], name: "NAV", mode: "lines" }],
                 { title: { text: `${name}: NAV` }, margin: { t: 40 } });
  for (;;) {
    if (paperFollowing !== token) return;  // another session was picked
    const ticks = await api(`/paper/${encodeURIComponent(name)}/ticks?after=${after}`);
    if (ticks.length) {
      Plotly.extendTraces("paper-nav", { x: [ticks.map((t) => t.timestamp)], y: [ticks.map((t) => t.nav)] }, [0]);
      after = ticks[ticks.length - 1].tick;
    }
    const st = await api(`/paper/${encodeURIComponent(name)}`);
    $("paper-status").textContent = `${name}: ${st.status}, tick ${st.last_tick ?? "-"} of ${st.n_points - 1}`
      + (st.last_ts ? ` (${st.last_ts})` : "") + (st.error ? ` - ${st.error}` : "");
    paperMetrics(st);
    if (st.status !== "running" && !ticks.length) {
      await loadPaperSessions();  // the list shows the session's final status
      return;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

$("paper-session").addEventListener("change", () => followPaper($("paper-session").value));
$("paper-refresh").addEventListener("click", loadPaperSessions);
loadPaperSessions();
setInterval(() => { if (!$("paper-session").options.length) loadPaperSessions(); }, 2000);
