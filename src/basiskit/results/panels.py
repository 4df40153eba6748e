"""The run tearsheet's one definition: its headline metrics (each with a one-line definition), its tables
(costs by kind, attribution in the share class and in USD) and its chart panels (plotly figures). The HTML
report and the dashboard's run page both draw exactly these (the dashboard reads them from
GET /backtests/{id}/tearsheet), so the two cannot drift apart."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import metrics
from .html import epoch_ms, thin
from .tearsheet import tearsheet

EVENT_MARKERS = {"rebalance": ("triangle-up", "#1f77b4"), "liquidation": ("x", "#d62728"),
                 "risk_alert": ("diamond", "#ff7f0e"), "data_warning": ("square-open", "#8c564b"),
                 "deposit": ("circle", "#2ca02c"), "withdrawal": ("circle-open", "#9467bd")}
STALE_MARK = ("stale mark", "star-open", "#e377c2")

# key, label, unit ("pct", "ratio", "ccy", "hours", "count", "sci"), definition shown on hover
HEADLINE = (
    ("total_return", "Total return", "pct", "Growth of one share over the run (share index at the end - 1): "
     "deposits and withdrawals are not returns."),
    ("apy", "APY", "pct", "The total return compounded to a year: (1 + R) ^ (8760 / hours) - 1."),
    ("volatility", "Volatility", "pct", "Standard deviation of hourly share-index returns x sqrt(8760)."),
    ("sharpe", "Sharpe", "ratio", "Annualised mean hourly return over annualised volatility, no risk-free rate."),
    ("max_drawdown", "Max drawdown", "pct", "Deepest fall of the share index from a running peak (1.0 before "
     "the run is the first peak)."),
    ("longest_under_water", "Longest under water", "hours", "Longest stretch of hours below a previous peak "
     "of the share index."),
    ("under_water_share", "Time under water", "pct", "Share of the run's hours spent below a previous peak of the "
     "share index."),
    ("apy_net_of_exit", "APY net of exit", "pct", "The APY had the whole book been unwound at the last hour, "
     "at the impact of its full size (the exit cost comes off the final NAV)."),
    ("benchmark_apy", "Benchmark APY", "pct", "The config's `benchmark` (default: Aave USDT supply for USDT, EtherFi "
     "eETH staking for ETH) compounded over the same window."),
    ("final_nav", "Final NAV", "ccy", "Every balance valued at the last hour, in the share class."),
    ("exit_cost", "Exit cost", "ccy", "What unwinding the whole book at the last hour would cost (fees, slippage, "
     "impact, gas), as the strategy frees cash for a withdrawal."),
    ("rate_impact", "Rate impact", "ccy", "Extra Aave interest from the fund's own size: accrual at the rate "
     "strategy with the fund's supply and debt in the reserve, less without them (in borrow cost, supply yield)."),
    ("liquidity_constrained_hours", "Liquidity-constrained hours", "hours", "Hours the fund needed more of an Aave "
     "reserve than its other users left available (supply - debt)."),
    ("min_health_factor", "Min health factor", "ratio", "Lowest Aave health factor of the run (liquidation "
     "below 1)."),
    ("liquidations", "Liquidations", "count", "Aave and perp liquidations the run went through."),
    ("reconciliation_max_residual", "Max |residual|", "sci", "Largest hourly gap between the change of NAV "
     "from balances and the PnL attributed by source; float noise, or a bug."),
    ("data_warnings", "Data warnings", "count", "Holes in the market data the run met and handled (stale "
     "marks, missing hours), each logged as an event."),
)

COST_KINDS = ("gas", "perp fees and slippage", "spot fees and slippage", "swap slippage", "flash-loan premium",
              "transfer fees")
TRADE_COSTS = {"perp_trade": "perp fees and slippage", "spot_trade": "spot fees and slippage"}


@dataclass(frozen=True)
class Panel:
    id: str
    title: str
    figure: go.Figure

    def spec(self) -> dict:
        """The panel as JSON: plotly's own figure JSON (arrays as base64 typed arrays)."""
        return {"id": self.id, "title": self.title, "figure": json.loads(self.figure.to_json())}


