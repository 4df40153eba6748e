"""Performance metrics over a run's NAV path, robust to deposits and withdrawals."""

from __future__ import annotations

import numpy as np

HOURS_PER_YEAR = 365 * 24


def tick_returns(nav: np.ndarray, flows: np.ndarray) -> np.ndarray:
    """Time-weighted return of each tick, flows arriving at the tick: (NAV_k - flow_k) / NAV_{k-1} - 1.

    Tick 0 compares NAV after the opening trades with the initial capital (its flow). A tick that
    starts with nothing invested (NAV_{k-1} <= 0, e.g. after withdrawing everything) returns 0, or
    NAV_k / deposit - 1 when a deposit arrives. A loss of everything is -100%: returns are floored at -1,
    so the share index reaches 0 and stays there.
    """
    nav = np.asarray(nav, dtype=np.float64)
    flows = np.asarray(flows, dtype=np.float64)
    prev = np.concatenate(([flows[0]], nav[:-1]))
    flow = np.concatenate(([0.0], flows[1:]))
    invested = prev > 0.0
    deposit = ~invested & (flow > 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(invested, (nav - flow) / np.where(invested, prev, 1.0) - 1.0,
                     np.where(deposit, nav / np.where(deposit, flow, 1.0) - 1.0, 0.0))
    return np.maximum(r, -1.0)


def share_index(nav: np.ndarray, flows: np.ndarray) -> np.ndarray:
    """Value of one unit of the fund (1.0 before the run) at each point."""
    return np.cumprod(1.0 + tick_returns(nav, flows))


def wiped_out(index: np.ndarray) -> int | None:
    """The first point where the share index reached 0 (everything lost), or None."""
    hits = np.flatnonzero(index <= 0.0)
    return int(hits[0]) if len(hits) else None


def total_return(index: np.ndarray) -> float:
    return float(index[-1] - 1.0)


def apy(index: np.ndarray, hours: int) -> float:
    """Annualised return with compounding: (1 + R) ** (8760 / hours) - 1; -100% once everything is lost."""
    if index[-1] <= 0.0:
        return -1.0
    return float(index[-1] ** (HOURS_PER_YEAR / hours) - 1.0) if hours else 0.0


def drawdown(index: np.ndarray) -> np.ndarray:
    """Fall of the share index from its running peak (>= 0), the start (1.0) counting as a peak."""
    peak = np.maximum.accumulate(np.maximum(index, 1.0))
    return 1.0 - index / peak


def max_drawdown(index: np.ndarray) -> float:
    return float(drawdown(index).max())


def _hourly(index: np.ndarray) -> np.ndarray | None:
    """Hourly returns of the share index; None when it reached 0 (returns after a total loss are undefined)."""
    if wiped_out(index) is not None:
        return None
    return np.diff(index) / index[:-1]


def volatility(index: np.ndarray) -> float | None:
    """Annualised volatility of hourly returns: std x sqrt(8760); None after a total loss."""
    r = _hourly(index)
    if r is None:
        return None
    return float(r.std(ddof=1) * np.sqrt(HOURS_PER_YEAR)) if len(r) > 1 else 0.0


def sharpe(index: np.ndarray, risk_free: float = 0.0) -> float | None:
    """Annualised mean hourly return over annualised volatility (risk-free rate as a yearly decimal);
    None with fewer than two returns, zero volatility or after a total loss."""
    r = _hourly(index)
    vol = volatility(index)
    if r is None or len(r) < 2 or not vol:
        return None
    return float((r.mean() * HOURS_PER_YEAR - risk_free) / vol)


def metrics_note(index: np.ndarray, grid: np.ndarray) -> str | None:
    """Why volatility or Sharpe is null, when it is."""
    from ..data.timeutil import iso

    k = wiped_out(index)
    if k is not None:
        return (f"the NAV reached zero at {iso(grid[k])}: total return and APY are -100%, volatility and "
                "Sharpe are undefined")
    if len(index) < 3:
        return "fewer than two hourly returns: Sharpe is undefined"
    if not volatility(index):
        return "zero volatility: Sharpe is undefined"
    return None


def time_under_water(index: np.ndarray) -> dict:
    """Longest stretch (hours) below a previous peak, and the fraction of hours spent there."""
    under = drawdown(index) > 1e-12
    longest = run = 0
    for u in under:
        run = run + 1 if u else 0
        longest = max(longest, run)
    return {"longest_hours": int(longest), "fraction": float(under.mean())}
