"""Risk monitor: margin ratio per venue and net delta against configured limits.

Alerts go to the event log when a limit is crossed (once per crossing). The override flag tells
the strategy to reduce exposure; it can never ask for more.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..config.models import RiskConfig
from ..venues.margin import MarginAccount

if TYPE_CHECKING:
    from ..execution.events import EventLog  # (the run's log: handed in, never imported at run time)

NAV_REFRESH_TICKS = 24


class RiskMonitor:
    def __init__(self, cfg: RiskConfig, accounts: list[MarginAccount], events: EventLog, book,
                 net_delta: Callable[[int], float], price: list[float]):
        self.cfg = cfg
        self.accounts = accounts
        self.events = events
        self.book = book
        self.net_delta = net_delta
        self.price = price
        self.worst_ratio = 0.0
        self.override = False
        self._alerting = [False] * len(accounts)
        self._delta_alerting = False
        self._nav = 0.0

    def __call__(self, k: int) -> None:
        worst = 0.0
        alert = self.cfg.margin_ratio_alert
        for i, acct in enumerate(self.accounts):
            r = acct.ratio(k)
            if r > worst:
                worst = r
            if (r >= alert) != self._alerting[i]:
                self._alerting[i] = r >= alert
                if r >= alert:
                    self.events.add(k, "risk_alert", f"{acct.perp.venue.name} margin ratio {r:.3f} >= {alert:g}",
                                    venue=acct.perp.venue.name, margin_ratio=r, limit=alert)
        self.worst_ratio = worst
        self.override = worst >= self.cfg.margin_ratio_override
        if not k % NAV_REFRESH_TICKS:
            self._nav = self.book.nav(k)
        delta = self.net_delta(k)
        over = self._nav > 0.0 and abs(delta) * self.price[k] > self.cfg.max_net_delta_pct * self._nav
        if over != self._delta_alerting:
            self._delta_alerting = over
            if over:
                self.events.add(k, "risk_alert", f"net delta {delta:+.6f} over {self.cfg.max_net_delta_pct:.1%} of NAV",
                                net_delta=delta, limit=self.cfg.max_net_delta_pct)


def liquidation_summary(records: list[dict]) -> dict:
    """Liquidations of every venue (CEX and Aave): count, total loss in share-class units, details."""
    return {"count": len(records), "loss": float(sum(r["loss"] for r in records)),
            "events": sorted(records, key=lambda r: r["k"])}
