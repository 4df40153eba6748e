"""MarketData: the aligned hourly arrays one run needs, built once before the loop."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DataError
from . import align, liquidity, marks
from .dataset import Dataset
from .timeutil import HOUR, iso

if TYPE_CHECKING:
    from ..config.models import DataConfig

HOW = ("bar_price", "bar_extreme", "last", "quantile", "linear_accrual", "compound_accrual", "events",
       *liquidity.HOWS)


@dataclass(frozen=True)
class Need:
    """One aligned array a component needs: a column of a series and how it meets the grid.

    `ratio_of`: divide by the same column of another snapshot series on the same timestamps before
    aligning (an LST's exchange rate = its oracle price / WETH's). `partial`: the series may cover
    only part of the window (reward data): outside its coverage events are 0 and prices 0.
    `rate_column`: for the accruals, the snapshot's rate column the index grows at until the next one.
    `alternates`, `reference`: where a bar series' own price is missing, the same instrument on other venues,
    then a spot series times the last observed basis (data/marks.py); the hours are flagged.
    `window`: for the liquidity measures (data/liquidity.py), how many closed hourly bars they read; for
    "quantile", the hours of rows whose 99th percentile it takes (the gas reserve's price).
    """

    series: str
    column: str
    how: str
    ratio_of: str | None = None
    partial: bool = False
    rate_column: str | None = None
    alternates: tuple[str, ...] = ()
    reference: str | None = None
    window: int = 0

    @property
    def marked(self) -> bool:
        return bool(self.alternates) or self.reference is not None

    def __post_init__(self) -> None:
        if self.how not in HOW:
            raise ValueError(f"alignment {self.how!r} not in {HOW}")
        if (self.rate_column is not None) != self.how.endswith("_accrual"):
            raise ValueError(f"alignment {self.how!r}: rate_column is for the accruals only, and they need one")


def series_hash(dataset: Dataset, names: list[str]) -> str:
    """One hash of the checksums of the series a run reads."""
    return hashlib.sha256(json.dumps({n: dataset.series_meta(n).sha256 for n in names}, sort_keys=True).encode()
                          ).hexdigest()


def _required(needs: list[Need]) -> list[str]:
    """The series a run cannot do without (partial ones only serve where they exist)."""
    return sorted({n.series for n in needs if not n.partial} | {n.ratio_of for n in needs if n.ratio_of})


def reads(needs: list[Need]) -> list[str]:
    """Every series the needs read: their own, the ratios' denominators and the marks' fallbacks."""
    out = {n.series for n in needs} | {n.ratio_of for n in needs if n.ratio_of}
    out |= {a for n in needs for a in n.alternates} | {n.reference for n in needs if n.reference}
    return sorted(out)


def bridged(needs: list[Need]) -> set[str]:
    """Series whose holes the marks bridge (every price need of theirs has fallbacks; liquidity measures
    are NaN in a hole, and trades then pay the bucket costs): their staleness limit applies to the hours no
    fallback could mark."""
    prices = [n for n in needs if n.how not in liquidity.HOWS]
    return {n.series for n in prices if n.marked} - {n.series for n in prices if not n.marked}


def history_bars(needs: list[Need]) -> int:
    """How many closed bars before the first hour the needs read (a feed delivers them on start)."""
    return max([n.window + 1 for n in needs if n.how in liquidity.HOWS] + [1])


class MarketData:
    """Checks coverage and holes for every needed series, then aligns each onto the grid."""

    def __init__(self, dataset: Dataset, data_cfg: DataConfig, needs: list[Need],
                 start: int | None, end: int | None):
        self.dataset = dataset
        self.needs = list(needs)
        self.outages: dict[str, np.ndarray] = {}  # venue -> hours it cannot be reached (stress scenarios)
        names = _required(needs)
        partial = sorted({n.series for n in needs if n.partial} - set(names))
        if start is None or end is None:
            lo, hi = self.default_window(dataset, needs)
            start = start if start is not None else lo
            end = end if end is not None else hi
        align.check_window(dataset, names, start, end, data_cfg)
        self.start, self.end = start, end
        self.grid = align.hourly_grid(start, end)
        self.warnings: list[align.DataWarning] = []
        self.data_cfg = data_cfg
        bridges = bridged(needs)
        for name in names:
            series = dataset.series(name)
            if series.meta.kind == "reward" or name in bridges:  # marks: judged on the hours left unmarked
                continue
            limit, key = align.staleness_limit(data_cfg, name, series.meta.kind)
            self.warnings += align.check_holes(series, start, end, limit, key)
            if (w := align.trailing_stale(series.meta, series.meta.end, end, limit)) is not None:
                self.warnings.append(w)
        self.partial_coverage: dict[str, tuple[int, int]] = {}
        for name in partial:
            series = dataset.series(name)
            limit, key = align.staleness_limit(data_cfg, name, series.meta.kind)
            lo, hi = align.coverage(series.meta, limit)
            self.partial_coverage[name] = (max(lo, start), min(hi, end))
            if series.meta.kind != "reward":
                self.warnings += align.check_holes(series, max(lo, start), min(hi, end), limit, key)
                if hi >= end and (w := align.trailing_stale(series.meta, series.meta.end, end, limit)) is not None:
                    self.warnings.append(w)
        self.mark_sources: dict[Need, tuple[np.ndarray, np.ndarray]] = {}  # marked need -> (source, via)
        self._liquidity: dict[tuple[str, int], dict[str, np.ndarray]] = {}  # (series, window) -> measures
        self._arrays = {need: self._align(need) for need in needs}
        self._liquidity = {}
        for name in sorted(bridges):
            self.warnings += self._mark_warnings(name, self.grid, *self.mark_sources[self.mark_need(name)])
        self.warnings.sort(key=lambda w: (w.after, w.series))
        self.series_used = reads(needs)
        self.data_hash = series_hash(dataset, self.series_used)
        # The per-tick loop reads lists of floats; the vectorised work after it, numpy arrays. Every list
        # handed out here remembers its array (by identity), so neither is converted twice.
        self._lists: dict[Need, list[float]] = {}
        self._array_of: dict[int, tuple[list[float], np.ndarray]] = {}  # the shared lists: values(), ones
        self._scratch: dict[int, tuple[list[float], np.ndarray]] = {}  # one run's own lists: floats()
        self.ones = self._remember(np.ones(len(self.grid)), self._array_of)

    @classmethod
    def default_window(cls, dataset: Dataset, needs: list[Need]) -> tuple[int, int]:
        """The whole hours every required series of `needs` covers (a run's window when none is given)."""
        names = _required(needs)
        lo, hi = cls.common_window(dataset, names)
        start, end = -(-lo // HOUR) * HOUR, hi // HOUR * HOUR
        if start >= end:
            raise DataError(
                f"no default window: the series {', '.join(names)} have no common hourly window in "
                f"{dataset.root} (from {iso(start)} to {iso(end)}); pass --data with a fuller dataset."
            )
        return start, end

    @staticmethod
    def common_window(dataset: Dataset, names: list[str]) -> tuple[int, int]:
        spans = [align.coverage(dataset.series_meta(n)) for n in names]
        return max(a for a, _ in spans), min(b for _, b in spans)

    def mark_need(self, series: str) -> Need:
        """The need whose marks stand for a bridged series (its price, else its first)."""
        own = [n for n in self.needs if n.series == series and n.marked]
        return next((n for n in own if n.how == "bar_price"), own[0])

    def mark_source(self, need: Need) -> np.ndarray | None:
        """Per hour, where the need's value came from (data/marks.py Source); None when it has no fallbacks."""
        got = self.mark_sources.get(need)
        return None if got is None else got[0]

    def _mark_warnings(self, name: str, grid: np.ndarray, source: np.ndarray, via: np.ndarray) -> list:
        """The marked stretches of a bridged series as warnings; a stretch with more unmarked hours than the
        series' staleness limit stops the run (as a hole does)."""
        need = self.mark_need(name)
        kind = self.dataset.series_meta(name).kind
        limit, key = align.staleness_limit(self.data_cfg, name, kind)
        found = marks.warnings_for(name, grid, source, via, list(need.alternates), need.reference, limit)
        for w in found:
            a, b = (int((w.after - grid[0]) // HOUR), int((w.until - grid[0]) // HOUR))
            unmarked = marks.longest_stale(source, a, b)
            if unmarked and unmarked + 2 > limit:  # + 2: a hole of h hours between bar labels leaves h - 2
                raise DataError(
                    f"{name}: no price from anywhere for {unmarked} h within {iso(w.after)} .. {iso(w.until)} "
                    f"(its own bars, {', '.join(need.alternates) or 'no other venue'} and "
                    f"{need.reference or 'no spot reference'} all missing); the limit is {limit:g} h ({key}). "
                    "Choose a window that avoids the hole, or raise the limit if stale values are acceptable."
                )
        return found

    def _align(self, need: Need) -> np.ndarray:
        series = self.dataset.series(need.series)
        if need.how in liquidity.HOWS:  # NaN wherever no bar closed in the window, partial series or not
            key = (need.series, need.window)
            if key not in self._liquidity:
                self._liquidity[key] = liquidity.measures(series, self.grid, need.window)
            return self._liquidity[key][need.how]
        if need.marked:
            values = (align.align_bar_price(series, self.grid) if need.how == "bar_price"
                      else align.align_bar_extreme(series, need.column, self.grid))
            alternates = [self.dataset.series(a) for a in need.alternates]
            reference = self.dataset.series(need.reference) if need.reference else None
            values, source, via = marks.marked(values, series, alternates, reference, need.how, need.column,
                                               self.grid)
            self.mark_sources[need] = (source, via)
            return values
        if need.partial:
            return self._align_partial(need, series)
        if need.ratio_of:
            return align.align_ratio_last(series, self.dataset.series(need.ratio_of), need.column, self.grid)
        if need.how == "bar_price":
            return align.align_bar_price(series, self.grid)
        if need.how == "bar_extreme":
            return align.align_bar_extreme(series, need.column, self.grid)
        if need.how == "last":
            return align.align_last(series, need.column, self.grid)
        if need.how == "quantile":
            return align.align_rolling_quantile(series, need.column, self.grid, need.window)
        if need.rate_column is not None:
            return align.align_accrued(series, need.column, need.rate_column, need.how, self.grid)
        return align.align_events(series, need.column, self.grid)

    def _align_partial(self, need: Need, series) -> np.ndarray:
        out = np.zeros(len(self.grid))
        if need.how == "events":
            return align.align_events(series, need.column, self.grid)
        lo, hi = self.partial_coverage[need.series]
        inside = (self.grid >= lo) & (self.grid <= hi)
        if inside.any():
            sub = self.grid[inside]
            out[inside] = (align.align_bar_price(series, sub) if need.how == "bar_price"
                           else align.align_last(series, need.column, sub))
        return out

    @property
    def n_points(self) -> int:
        return len(self.grid)

    def array(self, need: Need) -> np.ndarray:
        return self._arrays[need]

    def values(self, need: Need) -> list[float]:
        """The aligned array as a list of Python floats, the form the per-tick loop reads fastest
        (one list per need, shared: never mutate it)."""
        if need not in self._lists:
            self._lists[need] = self._remember(self._arrays[need], self._array_of)
        return self._lists[need]

    def overlaid(self, arrays: dict[Need, np.ndarray], outages: dict[str, np.ndarray]) -> MarketData:
        """A copy with some arrays replaced (a stress scenario's overlay) and venue outages; this one is untouched."""
        twin = copy.copy(self)
        twin._arrays = {**self._arrays, **arrays}
        twin._lists = {need: values for need, values in self._lists.items() if need not in arrays}
        twin._array_of = dict(self._array_of)
        twin._scratch = {}
        twin.outages = {**self.outages, **outages}
        return twin

    def finish(self) -> None:
        """Nothing to do: every array was whole before the loop (a market fed hour by hour rebuilds here)."""

    def begin_run(self) -> None:
        """Forget the lists of the previous run (a cached MarketData serves many runs in turn)."""
        self._scratch = {}

    def derived(self, recipe: Callable[[], np.ndarray]) -> list[float]:
        """A run's own array computed elementwise from aligned arrays (a price in share-class units), as a
        list for the loop. `recipe` reads the market through array(); a market fed hour by hour (paper
        trading) re-runs it on each new hour, so it must not look at other hours."""
        return self.floats(recipe())

    def before_derived(self, refresh: Callable[[MarketData], None]) -> None:
        """`refresh(market)` rebuilds what recipes read (the pricer's tables); run before every recipe."""
        refresh(self)

    def floats(self, array: np.ndarray) -> list[float]:
        """`array` (a run's own, e.g. a price) as a list of floats for the loop; array_of() gives it back
        until the next begin_run()."""
        return self._remember(array, self._scratch)

    @staticmethod
    def _remember(array: np.ndarray, memo: dict) -> list[float]:
        values = array.tolist()
        memo[id(values)] = (values, array)
        return values

    def array_of(self, values: list[float]) -> np.ndarray:
        """The numpy array of a list of floats over the grid (no conversion for lists made here)."""
        known = self._array_of.get(id(values)) or self._scratch.get(id(values))
        return known[1] if known is not None and known[0] is values else np.asarray(values, dtype=np.float64)


class MarketCache:
    """Aligned market data shared by every run of one window with the same needs and data settings:
    in a sweep, alignment depends on the window (start, end), the `data` config (staleness limits) and
    the set of needed series, which the strategy derives from its config (strategy, lst, hedge venues
    with a weight, basis.asset and spot venues, staking.entry/exit=swap, rewards.enabled, use_aave,
    target_ltv > 0, prices.*, costs.gas_series/gas_column/enabled); the key is those needs themselves."""

    def __init__(self, max_entries: int = 16):
        self.max_entries = max_entries
        self._entries: dict[tuple, MarketData] = {}

    def market(self, dataset: Dataset, data_cfg: DataConfig, needs: list[Need], start: int | None,
               end: int | None) -> MarketData:
        key = (frozenset(needs), start, end, data_cfg.model_dump_json())
        if key not in self._entries:
            if len(self._entries) >= self.max_entries:
                self._entries.pop(next(iter(self._entries)))
            self._entries[key] = MarketData(dataset, data_cfg, needs, start, end)
        return self._entries[key]
