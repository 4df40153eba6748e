"""Linear USDT-margined perpetuals: signed size in base units, entry price, mark from the venue's
own perp bars, unrealised PnL = size x (mark - entry), realised on reduce.

In the book a perp is two positions: the contract (size, valued at mark) and the venue's USDT
margin account (cash). Opening `d` contracts at price p moves cash by -d x p, so
cash + size x mark = wallet balance + unrealised PnL: the account's equity.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..data.market import MarketData
from ..portfolio.instruments import Instrument
from .cex import CexVenue, MarkFallbacks, extreme_need, funding_need, perp_mark_need, perp_series
from .costs import Liquidity


@dataclass
class PerpMarket:
    venue: CexVenue
    asset: str
    entry_price: float = 0.0
    realized_pnl: float = 0.0
    mark: list[float] = field(default_factory=list)
    funding_rate: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)
    low: list[float] = field(default_factory=list)
    down: list[bool] | None = None
    fallbacks: MarkFallbacks = field(default_factory=MarkFallbacks)
    window: int = 24  # closed bars the liquidity measures read (costs.impact.window_hours)

    def __post_init__(self) -> None:
        self.symbol = f"{self.asset}USDT"
        self.instrument = Instrument(self.venue.name, "Perp", self.symbol, "USDT")
        self.margin = Instrument(self.venue.name, "BaseToken", "USDT", "USDT")
        self.pair = f"{self.symbol}-PERP"
        self.mark_need = perp_mark_need(self.venue.name, self.asset, self.fallbacks)
        self.funding_need = funding_need(self.venue.name, self.asset)
        self.high_need = extreme_need(self.venue.name, self.asset, "high", self.fallbacks)
        self.low_need = extreme_need(self.venue.name, self.asset, "low", self.fallbacks)
        self.liquidity = Liquidity(perp_series(self.venue.name, self.asset), self.window)

    def needs(self):
        return [self.mark_need, self.funding_need, self.high_need, self.low_need, *self.liquidity.needs()]

    def bind(self, market: MarketData) -> None:
        self.liquidity.bind(market)
        self.mark = market.values(self.mark_need)
        self.funding_rate = market.values(self.funding_need)
        self.high = market.values(self.high_need)  # of the bar that closed at t: the intrabar extremes
        self.low = market.values(self.low_need)
        self.mark_source = market.mark_source(self.mark_need)  # None: no fallbacks (every hour its own)
        down = market.outages.get(self.venue.name)
        self.down = None if down is None else down.tolist()  # hours the venue cannot be reached (stress)

    def is_down(self, k: int) -> bool:
        return self.down is not None and self.down[k]

    def on_fill(self, size_before: float, delta: float, price: float) -> None:
        """Track entry price (size-weighted on increase) and realised PnL on reduce."""
        size_after = size_before + delta
        if size_before == 0.0 or (size_before > 0) == (delta > 0):
            self.entry_price = (size_before * self.entry_price + delta * price) / size_after
            return
        closed = min(abs(delta), abs(size_before)) * (1.0 if size_before > 0 else -1.0)
        # realised PnL = closed size x (exit price - entry price) (linear contract)
        self.realized_pnl += closed * (price - self.entry_price)
        if size_after == 0.0:
            self.entry_price = 0.0
        elif (size_after > 0) != (size_before > 0):  # flipped: the remainder opens at the fill price
            self.entry_price = price
