"""The run summary: the numbers a user reads first, as a JSON-ready dict."""

from __future__ import annotations

import numpy as np

from ..data.timeutil import HOUR, iso
from ..engine.run import RunResult
from ..portfolio.attribution import SLOT
from . import metrics


def summarize(r: RunResult) -> dict:
    index = metrics.share_index(r.nav, r.flows)
    steps = len(r.grid) - 1
    hours = int((r.grid[-1] - r.grid[0]) // HOUR)
    return {
        "mode": r.cfg.mode,
        "strategy": r.cfg.strategy,
        "share_class": r.cfg.share_class,
        "start": iso(r.grid[0]),
        "end": iso(r.grid[-1]),
        "steps": steps,
        "initial_capital": r.cfg.initial_capital,
        "net_external_flows": float(r.flows.sum()),
        "final_nav": float(r.nav[-1]),
        "final_nav_usd": float(r.nav_usd[-1]),
        "total_return": metrics.total_return(index),
        "apy": metrics.apy(index, hours),
        "max_drawdown": metrics.max_drawdown(index),
        "volatility": metrics.volatility(index),
        "sharpe": metrics.sharpe(index),
        "metrics_note": metrics.metrics_note(index, r.grid),
        "time_under_water": metrics.time_under_water(index),
        "balance_pnl": float(r.balance_pnl.sum()),
        "pnl_attribution": {n: float(r.attribution[SLOT[n]].sum()) for n in r.reported_types},
        "pnl_attribution_usd": {n: float(r.attribution_usd[SLOT[n]].sum()) for n in r.reported_types_usd},
        "balance_pnl_usd": float((r.nav_usd[-1]) - (r.flows * r.unit_usd).sum()),
        "reconciliation_max_residual": float(np.abs(r.residual).max()),
        "reconciliation_max_residual_usd": float(np.abs(r.residual_usd).max()),
        "reconciliation_errors": len(r.events.of_type("reconciliation_error")),
        "data_warnings": len(r.data_warnings),
        "executions": len(r.events.of_type("execution")),
        "engine_seconds": r.engine_seconds,
        "steps_per_second": steps / r.engine_seconds if r.engine_seconds else None,
        "config_hash": r.config_hash,
        "data_hash": r.data_hash,
        "data_source": r.data_root,
        **r.extra_summary,
        "apy_net_of_exit": _apy_net_of_exit(r, index, hours),
    }


def _apy_net_of_exit(r: RunResult, index: np.ndarray, hours: int) -> float | None:
    """The APY had the book been unwound at the last hour: the share index scaled by liquidation NAV / NAV."""
    exit_ = r.extra_summary.get("exit")
    if not exit_ or r.nav[-1] <= 0.0:
        return None
    return metrics.apy(index * (exit_["liquidation_nav"] / float(r.nav[-1])), hours)
