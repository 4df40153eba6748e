"""basis: long spot, short perpetuals split across venues by hedge_allocation, USDT share class.

Target from equity E: hedge notional N = E / (1 + margin_buffer + spot cost), spot units u = N / p,
perp size on venue v = -u x w_v, the rest of E as margin spread by w_v. Rebalances on deposits,
withdrawals, net delta beyond position_deviation_threshold, and margin ratio at its limit (margin
moves between venues first, then exposure is reduced); the risk override can only reduce exposure.
"""

from __future__ import annotations

import numpy as np

from ..config.models import RunConfig
from ..data.market import MarketData, Need
from ..portfolio.attribution import SLOT, SPOT_PRICE, VOID
from ..portfolio.book import PositionSpec
from ..portfolio.risk import RiskMonitor
from ..venues.cex import load_venue, spot_series
from ..venues.funding import FundingSettlement
from ..venues.margin import MarginAccount
from ..venues.perp import PerpMarket
from ..venues.spot import SpotMarket
from .base import Report, Strategy
from .registry import register

PERP_PRICE = SLOT["perp_price"]
DUST = 1e-9  # fraction of NAV below which a trade or transfer is not worth doing


@register
class Basis(Strategy):
    name = "basis"
    description = "Long spot, short perps across venues (delta neutral), earning funding"

    @classmethod
    def validate_config(cls, cfg: RunConfig) -> list[str]:
        problems = []
        if cfg.basis is None:
            problems.append("basis: required by strategy basis (e.g. basis: {asset: BTC})")
        if cfg.hedge_allocation is None:
            problems.append("hedge_allocation: required by strategy basis (e.g. {binance: 0.5, bybit: 0.5})")
        if cfg.share_class != "USDT":
            problems.append(f"share_class {cfg.share_class}: strategy basis runs in the USDT share class")
        if cfg.basis and cfg.hedge_allocation:
            for venue, w in cfg.hedge_allocation.items():
                im = getattr(cfg.venues, venue).initial_margin_rate
                if w > 0 and cfg.basis.margin_buffer < im:
                    problems.append(f"basis.margin_buffer {cfg.basis.margin_buffer:g} is below "
                                    f"venues.{venue}.initial_margin_rate {im:g}: the hedge could not be opened")
        return problems

    def __init__(self, cfg, env):
        super().__init__(cfg, env)
        b = cfg.basis
        self.asset = b.asset
        symbol = f"{b.asset}USDT"
        self.weights = [w for _, w in sorted(cfg.hedge_allocation.items()) if w > 0]
        venues = [v for v, w in sorted(cfg.hedge_allocation.items()) if w > 0]
        self.spot = SpotMarket(load_venue(env.dataset, cfg, b.spot_venue, symbol), b.asset)
        self.pricer.use(b.asset, spot_series(b.spot_venue, b.asset))
        self.perps = [PerpMarket(load_venue(env.dataset, cfg, v, symbol), b.asset) for v in venues]
        for pair in [self.spot.pair] + [p.pair for p in self.perps]:
            env.slippage.check(pair)
        self.margin_buffer = b.margin_buffer
        self.ratio_limit = b.margin_ratio_limit
        self.fixed_units = b.fixed_units
        self.max_initial_margin = max(p.venue.initial_margin_rate for p in self.perps)
        self.threshold = cfg.position_deviation_threshold
        self.rebalances: list[dict] = []

    def needs(self) -> list[Need]:
        return [n for p in self.perps for n in p.needs()]

    def bind(self, market: MarketData) -> list[PositionSpec]:
        for p in self.perps:
            p.bind(market)
        n = market.n_points
        ones = [1.0] * n
        self.price = self.pricer.price_usdt(self.asset).tolist()
        self.fx = self.pricer.price("USDT").tolist()  # USDT in share-class units
        fx_slot = VOID if self.pricer.is_unit("USDT") else SPOT_PRICE
        specs = [PositionSpec(self.spot.instrument, ones, ones, self.pricer.price(self.asset).tolist(),
                              index_slot=VOID, rate_slot=VOID, price_slot=SPOT_PRICE)]
        for p in self.perps:
            specs.append(PositionSpec(p.instrument, ones, p.mark, self.fx, index_slot=VOID, rate_slot=PERP_PRICE,
                                      price_slot=fx_slot))
            specs.append(PositionSpec(p.margin, ones, ones, self.fx, index_slot=VOID, rate_slot=VOID,
                                      price_slot=fx_slot))
        return specs

    def attach(self, ctx) -> None:
        super().attach(ctx)
        book = ctx.book
        self.qty = book.qty
        self.spot_pos = book.slot_of(self.spot.instrument.key)
        self.size_pos = [book.slot_of(p.instrument.key) for p in self.perps]
        self.cash_pos = [book.slot_of(p.margin.key) for p in self.perps]
        self.accounts = [MarginAccount(p, book, ctx.events, self.fx) for p in self.perps]
        self.funding = [FundingSettlement(p, book, ctx.n_points, self.fx) for p in self.perps]
        self.risk = RiskMonitor(self.cfg.risk, self.accounts, ctx.events, book,
                                [self.spot_pos, *self.size_pos], self.price)
        # spot trade cost rate used to size the hedge so the wallet is not overdrawn
        self.spot_cost = self.spot.venue.spot_taker_fee + self.env.slippage.rate(self.spot.pair, 0.0)
        self.nav_hint = 0.0

    def hooks(self):
        return [*self.funding, *self.accounts, self.risk]

    # --- decisions -----------------------------------------------------------------------------
    def on_tick(self, k: int) -> None:
        risk = self.risk
        if risk.override:
            self.rebalance(k, "risk_override", reduce=True)
            return
        if risk.worst_ratio >= self.ratio_limit:
            self.distribute_margin(k, keep=self.qty[self.ctx.wallet], reason="margin_ratio")
            if max(a.ratio(k) for a in self.accounts) >= self.ratio_limit:
                self.rebalance(k, "margin_ratio")
            return
        qty = self.qty
        delta = qty[self.spot_pos]
        for j in self.size_pos:
            delta += qty[j]
        bound = self.threshold * self.nav_hint * 0.5  # cheap pre-filter; the exact test uses NAV at k
        if abs(delta) * self.price[k] > bound or abs(qty[self.ctx.wallet]) > bound:
            nav = self.ctx.book.nav(k)
            limit = self.threshold * nav
            if abs(delta) * self.price[k] > limit or abs(qty[self.ctx.wallet]) > limit:
                self.rebalance(k, "deviation")

    def raise_cash(self, k: int, amount: float) -> None:
        self.rebalance(k, "withdrawal", keep=amount)

    # --- actions -------------------------------------------------------------------------------
    def target_units(self, k: int, equity: float) -> float:
        """Hedge size in base units for `equity`; a fixed size is capped so its margin meets initial margin."""
        equity = max(equity, 0.0)
        if self.fixed_units is not None:
            return min(self.fixed_units, equity / (self.price[k] * (1.0 + self.max_initial_margin + self.spot_cost)))
        return equity / (1.0 + self.margin_buffer + self.spot_cost) / self.price[k]

    def rebalance(self, k: int, reason: str, keep: float = 0.0, reduce: bool = False) -> None:
        """Trade spot and perps to the target for NAV - keep, then spread the margin."""
        qty, ex, fx = self.qty, self.ctx.executor, self.fx[k]
        nav = self.ctx.book.nav(k)
        before = qty[self.spot_pos]
        units = self.target_units(k, nav - keep)
        if reduce:
            units = min(units, before * (1.0 - self.cfg.risk.reduce_fraction))
        dust = DUST * max(nav, 1.0)
        price = self.price[k]
        if abs(units - before) * price > dust:
            ex.spot_trade(k, self.spot, self.spot_pos, units - before, price, fx)
        for perp, w, size_pos, cash_pos in zip(self.perps, self.weights, self.size_pos, self.cash_pos, strict=True):
            delta = -units * w - qty[size_pos]
            if abs(delta) * perp.mark[k] > dust:
                ex.perp_trade(k, perp, size_pos, cash_pos, delta, fx)
        self.distribute_margin(k, keep, reason)
        net = qty[self.spot_pos] + sum(qty[j] for j in self.size_pos)
        nav_after = self.ctx.book.nav(k)
        self.nav_hint = nav_after
        action = ("entry_full" if before == 0.0 and units > 0 else "exit_full" if units == 0.0 and before > 0
                  else "entry_partial" if units > before else "exit_partial" if units < before else "margin")
        record = {"k": k, "action": action, "reason": reason, "units_before": before, "units_after": units,
                  "net_delta": net, "net_delta_pct": net * price / nav_after if nav_after else 0.0}
        self.rebalances.append(record)
        self.ctx.events.add(k, "rebalance", f"{action} ({reason}): {self.asset} {before:.6f} -> {units:.6f}",
                            **{key: v for key, v in record.items() if key != "k"})

    def distribute_margin(self, k: int, keep: float, reason: str) -> None:
        """Spread wallet cash beyond `keep` plus all perp equity over the venues by weight."""
        qty, ex, fx = self.qty, self.ctx.executor, self.fx[k]
        wallet = self.ctx.wallet
        equities = [a.equity(k) for a in self.accounts]
        total = qty[wallet] - keep + sum(equities)
        fees = sum(p.venue.transfer_fee_usdt for p in self.perps)
        dust = max(DUST * abs(total), 1e-9)
        for perp, w, eq, cash_pos in zip(self.perps, self.weights, equities, self.cash_pos, strict=True):
            diff = (total - fees) * w - eq
            if diff < -dust:
                ex.transfer(k, cash_pos, wallet, -diff, perp.venue.transfer_fee_usdt, fx,
                            f"{perp.venue.name} -> wallet ({reason})")
        for perp, w, eq, cash_pos in zip(self.perps, self.weights, equities, self.cash_pos, strict=True):
            diff = (total - fees) * w - eq
            if diff > dust:
                ex.transfer(k, wallet, cash_pos, diff, perp.venue.transfer_fee_usdt, fx,
                            f"wallet -> {perp.venue.name} ({reason})")

    # --- reporting -----------------------------------------------------------------------------
    def report(self, quantities: np.ndarray, nav: np.ndarray) -> Report:
        price = np.asarray(self.price)
        net = quantities[self.spot_pos] + quantities[self.size_pos].sum(axis=0)
        cols = {f"net_delta:{self.asset}": net, f"net_delta_usdt:{self.asset}": net * price}
        max_ratio, funding = {}, {}
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
        liquidations = [event for a in self.accounts for event in a.liquidations]
        with np.errstate(divide="ignore", invalid="ignore"):
            pct = np.where(nav > 0, np.abs(net * price * np.asarray(self.fx)) / nav, 0.0)
        return Report(cols, {
            "funding_by_venue": funding,
            "rebalances": len(self.rebalances),
            "rebalances_by_action": {a: sum(r["action"] == a for r in self.rebalances)
                                     for a in sorted({r["action"] for r in self.rebalances})},
            "liquidations": {"count": len(liquidations), "loss": float(sum(event["loss"] for event in liquidations)),
                             "events": liquidations},
            "max_margin_ratio": max_ratio,
            "max_abs_net_delta_pct": float(pct.max()),
        })
