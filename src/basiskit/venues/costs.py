"""Gas: gas units per operation x gas price (gwei) x ETH price, in share-class units."""

from __future__ import annotations

import numpy as np

from ..config.models import CostsConfig
from ..data.market import MarketData, Need
from ..portfolio.currency import ShareClassPricer

GWEI = 1e-9


class GasModel:
    """Hourly cost of one gas unit in share-class units; zero everywhere when costs are off."""

    def __init__(self, cfg: CostsConfig, pricer: ShareClassPricer):
        self.enabled = cfg.enabled
        self.units = cfg.gas_units
        self.gas_price = Need(cfg.gas_series, cfg.gas_column, "last")
        self.pricer = pricer
        self.per_unit: list[float] = []

    def needs(self) -> list[Need]:
        return [self.gas_price] if self.enabled else []

    def bind(self, market: MarketData) -> None:
        if not self.enabled:
            self.per_unit = [0.0] * market.n_points
            return
        # cost(ETH) = gas units * gas price (gwei) * 1e-9 ETH/gwei (Ethereum yellow paper: fee = gasUsed * gasPrice)
        per_unit = market.array(self.gas_price) * GWEI * self.pricer.price("ETH")
        self.per_unit = np.asarray(per_unit, dtype=np.float64).tolist()

    def cost(self, units: int, k: int) -> float:
        return units * self.per_unit[k]
