"""market_neutral: USDT share class; stake_allocation of equity buys ETH and stakes it (levered to
target_ltv on Aave eMode when set), the rest is perp margin; ETH perps short across venues by
hedge_allocation keep the net ETH delta (LST at the oracle rate - WETH debt + wallet ETH - shorts)
near zero (usdt_market_neutral_no_leverage, usdt_market_neutral).

Risk: HF below leverage.hf_floor deleverages, margin ratio at its limit moves margin then reduces;
the risk override can only reduce exposure.
"""

from __future__ import annotations

import numpy as np

from ..config.models import RunConfig
from ..data.market import MarketData, Need
from ..portfolio.attribution import SPOT_PRICE, VOID
from ..portfolio.book import PositionSpec
from ..portfolio.instruments import Instrument
from ..portfolio.risk import liquidation_summary
from ..venues.cex import load_venue, spot_series
from ..venues.spot import SpotMarket
from .base import Problem, Report, Strategy, require
from .hedge import DUST, PerpHedge, validate_hedge_config
from .rebalance import RebalanceLog
from .registry import register
from .staking_leg import StakingLeg


@register
class MarketNeutral(Strategy):
    name = "market_neutral"
    description = "Staked (optionally levered) ETH hedged with short ETH perps; USDT share class"

    @classmethod
    def validate_config(cls, cfg: RunConfig) -> list[Problem]:
        problems = require(cfg, cls.name, "USDT", lst="weETH or wstETH", stake_allocation="e.g. 0.75")
        margin = (1 - cfg.stake_allocation) / cfg.stake_allocation if cfg.stake_allocation else None
        return problems + validate_hedge_config(cfg, cls.name, "stake_allocation", margin)

    def __init__(self, cfg, env):
        super().__init__(cfg, env)
        venue = cfg.market_neutral.spot_venue
        self.spot = SpotMarket(load_venue(env.dataset, cfg, venue, "ETHUSDT"), "ETH")
        self.pricer.use("ETH", spot_series(venue, "ETH"))
        env.slippage.check(self.spot.pair)
        self.leg = StakingLeg(cfg, env)
        self.hedge = PerpHedge(cfg, env, "ETH")
        self.eth_wallet = Instrument("wallet", "BaseToken", "ETH", "ETH")
        self.allocation = cfg.stake_allocation
        self.threshold = cfg.position_deviation_threshold
        self.ratio_limit = cfg.market_neutral.margin_ratio_limit

    def needs(self) -> list[Need]:
        return self.leg.needs() + self.hedge.needs()

    def bind(self, market: MarketData) -> list[PositionSpec]:
        n = market.n_points
        ones = [1.0] * n
        self.price = self.pricer.price_usdt("ETH").tolist()
        self.fx = self.pricer.price("USDT").tolist()
        eth = PositionSpec(self.eth_wallet, ones, ones, self.pricer.price("ETH").tolist(), VOID, VOID, SPOT_PRICE)
        return [eth, *self.leg.bind(market), *self.hedge.bind(market, self.fx, VOID)]

    def attach(self, ctx) -> None:
        super().attach(ctx)
        self.qty = ctx.book.qty
        self.eth_pos = ctx.book.slot_of(self.eth_wallet.key)
        self.leg.attach(ctx, eth_pos=self.eth_pos)
        self.hedge.attach(ctx, self.net_eth, self.price)
        self.log = RebalanceLog(ctx.events, "ETH")

    def hooks(self):
        return self.leg.hooks() + self.hedge.hooks()

    def eth_long(self, k: int) -> float:
        return self.leg.equity_eth(k) + self.qty[self.eth_pos]

    def net_eth(self, k: int) -> float:
        return self.eth_long(k) - self.hedge.short_units()

    # --- decisions -----------------------------------------------------------------------------
    def on_tick(self, k: int) -> None:
        if self.hedge.handle_margin(k, self.ratio_limit, self.rebalance):
            return
        reason = self.leg.leverage_drift(k)
        if reason:
            self.relever(k, reason)
            return
        delta_value = abs(self.net_eth(k)) * self.price[k]
        idle = abs(self.qty[self.ctx.wallet])
        bound = self.threshold * self.log.nav_hint * 0.5
        if delta_value > bound or idle > bound:
            limit = self.threshold * self.ctx.book.nav(k)
            if idle > limit:
                self.rebalance(k, "idle_cash")
            elif delta_value > limit:
                self.rehedge(k, "deviation")

    def raise_cash(self, k: int, amount: float) -> None:
        self.rebalance(k, "withdrawal", keep=amount)

    # --- actions -------------------------------------------------------------------------------
    def relever(self, k: int, reason: str) -> None:
        """Bring the staking leg back to the target LTV at the same ETH exposure, then re-hedge."""
        self.leg.adjust(k, self.leg.equity_eth(k))
        self.rehedge(k, reason)

    def rehedge(self, k: int, reason: str) -> None:
        before = self.hedge.short_units()
        dust = DUST * max(self.log.nav_hint, 1.0)
        self.hedge.hedge(k, self.eth_long(k), dust)
        self.hedge.distribute_margin(k, max(self.qty[self.ctx.wallet], 0.0), reason)
        self.log.record(k, reason, before, self.hedge.short_units(), self.net_eth(k), self.price[k],
                        self.ctx.book.nav(k))

    def rebalance(self, k: int, reason: str, keep: float = 0.0, reduce: bool = False) -> None:
        """Stake allocation x (NAV - keep) worth of ETH, hedge it, spread the rest as perp margin."""
        qty, ex = self.qty, self.ctx.executor
        price, fx = self.price[k], self.fx[k]
        nav = self.ctx.book.nav(k)
        before = self.hedge.short_units()
        current = self.eth_long(k)
        target = self.allocation * max(nav - keep, 0.0) / price
        if reduce:
            target = min(target, current * (1.0 - self.cfg.risk.reduce_fraction))
        dust = DUST * max(nav, 1.0)
        if target > current and (target - current) * price > dust:
            ex.spot_trade(k, self.spot, self.eth_pos, target - current, price, fx)
        self.leg.adjust(k, target)
        leftover = qty[self.eth_pos]
        if abs(leftover) * price > dust:
            ex.spot_trade(k, self.spot, self.eth_pos, -leftover, price, fx)
        self.hedge.hedge(k, self.eth_long(k), dust)
        self.hedge.distribute_margin(k, qty[self.ctx.wallet] - keep, reason)
        self.log.record(k, reason, before, self.hedge.short_units(), self.net_eth(k), price, self.ctx.book.nav(k))

    # --- reporting -----------------------------------------------------------------------------
    def report(self, quantities: np.ndarray, nav: np.ndarray) -> Report:
        cols, summary = self.leg.report(quantities)
        hedge_cols, hedge_summary = self.hedge.report(quantities)
        price = np.asarray(self.price)
        net = cols["collateral_eth"] - cols["debt_eth"] + quantities[self.eth_pos] \
            + quantities[self.hedge.size_pos].sum(axis=0)
        cols |= hedge_cols | {"net_delta:ETH": net, "net_delta_usdt:ETH": net * price}
        summary |= hedge_summary | self.log.summary(net * price * np.asarray(self.fx), nav)
        summary["liquidations"] = liquidation_summary(self.leg.liquidations + self.hedge.liquidations())
        return Report(cols, summary)
