"""The fund's own footprint on an Aave v3 reserve: its supply and debt added to the observed reserve.

Utilisation with the fund = (observed debt + the fund's debt) / (observed supply + the fund's supply), the
others held as observed (the daily snapshot in force, causal). Each hour the fund's debt accrues the extra
borrow rate r(U with) - r(U observed) and its supply the extra supply rate, both from the reserve's rate strategy
(rate_strategy.py): a spread over the observed indexes the run already accrues, booked in the balances (the
scaled amounts grow) and attributed to borrow cost and supply yield. Available liquidity = observed supply -
observed debt: what the other users left to borrow or withdraw.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

from ..data.market import MarketData, Need
from ..data.timeutil import HOUR, iso
from ..errors import ConfigError
from ..portfolio.attribution import SLOT
from ..portfolio.book import Book, PositionSpec
from .aave import RESERVES
from .rate_strategy import ReserveRates

SECONDS_PER_YEAR = 365 * 24 * HOUR  # Aave v3 MathUtils: 365 days
HOUR_YEARS = HOUR / SECONDS_PER_YEAR
BORROW_COST, SUPPLY_YIELD = SLOT["borrow_cost"], SLOT["supply_yield"]
SERIES_RESERVE = {series: symbol for symbol, (series, _) in RESERVES.items()}


class LiquidityRefused(ConfigError):
    """The fund would need more of a reserve than its other users left available (aave.liquidity_policy refuse)."""


@dataclass
class Shortfall:
    reserve: str
    k: int
    at: str
    need: float  # the fund's net borrowing (debt - own supply), tokens
    available: float  # observed supply - observed debt, tokens

    @property
    def shortfall(self) -> float:
        return self.need - self.available

    def as_dict(self) -> dict:
        return {"reserve": self.reserve, "at": self.at, "fund_net_borrowing": self.need,
                "available_liquidity": self.available, "shortfall": self.shortfall}


@dataclass
class ReserveFootprint:
    """One reserve the run holds: the rate spread hook and the liquidity view."""

    symbol: str
    rates: ReserveRates
    rate_impact: bool
    series: str = field(init=False)

    def __post_init__(self) -> None:
        self.series = RESERVES[self.symbol][0]
        self.supply_need = Need(self.series, "total_supply", "last")
        self.debt_need = Need(self.series, "total_variable_debt", "last")
        self.clipped: list[tuple[int, float, float]] = []  # partial policy: (k, asked, taken) of clipped borrows

    def needs(self) -> list[Need]:
        return [self.supply_need, self.debt_need]

    def bind(self, market: MarketData, specs: list[PositionSpec]) -> None:
        self.grid = market.grid
        self.others_supply = market.values(self.supply_need)
        self.others_debt = market.values(self.debt_need)
        hourly = self.rates.hourly(market.grid)
        base, slope1, slope2, opt = hourly["base"], hourly["slope1"], hourly["slope2"], hourly["optimal"]
        self.base, self.slope1, self.slope2, self.optimal = (a.tolist() for a in (base, slope1, slope2, opt))
        self.keep = (1.0 - hourly["reserve_factor"]).tolist()
        self.supply_spec = self.debt_spec = None
        for j, s in enumerate(specs):
            if s.instrument.venue != "aave_v3" or s.instrument.symbol not in (f"a{self.symbol}", f"debt{self.symbol}"):
                continue
            if s.instrument.kind == "aToken":
                self.supply_spec = (j, s)
            else:
                self.debt_spec = (j, s)
        self.per_tick = [0.0] * market.n_points

    def attach(self, book: Book) -> None:
        """A new run on `book`: `hook` is the per-hour accrual of the spread (one side or both)."""
        self.book = book
        self.qty = book.qty
        self.clipped = []
        self.per_tick = [0.0] * len(self.grid)
        if self.supply_spec is not None and self.debt_spec is not None:
            self.hook = self.accrue
        elif self.debt_spec is not None:
            self.hook = self._accrue_debt
        elif self.supply_spec is not None:
            self.hook = self._accrue_supply
        else:
            self.hook = None

    def _borrow_rate(self, i: int, u: float) -> float:
        """The reserve's strategy at hour i (rate_strategy.RateStrategy.borrow_rate, on the hour's parameters)."""
        opt = self.optimal[i]
        if u <= opt:
            return self.base[i] + self.slope1[i] * u / opt
        return self.base[i] + self.slope1[i] + self.slope2[i] * (u - opt) / (1.0 - opt)

    def _spread(self, i: int, u0: float, u1: float) -> tuple[float, float]:
        """(borrow rate with the fund - without, the same for borrow x U) at hour i."""
        r0, r1 = self._borrow_rate(i, u0), self._borrow_rate(i, u1)
        return r1 - r0, r1 * u1 - r0 * u0

    def _accrue_debt(self, k: int) -> None:
        """`accrue` for a reserve the fund only borrows from."""
        j, spec = self.debt_spec
        qty = self.qty
        i = k - 1
        index = spec.index
        fund_debt = qty[j] * index[i]
        if fund_debt == 0.0:
            return
        debt, supply = self.others_debt[i], self.others_supply[i]
        if not supply > 0.0:  # no reserve seen at that hour (a live feed's gap): no spread to add
            return
        u1 = (debt + fund_debt) / supply
        extra = fund_debt * self._spread(i, debt / supply, u1 if u1 < 1.0 else 1.0)[0] * HOUR_YEARS
        qty[j] += extra / index[k]
        value = -extra * spec.rate[k] * spec.price[k]
        self.book.attribution[BORROW_COST][k] += value
        self.per_tick[k] += value

    def _accrue_supply(self, k: int) -> None:
        """`accrue` for a reserve the fund only supplies to."""
        j, spec = self.supply_spec
        qty = self.qty
        i = k - 1
        index = spec.index
        fund_supply = qty[j] * index[i]
        if fund_supply == 0.0:
            return
        debt, supply = self.others_debt[i], self.others_supply[i]
        if not supply > 0.0:
            return
        extra = fund_supply * self._spread(i, debt / supply, debt / (supply + fund_supply))[1] * self.keep[i] \
            * HOUR_YEARS  # supply = borrow x U x (1 - RF)
        qty[j] += extra / index[k]
        value = extra * spec.rate[k] * spec.price[k]
        self.book.attribution[SUPPLY_YIELD][k] += value
        self.per_tick[k] += value

    def accrue(self, k: int) -> None:
        """The spread from hour k-1 to k, from the balances and the snapshot in force at k-1: one hour of the
        extra rate on the fund's debt and supply in tokens (linear over the hour: the hour's compounding adds
        (r dt)^2 / 2, about 1e-11 of the balance)."""
        qty = self.qty
        i = k - 1
        sj, ss = self.supply_spec
        dj, ds = self.debt_spec
        fund_supply = qty[sj] * ss.index[i]
        fund_debt = qty[dj] * ds.index[i]
        if fund_supply == 0.0 and fund_debt == 0.0:
            return
        debt, supply = self.others_debt[i], self.others_supply[i]
        if not supply > 0.0:
            return
        u1 = (debt + fund_debt) / (supply + fund_supply)
        borrow, supplied = self._spread(i, debt / supply, u1 if u1 < 1.0 else 1.0)
        attr = self.book.attribution
        total = 0.0
        if fund_debt != 0.0:
            extra = fund_debt * borrow * HOUR_YEARS
            qty[dj] += extra / ds.index[k]
            value = -extra * ds.rate[k] * ds.price[k]
            attr[BORROW_COST][k] += value
            total += value
        if fund_supply != 0.0:
            extra = fund_supply * supplied * self.keep[i] * HOUR_YEARS
            qty[sj] += extra / ss.index[k]
            value = extra * ss.rate[k] * ss.price[k]
            attr[SUPPLY_YIELD][k] += value
            total += value
        self.per_tick[k] += total

    def room(self, k: int) -> float:
        """Tokens the fund may still borrow at hour k: what the others left, less the fund's net borrowing."""
        return self.others_supply[k] - self.others_debt[k] - self._net(k)

    def _net(self, k: int) -> float:
        qty = self.book.qty
        net = 0.0
        if self.debt_spec is not None:
            j, s = self.debt_spec
            net += qty[j] * s.index[k]
        if self.supply_spec is not None:
            j, s = self.supply_spec
            net -= qty[j] * s.index[k]
        return net

    # --- after the loop --------------------------------------------------------------------------
    def report(self, market: MarketData, quantities: np.ndarray) -> tuple[dict[str, np.ndarray], list[Shortfall]]:
        """Utilisation with and without the fund, and every hour the fund's net borrowing exceeds what the other
        users left available."""
        arr = market.array_of
        supply, debt = arr(self.others_supply), arr(self.others_debt)
        fund_supply = (quantities[self.supply_spec[0]] * arr(self.supply_spec[1].index)
                       if self.supply_spec is not None else np.zeros(len(supply)))
        fund_debt = (quantities[self.debt_spec[0]] * arr(self.debt_spec[1].index)
                     if self.debt_spec is not None else np.zeros(len(supply)))
        columns = {f"utilisation:{self.symbol}": debt / supply,
                   f"utilisation_with_fund:{self.symbol}": np.minimum((debt + fund_debt) / (supply + fund_supply),
                                                                      1.0)}
        need = fund_debt - fund_supply
        available = supply - debt
        over = np.nonzero(need > available * (1.0 + 1e-12))[0]
        shortfalls = [Shortfall(self.symbol, int(k), iso(self.grid[k]), float(need[k]), float(available[k]))
                      for k in over]
        self.fit_ratio = float(np.min(available[need > 0] / need[need > 0])) if (need > 0).any() else np.inf
        return columns, shortfalls


