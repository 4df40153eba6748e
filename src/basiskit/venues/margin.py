"""Perp margin: equity, margin ratio and the venue's liquidation of an account.

margin ratio = maintenance margin / account equity, maintenance margin = mmr x |size| x mark,
equity = margin cash + size x mark (DESIGN §5; Binance/Bybit "margin ratio"). At ratio >= 1 the
venue closes the position at mark and charges its liquidation fee.
"""

from __future__ import annotations

from ..engine.events import EventLog
from ..portfolio.attribution import LIQUIDATION_LOSS, SLOT
from ..portfolio.book import Book
from .perp import PerpMarket

PERP_PRICE = SLOT["perp_price"]


class MarginAccount:
    """A venue's perp margin account as the book holds it; evaluates and enforces margin."""

    def __init__(self, perp: PerpMarket, book: Book, events: EventLog, usdt_in_ccy: list[float]):
        self.perp = perp
        self.book = book
        self.events = events
        self.size = book.slot_of(perp.instrument.key)
        self.cash = book.slot_of(perp.margin.key)
        self.mmr = perp.venue.maintenance_margin_rate
        self.usdt_in_ccy = usdt_in_ccy
        self.liquidations: list[dict] = []

    def equity(self, k: int) -> float:
        """USDT equity: cash + size x mark."""
        qty = self.book.qty
        return qty[self.cash] + qty[self.size] * self.perp.mark[k]

    def free_margin(self, k: int) -> float:
        """USDT that may leave the account: equity less the initial margin of the open position
        (Binance/Bybit: available balance = wallet balance + unrealised PnL - initial margin)."""
        qty = self.book.qty
        size = qty[self.size]
        mark = self.perp.mark[k]
        return max(qty[self.cash] + size * mark - self.perp.venue.initial_margin_rate * abs(size) * mark, 0.0)

    def ratio(self, k: int) -> float:
        qty = self.book.qty
        size = qty[self.size]
        if size == 0.0:
            return 0.0
        mark = self.perp.mark[k]
        equity = qty[self.cash] + size * mark
        maintenance = self.mmr * abs(size) * mark
        return maintenance / equity if equity > 0.0 else float("inf")

    def __call__(self, k: int) -> None:
        """Liquidation check, run every tick after accrual and funding."""
        if self.book.qty[self.size] != 0.0 and self.ratio(k) >= 1.0:
            self.liquidate(k)

    def liquidate(self, k: int) -> None:
        qty = self.book.qty
        size = qty[self.size]
        mark = self.perp.mark[k]
        equity = self.equity(k)
        ratio = self.ratio(k)
        self.perp.on_fill(size, -size, mark)
        qty[self.cash] += size * mark  # closed at mark: value-neutral
        qty[self.size] = 0.0
        fee = min(self.perp.venue.liquidation_fee_rate * abs(size) * mark, max(equity, 0.0))
        qty[self.cash] -= fee
        fx = self.usdt_in_ccy[k]
        self.book.attribution[LIQUIDATION_LOSS][k] -= fee * fx
        written_off = 0.0
        if equity < 0.0:  # bankrupt: the venue's insurance fund absorbs the negative equity
            written_off = -equity
            qty[self.cash] = 0.0
            self.book.attribution[PERP_PRICE][k] += written_off * fx
        record = {"venue": self.perp.venue.name, "symbol": self.perp.symbol, "size": size, "mark": mark,
                  "equity_before": equity, "margin_ratio": ratio, "fee": fee, "written_off": written_off,
                  "loss": fee}
        self.liquidations.append({"k": k, **record})
        self.events.add(k, "liquidation", f"{self.perp.venue.name} {self.perp.symbol} size {size:.6f} liquidated "
                        f"at {mark:.2f} (margin ratio {ratio:.3f}), fee {fee:.2f} USDT", **record)
