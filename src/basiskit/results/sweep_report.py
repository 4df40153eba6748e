"""The HTML report of a sweep (self-contained, like a run's): the ranked configs with the command that
reproduces each, a heatmap of the objective over two params (the others at their best), parallel
coordinates when there are more, the spread of the objective across windows, the frontier of the
objective against the minimum health factor, and the capacity curve when initial_capital is a param."""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go

from ..errors import BasiskitError
from .capacity import curve, run_figures
from .html import page, script_json

TOP_SPREAD = 20  # configs whose spread across windows is drawn


def configs(result: dict) -> list[dict]:
    """One entry per config, best first (as the sweep ranks them): params, mean objective, per-window
    objectives, min health factor, whether every window ran and met the constraints, the command."""
    by_config: dict[int, list[dict]] = {}
    for run in result["runs"]:
        by_config.setdefault(run["config_index"], []).append(run)
    out = []
    for index, runs in by_config.items():
        values = [r["objective"] for r in runs]
        hf = [r["min_health_factor"] for r in runs if r["min_health_factor"] is not None]
        out.append({"config_index": index, "params": runs[0]["params"], "windows": values,
                    "objective": None if any(v is None for v in values) else float(np.mean(values)),
                    "min_health_factor": min(hf) if hf else None,
                    "feasible": all(r["constraints_met"] for r in runs), "error": next((r["error"] for r in runs
                                                                                     if r["error"]), None),
                    "command": runs[0]["command"]})
    return sorted(out, key=lambda c: (not c["feasible"], c["objective"] is None, -(c["objective"] or 0.0),
                                      c["config_index"]))


def heatmap(cfgs: list[dict], x: str, y: str) -> tuple[list, list, list[list[float | None]]]:
    """Best mean objective (over the other params) for each pair of x and y values."""
    xs = _ordered({c["params"][x] for c in cfgs})
    ys = _ordered({c["params"][y] for c in cfgs})
    z: list[list[float | None]] = [[None] * len(xs) for _ in ys]
    for c in cfgs:
        if c["objective"] is None:
            continue
        i, j = ys.index(c["params"][y]), xs.index(c["params"][x])
        if z[i][j] is None or c["objective"] > z[i][j]:
            z[i][j] = c["objective"]
    return xs, ys, z


CAPITAL = "initial_capital"


def capacity(result: dict) -> list[dict]:
    """The capacity curve of a sweep over initial_capital: per capital (ascending), the mean APY (gross and net
    of the exit), costs, rate impact and constrained hours across the runs at that capital (every other param
    included); a capital whose runs were refused by aave.liquidity_policy is marked refused
    (results/capacity.py)."""
    return curve([(float(run["params"][CAPITAL]), _figures(run)) for run in result["runs"]])["points"]


def _figures(run: dict) -> dict:
    """A sweep run's capacity figures; a run stored before they existed gives its APY and costs."""
    if run.get("capacity") is not None:
        return run["capacity"]
    if run["error"]:
        return run_figures(None, run["error"])
    capital = float(run["params"][CAPITAL])
    costs = run.get("transaction_costs")
    return {"refused": False, "error": None, "apy": run.get("apy"),
            "cost_share": None if costs is None else -costs / capital}


def capacity_figure(points: list[dict]) -> go.Figure:
    fig = go.Figure()
    ran = [p for p in points if not p["refused"]]
    caps = [p["capital"] for p in ran]
    fig.add_trace(go.Scatter(x=caps, y=[p["apy"] for p in ran], mode="lines+markers", name="APY"))
    fig.add_trace(go.Scatter(x=caps, y=[p["apy_net_of_exit"] for p in ran], mode="lines+markers",
                             name="APY net of exit"))
    bench = [p["benchmark_apy"] for p in ran]
    if any(b is not None for b in bench):
        name = next(p["benchmark"] for p in ran if p["benchmark"])
        fig.add_trace(go.Scatter(x=caps, y=bench, mode="lines", name=f"benchmark ({name})", line={"dash": "dash"}))
    fig.add_trace(go.Scatter(x=caps, y=[p["cost_share"] for p in ran], mode="lines+markers", yaxis="y2",
                             name="transaction costs / capital", line={"dash": "dot"}))
    fig.add_trace(go.Scatter(x=caps, y=[-(p["rate_impact_share"] or 0.0) for p in ran], mode="lines+markers",
                             yaxis="y2", name="rate impact / capital", line={"dash": "dot"}))
    refused = [p["capital"] for p in points if p["refused"]]
    if refused:
        fig.add_trace(go.Scatter(x=refused, y=[0.0] * len(refused), mode="markers", name="refused (liquidity)",
                                 marker={"symbol": "x", "size": 12, "color": "#b00"}))
    fig.update_layout(title="capacity: APY by capital (rate impact, market impact and exit paid for)",
                      xaxis={"title": "initial capital", "type": "log"},
                      yaxis={"title": "APY", "tickformat": ".2%"},
                      yaxis2={"title": "share of capital", "tickformat": ".2%", "overlaying": "y", "side": "right"})
    return fig


def _ordered(values: set) -> list:
    return sorted(values, key=lambda v: (isinstance(v, str), v if not isinstance(v, str) else 0, str(v)))


