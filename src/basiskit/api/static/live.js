// One live session (/ui/sessions/live/{name}, started with `basiskit live run`): its NAV so far, every holding
// as the venues state it, what it should have been after the previous hour, the unexplained rest, the hour's
// PnL by source, the orders of the last reading (with approve, reject, kill and resume) and the alerts.
async function showLive(name) {
  const [st, readings] = await Promise.all([api(`/live/${enc(name)}`), api(`/live/${enc(name)}/ticks`)]);
  const last = st.last;
  $("live-status").textContent = `${st.name}: ${st.status}` + (st.error ? ` - ${st.error}` : "")
    + (last ? `, tick ${last.tick} at ${last.timestamp} (block ${last.block ?? "-"}), NAV ${fmtNum(last.nav_usd)} USD`
      : ", no reading yet");
  const lines = {};
  for (const line of (last && last.reconciliation ? last.reconciliation.lines : [])) lines[line.key] = line;
  const rows = Object.entries(last ? last.book.holdings : {})
    .filter(([key, h]) => h.units !== 0 || lines[key])
    .map(([key, h]) => el("tr", { "data-key": key }, el("td", {}, key), plainCell(h.units, fmtNum(h.units), { "data-col": "units" }),
      el("td", {}, fmtNum(h.price)), el("td", {}, lines[key] ? fmtNum(lines[key].expected) : ""),
      el("td", { "data-col": "unexplained" }, lines[key] ? fmtNum(lines[key].unexplained) : "")));
  fill($("live-book").querySelector("tbody"), rows);
  const attribution = last && last.reconciliation ? last.reconciliation.attribution : {};
  fill($("live-attribution"), Object.entries(attribution).map(([k, v]) =>
    el("tr", {}, el("th", {}, k), el("td", { "data-source": k }, fmtNum(v)))));
  const plan = last && last.plan;
  const orders = last ? (await api(`/live/${enc(name)}/orders`)).filter((o) => o.tick === last.tick) : [];
  shownPlan[name] = { plan: last ? last.tick : null,
    ids: orders.filter((o) => o.status === "awaiting").map((o) => o.client_id) };
  fill($("live-orders").querySelector("tbody"), orders.map((o) =>
    el("tr", { "data-client-id": o.client_id || "" }, el("td", {}, o.venue), el("td", {}, o.instrument),
      el("td", { "data-col": "side" }, o.side), el("td", { "data-col": "size" }, fmtNum(o.size)),
      el("td", { "data-col": "status" }, o.status || ""), el("td", {}, fmtNum(o.filled)),
      el("td", {}, o.client_id || ""), el("td", {}, o.reason + (o.safety ? " (safety)" : "")
        + (o.note ? ` - ${o.note}` : "")))));
  $("live-status").textContent += (st.halted ? " - HALTED (nothing is sent until resumed)" : "")
    + (st.execute && st.execute !== "off" ? ` - orders: ${st.execute}` : "");
  const left = Object.entries(plan ? plan.unmodelled : {});
  $("live-unmodelled").textContent = !last ? "" : !plan ? "no plan for this reading (see the alerts)"
    : left.length ? "left out of the plan (no position of the mode): "
      + left.map(([k, usd]) => `${k} ${fmtNum(usd)} USD`).join(", ") : "";
  fill($("live-alerts"), st.alerts.map((a) =>
    el("li", { "data-kind": a.kind }, `${a.timestamp} `, el("b", { "data-plain": "1" }, a.kind), `: ${a.message}`)));
  // the chart last: the tables never wait for plotly.js
  await plot("live-nav", [{ x: readings.map((r) => r.timestamp), y: readings.map((r) => r.nav_usd), name: "NAV (USD)" }],
             { title: { text: `${name}: NAV so far (USD)` } });
}

// An operator's controls (the API's trade role): the orders on screen approved or rejected (by plan and id: never
// a plan not yet shown), a kill, a resume.
const shownPlan = {};
async function liveControl(name, action) {
  const shown = shownPlan[name] || { plan: null, ids: [] };
  if ((action === "approve" || action === "reject") && (shown.plan === null || !shown.ids.length)) {
    $("live-control").textContent = "no order of the plan on screen awaits approval";
    return;
  }
  try {
    const body = action === "approve" || action === "reject" ? { plan: shown.plan, ids: shown.ids } : {};
    const got = await postJson(`/live/${enc(name)}/${action}`, body);
    $("live-control").textContent = got.decided ? `${got.decided.length} order(s) ${got.status}` : `session ${got.status}`;
  } catch (err) {
    $("live-control").textContent = String(err.body?.detail || err.status);  // a 403 names the role it needs
  }
  await showLive(name);
}

PAGES.live = async ([name]) => {
  $("live-title").textContent = `Live session ${name}`;
  for (const action of ["approve", "reject", "kill", "resume"]) $(`live-${action}`).addEventListener("click", () => liveControl(name, action));
  await showLive(name);
  setInterval(() => showLive(name).catch(() => {}), 5000);  // a reading an hour: a 5 s refresh is plenty
};
