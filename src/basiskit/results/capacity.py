"""The capacity curve: what a strategy earns by capital once its own size is paid for (rate impact on Aave,
market impact of its trades, the cost of unwinding it at the end) and where the market could not take it."""

from __future__ import annotations

import numpy as np

from ..venues.aave_footprint import REFUSED_MARK  # in the error of a run aave.liquidity_policy refused


def run_figures(summary: dict | None, error: str | None = None) -> dict:
    """One run's capacity figures (shares of its initial capital)."""
    if summary is None or not summary.get("initial_capital"):
        return {"refused": bool(error and REFUSED_MARK in error), "error": error}
    capital = float(summary["initial_capital"])
    attribution = summary.get("pnl_attribution", {})
    exit_ = summary.get("exit") or {}
    bench = summary.get("benchmark") or {}
    return {
        "refused": False, "error": None,
        "apy": summary.get("apy"), "apy_net_of_exit": summary.get("apy_net_of_exit"),
        "rate_impact_share": summary.get("rate_impact", 0.0) / capital,
        "cost_share": -attribution.get("transaction_costs", 0.0) / capital,
        "exit_cost_share": exit_.get("cost", 0.0) / capital,
        "constrained_hours": summary.get("liquidity_constrained_hours", 0),
        "benchmark": bench.get("name"), "benchmark_apy": bench.get("apy"),
    }


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def curve(rows: list[tuple[float, dict]]) -> dict:
    """Per capital (ascending) the mean of its runs' figures, a capital refused when any of its runs was, and
    the first capital whose APY net of exit falls under the benchmark (`below_benchmark_from`)."""
    by_capital: dict[float, list[dict]] = {}
    for capital, figures in rows:
        by_capital.setdefault(float(capital), []).append(figures)
    points = []
    for capital, runs in sorted(by_capital.items()):
        ok = [r for r in runs if not r["refused"] and r["error"] is None]
        point = {"capital": capital, "runs": len(runs), "refused": any(r["refused"] for r in runs),
                 "failed": sum(r["error"] is not None and not r["refused"] for r in runs)}
        for key in ("apy", "apy_net_of_exit", "rate_impact_share", "cost_share", "exit_cost_share",
                    "constrained_hours", "benchmark_apy"):
            point[key] = _mean([r.get(key) for r in ok])
        point["benchmark"] = next((r["benchmark"] for r in ok if r.get("benchmark")), None)
        points.append(point)
    below = next((p["capital"] for p in points if p["refused"] or (
        p["apy_net_of_exit"] is not None and p["benchmark_apy"] is not None
        and p["apy_net_of_exit"] < p["benchmark_apy"])), None)
    for p in points:
        p["below_benchmark"] = below is not None and p["capital"] >= below
    return {"points": points, "below_benchmark_from": below}