def headline(summary: dict) -> list[dict]:
    """The headline metrics the run has: key, label, value (null when undefined, e.g. Sharpe after a total
    loss), unit, definition."""
    values = dict(summary)
    values["longest_under_water"] = (summary.get("time_under_water") or {}).get("longest_hours")
    values["under_water_share"] = (summary.get("time_under_water") or {}).get("fraction")
    if "liquidations" in summary:
        values["liquidations"] = summary["liquidations"]["count"]
    if summary.get("exit"):
        values["exit_cost"] = summary["exit"]["cost"]
    if summary.get("benchmark"):
        values["benchmark_apy"] = summary["benchmark"]["apy"]
    return [{"key": key, "label": label, "value": values[key], "unit": unit, "definition": definition}
            for key, label, unit, definition in HEADLINE if key in values]


def costs_of(event_type: str, details: dict) -> list[tuple[str, float]]:
    """The costs one event records, by kind (execution/executor.py books each of them to transaction_costs)."""
    if event_type == "transfer":
        return [("transfer fees", details.get("cost", 0.0))]
    if event_type != "execution":
        return []
    operation = details.get("operation")
    if operation in TRADE_COSTS:  # a trade's cost is its taker fee and slippage
        return [(TRADE_COSTS[operation], details["cost"])]
    return [("gas", details.get("cost", 0.0)), ("swap slippage", details.get("slippage_cost", 0.0)),
            ("flash-loan premium", details.get("flash_fee", 0.0))]


def costs_by_kind(events: pd.DataFrame) -> dict[str, float]:
    """Transaction costs (share-class units, positive) by kind, from the cost each execution and transfer event
    records; they add up to the run's transaction_costs attribution."""
    out = dict.fromkeys(COST_KINDS, 0.0)
    for event_type, details in zip(events["type"], events["details"], strict=True):
        if event_type in ("execution", "transfer"):
            for kind, amount in costs_of(event_type, json.loads(details) if isinstance(details, str) else details):
                out[kind] += float(amount)
    return out


def attribution(ticks: pd.DataFrame) -> dict[str, dict[str, float]]:
    """PnL by source over the run, in the share class and in USD, with the unexplained residual (float noise)."""
    def totals(prefix: str, residual: str) -> dict[str, float]:
        out = {c.removeprefix(prefix): float(ticks[c].sum()) for c in ticks.columns
               if c.startswith(prefix) and (prefix == "pnl_usd_" or not c.startswith("pnl_usd_"))}
        out["residual"] = float(ticks[residual].sum())
        return out
    return {"share_class": totals("pnl_", "residual"), "usd": totals("pnl_usd_", "residual_usd")}


def _prefixed(ticks: pd.DataFrame, prefix: str) -> list[str]:
    return [c for c in ticks.columns if c.startswith(prefix)]


def _series(t: np.ndarray, traces: list[tuple[str, np.ndarray, dict]]) -> list[go.Scatter]:
    """Scatter traces over time sharing one thinned set of points (every bucket's extremes kept)."""
    ys = [np.asarray(y, dtype=np.float64) for _, y, _ in traces]
    idx = thin(len(t), ys)
    return [go.Scatter(x=t[idx], y=y[idx], name=name, **kw) for (name, _, kw), y in zip(traces, ys, strict=True)]


def _scale_buttons(axes: tuple[str, ...]) -> list[dict]:
    """Linear / log buttons for the given y axes (plotly updatemenus: relayout the axes' type)."""
    return [{"type": "buttons", "direction": "right", "x": 0.0, "xanchor": "left", "y": 1.02, "yanchor": "bottom",
             "buttons": [{"label": scale, "method": "relayout", "args": [{f"{a}.type": scale for a in axes}]}
                         for scale in ("linear", "log")]}]


