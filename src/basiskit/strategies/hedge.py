"""PerpHedge: short USDT-margined perps of one asset across venues by hedge_allocation, with their
margin accounts, funding, liquidations and the risk monitor. Used by every strategy that hedges."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..config.models import RunConfig
from ..data.dataset import Dataset
from ..data.market import MarketData, Need
from ..portfolio.attribution import SLOT, VOID
from ..portfolio.book import PositionSpec
from ..portfolio.risk import RiskMonitor
from ..venues.cex import MarkFallbacks, load_venue
from ..venues.funding import FundingSettlement
from ..venues.margin import MarginAccount
from ..venues.perp import PerpMarket
from .base import Hooks, Problem
from .discipline import DUST, Trigger

PERP_PRICE = SLOT["perp_price"]
COMFORT = 0.5  # a margin fix lands at or below this fraction of the margin ratio limit
MIN_HEDGE_THRESHOLD = 0.001  # smallest position_deviation_threshold a hedged strategy may use
LIQUIDATION_BUFFER = 0.02  # price move the margin ratio limit must leave before the venue liquidates
TOPUP_SHARE = 0.25  # a margin top-up of this share of a venue's margin must meet its minimum transfer


def validate_hedge_config(cfg: RunConfig, dataset: Dataset, strategy: str, asset: str, margin_field: str,
                          margin_per_notional: float | None, limit_field: str, limit: float) -> list[Problem]:
    """Problems with the hedge, each for its most binding venue: allocation missing; less margin than a
    venue's initial margin; a margin ratio limit too close to the ratio the hedge opens at, or to
    liquidation; a risk override below that limit; a re-hedge threshold too small to be worth a
    trade, or one the risk monitor would alert on first."""
    if cfg.hedge_allocation is None:
        return [("hedge_allocation", None, f"required by strategy {strategy} (e.g. {{binance: 0.5, bybit: 0.5}})")]
    problems: list[Problem] = []
    m = margin_per_notional
    worst: dict[str, tuple[float, Problem]] = {}  # rule -> (how far off, problem) of the most binding venue

    def flag(rule: str, off: float, problem: Problem) -> None:
        if rule not in worst or off > worst[rule][0]:
            worst[rule] = (off, problem)

    for name, w in sorted(cfg.hedge_allocation.items()):
        if w <= 0 or m is None:
            continue
        venue = load_venue(dataset, cfg, name, f"{asset}USDT")
        im, mmr = venue.initial_margin_rate, venue.maintenance_margin_rate
        room = mmr * (1.0 / limit - 1.0)  # equity per unit of notional falls from mmr / limit to mmr at liquidation
        if room < LIQUIDATION_BUFFER:
            largest = math.floor(mmr / (mmr + LIQUIDATION_BUFFER) * 1e4) / 1e4
            flag("buffer", -room, (limit_field, limit, f"leaves a price move of only {room:.2%} between the limit and "
                                   f"liquidation on {name} (maintenance margin rate {mmr:g}); an hourly check needs "
                                   f"{LIQUIDATION_BUFFER:.0%}: the largest valid limit is {largest:g}"))
        if m < im:
            flag("initial", im - m, (margin_field, m, f"gives {m:g} of perp margin per unit of hedge, below "
                                     f"venues.{name}.initial_margin_rate {im:g}: the hedge could not be opened"))
        elif mmr / m > COMFORT * limit:
            # margin ratio at entry = maintenance margin / equity = mmr x N / (m x N) (Binance/Bybit margin ratio)
            flag("entry", mmr / m, (limit_field, limit,
                                    f"a hedge opened with {m:.4g} of margin per unit of notional sits at margin ratio "
                                    f"{mmr / m:.4g} on {name} (maintenance margin rate {mmr:g}); the limit must be at "
                                    f"least {mmr / m / COMFORT:.4g} so that a margin rebalance, which returns to that "
                                    f"ratio, lands well inside it (or give the hedge more margin: {margin_field})"))
    problems += [problem for _, problem in worst.values()]
    override = cfg.risk.margin_ratio_override
    if override <= limit:
        problems.append(("risk.margin_ratio_override", override,
                         f"must be above {limit_field} {limit:g}: the override (cut exposure by "
                         "risk.reduce_fraction) is the stronger step, for when moving margin was not enough"))
    if cfg.position_deviation_threshold < MIN_HEDGE_THRESHOLD:
        problems.append(("position_deviation_threshold", cfg.position_deviation_threshold,
                         f"must be at least {MIN_HEDGE_THRESHOLD:g} (0.1% of NAV) for a hedged strategy: below it the "
                         "hourly drift of staking yield, borrow cost and funding would re-hedge every few hours"))
    if cfg.position_deviation_threshold > cfg.risk.max_net_delta_pct:
        problems.append(("position_deviation_threshold", cfg.position_deviation_threshold,
                         f"must be at most risk.max_net_delta_pct {cfg.risk.max_net_delta_pct:g}: the strategy "
                         "re-hedges a deviation no later than the risk monitor alerts on it"))
    return problems


def liquidation_distance(size: np.ndarray, mark: np.ndarray, equity: np.ndarray, mmr: float) -> np.ndarray:
    """The fractional adverse move of the mark that brings a venue's equity to its maintenance margin
    (NaN without a position). Liquidation when equity = mmr x |size| x mark' (Binance/Bybit: margin balance
    at maintenance margin); for a short, equity rises by -size x dp, so the mark may rise by
    (e / N - mmr) / (1 + mmr), N = |size| x mark; for a long it may fall by (e / N - mmr) / (1 - mmr)."""
    notional = np.abs(size) * mark
    with np.errstate(divide="ignore", invalid="ignore"):
        room = equity / notional - mmr
        distance = np.where(size < 0.0, room / (1.0 + mmr), room / (1.0 - mmr))
    return np.where(size != 0.0, np.maximum(distance, 0.0), np.nan)


def intrabar_ratios(perp, mmr: float, size: np.ndarray, cash: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The margin ratio a venue checks each hour, with the positions held through the hour that just ended:
    at the open (the mark) and at that hour's adverse extreme (its high for a short, low for a long)."""
    held, cash = np.concatenate(([0.0], size[:-1])), np.concatenate(([0.0], cash[:-1]))
    mark, extreme = np.asarray(perp.mark), np.where(held < 0.0, perp.high, perp.low)

    def ratio(price: np.ndarray) -> np.ndarray:
        equity = cash + held * price
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(equity > 0.0, mmr * np.abs(held) * price / equity, np.inf)
        return np.where(held != 0.0, r, 0.0)

    return ratio(mark), ratio(extreme)


