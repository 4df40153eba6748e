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
from .rebalance import RebalanceLog
from .registry import register
from .staking_leg import StakingLeg

GAS_RESERVE = 1.5  # gas set aside before staking the wallet, as a multiple of the planned gas


@register
class Staking(Strategy):
    name = "staking"
    description = "Stake ETH in an LST; optionally lever it on Aave eMode against WETH debt"

    @classmethod
    def validate_config(cls, cfg: RunConfig) -> list[Problem]:
        return require(cfg, cls.name, "ETH", lst="weETH or wstETH")

    def __init__(self, cfg, env):
        super().__init__(cfg, env)
        self.leg = StakingLeg(cfg, env)
        self.threshold = cfg.position_deviation_threshold
        self.lev = cfg.leverage

    def needs(self) -> list[Need]:
        return self.leg.needs()

    def bind(self, market: MarketData) -> list[PositionSpec]:
        return self.leg.bind(market)

    def attach(self, ctx) -> None:
        super().attach(ctx)
        self.qty = ctx.book.qty
        self.leg.attach(ctx, eth_pos=ctx.wallet)
        self.log = RebalanceLog(ctx.events, self.cfg.lst)

    def hooks(self):
        return self.leg.hooks()

    def on_tick(self, k: int) -> None:
        leg = self.leg
        reason = leg.leverage_drift(k)
        if reason:
            self.rebalance(k, reason)
            return
        idle = self.qty[self.ctx.wallet]
        if idle > self.threshold * self.log.nav_hint:
            limit = self.threshold * self.ctx.book.nav(k)
            if idle > limit and idle - self.gas_reserve(k, leg.equity_eth(k) + idle) > limit:
                self.rebalance(k, "idle_cash")

    def raise_cash(self, k: int, amount: float) -> None:
        self.rebalance(k, "withdrawal", keep=amount)

    def gas_reserve(self, k: int, equity: float) -> float:
        """ETH to keep in the wallet for the gas (and flash-loan premium) of moving to `equity`."""
        leg = self.leg
        reserve = self.gas.cost(leg.planned_gas_units(k, equity), k) * GAS_RESERVE
        if leg.borrowing and self.lev.entry == "flash_loan":
            reserve += leg.flash_premium * leg.target_ltv / (1 - leg.target_ltv) * equity
        return reserve

    def rebalance(self, k: int, reason: str, keep: float = 0.0) -> None:
        """Deposits and withdrawals move the staked equity; other reasons keep it and fix the LTV."""
        leg = self.leg
        before = leg.equity_eth(k)
        wallet = self.qty[self.ctx.wallet] - keep
        if reason in ("idle_cash", "withdrawal"):
            available = before + wallet
            target = available - self.gas_reserve(k, available)
        else:  # the wallet pays the gas; only a shortfall comes out of the stake
            target = before - max(self.gas_reserve(k, before) - wallet, 0.0)
        leg.adjust(k, max(target, 0.0))
        self.log.record(k, reason, before, leg.equity_eth(k), 0.0, 1.0, self.ctx.book.nav(k))

    def report(self, quantities: np.ndarray, nav: np.ndarray) -> Report:
        cols, summary = self.leg.report(quantities)
        summary["liquidations"] = liquidation_summary(self.leg.liquidations)
        summary |= {key: v for key, v in self.log.summary(np.zeros_like(nav), nav).items()
                    if key != "max_abs_net_delta_pct"}
        return Report(cols, summary)
