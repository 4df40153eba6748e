"""basis: long spot, short perpetuals split across venues by hedge_allocation, USDT share class.

Target from equity E: hedge notional N = E / (1 + margin_buffer + spot cost), spot units u = N / p,
perp size on venue v = -u x w_v, the rest of E as margin spread by w_v. Rebalances on deposits,
withdrawals, net delta beyond position_deviation_threshold, and margin ratio at its limit (margin
moves between venues first, then exposure is reduced); the risk override can only reduce exposure.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from ..config.models import RunConfig
from ..data.market import MarketData, Need
from ..portfolio.attribution import SPOT_PRICE, VOID
from ..portfolio.book import PositionSpec
from ..portfolio.risk import liquidation_summary
from ..venues.cex import load_venue, spot_series
from ..venues.spot import SpotMarket
from .base import Problem, Report, Strategy, require
from .capital import MAX_COST_SHARE, CapitalFloor
from .discipline import DUST, Backoff, Trigger
from .hedge import PerpHedge, validate_hedge_config
from .pacing import Pacer
from .rebalance import RebalanceLog
from .registry import register


@register
class Basis(Strategy):
    name = "basis"
    description = "Long spot, short perps across venues (delta neutral), earning funding"
    on_chain = False

    @classmethod
    def validate_config(cls, cfg: RunConfig, dataset) -> list[Problem]:
        problems = require(cfg, cls.name, "USDT", basis="e.g. basis: {asset: BTC}")
        if cfg.basis is None:
            return problems
        b = cfg.basis
        return problems + validate_hedge_config(cfg, dataset, cls.name, b.asset, "basis.margin_buffer",
                                                b.margin_buffer, "basis.margin_ratio_limit", b.margin_ratio_limit)

    def __init__(self, cfg, env):
        super().__init__(cfg, env)
        b = cfg.basis
        self.asset = b.asset
        self.spot = SpotMarket(load_venue(env.dataset, cfg, b.spot_venue, f"{b.asset}USDT"), b.asset,
                               window=cfg.costs.impact.window_hours)
        self.pricer.use(b.asset, spot_series(b.spot_venue, b.asset))
        env.slippage.check(self.spot.pair)
        self.hedge = PerpHedge(cfg, env, b.asset, b.margin_ratio_limit)
        self.margin_buffer = b.margin_buffer
        self.fixed_units = b.fixed_units
        self.threshold = cfg.position_deviation_threshold
        # spot trade cost rate used to size the hedge so the wallet is not overdrawn
        self.spot_cost = self.spot.venue.spot_taker_fee + env.slippage.rate(self.spot.pair, 0.0)

    def needs(self) -> list[Need]:
        return self.hedge.needs() + self.spot.needs()

    def bind(self, market: MarketData) -> list[PositionSpec]:
        self.spot.bind(market)
        ones = market.ones
        self.price = market.derived(partial(self.pricer.price_usdt, self.asset))
        self.fx = market.derived(partial(self.pricer.price, "USDT"))  # USDT in share-class units
        self.unit_usd = market.derived(self.pricer.unit_usd)
        fx_slot = VOID if self.pricer.is_unit("USDT") else SPOT_PRICE
        spot = PositionSpec(self.spot.instrument, ones, ones, market.derived(partial(self.pricer.price, self.asset)),
                            index_slot=VOID, rate_slot=VOID, price_slot=SPOT_PRICE)
        return [spot, *self.hedge.bind(market, self.fx, fx_slot)]

    def attach(self, ctx) -> None:
        super().attach(ctx)
        self.qty = ctx.book.qty
        self.spot_pos = ctx.book.slot_of(self.spot.instrument.key)
        self.hedge.attach(ctx, self.net_units, self.price)
        self.log = RebalanceLog(ctx.events, self.asset, ctx.book, self.threshold)
        self.pacer = Pacer(self.cfg.execution.max_participation, [self.spot, *self.hedge.perps])
        self.idle_backoff = Backoff()

    def hooks(self):
        return self.hedge.hooks()

    def risk_now(self, k: int) -> dict:
        return self.hedge.risk_now(k)

    def net_units(self, k: int) -> float:
        return self.qty[self.spot_pos] - self.hedge.short_units()

    def capital_floor(self, k: int, capital: float) -> CapitalFloor:
        """Transfers in and out of every venue; spot and perp fees and slippage on the hedge notional
        N = C / (1 + m + c); the venues' minimum sizes (hedge.capital_needs)."""
        scale = 1.0 + self.margin_buffer + self.spot_cost
        fx, usd = self.fx[k], self.unit_usd[k]
        notional = capital / fx / scale  # USDT
        spot = self.spot.venue
        spot_rate = spot.spot_taker_fee + self.env.slippage.rate(self.spot.pair, notional * usd)
        shares = {f"venues.{spot.name}.spot_taker_fee": (spot_rate / scale, spot.spot_taker_fee)}
        need = [(spot.min_spot_order_usdt * scale, f"a {spot.name} spot order")]
        for perp, w in zip(self.hedge.perps, self.hedge.weights, strict=True):
            v = perp.venue
            rate = v.perp_taker_fee + self.env.slippage.rate(perp.pair, notional * w * usd)
            shares[f"venues.{v.name}.perp_taker_fee"] = (rate * w / scale, v.perp_taker_fee)
        need += self.hedge.capital_needs(1.0 / scale, self.margin_buffer / scale, self.threshold)
        amount, what = max(need)
        fees = self.hedge.transfer_fees * fx
        return CapitalFloor({"transfer fees": 2 * fees}, fees, shares, amount * fx,
                            f"{what} would be under the venue's minimum size")

    # --- decisions -----------------------------------------------------------------------------
    def on_tick(self, k: int) -> None:
        trigger = self.hedge.margin_trigger(k)
        if trigger is not None:
            self.act(k, trigger, self.fix_margin, trigger)
            return
        if self.pacer.building:  # the next slice of a split order (one an hour; nothing else meanwhile)
            if not self.pacer.waiting(k):
                nav = self.ctx.book.nav(k)
                left = abs(self.target_units(k, nav) - self.qty[self.spot_pos]) * self.price[k] * self.fx[k]
                self.act(k, self.pacer.trigger(left, nav), self.rebalance)
            return
        delta_value = abs(self.net_units(k)) * self.price[k]
        idle = abs(self.qty[self.ctx.wallet])
        log = self.log
        if k >= log.refresh_at:
            log.refresh(k)
        bound = log.floor  # cheap pre-filter; the exact test uses NAV at k
        if delta_value > bound or (idle > bound and not self.idle_backoff.waiting(k, idle)):
            nav = self.ctx.book.nav(k)
            limit = max(self.threshold, DUST) * nav
            if idle > limit and not self.idle_backoff.waiting(k, idle):  # a deposit or leftovers: deploying it
                # may cost at most 1% of it
                cash = idle * self.fx[k]
                trigger = Trigger("idle_cash", cash / nav, self.threshold, corrects=cash,
                                  max_cost=MAX_COST_SHARE * cash)
            elif delta_value > limit:
                trigger = Trigger("deviation", delta_value * self.fx[k] / nav, self.threshold,
                                  corrects=delta_value * self.fx[k])
            else:
                return
            self.act(k, trigger, self.rebalance)

    def raise_cash(self, k: int, amount: float) -> None:
        trigger = Trigger("withdrawal", amount, self.qty[self.ctx.wallet], forced=True)
        self.act(k, trigger, self.rebalance, amount)

    def act(self, k: int, trigger: Trigger, action, *args) -> None:
        """Run `action(k, *args)` through the gate and log it when it committed (no closure in on_tick:
        it would cost every hour)."""
        before = self.qty[self.spot_pos]
        self.pacer.active = not trigger.forced  # voluntary orders are paced, safety actions and flows never
        tx = self.gate.attempt(k, trigger, lambda: action(k, *args), lambda: self.hedge.margin_problem(k))
        self.pacer.active = False
        if tx is None and self.pacer.building:  # a slice that did not go through ends the split order; the
            self.pacer.building = False  # cash left waits (a day, or until it grows) before a new order
            self.idle_backoff.start(k, abs(self.qty[self.ctx.wallet]))
        self.pacer.end()
        if tx is not None:
            self.log.record(k, trigger, before, self.qty[self.spot_pos], self.net_units(k), self.price[k],
                            self.ctx.book.nav(k), tx.cost())

    # --- actions -------------------------------------------------------------------------------
    def fix_margin(self, k: int, trigger: Trigger) -> None:
        self.hedge.fix_margin(k, trigger, self.qty[self.ctx.wallet],
                              lambda reduce=False: self.rebalance(k, reduce=reduce))

    def target_units(self, k: int, equity: float) -> float:
        """Hedge size in base units for `equity`; a fixed size is capped so its margin meets initial margin."""
        equity = max(equity, 0.0)
        if self.fixed_units is not None:
            cap = equity / (self.price[k] * (1.0 + self.hedge.max_initial_margin + self.spot_cost))
            return min(self.fixed_units, cap)
        return equity / (1.0 + self.margin_buffer + self.spot_cost) / self.price[k]

    def rebalance(self, k: int, keep: float = 0.0, reduce: bool = False) -> None:
        """Trade spot and perps to the target for NAV - keep, then spread the margin. Equity under the
        capital floor is held as cash: a flat book is not entered, and a withdrawal leaving less exits."""
        qty = self.qty
        nav = self.ctx.book.nav(k)
        before = qty[self.spot_pos]
        equity = nav - keep
        units = self.target_units(k, equity)
        if (before == 0.0 or keep > 0.0) and equity < self.capital_floor(k, max(equity, 0.0)).amount:
            units = 0.0
        if reduce:
            units = min(units, before * (1.0 - self.cfg.risk.reduce_fraction))
        dust = DUST * max(nav, 1.0)
        price = self.price[k]
        trade = units - before
        whole = units
        if trade != 0.0:  # a voluntary order too large for its markets: this hour's slice, every leg in step
            trade *= self.pacer.hedged_slice(k, trade, price, self.ctx.executor.usdt_usd[k], self.fx[k], self.spot,
                                             self.hedge)
            units = before + trade
        if abs(trade) * price > dust and (units == 0.0 or abs(trade) * price >= self.spot.venue.min_spot_order_usdt):
            self.ctx.executor.spot_trade(k, self.spot, self.spot_pos, trade, price, self.fx[k])
        self.hedge.hedge(k, units, dust)
        later = max(whole - units, 0.0) * price * self.fx[k]  # the cash the order's next slices will spend
        self.hedge.distribute_margin(k, qty[self.ctx.wallet] - keep - later, "rebalance")

    # --- reporting -----------------------------------------------------------------------------
    def report(self, quantities: np.ndarray, nav: np.ndarray) -> Report:
        price = np.asarray(self.price)
        net = quantities[self.spot_pos] + quantities[self.hedge.size_pos].sum(axis=0)
        cols, summary = self.hedge.report(quantities)
        cols |= {f"net_delta:{self.asset}": net, f"net_delta_usdt:{self.asset}": net * price}
        summary["liquidations"] = liquidation_summary(self.hedge.liquidations())
        return Report(cols, self.log.summary(net * price * np.asarray(self.fx), nav) | summary)
