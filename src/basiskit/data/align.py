"""Alignment of raw series onto the hourly grid (ARCHITECTURE.md §4), coverage and staleness checks.

The grid is the array of valuation points start, start+1h, ..., end (epoch seconds).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ..errors import DataError
from .dataset import Dataset, Series, SeriesMeta, spacing_seconds
from .timeutil import HOUR, iso


@dataclass(frozen=True)
class DataWarning:
    """A stale stretch a run used: no new observation of `series` between `after` and `until`."""

    series: str
    after: int
    until: int
    limit_hours: float

    @property
    def hours(self) -> float:
        return (self.until - self.after) / HOUR

    def message(self) -> str:
        return (
            f"{self.series}: no observation for {self.hours:g} h after {iso(self.after)} "
            f"(next {iso(self.until)}); last value used (limit {self.limit_hours:g} h)"
        )


def hourly_grid(start: int, end: int) -> np.ndarray:
    """Valuation points from start to end inclusive, one hour apart."""
    if start % HOUR or end % HOUR:
        raise DataError(f"window {iso(start)} .. {iso(end)} must start and end on a whole UTC hour.")
    return np.arange(start, end + HOUR, HOUR, dtype=np.int64)


def staleness_limit(cfg, name: str, kind: str) -> tuple[float, str]:
    """The longest stale stretch (hours) `cfg` (a DataConfig) allows series `name`, and its config key."""
    if kind == "reward":
        return 0.0, ""  # irregular credit dates: no limit (coverage() ignores it)
    if name in cfg.staleness_hours_by_series:
        return cfg.staleness_hours_by_series[name], f"data.staleness_hours_by_series.{name}"
    return getattr(cfg.staleness_hours, kind), f"data.staleness_hours.{kind}"


def coverage(meta: SeriesMeta, limit_hours: float = 0.0) -> tuple[int, int]:
    """The span of valuation points a series can serve, by its kind.

    Bars serve their open at the label and their close one bar later; events cover up to one spacing
    after the last; snapshots and points their last row. Beyond that, a window may go on for the series'
    staleness limit `limit_hours` after its last row (the last value used, flagged as a data warning);
    rewards have no limit.
    """
    spacing = spacing_seconds(meta) if meta.kind in ("bar", "event", "reward") else 0
    if meta.kind == "reward":
        return meta.start, meta.end + spacing
    return meta.start, meta.end + max(spacing, int(limit_hours * HOUR))


def check_window(dataset: Dataset, names: Iterable[str], start: int, end: int, data_cfg=None) -> None:
    """Fail, naming every series that does not cover [start, end] and the window all of them cover
    (each series' staleness limit after its last row included when `data_cfg` is given)."""
    names = sorted(set(names))
    spans = {n: coverage(dataset.series_meta(n), _limit_hours(data_cfg, dataset.series_meta(n)))
             for n in names}
    missing = [n for n, (a, b) in spans.items() if start < a or end > b]
    if not missing:
        return
    lo = max(a for a, _ in spans.values())
    hi = min(b for _, b in spans.values())
    lines = [f"the run window {iso(start)} .. {iso(end)} is not covered by the data in {dataset.root}:"]
    lines += [f"  - {n} covers {iso(spans[n][0])} .. {iso(spans[n][1])}" for n in missing]
    if lo < hi:
        lines.append(
            f"all {len(names)} series this run needs exist together in {iso(lo)} .. {iso(hi)} (a window may end "
            "up to each series' staleness limit after its last row): choose --start/--end inside it."
        )
    else:
        lines.append("the series this run needs have no common window in this dataset.")
    raise DataError("\n".join(lines))


def _limit_hours(data_cfg, meta: SeriesMeta) -> float:
    return 0.0 if data_cfg is None else staleness_limit(data_cfg, meta.name, meta.kind)[0]


def trailing_stale(meta: SeriesMeta, last: int, end: int, limit_hours: float) -> DataWarning | None:
    """The stretch after a series' last row (at `last`) that a window ending at `end` uses when a row was
    due before it (as a hole: longer than the spacing; check_window refused one beyond the limit)."""
    if meta.kind == "reward" or end - last <= spacing_seconds(meta):
        return None
    return DataWarning(meta.name, last, end, limit_hours)


def check_holes(series: Series, start: int, end: int, limit_hours: float, limit_key: str) -> list[DataWarning]:
    """Holes (gaps longer than the series' spacing) that touch [start, end].

    A hole within `limit_hours` becomes a DataWarning; a longer one stops the run.
    """
    ts = series.ts
    spacing = spacing_seconds(series.meta)
    gaps = np.diff(ts)
    idx = np.nonzero((gaps > spacing) & (ts[:-1] < end) & (ts[1:] > start))[0]
    warnings = []
    for i in idx:
        w = DataWarning(series.meta.name, int(ts[i]), int(ts[i + 1]), limit_hours)
        if w.hours > limit_hours:
            raise DataError(
                f"{series.path}: hole of {w.hours:g} h after {iso(w.after)} (next row {iso(w.until)}) inside "
                f"the run window {iso(start)} .. {iso(end)}; the limit is {limit_hours:g} h ({limit_key}). "
                "Choose a window that avoids the hole, or raise the limit if stale values are acceptable."
            )
        warnings.append(w)
    return warnings


def _last_at_or_before(ts: np.ndarray, grid: np.ndarray, name: str) -> np.ndarray:
    j = np.searchsorted(ts, grid, side="right") - 1
    if (j < 0).any():
        raise DataError(f"{name}: no value at or before {iso(grid[int(np.argmax(j < 0))])}.")
    return j


def align_bar_price(series: Series, grid: np.ndarray) -> np.ndarray:
    """Price known at each point: the open of the bar labelled t, else the close of the last bar before.

    A bar labelled L closes at L + spacing, so its close is used only from then on (no look-ahead).
    """
    ts = series.ts
    opens, closes = series.column("open"), series.column("close")
    j = _last_at_or_before(ts, grid, series.meta.name)
    exact = ts[j] == grid
    closed = ts[j] + spacing_seconds(series.meta) <= grid
    if not (exact | closed).all():
        k = int(np.argmax(~(exact | closed)))
        raise DataError(f"{series.path}: bar {iso(ts[j[k]])} is still open at {iso(grid[k])}; grid mismatch.")
    out = np.where(exact, opens[j], closes[j])
    if np.isnan(out).any():
        k = int(np.argmax(np.isnan(out)))
        raise DataError(f"{series.path}: the bar labelled {iso(ts[j[k]])} has no close (it was still open when "
                        f"the data was written), so nothing is known at {iso(grid[k])}; end the window earlier.")
    return out


def align_bar_extreme(series: Series, column: str, grid: np.ndarray) -> np.ndarray:
    """The high (or low) of the bar that closed at each point (labelled t - spacing, so known at t), never
    less extreme than the price known at t; that price where no bar closed then (a hole)."""
    known = align_bar_price(series, grid)
    previous = grid - spacing_seconds(series.meta)
    j = np.minimum(np.searchsorted(series.ts, previous), len(series.ts) - 1)
    extreme = np.where(series.ts[j] == previous, series.column(column)[j], known)
    return np.maximum(extreme, known) if column == "high" else np.minimum(extreme, known)


def align_last(series: Series, column: str, grid: np.ndarray) -> np.ndarray:
    """Last value at or before each point."""
    values = series.column(column)
    return values[_last_at_or_before(series.ts, grid, series.meta.name)]


def rolling_quantile(ts: np.ndarray, values: np.ndarray, window_seconds: int, q: float) -> np.ndarray:
    """At each row, the q-quantile (linear interpolation, as numpy's) of the rows in (ts - window, ts]: only rows
    observed by then."""
    import pandas as pd

    s = pd.Series(np.asarray(values, dtype=np.float64), index=pd.to_datetime(np.asarray(ts), unit="s"))
    return s.rolling(pd.Timedelta(seconds=window_seconds)).quantile(q).to_numpy()


QUANTILE = 0.99  # the "quantile" alignment's q: the 99th percentile (the gas reserve's price)


def align_rolling_quantile(series: Series, column: str, grid: np.ndarray, window_hours: int,
                           q: float = QUANTILE) -> np.ndarray:
    """The q-quantile of the rows of the last `window_hours` at or before each point (causal: the row that is the
    last at or before t closes the window)."""
    per_row = rolling_quantile(series.ts, series.column(column), window_hours * HOUR, q)
    return per_row[_last_at_or_before(series.ts, grid, series.meta.name)]


SECONDS_PER_YEAR = 365 * 24 * HOUR  # Aave v3 MathUtils: SECONDS_PER_YEAR = 365 days (leap years ignored)
RAY = 1e27  # Aave v3 WadRayMath: rates and indexes are rays (27 decimals)


def linear_interest(rate: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """Growth of the liquidity index over `seconds` at the APR `rate`: 1 + rate x seconds / year
    (Aave v3 MathUtils.calculateLinearInterest)."""
    return 1.0 + rate * seconds / SECONDS_PER_YEAR


def compounded_interest(rate: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """Growth of the variable borrow index over `seconds` at the APR `rate`, as Aave v3
    MathUtils.calculateCompoundedInterest computes it in ray: 1 + n x + n(n-1)/2 x^2 + n(n-1)(n-2)/6 x^3 (x the
    per-second rate, n the seconds; 1 when n = 0), with the contract's integer truncation of the powers
    basePowerTwo = rayMul(rate, rate) / year^2 and basePowerThree = rayMul(basePowerTwo, rate) / year (so the
    third term vanishes at low rates, as on chain)."""
    n = seconds.astype(np.float64)
    n1 = np.maximum(n - 1.0, 0.0)
    n2 = np.maximum(n - 2.0, 0.0)
    rate_ray = rate * RAY
    base2 = np.floor(rate_ray * rate / (SECONDS_PER_YEAR * SECONDS_PER_YEAR))  # in ray units
    base3 = np.floor(base2 * rate / SECONDS_PER_YEAR)
    return 1.0 + rate * n / SECONDS_PER_YEAR + (n * n1 * base2 / 2.0 + n * n1 * n2 * base3 / 6.0) / RAY


ACCRUAL = {"linear_accrual": linear_interest, "compound_accrual": compounded_interest}


def align_accrued(series: Series, column: str, rate_column: str, how: str, grid: np.ndarray) -> np.ndarray:
    """An Aave index at each point, from the last snapshot at or before it only: the snapshot's index
    grown at the snapshot's own rate for the time since (Aave v3 ReserveLogic.getNormalizedIncome and
    getNormalizedDebt: index x calculateLinearInterest / calculateCompoundedInterest). The next snapshot's
    observed value takes over when it arrives; nothing is read from a later row."""
    ts = series.ts
    j = _last_at_or_before(ts, grid, series.meta.name)
    return series.column(column)[j] * ACCRUAL[how](series.column(rate_column)[j], grid - ts[j])


def align_ratio_last(num: Series, den: Series, column: str, grid: np.ndarray) -> np.ndarray:
    """num[column] / den[column] of the last snapshot both have at or before each point (an LST's
    exchange rate as Aave's oracle saw it then)."""
    ts, values = snapshot_ratio(num, den, column)
    return values[_last_at_or_before(ts, grid, f"{num.meta.name} / {den.meta.name}")]


def align_events(series: Series, column: str, grid: np.ndarray) -> np.ndarray:
    """Sum of event values settled at each point: events in (t_{k-1}, t_k] go to point k.

    Events at or before the first point happened before the run and are not settled.
    """
    values = series.column(column)
    ts = series.ts
    out = np.zeros(len(grid), dtype=np.float64)
    inside = (ts > grid[0]) & (ts <= grid[-1])
    k = np.searchsorted(grid, ts[inside], side="left")
    np.add.at(out, k, values[inside])
    return out


def snapshot_ratio(num: Series, den: Series, column: str) -> tuple[np.ndarray, np.ndarray]:
    """num[column] / den[column] on the snapshots both series have; every snapshot must match."""
    if len(num.ts) != len(np.intersect1d(num.ts, den.ts)):
        missing = np.setdiff1d(num.ts, den.ts)
        raise DataError(
            f"{den.path}: no snapshot at {iso(missing[0])}, which {num.path} has; the ratio of their "
            f"{column!r} needs both on the same timestamps. Fix the data."
        )
    idx = np.searchsorted(den.ts, num.ts)
    return num.ts, num.column(column) / den.column(column)[idx]
