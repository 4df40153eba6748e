"""An hour of the real book explained: what each holding should be after the previous reading (its units grown
by its index, Aave's accrual, plus what the venues report moved it) against what it is, the rest `unexplained`;
and the hour's PnL attributed by source over the real balances, reconciling to NAV exactly."""

from __future__ import annotations

from dataclasses import dataclass

from .book import KINDS, Holding, Observation

# attribution sources, in USD: the yield of a growing index is supply yield (aTokens) or borrow cost (debts)
SOURCES = ("supply_yield", "borrow_cost", "price", "funding", "fees", "flows", "trades", "unexplained")


@dataclass(frozen=True)
class Line:
    key: str
    before: float
    expected: float
    observed: float
    unexplained: float  # units
    value_usd: float  # of the unexplained units
    moved: dict[str, float]


@dataclass(frozen=True)
class Reconciliation:
    lines: list[Line]
    attribution: dict[str, float]  # source -> USD over the hour
    nav_before: float
    nav_after: float

    @property
    def residual(self) -> float:
        """NAV change minus the attributed sources: zero up to float rounding (a residual is a bug)."""
        return (self.nav_after - self.nav_before) - sum(self.attribution.values())

    def to_json(self) -> dict:
        return {"nav_before": self.nav_before, "nav_after": self.nav_after, "attribution": self.attribution,
                "residual": self.residual,
                "lines": [line.__dict__ for line in self.lines if line.before or line.observed or line.unexplained]}


def reconcile(before: Observation, after: Observation) -> Reconciliation:
    """q1 = q0 x index1 / index0 + moves + unexplained, for every holding of either reading; the value change
    q1 p1 - q0 p0 = q0 (g - 1) p1 [yield] + q0 (p1 - p0) [price] + moves p1 + unexplained p1, exactly."""
    attribution = dict.fromkeys(SOURCES, 0.0)
    lines = []
    for key in sorted(set(before.holdings) | set(after.holdings)):
        h0 = before.holdings.get(key) or Holding(0.0, 0.0)
        h1 = after.holdings.get(key) or Holding(0.0, h0.price, h0.index)
        growth = h1.index / h0.index if h0.index else 1.0
        moved = after.moved.get(key, dict.fromkeys(KINDS, 0.0))
        expected = h0.units * growth + sum(moved.values())
        unexplained = h1.units - expected
        kind = key.split("/")[2]
        yield_usd = h0.units * (growth - 1.0) * h1.price
        attribution["borrow_cost" if kind == "debtToken" else "supply_yield"] += yield_usd
        attribution["price"] += h0.units * (h1.price - h0.price)
        for k, units in moved.items():
            attribution[k] += units * h1.price
        attribution["unexplained"] += unexplained * h1.price
        lines.append(Line(key, h0.units, expected, h1.units, unexplained, unexplained * h1.price, moved))
    return Reconciliation(lines, attribution, before.nav_usd(), after.nav_usd())