def _nav(summary: dict, ticks: pd.DataFrame, events: pd.DataFrame, t: np.ndarray) -> Panel:
    ccy = summary["share_class"]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    nav, index = _series(t, [(f"NAV ({ccy})", ticks["nav"], {}),
                             ("share index", ticks["share_index"], {"line": {"dash": "dot"}})])
    fig.add_trace(nav, secondary_y=False)
    fig.add_trace(index, secondary_y=True)
    y = ticks["nav"].to_numpy()
    for kind, (symbol, color) in EVENT_MARKERS.items():
        ev = events[events["type"] == kind].drop_duplicates("tick")
        if len(ev):
            k = ev["tick"].to_numpy()
            fig.add_trace(go.Scatter(x=t[k], y=y[k], mode="markers", name=kind, text=ev["message"],
                                     marker={"symbol": symbol, "color": color, "size": 9}), secondary_y=False)
    stale = np.zeros(len(ticks), dtype=bool)
    for c in _prefixed(ticks, "mark_source:"):
        stale |= ticks[c].to_numpy() != 0
    if stale.any():
        k = np.flatnonzero(stale)
        name, symbol, color = STALE_MARK
        fig.add_trace(go.Scatter(x=t[k], y=y[k], mode="markers", name=name, text=["a perp marked from another "
                                 "source or carried: its own price was missing"] * len(k),
                                 marker={"symbol": symbol, "color": color, "size": 7}), secondary_y=False)
    fig.update_layout(updatemenus=_scale_buttons(("yaxis", "yaxis2")))
    fig.update_yaxes(title_text=ccy, secondary_y=False)
    fig.update_yaxes(title_text="share index", secondary_y=True)
    return Panel("nav", "NAV and share index, with the run's events", fig)


def _underwater(ticks: pd.DataFrame, t: np.ndarray) -> Panel:
    fig = go.Figure(_series(t, [("drawdown", -ticks["drawdown"], {"fill": "tozeroy"})]))
    fig.update_layout(yaxis_tickformat=".2%")
    return Panel("underwater", "Underwater: the share index below its running peak", fig)


def _rolling(sheet: dict) -> Panel:
    r = sheet["rolling"]
    t = epoch_ms(pd.Series(pd.to_datetime(r["timestamp"], utc=True)))
    apy, vol, sharpe = (np.array(r[k], dtype=float) for k in ("apy", "volatility", "sharpe"))
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    traces = _series(t, [("APY", apy, {}), ("volatility", vol, {}), ("Sharpe (right axis)", sharpe,
                                                                       {"line": {"dash": "dot"}})])
    fig.add_trace(traces[0], secondary_y=False)
    fig.add_trace(traces[1], secondary_y=False)
    fig.add_trace(traces[2], secondary_y=True)
    fig.update_yaxes(tickformat=".1%", secondary_y=False)
    fig.update_yaxes(title_text="Sharpe", secondary_y=True)
    return Panel("rolling", f"Rolling {r['days']}-day APY, volatility and Sharpe", fig)


def _waterfall(totals: dict[str, float], unit: str, pid: str) -> Panel:
    names = list(totals)
    fig = go.Figure(go.Waterfall(x=[*names, "PnL"], y=[*totals.values(), 0.0],
                                 measure=["relative"] * len(names) + ["total"],
                                 decreasing={"marker": {"color": "#d62728"}},
                                 increasing={"marker": {"color": "#2ca02c"}}, totals={"marker": {"color": "#1f77b4"}}))
    fig.update_layout(showlegend=False, yaxis_title=unit)
    return Panel(pid, f"PnL attribution ({unit})", fig)


def _cumulative(ticks: pd.DataFrame, t: np.ndarray, ccy: str) -> Panel:
    fig = go.Figure(_series(t, [(c.removeprefix("cum_pnl_"), ticks[c], {})  # lines: sources of both signs
                                for c in _prefixed(ticks, "cum_pnl_")]
                            + [("residual (cumulative)", ticks["residual"].cumsum(),
                                {"line": {"color": "black", "dash": "dash"}})]))
    fig.update_layout(yaxis_title=ccy)
    return Panel("attribution_cumulative", f"Cumulative PnL attribution ({ccy})", fig)


def _funding(ticks: pd.DataFrame, t: np.ndarray, ccy: str) -> Panel | None:
    venues = _prefixed(ticks, "funding:")
    if not venues:
        return None
    fig = go.Figure(_series(t, [(c.removeprefix("funding:"), ticks[c].cumsum(), {}) for c in venues]))
    fig.update_layout(yaxis_title=ccy)
    return Panel("funding", f"Cumulative funding by venue ({ccy})", fig)


