"""EtherFi rewards: EIGEN distributions and ETHFI top-ups to weETH holders, credited on their dates.

amount = per_eETH x weETH units held over the period x weETH/eETH rate (dataset rewards/ notes: amounts
are per eETH held over [period_start, period_end]; eETH is 1:1 with ETH, so the weETH/eETH rate is the
LST rate). Units held over the period = their hourly average over the whole period, zero before the
run. Valued at market price; attribution staking_rewards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..data.market import MarketData, Need
from ..errors import RunError
from ..portfolio.instruments import Instrument
from .costs import Liquidity

HOUR = 3600
DAY = 24 * HOUR

TOKENS = {  # token -> (rewards series, column, price series (in WETH))
    "EIGEN": ("rewards/etherfi_eigen_distributions", "eigen_per_eeth", "spot/uniswapv3_eigenweth_1h"),
    "ETHFI": ("rewards/etherfi_ethfi_topups", "ethfi_per_eeth", "spot/uniswapv3_ethfiweth_1h"),
}


@dataclass
class RewardToken:
    symbol: str
    per_unit: list[float] = field(default_factory=list)
    window: int = 24  # closed bars the pool's liquidity measures read (costs.impact.window_hours)

    def __post_init__(self) -> None:
        series, column, self.price_series = TOKENS[self.symbol]
        self.instrument = Instrument("wallet", "BaseToken", self.symbol, self.symbol)
        self.need = Need(series, column, "events", partial=True)
        self.start_need = Need(series, "period_start", "events", partial=True)
        self.end_need = Need(series, "period_end", "events", partial=True)
        self.liquidity = Liquidity(self.price_series, self.window, partial=True)  # the Uniswap pool (USD volume)

    def needs(self) -> list[Need]:
        return [self.need, self.start_need, self.end_need, *self.liquidity.needs()]

    def bind(self, market: MarketData) -> None:
        self.liquidity.bind(market)
        self.per_unit = market.values(self.need)
        self.period_start = market.values(self.start_need)
        self.period_end = market.values(self.end_need)


class RewardsCredit:
    """Per-tick hook: credits reward tokens to the holder and attributes their value."""

    def __init__(self, tokens: list[RewardToken], book, positions: list[int], prices: list[list[float]],
                 units_at, rate: list[float], slot: int, on_credit, grid):
        self.tokens = tokens
        self.book = book
        self.positions = positions
        self.prices = prices
        self.units_at = units_at  # units_at(history, t): LST units held after tick t
        self.rate = rate
        self.slot = slot
        self.on_credit = on_credit
        self.grid = grid
        self.credited = {t.symbol: [0.0, 0.0] for t in tokens}  # units, value at credit
        self.each_hour: Callable[[int], None] | None = None  # a sale under way: its hourly slice, after the credits
        self.wake_at = 0  # ... from this hour on (a sale waiting for volume knows when it can next act)

    def held_over_period(self, k: int, token: RewardToken) -> float:
        """Average LST units held over [period_start, period_end + 1 day): hours before the run count as 0."""
        start, end = token.period_start[k], token.period_end[k] + DAY
        t0 = self.grid[0]
        first = max(int((start - t0) // HOUR), 0)
        last = min(int((end - t0) // HOUR), k)  # holdings through the hour before the period ends
        hours = (end - start) / HOUR
        if hours <= 0 or last <= first:
            return 0.0
        history = self.book.history
        return sum(self.units_at(history, t) for t in range(first, last)) / hours

    def __call__(self, k: int) -> None:
        for token, pos, price in zip(self.tokens, self.positions, self.prices, strict=True):
            per_unit = token.per_unit[k]
            if per_unit == 0.0:
                continue
            units = per_unit * self.held_over_period(k, token) * self.rate[k]
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
        each_hour = self.each_hour
        if each_hour is not None and k >= self.wake_at:
            each_hour(k)
