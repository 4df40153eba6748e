"""The HTML report of a stored run: one self-contained file (opens offline; see results/html.py for
how it stays light). Every number comes from the stored summary, per-tick table and events of the run.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import metrics
from .html import POINTS_PER_TRACE, epoch_ms, page, script_json, thin
from .tearsheet import tearsheet

EVENT_MARKERS = {"rebalance": ("triangle-up", "#1f77b4"), "liquidation": ("x", "#d62728"),
                 "risk_alert": ("diamond", "#ff7f0e"), "deposit": ("circle", "#2ca02c"),
                 "withdrawal": ("circle-open", "#9467bd")}


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _prefixed(ticks: pd.DataFrame, prefix: str) -> list[str]:
    return [c for c in ticks.columns if c.startswith(prefix)]


def _series(t: np.ndarray, traces: list[tuple[str, np.ndarray, dict]]) -> list[go.Scatter]:
    """Scatter traces over time sharing one thinned set of points (every bucket's extremes kept)."""
    ys = [np.asarray(y, dtype=np.float64) for _, y, _ in traces]
    idx = thin(len(t), ys)
    return [go.Scatter(x=t[idx], y=y[idx], name=name, **kw) for (name, _, kw), y in zip(traces, ys, strict=True)]


def figures(summary: dict, ticks: pd.DataFrame, events: pd.DataFrame, config: dict | None) -> list[go.Figure]:
    ccy = summary["share_class"]
    t = epoch_ms(ticks["timestamp"])
    col = ticks.__getitem__
    figs = []

    nav = make_subplots(specs=[[{"secondary_y": True}]])
    own, usd = _series(t, [(f"NAV ({ccy})", col("nav"), {}), ("NAV (USD)", col("nav_usd"), {"line": {"dash": "dot"}})])
    nav.add_trace(own, secondary_y=False)
    nav.add_trace(usd, secondary_y=True)
    for kind, (symbol, color) in EVENT_MARKERS.items():
        ev = events[events["type"] == kind]
        if len(ev):
            k = ev["tick"].to_numpy()
            nav.add_trace(go.Scatter(x=t[k], y=col("nav").to_numpy()[k], mode="markers", name=kind,
                                     text=ev["message"], marker={"symbol": symbol, "color": color, "size": 9}),
                          secondary_y=False)
    nav.update_layout(title="NAV and events")
    figs.append(nav)

    dd = go.Figure(_series(t, [("drawdown", -col("drawdown"), {"fill": "tozeroy"})]))
    dd.update_layout(title="Drawdown of the share index", yaxis_tickformat=".2%")
    figs.append(dd)

    attr = go.Figure(_series(t, [(c.removeprefix("cum_pnl_"), col(c), {"stackgroup": "pnl"})
                                 for c in _prefixed(ticks, "cum_pnl_")]
                                + [("residual (cumulative)", col("residual").cumsum(),
                                    {"line": {"color": "black", "dash": "dash"}})]))
    attr.update_layout(title=f"Cumulative PnL attribution ({ccy})")
    figs.append(attr)

    lines = []
    for c in ("health_factor", "ltv", *_prefixed(ticks, "margin_ratio:")):
        if c in ticks:
            y = col(c).replace([np.inf, -np.inf], np.nan)
            if y.fillna(0.0).ne(0.0).any():  # only what the mode has (no LTV line without debt)
                lines.append((c, y, {}))
    risk = go.Figure(_series(t, lines) if lines else [])
    for name, level in _limits(config).items():
        risk.add_hline(y=level, line_dash="dot", annotation_text=name)
    if risk.data:
        risk.update_layout(title="Risk: health factor, LTV, margin ratio per venue (limits dotted)")
        figs.append(risk)

    distances = [c for c in _prefixed(ticks, "liq_distance:") if np.isfinite(col(c).to_numpy(dtype=float)).any()]
    if distances:
        dist = go.Figure(_series(t, [(c.removeprefix("liq_distance:"), col(c).replace([np.inf], np.nan), {})
                                     for c in distances]))
        dist.update_layout(title="Liquidation distance: the adverse move that liquidates (Aave: the collateral's "
                                 "fall against the debt; perps: the mark's move)", yaxis_tickformat=".1%")
        figs.append(dist)

    for v in (summary.get("intrabar_by_venue") or {}):
        if f"margin_ratio_intrabar:{v}" in ticks:
            intra = go.Figure(_series(t, [("at the hour's open", col(f"margin_ratio:{v}"), {}),
                                          ("at the hour's adverse extreme", col(f"margin_ratio_intrabar:{v}"),
                                           {"line": {"dash": "dot"}})]))
            intra.add_hline(y=1.0, line_dash="dot", annotation_text="liquidation")
            intra.update_layout(title=f"{v}: margin ratio a venue would check at the open and within the hour")
            figs.append(intra)

    if "lst_depeg" in ticks and col("lst_depeg").notna().any():
        depeg = go.Figure(_series(t, [("DEX rate / oracle rate - 1", col("lst_depeg"), {})]))
        depeg.update_layout(title="LST depeg view: DEX market rate against the oracle exchange rate",
                            yaxis_tickformat=".2%")
        figs.append(depeg)

    deltas = _prefixed(ticks, "net_delta_usdt:")
    if deltas:
        delta = go.Figure(_series(t, [(c, col(c), {}) for c in deltas]))
        delta.update_layout(title="Net delta per asset (USDT)")
        figs.append(delta)

    venues = _prefixed(ticks, "funding:")
    if venues:
        funding = go.Figure(_series(t, [(c.removeprefix("funding:"), col(c).cumsum(), {}) for c in venues]))
        funding.update_layout(title=f"Cumulative funding by venue ({ccy})")
        figs.append(funding)

    if "benchmark_susde_apy" in ticks and col("benchmark_susde_apy").notna().any():
        apy = col("benchmark_susde_apy")
        hourly = (1 + apy.fillna(0.0)) ** (1 / metrics.HOURS_PER_YEAR)
        bench = hourly.cumprod() / hourly.iloc[0]
        bench[apy.isna()] = np.nan
        cmp_fig = go.Figure(_series(t, [("strategy share index", col("share_index"), {}),
                                        ("Ethena sUSDe (from its APY)", bench, {})]))
        cmp_fig.update_layout(title="Share index against the Ethena sUSDe benchmark")
        figs.append(cmp_fig)
    for f in figs:
        f.update_layout(height=380, margin={"l": 60, "r": 30, "t": 50, "b": 40}, legend={"orientation": "h"})
        f.update_xaxes(type="date")
    return figs


def _limits(config: dict | None) -> dict[str, float]:
    if not config:
        return {}
    out = {}
    if config.get("leverage") and config.get("target_ltv"):
        out["HF floor"] = config["leverage"]["hf_floor"]
        out["target LTV"] = config["target_ltv"]
    for section in ("basis", "market_neutral"):
        if config.get(section) and config[section].get("margin_ratio_limit") and config.get("hedge_allocation"):
            out["margin ratio limit"] = config[section]["margin_ratio_limit"]
    if config.get("hedge_allocation"):
        out["liquidation (margin ratio 1)"] = 1.0
    return out


def metrics_rows(summary: dict) -> list[tuple[str, str]]:
    tuw = summary.get("time_under_water") or {}
    sharpe = summary.get("sharpe")
    return [
        ("total return", f"{summary['total_return']:.4%}"),
        ("APY", f"{summary['apy']:.4%}"),
        ("volatility (annualised)", "n/a" if summary.get("volatility") is None else f"{summary['volatility']:.4%}"),
        ("Sharpe", "n/a" if sharpe is None else f"{sharpe:.2f}"),
        ("max drawdown", f"{summary['max_drawdown']:.4%}"),
        ("time under water", f"{tuw.get('longest_hours', 0)} h longest, {tuw.get('fraction', 0):.1%} of hours"),
        ("final NAV", f"{summary['final_nav']:,.4f} {summary['share_class']}"),
        ("max |residual|", f"{summary['reconciliation_max_residual']:.3e}"),
        ("data warnings", str(summary["data_warnings"])),
    ] + [(f"PnL {k}", f"{v:,.4f}") for k, v in summary["pnl_attribution"].items()] + (
        [("note", summary["metrics_note"])] if summary.get("metrics_note") else [])


def intrabar_rows(summary: dict) -> str:
    """Per perp venue: how the margin ratio checked at each hour's open and at its adverse extreme differ
    (the perp bars are trade prices; a venue checks its mark, which follows them closely)."""
    rows = summary.get("intrabar_by_venue") or {}
    if not rows:
        return ""
    head = ("venue", "check used", "hours held", "max ratio at open", "max ratio intrabar", "mean gap", "max gap",
            "hours over the limit only intrabar", "hours liquidating only intrabar")
    checks = summary.get("liquidation_check") or {}
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(x))}</td>" for x in (
        v, checks.get(v, ""), r["hours_held"], f"{r['max_margin_ratio_at_open']:.4f}",
        f"{r['max_margin_ratio_intrabar']:.4f}", f"{r['mean_ratio_gap']:.4f}", f"{r['max_ratio_gap']:.4f}",
        r["hours_over_limit_only_intrabar"], r["hours_liquidating_only_intrabar"])) + "</tr>"
        for v, r in rows.items())
    return ("<h2>Liquidation checks: the hour's open against its adverse extreme</h2><table id=\"intrabar\"><tr>"
            + "".join(f"<th>{h}</th>" for h in head) + f"</tr>{body}</table>")