def _costs(costs: dict[str, float], ccy: str) -> Panel:
    fig = go.Figure(go.Bar(x=list(costs), y=list(costs.values()), marker={"color": "#ff7f0e"}))
    fig.update_layout(showlegend=False, yaxis_title=ccy)
    return Panel("costs", f"Transaction costs by kind ({ccy})", fig)


def exposures(ticks: pd.DataFrame) -> dict[str, np.ndarray]:
    """USD exposure of each venue and instrument per hour: a holding's value x the share class's USD price
    (debts negative); a perp's signed notional (size x mark, in USDT taken at 1 USD) instead of its PnL."""
    usd = ticks["share_class_usd"].to_numpy()
    out = {}
    for c in _prefixed(ticks, "value:"):
        key = c.removeprefix("value:")
        if ":Perp:" in key:
            continue
        v = ticks[c].to_numpy() * usd
        if np.any(v != 0.0):
            out[key] = v
    for c in _prefixed(ticks, "notional_usdt:"):
        v = ticks[c].to_numpy()
        if np.any(v != 0.0):
            out[f"{c.removeprefix('notional_usdt:')} perp notional"] = v
    return out


def _exposure(ticks: pd.DataFrame, t: np.ndarray) -> Panel:
    series = exposures(ticks)
    traces = [(k, v, {"stackgroup": "long" if np.nanmean(v) >= 0 else "short"}) for k, v in series.items()]
    fig = go.Figure(_series(t, traces))
    fig.update_layout(yaxis_title="USD")
    return Panel("exposure", "Exposure per venue and instrument (USD; holdings stacked above, debts and shorts "
                 "below)", fig)


def _net_delta(ticks: pd.DataFrame, t: np.ndarray) -> Panel | None:
    deltas = _prefixed(ticks, "net_delta_usdt:")
    if not deltas:
        return None
    fig = go.Figure(_series(t, [(c.removeprefix("net_delta_usdt:"), ticks[c], {}) for c in deltas]))
    fig.update_layout(yaxis_title="USDT")
    return Panel("net_delta", "Net delta per asset (USDT)", fig)


def limits(config: dict | None) -> dict[str, float]:
    """The risk limits a run's config sets, by name, for the risk charts."""
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


def _risk(ticks: pd.DataFrame, t: np.ndarray, config: dict | None) -> Panel | None:
    lines = []
    for c in ("health_factor", "ltv", *_prefixed(ticks, "margin_ratio:")):
        if c in ticks:
            y = ticks[c].replace([np.inf, -np.inf], np.nan)
            if y.fillna(0.0).ne(0.0).any():  # only what the mode has (no LTV line without debt)
                lines.append((c, y, {}))
    if not lines:
        return None
    fig = go.Figure(_series(t, lines))
    for name, level in limits(config).items():
        fig.add_hline(y=level, line_dash="dot", annotation_text=name)
    return Panel("risk", "Risk: health factor, LTV, margin ratio per venue (limits dotted)", fig)


def _distances(ticks: pd.DataFrame, t: np.ndarray) -> Panel | None:
    cols = [c for c in _prefixed(ticks, "liq_distance:") if np.isfinite(ticks[c].to_numpy(dtype=float)).any()]
    if not cols:
        return None
    fig = go.Figure(_series(t, [(c.removeprefix("liq_distance:"), ticks[c].replace([np.inf], np.nan), {})
                                for c in cols]))
    fig.update_layout(yaxis_tickformat=".1%")
    return Panel("liquidation_distance", "Liquidation distance: the adverse move that liquidates (Aave: the "
                 "collateral's fall against the debt; perps: the mark's move)", fig)


def _intrabar(summary: dict, ticks: pd.DataFrame, t: np.ndarray) -> list[Panel]:
    out = []
    for v in (summary.get("intrabar_by_venue") or {}):
        if f"margin_ratio_intrabar:{v}" in ticks:
            fig = go.Figure(_series(t, [("at the hour's open", ticks[f"margin_ratio:{v}"], {}),
                                        ("at the hour's adverse extreme", ticks[f"margin_ratio_intrabar:{v}"],
                                         {"line": {"dash": "dot"}})]))
            fig.add_hline(y=1.0, line_dash="dot", annotation_text="liquidation")
            out.append(Panel(f"intrabar_{v}", f"{v}: margin ratio a venue would check at the open and within the "
                             "hour", fig))
    return out


