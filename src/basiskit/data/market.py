"""MarketData: the aligned hourly arrays one run needs, built once before the loop."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DataError
from . import align
from .dataset import Dataset
from .timeutil import HOUR, iso

if TYPE_CHECKING:
    from ..config.models import DataConfig

HOW = ("bar_price", "last", "geometric", "events")


@dataclass(frozen=True)
class Need:
    """One aligned array a component needs: a column of a series and how it meets the grid."""

    series: str
    column: str
    how: str

    def __post_init__(self) -> None:
        if self.how not in HOW:
            raise ValueError(f"alignment {self.how!r} not in {HOW}")


class MarketData:
    """Checks coverage and holes for every needed series, then aligns each onto the grid."""

    def __init__(self, dataset: Dataset, data_cfg: DataConfig, needs: list[Need],
                 start: int | None, end: int | None):
        self.dataset = dataset
        names = sorted({n.series for n in needs})
        if start is None or end is None:
            lo, hi = self.common_window(dataset, names)
            start = start if start is not None else -(-lo // HOUR) * HOUR
            end = end if end is not None else hi // HOUR * HOUR
            if start >= end:
                raise DataError(
                    f"no default window: the series {', '.join(names)} have no common hourly window in "
                    f"{dataset.root} (from {iso(start)} to {iso(end)}); pass --data with a fuller dataset."
                )
        align.check_window(dataset, names, start, end)
        self.start, self.end = start, end
        self.grid = align.hourly_grid(start, end)
        self.warnings: list[align.DataWarning] = []
        for name in names:
            series = dataset.series(name)
            limit, key = self._limit(data_cfg, name, series.meta.kind)
            self.warnings += align.check_holes(series, start, end, limit, key)
        self.warnings.sort(key=lambda w: (w.after, w.series))
        self._arrays = {need: self._align(need) for need in needs}
        digest = hashlib.sha256(
            json.dumps({n: dataset.series_meta(n).sha256 for n in names}, sort_keys=True).encode()
        )
        self.data_hash = digest.hexdigest()
        self.series_used = names

    @staticmethod
    def common_window(dataset: Dataset, names: list[str]) -> tuple[int, int]:
        spans = [align.coverage(dataset.series_meta(n)) for n in names]
        return max(a for a, _ in spans), min(b for _, b in spans)

    @staticmethod
    def _limit(cfg: DataConfig, name: str, kind: str) -> tuple[float, str]:
        if name in cfg.staleness_hours_by_series:
            return cfg.staleness_hours_by_series[name], f"data.staleness_hours_by_series.{name}"
        return getattr(cfg.staleness_hours, kind), f"data.staleness_hours.{kind}"

    def _align(self, need: Need) -> np.ndarray:
        series = self.dataset.series(need.series)
        if need.how == "bar_price":
            return align.align_bar_price(series, self.grid)
        if need.how == "last":
            return align.align_last(series, need.column, self.grid)
        if need.how == "geometric":
            return align.align_geometric(series.ts, series.column(need.column), self.grid, need.series)
        return align.align_events(series, need.column, self.grid)

    @property
    def n_points(self) -> int:
        return len(self.grid)

    def array(self, need: Need) -> np.ndarray:
        return self._arrays[need]

    def values(self, need: Need) -> list[float]:
        """The aligned array as a list of Python floats, the form the per-tick loop reads fastest."""
        return self._arrays[need].tolist()
