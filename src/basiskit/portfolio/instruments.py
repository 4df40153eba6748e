"""Instrument keys `venue:kind:symbol`, parsed once into a typed Instrument."""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("BaseToken", "aToken", "debtToken", "Perp")


@dataclass(frozen=True)
class Instrument:
    venue: str
    kind: str
    symbol: str
    asset: str  # the asset whose price values one unit (e.g. aUSDT -> USDT, aWETH -> ETH)

    @property
    def key(self) -> str:
        return f"{self.venue}:{self.kind}:{self.symbol}"


def parse_key(key: str, asset: str) -> Instrument:
    parts = key.split(":")
    if len(parts) != 3 or not all(parts) or parts[1] not in KINDS:
        raise ValueError(f"instrument key {key!r} must be venue:kind:symbol with kind in {KINDS}")
    return Instrument(parts[0], parts[1], parts[2], asset)
