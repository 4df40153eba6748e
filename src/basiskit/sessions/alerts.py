"""Alerts of a paper session: thresholds on what the risk monitor reads each hour, feed problems and the
engine's own liquidations, raised once per crossing into the store (the webhook's outbox) and stderr.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass

from ..config.models import RunConfig
from ..data.timeutil import iso

ENGINE_ALERTS = ("liquidation", "error", "feed_refused")  # engine events every operator must see


@dataclass(frozen=True)
class AlertThresholds:
    """Alert when health factor < health_factor, margin ratio >= margin_ratio, |net delta| / NAV >=
    net_delta_pct, liquidation distance < liq_distance, LST discount to its rate >= lst_depeg; and when the
    wallet's ETH falls under the strategy's gas reserve."""

    health_factor: float | None = None
    margin_ratio: float = 0.2
    net_delta_pct: float = 0.05
    liq_distance: float = 0.10
    lst_depeg: float = 0.01

    @classmethod
    def for_config(cls, cfg: RunConfig, **overrides: float | None) -> AlertThresholds:
        """The run's own limits (the leverage HF floor, the risk monitor's margin and delta limits) unless
        overridden."""
        base = {"health_factor": cfg.leverage.hf_floor if cfg.leverage is not None else None,
                "margin_ratio": cfg.risk.margin_ratio_alert, "net_delta_pct": cfg.risk.max_net_delta_pct}
        base |= {k: v for k, v in overrides.items() if v is not None}
        return cls(**base)


@dataclass(frozen=True)
class Alert:
    k: int
    t: int
    kind: str
    message: str
    details: dict

    def row(self) -> tuple:
        return (self.k, self.t, self.kind, self.message, self.details)

    def body(self, session: str) -> dict:
        return {"session": session, "timestamp": iso(self.t), **asdict(self)}


class AlertMonitor:
    """Turns each hour's risk reading into alerts, once per crossing of each threshold (per venue)."""

    def __init__(self, thresholds: AlertThresholds):
        self.th = thresholds
        self.active: set[str] = set()

    def _cross(self, key: str, breached: bool, alert: Alert, out: list[Alert]) -> None:
        if breached and key not in self.active:
            out.append(alert)
        if breached:
            self.active.add(key)
        else:
            self.active.discard(key)

    def check(self, k: int, t: int, risk: dict) -> list[Alert]:
        out: list[Alert] = []
        th = self.th
        hf = risk.get("health_factor")
        if th.health_factor is not None and hf is not None:
            self._cross("health_factor", hf < th.health_factor,
                        Alert(k, t, "health_factor", f"health factor {hf:.4f} < {th.health_factor:g}",
                              {"health_factor": hf, "limit": th.health_factor}), out)
        for venue, r in risk.get("margin_ratio", {}).items():
            self._cross(f"margin_ratio:{venue}", r >= th.margin_ratio,
                        Alert(k, t, "margin_ratio", f"{venue} margin ratio {r:.4f} >= {th.margin_ratio:g}",
                              {"venue": venue, "margin_ratio": r, "limit": th.margin_ratio}), out)
        pct = risk.get("net_delta_pct")
        if pct is not None:
            self._cross("net_delta", pct >= th.net_delta_pct,
                        Alert(k, t, "net_delta", f"net delta {pct:.2%} of NAV >= {th.net_delta_pct:.2%}",
                              {"net_delta": risk.get("net_delta"), "net_delta_pct": pct,
                               "limit": th.net_delta_pct}), out)
        for venue, d in risk.get("liq_distance", {}).items():
            self._cross(f"liq_distance:{venue}", d < th.liq_distance,
                        Alert(k, t, "liq_distance", f"{venue} is {d:.2%} from liquidation (< {th.liq_distance:.0%})",
                              {"venue": venue, "liq_distance": d, "limit": th.liq_distance}), out)
        gas = risk.get("gas_reserve")
        if gas is not None and gas["reserve"] > 0:
            self._cross("low_gas", gas["eth"] < gas["reserve"],
                        Alert(k, t, "low_gas", f"the wallet holds {gas['eth']:.6f} ETH for gas, under the gas reserve "
                              f"{gas['reserve']:.6f} ETH (a full de-lever at the 30-day 99th percentile gas price)",
                              {"eth": gas["eth"], "reserve_eth": gas["reserve"]}), out)
        depeg = risk.get("lst_depeg")
        if depeg is not None:
            self._cross("lst_depeg", depeg >= th.lst_depeg,
                        Alert(k, t, "lst_depeg", f"LST trades {depeg:.2%} under its rate (>= {th.lst_depeg:.2%})",
                              {"lst_depeg": depeg, "limit": th.lst_depeg}), out)
        return out

    @staticmethod
    def from_events(events, t_of) -> list[Alert]:
        """The engine events an operator must see (liquidations, errors, refused feed rows) as alerts."""
        return [Alert(e.k, t_of(e.k), e.type, e.message, dict(e.details)) for e in events if e.type in ENGINE_ALERTS]


class AlertSink:
    """Alerts on stderr as they are raised (the store keeps them; the webhook sender posts them from the
    store's outbox: sessions/outbox.py)."""

    def __init__(self, session: str, quiet: bool = False):
        self.session = session
        self.quiet = quiet

    def emit(self, alerts: list[Alert]) -> None:
        if not self.quiet:
            for a in alerts:
                sys.stderr.write(f"ALERT {self.session} {iso(a.t)} {a.kind}: {a.message}\n")
