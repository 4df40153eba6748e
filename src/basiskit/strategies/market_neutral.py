"""market_neutral: USDT share class; stake_allocation of equity buys ETH and stakes it (levered to
target_ltv on Aave eMode when set), the rest is perp margin; ETH perps short across venues by
hedge_allocation keep the net ETH delta (LST at the oracle rate - WETH debt + wallet ETH - shorts)
near zero (usdt_market_neutral_no_leverage, usdt_market_neutral).

Risk: HF below leverage.hf_floor deleverages, margin ratio at its limit moves margin then reduces;
the risk override can only reduce exposure.
"""

from __future__ import annotations

from functools import partial

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
from .capital import MAX_COST_SHARE, CapitalFloor
from .discipline import DUST, RETRY_HOURS, Backoff, Trigger
from .hedge import PerpHedge, validate_hedge_config
from .pacing import Pacer
from .rebalance import RebalanceLog
from .registry import register
from .staking_leg import OnStakingLeg, StakingLeg, validate_leverage_config

REFILL_COST = 0.02  # the wallet's ETH under the gas reserve is bought back when that costs at most this share of it


@register
class MarketNeutral(OnStakingLeg, Strategy):
    name = "market_neutral"
    description = "Staked (optionally levered) ETH hedged with short ETH perps; USDT share class"

    @classmethod
    def validate_config(cls, cfg: RunConfig, dataset) -> list[Problem]:
        problems = require(cfg, cls.name, "USDT", lst="weETH or wstETH", stake_allocation="e.g. 0.75")
        # the hedge is the staked ETH (allocation a of equity); the rest, 1 - a, is its margin
        margin = (1 - cfg.stake_allocation) / cfg.stake_allocation if cfg.stake_allocation else None
        limit = cfg.market_neutral.margin_ratio_limit
        return (problems + validate_hedge_config(cfg, dataset, cls.name, "ETH", "stake_allocation", margin,
                                                 "market_neutral.margin_ratio_limit", limit)
                + validate_leverage_config(cfg, dataset))

    def __init__(self, cfg, env):
        super().__init__(cfg, env)
        venue = cfg.market_neutral.spot_venue
        self.spot = SpotMarket(load_venue(env.dataset, cfg, venue, "ETHUSDT"), "ETH",
                               window=cfg.costs.impact.window_hours)
        self.pricer.use("ETH", spot_series(venue, "ETH"))
        env.slippage.check(self.spot.pair)
        self.leg = StakingLeg(cfg, env)
        self.hedge = PerpHedge(cfg, env, "ETH", cfg.market_neutral.margin_ratio_limit)
        self.eth_wallet = Instrument("wallet", "BaseToken", "ETH", "ETH")
        self.allocation = cfg.stake_allocation
        self.threshold = cfg.position_deviation_threshold
        self.entry_gas_units = self.leg.entry_gas_units()
        self.reserve_units = self.leg.full_delever_gas_units()  # the gas reserve: a full de-lever (venues/costs.py)

    def needs(self) -> list[Need]:
        return self.leg.needs() + self.hedge.needs() + self.spot.needs()

    def bind(self, market: MarketData) -> list[PositionSpec]:
        self.spot.bind(market)
        ones = market.ones
        self.price = market.derived(partial(self.pricer.price_usdt, "ETH"))
        self.fx = market.derived(partial(self.pricer.price, "USDT"))
        eth_value = self.eth_value = market.derived(partial(self.pricer.price, "ETH"))
        eth = PositionSpec(self.eth_wallet, ones, ones, eth_value, VOID, VOID, SPOT_PRICE)
        self.reserve = self.gas.reserve_eth(market, self.reserve_units)  # ETH kept for gas, per hour
        return [eth, *self.leg.bind(market), *self.hedge.bind(market, self.fx, VOID)]

    def attach(self, ctx) -> None:
        super().attach(ctx)
        self.qty = ctx.book.qty
        self.eth_pos = ctx.book.slot_of(self.eth_wallet.key)
        ctx.executor.pay_gas_from(self.eth_pos, self.eth_value)  # gas is ETH: the reserve is held as ETH
        self.leg.attach(ctx, self.eth_pos, self.gate)
        self.hedge.attach(ctx, self.net_eth, self.price)
        self.log = RebalanceLog(ctx.events, "ETH", ctx.book, self.threshold)
        self.pacer = Pacer(self.cfg.execution.max_participation, [self.spot, *self.hedge.perps])
        self.idle_backoff = Backoff()
        self.refill_at = 0  # the first tick a gas reserve refill may be tried again

    def hooks(self):
        return self.leg.hooks() + self.hedge.hooks()

    def risk_now(self, k: int) -> dict:
        leg, hedge = self.leg.risk_now(k), self.hedge.risk_now(k)
        return leg | hedge | {"liq_distance": leg.get("liq_distance", {}) | hedge["liq_distance"],
                              "gas_reserve": {"eth": self.qty[self.eth_pos], "reserve": self.gas_reserve(k)}}

    def eth_long(self, k: int) -> float:
        """ETH held: the leg's equity, the wallet's ETH and ETH queued at the protocol (still the fund's)."""
        return self.leg.equity_eth(k) + self.qty[self.eth_pos] + self.leg.claims_eth()

    def net_eth(self, k: int) -> float:
        return self.eth_long(k) - self.hedge.short_units()

    def capital_floor(self, k: int, capital: float) -> CapitalFloor:
        """Gas of entering and leaving the staking leg, transfers in and out of every venue; the leg's
        premium and swap slippage, spot and perp fees and slippage on a x C (the hedge), 1 - a the
        margin; the venues' minimum sizes (hedge.capital_needs)."""
        a, fx, usd, leg = self.allocation, self.fx[k], self.leg.unit_usd_at[k], self.leg
        notional = a * capital / fx  # USDT of ETH bought and hedged
        spot = self.spot.venue
        shares = {name: (a * share, value)
                  for name, (share, value) in leg.entry_shares(k, notional / self.price[k]).items()}
        shares[f"venues.{spot.name}.spot_taker_fee"] = (
            a * (spot.spot_taker_fee + self.env.slippage.rate(self.spot.pair, notional * usd)), spot.spot_taker_fee)
        need = [(spot.min_spot_order_usdt / a, f"a {spot.name} spot order")]
        for perp, w in zip(self.hedge.perps, self.hedge.weights, strict=True):
            v = perp.venue
            rate = v.perp_taker_fee + self.env.slippage.rate(perp.pair, notional * w * usd)
            shares[f"venues.{v.name}.perp_taker_fee"] = (a * w * rate, v.perp_taker_fee)
        need += self.hedge.capital_needs(a, 1.0 - a, self.threshold)
        amount, what = max(need)
        fees = self.hedge.transfer_fees * fx
        return CapitalFloor({"gas": self.gas.cost(leg.round_trip_gas_units(), k), "transfer fees": 2 * fees},
                            self.gas.cost(leg.entry_gas_units(), k) + fees, shares, amount * fx,
                            f"{what} would be under the venue's minimum size")

    def gas_reserve(self, k: int) -> float:
        """ETH kept in the wallet's ETH for gas, never deployed (hedged as any ETH held): a full de-lever at the 30-day
        99th percentile gas price, at least live.gas_reserve_eth (GasModel.reserve_eth)."""
        return self.reserve[k]

    def spare_cash(self, k: int, keep: float = 0.0) -> float:
        return self.qty[self.ctx.wallet] - keep

    # --- decisions -----------------------------------------------------------------------------
    def on_tick(self, k: int) -> None:
        trigger = self.hedge.margin_trigger(k)
        if trigger is not None:
            self.act(k, trigger, self.fix_margin, trigger)
            return
        trigger = self.leg.leverage_drift(k)
        if trigger is not None:
            self.act(k, trigger, self.relever)
            return
        if self.pacer.building:  # the next slice of a split order (one an hour; nothing else meanwhile)
            if self.pacer.waiting(k):
                return
            nav = self.ctx.book.nav(k)
            left = abs(self.allocation * nav / self.fx[k] - self.eth_long(k) * self.price[k]) * self.fx[k]
            self.act(k, self.pacer.trigger(left, nav), self.rebalance)
            return
        held = self.qty[self.eth_pos]
        reserve = self.reserve[k]  # 0 without gas costs: nothing to keep (a wallet at -1e-18 is float noise)
        if reserve > 0.0 and held < reserve and k >= self.refill_at and self.eth_long(k) > held:
            value = (reserve - held) * self.price[k] * self.fx[k]  # the reserve is refilled: gas is paid from it
            trigger = Trigger("gas_reserve", held / reserve, 1.0, corrects=value, max_cost=REFILL_COST * value)
            if self.act(k, trigger, self.refill_gas, reserve - held) is not None:
                return
            self.refill_at = k + RETRY_HOURS  # not worth it now: tried again in a day
        if self.leg.claim_paid:  # a queued withdrawal paid its ETH: the rebalance puts it where the allocation says
            self.leg.claim_paid = False
            eth = self.qty[self.eth_pos] * self.price[k] * self.fx[k]
            trigger = Trigger("claim_paid", eth / self.ctx.book.nav(k), self.threshold, corrects=eth,
                              max_cost=MAX_COST_SHARE * eth)
            if self.act(k, trigger, self.rebalance) is not None:
                return
        delta_value = abs(self.net_eth(k)) * self.price[k]
        wallet = self.qty[self.ctx.wallet]
        log = self.log
        if k >= log.refresh_at:
            log.refresh(k)
        bound = log.floor  # cheap pre-filter; the exact test uses NAV at k
        idle_due = wallet > bound and not self.idle_backoff.waiting(k, wallet)
        if (delta_value > bound or idle_due) and k != self.leg.delevered_at:
            nav = self.ctx.book.nav(k)
            limit = max(self.threshold, DUST) * nav
            idle = self.spare_cash(k)
            if idle > limit and idle_due:
                # the rebalance deploys the cash and brings the staked ETH back to its allocation: it may
                # cost at most 1% of what it moves, as entering does; the leg's gas it is sure to pay
                buy = self.allocation * nav / self.fx[k] - self.eth_long(k) * self.price[k]  # USDT of ETH
                moved = max(idle, abs(buy) * self.fx[k])
                sure = self.gas.cost(self.entry_gas_units, k) if buy > self.spot.venue.min_spot_order_usdt else 0.0
                trigger = Trigger("idle_cash", idle / nav, self.threshold, corrects=moved,
                                  max_cost=MAX_COST_SHARE * moved, min_cost=sure)
                if self.act(k, trigger, self.rebalance) is None:
                    self.idle_backoff.start(k, wallet)
            elif delta_value > limit:
                # a hedge the venues can no longer carry (its margin was lost, e.g. to a liquidation) is
                # restored by resizing the book: staked ETH is sold to fund the margin, now (no queue)
                fits = self.hedge.can_carry(k, self.eth_long(k), self.spare_cash(k))
                trigger = Trigger("deviation", delta_value * self.fx[k] / nav, self.threshold,
                                  corrects=delta_value * self.fx[k], urgent=not fits)
                self.act(k, trigger, self.rehedge if fits else self.rebalance)

    def raise_cash(self, k: int, amount: float) -> None:
        trigger = Trigger("withdrawal", amount, self.qty[self.ctx.wallet], forced=True)
        self.act(k, trigger, self.rebalance, amount)

    def act(self, k: int, trigger: Trigger, action, *args):
        """Run `action(k, *args)` through the gate and log it when it committed (no closure in on_tick:
        it would cost every hour); the committed transaction or None."""
        before = self.hedge.short_units()
        self.pacer.active = not trigger.forced  # voluntary orders are paced, safety actions and flows never
        tx = self.gate.attempt(k, trigger, lambda: action(k, *args), lambda: self.hedge.margin_problem(k))
        self.pacer.active = False
        if tx is None and self.pacer.building:  # a slice that did not go through ends the split order; the
            self.pacer.building = False  # cash left waits (a day, or until it grows) before a new order
            self.idle_backoff.start(k, self.qty[self.ctx.wallet])
        self.pacer.end()
        if tx is not None:
            self.log.record(k, trigger, before, self.hedge.short_units(), self.net_eth(k), self.price[k],
                            self.ctx.book.nav(k), tx.cost())
        return tx

    # --- actions -------------------------------------------------------------------------------
    def fix_margin(self, k: int, trigger: Trigger) -> None:
        self.hedge.fix_margin(k, trigger, self.spare_cash(k), lambda reduce=False: self.rebalance(k, reduce=reduce))

    def relever(self, k: int) -> None:
        """Bring the staking leg back to the target LTV at the same ETH exposure, then re-hedge; gas
        and the flash-loan premium come from the wallet, topped up from the venues' free margin."""
        leg = self.leg
        moved = abs(leg.target_ltv / (1 - leg.target_ltv) * leg.equity_eth(k) - leg.debt_eth(k))
        need = leg.flash_premium * moved * self.price[k] * self.fx[k] * 1.5  # the premium, paid in USDT
        self.hedge.top_up_wallet(k, need)
        leg.adjust(k, leg.equity_eth(k))
        self.rehedge(k)

    def refill_gas(self, k: int, eth: float) -> None:
        """Buy back the ETH gas took from the reserve (at least the venue's minimum order); the hedge follows when the
        net delta reaches its threshold (the reserve is a sliver of the book)."""
        price = self.price[k]
        eth = max(eth, self.spot.venue.min_spot_order_usdt / price)
        self.ctx.executor.spot_trade(k, self.spot, self.eth_pos, eth, price, self.fx[k])

    def rehedge(self, k: int) -> None:
        self.hedge.hedge(k, self.eth_long(k), DUST * max(self.log.nav_hint, 1.0))
        self.hedge.fund_margin(k, self.spare_cash(k), "rehedge")

    def rebalance(self, k: int, keep: float = 0.0, reduce: bool = False) -> None:
        """Stake allocation x (NAV - keep) worth of ETH, hedge it, spread the rest as perp margin, keep
        the gas reserve in the wallet. Equity under the capital floor is held as cash: a flat book is
        not entered, and a withdrawal leaving less exits."""
        qty, ex = self.qty, self.ctx.executor
        price, fx = self.price[k], self.fx[k]
        nav = self.ctx.book.nav(k)
        current = self.eth_long(k)
        equity = nav - keep
        target = self.allocation * max(equity, 0.0) / price
        if (current == 0.0 or keep > 0.0) and equity < self.capital_floor(k, max(equity, 0.0)).amount:
            target = 0.0
        if reduce:
            target = min(target, current * (1.0 - self.cfg.risk.reduce_fraction))
        dust = DUST * max(nav, 1.0)
        min_spot = self.spot.venue.min_spot_order_usdt
        buy = target - current
        whole = target
        if buy != 0.0:  # a voluntary order too large for its markets: this hour's slice, every leg in step
            buy *= self.pacer.hedged_slice(k, buy, price, ex.usdt_usd[k], fx, self.spot, self.hedge)
            target = current + buy
        if buy * price > max(dust, min_spot):
            ex.spot_trade(k, self.spot, self.eth_pos, buy, price, fx)
        # the gas reserve is ETH held in the wallet, part of the target; ETH queued at the protocol too; the leg
        # holds the rest (a whole exit sells the reserve as well)
        # (and the gas of this move, so that the reserve is whole after it)
        reserve = self.gas_reserve(k) + self.gas.cost(self.entry_gas_units, k) / self.eth_value[k] if target > 0.0 \
            else 0.0
        leg = self.leg
        leg.adjust(k, min(target - leg.claims_eth() - reserve,
                          leg.equity_eth(k) + max(qty[self.eth_pos] - reserve, 0.0)))
        leftover = qty[self.eth_pos] - reserve
        if abs(leftover) * price > dust and (target == 0.0 or abs(leftover) * price >= min_spot):
            ex.spot_trade(k, self.spot, self.eth_pos, -leftover, price, fx)
        self.hedge.hedge(k, self.eth_long(k), dust)
        later = max(whole - target, 0.0) * price * fx  # the cash the order's next slices will spend on ETH
        self.hedge.distribute_margin(k, self.spare_cash(k, keep + later), "rebalance")

    # --- reporting -----------------------------------------------------------------------------
    def report(self, quantities: np.ndarray, nav: np.ndarray) -> Report:
        cols, summary = self.leg.report(quantities)
        hedge_cols, hedge_summary = self.hedge.report(quantities)
        price = np.asarray(self.price)
        net = cols["collateral_eth"] - cols["debt_eth"] + quantities[self.eth_pos] \
            + quantities[self.hedge.size_pos].sum(axis=0) + cols.get("claim_eth", 0.0)
        cols |= hedge_cols | {"net_delta:ETH": net, "net_delta_usdt:ETH": net * price}
        summary |= hedge_summary | self.log.summary(net * price * np.asarray(self.fx), nav)
        summary["liquidations"] = liquidation_summary(self.leg.liquidations + self.hedge.liquidations())
        return Report(cols, summary)
