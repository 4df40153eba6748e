"""Funding settlement: at each of the venue's funding timestamps,
payment = -size x mark x rate (positive rate: longs pay shorts; Binance/Bybit/OKX funding docs),
credited to the venue's margin account and attributed to `funding`."""

from __future__ import annotations

from ..portfolio.attribution import SLOT
from ..portfolio.book import Book
from .perp import PerpMarket

FUNDING = SLOT["funding"]


class FundingSettlement:
    """A per-tick hook for one perp market; also keeps each venue's funding per tick."""

    def __init__(self, perp: PerpMarket, book: Book, n_points: int, usdt_in_ccy: list[float]):
        self.perp = perp
        self.book = book
        self.size = book.slot_of(perp.instrument.key)
        self.cash = book.slot_of(perp.margin.key)
        self.usdt_in_ccy = usdt_in_ccy
        self.per_tick = [0.0] * n_points

    def __call__(self, k: int) -> None:
        rate = self.perp.funding_rate[k]
        if rate == 0.0:
            return
        size = self.book.qty[self.size]
        if size == 0.0:
            return
        payment = -size * self.perp.mark[k] * rate  # USDT
        self.book.qty[self.cash] += payment
        value = payment * self.usdt_in_ccy[k]
        self.book.attribution[FUNDING][k] += value
        self.per_tick[k] = value
