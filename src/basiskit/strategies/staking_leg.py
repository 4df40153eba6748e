"""StakingLeg: ETH staked into an LST, held in the wallet or supplied to Aave (eMode) against WETH
debt at a target LTV, reached by a recursive loop or one flash-loan bundle; Aave liquidations and
EtherFi rewards. Used by the ETH staking strategy and the market-neutral strategy."""

from __future__ import annotations

import math
from functools import partial

import numpy as np

from ..config.models import RunConfig
from ..data.dataset import Dataset
from ..data.market import MarketData, Need
from ..portfolio.attribution import LIQUIDATION_LOSS, SLOT, SPOT_PRICE, SUPPLY_YIELD, VOID
from ..portfolio.book import PositionSpec
from ..venues.aave import AaveReserve, emode_params, health_factor, liquidation
from ..venues.rewards import RewardsCredit, RewardToken
from ..venues.staking import LSTS, LiquidStaking
from .base import Hooks, Problem
from .discipline import ActionGate, Trigger

STAKING_YIELD = SLOT["staking_yield"]
BORROW_COST = SLOT["borrow_cost"]
STAKING_REWARDS = SLOT["staking_rewards"]
EPS = 1e-12
HF_MARGIN = 0.01  # the health factor at the target LTV must clear leverage.hf_floor by this much
# A loop de-lever step withdraws what leaves the health factor at this, then swaps and repays: Aave v3 refuses a
# withdrawal that leaves HF under 1 (ValidationLogic.validateHealthFactor, error 35 HEALTH_FACTOR_LOWER_THAN_
# LIQUIDATION_THRESHOLD); the margin covers the interest of the seconds between the plan and the transaction.
STEP_HF = 1.001
SAFETY_MAX_STEPS = 500  # a safety de-lever is not held to leverage.loop_max_steps (it stops when nothing can go)
RESERVE_FROM_HF = 1.005  # the gas reserve pays a full loop de-lever from this close to liquidation


def validate_leverage_config(cfg: RunConfig, dataset: Dataset) -> list[Problem]:
    """Leverage settings that contradict each other or the dataset's eMode parameters."""
    if not cfg.target_ltv or cfg.lst is None:
        return []
    emode = emode_params(dataset, cfg.lst, "WETH", emode=True)
    lev, ltv, lt = cfg.leverage, cfg.target_ltv, emode.liquidation_threshold
    problems: list[Problem] = []
    if ltv > emode.ltv:
        problems.append(("target_ltv", ltv, f"above the eMode max LTV {emode.ltv:g} of {cfg.lst}/WETH "
                         "(params/aave_v3_risk.json); valid: 0 < target_ltv <= " f"{emode.ltv:g}"))
    # HF at the target = eMode liquidation threshold / LTV (Aave v3 GenericLogic: HF = sum(c x LT) / debt)
    hf = lt / ltv
    if hf < lev.hf_floor + HF_MARGIN:
        largest = math.floor(lt / (lev.hf_floor + HF_MARGIN) * 1e4) / 1e4
        highest_floor = math.floor((hf - HF_MARGIN) * 1e4) / 1e4
        problems.append(("target_ltv", ltv,
                         f"its health factor {lt:g} / {ltv:g} = {hf:.4f} does not clear leverage.hf_floor "
                         f"{lev.hf_floor:g} by {HF_MARGIN:g}: the HF rule would de-lever to the same target every "
                         f"hour. The largest valid target_ltv for hf_floor {lev.hf_floor:g} is {largest:.4f}; "
                         + (f"or set leverage.hf_floor <= {highest_floor:.4f}" if highest_floor > 1 else
                            "no hf_floor above 1 allows this target")))
    if lev.ltv_tolerance >= lev.releverage_threshold:
        problems.append(("leverage.ltv_tolerance", lev.ltv_tolerance,
                         f"must be below leverage.releverage_threshold {lev.releverage_threshold:g}: an entry that "
                         "stops within the tolerance would otherwise re-lever again at once"))
    if lev.entry == "loop" and ltv <= emode.ltv:
        reached, needed = _loop_path(ltv, emode.ltv, lev.loop_max_steps, lev.ltv_tolerance)
        if needed is None or needed > lev.loop_max_steps:
            problems.append(("leverage.loop_max_steps", lev.loop_max_steps,
                             f"a loop of {lev.loop_max_steps} steps reaches LTV {reached:.4f}, short of target_ltv "
                             f"{ltv:g} by more than leverage.ltv_tolerance {lev.ltv_tolerance:g}; "
                             + (f"it needs {needed} steps" if needed else "no loop reaches it")
                             + " (or use leverage.entry=flash_loan)"))
    return problems


def _loop_path(target_ltv: float, max_ltv: float, max_steps: int, tolerance: float) -> tuple[float, int | None]:
    """LTV a borrow/stake/supply loop reaches from 1 ETH of equity in `max_steps` cycles, and the cycles
    it needs to come within `tolerance` of the target (None when no number of cycles does)."""
    d_target = target_ltv / (1.0 - target_ltv)
    d, x = 0.0, 1.0
    reached, needed = None, None
    for n in range(1, 10_001):
        b = min(d_target - d, max_ltv * x - d)
        if b <= 0:
            break
        d, x = d + b, x + b
        if needed is None and d / x >= target_ltv - tolerance:
            needed = n
        if n == max_steps:
            reached = d / x
        if needed is not None and n >= max_steps:
            break
    return (d / x if reached is None else reached), needed


