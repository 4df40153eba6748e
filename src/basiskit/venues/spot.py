"""Spot on a CEX: units of a base asset bought or sold for USDT at the hourly price plus slippage."""

from __future__ import annotations

from dataclasses import dataclass

from ..portfolio.instruments import Instrument
from .cex import CexVenue


@dataclass
class SpotMarket:
    venue: CexVenue
    asset: str

    def __post_init__(self) -> None:
        self.instrument = Instrument(self.venue.name, "BaseToken", self.asset, self.asset)
        self.pair = f"{self.asset}_USDT"
