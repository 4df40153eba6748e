"""Performance metrics over a run's NAV path, robust to deposits and withdrawals."""

from __future__ import annotations

import numpy as np

HOURS_PER_YEAR = 365 * 24


def tick_returns(nav: np.ndarray, flows: np.ndarray) -> np.ndarray:
    """Time-weighted return of each tick, flows arriving at the tick: (NAV_k - flow_k) / NAV_{k-1} - 1.

    Tick 0 compares NAV after the opening trades with the initial capital (its flow).
    """
    r = np.empty(len(nav))
    r[0] = nav[0] / flows[0] - 1.0
    r[1:] = (nav[1:] - flows[1:]) / nav[:-1] - 1.0
    return r


def share_index(nav: np.ndarray, flows: np.ndarray) -> np.ndarray:
    """Value of one unit of the fund (1.0 before the run) at each point."""
    return np.cumprod(1.0 + tick_returns(nav, flows))


def total_return(index: np.ndarray) -> float:
    return float(index[-1] - 1.0)


def apy(index: np.ndarray, hours: int) -> float:
    """Annualised return with compounding: (1 + R) ** (8760 / hours) - 1."""
    return float(index[-1] ** (HOURS_PER_YEAR / hours) - 1.0) if hours else 0.0


def drawdown(index: np.ndarray) -> np.ndarray:
    """Fall of the share index from its running peak (>= 0), the start (1.0) counting as a peak."""
    peak = np.maximum.accumulate(np.maximum(index, 1.0))
    return 1.0 - index / peak


def max_drawdown(index: np.ndarray) -> float:
    return float(drawdown(index).max())


def volatility(index: np.ndarray) -> float:
    """Annualised volatility of hourly returns: std x sqrt(8760)."""
    r = np.diff(index) / index[:-1]
    return float(r.std(ddof=1) * np.sqrt(HOURS_PER_YEAR)) if len(r) > 1 else 0.0


def sharpe(index: np.ndarray, risk_free: float = 0.0) -> float | None:
    """Annualised mean hourly return over annualised volatility (risk-free rate as a yearly decimal)."""
    r = np.diff(index) / index[:-1]
    vol = volatility(index)
    if len(r) < 2 or vol == 0.0:
        return None
    return float((r.mean() * HOURS_PER_YEAR - risk_free) / vol)


def time_under_water(index: np.ndarray) -> dict:
    """Longest stretch (hours) below a previous peak, and the fraction of hours spent there."""
    under = drawdown(index) > 1e-12
    longest = run = 0
    for u in under:
        run = run + 1 if u else 0
        longest = max(longest, run)
    return {"longest_hours": int(longest), "fraction": float(under.mean())}
