"""EtherFi rewards: EIGEN distributions and ETHFI top-ups to weETH holders, credited on their dates.

amount = per_eETH x weETH units x weETH/eETH rate (dataset rewards/ notes; eETH is 1:1 with ETH, so
the weETH/eETH rate is the LST rate). Valued at market price; attribution staking_rewards.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..data.market import MarketData, Need
from ..errors import RunError
from ..portfolio.instruments import Instrument

TOKENS = {  # token -> (rewards series, column, price series (in WETH))
    "EIGEN": ("rewards/etherfi_eigen_distributions", "eigen_per_eeth", "spot/uniswapv3_eigenweth_1h"),
    "ETHFI": ("rewards/etherfi_ethfi_topups", "ethfi_per_eeth", "spot/uniswapv3_ethfiweth_1h"),
}


@dataclass
class RewardToken:
    symbol: str
    per_unit: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        series, column, self.price_series = TOKENS[self.symbol]
        self.instrument = Instrument("wallet", "BaseToken", self.symbol, self.symbol)
        self.need = Need(series, column, "events", partial=True)
        self.pair_eth = f"{self.symbol}_ETH"

    def bind(self, market: MarketData) -> None:
        self.per_unit = market.values(self.need)


class RewardsCredit:
    """Per-tick hook: credits reward tokens to the holder and attributes their value."""

    def __init__(self, tokens: list[RewardToken], book, positions: list[int], prices: list[list[float]],
                 lst_units, rate: list[float], slot: int, on_credit, grid):
        self.tokens = tokens
        self.book = book
        self.positions = positions
        self.prices = prices
        self.lst_units = lst_units
        self.rate = rate
        self.slot = slot
        self.on_credit = on_credit
        self.grid = grid
        self.credited = {t.symbol: [0.0, 0.0] for t in tokens}  # units, value at credit

    def __call__(self, k: int) -> None:
        for token, pos, price in zip(self.tokens, self.positions, self.prices, strict=True):
            per_unit = token.per_unit[k]
            if per_unit == 0.0:
                continue
            units = per_unit * self.lst_units(k) * self.rate[k]
            if units == 0.0:
                continue
            if price[k] <= 0.0:
                from ..data.timeutil import iso

                raise RunError(f"{token.symbol} reward credited at {iso(self.grid[k])} but its price series "
                               f"{token.price_series} has no value there; use a window inside its coverage.")
            self.book.qty[pos] += units
            value = units * price[k]
            self.book.attribution[self.slot][k] += value
            self.credited[token.symbol][0] += units
            self.credited[token.symbol][1] += value
            self.on_credit(k, token, pos)
