// basiskit dashboard, Live page: a live session's last reading (started with `basiskit live run`): every
// holding as the venues state it, what it should have been after the previous hour, the unexplained rest,
// the hour's PnL by source, the strategy's order intents on that book (nothing is sent) and the alerts. Every number comes from the API; names are shown as text.
async function loadLiveSessions() {
  const sessions = await api("/live");
  const select = $("live-session");
  const current = select.value;
  fill(select, sessions.map((s) => el("option", { value: s.name }, `${s.name} (${s.mode}, ${s.status})`)));
  if (current && sessions.some((s) => s.name === current)) select.value = current;
  if (select.value) await showLive(select.value);
}

async function showLive(name) {
  const st = await api(`/live/${encodeURIComponent(name)}`);
  const last = st.last;
  $("live-status").textContent = `${st.name}: ${st.status}` + (st.error ? ` - ${st.error}` : "")
    + (last ? `, tick ${last.tick} at ${last.timestamp} (block ${last.block ?? "-"}), NAV ${fmtNum(last.nav_usd)} USD`
      : ", no reading yet");
  const lines = {};
  for (const line of (last && last.reconciliation ? last.reconciliation.lines : [])) lines[line.key] = line;
  const rows = Object.entries(last ? last.book.holdings : {})
    .filter(([key, h]) => h.units !== 0 || lines[key])
    .map(([key, h]) => el("tr", { "data-key": key }, el("td", {}, key), el("td", { "data-col": "units" }, fmtNum(h.units)),
      el("td", {}, fmtNum(h.price)), el("td", {}, lines[key] ? fmtNum(lines[key].expected) : ""),
      el("td", { "data-col": "unexplained" }, lines[key] ? fmtNum(lines[key].unexplained) : "")));
  fill($("live-book").querySelector("tbody"), rows);
  const attribution = last && last.reconciliation ? last.reconciliation.attribution : {};
  fill($("live-attribution"), Object.entries(attribution).map(([k, v]) =>
    el("tr", {}, el("th", {}, k), el("td", { "data-source": k }, fmtNum(v)))));
  const plan = last && last.plan;
  const orders = last ? (await api(`/live/${encodeURIComponent(name)}/orders`)).filter((o) => o.tick === last.tick) : [];
  fill($("live-orders").querySelector("tbody"), orders.map((o) =>
    el("tr", { "data-client-id": o.client_id || "" }, el("td", {}, o.venue), el("td", {}, o.instrument),
      el("td", { "data-col": "side" }, o.side), el("td", { "data-col": "size" }, fmtNum(o.size)),
      el("td", { "data-col": "status" }, o.status || ""), el("td", {}, fmtNum(o.filled)),
      el("td", {}, o.client_id || ""), el("td", {}, o.reason))));
  $("live-status").textContent += (st.halted ? " - HALTED (nothing is sent until resumed)" : "")
    + (st.execute && st.execute !== "off" ? ` - orders: ${st.execute}` : "");
  const left = Object.entries(plan ? plan.unmodelled : {});
  $("live-unmodelled").textContent = !last ? "" : !plan ? "no plan for this reading (see the alerts)"
    : left.length ? "left out of the plan (no position of the mode): "
      + left.map(([k, usd]) => `${k} ${fmtNum(usd)} USD`).join(", ") : "";
  fill($("live-alerts"), st.alerts.map((a) =>
    el("li", { "data-kind": a.kind }, `${a.timestamp} `, el("b", {}, a.kind), `: ${a.message}`)));
}

// An operator's controls (the API's operate role): every awaiting order approved or rejected, a kill, a resume.
async function control(action) {
  const name = $("live-session").value;
  if (!name) return;
  try {
    const got = await postJson(`/live/${encodeURIComponent(name)}/${action}`, {});
    $("live-control").textContent = got.decided ? `${got.decided.length} order(s) ${got.status}` : `session ${got.status}`;
  } catch (err) {
    $("live-control").textContent = err.status === 403 ? "this token may only read" : String(err.body?.detail || err.status);
  }
  await showLive(name);
}
for (const action of ["approve", "reject", "kill", "resume"]) $(`live-${action}`).addEventListener("click", () => control(action));

$("live-session").addEventListener("change", () => showLive($("live-session").value));
$("live-refresh").addEventListener("click", loadLiveSessions);
loadLiveSessions();
