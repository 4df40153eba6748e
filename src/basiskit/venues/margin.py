"""Perp margin: equity, margin ratio and the venue's liquidation of an account.

margin ratio = maintenance margin / account equity, maintenance margin = mmr x |size| x mark,
equity = margin cash + size x mark (ARCHITECTURE.md §5; Binance/Bybit "margin ratio"). At ratio >= 1 the
venue closes the position at mark and charges its liquidation fee.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..portfolio.attribution import LIQUIDATION_LOSS, SLOT
from ..portfolio.book import Book
from .perp import PerpMarket

if TYPE_CHECKING:
    from ..execution.events import EventLog  # (the run's log: handed in, never imported at run time)

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
        self.intrabar = perp.venue.liquidation_check == "adverse_extreme"
        self.liquidations: list[dict] = []
        self.seen_bar = -1  # the last hour whose bar the intrabar check saw

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

    def ratio_at(self, price: float) -> float:
        """The margin ratio were the mark at `price`."""
        qty = self.book.qty
        size = qty[self.size]
        equity = qty[self.cash] + size * price
        return self.mmr * abs(size) * price / equity if equity > 0.0 else float("inf")

    def liquidation_price(self) -> float:
        """The mark at which equity meets the maintenance margin: cash + s p = mmr |s| p
        (Binance/Bybit: liquidation when margin balance <= maintenance margin)."""
        qty = self.book.qty
        size, cash = qty[self.size], qty[self.cash]
        return cash / (abs(size) * (1.0 + self.mmr)) if size < 0.0 else -cash / (size * (1.0 - self.mmr))

    def __call__(self, k: int) -> None:
        """Liquidation check, run every tick after accrual and funding: at the mark, or (adverse_extreme)
        at the high (short) or low (long) of the bar that just closed, closing at the liquidation price
        the price crossed within that hour. The bar is seen once: what the strategy opens at its close did
        not live through it, so the check after the strategy acts is at the mark."""
        size = self.book.qty[self.size]
        first, self.seen_bar = self.seen_bar != k, k
        if size == 0.0:
            return
        if self.intrabar and first:
            perp = self.perp
            extreme = perp.high[k] if size < 0.0 else perp.low[k]
            if self.ratio_at(extreme) >= 1.0:
                # within a bar the price passed the liquidation price on its way to the extreme; across a
                # hole in the bars (the extreme is just the mark) it gapped: closed at the mark
                gapped = extreme == perp.mark[k]
                self.liquidate(k, perp.mark[k] if gapped else self.liquidation_price(), extreme)
        elif self.ratio(k) >= 1.0:
            self.liquidate(k, self.perp.mark[k], self.perp.mark[k])

    def liquidate(self, k: int, price: float, seen: float) -> None:
        """Close the position at `price` (the venue's liquidation at `seen`, the price checked); the fee is
        liquidation_fee_rate x notional, at most the equity left; negative equity is written off."""
        qty = self.book.qty
        size = qty[self.size]
        mark = self.perp.mark[k]
        fx = self.usdt_in_ccy[k]
        ratio = self.ratio_at(seen)
        equity = qty[self.cash] + size * price
        self.perp.on_fill(size, -size, price)
        qty[self.cash] += size * price
        qty[self.size] = 0.0
        # the book valued the contract at the mark: closing elsewhere is price PnL
        self.book.attribution[PERP_PRICE][k] += size * (price - mark) * fx
        fee = min(self.perp.venue.liquidation_fee_rate * abs(size) * price, max(equity, 0.0))
        qty[self.cash] -= fee
        self.book.attribution[LIQUIDATION_LOSS][k] -= fee * fx
        written_off = 0.0
        if equity < 0.0:  # bankrupt: the venue's insurance fund absorbs the negative equity
            written_off = -equity
            qty[self.cash] = 0.0
            self.book.attribution[PERP_PRICE][k] += written_off * fx
        record = {"venue": self.perp.venue.name, "symbol": self.perp.symbol, "size": size, "mark": mark,
                  "price": price, "checked_at": seen, "check": "adverse_extreme" if self.intrabar else "open",
                  "equity_before": equity, "margin_ratio": ratio, "fee": fee, "written_off": written_off,
                  "loss": fee}
        self.liquidations.append({"k": k, **record})
        self.events.add(k, "liquidation", f"{self.perp.venue.name} {self.perp.symbol} size {size:.6f} liquidated "
                        f"at {price:.2f} (margin ratio {ratio:.3f} at {seen:.2f}), fee {fee:.2f} USDT", **record)
