"""Spot on a CEX: units of a base asset bought or sold for USDT at the hourly price plus slippage."""

from __future__ import annotations

from dataclasses import dataclass

from ..portfolio.instruments import Instrument
from .cex import CexVenue


@dataclass
class SpotMarket:
    venue: CexVenue
    asset: str
    down: list[bool] | None = None  # hours the venue cannot be reached (stress scenarios)

    def __post_init__(self) -> None:
        self.instrument = Instrument(self.venue.name, "BaseToken", self.asset, self.asset)
        self.pair = f"{self.asset}_USDT"

    def bind(self, market) -> None:
        down = market.outages.get(self.venue.name)
        self.down = None if down is None else down.tolist()

    def is_down(self, k: int) -> bool:
        return self.down is not None and self.down[k]