def footprints(cfg, dataset, needs: list[Need]) -> list[ReserveFootprint]:
    """One footprint per Aave reserve the run may hold a position in (none where the dataset lacks the reserves'
    totals)."""
    from .rate_strategy import load_params

    held = {"liquidity_index", "variable_borrow_index"}  # a position's accrual, not a price read off the reserve
    symbols = sorted({SERIES_RESERVE[n.series] for n in needs if n.series in SERIES_RESERVE and n.column in held})
    if not symbols:
        return []
    params, source = load_params(dataset)
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
    out = []
    for symbol in symbols:
        meta = dataset.series_meta(RESERVES[symbol][0])
        if not {"total_supply", "total_variable_debt"} <= set(meta.columns):
            continue
        fp = ReserveFootprint(symbol, ReserveRates.from_params(params, symbol, source), cfg.aave.rate_impact)
        fp.params_hash = digest  # the parameters a run read are part of its data hash
        out.append(fp)
    return out


def refusal(cfg, shortfalls: list[Shortfall], fit: float) -> LiquidityRefused:
    """The error of a run refused by aave.liquidity_policy refuse: the first hour short, the worst one, and
    the capital that fits every hour (the run scaled by the tightest hour's ratio: borrowing scales with it)."""
    first = min(shortfalls, key=lambda s: s.k)
    worst = max(shortfalls, key=lambda s: s.shortfall / max(s.available, 1e-12))
    hours = len({s.k for s in shortfalls})
    unit = cfg.share_class
    fits = cfg.initial_capital * fit
    reason = (
        f"the fund would borrow more {first.reserve} than the Aave reserve had available on {hours} hour(s): first at "
        f"{first.at} (needs {first.need:,.2f} {first.reserve}, available {first.available:,.2f}: supply - debt of "
        f"the other users), worst at {worst.at} in {worst.reserve} (needs {worst.need:,.2f}, available "
        f"{worst.available:,.2f}); the capital that fits every hour is about {fits:,.2f} {unit}. Lower "
        "initial_capital, or set aave.liquidity_policy: partial to borrow what is available and wait for the rest."
    )
    return LiquidityRefused([("initial_capital", cfg.initial_capital, reason)])
