"""Honest marks through holes (ARCHITECTURE.md §4): where a venue's own bars are missing, a position is marked from a
price observed at that hour, never from a close a day old. In order: the same instrument on another venue
that has the hour, else the reference spot price times the last observed basis (the venue's last close over
the spot close of the same bar). Every hour says where its mark came from (`Source`); an hour no price can be
had for keeps the last own price, and the staleness limit applies to those hours alone.

Each function reads only rows at or before the hour it values, and works on loaded series and on the
buffers of a market fed hour by hour alike (both have ts, column(), meta).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .dataset import spacing_seconds
from .timeutil import HOUR, iso

# Where an hour's mark came from: the venue's own price, the same instrument on another venue, the spot price
# with the last observed basis, or nowhere (the last own price, stale)
OWN, OTHER_VENUE, SPOT_BASIS, STALE = 0, 1, 2, 3


def bar_price(series, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The price a bar series observed at each point (the open of the bar labelled t, or the close of the bar
    that closed at t) and whether it did; NaN where it did not (a hole, or outside the series)."""
    ts = series.ts
    out = np.full(len(grid), np.nan)
    if not len(ts):
        return out, np.zeros(len(grid), dtype=bool)
    sp = spacing_seconds(series.meta)
    j = np.maximum(np.searchsorted(ts, grid, side="right") - 1, 0)
    opened, closed = ts[j] == grid, ts[j] + sp == grid
    out = np.where(opened, series.column("open")[j], np.where(closed, series.column("close")[j], np.nan))
    return out, np.isfinite(out) & (ts[j] <= grid)


def bar_extreme(series, column: str, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The high (or low) of the bar that closed at each point, never less extreme than the price observed
    then (as align_bar_extreme), and whether both were observed."""
    price, seen = bar_price(series, grid)
    ts = series.ts
    out = np.full(len(grid), np.nan)
    if not len(ts):
        return out, seen
    previous = grid - spacing_seconds(series.meta)
    j = np.minimum(np.searchsorted(ts, previous), len(ts) - 1)
    extreme = np.where(ts[j] == previous, series.column(column)[j], np.nan)
    out = np.fmax(extreme, price) if column == "high" else np.fmin(extreme, price)
    ok = seen & np.isfinite(extreme)
    return np.where(ok, out, np.nan), ok


def seen_at(series, how: str, column: str, t: int) -> bool:
    """Whether the series observed its own price (or extreme) at hour t, read from its last rows only: the
    one-hour form of `observed(...)[1]` for a market fed hour by hour, where rows never come from after t."""
    ts, n = series.ts, len(series.ts)
    sp = spacing_seconds(series.meta)
    if not n or ts[-1] > t:
        return bool(observed(series, how, column, np.array([t]))[1][0])  # not the hour-by-hour shape
    last = n - 1
    if how == "bar_price":
        return bool(ts[last] == t or (ts[last] + sp == t and np.isfinite(series.column("close")[last])))
    if ts[last] == t:  # the bar labelled t opened; the one labelled t - sp must have closed
        return bool(last >= 1 and ts[last - 1] == t - sp and np.isfinite(series.column(column)[last - 1]))
    return bool(ts[last] + sp == t and np.isfinite(series.column("close")[last])
                and np.isfinite(series.column(column)[last]))


def observed(series, how: str, column: str, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return bar_price(series, grid) if how == "bar_price" else bar_extreme(series, column, grid)


def last_basis(own, reference, grid: np.ndarray) -> np.ndarray:
    """At each point, own close / reference close of the last own bar closed by then (same label on both):
    the basis last observed; NaN where there is none."""
    ts, ref_ts = own.ts, reference.ts
    out = np.full(len(grid), np.nan)
    if not len(ts) or not len(ref_ts):
        return out
    j = np.searchsorted(ts, grid - spacing_seconds(own.meta), side="right") - 1
    ok = j >= 0
    j = np.maximum(j, 0)
    r = np.minimum(np.searchsorted(ref_ts, ts[j]), len(ref_ts) - 1)
    ok &= ref_ts[r] == ts[j]
    with np.errstate(divide="ignore", invalid="ignore"):
        basis = own.column("close")[j] / reference.column("close")[r]
    return np.where(ok, basis, out)


def marked(values: np.ndarray, own, alternates: list, reference, how: str, column: str,
           grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`values` (the own series aligned as usual: the last own price through a hole) with every hour the
    own series did not observe marked from the first fallback that did; each hour's Source, and which
    alternate (its index; -1 for none) marked it."""
    _, seen = observed(own, how, column, grid)
    out = values.copy()
    source = np.where(seen, OWN, STALE).astype(np.int8)
    via = np.full(len(grid), -1, dtype=np.int8)
    for i, alt in enumerate(alternates):
        v, ok = observed(alt, how, column, grid)
        take = (source == STALE) & ok
        out[take], source[take], via[take] = v[take], OTHER_VENUE, i
    if reference is not None and (source == STALE).any():
        v, ok = observed(reference, how, column, grid)
        v = v * last_basis(own, reference, grid)  # spot x (perp / spot at the last own close)
        take = (source == STALE) & ok & np.isfinite(v)
        out[take], source[take] = v[take], SPOT_BASIS
    return out, source, via


@dataclass(frozen=True)
class MarkWarning:
    """Hours `after` .. `until` (both included) in which `series` had no price of its own, and the sources
    its marks came from; shaped like align.DataWarning for the event log."""

    series: str
    after: int
    until: int
    limit_hours: float
    used: str  # the series the marks came from, or "" when the last own price was kept

    @property
    def hours(self) -> float:
        return (self.until - self.after) / HOUR + 1

    def message(self) -> str:
        how = f"marked from {self.used}" if self.used else \
            f"last own price kept (limit {self.limit_hours:g} h)"
        return f"{self.series}: no price of its own for {self.hours:g} h, {iso(self.after)} .. {iso(self.until)}; {how}"


def stretches(source: np.ndarray) -> list[tuple[int, int]]:
    """Runs of hours (first, last, both included) whose mark was not the venue's own."""
    off = np.concatenate(([False], source != OWN, [False]))
    edges = np.flatnonzero(np.diff(off.astype(np.int8)))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def longest_stale(source: np.ndarray, first: int, last: int) -> int:
    """The longest run of STALE hours in source[first..last]."""
    run = best = 0
    for s in source[first:last + 1]:
        run = run + 1 if s == STALE else 0
        best = max(best, run)
    return best


def used_series(source: np.ndarray, via: np.ndarray, first: int, last: int, alternates: list[str],
                reference: str | None) -> str:
    """The series the marks of hours first..last came from, for the warning."""
    names = [a for i, a in enumerate(alternates) if (via[first:last + 1] == i).any()]
    if (source[first:last + 1] == SPOT_BASIS).any():
        names.append(f"{reference} x the last basis")
    return ", ".join(names)


def warnings_for(series: str, grid: np.ndarray, source: np.ndarray, via: np.ndarray, alternates: list[str],
                 reference: str | None, limit_hours: float) -> list[MarkWarning]:
    """One warning per run of hours not marked from the venue's own price."""
    return [MarkWarning(series, int(grid[a]), int(grid[b]), limit_hours,
                        used_series(source, via, a, b, alternates, reference)) for a, b in stretches(source)]
