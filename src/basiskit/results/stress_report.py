"""The HTML report of a stress test: the baseline and the shocked run drawn together (NAV, health factor,
margin ratios, liquidation distances, the scenario's events), the comparison, and the liquidation map
when a grid was run."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .html import epoch_ms, page, thin


def _pair(title: str, base: pd.DataFrame, shocked: pd.DataFrame, columns: list[str], at_ms: float) -> go.Figure:
    t = epoch_ms(shocked["timestamp"])
    series = [np.asarray(frame[c], dtype=float) for c in columns for frame in (base, shocked)]
    series = [np.where(np.isfinite(y), y, np.nan) for y in series]
    idx = thin(len(t), series)
    fig = go.Figure()
    for i, c in enumerate(columns):
        for j, (label, dash) in enumerate((("baseline", "dot"), ("scenario", "solid"))):
            fig.add_trace(go.Scatter(x=t[idx], y=series[2 * i + j][idx], name=f"{c} ({label})",
                                     line={"dash": dash}))
    fig.add_vline(x=at_ms, line_dash="dash", line_color="red")
    fig.update_layout(title=title, height=380, margin={"l": 60, "r": 30, "t": 50, "b": 40},
                      legend={"orientation": "h"})
    fig.update_xaxes(type="date")
    return fig


def figures(result: dict, base: pd.DataFrame, shocked: pd.DataFrame, events: pd.DataFrame) -> list[go.Figure]:
    at_ms = float(epoch_ms(pd.Series([pd.Timestamp(result["at"])]))[0])
    figs = [_pair(f"NAV ({result['baseline']['share_class']}): baseline dotted, scenario solid, shock at the red line",
                  base, shocked, ["nav"], at_ms)]
    liq = events[events["type"] == "liquidation"]
    if len(liq):
        t = epoch_ms(shocked["timestamp"])
        k = liq["tick"].to_numpy()
        figs[0].add_trace(go.Scatter(x=t[k], y=shocked["nav"].to_numpy()[k], mode="markers", name="liquidation",
                                     text=liq["message"], marker={"symbol": "x", "size": 11, "color": "#d62728"}))
    for title, prefix in (("Health factor", "health_factor"), ("Margin ratio per venue", "margin_ratio:"),
                          ("Liquidation distance (the adverse move that liquidates)", "liq_distance:")):
        cols = [c for c in shocked.columns if c == prefix or (prefix.endswith(":") and c.startswith(prefix))]
        cols = [c for c in cols if c in base and np.isfinite(shocked[c].replace(np.inf, np.nan)).any()]
        if cols:
            figs.append(_pair(title, base, shocked, cols, at_ms))
    grid = result.get("grid")
    if grid and grid["runs"]:
        figs.append(liquidation_map_figure(grid))
    return figs


def liquidation_map_figure(grid: dict) -> go.Figure:
    """Liquidated (1) or not (0) over one or two axes, the loss against the unshocked run in the hover."""
    axes = grid["axes"]
    runs = grid["runs"]
    if len(axes) == 1:
        xs = [r["params"][axes[0]] for r in runs]
        fig = go.Figure(go.Bar(x=[str(x) for x in xs], y=[r["loss"] for r in runs],
                               marker_color=["#d62728" if r["liquidated"] else "#2ca02c" for r in runs],
                               text=["liquidated" if r["liquidated"] else "" for r in runs]))
        fig.update_layout(title=f"liquidation map: loss against the unshocked run over {axes[0]} (red: liquidated)",
                          xaxis_title=axes[0], yaxis_title="loss")
    else:
        xs = sorted({r["params"][axes[0]] for r in runs})
        ys = sorted({r["params"][axes[1]] for r in runs})
        z = [[None] * len(xs) for _ in ys]
        text = [[""] * len(xs) for _ in ys]
        for r in runs:
            i, j = ys.index(r["params"][axes[1]]), xs.index(r["params"][axes[0]])
            z[i][j] = 1 if r["liquidated"] else 0
            text[i][j] = f"loss {r['loss']:.6g}" if r["loss"] is not None else (r["error"] or "")[:80]
        fig = go.Figure(go.Heatmap(x=[str(v) for v in xs], y=[str(v) for v in ys], z=z, text=text,
                                   colorscale=[[0, "#2ca02c"], [1, "#d62728"]], zmin=0, zmax=1,
                                   hovertemplate="%{x}, %{y}: %{text}<extra></extra>",
                                   colorbar={"tickvals": [0, 1], "ticktext": ["survives", "liquidated"]}))
        fig.update_layout(title=f"liquidation map over {axes[0]} and {axes[1]}", xaxis_title=axes[0],
                          yaxis_title=axes[1])
    fig.update_layout(height=420, margin={"l": 70, "r": 30, "t": 60, "b": 50})
    return fig


ROWS = [("final NAV", "final_nav", "{:,.4f}"), ("total return", "total_return", "{:.4%}"), ("APY", "apy", "{:.4%}"),
        ("max drawdown", "max_drawdown", "{:.4%}"), ("min health factor", "min_health_factor", "{:.4f}"),
        ("rebalances", "rebalances", "{}"), ("transaction costs", None, "{:,.4f}")]


def render(result: dict, base: pd.DataFrame, shocked: pd.DataFrame, events: pd.DataFrame) -> str:
    figs = figures(result, base, shocked, events)
    b, s = result["baseline"], result["scenario"]

    def cell(summary: dict, key: str | None, fmt: str) -> str:
        value = summary.get("pnl_attribution", {}).get("transaction_costs") if key is None else summary.get(key)
        return "" if value is None else fmt.format(value)

    rows = [(label, cell(b, key, fmt), cell(s, key, fmt)) for label, key, fmt in ROWS]
    rows.append(("liquidations", str(b["liquidations"]["count"]), str(s["liquidations"]["count"])))
    for venue in sorted(set(b.get("min_liquidation_distance", {})) | set(s.get("min_liquidation_distance", {}))):
        rows.append((f"min liquidation distance {venue}",
                     *[f"{x['min_liquidation_distance'][venue]:.4%}" if venue in x.get("min_liquidation_distance", {})
                       else "" for x in (b, s)]))
    table = "".join(f"<tr><th>{html.escape(a)}</th><td>{html.escape(c)}</td><td>{html.escape(d)}</td></tr>"
                    for a, c, d in rows)
    liqs = "".join(f"<tr><td>{html.escape(x['at'])}</td><td>{html.escape(str(x['venue']))}</td>"
                   f"<td>{html.escape(x['message'])}</td></tr>" for x in result["liquidations"])
    acts = "".join(f"<tr><td>{html.escape(x['at'])}</td><td>{html.escape(x['type'])}</td>"
                   f"<td>{html.escape(x['message'])}</td></tr>" for x in result["triggered_actions"][:300])
    shocks = "; ".join(", ".join(f"{k}={v}" for k, v in sh.items() if v is not None and k != "at")
                       for sh in result["shocks"])
    recover = result["time_to_recover_hours"]
    title = f"basiskit stress {result.get('stress_id', '')} {result['mode']}"
    body = f"""<h1>{html.escape(title)}</h1>
<p>shocks from {html.escape(result['at'])}: {html.escape(shocks)}</p>
<p>loss against the baseline at the end: <b>{result['loss_vs_baseline']:,.4f}</b>; the largest, {
    result['max_loss_vs_baseline']['value']:,.4f} at {html.escape(result['max_loss_vs_baseline']['at'])};
time to recover: {'not within the window' if recover is None else f'{recover} h'}</p>
<table id="comparison"><tr><th></th><th>baseline</th><th>scenario</th></tr>{table}</table>
{"".join(f"{{chart:{i}}}" for i in range(len(figs)))}
<h2>Liquidations in the scenario</h2>
<table id="liquidations"><tr><th>time</th><th>venue</th><th></th></tr>{liqs}</table>
<h2>What the shock made the strategy do</h2>
<table id="actions"><tr><th>time</th><th>type</th><th></th></tr>{acts}</table>"""
    return page(title, body, figs)


def render_stored(store, result: dict) -> str:
    """The report of a finished stress test whose runs are in `store` (a StressStore)."""
    scenario = result["scenario"]["run_id"]
    return render(result, store.ticks(result["baseline"]["run_id"]), store.ticks(scenario), store.events(scenario))
