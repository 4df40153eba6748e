"""The fund's own footprint on an Aave v3 reserve: its supply and debt added to the observed reserve.

Utilisation with the fund = (observed debt + the fund's debt) / (observed supply + the fund's supply), the
others held as observed (the daily snapshot in force at the hour's start, causal). The fund's debt grows by the
extra borrow rate r(U with) - r(U observed) and its supply by the extra supply rate, both from the reserve's rate
strategy (rate_strategy.py): a spread over the observed indexes. It lives in the fund's own indexes: each reserve
the fund holds gets its own liquidity and borrow index lists (the observed ones times the spread's growth), which
its positions are valued by and its scaled amounts converted with, so the spread is in the balances and its
attribution in borrow cost and supply yield, with nothing to do in the hourly loop. They are written ahead from
the fund's balance whenever it changes (an action, a liquidation, a transaction undone): the fund's tokens in
the utilisation are its balance at the observed index growth since then (the spread's own compounding left out of
U). A market fed hour by hour (paper) writes them an hour at a time, with the same operations.
Available liquidity = observed supply - observed debt: what the other users left to borrow or withdraw.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace

import numpy as np

from ..data.market import MarketData, Need
from ..data.timeutil import HOUR, iso
from ..errors import ConfigError
from ..portfolio.attribution import SLOT
from ..portfolio.book import Book, PositionSpec
from .aave import RESERVES
from .rate_strategy import ReserveRates, borrow_curve

SECONDS_PER_YEAR = 365 * 24 * HOUR  # Aave v3 MathUtils: 365 days
HOUR_YEARS = HOUR / SECONDS_PER_YEAR
BORROW_COST, SUPPLY_YIELD = SLOT["borrow_cost"], SLOT["supply_yield"]
SERIES_RESERVE = {series: symbol for symbol, (series, _) in RESERVES.items()}


WRITE_AHEAD_HOURS = 168  # the fund's indexes are written a week ahead of the loop (rewritten when it acts)


class Alarm:
    """The loop's wake-up: at the start of the first hour any footprint needs its indexes written (`at`)."""

    def __init__(self) -> None:
        self.footprints: list[ReserveFootprint] = []
        self.at = NEVER

    def add(self, fp: ReserveFootprint) -> None:
        self.footprints.append(fp)
        self.at = min(self.at, fp.due)

    def __call__(self, k: int) -> None:
        for fp in self.footprints:
            fp.wake(k)
        self.at = min((fp.due for fp in self.footprints), default=NEVER)


NEVER = 2**62


