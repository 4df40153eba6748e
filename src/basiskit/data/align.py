"""Alignment of raw series onto the hourly grid (DESIGN §4), coverage and staleness checks.

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


def coverage(meta: SeriesMeta) -> tuple[int, int]:
    """The span of valuation points a series can serve, by its kind.

    Bars serve their open at the label and their close one bar later; events cover up to one
    spacing after the last; snapshots and points cover [first, last] (no extrapolation).
    """
    if meta.kind in ("bar", "event", "reward"):
        return meta.start, meta.end + spacing_seconds(meta)
    return meta.start, meta.end


def check_window(dataset: Dataset, names: Iterable[str], start: int, end: int) -> None:
    """Fail, naming every series that does not cover [start, end] and the window all of them cover."""
    names = sorted(set(names))
    spans = {n: coverage(dataset.series_meta(n)) for n in names}
    missing = [n for n, (a, b) in spans.items() if start < a or end > b]
    if not missing:
        return
    lo = max(a for a, _ in spans.values())
    hi = min(b for _, b in spans.values())
    lines = [f"the run window {iso(start)} .. {iso(end)} is not covered by the data in {dataset.root}:"]
    lines += [f"  - {n} covers {iso(spans[n][0])} .. {iso(spans[n][1])}" for n in missing]
    if lo < hi:
        lines.append(
            f"all {len(names)} series this run needs exist together in {iso(lo)} .. {iso(hi)}: "
            "choose --start/--end inside it."
        )
    else:
        lines.append("the series this run needs have no common window in this dataset.")
    raise DataError("\n".join(lines))


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
    return np.where(exact, opens[j], closes[j])


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


def align_geometric(ts: np.ndarray, values: np.ndarray, grid: np.ndarray, name: str) -> np.ndarray:
    """Geometric interpolation between snapshots, exact at them; no extrapolation.

    v(t) = v_k * (v_{k+1} / v_k) ** ((t - t_k) / (t_{k+1} - t_k)): a rate compounding at a constant
    continuous rate between snapshots (Aave indexes grow by compounding, Aave v3 docs, ReserveLogic).
    """
    if grid[0] < ts[0] or grid[-1] > ts[-1]:
        raise DataError(
            f"{name}: snapshots cover {iso(ts[0])} .. {iso(ts[-1])}; cannot extrapolate to "
            f"{iso(grid[0])} .. {iso(grid[-1])}."
        )
    j = np.searchsorted(ts, grid, side="right") - 1
    exact = ts[j] == grid
    nxt = np.minimum(j + 1, len(ts) - 1)
    span = np.where(exact, 1, ts[nxt] - ts[j]).astype(np.float64)
    frac = np.where(exact, 0.0, (grid - ts[j]) / span)
    out = values[j] * (values[nxt] / values[j]) ** frac
    out[exact] = values[j[exact]]
    return out


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
