"""Centralised exchanges: per-venue parameters (dataset params/cex_venues.json, overridden by config)
and the series each venue's products read. Venue differences are data, not code."""

from __future__ import annotations

from dataclasses import dataclass

from ..config.models import RunConfig
from ..data.dataset import Dataset
from ..data.market import Need
from ..errors import DataError

# Which funding column a venue settles with (OKX: realized_funding_rate, dataset README).
FUNDING_COLUMN = {"binance": "funding_rate", "bybit": "funding_rate", "okx": "realized_funding_rate"}


@dataclass(frozen=True)
class CexVenue:
    """Fees and margin rules of one venue for one linear USDT perp symbol."""

    name: str
    perp_taker_fee: float
    spot_taker_fee: float
    maintenance_margin_rate: float
    initial_margin_rate: float
    liquidation_fee_rate: float
    transfer_fee_usdt: float
    min_order_usdt: float = 0.0
    min_spot_order_usdt: float = 0.0
    min_transfer_usdt: float = 0.0
    liquidation_check: str = "open"


def load_venue(dataset: Dataset, cfg: RunConfig, name: str, symbol: str) -> CexVenue:
    params = dataset.params("params/cex_venues")
    if name not in params:
        raise DataError(f"params/cex_venues.json has no venue {name!r}; it has {', '.join(sorted(params))}.")
    p = params[name]
    over = getattr(cfg.venues, name)
    mmr = over.maintenance_margin_rate
    if mmr is None:
        if symbol not in p.get("maintenance_margin_rate", {}):
            raise DataError(
                f"params/cex_venues.json has no maintenance margin rate for {name} {symbol}; "
                f"set venues.{name}.maintenance_margin_rate."
            )
        mmr = p["maintenance_margin_rate"][symbol]
    costs = cfg.costs.enabled
    return CexVenue(
        name=name,
        perp_taker_fee=(over.perp_taker_fee if over.perp_taker_fee is not None else p["perp_taker_fee"]) * costs,
        spot_taker_fee=(over.spot_taker_fee if over.spot_taker_fee is not None else p["spot_taker_fee"]) * costs,
        maintenance_margin_rate=mmr,
        initial_margin_rate=over.initial_margin_rate,
        liquidation_fee_rate=over.liquidation_fee_rate,
        transfer_fee_usdt=over.transfer_fee_usdt * costs,
        min_order_usdt=over.min_order_usdt,
        min_spot_order_usdt=over.min_spot_order_usdt,
        min_transfer_usdt=over.min_transfer_usdt,
        liquidation_check=over.liquidation_check,
    )


def perp_series(venue: str, asset: str) -> str:
    return f"perp/{venue}_{asset.lower()}usdt_1h"


@dataclass(frozen=True)
class MarkFallbacks:
    """Where a perp's mark comes from when its own bars are missing (data/marks.py): the same contract on
    other venues of the dataset, then the run's spot price series for the asset times the last basis."""

    alternates: tuple[str, ...] = ()
    reference: str | None = None

    @classmethod
    def for_perp(cls, dataset: Dataset, cfg: RunConfig, venue: str, asset: str) -> MarkFallbacks:
        if not cfg.data.mark_fallback:
            return cls()
        others = tuple(s for v in VENUES if v != venue and (s := perp_series(v, asset)) in dataset.meta)
        spot = getattr(cfg.prices, f"{asset.lower()}_usdt", None)
        return cls(others, spot if spot in dataset.meta and spot.startswith("spot/") else None)


VENUES = ("binance", "bybit", "okx")


def perp_mark_need(venue: str, asset: str, fallbacks: MarkFallbacks = MarkFallbacks()) -> Need:
    """Mark price: the venue's own perp bars, open at t (no look-ahead); through a hole, the fallbacks."""
    return Need(perp_series(venue, asset), "open", "bar_price", alternates=fallbacks.alternates,
                reference=fallbacks.reference)


def extreme_need(venue: str, asset: str, column: str, fallbacks: MarkFallbacks = MarkFallbacks()) -> Need:
    """The high or low of the venue's perp bar that closed at t (intrabar liquidation checks)."""
    return Need(perp_series(venue, asset), column, "bar_extreme", alternates=fallbacks.alternates,
                reference=fallbacks.reference)


def funding_need(venue: str, asset: str) -> Need:
    return Need(f"funding/{venue}_{asset.lower()}usdt_8h", FUNDING_COLUMN[venue], "events")


def spot_series(venue: str, asset: str) -> str:
    return f"spot/{venue}_{asset.lower()}usdt_1h"
