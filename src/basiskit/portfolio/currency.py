"""Share-class valuation: every asset's hourly price in share-class units, and the unit's USD value."""

from __future__ import annotations

import numpy as np

from ..config.models import RunConfig
from ..data.market import Need

# Asset of each share class, and which assets are priced off ETH/USDT.
SHARE_CLASS_ASSET = {"USDT": "USDT", "ETH": "ETH"}
ETH_LIKE = {"ETH", "WETH"}


class ShareClassPricer:
    """Prices in USDT per unit, converted to share-class units and USD."""

    def __init__(self, cfg: RunConfig):
        self.share_class = cfg.share_class
        self.eth_usdt = Need(cfg.prices.eth_usdt, "open", "bar_price")
        self.usdt_usd = Need(cfg.prices.usdt_usd, "oracle_price_usd", "last")

    def needs(self) -> list[Need]:
        return [self.eth_usdt, self.usdt_usd]

    def bind(self, market) -> None:
        self._eth = market.array(self.eth_usdt)
        self._usdt_usd = market.array(self.usdt_usd)
        self._ones = np.ones(market.n_points)

    def price_usdt(self, asset: str) -> np.ndarray:
        if asset == "USDT":
            return self._ones
        if asset in ETH_LIKE:
            return self._eth
        raise KeyError(f"no price source for asset {asset!r}")

    def price(self, asset: str) -> np.ndarray:
        """Price of one unit of `asset` in share-class units."""
        ccy = SHARE_CLASS_ASSET[self.share_class]
        if asset == ccy or (asset in ETH_LIKE and ccy in ETH_LIKE):
            return self._ones
        return self.price_usdt(asset) / self.price_usdt(ccy)

    def unit_usd(self) -> np.ndarray:
        """USD value of one share-class unit at each point."""
        return self.price_usdt(SHARE_CLASS_ASSET[self.share_class]) * self._usdt_usd