def render(result: dict, x: str | None = None, y: str | None = None) -> str:
    params, objective = result["params"], result["objective"]
    for axis, key in (("--x", x), ("--y", y)):
        if key is not None and key not in params:
            raise BasiskitError(f"{axis} {key!r} is not a param of sweep {result['sweep_id']}; params: "
                                f"{', '.join(params) or 'none'}")
    x = x or (params[0] if params else None)
    y = y or next((p for p in params if p != x), None)
    cfgs = configs(result)
    figs, notes = [], []
    if x and y:
        xs, ys, z = heatmap(cfgs, x, y)
        fig = go.Figure(go.Heatmap(x=[str(v) for v in xs], y=[str(v) for v in ys], z=z, colorscale="Viridis",
                                   colorbar={"title": objective}, hoverongaps=False))
        fig.update_layout(title=f"mean {objective} over {x} and {y}"
                          + (" (the other params at their best)" if len(params) > 2 else ""),
                          xaxis_title=x, yaxis_title=y)
        figs.append(fig)
    elif x:
        ok = [c for c in cfgs if c["objective"] is not None]
        fig = go.Figure(go.Scatter(x=[str(c["params"][x]) for c in ok], y=[c["objective"] for c in ok],
                                   mode="markers"))
        fig.update_layout(title=f"mean {objective} over {x}", xaxis_title=x, yaxis_title=objective)
        figs.append(fig)
    if len(params) > 2:
        dims = []
        for p in params:
            values = [c["params"][p] for c in cfgs]
            if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
                dims.append({"label": p, "values": values})
            else:
                labels = _ordered({str(v) for v in values})
                dims.append({"label": p, "values": [labels.index(str(v)) for v in values],
                             "tickvals": list(range(len(labels))), "ticktext": labels})
        obj = [np.nan if c["objective"] is None else c["objective"] for c in cfgs]
        dims.append({"label": objective, "values": obj})
        fig = go.Figure(go.Parcoords(dimensions=dims, line={"color": obj, "colorscale": "Viridis", "showscale": True}))
        fig.update_layout(title=f"every config: params and mean {objective}", margin={"t": 110})
        figs.append(fig)
    if len(result["windows"]) > 1:
        top = [c for c in cfgs if c["objective"] is not None][:TOP_SPREAD]
        fig = go.Figure([go.Box(y=c["windows"], name=f"#{rank}", boxpoints="all") for rank, c in enumerate(top, 1)])
        fig.update_layout(title=f"{objective} across the {len(result['windows'])} windows, top {len(top)} configs "
                          "(is the winner stable or lucky?)", showlegend=False)
        figs.append(fig)
    else:
        notes.append("One window: the spread across windows needs --windows.")
    hf = [c for c in cfgs if c["objective"] is not None and c["min_health_factor"] is not None]
    if hf:
        fig = go.Figure()
        for feasible, name in ((True, "meets the constraints"), (False, "does not")):
            pts = [c for c in hf if c["feasible"] == feasible]
            fig.add_trace(go.Scatter(x=[c["min_health_factor"] for c in pts], y=[c["objective"] for c in pts],
                                     mode="markers", name=name, text=[c["command"] for c in pts]))
        front = _frontier(hf)
        fig.add_trace(go.Scatter(x=[c["min_health_factor"] for c in front], y=[c["objective"] for c in front],
                                 mode="lines", name="frontier", line={"dash": "dot"}))
        fig.update_layout(title=f"{objective} against the minimum health factor (the frontier: best {objective} "
                          "for at least that health factor)", xaxis_title="min health factor", yaxis_title=objective)
        figs.append(fig)
    else:
        notes.append("No health factor: the mode does not borrow, so there is no constraint frontier.")
    if CAPITAL in params:
        figs.append(capacity_figure(capacity(result)))
    for f in figs:
        f.update_layout(height=460, margin={"l": 70, "r": 30, "b": 50})
        if f.layout.margin.t is None:
            f.update_layout(margin={"t": 60})
    title = f"basiskit sweep {result['sweep_id']}"
    best = result.get("best")
    body = f"""<h1>{html.escape(title)}</h1>
<p>mode {html.escape(result['mode'])}, {result['n_runs']} runs ({result['n_failed']} failed),
{len(result['windows'])} window(s), objective <b>{html.escape(objective)}</b> (mean across windows), constraints:
{html.escape(', '.join(result['constraints']) or 'none')}</p>
<p>best: {f"<code>{html.escape(best['command'])}</code>" if best else "no config met every constraint"}</p>
{"".join(f"<p>{html.escape(n)}</p>" for n in notes)}
{"".join(f"{{chart:{i}}}" for i in range(len(figs)))}
<h2>Configs, best first</h2>{_table(cfgs, params, objective)}
<script type="application/json" id="sweep">{script_json({'params': params, 'x': x, 'y': y})}</script>"""
    return page(title, body, figs)


def _frontier(cfgs: list[dict]) -> list[dict]:
    """Configs no other beats on both the objective and the health factor, by health factor."""
    front, best = [], -np.inf
    for c in sorted(cfgs, key=lambda c: (-c["min_health_factor"], -c["objective"])):
        if c["objective"] > best:
            front.append(c)
            best = c["objective"]
    return sorted(front, key=lambda c: c["min_health_factor"])


def _table(cfgs: list[dict], params: list[str], objective: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ("rank", *params, f"mean {objective}", "across windows",
                                                         "min HF", "ok", "reproduce"))
    rows = []
    for rank, c in enumerate(cfgs, 1):
        spread = [v for v in c["windows"] if v is not None]
        cells = [str(rank), *[html.escape(str(c["params"][p])) for p in params],
                 "" if c["objective"] is None else f"{c['objective']:.6g}",
                 f"{min(spread):.4g} .. {max(spread):.4g}" if spread else "",
                 "" if c["min_health_factor"] is None else f"{c['min_health_factor']:.4f}",
                 "error" if c["error"] else ("yes" if c["feasible"] else "no"),
                 f"<code>{html.escape(c['command'])}</code>"]
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    return f'<table id="ranking"><tr>{head}</tr>{"".join(rows)}</table>'