def tearsheet_html(sheet: dict) -> str:
    """The tearsheet's tables (results/tearsheet.py, the API's /tearsheet): returns by month and year, the worst
    drawdowns."""
    months = {m["month"]: m["return"] for m in sheet["monthly_returns"]}
    years = {y["year"]: y["return"] for y in sheet["yearly_returns"]}
    head = "<tr><th>year</th>" + "".join(f"<th>{m}</th>" for m in MONTHS) + "<th>year</th></tr>"
    rows = "".join(
        f"<tr><th>{y}</th>" + "".join(
            f'<td data-month="{y}-{i:02d}">{months[f"{y}-{i:02d}"]:.2%}</td>' if f"{y}-{i:02d}" in months
            else "<td></td>" for i in range(1, 13)) + f'<td data-year="{y}">{r:.2%}</td></tr>'
        for y, r in years.items())
    dd = "".join(f'<tr><td>{d["start"]}</td><td>{d["trough"]}</td><td>{d["end"] or "not recovered"}</td>'
                 f'<td data-col="depth">{d["depth"]:.4%}</td><td>{d["hours"]:,}</td></tr>' for d in sheet["drawdowns"])
    return (f'<h2>Returns by month (share index)</h2><table id="monthly-returns">{head}{rows}</table>'
            '<h2>Worst drawdowns</h2><table id="drawdowns"><tr><th>start (peak)</th><th>trough</th>'
            f"<th>recovered</th><th>depth</th><th>hours</th></tr>{dd}</table>")


