"""Share-class valuation: every asset's hourly price in share-class units, and the unit's USD value.

Each asset a run holds is priced by one series: by default `prices.*` in the config; a venue that
trades the asset (e.g. a basis strategy's spot venue) names its own series instead.
"""

from __future__ import annotations

import numpy as np

from ..config.models import RunConfig
from ..data.market import MarketData, Need

SHARE_CLASS_ASSET = {"USDT": "USDT", "ETH": "ETH"}
ALIASES = {"WETH": "ETH"}


class ShareClassPricer:
    """Prices in USDT per unit, converted to share-class units and USD."""

    def __init__(self, cfg: RunConfig):
        self.share_class = cfg.share_class
        self.ccy = SHARE_CLASS_ASSET[cfg.share_class]
        # asset -> (series of its price, the asset that price is quoted in, partial coverage allowed)
        self.sources: dict[str, tuple[str, str, bool]] = {
            "ETH": (cfg.prices.eth_usdt, "USDT", False), "BTC": (cfg.prices.btc_usdt, "USDT", False),
        }
        self.usdt_usd = Need(cfg.prices.usdt_usd, "oracle_price_usd", "last")
        self.used: set[str] = {self.ccy}
        self._usdt: dict[str, np.ndarray] = {}

    def use(self, asset: str, series: str | None = None, quote: str = "USDT", partial: bool = False) -> None:
        """Declare that the run holds `asset`, optionally priced by a venue's own `series` (in `quote`).

        `partial`: the price series may cover only part of the window (reward tokens); outside it the
        price is 0 and the asset must not be held there.
        """
        asset = ALIASES.get(asset, asset)
        if series is not None:
            self.sources[asset] = (series, quote, partial)
        if asset not in self.sources and asset != "USDT":
            raise KeyError(f"no price source for asset {asset!r}")
        self.used.add(asset)
        if asset != "USDT":
            self.use(self.sources[asset][1])

    def need_for(self, asset: str) -> Need:
        series, _, partial = self.sources[ALIASES.get(asset, asset)]
        return Need(series, "open", "bar_price", partial=partial)

    def needs(self) -> list[Need]:
        return [self.usdt_usd] + [self.need_for(a) for a in sorted(self.used) if a != "USDT"]

    def bind(self, market: MarketData) -> None:
        self._usdt_usd = market.array(self.usdt_usd)
        self._usdt = {"USDT": np.ones(len(self._usdt_usd))}
        pending = sorted(a for a in self.used if a != "USDT")
        while pending:  # quotes first: a price in ETH needs ETH's price in USDT
            for a in list(pending):
                quote = self.sources[a][1]
                if quote in self._usdt:
                    self._usdt[a] = market.array(self.need_for(a)) * self._usdt[quote]
                    pending.remove(a)

    def price_usdt(self, asset: str) -> np.ndarray:
        asset = ALIASES.get(asset, asset)
        if asset not in self._usdt:
            raise KeyError(f"asset {asset!r} was not declared with use() before the market was built")
        return self._usdt[asset]

    def is_unit(self, asset: str) -> bool:
        """True when one unit of `asset` is one share-class unit (its price never moves)."""
        return ALIASES.get(asset, asset) == self.ccy

    def price(self, asset: str) -> np.ndarray:
        """Price of one unit of `asset` in share-class units."""
        if self.is_unit(asset):
            return self._usdt["USDT"]
        return self.price_usdt(asset) / self.price_usdt(self.ccy)

    def usd_per_usdt(self) -> np.ndarray:
        """USD value of one USDT at each point (the Aave oracle's USDT price)."""
        return self._usdt_usd

    def unit_usd(self) -> np.ndarray:
        """USD value of one share-class unit at each point."""
        return self.price_usdt(self.ccy) * self._usdt_usd
