"""Two to six finished runs side by side: each one's share index as NAV indexed to 100 and its drawdown, the
summary metrics with each run's difference from the first, and where their configs differ (dotted keys)."""

from __future__ import annotations

import pandas as pd

from . import metrics

MIN_RUNS, MAX_RUNS = 2, 6
METRICS = ("total_return", "apy", "volatility", "sharpe", "max_drawdown", "final_nav")


def flat(config: dict, prefix: str = "") -> dict:
    """A nested config as dotted keys (lists kept whole)."""
    out = {}
    for k, v in config.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out |= flat(v, f"{key}.")
        else:
            out[key] = v
    return out


def compare(runs: list[dict], ticks: list[pd.DataFrame]) -> dict:
    """`runs`: stored runs (summary, config), `ticks`: their per-tick tables, in the same order."""
    series = []
    for run, t in zip(runs, ticks, strict=True):
        index = t["share_index"].to_numpy()
        series.append({"run_id": run["run_id"], "timestamp": t["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ").to_list(),
                       "nav_indexed": (100.0 * index).tolist(), "drawdown": metrics.drawdown(index).tolist()})
    first = runs[0]["summary"]
    table = []
    for name in METRICS:
        values = [r["summary"].get(name) for r in runs]
        base = first.get(name)
        table.append({"metric": name, "values": values,
                      "difference": [None if v is None or base is None else v - base for v in values]})
    configs = [flat(r["config"] or {}) for r in runs]
    keys = sorted(set().union(*configs))
    differences = [{"key": k, "values": [c.get(k) for c in configs]} for k in keys
                   if len({repr(c.get(k)) for c in configs}) > 1]
    return {"runs": [r["run_id"] for r in runs], "series": series, "metrics": table, "config_differences": differences}
