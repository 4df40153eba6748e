"""Orders that take time: a voluntary rebalance whose legs would take more than execution.max_participation
of their markets' last closed hourly volume is split over the following hours. Every hour each leg moves by
one common fraction of what is left, the largest that keeps every leg within its share, so legs that hedge
each other are built (or unwound) in step and the book stays hedged throughout. The impact of each slice
is that of the whole order (square-root law for a metaorder: costs/impact depend on its total size).

Safety actions and withdrawals are never split (the strategy does not pace them); a market with no volume
in its last closed hour sets no limit (its trades pay the bucket costs, and the executor says so)."""

from __future__ import annotations

import math

from ..venues.costs import Liquidity
from .capital import MAX_COST_SHARE
from .discipline import Trigger

Leg = tuple[Liquidity, float]  # a market and the USD notional the order still has to trade there


class Pacer:
    """One run's pacing of the orders on `markets` (every run starts with no order under way)."""

    def __init__(self, max_participation: float, markets: list):
        for market in markets:
            market.liquidity.parent_usd = 0.0
        self.max_participation = max_participation
        self.active = False  # the action being taken is voluntary (set around each action)
        self.building = False  # a split order has slices left
        self.sliced_at = -1  # the hour of its last slice (one an hour)
        self.slice_value = 0.0  # what the last slice moved (share-class units)
        self.parents: list[Liquidity] = []

    def waiting(self, k: int) -> bool:
        """A split order took its slice this hour: nothing more until the next."""
        return self.building and self.sliced_at == k

    def fraction(self, k: int, legs: list[Leg]) -> float:
        """The share of what is left to trade at k: 1 when the action is not paced or every leg fits."""
        if not self.active:
            return 1.0
        f = 1.0
        for liquidity, usd in legs:
            volume = liquidity.last_volume[k]
            cap = self.max_participation * volume * (1.0 - 1e-12)  # at most the share, float noise included
            if volume > 0.0 and usd > cap:
                f = min(f, cap / usd)
        return f

    def begin(self, k: int, legs: list[Leg]) -> float:
        """The fraction to trade now; on the first slice of a split order, each market learns the whole
        order's size (its impact), and the order is marked as building until a slice completes it."""
        f = self.fraction(k, legs)
        if f < 1.0 and not self.building:
            for liquidity, usd in legs:
                liquidity.parent_usd = usd
            self.parents = [liquidity for liquidity, _ in legs]
        self.building = f < 1.0
        self.sliced_at = k
        return f

    def hedged_slice(self, k: int, units: float, price: float, usd_per_usdt: float, fx: float, spot, hedge) -> float:
        """`begin` for an order of `units` of an asset bought or sold on `spot` (USDT `price`; `fx` share-class
        units per USDT) and hedged on `hedge`'s perps by their weights: the share of it to trade at k."""
        usd = abs(units) * usd_per_usdt
        legs = [(spot.liquidity, usd * price)] + [
            (p.liquidity, usd * w * p.mark[k]) for p, w in zip(hedge.perps, hedge.weights, strict=True)]
        f = self.begin(k, legs)
        self.slice_value = f * abs(units) * price * fx
        return f

    def end(self) -> None:
        """After an action: a completed order forgets its parents (the next one is sized afresh)."""
        if not self.building:
            for liquidity in self.parents:
                liquidity.parent_usd = 0.0
            self.parents = []

    def trigger(self, remaining: float, nav: float) -> Trigger:
        """The trigger of the next slice: what is left (share-class units) against nothing; a slice may cost
        what entering may, MAX_COST_SHARE of what it moves (an order whose impact costs more per dollar stops
        there), and is tried every hour."""
        self.slice_value = 0.0
        return Trigger("build", remaining / nav if nav > 0 else math.inf, 0.0, corrects=math.inf,
                       every_hour=True, moved=self._moved, per_moved=MAX_COST_SHARE)

    def _moved(self) -> float:
        return self.slice_value
