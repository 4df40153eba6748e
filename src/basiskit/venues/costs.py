"""Gas: gas units per operation x gas price (gwei) x ETH price, in share-class units."""

from __future__ import annotations

import math
from functools import partial

import numpy as np

from ..config.models import CostsConfig, ImpactConfig
from ..data.market import MarketData, Need
from ..errors import DataError
from ..portfolio.currency import ShareClassPricer

GWEI = 1e-9


RESERVE_WINDOW_HOURS = 30 * 24  # the gas reserve prices a full de-lever at the 99th percentile of the last 30 days


class GasModel:
    """Hourly cost of one gas unit in share-class units; zero everywhere when costs are off. And the gas reserve:
    ETH the wallet keeps for a full de-lever at the 30-day 99th percentile gas price, never less than
    live.gas_reserve_eth (a backtest, a paper session and a live plan alike; zero when costs are off)."""

    def __init__(self, cfg: CostsConfig, pricer: ShareClassPricer, on_chain: bool = True,
                 reserve_floor_eth: float = 0.0):
        self.enabled = cfg.enabled and on_chain  # strategies without on-chain operations need no gas data
        self.units = cfg.gas_units
        self.gas_price = Need(cfg.gas_series, cfg.gas_column, "last")
        self.reserve_price = Need(cfg.gas_series, cfg.gas_column, "quantile", window=RESERVE_WINDOW_HOURS)
        self.reserve_floor_eth = reserve_floor_eth
        self.pricer = pricer
        if self.enabled:
            pricer.use("ETH")
        self.per_unit: list[float] = []
        self.reserve_gwei: list[float] = []  # the 30-day 99th percentile gas price at each point

    def needs(self) -> list[Need]:
        return [self.gas_price, self.reserve_price] if self.enabled else []

    def bind(self, market: MarketData) -> None:
        if not self.enabled:
            self.per_unit = [0.0] * market.n_points
            self.reserve_gwei = self.per_unit
            return
        self.per_unit = market.derived(partial(self._per_unit, market))
        self.reserve_gwei = market.values(self.reserve_price)

    def _per_unit(self, market: MarketData) -> np.ndarray:
        # cost(ETH) = gas units * gas price (gwei) * 1e-9 ETH/gwei (Ethereum yellow paper: fee = gasUsed * gasPrice)
        return np.asarray(market.array(self.gas_price) * GWEI * self.pricer.price("ETH"), dtype=np.float64)

    def cost(self, units: int, k: int) -> float:
        return units * self.per_unit[k]

    def reserve_eth(self, market: MarketData, units: int) -> list[float]:
        """Per hour, the ETH to keep for `units` of gas (a full de-lever) at the 30-day 99th percentile price, at
        least the floor (zeros when costs are off): a list for the loop, filled hour by hour by a live market."""
        if not self.enabled:
            return [0.0] * market.n_points
        # fee = gasUsed * gasPrice (yellow paper), at the p99 price
        return market.derived(lambda: np.maximum(self.reserve_floor_eth,
                                                 units * market.array(self.reserve_price) * GWEI))


class Liquidity:
    """A market's liquidity for the loop, from bars closed before each hour (data/liquidity.py): the USD
    volume of the last closed hour (participation), the mean hourly USD volume and the hourly volatility
    over the impact window (square-root impact)."""

    def __init__(self, series: str, window: int, partial: bool = False):
        self.series = series  # `partial`: the market's bars may cover only part of the window (reward tokens)
        self.last_need = Need(series, "volume", "closed_volume_usd", window=window, partial=partial)
        self.volume_need = Need(series, "volume", "mean_volume_usd", window=window, partial=partial)
        self.sigma_need = Need(series, "close", "sigma", window=window, partial=partial)
        self.last_volume: list[float] = []
        self.volume: list[float] = []
        self.sigma: list[float] = []
        self.parent_usd = 0.0  # the whole order a paced build is slicing (impact is that order's)

    def needs(self) -> list[Need]:
        return [self.last_need, self.volume_need, self.sigma_need]

    def bind(self, market: MarketData) -> None:
        self.last_volume = market.values(self.last_need)
        self.volume = market.values(self.volume_need)
        self.sigma = market.values(self.sigma_need)

    def participation(self, notional_usd: float, k: int) -> float:
        """The order's share of the last closed hour's volume (NaN when that volume is unknown or zero)."""
        v = self.last_volume[k]
        return notional_usd / v if v > 0.0 else math.nan


class SlippageModel:
    """Slippage in bps by pair: config overrides first, else the dataset's table by trade size; on markets
    with volume data, at least the square-root market impact of the whole order (costs.impact).

    Table buckets (params/execution_costs_bps.json): the smallest bucket >= the trade's USD notional,
    the largest bucket for bigger trades.
    """

    def __init__(self, table: dict, overrides: dict[str, float], enabled: bool,
                 impact: ImpactConfig = ImpactConfig()):
        self.enabled = enabled
        self.overrides = overrides
        self.buckets = sorted((v, k) for k, v in table["size_buckets_usd"].items())
        self.table = table["slippage_bps"]
        self.impact = impact.coefficient if impact.enabled else 0.0

    def trade_rate(self, pair: str, notional_usd: float, liquidity: Liquidity | None, k: int) -> float:
        """Slippage of a trade as a fraction of notional: the bucket rate, or the market impact of the whole
        order when larger; cost = Y x sigma x sqrt(Q / V) (square-root law, Tóth et al. 2011). Without volume
        or volatility at k (no trade in the last closed hour, a hole, no bars before the window), the bucket
        rate."""
        bucket = self.rate(pair, notional_usd)
        if liquidity is None or not self.enabled or self.impact == 0.0:
            return bucket
        volume, sigma = liquidity.volume[k], liquidity.sigma[k]
        if not (volume > 0.0 and sigma >= 0.0 and liquidity.last_volume[k] > 0.0):
            return bucket
        order = max(notional_usd, liquidity.parent_usd)
        # at most the whole notional: a sale can lose what it sells, no more (a pool pays out something, >= 0)
        return max(bucket, min(self.impact * sigma * math.sqrt(order / volume), 1.0))

    def check(self, pair: str) -> None:
        if pair not in self.overrides and pair not in self.table:
            raise DataError(
                f"no slippage for pair {pair!r} in params/execution_costs_bps.json (pairs: "
                f"{', '.join(sorted(self.table))}); set costs.slippage_bps.{pair} in the config."
            )

    def rate(self, pair: str, notional_usd: float) -> float:
        """Slippage as a fraction of notional."""
        if not self.enabled:
            return 0.0
        if pair in self.overrides:
            return self.overrides[pair] * 1e-4
        row = self.table[pair]
        for size, bucket in self.buckets:
            if notional_usd <= size:
                return row[bucket] * 1e-4
        return row[self.buckets[-1][1]] * 1e-4


def slippage_from_dataset(dataset, cfg: CostsConfig) -> SlippageModel:
    """The dataset's slippage table when it has one; otherwise only config overrides apply."""
    name = "params/execution_costs_bps"
    table = dataset.params(name) if name in dataset.params_files else {"size_buckets_usd": {}, "slippage_bps": {}}
    return SlippageModel(table, cfg.slippage_bps, cfg.enabled, cfg.impact)
