"""A market's liquidity at each hour, from bars already closed then (labelled t - window .. t - 1h): the USD
volume of the last closed bar (participation), the mean hourly USD volume and the hourly volatility (root
mean square of log returns between consecutive closes) over the window (market impact, costs/impact.py).

Volume is in the base asset on CEX bars (USD = volume x close) and in USD on the Uniswap pools, as each
series' manifest says. Every value reads the same window of rows, the same way, in a backtest and in a
market fed hour by hour (both call these functions on their rows), so the two agree bit for bit.
"""

from __future__ import annotations

import numpy as np

from .dataset import spacing_seconds

HOWS = ("closed_volume_usd", "mean_volume_usd", "sigma")


def _dense(series, grid: np.ndarray, bars: int, values) -> np.ndarray:
    """`values(rows)` of the bars labelled grid[0] - bars x spacing .. grid[-1] - spacing, one slot per label,
    NaN where a bar is missing (the grid is consecutive hours, as every run's is)."""
    ts, sp = series.ts, spacing_seconds(series.meta)
    lo, hi = int(grid[0]) - bars * sp, int(grid[-1]) - sp
    out = np.full((hi - lo) // sp + 1, np.nan)
    a, b = np.searchsorted(ts, lo), np.searchsorted(ts, hi, side="right")
    on = (ts[a:b] - lo) % sp == 0
    out[(ts[a:b][on] - lo) // sp] = values(np.arange(a, b)[on])
    return out


def _window_mean(dense: np.ndarray, bars: int, n: int) -> np.ndarray:
    """Mean of the finite values in each run of `bars` slots (the window before each of n points); NaN for
    a window with none. Each window is summed on its own, so one point or many give the same floats."""
    ok = np.isfinite(dense)
    total, count = _window_sums(np.where(ok, dense, 0.0), bars, n), _window_sums(ok.astype(np.float64), bars, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def _window_sums(x: np.ndarray, bars: int, n: int) -> np.ndarray:
    """Sum of each run of `bars` values starting at 0 .. n - 1, each summed along its own row (one point,
    the hour-by-hour case, skips the sliding view: the same row sum, bit for bit)."""
    if n == 1:
        return x[:bars].reshape(1, bars).sum(axis=1)
    return np.lib.stride_tricks.sliding_window_view(x, bars)[:n].sum(axis=1)


def _usd_volume(series):
    volume, close = series.column("volume"), series.column("close")
    return (lambda rows: volume[rows]) if series.meta.volume_in_usd else (lambda rows: volume[rows] * close[rows])


def measures(series, grid: np.ndarray, window: int) -> dict[str, np.ndarray]:
    """Every measure of HOWS at each point, from one pass over the bars labelled t - (window + 1) .. t - 1h:
    the USD volume of the bar that closed at t (NaN where none did), the mean hourly USD volume of the bars
    closed in the `window` hours before t, and the hourly volatility, the root mean square of the log returns
    between consecutive closed bars in that window."""
    n = len(grid)
    close = series.column("close")
    closes = _dense(series, grid, window + 1, lambda rows: close[rows])
    usd = _dense(series, grid, window + 1, _usd_volume(series))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.log(closes[1:] / closes[:-1])
    return {"closed_volume_usd": usd[window:window + n], "mean_volume_usd": _window_mean(usd[1:], window, n),
            "sigma": np.sqrt(_window_mean(r * r, window, n))}