REFUSED_MARK = "borrowing would exceed what the Aave reserve had available"  # in every refusal (results/capacity.py)


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
    """One reserve the run may hold: the fund's own indexes (the rate spread) and the liquidity view."""

    symbol: str
    rates: ReserveRates
    rate_impact: bool
    series: str = field(init=False)

    def __post_init__(self) -> None:
        self.series = RESERVES[self.symbol][0]
        self.supply_need = Need(self.series, "total_supply", "last")
        self.debt_need = Need(self.series, "total_variable_debt", "last")
        self.params_hash = ""

    def needs(self) -> list[Need]:
        return [self.supply_need, self.debt_need]

    # --- set-up ------------------------------------------------------------------------------
    def bind(self, market: MarketData, specs: list[PositionSpec], reserves: list, hour_by_hour: bool) -> None:
        """Find the run's positions in this reserve; with rate_impact, give them (and the strategy's reserve
        objects, which convert amounts to scaled balances) the fund's own index lists."""
        self.market = market
        self.grid = market.grid
        self.hour_by_hour = hour_by_hour
        self.others_supply = market.values(self.supply_need)
        self.others_debt = market.values(self.debt_need)
        hourly = self.rates.hourly(market.grid)
        self.base, self.slope1, self.slope2 = hourly["base"], hourly["slope1"], hourly["slope2"]
        self.optimal, self.keep = hourly["optimal"], 1.0 - hourly["reserve_factor"]
        mine = [r for r in reserves if r.symbol == self.symbol]
        self.supply_spec = self.debt_spec = None
        for j, spec in enumerate(specs):
            if spec.instrument.venue != "aave_v3":
                continue
            if spec.instrument.symbol == f"a{self.symbol}":
                self.supply_spec = j
            elif spec.instrument.symbol == f"debt{self.symbol}":
                self.debt_spec = j
        self.own = {}  # "liquidity" / "borrow" -> (observed list, the fund's list)
        if not (self.rate_impact and mine):
            self.specs = specs
            return
        self.obs_liq = mine[0].liquidity_index
        own_liq = list(self.obs_liq)
        self.own["liquidity"] = (self.obs_liq, own_liq)
        borrowed = [r for r in mine if r.borrowed]
        if borrowed:
            self.obs_borrow = borrowed[0].borrow_index
            self.own["borrow"] = (self.obs_borrow, list(self.obs_borrow))
        for r in mine:
            r.liquidity_index = own_liq
            if r.borrowed:
                r.borrow_index = self.own["borrow"][1]
        for j in (self.supply_spec, self.debt_spec):
            if j is not None:
                obs, own = self.own["liquidity" if j == self.supply_spec else "borrow"]
                if specs[j].index is obs:
                    specs[j] = replace(specs[j], index=own, index_written=True)
        self.specs = specs

    def attach(self, book: Book, alarm: Alarm) -> None:
        """A new run on `book`: the fund holds nothing, its indexes are the observed ones."""
        self.book = book
        self.qty = book.qty
        self.alarm = alarm
        for obs, own in self.own.values():
            own[:] = obs
        self.growth = {which: np.ones(len(self.grid)) for which in self.own}
        self.anchor = (0, 0.0, 0.0, 1.0, 1.0)  # hour, scaled supply, scaled debt, own / observed supply, debt
        # the fund's indexes are final up to this hour (a market fed hour by hour has delivered none yet)
        self.written = -1 if self.hour_by_hour else len(self.grid) - 1
        self.due = 0 if self.hour_by_hour and self.own else len(self.grid)  # the hour they must be written by
        self.ahead = WRITE_AHEAD_HOURS

    # --- the fund's indexes ------------------------------------------------------------------------
    def moved(self, k: int) -> None:
        """The fund's balance in this reserve changed at hour k: its indexes after k follow the new balance (from
        the next hour's start, when the loop's alarm writes them)."""
        if not self.own:
            return
        qty = self.qty
        q_s = qty[self.supply_spec] if self.supply_spec is not None else 0.0
        q_d = qty[self.debt_spec] if self.debt_spec is not None else 0.0
        self.anchor = (k, q_s, q_d, self._ratio("liquidity", k), self._ratio("borrow", k))
        self.written = k
        self._due(k + 1)

    def _due(self, k: int) -> None:
        self.due = k
        if k < self.alarm.at:
            self.alarm.at = k

    def state(self) -> tuple:
        return self.anchor, self.written, self.due

    def restore(self, state: tuple) -> None:
        """Back to the state of an undone transaction (what it would have written is not written yet)."""
        if not self.own:
            return
        self.anchor, self.written, due = state
        self._due(due)

    def wake(self, k: int) -> None:
        """At the start of hour k (before its accrual): write the indexes ahead, a week at a time (an hour at a
        time on a market fed hour by hour, which has delivered nothing later)."""
        if self.due <= k:
            # ahead by a week after an action, twice as far each time the book stayed as it was
            self.ahead = WRITE_AHEAD_HOURS if self.written == k - 1 and self.anchor[0] == k - 1 else self.ahead * 2
            upto = k if self.hour_by_hour else min(k + self.ahead - 1, len(self.grid) - 1)
            self._extend(upto)
            self.due = upto + 1 if upto + 1 < len(self.grid) else len(self.grid)

    def _ratio(self, which: str, k: int) -> float:
        if which not in self.own:
            return 1.0
        obs, own = self.own[which]
        return own[k] / obs[k]

    def _extend(self, upto: int) -> None:
        """Write the fund's indexes for the hours written+1 .. upto from the anchor: hour m accrues from m-1 at the
        strategy's rate with the fund's tokens (its scaled balance x the observed index growth since the anchor)
        in the reserve as the snapshot in force at m-1 saw it, over the same without them."""
        lo = self.written + 1
        if lo == 0 and upto >= 0:  # the first hour: nothing held before it
            for obs, own in self.own.values():
                own[0] = obs[0]
            self.written, lo = 0, 1
        if upto < lo:
            return
        a, q_s, q_d, c_l, c_b = self.anchor
        fresh = lo == a + 1
        sides = [(which, q, c) for which, q, c in (("liquidity", q_s, c_l), ("borrow", q_d, c_b)) if which in self.own]
        if q_s == 0.0 and q_d == 0.0:  # nothing held: no spread, the indexes keep their level over the observed
            for which, _, c in sides:
                self._write(which, lo, upto, c, None, fresh)
            self.written = upto
            return
        arr = self.market.array_of  # the market's own arrays of its lists (filled hour by hour where it is live)
        supply = arr(self.others_supply)[lo - 1: upto]
        debt = arr(self.others_debt)[lo - 1: upto]
        opt, base = self.optimal[lo - 1: upto], self.base[lo - 1: upto]
        s1, s2 = self.slope1[lo - 1: upto], self.slope2[lo - 1: upto]
        fund_supply = q_s * c_l * arr(self.own["liquidity"][0])[lo - 1: upto]
        fund_debt = q_d * c_b * arr(self.own["borrow"][0])[lo - 1: upto] if "borrow" in self.own else 0.0
        u0 = debt / supply
        u1 = np.minimum((debt + fund_debt) / (supply + fund_supply), 1.0)
        r0, r1 = borrow_curve(u0, base, s1, s2, opt), borrow_curve(u1, base, s1, s2, opt)
        for which, q, c in sides:
            if q == 0.0:  # the fund holds none on this side: its index keeps its level over the observed
                self._write(which, lo, upto, c, None, fresh)
            elif which == "borrow":  # one hour of the extra rate on the balance (linear over the hour)
                self._write(which, lo, upto, c, 1.0 + (r1 - r0) * HOUR_YEARS, fresh)
            else:  # supply = borrow x U x (1 - RF)
                self._write(which, lo, upto, c, 1.0 + (r1 * u1 - r0 * u0) * self.keep[lo - 1: upto] * HOUR_YEARS, fresh)
        self.written = upto

    def _write(self, which: str, lo: int, upto: int, c: float, grow, fresh: bool) -> None:
        """The fund's index over lo..upto: observed x c x the spread's growth since the anchor (the same products,
        in the same order, whether written an hour at a time or ahead); `grow` None: no spread (nothing held)."""
        obs, own = self.own[which]
        g = self.growth[which]
        if grow is None:
            g[lo: upto + 1] = 1.0 if fresh else g[lo - 1]
        else:
            g[lo: upto + 1] = np.cumprod(grow) if fresh else np.cumprod(np.concatenate(([g[lo - 1]], grow)))[1:]
        own[lo: upto + 1] = (self.market.array_of(obs)[lo: upto + 1] * c * g[lo: upto + 1]).tolist()

    def room(self, k: int) -> float:
        """Tokens the fund may still borrow at hour k: what the others left, less the fund's net borrowing."""
        return self.others_supply[k] - self.others_debt[k] - self._net(k)

    def _net(self, k: int) -> float:
        qty, specs = self.qty, self.specs
        net = 0.0
        if self.debt_spec is not None:
            net += qty[self.debt_spec] * specs[self.debt_spec].index[k]
        if self.supply_spec is not None:
            net -= qty[self.supply_spec] * specs[self.supply_spec].index[k]
        return net

    def guard(self, cfg, k: int) -> None:
        """Hour by hour (a paper session cannot wait for the end of its window): refuse at the first hour the
        fund's net borrowing exceeds what the others left available (aave.liquidity_policy refuse)."""
        available = self.others_supply[k] - self.others_debt[k]
        need = self._net(k)
        if need > available * (1.0 + 1e-12):
            short = Shortfall(self.symbol, k, iso(self.grid[k]), need, available)
            fit = available / need if need > 0 else 0.0
            raise refusal(cfg, [short], fit, fit)

    # --- after the loop --------------------------------------------------------------------------
    def report(self, market: MarketData, quantities: np.ndarray) -> tuple[dict[str, np.ndarray], list[Shortfall]]:
        """Utilisation with and without the fund, the rate impact per hour, and every hour the fund's net borrowing
        exceeds what the other users left available."""
        arr = market.array_of
        supply, debt = arr(self.others_supply), arr(self.others_debt)
        n = len(supply)
        zeros = np.zeros(n)
        impact = np.zeros(n)
        tokens = {}
        for j, which in ((self.supply_spec, "liquidity"), (self.debt_spec, "borrow")):
            if j is None:
                tokens[which] = zeros
                continue
            spec = self.specs[j]
            index = np.asarray(spec.index)
            tokens[which] = quantities[j] * index
            if which in self.own:  # the spread's part of each hour's index change, as the book attributes it
                obs = np.asarray(self.own[which][0])
                q = quantities[j][:-1]
                spread = index[1:] - index[:-1] * (obs[1:] / obs[:-1])
                impact[1:] += spec.sign * q * spread * arr(spec.rate)[:-1] * arr(spec.price)[:-1]
        fund_supply, fund_debt = tokens["liquidity"], tokens["borrow"]
        self.impact = impact
        columns = {f"utilisation:{self.symbol}": debt / supply,
                   f"utilisation_with_fund:{self.symbol}": np.minimum((debt + fund_debt) / (supply + fund_supply),
                                                                      1.0)}
        need = fund_debt - fund_supply
        available = supply - debt
        over = np.nonzero(need > available * (1.0 + 1e-12))[0]
        shortfalls = [Shortfall(self.symbol, int(k), iso(self.grid[k]), float(need[k]), float(available[k]))
                      for k in over]
        self.fit_ratio = float(np.min(available[need > 0] / need[need > 0])) if (need > 0).any() else np.inf
        # the scale s of the fund's book that keeps (D + s fd) / (S + s fs) <= U* wherever D / S <= U*
        opt = self.optimal
        pushes = (fund_debt - opt * fund_supply > 0) & (debt / supply <= opt)
        room = (opt * supply - debt)[pushes] / (fund_debt - opt * fund_supply)[pushes]
        self.kink_ratio = float(room.min()) if room.size else np.inf
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


