"""Aave v3 supply: balances held scaled by the reserve's liquidityIndex, exactly as aTokens are."""

from __future__ import annotations

from dataclasses import dataclass

from ..data.market import MarketData, Need
from ..portfolio.instruments import Instrument

# Reserve symbol -> (dataset series, asset that prices one token).
RESERVES = {
    "USDT": ("aave/usdt_reserve_1d", "USDT"),
    "WETH": ("aave/weth_reserve_1d", "ETH"),
}


@dataclass
class AaveReserve:
    """One Aave v3 reserve as seen by a run: its aToken instrument and hourly liquidity index."""

    symbol: str

    def __post_init__(self) -> None:
        self.series, self.asset = RESERVES[self.symbol]
        self.atoken = Instrument("aave_v3", "aToken", f"a{self.symbol}", self.asset)
        self.liquidity_index_need = Need(self.series, "liquidity_index", "geometric")
        self.liquidity_index: list[float] = []

    def needs(self) -> list[Need]:
        return [self.liquidity_index_need]

    def bind(self, market: MarketData) -> None:
        self.liquidity_index = market.values(self.liquidity_index_need)

    def scaled_amount(self, amount: float, k: int) -> float:
        """Scaled balance minted or burned for `amount` tokens at point k.

        scaled = amount / liquidityIndex (Aave v3 docs, AToken: balanceOf = scaledBalance * index).
        """
        return amount / self.liquidity_index[k]

    def balance(self, scaled: float, k: int) -> float:
        """Token balance of a scaled balance at point k: scaled * liquidityIndex (Aave v3 AToken)."""
        return scaled * self.liquidity_index[k]
