"""Clocks: the backtest clock walks the hourly grid; a live clock would follow the wall clock."""

from __future__ import annotations

import numpy as np


class BacktestClock:
    """Valuation points start..end, one hour apart; point k is tick k of the loop."""

    def __init__(self, grid: np.ndarray):
        self.grid = grid

    def __len__(self) -> int:
        return len(self.grid)

    def ticks(self) -> range:
        return range(len(self.grid))