def refusal(cfg, shortfalls: list[Shortfall], fit: float, kink: float) -> LiquidityRefused:
    """The error of a run refused by aave.liquidity_policy refuse: the first hour short, the worst one, the capital
    that fits every hour and the one that keeps each reserve under its kink (the run scaled by the tightest hour's
    ratio: its borrowing scales with the capital)."""
    first = min(shortfalls, key=lambda s: s.k)
    worst = max(shortfalls, key=lambda s: s.shortfall / max(s.available, 1e-12))
    hours = len({s.k for s in shortfalls})
    unit = cfg.share_class
    reason = (
        f"the fund's net {first.reserve} {REFUSED_MARK} (supply - debt of the other users) on {hours} hour(s): "
        f"first at {first.at} (the fund owes {first.need:,.2f} {first.reserve}, "
        f"available {first.available:,.2f}), worst at {worst.at} in {worst.reserve} (owes {worst.need:,.2f}, "
        f"available {worst.available:,.2f}). About {cfg.initial_capital * fit:,.2f} {unit} fits every hour (taking "
        f"all there is: utilisation 100%, the top of the rate curve); about {cfg.initial_capital * kink:,.2f} {unit} "
        "keeps each reserve at or under its kink wherever the others left it there. Lower initial_capital, or set "
        "aave.liquidity_policy: partial to borrow what is available and wait for the rest."
    )
    return LiquidityRefused([("initial_capital", cfg.initial_capital, reason)])
