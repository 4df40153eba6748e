"""The benchmark a run is judged against (config key `benchmark`): a yield the share class could have had
without the strategy, as an APY over the run's window."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..data.market import MarketData, Need

DEFAULT = {"USDT": "aave_usdt_supply", "ETH": "etherfi_eeth_staking"}


@dataclass(frozen=True)
class Benchmark:
    """`index`: an accrual index (Aave supply: its growth is the yield); else a daily published APY series."""

    name: str
    need: Need
    index: bool
    about: str

    def apy(self, market: MarketData) -> float | None:
        """Annualised over the window: the index's growth ((end/start)^(year/span) - 1), or the geometric mean
        of the published APYs over the hours the series covers (exp(mean(log(1 + apy))) - 1); None when the
        series does not cover the window."""
        grid = market.grid
        values = market.array(self.need)
        if self.index:
            years = (grid[-1] - grid[0]) / (365 * 86400)
            return float((values[-1] / values[0]) ** (1.0 / years) - 1.0) if years > 0 else None
        lo, hi = market.partial_coverage.get(self.need.series, (grid[0], grid[-1]))
        inside = values[(grid >= lo) & (grid <= hi)]
        if inside.size == 0 or (hi - lo) < 0.9 * (grid[-1] - grid[0]):  # most of the window, or nothing
            return None
        return float(math.expm1(np.mean(np.log1p(inside))))


def _supply(series: str) -> Need:
    return Need(series, "liquidity_index", "linear_accrual", rate_column="liquidity_rate")


BENCHMARKS = {
    "aave_usdt_supply": Benchmark("aave_usdt_supply", _supply("aave/usdt_reserve_1d"), True,
                                  "USDT supplied to Aave v3 (its liquidity index)"),
    "aave_weth_supply": Benchmark("aave_weth_supply", _supply("aave/weth_reserve_1d"), True,
                                  "WETH supplied to Aave v3 (its liquidity index)"),
    "etherfi_eeth_staking": Benchmark("etherfi_eeth_staking", Need("benchmarks/etherfi_eeth_apy_1d", "apy", "last",
                                                                   partial=True), False,
                                      "EtherFi eETH staking APY as published"),
    "ethena_susde": Benchmark("ethena_susde", Need("benchmarks/ethena_susde_apy_1d", "apy", "last", partial=True),
                              False, "Ethena sUSDe staking APY"),
}


def benchmark_of(cfg, dataset) -> Benchmark | None:
    """The run's benchmark (its config's, else the share class's default) where the dataset holds its series."""
    chosen = BENCHMARKS[cfg.benchmark or DEFAULT[cfg.share_class]]
    return chosen if chosen.need.series in dataset.meta else None
