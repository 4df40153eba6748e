"""PerpHedge: short USDT-margined perps of one asset across venues by hedge_allocation, with their
margin accounts, funding, liquidations and the risk monitor. Used by every strategy that hedges."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..config.models import RunConfig
from ..data.market import MarketData, Need
from ..portfolio.attribution import SLOT, VOID
from ..portfolio.book import PositionSpec
from ..portfolio.risk import RiskMonitor
from ..venues.cex import load_venue
from ..venues.funding import FundingSettlement
from ..venues.margin import MarginAccount
from ..venues.perp import PerpMarket
from .base import Hooks

PERP_PRICE = SLOT["perp_price"]
DUST = 1e-9  # fraction of NAV below which a trade or transfer is not worth doing


def validate_hedge_config(cfg: RunConfig, strategy: str, margin_field: str,
                          margin_per_notional: float | None) -> list[tuple[str, object, str]]:
    """Problems with the hedge: allocation missing, or less margin than a venue's initial margin."""
    if cfg.hedge_allocation is None:
        return [("hedge_allocation", None, f"required by strategy {strategy} (e.g. {{binance: 0.5, bybit: 0.5}})")]
    problems = []
    if margin_per_notional is not None:
        for venue, w in cfg.hedge_allocation.items():
            im = getattr(cfg.venues, venue).initial_margin_rate
            if w > 0 and margin_per_notional < im:
                problems.append((margin_field, margin_per_notional,
                                 f"gives {margin_per_notional:g} of perp margin per unit of hedge, below "
                                 f"venues.{venue}.initial_margin_rate {im:g}: the hedge could not be opened"))
    return problems


class PerpHedge:
    def __init__(self, cfg: RunConfig, env, asset: str):
        self.cfg = cfg
        self.env = env
        self.asset = asset
        symbol = f"{asset}USDT"
        chosen = [(v, w) for v, w in sorted(cfg.hedge_allocation.items()) if w > 0]
        self.weights = [w for _, w in chosen]
        self.perps = [PerpMarket(load_venue(env.dataset, cfg, v, symbol), asset) for v, _ in chosen]
        for p in self.perps:
            env.slippage.check(p.pair)
        self.max_initial_margin = max(p.venue.initial_margin_rate for p in self.perps)

    def needs(self) -> list[Need]:
        return [n for p in self.perps for n in p.needs()]

    def bind(self, market: MarketData, fx: list[float], fx_slot: int) -> list[PositionSpec]:
        """Positions: each venue's perp (valued at its mark) and its USDT margin account."""
        for p in self.perps:
            p.bind(market)
        self.fx = fx
        ones = [1.0] * market.n_points
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

    def handle_margin(self, k: int, limit: float, rebalance) -> bool:
        """Risk override: reduce exposure. Margin ratio at `limit`: move margin between venues, then
        rebalance if that is not enough. True when it acted."""
        if self.risk.override:
            rebalance(k, "risk_override", reduce=True)
            return True
        if self.risk.worst_ratio >= limit:
            self.distribute_margin(k, 0.0, "margin_ratio")
            if self.max_ratio(k) >= limit:
                rebalance(k, "margin_ratio")
            return True
        return False

    def hedge(self, k: int, units: float, dust: float) -> None:
        """Trade each venue's perp to a short of units x weight."""
        ex, fx = self.ctx.executor, self.fx[k]
        for perp, w, size_pos, cash_pos in zip(self.perps, self.weights, self.size_pos, self.cash_pos, strict=True):
            delta = -units * w - self.qty[size_pos]
            if abs(delta) * perp.mark[k] > dust:
                ex.perp_trade(k, perp, size_pos, cash_pos, delta, fx)

    def distribute_margin(self, k: int, available: float, reason: str) -> None:
        """Spread `available` USDT from the wallet plus all perp equity over the venues by weight."""
        ex, fx = self.ctx.executor, self.fx[k]
        wallet = self.ctx.wallet
        equities = [a.equity(k) for a in self.accounts]
        total = available + sum(equities)
        fees = sum(p.venue.transfer_fee_usdt for p in self.perps)
        dust = max(DUST * abs(total), 1e-9)
        moves = [((total - fees) * w - eq, perp, cash_pos)
                 for perp, w, eq, cash_pos in zip(self.perps, self.weights, equities, self.cash_pos, strict=True)]
        for diff, perp, cash_pos in moves:  # withdrawals first, so the wallet is funded for deposits
            if diff < -dust:
                ex.transfer(k, cash_pos, wallet, -diff, perp.venue.transfer_fee_usdt, fx,
                            f"{perp.venue.name} -> wallet ({reason})")
        for diff, perp, cash_pos in moves:
            if diff > dust:
                ex.transfer(k, wallet, cash_pos, diff, perp.venue.transfer_fee_usdt, fx,
                            f"wallet -> {perp.venue.name} ({reason})")

    def report(self, quantities: np.ndarray) -> tuple[dict, dict]:
        cols, max_ratio, funding = {}, {}, {}
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
            cols[f"equity_usdt:{v}"] = equity
            cols[f"funding:{v}"] = np.asarray(f.per_tick)
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
        return cols, {"funding_by_venue": funding, "max_margin_ratio": max_ratio, "perp_positions": positions}

    def liquidations(self) -> list[dict]:
        return [event for a in self.accounts for event in a.liquidations]