class PerpHedge:
    def __init__(self, cfg: RunConfig, env, asset: str, limit: float):
        self.cfg = cfg
        self.env = env
        self.asset = asset
        self.limit = limit  # margin ratio at which margin is moved or exposure reduced
        symbol = f"{asset}USDT"
        chosen = [(v, w) for v, w in sorted(cfg.hedge_allocation.items()) if w > 0]
        self.weights = [w for _, w in chosen]
        self.perps = [PerpMarket(load_venue(env.dataset, cfg, v, symbol), asset,
                                 fallbacks=MarkFallbacks.for_perp(env.dataset, cfg, v, asset),
                                 window=cfg.costs.impact.window_hours) for v, _ in chosen]
        for p in self.perps:
            env.slippage.check(p.pair)
        self.max_initial_margin = max(p.venue.initial_margin_rate for p in self.perps)
        self.transfer_fees = sum(p.venue.transfer_fee_usdt for p in self.perps)

    def needs(self) -> list[Need]:
        return [n for p in self.perps for n in p.needs()]

    def capital_needs(self, hedge_share: float, margin_share: float, threshold: float) -> list[tuple[float, str]]:
        """Capital (USDT) at which every venue's first order, a re-hedge of `threshold` of the capital
        and a top-up of TOPUP_SHARE of its margin meet the venue's minimums; `hedge_share` and
        `margin_share` are the hedge notional and the margin per unit of capital."""
        need = []
        for perp, w in zip(self.perps, self.weights, strict=True):
            v = perp.venue
            need.append((v.min_order_usdt / (hedge_share * w), f"a first {v.name} perp order"))
            need.append((v.min_order_usdt / (max(threshold, MIN_HEDGE_THRESHOLD) * w),
                         f"a {v.name} re-hedge of position_deviation_threshold {threshold:g}"))
            need.append((v.min_transfer_usdt / (TOPUP_SHARE * margin_share * w),
                         f"a top-up of {TOPUP_SHARE:.0%} of the {v.name} margin"))
        return need

    def bind(self, market: MarketData, fx: list[float], fx_slot: int) -> list[PositionSpec]:
        """Positions: each venue's perp (valued at its mark) and its USDT margin account."""
        for p in self.perps:
            p.bind(market)
        self.fx = fx
        ones = market.ones
        specs = []
        for p in self.perps:
            specs.append(PositionSpec(p.instrument, ones, p.mark, fx, index_slot=VOID, rate_slot=PERP_PRICE,
                                      price_slot=fx_slot))
            specs.append(PositionSpec(p.margin, ones, ones, fx, index_slot=VOID, rate_slot=VOID, price_slot=fx_slot))
        return specs

    def attach(self, ctx, net_delta: Callable[[int], float], price: list[float]) -> None:
        self.ctx = ctx
        for p in self.perps:  # every run starts flat, also a second run of the same Backtest
            p.entry_price = p.realized_pnl = 0.0
        ctx.executor.perps.extend(self.perps)
        book = ctx.book
        self.qty = book.qty
        self.size_pos = [book.slot_of(p.instrument.key) for p in self.perps]
        self.cash_pos = [book.slot_of(p.margin.key) for p in self.perps]
        self.accounts = [MarginAccount(p, book, ctx.events, self.fx) for p in self.perps]
        self.funding = [FundingSettlement(p, book, ctx.n_points, self.fx) for p in self.perps]
        self.risk = RiskMonitor(self.cfg.risk, self.accounts, ctx.events, book, net_delta, price)

    def hooks(self) -> Hooks:
        return Hooks(accruals=list(self.funding), monitors=[*self.accounts, self.risk])

    def short_units(self) -> float:
        total = 0.0
        for j in self.size_pos:
            total -= self.qty[j]
        return total

    def max_ratio(self, k: int) -> float:
        return max(a.ratio(k) for a in self.accounts)

    # --- margin discipline ------------------------------------------------------------------------
    def margin_trigger(self, k: int) -> Trigger | None:
        """A safety trigger from the risk monitor's margin ratios: the override (worst ratio at
        risk.margin_ratio_override: reduce exposure) or the limit (move margin, then rebalance)."""
        risk = self.risk
        if risk.override:
            return Trigger("risk_override", risk.worst_ratio, self.cfg.risk.margin_ratio_override, forced=True)
        if risk.worst_ratio >= self.limit:
            return Trigger("margin_ratio", risk.worst_ratio, self.limit, forced=True)
        return None

    def fix_margin(self, k: int, trigger: Trigger, available: float, rebalance: Callable[..., None]) -> None:
        """risk_override: rebalance with reduced exposure. margin_ratio: spread margin over the venues;
        when a venue is still above COMFORT x limit, rebalance to the target, whose ratio is the entry
        ratio (at most COMFORT x limit by the config rules)."""
        if trigger.reason == "risk_override":
            rebalance(reduce=True)
            return
        self.distribute_margin(k, available, trigger.reason)
        if self.max_ratio(k) > COMFORT * self.limit:
            rebalance()

    def margin_problem(self, k: int) -> str | None:
        """Post-condition of a voluntary rebalance: no venue left at or above the margin ratio limit."""
        for acct in self.accounts:
            r = acct.ratio(k)
            if r >= self.limit:
                return f"it would leave {acct.perp.venue.name} at margin ratio {r:.4g} >= limit {self.limit:g}"
        return None

    def can_carry(self, k: int, units: float, available: float) -> bool:
        """Whether the venues' equity and `available` wallet USDT can hold a short of `units` with every
        venue at most COMFORT x the limit (margin ratio = mmr x notional / equity)."""
        equity = available + sum(a.equity(k) for a in self.accounts)
        need = sum(a.mmr * units * w * a.perp.mark[k] for a, w in zip(self.accounts, self.weights, strict=True))
        return equity * COMFORT * self.limit >= need

    # --- actions ----------------------------------------------------------------------------------
    def hedge(self, k: int, units: float, dust: float) -> None:
        """Trade each venue's perp to a short of units x weight. An order under the venue's minimum
        notional is not placed unless it only reduces the position (reduce-only orders are exempt:
        Binance USDⓈ-M and Bybit trading rules)."""
        ex, fx = self.ctx.executor, self.fx[k]
        for perp, w, size_pos, cash_pos in zip(self.perps, self.weights, self.size_pos, self.cash_pos, strict=True):
            target = -units * w
            current = self.qty[size_pos]
            delta = target - current
            notional = abs(delta) * perp.mark[k]
            reduces = target * current >= 0.0 and abs(target) < abs(current)
            if notional <= dust or (not reduces and notional < perp.venue.min_order_usdt):
                continue
            ex.perp_trade(k, perp, size_pos, cash_pos, delta, fx)

    def distribute_margin(self, k: int, available: float, reason: str, withdraw: bool = True) -> None:
        """Spread `available` wallet USDT plus the venues' equity over the venues by weight (with
        `withdraw` False, only deposit `available`). A venue gives back at most its free margin; the
        wallet pays only `available`; a transfer under the venue's minimum is not made, unless the
        venue needs it (ratio above COMFORT x limit): then the minimum is sent."""
        ex, fx = self.ctx.executor, self.fx[k]
        wallet = self.ctx.wallet
        equities = [a.equity(k) for a in self.accounts]
        total = max(available + sum(equities) - self.transfer_fees, 0.0)
        dust = max(DUST * abs(total), 1e-9)
        spendable = available
        rows = list(zip(self.accounts, self.weights, equities, self.cash_pos, strict=True))
        for acct, w, eq, cash_pos in rows if withdraw else ():  # withdrawals first: they fund deposits
            venue = acct.perp.venue
            amount = min(eq - total * w, acct.free_margin(k) - venue.transfer_fee_usdt)
            if amount > dust and amount >= venue.min_transfer_usdt:
                ex.transfer(k, cash_pos, wallet, amount, venue.transfer_fee_usdt, fx,
                            f"{venue.name} -> wallet ({reason})", acct.perp)
                spendable += amount
        for acct, w, eq, cash_pos in sorted(rows, key=lambda row: -row[0].ratio(k)):  # the neediest first
            venue = acct.perp.venue
            amount = min(total * w - eq, spendable - venue.transfer_fee_usdt)
            if amount <= dust:
                continue
            if amount < venue.min_transfer_usdt:  # a top-up the venue needs is sent at the minimum size
                affordable = spendable - venue.transfer_fee_usdt >= venue.min_transfer_usdt
                if acct.ratio(k) <= COMFORT * self.limit or not affordable:
                    continue
                amount = venue.min_transfer_usdt
            if amount > 0.0:
                ex.transfer(k, wallet, cash_pos, amount, venue.transfer_fee_usdt, fx,
                            f"wallet -> {venue.name} ({reason})", acct.perp)
                spendable -= amount + venue.transfer_fee_usdt

    def top_up_wallet(self, k: int, need: float) -> None:
        """Bring the wallet to `need` USDT (share-class units) from the venue with the most free margin."""
        wallet = self.ctx.wallet
        short = (need - self.qty[wallet]) / self.fx[k]
        if short <= 0.0:
            return
        acct, cash_pos = max(zip(self.accounts, self.cash_pos, strict=True), key=lambda a: a[0].free_margin(k))
        venue = acct.perp.venue
        amount = min(max(short, venue.min_transfer_usdt), acct.free_margin(k) - venue.transfer_fee_usdt)
        if amount >= venue.min_transfer_usdt and amount > 0.0:
            self.ctx.executor.transfer(k, cash_pos, wallet, amount, venue.transfer_fee_usdt, self.fx[k],
                                       f"{venue.name} -> wallet (gas)", acct.perp)

    def fund_margin(self, k: int, available: float, reason: str) -> None:
        """After a re-hedge: spread margin over the venues when one sits above COMFORT x the limit;
        otherwise only deposit the wallet's spare cash, when it is worth a transfer."""
        if self.max_ratio(k) > COMFORT * self.limit:
            self.distribute_margin(k, available, reason)
        elif available >= min(p.venue.min_transfer_usdt + p.venue.transfer_fee_usdt for p in self.perps):
            self.distribute_margin(k, available, reason, withdraw=False)

    def report(self, quantities: np.ndarray) -> tuple[dict, dict]:
        cols, max_ratio, funding, intrabar, checks, stale_marks = {}, {}, {}, {}, {}, {}
        for perp, acct, f, size_pos, cash_pos in zip(self.perps, self.accounts, self.funding, self.size_pos,
                                                     self.cash_pos, strict=True):
            v = perp.venue.name
            mark = np.asarray(perp.mark)
            size = quantities[size_pos]
            equity = quantities[cash_pos] + size * mark
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(size != 0.0, acct.mmr * np.abs(size) * mark / equity, 0.0)
            ratio = np.where((size != 0.0) & (equity <= 0.0), np.inf, ratio)
            cols[f"margin_ratio:{v}"] = ratio
            cols[f"liq_distance:{v}"] = liquidation_distance(size, mark, equity, acct.mmr)
            cols[f"equity_usdt:{v}"] = equity
            cols[f"notional_usdt:{v}"] = size * mark  # signed exposure of a linear USDT contract: size x mark
            at_open, at_extreme = intrabar_ratios(perp, acct.mmr, size, quantities[cash_pos])
            cols[f"margin_ratio_intrabar:{v}"] = at_extreme
            finite = np.isfinite(at_extreme) & np.isfinite(at_open) & (at_open > 0.0)
            gap = at_extreme[finite] - at_open[finite]
            intrabar[v] = {"hours_held": int(len(gap)), "mean_ratio_gap": float(gap.mean()) if len(gap) else 0.0,
                           "max_ratio_gap": float(gap.max(initial=0.0)),
                           "max_margin_ratio_at_open": float(np.nanmax(at_open, initial=0.0)),
                           "max_margin_ratio_intrabar": float(np.nanmax(at_extreme, initial=0.0)),
                           "hours_over_limit_only_intrabar": int(((at_extreme >= self.limit)
                                                                  & (at_open < self.limit)).sum()),
                           "hours_liquidating_only_intrabar": int(((at_extreme >= 1.0) & (at_open < 1.0)).sum())}
            checks[v] = perp.venue.liquidation_check
            cols[f"funding:{v}"] = np.asarray(f.per_tick)
            if perp.mark_source is not None:  # 0 own price, 1 same contract elsewhere, 2 spot + basis, 3 stale
                cols[f"mark_source:{v}"] = perp.mark_source.astype(np.float64)
                stale_marks[v] = int((perp.mark_source != 0).sum())
            max_ratio[v] = float(ratio.max())
            funding[v] = float(np.sum(f.per_tick))
        last = quantities.shape[1] - 1
        positions = {}
        for perp, size_pos in zip(self.perps, self.size_pos, strict=True):
            size, mark = float(quantities[size_pos][last]), perp.mark[last]
            positions[perp.venue.name] = {
                "size": size, "entry_price": perp.entry_price, "mark": mark,
                # unrealised PnL = size x (mark - entry) (linear USDT-margined contract)
                "unrealized_pnl": size * (mark - perp.entry_price), "realized_pnl": perp.realized_pnl,
            }
        return cols, {"funding_by_venue": funding, "max_margin_ratio": max_ratio, "perp_positions": positions,
                      "intrabar_by_venue": intrabar, "liquidation_check": checks, "stale_marks": stale_marks}

    def risk_now(self, k: int) -> dict:
        """Per venue: margin ratio and liquidation distance at point k; net delta as a share of NAV."""
        ratios, distances = {}, {}
        for perp, acct, size_pos in zip(self.perps, self.accounts, self.size_pos, strict=True):
            size, mark = self.qty[size_pos], perp.mark[k]
            ratios[perp.venue.name] = acct.ratio(k)
            if size != 0.0:
                d = liquidation_distance(np.array([size]), np.array([mark]), np.array([acct.equity(k)]), acct.mmr)
                distances[perp.venue.name] = float(d[0])
        nav = self.ctx.book.nav(k)
        delta = self.risk.net_delta(k)
        pct = abs(delta) * self.risk.price[k] / nav if nav > 0.0 else 0.0
        return {"margin_ratio": ratios, "liq_distance": distances, "net_delta": delta, "net_delta_pct": pct}

    def liquidations(self) -> list[dict]:
        return [event for a in self.accounts for event in a.liquidations]
