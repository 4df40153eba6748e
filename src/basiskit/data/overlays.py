"""Stress scenarios as pure overlays on the aligned market data, applied before the loop to every series
the shocked quantity drives (the loop never knows it is stressed). A shock's strength over time s(t) is
0 before `at`, rises to 1 (at once, or linearly over ramp_hours), and `hours` after `at` (ramp included)
falls back (at once, or linearly over recovery_hours); each series moves by its own rule with s(t):

  eth_price_shock, btc_price_shock: every spot and perp price of the asset x (1 + magnitude x s), so
      marks and the Aave oracle's USD prices move together (the LST/ETH rate, a ratio, does not); a perp
      bar's high and low (the intrabar liquidation check) take s at the bar's open, and stay at least
      as extreme as the shocked price at its close, so a step is a gap, closed at the mark;
  lst_rate_shock: the LST's exchange rate to ETH (Aave's oracle) and its DEX price x (1 - magnitude x s);
  lst_market_depeg: the DEX price alone x (1 - magnitude x s) (a swap exit pays it, the HF does not);
  borrow_rate_spike: the reserve's variable borrow index grows at `apr` (compounded per second, as Aave
      v3's index is) with weight s, at its own rate otherwise; the supply index is left as it was
      (the supply rate's answer to utilisation is not modelled);
  funding_flip: funding rates on `venues` (default: all) x (1 + (factor - 1) x s);
  gas_spike: the gas price x (1 + (factor - 1) x s);
  venue_outage: no trade or transfer at `venues` while s > 0; prices, funding and liquidations go on.
A market's volume and volatility (the impact costs) are left as observed.
Multiplying by 1 leaves a float as it was, so a shock with no effect equals the baseline bit for bit.
"""

from __future__ import annotations

import re

import numpy as np

from ..config.models import RunConfig, Shock
from .market import MarketData, Need
from .timeutil import HOUR, to_epoch

SECONDS_PER_YEAR = 365 * 24 * HOUR
PRICE_SERIES = re.compile(r"^(spot|perp)/[a-z0-9]+_(w?eth|btc)usdt_1h$")
PRICE_HOW = ("bar_price", "bar_extreme")


def intensity(grid: np.ndarray, shock: Shock) -> np.ndarray:
    """s(t) in [0, 1] over the grid (epoch seconds)."""
    t = (grid - to_epoch(shock.at)) / HOUR  # hours since the shock started
    ramp = shock.ramp_hours if shock.path == "linear" else 0.0
    s = np.where(t < 0, 0.0, np.minimum(t / ramp, 1.0) if ramp > 0 else 1.0)
    if shock.hours is not None:
        after = t - shock.hours
        back = np.clip(1.0 - after / shock.recovery_hours, 0.0, 1.0) if shock.recovery_hours else 0.0
        s = np.where(after >= 0, np.minimum(s, back), s)
    return s.astype(np.float64)


def _price_asset(need: Need) -> str | None:
    m = PRICE_SERIES.match(need.series)
    if need.how not in PRICE_HOW or m is None:
        return None
    return "BTC" if m.group(2) == "btc" else "ETH"


def _venue(need: Need) -> str:
    return need.series.split("/", 1)[1].split("_", 1)[0]


def drives(shock: Shock, need: Need, cfg: RunConfig) -> bool:
    """True when `shock` moves the aligned series `need`."""
    kind = shock.type
    if kind in ("eth_price_shock", "btc_price_shock"):
        return _price_asset(need) == kind[:3].upper()
    if kind == "lst_rate_shock":  # the oracle's exchange rate (a ratio of reserve prices) and the DEX price
        return need.ratio_of is not None or need.series.startswith("staking/")
    if kind == "lst_market_depeg":
        return need.series.startswith("staking/")
    if kind == "borrow_rate_spike":
        return need.column == "variable_borrow_index" and need.series == f"aave/{shock.reserve.lower()}_reserve_1d"
    if kind == "funding_flip":
        return need.series.startswith("funding/") and (shock.venues is None or _venue(need) in shock.venues)
    if kind == "gas_spike":
        return need.series == cfg.costs.gas_series and need.column == cfg.costs.gas_column
    return False


def moved(shock: Shock, values: np.ndarray, s: np.ndarray) -> np.ndarray:
    """A series under `shock` with strength s(t)."""
    kind = shock.type
    if kind in ("eth_price_shock", "btc_price_shock"):
        return values * (1.0 + shock.magnitude * s)
    if kind in ("lst_rate_shock", "lst_market_depeg"):
        return values * (1.0 - shock.magnitude * s)
    if kind == "borrow_rate_spike":
        return _spiked_index(values, s, shock.apr)
    return values * (1.0 + (shock.factor - 1.0) * s)


def apply(market: MarketData, cfg: RunConfig) -> MarketData:
    """The market data of `cfg.stress` overlaid on `market` (a new MarketData; `market` is untouched)."""
    arrays: dict[Need, np.ndarray] = {}
    outages: dict[str, np.ndarray] = {}
    for shock in cfg.stress:
        s = intensity(market.grid, shock)
        # the bar that closed at t opened at t - 1h: it carries the shock's strength at its open (a step at t
        # is a gap at t, which the check sees through the price at t below)
        s_bar = intensity(market.grid - HOUR, shock)
        for need in market.needs:
            if drives(shock, need, cfg):
                arrays[need] = moved(shock, arrays.get(need, market.array(need)),
                                     s_bar if need.how == "bar_extreme" else s)
        if shock.type == "venue_outage":
            for venue in shock.venues:
                outages[venue] = outages.get(venue, np.zeros(len(s), dtype=bool)) | (s > 0.0)
    prices = {n.series: n for n in market.needs if n.how == "bar_price"}
    for need in [n for n in arrays if n.how == "bar_extreme"]:
        # as aligned (align_bar_extreme): never less extreme than the price known at t, shocked too
        price = prices.get(need.series)
        if price is not None:
            known = arrays.get(price, market.array(price))
            arrays[need] = np.maximum(arrays[need], known) if need.column == "high" else \
                np.minimum(arrays[need], known)
    return market.overlaid(arrays, outages)


def _spiked_index(index: np.ndarray, s: np.ndarray, apr: float) -> np.ndarray:
    """A borrow index growing at `apr` with weight s(t) and at its own rate otherwise (hourly log growth
    blended); unchanged, value for value, before the shock starts."""
    out = index.copy()
    hit = np.flatnonzero(s > 0.0)
    if not len(hit):
        return out
    first = max(int(hit[0]), 1)
    # Aave v3 variable borrow index: compounded per second, (1 + apr / seconds a year) ** seconds
    spiked = HOUR * np.log1p(apr / SECONDS_PER_YEAR)
    own = np.diff(np.log(index))[first - 1:]
    growth = (1.0 - s[first:]) * own + s[first:] * spiked
    out[first:] = index[first - 1] * np.exp(np.cumsum(growth))
    return out