def rolling_figure(sheet: dict) -> go.Figure:
    r = sheet["rolling"]
    t = epoch_ms(pd.Series(pd.to_datetime(r["timestamp"], utc=True)))
    fig = go.Figure(_series(t, [(f"APY ({r['days']} d)", np.array(r["apy"], dtype=float), {}),
                                           (f"volatility ({r['days']} d)", np.array(r["volatility"], dtype=float),
                                            {})]))
    fig.update_layout(title=f"Rolling {r['days']}-day APY and volatility", yaxis_tickformat=".1%", height=380,
                      margin={"l": 60, "r": 30, "t": 50, "b": 40}, legend={"orientation": "h"})
    fig.update_xaxes(type="date")
    return fig


def render(summary: dict, ticks: pd.DataFrame, events: pd.DataFrame, config: dict | None = None,
           csv_href: str | None = None) -> str:
    """The report; `csv_href` links the full per-tick table as CSV (the charts show it thinned to what a
    screen can show, each bucket's extremes kept)."""
    figs = figures(summary, ticks, events, config)
    sheet = tearsheet(ticks)
    figs.append(rolling_figure(sheet))
    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in metrics_rows(summary))
    notable = events[events["type"].isin(["rebalance", "liquidation", "risk_alert", "reconciliation_error"])]
    ev_rows = "".join(f"<tr><td>{r.timestamp:%Y-%m-%d %H:%M}</td><td>{html.escape(r.type)}</td>"
                      f"<td>{html.escape(r.message)}</td></tr>" for r in notable.head(500).itertuples())
    intrabar = intrabar_rows(summary)
    title = f"basiskit {summary['mode']} {summary['start']} .. {summary['end']}"
    data_link = (f'<p>Charts show {len(ticks):,} hourly points thinned to at most about {POINTS_PER_TRACE:,} per line, '
                 f'every spike kept; the full table: <a id="ticks-csv" href="{html.escape(csv_href)}">ticks as CSV</a>'
                 f"</p>" if csv_href else "")
    body = f"""<h1>{html.escape(title)}</h1>
<p>run <code>{html.escape(summary['run_id'])}</code>, strategy {html.escape(summary['strategy'])},
share class {html.escape(summary['share_class'])}, {summary['steps']} hourly steps,
config {summary['config_hash'][:12]}, data {summary['data_hash'][:12]}</p>
<h2>Metrics</h2><table id="metrics">{table}</table>
<script type="application/json" id="summary">{script_json(summary)}</script>
{tearsheet_html(sheet)}{intrabar}{data_link}{"".join(f"{{chart:{i}}}" for i in range(len(figs)))}
<h2>Events</h2><table id="events"><tr><th>time</th><th>type</th><th>message</th></tr>{ev_rows}</table>"""
    return page(title, body, figs)


def write_report(path: Path, summary: dict, ticks: pd.DataFrame, events: pd.DataFrame, config: dict | None) -> Path:
    """Write the report and, beside it, the full per-tick table as CSV (`<name>.ticks.csv`), linked from it."""
    csv_path = path.with_name(f"{path.stem}.ticks.csv")
    ticks.to_csv(csv_path, index=False)
    path.write_text(render(summary, ticks, events, config, csv_href=csv_path.name))
    return csv_path
