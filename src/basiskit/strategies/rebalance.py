"""The record of a strategy's rebalances: standard action names, counts and the net delta after each."""

from __future__ import annotations

import numpy as np

from ..execution.events import EventLog
from .discipline import Trigger


def action_name(before: float, after: float) -> str:
    """entry_full / exit_full / entry_partial / exit_partial by exposure before and after."""
    if before == 0.0 and after > 0.0:
        return "entry_full"
    if after == 0.0 and before > 0.0:
        return "exit_full"
    if after > before:
        return "entry_partial"
    if after < before:
        return "exit_partial"
    return "margin"


HINT_REFRESH_TICKS = 24
HINT_MARGIN = 0.98


class RebalanceLog:
    def __init__(self, events: EventLog, asset: str, book, threshold: float):
        self.events = events
        self.asset = asset
        self.book = book
        self.threshold = threshold
        self.records: list[dict] = []
        self.nav_hint = 0.0  # NAV after the last rebalance or daily refresh
        # For a cheap per-tick pre-filter (the exact test then uses NAV at k): a lower bound of
        # threshold x NAV(k), from nav_hint less a 2% margin, refreshed once a day (at refresh_at).
        self.floor = 0.0
        self.refresh_at = 0

    def refresh(self, k: int, nav: float | None = None) -> None:
        self.nav_hint = self.book.nav(k) if nav is None else nav
        self.floor = HINT_MARGIN * self.threshold * self.nav_hint
        self.refresh_at = k + HINT_REFRESH_TICKS

    def record(self, k: int, trigger: Trigger, before: float, after: float, net_delta: float, price: float,
               nav: float, cost: float) -> None:
        """A committed rebalance: why (the trigger's value against its threshold), what, and its cost."""
        self.refresh(k, nav)
        action = action_name(before, after)
        record = {"action": action, "reason": trigger.reason, **trigger.details(), "units_before": before,
                  "units_after": after, "net_delta": net_delta,
                  "net_delta_pct": net_delta * price / nav if nav else 0.0, "cost": cost}
        self.records.append({"k": k, **record})
        self.events.add(k, "rebalance", f"{action} ({trigger.describe()}): {self.asset} {before:.6f} -> "
                        f"{after:.6f}, cost {cost:.6g}", **record)

    def summary(self, net_delta_value: np.ndarray, nav: np.ndarray) -> dict:
        with np.errstate(divide="ignore", invalid="ignore"):
            pct = np.where(nav > 0, np.abs(net_delta_value) / nav, 0.0)
        return {
            "rebalances": len(self.records),
            "rebalances_by_action": {a: sum(r["action"] == a for r in self.records)
                                     for a in sorted({r["action"] for r in self.records})},
            "max_abs_net_delta_pct": float(pct.max()),
        }
