"""Typed instruments; their key `venue:kind:symbol` names them in tables and lookups set up before the loop."""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("BaseToken", "aToken", "debtToken", "Perp", "Claim")


@dataclass(frozen=True)
class Instrument:
    venue: str
    kind: str
    symbol: str
    asset: str  # the asset whose price values one unit (e.g. aUSDT -> USDT, aWETH -> ETH)

    def __post_init__(self) -> None:
        if self.kind not in KINDS or not self.venue or not self.symbol or ":" in self.venue + self.symbol:
            raise ValueError(f"instrument {self.venue}:{self.kind}:{self.symbol}: kind must be one of {KINDS}")

    @property
    def key(self) -> str:
        return f"{self.venue}:{self.kind}:{self.symbol}"

