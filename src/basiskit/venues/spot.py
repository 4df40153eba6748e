"""Spot on a CEX: units of a base asset bought or sold for USDT at the hourly price plus slippage."""

from __future__ import annotations

from dataclasses import dataclass

from ..data.market import Need
from ..portfolio.instruments import Instrument
from .cex import CexVenue, spot_series
from .costs import Liquidity


@dataclass
class SpotMarket:
    venue: CexVenue
    asset: str
    down: list[bool] | None = None  # hours the venue cannot be reached (stress scenarios)
    window: int = 24  # closed bars the liquidity measures read (costs.impact.window_hours)

    def __post_init__(self) -> None:
        self.instrument = Instrument(self.venue.name, "BaseToken", self.asset, self.asset)
        self.pair = f"{self.asset}_USDT"
        self.liquidity = Liquidity(spot_series(self.venue.name, self.asset), self.window)

    def needs(self) -> list[Need]:
        return self.liquidity.needs()

    def bind(self, market) -> None:
        self.liquidity.bind(market)
        down = market.outages.get(self.venue.name)
        self.down = None if down is None else down.tolist()

    def is_down(self, k: int) -> bool:
        return self.down is not None and self.down[k]
