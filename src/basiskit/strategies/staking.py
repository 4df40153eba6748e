"""staking: the ETH share class staked in an LST, optionally supplied to Aave eMode and levered
with WETH debt to `target_ltv` (eth_staking_only, eth_leveraged).

Deleverages to the target when HF < leverage.hf_floor; releverages when LTV drifts below the
target by leverage.releverage_threshold; deposits are staked, withdrawals unwound.
"""

from __future__ import annotations

import numpy as np

from ..config.models import RunConfig
from ..data.market import MarketData, Need
from ..portfolio.book import PositionSpec
from ..portfolio.risk import liquidation_summary
from .base import Problem, Report, Strategy, require
from .capital import MAX_COST_SHARE, CapitalFloor
from .discipline import DUST, Backoff, Trigger
from .rebalance import RebalanceLog
from .registry import register
from .staking_leg import OnStakingLeg, StakingLeg, validate_leverage_config

GAS_MARGIN = 1.5  # a move's own gas, set aside beside the reserve, as a multiple of its planned gas


@register
class Staking(OnStakingLeg, Strategy):
    name = "staking"
    description = "Stake ETH in an LST; optionally lever it on Aave eMode against WETH debt"

    @classmethod
    def validate_config(cls, cfg: RunConfig, dataset) -> list[Problem]:
        return require(cfg, cls.name, "ETH", lst="weETH or wstETH") + validate_leverage_config(cfg, dataset)

    def __init__(self, cfg, env):
        super().__init__(cfg, env)
        self.leg = StakingLeg(cfg, env)
        self.threshold = cfg.position_deviation_threshold
        self.lev = cfg.leverage
        # gas any deployment of idle ETH pays: the flash-loan bundle, else at least one stake
        flash = self.leg.borrowing and cfg.leverage.entry == "flash_loan"
        self.sure_gas_units = self.gas.units.flash_loan_bundle if flash else self.gas.units.stake
        self.reserve_units = self.leg.full_delever_gas_units()  # the gas reserve: a full de-lever (venues/costs.py)

    def needs(self) -> list[Need]:
        return self.leg.needs()

    def bind(self, market: MarketData) -> list[PositionSpec]:
        specs = self.leg.bind(market)
        self.reserve = self.gas.reserve_eth(market, self.reserve_units)  # ETH kept for gas, per hour
        return specs

    def attach(self, ctx) -> None:
        super().attach(ctx)
        self.qty = ctx.book.qty
        self.leg.attach(ctx, ctx.wallet, self.gate)
        self.log = RebalanceLog(ctx.events, self.cfg.lst, ctx.book, self.threshold)
        self.idle_backoff = Backoff()
        self.wallet = ctx.wallet
        self.levered = self.leg.borrowing
        self.drift = self.leg.leverage_drift

    def hooks(self):
        return self.leg.hooks()

    def risk_now(self, k: int) -> dict:
        return self.leg.risk_now(k) | {"gas_reserve": {"eth": self.qty[self.wallet], "reserve": self.gas_reserve(k)}}

    def capital_floor(self, k: int, capital: float) -> CapitalFloor:
        leg = self.leg
        return CapitalFloor({"gas": self.gas.cost(leg.round_trip_gas_units(), k)},
                            self.gas.cost(leg.entry_gas_units(), k), leg.entry_shares(k, capital))

    def on_tick(self, k: int) -> None:
        trigger = self.drift(k) if self.levered else None
        if trigger is None:
            idle = self.qty[self.wallet]
            log = self.log
            if k >= log.refresh_at:
                log.refresh(k)
            deployable = idle - self.reserve[k]  # the gas reserve is never deployed
            if deployable <= log.floor:  # cheap pre-filter: NAV as of the last rebalance or day
                return
            leg = self.leg
            if k == leg.delevered_at or self.idle_backoff.waiting(k, deployable):
                return
            nav = self.ctx.book.nav(k)
            limit = max(self.threshold, DUST) * nav
            spare = idle - self.keep(k, leg.equity_eth(k) + idle)
            if idle <= limit or spare <= limit:
                return
            trigger = Trigger("idle_cash", spare / nav, self.threshold, corrects=spare,
                              max_cost=MAX_COST_SHARE * spare, min_cost=self.gas.cost(self.sure_gas_units, k))
        self.rebalance(k, trigger)

    def raise_cash(self, k: int, amount: float) -> None:
        self.rebalance(k, Trigger("withdrawal", amount, self.qty[self.ctx.wallet], forced=True), keep=amount)

    def gas_reserve(self, k: int) -> float:
        """ETH the wallet keeps for gas, never deployed: a full de-lever at the 30-day 99th percentile gas price, at
        least live.gas_reserve_eth (GasModel.reserve_eth)."""
        return self.reserve[k]

    def keep(self, k: int, equity: float) -> float:
        """ETH to keep in the wallet when moving the leg to `equity`: the gas reserve, the move's own gas (x
        GAS_MARGIN) and with a flash loan its premium on the debt it changes (Aave v3 flashLoanSimple)."""
        leg = self.leg
        keep = self.reserve[k] + self.gas.cost(leg.planned_gas_units(k, equity), k) * GAS_MARGIN
        if leg.borrowing and self.lev.entry == "flash_loan":
            keep += leg.flash_premium * abs(leg.target_ltv / (1 - leg.target_ltv) * equity - leg.debt_eth(k))
        return keep

    def rebalance(self, k: int, trigger: Trigger, keep: float = 0.0) -> None:
        """Deposits and withdrawals move the staked equity; other triggers keep it and fix the LTV.
        Equity too small to be worth a position (under the capital floor) is held as ETH."""
        leg = self.leg
        before = leg.equity_eth(k)

        def act() -> None:
            wallet = self.qty[self.ctx.wallet] - keep
            if trigger.reason in ("idle_cash", "withdrawal"):
                available = before + wallet
                target = available - self.keep(k, available)
                small = available < self.capital_floor(k, available).amount
                if small and (before == 0.0 or trigger.reason == "withdrawal"):
                    target = 0.0
            else:  # the wallet pays the gas; only a shortfall (of the reserve too) comes out of the stake
                target = before - max(self.keep(k, before) - wallet, 0.0)
            leg.adjust(k, max(target, 0.0))

        tx = self.gate.attempt(k, trigger, act)
        if tx is not None:
            self.log.record(k, trigger, before, leg.equity_eth(k), 0.0, 1.0, self.ctx.book.nav(k), tx.cost())
        elif trigger.reason == "idle_cash":
            self.idle_backoff.start(k, self.qty[self.ctx.wallet] - self.reserve[k])

    def report(self, quantities: np.ndarray, nav: np.ndarray) -> Report:
        cols, summary = self.leg.report(quantities)
        summary["liquidations"] = liquidation_summary(self.leg.liquidations)
        summary |= {key: v for key, v in self.log.summary(np.zeros_like(nav), nav).items()
                    if key != "max_abs_net_delta_pct"}
        return Report(cols, summary)
