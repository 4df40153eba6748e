"""A market filled hour by hour (paper trading): the feed's rows land in per-series buffers and the
aligned value of every need at hour k is computed, by the same alignment functions as a backtest, from
the rows seen up to hour k only. Nothing at index k exists before hour k was delivered (NaN).

Rows are checked on arrival: a NaN, a zero or negative price, a row from the future, time going
backwards, a second settlement at the same time or a revised bar are refused (reported, never stored).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..config.models import DataConfig
from . import align, liquidity, marks
from .dataset import NON_NEGATIVE_COLUMNS, POSITIVE_COLUMNS, Dataset, SeriesMeta, spacing_seconds
from .market import MarketData, Need, _required, bridged, reads, series_hash
from .timeutil import HOUR, iso


class SeriesBuffer:
    """The rows of one series seen so far, shaped like a loaded Series for the alignment functions."""

    def __init__(self, meta: SeriesMeta, columns: list[str], capacity: int = 256):
        self.meta = meta
        self.path = f"feed:{meta.name}"
        self.names = list(columns)
        self._ts = np.zeros(capacity, dtype=np.int64)
        self._cols = {c: np.full(capacity, np.nan) for c in self.names}
        self.n = 0

    @property
    def ts(self) -> np.ndarray:
        return self._ts[: self.n]

    @property
    def columns(self) -> dict[str, np.ndarray]:
        return {c: v[: self.n] for c, v in self._cols.items()}

    def column(self, name: str) -> np.ndarray:
        if name not in self._cols:
            raise KeyError(f"{self.meta.name}: no column {name!r}")
        return self._cols[name][: self.n]

    @property
    def last_ts(self) -> int | None:
        return int(self._ts[self.n - 1]) if self.n else None

    def last_row(self) -> dict[str, float]:
        return {c: float(v[self.n - 1]) for c, v in self._cols.items()}

    def append(self, ts: int, values: dict[str, float]) -> None:
        if self.n == len(self._ts):
            self._ts = np.concatenate([self._ts, np.zeros(len(self._ts), dtype=np.int64)])
            self._cols = {c: np.concatenate([v, np.full(len(v), np.nan)]) for c, v in self._cols.items()}
        self._ts[self.n] = ts
        for c, v in self._cols.items():
            v[self.n] = values.get(c, np.nan)
        self.n += 1

    def update_last(self, values: dict[str, float]) -> None:
        for c, v in values.items():
            self._cols[c][self.n - 1] = v


@dataclass(frozen=True)
class Refusal:
    """A row the market would not take: which series, when, and why."""

    series: str
    ts: int
    reason: str

    def message(self) -> str:
        return f"{self.series} row at {iso(self.ts)} refused: {self.reason}"


@dataclass(frozen=True)
class Staleness:
    """A required series with no new row for longer than its limit at hour `at`."""

    series: str
    last: int
    at: int
    next_row: int | None
    limit_hours: float
    limit_key: str

    @property
    def hours(self) -> float:
        return ((self.next_row or self.at) - self.last) / HOUR

    def message(self) -> str:
        until = f"next row {iso(self.next_row)}" if self.next_row else f"none yet at {iso(self.at)}"
        return (f"{self.series}: no observation for {self.hours:g} h after {iso(self.last)} ({until}); "
                f"the limit is {self.limit_hours:g} h ({self.limit_key})")


class LiveMarket(MarketData):
    """MarketData over a session's window whose arrays are filled at index k when hour k is delivered.

    Alignment at hour k applies the backtest's own functions (ARCHITECTURE.md §4) to the rows seen so far, and
    every one of them reads only rows at or before the hour: the result is the backtest's value whatever
    follows. Aave indexes accrue from the last snapshot (a live chain feed delivers one every hour, so
    the accrual is then zero seconds long: the index the chain returned).
    """

    def __init__(self, dataset: Dataset, data_cfg: DataConfig, needs: list[Need], start: int, end: int,
                 coverage: dict[str, tuple[int, int]] | None = None):
        self.dataset = dataset
        self.data_cfg = data_cfg
        self.needs = list(needs)
        self.outages = {}
        self.start, self.end = start, end
        self.grid = align.hourly_grid(start, end)
        self.warnings: list[align.DataWarning] = []
        self.required = _required(needs)
        partial = sorted({n.series for n in needs if n.partial} - set(self.required))
        self.bridges = bridged(needs)
        self.checked = [n for n in self.required if n not in self.bridges] + partial  # holes warn or stop
        self.series_used = reads(needs)
        coverage = coverage or {}
        self.partial_coverage = {}
        for name in partial:
            lo, hi = coverage.get(name, (start, end))
            self.partial_coverage[name] = (max(lo, start), min(hi, end))
        self.buffers = {}
        for name in self.series_used:
            meta = dataset.series_meta(name)
            self.buffers[name] = SeriesBuffer(meta, [c for c in meta.columns if c != "timestamp"])
        self.data_hash = series_hash(dataset, self.series_used)
        n = len(self.grid)
        self._arrays = {need: np.full(n, np.nan) for need in self.needs}
        self.mark_sources = {need: (np.zeros(n, dtype=np.int8), np.full(n, -1, dtype=np.int8))
                             for need in self.needs if need.marked}
        self._liquidity: dict[tuple[str, int], tuple[int, dict]] = {}  # (series, window) -> (hour, measures)
        self._lists, self._array_of, self._scratch = {}, {}, {}
        for need in self.needs:
            self._lists[need] = self._remember(self._arrays[need], self._array_of)
        self.ones = self._remember(np.ones(n), self._array_of)
        self._refreshers: list[Callable[[MarketData], None]] = []
        self._recipes: list[tuple[Callable[[], np.ndarray], list[float]]] = []
        self._view: int | None = None
        self.delivered = -1  # the last hour whose values are in the arrays
        self.refusals: list[Refusal] = []  # rows refused, in delivery order (the driver reports them)
        self._holes: dict[str, Staleness] = {}  # holes beyond the limit closed by a late row
        self.fixed: dict[Need, float] = {}  # quantile needs whose value the driver gives (live: the chain's history)

    # --- MarketData, hour by hour ------------------------------------------------------------------
    def array(self, need: Need) -> np.ndarray:
        a = self._arrays[need]
        return a if self._view is None else a[self._view:self._view + 1]

    def derived(self, recipe: Callable[[], np.ndarray]) -> list[float]:
        values = self.floats(recipe())
        self._recipes.append((recipe, values))
        return values

    def before_derived(self, refresh: Callable[[MarketData], None]) -> None:
        self._refreshers.append(refresh)
        refresh(self)

    def begin_run(self) -> None:
        self._scratch = {}
        self._recipes = []

    # --- delivery ---------------------------------------------------------------------------------
    def take(self, series: str, ts: int, values: dict[str, float], now: int) -> bool:
        """Check one row and add it to its buffer (an identical re-delivery is a no-op); False, and a
        Refusal in `refusals`, when it is refused."""
        buf = self.buffers.get(series)
        if buf is None:
            return True  # a series this session does not use: nothing to check, nothing to store
        problem = self._problem(buf, ts, values, now)
        if problem is None:
            last = buf.last_ts
            if last is not None and ts == last:
                buf.update_last(values)  # a bar's close completes the row its open started
            else:
                buf.append(ts, values)
                if last is not None:
                    self._gap(buf, last, ts)
            return True
        if problem == "":
            return True
        self.refusals.append(Refusal(series, ts, problem))
        completes = buf.meta.kind == "bar" and "close" in values and ts == buf.last_ts
        if completes and math.isnan(buf.last_row()["close"]):
            buf.n -= 1  # the bar's close was refused: forget its open too, as if the bar never came
        return False

    def _problem(self, buf: SeriesBuffer, ts: int, values: dict[str, float], now: int) -> str | None:
        """None: take the row; '': ignore it silently (an identical re-delivery); else the reason to refuse."""
        for c, v in values.items():
            if c not in buf.names:
                return f"unknown column {c!r} (the series has {', '.join(buf.names)})"
            if not isinstance(v, float | int) or math.isnan(v):
                return f"{c} is {v!r}, not a number"
            if c in POSITIVE_COLUMNS and v <= 0.0:
                return f"{c} is {v!r}; a price, index or rate must be > 0"
            if c in NON_NEGATIVE_COLUMNS and v < 0.0:
                return f"{c} is {v!r}; it cannot be negative"
        if ts > now:
            return f"its time is after the hour being delivered ({iso(now)}): a row from the future"
        last = buf.last_ts
        if last is None or ts > last:
            return None
        if ts < last:
            return f"time goes backwards (the last row is at {iso(last)})"
        if buf.meta.kind in ("event", "reward"):
            return "a second settlement at the same time (duplicate)"
        row = buf.last_row()
        if all(row[c] == v for c, v in values.items()):
            return ""
        if buf.meta.kind == "bar" and all(math.isnan(row[c]) for c in values if c != "open") and \
                values.get("open", row["open"]) == row["open"]:
            return None
        return "it revises a row already delivered"

    def _gap(self, buf: SeriesBuffer, last: int, ts: int) -> None:
        """A hole closed by the row at `ts` (ARCHITECTURE.md §4, as align.check_holes): a warning within the limit."""
        meta = buf.meta
        if meta.kind == "reward" or ts - last <= spacing_seconds(meta) or meta.name not in self.checked:
            return  # a bridged series' holes are judged on its marks (fill, stale)
        lo, hi = self.partial_coverage.get(meta.name, (self.start, self.end))
        if not (last < hi and ts > lo):
            return
        limit, key = align.staleness_limit(self.data_cfg, meta.name, meta.kind)
        w = align.DataWarning(meta.name, last, ts, limit)
        if w.hours > limit:
            if meta.name in self.required:
                self._holes[meta.name] = Staleness(meta.name, last, ts, ts, limit, key)
            return
        self.warnings.append(w)

    def stale(self, k: int) -> list[Staleness]:
        """Required series whose last row is older than their limit at hour k (or whose last hole was)."""
        t = int(self.grid[k])
        out = list(self._holes.values())
        self._holes = {}
        for name in self.required:
            buf = self.buffers[name]
            if buf.meta.kind == "reward" or name in {s.series for s in out}:
                continue
            limit, key = align.staleness_limit(self.data_cfg, name, buf.meta.kind)
            last = buf.last_ts
            if name in self.bridges and last is not None:
                # stale only when no fallback marks hour k either, for longer than the limit (as a backtest)
                need = self.mark_need(name)
                if marks.seen_at(buf, need.how, need.column, t):
                    continue
                source = self._marked(need, np.zeros(1), self.grid[k:k + 1])[1][0]
                unmarked = self._unmarked_before(need, k) + 1 if source == marks.STALE else 0
                if unmarked and unmarked + 2 > limit:
                    out.append(Staleness(name, last, t, None, limit, key))
                continue
            if last is None or (t - last) / HOUR > limit:
                out.append(Staleness(name, last if last is not None else t, t, None, limit, key))
        return out

    def _unmarked_before(self, need: Need, k: int) -> int:
        """How many hours just before k kept the last own price (no fallback had one)."""
        source = self.mark_sources[need][0]
        run = 0
        while k - run - 1 >= 0 and source[k - run - 1] == marks.STALE:
            run += 1
        return run

    def _marked(self, need: Need, values: np.ndarray, grid: np.ndarray):
        return marks.marked(values, self.buffers[need.series], [self.buffers[a] for a in need.alternates],
                            self.buffers[need.reference] if need.reference else None, need.how, need.column, grid)

    def fill(self, k: int) -> None:
        """Compute every need at hour k from the rows seen so far, then the derived arrays (prices in
        share-class units, gas) at k."""
        t = int(self.grid[k])
        if k == len(self.grid) - 1:  # the window ends: a stretch since a series' last row, as a backtest sees it
            for name in self.checked:
                buf = self.buffers[name]
                lo, hi = self.partial_coverage.get(name, (self.start, self.end))
                if buf.n and hi >= t:
                    limit = align.staleness_limit(self.data_cfg, name, buf.meta.kind)[0]
                    if (w := align.trailing_stale(buf.meta, buf.ts[-1], t, limit)) is not None:
                        self.warnings.append(w)
        for need in self.needs:
            value = self._value(need, k, t)
            if need.marked and not marks.seen_at(self.buffers[need.series], need.how, need.column, t):
                marked, source, via = self._marked(need, np.array([value]), self.grid[k:k + 1])
                value = float(marked[0])
                self.mark_sources[need][0][k], self.mark_sources[need][1][k] = source[0], via[0]
            self._arrays[need][k] = value
            self._lists[need][k] = value
        self._close_mark_stretches(k)
        self._view = k
        try:
            for refresh in self._refreshers:
                refresh(self)
            for recipe, values in self._recipes:
                v = float(recipe()[0])
                values[k] = v
                self.array_of(values)[k] = v
        finally:
            self._view = None
        self.delivered = k

    def _close_mark_stretches(self, k: int) -> None:
        """A bridged series' run of marked hours that ended at k (or the window did) becomes its warning."""
        for name in sorted(self.bridges):
            source, via = self.mark_sources[self.mark_need(name)]
            if k and source[k] == marks.OWN and source[k - 1] != marks.OWN:
                end = k
            elif k == len(self.grid) - 1 and source[k] != marks.OWN:
                end = k + 1
            else:
                continue
            a = end - 1
            while a > 0 and source[a - 1] != marks.OWN:
                a -= 1
            self.warnings += self._mark_warnings(name, self.grid[a:end], source[a:end], via[a:end])

    def finish(self) -> None:
        """Rebuild what the recipes read over the whole window (for the results after the loop)."""
        for refresh in self._refreshers:
            refresh(self)
        self.warnings.sort(key=lambda w: (w.after, w.series))

    def _value(self, need: Need, k: int, t: int) -> float:
        buf = self.buffers[need.series]
        grid = self.grid[k:k + 1]
        if need.how in liquidity.HOWS:  # NaN wherever no bar closed in the window, partial series or not
            key = (need.series, need.window)
            hour, measured = self._liquidity.get(key, (-1, {}))
            if hour != k:
                hour, measured = self._liquidity[key] = (k, liquidity.measures(buf, grid, need.window))
            return float(measured[need.how][0])
        if need.how == "events":
            if k == 0 or not buf.n:
                return 0.0  # events at or before the first point happened before the run
            return float(align.align_events(buf, need.column, self.grid[k - 1:k + 1])[1])
        if need.partial:
            lo, hi = self.partial_coverage[need.series]
            if not (lo <= t <= hi) or not buf.n or buf.ts[0] > t:
                return 0.0
        if need.ratio_of:
            return float(align.align_ratio_last(buf, self.buffers[need.ratio_of], need.column, grid)[0])
        if need.rate_column is not None:
            return float(align.align_accrued(buf, need.column, need.rate_column, need.how, grid)[0])
        if need.how == "bar_price":
            return float(align.align_bar_price(buf, grid)[0])
        if need.how == "bar_extreme":
            return float(align.align_bar_extreme(buf, need.column, grid)[0])
        if need.how == "quantile":
            if need in self.fixed:  # a value the live driver read elsewhere (eth_feeHistory's 30 days)
                return self.fixed[need]
            return float(align.align_rolling_quantile(buf, need.column, grid, need.window)[0])
        return float(align.align_last(buf, need.column, grid)[0])