def _depeg(ticks: pd.DataFrame, t: np.ndarray) -> Panel | None:
    if "lst_depeg" not in ticks or not ticks["lst_depeg"].notna().any():
        return None
    fig = go.Figure(_series(t, [("DEX rate / oracle rate - 1", ticks["lst_depeg"], {})]))
    fig.update_layout(yaxis_tickformat=".2%")
    return Panel("lst_depeg", "LST depeg view: DEX market rate against the oracle exchange rate", fig)


def _benchmark(ticks: pd.DataFrame, t: np.ndarray) -> Panel | None:
    if "benchmark_susde_apy" not in ticks or not ticks["benchmark_susde_apy"].notna().any():
        return None
    apy = ticks["benchmark_susde_apy"]
    hourly = (1 + apy.fillna(0.0)) ** (1 / metrics.HOURS_PER_YEAR)  # the APY's hourly growth, compounded
    bench = hourly.cumprod() / hourly.iloc[0]
    bench[apy.isna()] = np.nan
    fig = go.Figure(_series(t, [("strategy share index", ticks["share_index"], {}),
                                ("Ethena sUSDe (from its APY)", bench, {})]))
    return Panel("benchmark", "Share index against the Ethena sUSDe benchmark", fig)


def _utilisation(ticks: pd.DataFrame, t: np.ndarray) -> Panel | None:
    reserves = [c.split(":", 1)[1] for c in ticks.columns if c.startswith("utilisation_with_fund:")]
    if not reserves:
        return None
    traces = []
    for r in reserves:
        traces += [(f"{r} observed", ticks[f"utilisation:{r}"], {}),
                   (f"{r} with the fund", ticks[f"utilisation_with_fund:{r}"], {"line": {"dash": "dot"}})]
    fig = go.Figure(_series(t, traces))
    fig.update_layout(yaxis_tickformat=".0%")
    return Panel("utilisation", "Aave utilisation: as observed, and with the fund's own supply and debt", fig)


def panels(summary: dict, ticks: pd.DataFrame, events: pd.DataFrame, config: dict | None, sheet: dict) -> list[Panel]:
    """Every chart panel of the tearsheet the run has data for, in reading order."""
    ccy = summary["share_class"]
    t = epoch_ms(ticks["timestamp"])
    totals = attribution(ticks)
    out = [_nav(summary, ticks, events, t), _underwater(ticks, t), _rolling(sheet),
           _waterfall(totals["share_class"], ccy, "attribution"), _waterfall(totals["usd"], "USD", "attribution_usd"),
           _cumulative(ticks, t, ccy), _funding(ticks, t, ccy), _costs(costs_by_kind(events), ccy),
           _exposure(ticks, t), _net_delta(ticks, t), _risk(ticks, t, config), _distances(ticks, t),
           *_intrabar(summary, ticks, t), _depeg(ticks, t), _benchmark(ticks, t), _utilisation(ticks, t)]
    out = [p for p in out if p is not None]
    for p in out:
        p.figure.update_layout(height=360, margin={"l": 60, "r": 30, "t": 30, "b": 40}, legend={"orientation": "h"})
        if p.id not in ("attribution", "attribution_usd", "costs"):
            p.figure.update_xaxes(type="date")
    return out


def tearsheet_document(summary: dict, ticks: pd.DataFrame, events: pd.DataFrame, config: dict | None) -> dict:
    """The whole tearsheet as JSON (GET /backtests/{id}/tearsheet): returns by month and year, the worst
    drawdowns, rolling figures, headline metrics, attribution, costs by kind and the chart panels."""
    sheet = tearsheet(ticks)
    return {**sheet, "share_class": summary["share_class"], "headline": headline(summary),
            "attribution": attribution(ticks), "costs_by_kind": costs_by_kind(events),
            "panels": [p.spec() for p in panels(summary, ticks, events, config, sheet)]}
