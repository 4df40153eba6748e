"""The smallest capital a mode can run on, at a point in time: entering and leaving may cost at most
1% of it in fixed costs (gas, transfer fees), entering may cost at most 1% of it all told (fixed
costs plus the proportional ones: fees, slippage, flash-loan premium), and every first order and
transfer must meet the venues' minimum sizes. Also the floor under which a strategy holds cash
rather than a position."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

MAX_COST_SHARE = 0.01

Problem = tuple[str, object, str]


@dataclass(frozen=True)
class CapitalFloor:
    fixed_costs: dict[str, float] = field(default_factory=dict)  # share-class units, entering + leaving
    entry_fixed: float = 0.0  # the part of fixed_costs paid on entering
    # proportional costs of entering, as fractions of the capital: config field -> (share, its value)
    entry_shares: dict[str, tuple[float, object]] = field(default_factory=dict)
    order_minimum: float = 0.0  # capital at which the smallest first order or transfer meets its minimum
    order_note: str = ""

    @property
    def entry_share(self) -> float:
        return sum(share for share, _ in self.entry_shares.values())

    @property
    def by_costs(self) -> float:
        if self.entry_share >= MAX_COST_SHARE:
            return math.inf
        return max(sum(self.fixed_costs.values()) / MAX_COST_SHARE,
                   self.entry_fixed / (MAX_COST_SHARE - self.entry_share))

    @property
    def amount(self) -> float:
        return max(self.by_costs, self.order_minimum)

    def problem(self, capital: float, ccy: str, mode: str, when: str) -> Problem | None:
        """The config problem when `capital` is below the floor: its minimum and why, or the field whose
        proportional entry cost alone exceeds the limit."""
        if capital >= self.amount:
            return None
        if self.entry_share >= MAX_COST_SHARE:
            worst = max(self.entry_shares, key=lambda name: self.entry_shares[name][0])
            parts = ", ".join(f"{name} {share:.3%}" for name, (share, _) in self.entry_shares.items() if share)
            return (worst, self.entry_shares[worst][1],
                    f"entering {mode} costs {self.entry_share:.3%} of the capital in fees, slippage and premiums "
                    f"({parts}), more than {MAX_COST_SHARE:.0%} whatever the capital; lower the "
                    "leverage or choose cheaper execution")
        minimum = math.ceil(self.amount * 100) / 100
        if self.by_costs >= self.order_minimum:
            costs = ", ".join(f"{name} {v:,.4g}" for name, v in self.fixed_costs.items() if v)
            why = (f"entering and leaving at {when} costs {sum(self.fixed_costs.values()):,.4g} {ccy} in fixed costs "
                   f"({costs})")
            if self.entry_share:
                why += f", and entering a further {self.entry_share:.3%} of the capital in fees, slippage and premiums"
            why += f"; costs must stay within {MAX_COST_SHARE:.0%} of the capital"
        else:
            why = self.order_note
        return ("initial_capital", capital, f"below the minimum {minimum:,.2f} {ccy} for {mode}: {why}; raise "
                f"initial_capital (--capital) to at least {minimum:,.2f}")
