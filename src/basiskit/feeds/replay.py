"""Feeds: what a paper session observes each hour, and the replay feed that serves a recorded dataset.

A feed hands the session, for hour t, a Delivery: the new rows of each series (a bar's open at its
label, its whole row once it closed; a settlement at its time; a snapshot at its time): exactly what a
live read would have shown at t, nothing computed from later rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..data import align
from ..data.dataset import Dataset, Series, spacing_seconds
from ..data.market import Need, _required, history_bars, reads
from ..data.timeutil import HOUR

Row = tuple[int, dict[str, float]]


@dataclass
class Delivery:
    """Hour `t`'s observations: rows per series (time, values)."""

    t: int
    rows: dict[str, list[Row]] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"t": self.t, "rows": {s: [[ts, v] for ts, v in rows] for s, rows in self.rows.items()}},
                          separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Delivery:
        raw = json.loads(text)
        rows = {s: [(int(ts), v) for ts, v in rows] for s, rows in raw["rows"].items()}
        return cls(int(raw["t"]), rows)

    def merge(self, other: Delivery) -> None:
        """Add `other`'s rows (a second poll of the same hour)."""
        for s, rows in other.rows.items():
            self.rows.setdefault(s, []).extend(rows)


class Feed(Protocol):
    """A source of hourly observations."""

    name: str
    final: bool  # True: the data is recorded, a hole never fills (the session stops); False: wait for it

    def coverage(self, data_cfg) -> dict[str, tuple[int, int]]:
        """Per series, the span it can serve under `data_cfg`'s staleness limits (partial series are zero
        outside it)."""

    def attach(self, market) -> None:
        """The market the feed delivers to: its buffers are where the feed stands (also after a resume)."""

    def hour(self, k: int, t: int) -> Delivery | None:
        """The observations for hour t (point k), or None when that hour cannot be observed yet."""


def _values(series: Series, i: int, columns: list[str]) -> dict[str, float]:
    return {c: float(series.columns[c][i]) for c in columns}


class ReplayFeed:
    """A recorded dataset served hour by hour, holes and all: a row missing from the file is missing at
    its hour, and a row is delivered at its own time, never earlier."""

    name = "replay"
    final = True

    def __init__(self, dataset: Dataset, needs: list[Need], grid: np.ndarray, data_cfg):
        self.dataset = dataset
        self.grid = grid
        # The window must lie in the data, as for a backtest (else the replay would only ever find it stale).
        align.check_window(dataset, _required(needs), int(grid[0]), int(grid[-1]), data_cfg)
        names = reads(needs)
        self.series = {name: dataset.raw_series(name) for name in names}
        self.history = history_bars(needs)
        # rows the quantile needs read before the first hour (the gas reserve's 30 days), by series
        self.window_rows = {n.series: n.window * HOUR for n in needs if n.how == "quantile"}

    def coverage(self, data_cfg) -> dict[str, tuple[int, int]]:
        return {name: align.coverage(s.meta, align.staleness_limit(data_cfg, name, s.meta.kind)[0])
                for name, s in self.series.items()}

    def attach(self, market) -> None:
        """Nothing to learn: a replay serves each hour's rows by time."""

    def hour(self, k: int, t: int) -> Delivery:
        lo = t - HOUR
        rows: dict[str, list[Row]] = {}
        for name, s in self.series.items():
            cols = list(s.columns)
            ts = s.ts
            out: list[Row] = []
            if s.meta.kind == "bar":
                spacing = spacing_seconds(s.meta)
                closes = ts + spacing
                if k == 0:  # the history a live feed fetches on start: the last closed bars the needs read
                    closed = np.nonzero((closes <= t) & (ts >= t - self.history * spacing))[0]
                    opened = np.nonzero((ts <= t) & (closes > t))[0]
                else:
                    closed = np.nonzero((closes > lo) & (closes <= t))[0]
                    opened = np.nonzero((ts > lo) & (ts <= t))[0]
                out += [(int(ts[i]), _values(s, i, cols)) for i in closed]
                out += [(int(ts[i]), {"open": float(s.columns["open"][i])}) for i in opened]
            else:
                if k == 0:  # the last row, or every row of the window a quantile need reads
                    idx = (np.nonzero((ts <= t) & (ts > t - self.window_rows[name]))[0] if name in self.window_rows
                           else np.nonzero(ts <= t)[0][-1:])
                else:
                    idx = np.nonzero((ts > lo) & (ts <= t))[0]
                out += [(int(ts[i]), _values(s, i, cols)) for i in idx]
            if out:
                rows[name] = out
        return Delivery(t, rows)
