"""A run's tearsheet figures from its per-tick table, on the share index (so deposits and withdrawals are not
returns): monthly and yearly returns, the worst drawdown periods, rolling 30-day APY, volatility and Sharpe.
Computed with pandas (grouping by calendar period, rolling windows)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .metrics import HOURS_PER_YEAR

ROLLING_DAYS = 30
WORST = 5


def period_returns(ticks: pd.DataFrame, freq: str) -> list[dict]:
    """Each calendar period (`freq` "M" or "Y") a tick's timestamp falls in: the share index at its last tick over
    the index at the last tick before it, less 1; the first period is measured from 1.0 before the run, so the
    periods compound to the total return. After a total loss (the index at 0) a period's return is undefined:
    None."""
    index = ticks["share_index"].to_numpy()
    label = ticks["timestamp"].dt.strftime("%Y-%m" if freq == "M" else "%Y")
    last = pd.Series(index).groupby(label.to_numpy(), sort=False).last()
    before = np.concatenate(([1.0], last.to_numpy()[:-1]))
    return [{"period": p, "return": float(v / b - 1.0) if b > 0.0 else None}
            for p, v, b in zip(last.index, last.to_numpy(), before, strict=True)]


def drawdown_periods(ticks: pd.DataFrame, worst: int = WORST) -> list[dict]:
    """The `worst` falls of the share index from a running peak (1.0 before the run the first peak), deepest
    first: start (the peak's time; the window's start for the peak before the run), trough, end (the first tick
    back at the peak, or None), depth (a positive fraction), hours from start to end (or to the last tick)."""
    index = ticks["share_index"].to_numpy()
    times = ticks["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ").to_list()
    peak_value, peak_at = 1.0, times[0]
    periods, current = [], None
    for k, v in enumerate(index):
        if v >= peak_value:
            if current is not None:  # recovered
                current["end"] = times[k]
                periods.append(current)
                current = None
            peak_value, peak_at = v, times[k]
            continue
        depth = 1.0 - v / peak_value
        if current is None:
            current = {"start": peak_at, "trough": times[k], "end": None, "depth": depth, "_k": k}
        elif depth > current["depth"]:
            current["trough"], current["depth"] = times[k], depth
    if current is not None:
        periods.append(current)
    for p in periods:
        p.pop("_k")
        p["hours"] = _hours(p["start"], p["end"] or times[-1])
    return sorted(periods, key=lambda p: -p["depth"])[:worst]


def _hours(a: str, b: str) -> int:
    return int((pd.Timestamp(b) - pd.Timestamp(a)).total_seconds() // 3600)


def rolling(ticks: pd.DataFrame, days: int = ROLLING_DAYS) -> dict:
    """Over each trailing `days` (hourly ticks): APY (the index's growth compounded to a year), volatility (std of
    hourly returns x sqrt(8760)) and Sharpe (mean / std x sqrt(8760)); None until a full window has passed."""
    window = days * 24
    index = ticks["share_index"]
    growth = index / index.shift(window)
    apy = growth ** (HOURS_PER_YEAR / window) - 1.0
    r = index.pct_change()
    std = r.rolling(window).std(ddof=1)
    vol = std * math.sqrt(HOURS_PER_YEAR)
    sharpe = r.rolling(window).mean() / std * math.sqrt(HOURS_PER_YEAR)

    def clean(s: pd.Series) -> list:
        return [None if not np.isfinite(v) else float(v) for v in s.to_numpy()]

    return {"timestamp": ticks["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ").to_list(), "days": days,
            "apy": clean(apy), "volatility": clean(vol), "sharpe": clean(sharpe)}


def tearsheet(ticks: pd.DataFrame) -> dict:
    months = period_returns(ticks, "M")
    return {"monthly_returns": [{"month": m["period"], "return": m["return"]} for m in months],
            "yearly_returns": [{"year": y["period"], "return": y["return"]} for y in period_returns(ticks, "Y")],
            "drawdowns": drawdown_periods(ticks), "rolling": rolling(ticks)}