SALE_LOOKAHEAD_HOURS = 720  # how far a waiting sale looks for the next hour it may act


class OnStakingLeg:
    """What a strategy built on a StakingLeg (`self.leg`) answers from it: its Aave reserves, its reward sales
    at the exit, its redemption queue."""

    leg: StakingLeg

    def aave_reserves(self) -> list:
        return [r for r in (self.leg.collateral, self.leg.weth) if r is not None]

    def sell_all_rewards(self, k: int) -> None:
        self.leg.sell_all_rewards(k)

    def redeem_queue_hours(self) -> float | None:
        return self.leg.redeem_queue_hours()


class StakingLeg:
    def __init__(self, cfg: RunConfig, env):
        self.cfg = cfg
        self.env = env
        self.pricer = env.pricer
        self.gas = env.gas
        self.target_ltv = cfg.target_ltv or 0.0
        self.lev = cfg.leverage
        self.flash_premium = cfg.leverage.flash_loan_premium if cfg.costs.enabled else 0.0
        self.via_swap_in = cfg.staking.entry == "swap"
        self.via_swap_out = cfg.staking.exit == "swap"
        dex_series = LSTS[cfg.lst][2]
        self.lst = LiquidStaking(cfg.lst, needs_market_rate=self.via_swap_in or self.via_swap_out,
                                 depeg_view=dex_series in env.dataset.meta)
        env.slippage.check(self.lst.pair)  # withdrawals and safety actions swap whatever the configured exit
        # voluntary exits queue at the protocol: the fund holds a claim on ETH until the queue pays it
        self.queue_hours = getattr(cfg.staking.redeem_queue_hours, cfg.lst) if cfg.staking.exit == "redeem" else None
        self.use_aave = self.target_ltv > 0 or cfg.staking.use_aave
        self.collateral = AaveReserve(cfg.lst) if self.use_aave else None
        self.borrowing = self.target_ltv > 0
        self.weth = AaveReserve("WETH", borrowed=True) if self.borrowing else None
        self.emode = emode_params(env.dataset, cfg.lst, "WETH", emode=True)
        self.pricer.use("ETH")
        self.rewards = []
        if cfg.rewards.enabled and cfg.lst == "weETH":
            window = cfg.costs.impact.window_hours
            self.rewards = [RewardToken("EIGEN", window=window), RewardToken("ETHFI", window=window)]
            for t in self.rewards:
                self.pricer.use(t.symbol, t.price_series, quote="ETH", partial=True)
                if cfg.rewards.sell_dust:
                    env.slippage.check(f"{t.symbol}_{self.pricer.ccy}")
        self.liquidations: list[dict] = []
        self.delevered_at = -1  # the tick of the last de-lever: never re-lever in the same hour

    # --- set-up --------------------------------------------------------------------------------
    def needs(self) -> list[Need]:
        needs = self.lst.needs() + [n for t in self.rewards for n in t.needs()]
        for reserve in (self.collateral, self.weth):
            if reserve is not None:
                needs += reserve.needs()
        return needs

    def bind(self, market: MarketData) -> list[PositionSpec]:
        self.lst.bind(market)
        for reserve in (self.collateral, self.weth):
            if reserve is not None:
                reserve.bind(market)
        for t in self.rewards:
            t.bind(market)
        ones = market.ones
        self.grid = market.grid
        self.eth_value = market.derived(partial(self.pricer.price, "ETH"))  # one ETH in share-class units
        self.unit_usd_at = market.derived(self.pricer.unit_usd)
        price_slot = VOID if self.pricer.is_unit("ETH") else SPOT_PRICE
        specs = [PositionSpec(self.lst.instrument, ones, self.lst.rate, self.eth_value, index_slot=VOID,
                              rate_slot=STAKING_YIELD, price_slot=price_slot)]
        if self.queue_hours is not None:  # the claim's ETH is fixed at the request: it earns nothing queued
            specs.append(PositionSpec(self.lst.claim, ones, ones, self.eth_value, VOID, VOID, price_slot))
            step = float(self.grid[1] - self.grid[0]) if len(self.grid) > 1 else 3600.0
            self.queue_ticks = max(math.ceil(self.queue_hours * 3600.0 / step), 0)
        if self.collateral:
            specs.append(PositionSpec(self.collateral.atoken, self.collateral.liquidity_index, self.lst.rate,
                                      self.eth_value, SUPPLY_YIELD, STAKING_YIELD, price_slot))
        if self.weth:
            specs.append(PositionSpec(self.weth.debt_token, self.weth.borrow_index, ones, self.eth_value,
                                      BORROW_COST, VOID, price_slot, sign=-1.0))
        self.reward_prices = [market.derived(partial(self.pricer.price, t.symbol)) for t in self.rewards]
        self._market = market  # (its arrays of the lists above: a waiting reward sale looks ahead in them)
        for t, price in zip(self.rewards, self.reward_prices, strict=True):
            specs.append(PositionSpec(t.instrument, ones, ones, price, VOID, VOID, SPOT_PRICE))
        return specs

    def attach(self, ctx, eth_pos: int, gate: ActionGate) -> None:
        self.ctx = ctx
        self.gate = gate
        book = ctx.book
        self.qty = book.qty
        self.eth_pos = eth_pos
        self.lst_pos = book.slot_of(self.lst.instrument.key)
        self.a_pos = book.slot_of(self.collateral.atoken.key) if self.collateral else None
        self.debt_pos = book.slot_of(self.weth.debt_token.key) if self.weth else None
        self.reward_pos = [book.slot_of(t.instrument.key) for t in self.rewards]
        self.claim_pos = book.slot_of(self.lst.claim.key) if self.queue_hours is not None else None
        self.claim_paid = False  # set when a queued withdrawal paid its ETH into the wallet
        self.liquidations = []
        self.delevered_at = -1
        self.lowest_hf = math.inf  # the lowest HF the hourly check saw (before the strategy's answer)
        self._hooks = Hooks(monitors=[self.check_liquidation] if self.borrowing else [])
        if self.claim_pos is not None:
            self._hooks.accruals.append(self._claim_matured)
        if self.rewards:
            self._credit = RewardsCredit(self.rewards, book, self.reward_pos, self.reward_prices, self.units_held,
                                         self.lst.rate, STAKING_REWARDS, self._sell_dust, self.grid)
            self._hooks.accruals.append(self._credit)
            self._selling = [False] * len(self.rewards)
            self._sale_volume = [0.0] * len(self.rewards)  # USD the pool traded since each sale began
            self._sale_sold = [0.0] * len(self.rewards)  # USD each sale has sold
            self._waited_from = [0] * len(self.rewards)  # the first hour whose volume is not in the sale yet
            self._acted = [False] * len(self.rewards)
            self._ahead = None
            self._scanned = False
            # the share of a pool's volume a sale may take
            self._share = self.cfg.rewards.max_participation or self.cfg.execution.max_participation
            for t in self.rewards:
                t.liquidity.parent_usd = 0.0
            if self.cfg.rewards.sell_dust:  # the first hour looks at what the book starts with (a live plan's)
                self._credit.each_hour = self._sell_rewards

    def hooks(self) -> Hooks:
        return self._hooks

    # --- state ---------------------------------------------------------------------------------
    def lst_units(self, k: int) -> float:
        units = self.qty[self.lst_pos]
        if self.a_pos is not None:
            units += self.collateral.balance(self.qty[self.a_pos], k)
        return units

    def units_held(self, history: list[list[float]], t: int) -> float:
        """LST units held after tick t, from the recorded quantities."""
        units = history[self.lst_pos][t]
        if self.a_pos is not None:
            units += self.collateral.balance(history[self.a_pos][t], t)
        return units

    def collateral_eth(self, k: int) -> float:
        return self.lst_units(k) * self.lst.rate[k]

    def claims_eth(self) -> float:
        """ETH owed by the protocol's withdrawal queue (requested, not yet paid)."""
        return self.qty[self.claim_pos] if self.claim_pos is not None else 0.0

    def _claim_matured(self, k: int) -> None:
        """Claim the ETH of queued withdrawals that are payable by k."""
        ex = self.ctx.executor
        if ex.claims and ex.claim_matured(k, self.lst, self.claim_pos, self.eth_pos) > 0.0:
            self.claim_paid = True

    def debt_eth(self, k: int) -> float:
        return self.weth.debt(self.qty[self.debt_pos], k) if self.debt_pos is not None else 0.0

    def equity_eth(self, k: int) -> float:
        """ETH exposure of the leg: LST at the oracle rate less WETH debt (wallet ETH not included)."""
        return self.collateral_eth(k) - self.debt_eth(k)

    def health_factor(self, k: int) -> float:
        """HF with the eMode liquidation threshold; the oracle values the LST at rate x ETH (ARCHITECTURE.md §5)."""
        if self.a_pos is None:
            return math.inf
        coll = self.collateral.balance(self.qty[self.a_pos], k) * self.lst.rate[k]
        return health_factor(coll, self.debt_eth(k), self.emode.liquidation_threshold)

    def leverage_drift(self, k: int) -> Trigger | None:
        """Why the leverage needs fixing at k: HF under the floor (a safety action: de-lever to the
        target, whose HF clears the floor), LTV drifted below target by the threshold (re-lever,
        worth it when its cost stays under the value of the debt it restores), or None."""
        if not self.borrowing or (self.qty[self.debt_pos] <= 0.0 and self.collateral_eth(k) <= 0.0):
            return None  # (LST held without debt: a live book whose entry stopped half-way is levered on)
        hf = self.health_factor(k)
        if hf < self.lev.hf_floor:
            return Trigger("health_factor", hf, self.lev.hf_floor, forced=True)
        ltv = self.ltv(k)
        if ltv < self.target_ltv - self.lev.releverage_threshold and k != self.delevered_at:
            shortfall = (self.target_ltv - ltv) * self.collateral_eth(k) * self.eth_value[k]
            return Trigger("releverage", ltv, self.target_ltv - self.lev.releverage_threshold, corrects=shortfall)
        return None

    def risk_now(self, k: int) -> dict:
        """Health factor, LTV and the fall of the collateral's value that liquidates (1 - 1/HF, as in report)
        while borrowing; the LST's market discount to its rate where the DEX price is known."""
        risk: dict = {}
        if self.borrowing and self.debt_pos is not None and self.qty[self.debt_pos] > 0.0:
            hf = self.health_factor(k)
            risk |= {"health_factor": hf, "ltv": self.ltv(k),
                     "liq_distance": {"aave_v3": max(1.0 - 1.0 / hf, 0.0) if hf > 0 else 0.0}}
        if self.lst.market_rate and self.lst.market_rate[k] > 0.0:
            risk["lst_depeg"] = 1.0 - self.lst.market_rate[k] / self.lst.rate[k]  # discount of DEX to oracle rate
        return risk

    def ltv(self, k: int) -> float:
        coll = self.collateral_eth(k)
        return self.debt_eth(k) / coll if coll > 0 else 0.0

    # --- liquidation (the protocol acts, not the strategy) ---------------------------------------
    def check_liquidation(self, k: int) -> None:
        """The protocol's check each hour, before the strategy acts; keeps the lowest HF it saw."""
        if self.qty[self.debt_pos] > 0.0:
            hf = self.health_factor(k)
            if hf < self.lowest_hf:
                self.lowest_hf = hf
            if hf < 1.0:
                self.liquidate(k)

    def liquidate(self, k: int) -> None:
        """A liquidator repays up to the close factor of the debt and seizes collateral worth the
        repaid debt x (1 + bonus) (Aave v3 LiquidationLogic; close factor 100% below HF 0.95)."""
        qty = self.qty
        hf = self.health_factor(k)
        debt = self.debt_eth(k)
        rate = self.lst.rate[k]
        coll_units = self.collateral.balance(qty[self.a_pos], k)
        call = liquidation(self.emode, hf, debt, coll_units, rate)
        close_factor, repaid, seized_units, all_seized = (call.close_factor, call.repaid, call.collateral,
                                                          call.all_seized)
        bonus = self.emode.liquidation_bonus
        if all_seized:  # not enough collateral: all of it is seized, for the debt it covers
            qty[self.a_pos] = 0.0
        else:
            qty[self.a_pos] -= self.collateral.scaled_amount(seized_units, k)
        qty[self.debt_pos] -= self.weth.scaled_debt(repaid, k)
        loss = repaid * bonus * self.eth_value[k]
        self.ctx.book.attribution[LIQUIDATION_LOSS][k] -= loss
        written_off = 0.0
        if all_seized:
            # Aave v3.3 bad debt: debt left on an account with no collateral is burned (the reserve books a
            # deficit); the loss beyond the collateral, booked by the rate's fall, comes back there
            written_off = self.debt_eth(k)
            qty[self.debt_pos] = 0.0
            self.ctx.book.attribution[STAKING_YIELD][k] += written_off * self.eth_value[k]
        for reserve in (self.collateral, self.weth):  # the fund's own indexes follow its balances
            self.ctx.executor.aave_changed(k, reserve.symbol)
        record = {"k": k, "venue": "aave_v3", "health_factor": hf, "close_factor": close_factor,
                  "debt_before": debt, "repaid": repaid, "seized_units": seized_units,
                  "protocol_fee_units": call.protocol_fee, "rate": rate,
                  "loss": loss, "written_off": written_off, "health_factor_after": self.health_factor(k)}
        self.liquidations.append(record)
        self.ctx.events.add(k, "liquidation", f"aave_v3 liquidation at HF {hf:.4f}: repaid {repaid:.6f} WETH, "
                            f"seized {seized_units:.6f} {self.lst.symbol}",
                            **{key: v for key, v in record.items() if key != "k"})

    # --- rewards ---------------------------------------------------------------------------------
    def _sell_dust(self, k: int, token: RewardToken, pos: int) -> None:
        """On a credit: put the token up for sale (sold from this hour on by _sell_rewards)."""
        if self.cfg.rewards.sell_dust:
            i = self.rewards.index(token)
            if not self._selling[i]:  # a new sale: the pool's volume counts from this hour
                self._selling[i] = True
                self._sale_volume[i] = self._sale_sold[i] = 0.0
                self._waited_from[i] = k
            self._credit.each_hour = self._sell_rewards
            self._credit.wake_at = k

    def _sell_rewards(self, k: int) -> None:
        """Sell the reward tokens up for sale for the share-class asset within the participation limit, as a
        percentage-of-volume order does: what a sale has sold stays within rewards.max_participation (default
        execution.max_participation) of the USD volume the pool traded in the closed hours since the sale began
        (an hour without volume adds nothing: the data has no one to sell to). A slice is made when it is worth
        min_sell_value_usd and its gas is at most rewards.max_gas_share of it (or it sells all that is left); the
        sale ends when what is left is worth less than min_sell_value_usd. Slices are hours apart: each pays the
        impact of its own size."""
        selling = self._selling
        if not self._scanned:  # a book that starts with rewards (a live plan's): they are up for sale
            self._scanned = True
            for i, pos in enumerate(self.reward_pos):
                selling[i] = selling[i] or self.qty[pos] > 0.0
        active = False
        wake = self.ctx.n_points
        for i, token in enumerate(self.rewards):
            if selling[i] and self._sell_slice(k, i, token):
                active = True
                wake = min(wake, self._next_act(k, i, token))
        if not active:
            self._credit.each_hour = None  # nothing for sale: not called until the next credit
        self._credit.wake_at = wake

    def _next_act(self, k: int, i: int, token: RewardToken) -> int:
        """The next hour token i's sale may act: the next one on a market fed hour by hour; in a backtest, the
        first hour (within a month) where _sell_slice's own tests, on the same numbers in the same order, would
        not wait (its pool's volume, price and gas from the data), so the hours between are skipped exactly."""
        lo = k + 1
        if self.ctx.hour_by_hour or self._acted[i]:  # (it acted this hour: look again next hour)
            return lo
        hi = min(k + SALE_LOOKAHEAD_HOURS, self.ctx.n_points - 1)
        if hi < lo:
            return self.ctx.n_points
        cfg = self.cfg.rewards
        if self._ahead is None:  # the data a waiting sale looks ahead in, once a run (the same operations as below)
            arr = self._market.array_of
            usd = arr(self.unit_usd_at)
            self._ahead = [(np.where((v := arr(t.liquidity.last_volume)) > 0.0, v, 0.0), arr(p) * usd,
                            self.gas.units.swap * (arr(self.gas.per_unit) * usd) / cfg.max_gas_share)
                           for t, p in zip(self.rewards, self.reward_prices, strict=True)]
        vol, per_unit, gas = self._ahead[i]
        sold = np.cumsum(np.concatenate(([self._sale_volume[i]], vol[lo: hi + 1])))[1:]  # the sale's volume by then
        allowance = self._share * sold * (1.0 - 1e-12) - self._sale_sold[i]
        value = self.qty[self.reward_pos[i]] * per_unit[lo: hi + 1]
        gas = gas[lo: hi + 1]
        waits = (value >= cfg.min_sell_value_usd) & (allowance < value) & (
            (allowance < cfg.min_sell_value_usd) | (allowance < gas))
        acts = np.flatnonzero(~waits)
        return lo + int(acts[0]) if acts.size else hi + 1

    def _sell_slice(self, k: int, i: int, token: RewardToken) -> bool:
        """One token's sale at hour k; False once it is over."""
        cfg = self.cfg.rewards
        start = self._waited_from[i]
        if start < k:  # hours skipped while waiting: their volume, added in order
            vol = self._market.array_of(token.liquidity.last_volume)[start:k]
            self._sale_volume[i] = float(np.cumsum(np.concatenate(([self._sale_volume[i]],
                                                                   np.where(vol > 0.0, vol, 0.0))))[-1])
        volume = token.liquidity.last_volume[k]
        if volume > 0.0:
            self._sale_volume[i] += volume
        self._waited_from[i] = k + 1
        self._acted[i] = False
        allowance = self._share * self._sale_volume[i] * (1.0 - 1e-12) - self._sale_sold[i]
        pos = self.reward_pos[i]
        price = self.reward_prices[i][k]
        per_unit_usd = price * self.unit_usd_at[k]
        value_usd = self.qty[pos] * per_unit_usd
        if value_usd < cfg.min_sell_value_usd:  # sold (or dust): the sale is over
            self._selling[i] = False
            self._sale_volume[i] = self._sale_sold[i] = 0.0
            return False
        if allowance < value_usd and (allowance < cfg.min_sell_value_usd or allowance < self.gas.units.swap * (
                self.gas.per_unit[k] * self.unit_usd_at[k]) / cfg.max_gas_share):
            return True  # not yet a slice worth making: the pool's volume accrues to the sale
        units = self.qty[pos]
        sell = units if allowance >= value_usd else allowance / per_unit_usd
        trigger = Trigger(f"sell_dust:{token.symbol}", value_usd, cfg.min_sell_value_usd, corrects=sell * price,
                          every_hour=True)
        done = self.gate.attempt(k, trigger, lambda: self.ctx.executor.sell_to_wallet(
            k, pos, sell, price, f"{token.symbol}_{self.pricer.ccy}", token.symbol, token.liquidity))
        if done is not None:
            self._sale_sold[i] += sell * per_unit_usd
        self._acted[i] = True  # acted (or tried): the next hour is looked at
        return True

    def sell_all_rewards(self, k: int) -> None:
        """Sell every reward token held in this one hour, at the impact of its size (the exit; the slippage rate
        is capped at 100%: a sale can lose the tokens, not more)."""
        for i, token in enumerate(self.rewards):
            units = self.qty[self.reward_pos[i]]
            price = self.reward_prices[i][k]
            if units > 0.0 and price > 0.0:
                token.liquidity.parent_usd = 0.0
                self.ctx.executor.sell_to_wallet(k, self.reward_pos[i], units, price,
                                                 f"{token.symbol}_{self.pricer.ccy}", token.symbol, token.liquidity)

    def redeem_queue_hours(self) -> float:
        return getattr(self.cfg.staking.redeem_queue_hours, self.cfg.lst)

    # --- actions -------------------------------------------------------------------------------
    def _loop_cycles(self) -> int:
        return _loop_steps(1.0, 0.0, self.target_ltv / (1.0 - self.target_ltv), self.emode.ltv,
                           self.lev.loop_max_steps)

    def entry_gas_units(self) -> int:
        """Gas units of entering the leg from ETH at the target LTV."""
        units = self.gas.units
        stake_in = (units.swap if self.via_swap_in else units.stake) + units.supply * self.use_aave
        if not self.borrowing:
            return stake_in
        if self.lev.entry == "flash_loan":
            return units.flash_loan_bundle
        cycles = self._loop_cycles()
        return stake_in * (cycles + 1) + units.borrow * cycles

    def exit_gas_units(self, urgent: bool = False) -> int:
        """Gas units of leaving the leg back to ETH (`urgent`: the ETH is needed now, so the LST is swapped)."""
        units = self.gas.units
        swap = self.via_swap_out or urgent or self.borrowing  # ETH that repays debt is swapped
        stake_out = (units.swap if swap else units.unstake) + units.withdraw * self.use_aave
        if not self.borrowing:
            return stake_out
        if self.lev.entry == "flash_loan":
            return units.flash_loan_bundle
        return (stake_out + units.repay) * (self._loop_cycles() + 1)

    def full_delever_gas_units(self) -> int:
        """Gas units of repaying the whole debt from HF RESERVE_FROM_HF, the way the leg de-levers (one flash-loan
        bundle, or loop steps each withdrawing what keeps HF at STEP_HF, swapping and repaying); without debt, of
        leaving the leg now. The gas reserve pays this at the 30-day 99th percentile gas price."""
        units = self.gas.units
        if not self.borrowing:
            return self.exit_gas_units(urgent=True)
        if self.lev.entry == "flash_loan":
            return units.flash_loan_bundle
        step = units.withdraw + units.swap + units.repay
        lt = self.emode.liquidation_threshold
        return step * _delever_steps(1.0, lt / RESERVE_FROM_HF, 0.0, lt)

    def round_trip_gas_units(self) -> int:
        return self.entry_gas_units() + self.exit_gas_units()

    def entry_shares(self, k: int, equity_eth: float) -> dict[str, tuple[float, object]]:
        """Proportional costs of entering the leg with `equity_eth`, as fractions of that equity, by the
        config field that sets them: the flash-loan premium on the debt, the slippage of a swap entry on
        the whole collateral."""
        per_equity = 1.0 / (1.0 - self.target_ltv)  # collateral per unit of equity at the target LTV
        shares: dict[str, tuple[float, object]] = {}
        if self.borrowing and self.lev.entry == "flash_loan" and self.flash_premium:
            shares["leverage.flash_loan_premium"] = (self.flash_premium * (per_equity - 1.0),
                                                     self.lev.flash_loan_premium)
        if self.via_swap_in:
            notional_usd = equity_eth * per_equity * self.eth_value[k] * self.unit_usd_at[k]
            shares["staking.entry"] = (self.env.slippage.rate(self.lst.pair, notional_usd) * per_equity, "swap")
        return shares

    def planned_gas_units(self, k: int, equity_target: float) -> int:
        """Gas units the next adjust() would use: to reserve gas before staking the wallet's ETH, or, when it
        takes equity out (a withdrawal: the ETH is needed now), the gas of leaving."""
        units = self.gas.units
        if equity_target < self.equity_eth(k) * (1.0 - 1e-9):
            return self.exit_gas_units(urgent=True)
        per_cycle = units.stake + units.supply * self.use_aave
        if not self.borrowing:
            return per_cycle
        if self.lev.entry == "flash_loan":
            return units.flash_loan_bundle
        x, d = self.collateral_eth(k), self.debt_eth(k)
        d_target = self.target_ltv * max(equity_target, 0.0) / (1.0 - self.target_ltv)
        return per_cycle + _loop_steps(x + max(equity_target - (x - d), 0.0), d, d_target, self.emode.ltv,
                                       self.lev.loop_max_steps) * (per_cycle + units.borrow)

    def adjust(self, k: int, equity_target: float) -> None:
        """Move the leg to equity_target ETH at the target LTV, using and returning ETH at eth_pos."""
        equity_target = max(equity_target, 0.0)
        ltv = self.target_ltv
        x_target = equity_target / (1.0 - ltv)
        d_target = ltv * x_target
        x, d = self.collateral_eth(k), self.debt_eth(k)
        tol = 1e-9 * max(x_target, x) + EPS  # the strategy decides when; adjust does what it is asked
        if x_target > x + tol:
            self._increase(k, equity_target - (x - d), d_target - d, d_target)
        elif x_target < x - tol:
            self._decrease(k, x - x_target, max(d - d_target, 0.0), d_target)
            if d_target < d:
                self.delevered_at = k

    def _stake_and_supply(self, k: int, eth: float) -> None:
        ex = self.ctx.executor
        units = ex.stake(k, self.lst, self.eth_pos, self.lst_pos, eth, self.eth_value[k], self.via_swap_in)
        if self.use_aave:
            ex.aave_supply(k, self.collateral, self.a_pos, units, source=self.lst_pos)

    def _increase(self, k: int, eth_in: float, borrow: float, d_target: float) -> None:
        ex = self.ctx.executor
        loose = self.qty[self.lst_pos]
        if self.use_aave and loose > 1e-9 * max(self.lst_units(k), 1.0):  # LST held outside Aave backs nothing
            ex.aave_supply(k, self.collateral, self.a_pos, loose, source=self.lst_pos)
        if self.borrowing:  # aave.liquidity_policy partial: no more than the reserve has available
            borrow = ex.limit_borrow(k, self.weth, borrow) if borrow > 0 else borrow
        if self.borrowing and borrow > 0 and self.lev.entry == "flash_loan":
            # flash-borrow WETH, stake it with the wallet's ETH, supply, borrow to repay the flash loan
            with ex.bundle(k, "flash_loan_leverage", borrow, self.flash_premium, self.eth_value[k]):
                self._stake_and_supply(k, eth_in + borrow)
                self.borrow(k, borrow)
            return
        if eth_in > EPS:
            self._stake_and_supply(k, eth_in)
        if not self.borrowing:
            return
        for _ in range(self.lev.loop_max_steps):
            x, d = self.collateral_eth(k), self.debt_eth(k)
            room = self.emode.ltv * x * (1.0 - 1e-9) - d
            b = min(d_target - d, room)
            if b <= self.lev.ltv_tolerance * 1e-3 * x:
                break
            b = ex.limit_borrow(k, self.weth, b)
            if b <= self.lev.ltv_tolerance * 1e-3 * x:
                break
            self.borrow(k, b)
            self._stake_and_supply(k, b)
        if abs(self.ltv(k) - self.target_ltv) > self.lev.ltv_tolerance:
            why = ("the reserve had no more WETH available (aave.liquidity_policy partial)" if ex.borrow_room(
                k, self.weth) <= EPS else f"{self.lev.loop_max_steps} steps")
            self.ctx.events.add(k, "risk_alert", f"leverage loop stopped at LTV {self.ltv(k):.4f} (target "
                                f"{self.target_ltv:g}): {why}", ltv=self.ltv(k))

    def borrow(self, k: int, amount: float) -> None:
        x, d = self.collateral_eth(k), self.debt_eth(k)
        if (d + amount) > self.emode.ltv * x * (1.0 + 1e-12):
            self.ctx.events.add(k, "error", f"borrow of {amount:.6f} WETH refused: LTV would be "
                                f"{(d + amount) / x:.4f} > max {self.emode.ltv:g}", amount=amount)
            return
        self.ctx.executor.aave_borrow(k, self.weth, self.debt_pos, self.eth_pos, amount)

    def _withdraw_and_unstake(self, k: int, eth_value: float, now: bool) -> float:
        """Take LST worth `eth_value` ETH at the rate out of the leg (Aave first if used, else the wallet):
        when the ETH is needed `now` (to repay debt, for a withdrawal or a safety action) enough is swapped at
        the DEX for `eth_value` ETH to arrive; otherwise as staking.exit says: swapped, or queued at the
        protocol. Returns the ETH that arrived now."""
        ex, qty = self.ctx.executor, self.qty
        units = ex.units_for_eth(k, self.lst, eth_value, self.eth_value[k]) if now else eth_value / self.lst.rate[k]
        if self.use_aave:
            units = ex.aave_withdraw(k, self.collateral, self.a_pos, units, dest=self.lst_pos)
        units = min(units, qty[self.lst_pos])
        if now or self.queue_hours is None:
            return ex.unstake(k, self.lst, self.lst_pos, self.eth_pos, units, self.eth_value[k], via_swap=True)
        if units <= 0.0:
            return 0.0
        ex.request_redeem(k, self.lst, self.lst_pos, self.claim_pos, units, k + self.queue_ticks)
        return 0.0

    def _decrease(self, k: int, x_out: float, repay: float, d_target: float) -> None:
        """Take `x_out` ETH of collateral out and repay `repay` of debt. The ETH that repays is needed in the
        same transaction, so it is swapped; the rest is queued when the action is voluntary."""
        ex = self.ctx.executor
        urgent = self.gate.urgent
        if not self.borrowing or repay <= EPS:
            self._withdraw_and_unstake(k, x_out, urgent)
            return
        if self.lev.entry == "flash_loan":
            with ex.bundle(k, "flash_loan_deleverage", repay, self.flash_premium, self.eth_value[k]):
                ex.aave_repay(k, self.weth, self.debt_pos, self.eth_pos, repay)
                self._withdraw_and_unstake(k, repay, True)
                if x_out - repay > EPS:
                    self._withdraw_and_unstake(k, x_out - repay, urgent)
            return
        remaining = x_out
        lt = self.emode.liquidation_threshold
        steps = max(self.lev.loop_max_steps, SAFETY_MAX_STEPS) if urgent else self.lev.loop_max_steps
        for _ in range(steps):
            x, d = self.collateral_eth(k), self.debt_eth(k)
            # what may leave with HF >= STEP_HF after it (HF = collateral x LT / debt, Aave v3 GenericLogic)
            can = x - d * STEP_HF / lt if d > EPS else x
            if can <= EPS:
                break
            now = urgent or d - d_target > EPS
            if now:  # a swap sells more collateral than the ETH it brings: stay within what may leave
                can = can * can / (ex.units_for_eth(k, self.lst, can, self.eth_value[k]) * self.lst.rate[k])
            w = min(remaining, can * (1.0 - 1e-9))
            if w <= EPS:
                break
            eth = self._withdraw_and_unstake(k, w, now)
            remaining -= w
            owed = self.debt_eth(k) - d_target
            if owed > EPS:
                ex.aave_repay(k, self.weth, self.debt_pos, self.eth_pos, min(eth, owed))
            if remaining <= EPS:
                break
        if self.debt_eth(k) - d_target > 1e-6 * max(d_target, 1.0):
            self.ctx.events.add(k, "risk_alert", f"de-lever stopped at LTV {self.ltv(k):.4f}, HF "
                                f"{self.health_factor(k):.4f} (target LTV {self.target_ltv:g}): no withdrawal leaves "
                                f"HF >= {STEP_HF:g}, or the steps ran out", ltv=self.ltv(k))

    # --- reporting -----------------------------------------------------------------------------
    def report(self, quantities: np.ndarray) -> tuple[dict, dict]:
        rate = np.asarray(self.lst.rate)
        units = quantities[self.lst_pos].copy()
        if self.a_pos is not None:
            units += quantities[self.a_pos] * np.asarray(self.collateral.liquidity_index)
        coll = units * rate
        debt = quantities[self.debt_pos] * np.asarray(self.weth.borrow_index) if self.debt_pos is not None \
            else np.zeros_like(coll)
        with np.errstate(divide="ignore", invalid="ignore"):
            ltv = np.where(coll > 0, debt / coll, 0.0)
            aave_coll = (quantities[self.a_pos] * np.asarray(self.collateral.liquidity_index) * rate
                         if self.a_pos is not None else np.zeros_like(coll))
            hf = np.where(debt > 0, aave_coll * self.emode.liquidation_threshold / debt, np.inf)
            leverage = np.where(coll - debt > 0, coll / (coll - debt), 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            # the fall of the collateral's value against the debt (here the LST/ETH rate) that brings HF to 1:
            # HF scales with it, so 1 - 1/HF (Aave v3: liquidation below HF 1)
            liq = np.where(debt > 0, np.maximum(1.0 - 1.0 / hf, 0.0), np.nan)
        cols = {"lst_rate": rate, "collateral_eth": coll, "debt_eth": debt, "ltv": ltv, "health_factor": hf,
                "leverage": leverage}
        if self.claim_pos is not None:
            cols["claim_eth"] = quantities[self.claim_pos].copy()  # ETH queued at the protocol, not yet paid
        if self.borrowing:  # nothing borrowed, nothing to liquidate
            cols["liq_distance:aave_v3"] = liq
        if self.lst.market_rate:
            lo, hi = self.lst.market_coverage
            covered = (self.grid >= lo) & (self.grid <= hi)
            market_rate = np.where(covered, np.asarray(self.lst.market_rate), np.nan)
            cols["lst_market_rate"] = market_rate
            cols["lst_depeg"] = market_rate / rate - 1.0  # DEX price against the oracle rate
        held = coll > 0
        summary = {
            # the lowest of the recorded hours and of what the hourly check saw before the strategy acted
            "min_health_factor": float(min(hf.min(), self.lowest_hf)) if np.isfinite(hf).any() else None,
            "max_ltv": float(ltv.max()),
            "leverage": {"mean": float(leverage[held].mean()) if held.any() else 0.0,
                         "max": float(leverage.max())},
            "rewards_by_token": {},
        }
        for hook in self._hooks.accruals:
            if isinstance(hook, RewardsCredit):
                summary["rewards_by_token"] = {s: {"units": u, "value": v} for s, (u, v) in hook.credited.items()}
        # what is still held at the end (unsold: under min_sell_value_usd, or more than the pool's volume took)
        summary["rewards_held"] = {t.symbol: {"units": float(quantities[pos][-1]),
                                              "value": float(quantities[pos][-1]) * self.reward_prices[i][-1]}
                                   for i, (t, pos) in enumerate(zip(self.rewards, self.reward_pos, strict=True))}
        return cols, summary


def _loop_steps(x: float, d: float, d_target: float, ltv_max: float, max_steps: int) -> int:
    """Borrow/stake/supply cycles a loop needs to take debt from d to d_target at max LTV per cycle."""
    steps = 0
    while d < d_target * (1 - 1e-9) and steps < max_steps:
        b = min(d_target - d, ltv_max * x - d)
        if b <= 0:
            break
        d += b
        x += b
        steps += 1
    return steps


def _delever_steps(x: float, d: float, d_target: float, lt: float, max_steps: int = SAFETY_MAX_STEPS) -> int:
    """Withdraw-swap-repay steps that take debt from d to d_target, each withdrawing what leaves HF at STEP_HF."""
    steps = 0
    while d > d_target + EPS and steps < max_steps:
        w = x - d * STEP_HF / lt
        if w <= EPS:
            break
        w = min(w, d - d_target)
        x, d = x - w, d - w
        steps += 1
    return max(steps, 1)
