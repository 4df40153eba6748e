"""Per-tick and event tables (pandas) built from a RunResult after the loop."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from ..data.timeutil import iso
from ..engine.run import RunResult
from ..portfolio.attribution import SLOT
from . import metrics


def ticks_table(r: RunResult) -> pd.DataFrame:
    cols: dict[str, np.ndarray] = {
        "timestamp": pd.to_datetime(r.grid, unit="s", utc=True),
        "nav": r.nav,
        "nav_usd": r.nav_usd,
        "share_class_usd": r.unit_usd,
        "flow": r.flows,
        "share_index": metrics.share_index(r.nav, r.flows),
        "balance_pnl": r.balance_pnl,
        "residual": r.residual,
        "residual_usd": r.residual_usd,
    }
    for name in r.reported_types:
        cols[f"pnl_{name}"] = r.attribution[SLOT[name]]
        cols[f"cum_pnl_{name}"] = np.cumsum(r.attribution[SLOT[name]])
    for name in r.reported_types_usd:
        cols[f"pnl_usd_{name}"] = r.attribution_usd[SLOT[name]]
    for j, key in enumerate(r.position_keys):
        cols[f"qty:{key}"] = r.quantities[j]
        cols[f"value:{key}"] = r.values[j]
    cols.update(r.extra_columns)
    cols["drawdown"] = metrics.drawdown(cols["share_index"])
    return pd.DataFrame(cols)


def events_table(r: RunResult) -> pd.DataFrame:
    rows = [
        {"timestamp": iso(r.grid[e.k]), "tick": e.k, "type": e.type, "message": e.message,
         "details": json.dumps(e.details, sort_keys=True)}
        for e in r.events.events
    ]
    df = pd.DataFrame(rows, columns=["timestamp", "tick", "type", "message", "details"])
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
    return df
