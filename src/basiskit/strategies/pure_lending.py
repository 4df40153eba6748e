"""pure_lending: all capital supplied to one Aave v3 reserve, the share-class asset."""

from __future__ import annotations

from functools import partial

from ..data.market import MarketData, Need
from ..portfolio.attribution import SPOT_PRICE, SUPPLY_YIELD, VOID
from ..portfolio.book import PositionSpec
from ..portfolio.currency import SHARE_CLASS_ASSET
from ..venues.aave import RESERVES, AaveReserve
from .base import Strategy, require
from .capital import MAX_COST_SHARE, CapitalFloor
from .discipline import DUST, Trigger
from .registry import register


@register
class PureLending(Strategy):
    name = "pure_lending"
    description = "Supply the whole NAV to an Aave v3 reserve of the share-class asset"

    @classmethod
    def validate_config(cls, cfg, dataset) -> list:
        if cfg.lending is None:
            return require(cfg, cls.name, lending="e.g. lending: {reserve: USDT}")
        asset = RESERVES[cfg.lending.reserve][1]
        if asset != SHARE_CLASS_ASSET[cfg.share_class]:
            wanted = SHARE_CLASS_ASSET[cfg.share_class]
            choices = ", ".join(s for s, (_, a) in RESERVES.items() if a == wanted)
            return [("lending.reserve", cfg.lending.reserve,
                     f"holds {asset}, but share_class {cfg.share_class} needs a {wanted} reserve ({choices})")]
        return []

    def __init__(self, cfg, env):
        super().__init__(cfg, env)
        self.reserve = AaveReserve(cfg.lending.reserve)
        self.pricer.use(self.reserve.asset)
        self.threshold = cfg.position_deviation_threshold
        self.supply_units = self.gas.units.supply
        self.withdraw_units = self.gas.units.withdraw

    def needs(self) -> list[Need]:
        return self.reserve.needs()

    def bind(self, market: MarketData) -> list[PositionSpec]:
        self.reserve.bind(market)
        ones = market.ones
        price = market.derived(partial(self.pricer.price, self.reserve.asset))
        price_slot = VOID if self.pricer.is_unit(self.reserve.asset) else SPOT_PRICE
        return [
            PositionSpec(self.reserve.atoken, self.reserve.liquidity_index, ones, price,
                         index_slot=SUPPLY_YIELD, rate_slot=VOID, price_slot=price_slot)
        ]

    def attach(self, ctx) -> None:
        super().attach(ctx)
        self.qty = ctx.book.qty
        self.position = ctx.book.slot_of(self.reserve.atoken.key)

    def capital_floor(self, k: int, capital: float) -> CapitalFloor:
        return CapitalFloor({"gas": self.gas.cost(self.supply_units + self.withdraw_units, k)},
                            self.gas.cost(self.supply_units, k))

    def on_tick(self, k: int) -> None:
        """Target: everything supplied. Act when idle cash exceeds the deviation threshold of NAV."""
        idle = self.qty[self.ctx.wallet]
        if idle <= 0.0:
            return
        nav = self.ctx.book.nav(k)
        if idle <= max(self.threshold, DUST) * nav:
            return
        self.supply_idle(k, Trigger("idle_cash", idle / nav, self.threshold, corrects=idle,
                                    max_cost=MAX_COST_SHARE * idle))

    def supply_idle(self, k: int, trigger: Trigger) -> None:
        def act() -> None:
            amount = self.qty[self.ctx.wallet] - self.gas.cost(self.supply_units, k)
            if amount > 0.0:
                self.ctx.executor.aave_supply(k, self.reserve, self.position, amount)

        self.gate.attempt(k, trigger, act)

    def aave_reserves(self) -> list:
        return [self.reserve]

    def raise_cash(self, k: int, amount: float) -> None:
        needed = amount + self.gas.cost(self.withdraw_units, k) - self.qty[self.ctx.wallet]
        if needed > 0.0:
            trigger = Trigger("withdrawal", amount, self.qty[self.ctx.wallet], forced=True)
            self.gate.attempt(k, trigger, lambda: self.ctx.executor.aave_withdraw(k, self.reserve, self.position,
                                                                                  needed))
