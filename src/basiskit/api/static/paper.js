// Sessions: every paper and live session (/ui/sessions), and one paper session (/ui/sessions/paper/{name}),
// followed as it advances: NAV hour by hour, risk and positions, order intents, alerts.
PAGES.sessions = async () => {
  const [paper, live] = await Promise.all([api("/paper"), api("/live")]);
  const row = (kind, s) => el("tr", { "data-session": s.name, "data-kind": kind },
    el("td", {}, link(`/ui/sessions/${kind}/${enc(s.name)}`, s.name)), el("td", {}, kind), el("td", {}, s.mode),
    el("td", {}, s.status + (s.error ? ` (${s.error})` : "")));
  fill($("sessions").tBodies[0], [...paper.map((s) => row("paper", s)), ...live.map((s) => row("live", s))]);
};

function paperMetrics(st) {
  const ccy = st.share_class;
  const rows = [["NAV", st.nav === null ? "" : fmtMoney(st.nav, ccy)],
                ["NAV (USD)", st.nav_usd === null ? "" : fmtMoney(st.nav_usd, "USD")]];
  const r = st.risk || {};
  if (r.health_factor !== undefined && r.health_factor !== null) rows.push(["health factor", r.health_factor.toFixed(4)]);
  for (const [v, x] of Object.entries(r.margin_ratio || {})) rows.push([`margin ratio ${v}`, x === null ? "" : x.toFixed(4)]);
  for (const [v, x] of Object.entries(r.liq_distance || {})) rows.push([`liquidation distance ${v}`, fmtPct(x)]);
  if (r.net_delta_pct !== undefined) rows.push(["|net delta| / NAV", fmtPct(r.net_delta_pct)]);
  for (const [k, q] of Object.entries(st.positions || {})) rows.push([k, fmtNum(q)]);
  fill($("paper-metrics"), rows.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", { class: "num", "data-metric": k }, v))));
  fill($("paper-alerts"), st.alerts.map((a) =>
    el("li", { "data-kind": a.kind }, `${a.timestamp} `, el("b", { "data-plain": "1" }, a.kind), `: ${a.message}`)));
  $("paper-alert-count").textContent = `(${st.alert_count})`;
}

PAGES.paper = async ([name]) => {
  $("paper-title").textContent = `Paper session ${name}`;
  let after = -1, charted = false;
  for (;;) {
    const ticks = await api(`/paper/${enc(name)}/ticks?after=${after}`);
    const [st, orders] = await Promise.all([api(`/paper/${enc(name)}`), api(`/paper/${enc(name)}/orders`)]);
    $("paper-status").textContent = `${name} (${st.mode}): ${st.status}, tick ${st.last_tick ?? "-"} of ${st.n_points - 1}`
      + (st.last_ts ? ` (${st.last_ts})` : "") + (st.error ? ` - ${st.error}` : "");
    paperMetrics(st);
    fill($("paper-orders").tBodies[0], orders.slice(-200).map((o) => el("tr", {}, el("td", {}, shortTime(o.timestamp)),
      el("td", {}, o.venue), el("td", {}, o.instrument), el("td", {}, o.side), plainCell(o.size, fmtNum(o.size)),
      el("td", {}, o.reason))));
    if (!charted) {  // after the tables: they never wait for plotly.js
      await plot("paper-nav", [{ x: [], y: [], name: "NAV", mode: "lines" }], { title: { text: `${name}: NAV so far` } });
      charted = true;
    }
    if (ticks.length) {
      Plotly.extendTraces("paper-nav", { x: [ticks.map((t) => t.timestamp)], y: [ticks.map((t) => t.nav)] }, [0]);
      after = ticks[ticks.length - 1].tick;
    }
    if (st.status !== "running" && !ticks.length) return;
    await sleep(500);
  }
};
