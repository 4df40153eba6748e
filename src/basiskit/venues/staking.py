"""Liquid staking tokens (EtherFi weETH, Lido wstETH): the exchange rate to ETH as Aave's oracle sees
it (LST oracle price / WETH oracle price of the last daily snapshot: the oracle's rate moves in steps
when the protocol reports, and a later snapshot is never read early) and
the DEX market rate a swap gets (the depeg view)."""

from __future__ import annotations

from dataclasses import dataclass

from ..data.market import MarketData, Need
from ..portfolio.instruments import Instrument

# LST -> (protocol, Aave reserve series, DEX market-rate series, slippage pair ETH->LST)
LSTS = {
    "weETH": ("etherfi", "aave/weeth_reserve_1d", "staking/weeth_eth_dex_1h", "ETH_weETH"),
    "wstETH": ("lido", "aave/wsteth_reserve_1d", "staking/wsteth_eth_dex_1h", "ETH_wstETH"),
}
WETH_RESERVE = "aave/weth_reserve_1d"


@dataclass
class LiquidStaking:
    """`needs_market_rate`: swaps trade at the DEX rate, so it must cover the window; otherwise it is
    read where the dataset has it (partial coverage) for the depeg view only."""

    symbol: str
    needs_market_rate: bool = False
    depeg_view: bool = False

    def __post_init__(self) -> None:
        self.protocol, reserve, dex, self.pair = LSTS[self.symbol]
        self.instrument = Instrument(self.protocol, "BaseToken", self.symbol, self.symbol)
        # rate = LST oracle price / WETH oracle price on the same snapshot (dataset README)
        self.rate_need = Need(reserve, "oracle_price_usd", "last", ratio_of=WETH_RESERVE)
        self.market_need = Need(dex, "market_rate", "last", partial=not self.needs_market_rate)
        self.rate: list[float] = []
        self.market_rate: list[float] = []
        self.market_coverage: tuple[int, int] | None = None
        self.claim = Instrument(self.protocol, "Claim", self.symbol, "ETH")  # a queued withdrawal: ETH owed

    def needs(self) -> list[Need]:
        with_market = self.needs_market_rate or self.depeg_view
        return [self.rate_need] + ([self.market_need] if with_market else [])

    def bind(self, market: MarketData) -> None:
        self.rate = market.values(self.rate_need)
        if self.needs_market_rate or self.depeg_view:
            self.market_rate = market.values(self.market_need)
            self.market_coverage = market.partial_coverage.get(self.market_need.series, (market.start, market.end))

    def dex_rate(self, k: int) -> float | None:
        """The DEX price of one LST in ETH at k, or None where the data has none (outside its coverage)."""
        if not self.market_rate:
            return None
        rate = self.market_rate[k]
        return rate if rate > 0.0 else None
