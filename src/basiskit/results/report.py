"""The HTML report of a stored run: one self-contained file (plotly's JS embedded, opens offline).

Every number comes from the stored summary, per-tick table and events of the run.
"""

from __future__ import annotations

import html
import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from . import metrics

EVENT_MARKERS = {"rebalance": ("triangle-up", "#1f77b4"), "liquidation": ("x", "#d62728"),
                 "risk_alert": ("diamond", "#ff7f0e"), "deposit": ("circle", "#2ca02c"),
                 "withdrawal": ("circle-open", "#9467bd")}


def _prefixed(ticks: pd.DataFrame, prefix: str) -> list[str]:
    return [c for c in ticks.columns if c.startswith(prefix)]


def figures(summary: dict, ticks: pd.DataFrame, events: pd.DataFrame, config: dict | None) -> list[go.Figure]:
    ccy = summary["share_class"]
    t = ticks["timestamp"]
    figs = []

    nav = make_subplots(specs=[[{"secondary_y": True}]])
    nav.add_trace(go.Scatter(x=t, y=ticks["nav"], name=f"NAV ({ccy})"), secondary_y=False)
    nav.add_trace(go.Scatter(x=t, y=ticks["nav_usd"], name="NAV (USD)", line={"dash": "dot"}), secondary_y=True)
    for kind, (symbol, color) in EVENT_MARKERS.items():
        ev = events[events["type"] == kind]
        if len(ev):
            nav.add_trace(go.Scatter(x=t.iloc[ev["tick"]], y=ticks["nav"].iloc[ev["tick"]], mode="markers",
                                     name=kind, text=ev["message"], marker={"symbol": symbol, "color": color,
                                                                            "size": 9}), secondary_y=False)
    nav.update_layout(title="NAV and events")
    figs.append(nav)

    dd = go.Figure(go.Scatter(x=t, y=-ticks["drawdown"], fill="tozeroy", name="drawdown"))
    dd.update_layout(title="Drawdown of the share index", yaxis_tickformat=".2%")
    figs.append(dd)

    attr = go.Figure()
    for col in _prefixed(ticks, "cum_pnl_"):
        attr.add_trace(go.Scatter(x=t, y=ticks[col], name=col.removeprefix("cum_pnl_"), stackgroup="pnl"))
    attr.add_trace(go.Scatter(x=t, y=ticks["residual"].cumsum(), name="residual (cumulative)",
                              line={"color": "black", "dash": "dash"}))
    attr.update_layout(title=f"Cumulative PnL attribution ({ccy})")
    figs.append(attr)

    risk = go.Figure()
    for col in ("health_factor", "ltv", *_prefixed(ticks, "margin_ratio:")):
        if col in ticks:
            y = ticks[col].replace([np.inf, -np.inf], np.nan)
            if y.fillna(0.0).ne(0.0).any():  # only what the mode has (no LTV line without debt)
                risk.add_trace(go.Scatter(x=t, y=y, name=col))
    for name, level in _limits(config).items():
        risk.add_hline(y=level, line_dash="dot", annotation_text=name)
    if risk.data:
        risk.update_layout(title="Risk: health factor, LTV, margin ratio per venue (limits dotted)")
        figs.append(risk)

    if "lst_depeg" in ticks and ticks["lst_depeg"].notna().any():
        depeg = go.Figure(go.Scatter(x=t, y=ticks["lst_depeg"], name="DEX rate / oracle rate - 1"))
        depeg.update_layout(title="LST depeg view: DEX market rate against the oracle exchange rate",
                            yaxis_tickformat=".2%")
        figs.append(depeg)

    delta = go.Figure([go.Scatter(x=t, y=ticks[c], name=c) for c in _prefixed(ticks, "net_delta_usdt:")])
    if delta.data:
        delta.update_layout(title="Net delta per asset (USDT)")
        figs.append(delta)

    funding = go.Figure([go.Scatter(x=t, y=ticks[c].cumsum(), name=c.removeprefix("funding:"))
                         for c in _prefixed(ticks, "funding:")])
    if funding.data:
        funding.update_layout(title=f"Cumulative funding by venue ({ccy})")
        figs.append(funding)

    if "benchmark_susde_apy" in ticks and ticks["benchmark_susde_apy"].notna().any():
        apy = ticks["benchmark_susde_apy"]
        hourly = (1 + apy.fillna(0.0)) ** (1 / metrics.HOURS_PER_YEAR)
        bench = hourly.cumprod() / hourly.iloc[0]
        bench[apy.isna()] = np.nan
        cmp_fig = go.Figure([go.Scatter(x=t, y=ticks["share_index"], name="strategy share index"),
                             go.Scatter(x=t, y=bench, name="Ethena sUSDe (from its APY)")])
        cmp_fig.update_layout(title="Share index against the Ethena sUSDe benchmark")
        figs.append(cmp_fig)
    for f in figs:
        f.update_layout(height=380, margin={"l": 60, "r": 30, "t": 50, "b": 40}, legend={"orientation": "h"})
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


def render(summary: dict, ticks: pd.DataFrame, events: pd.DataFrame, config: dict | None = None) -> str:
    figs = figures(summary, ticks, events, config)
    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in metrics_rows(summary))
    charts = "".join(f'<div class="chart">{f.to_html(full_html=False, include_plotlyjs=False)}</div>' for f in figs)
    notable = events[events["type"].isin(["rebalance", "liquidation", "risk_alert", "reconciliation_error"])]
    ev_rows = "".join(f"<tr><td>{r.timestamp:%Y-%m-%d %H:%M}</td><td>{html.escape(r.type)}</td>"
                      f"<td>{html.escape(r.message)}</td></tr>" for r in notable.head(500).itertuples())
    title = f"basiskit {summary['mode']} {summary['start']} .. {summary['end']}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<script type="text/javascript">{get_plotlyjs()}</script>
<style>body{{font-family:sans-serif;margin:24px;color:#222}} table{{border-collapse:collapse;margin-bottom:16px}}
th,td{{border:1px solid #ccc;padding:4px 10px;text-align:left}} .chart{{margin:12px 0}}</style></head>
<body><h1>{html.escape(title)}</h1>
<p>run <code>{html.escape(summary['run_id'])}</code>, strategy {html.escape(summary['strategy'])},
share class {html.escape(summary['share_class'])}, {summary['steps']} hourly steps,
config {summary['config_hash'][:12]}, data {summary['data_hash'][:12]}</p>
<h2>Metrics</h2><table id="metrics">{table}</table>
<script type="application/json" id="summary">{html.escape(json.dumps(summary, default=str))}</script>
{charts}
<h2>Events</h2><table id="events"><tr><th>time</th><th>type</th><th>message</th></tr>{ev_rows}</table>
</body></html>"""
