"""Clocks: the backtest clock walks the hourly grid; the paper clock (paper/clock.py) waits for each hour."""

from __future__ import annotations

import numpy as np


class BacktestClock:
    """Valuation points start..end, one hour apart; point k is tick k of the loop."""

    def __init__(self, grid: np.ndarray):
        self.grid = grid

    def __len__(self) -> int:
        return len(self.grid)

    def start(self, book, events) -> None:
        """Nothing to prepare: every point's data is known before the loop."""

    def ticks(self) -> range:
        return range(len(self.grid))
