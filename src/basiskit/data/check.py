"""`basiskit data check`: validate every series of a dataset and describe its coverage."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .dataset import Dataset, spacing_seconds
from .timeutil import HOUR, iso


@dataclass(frozen=True)
class CoverageRow:
    series: str
    kind: str
    start: str
    end: str
    rows: int
    gaps: int
    largest_gap_hours: float


def check_dataset(dataset: Dataset) -> list[CoverageRow]:
    """Load (and so validate) every series and parameter file; one coverage row per series."""
    dataset.load_all()
    rows = []
    for name in dataset.names():
        s = dataset.series(name)
        gaps = np.diff(s.ts)
        holes = gaps[gaps > spacing_seconds(s.meta)]
        rows.append(CoverageRow(
            series=name, kind=s.meta.kind, start=iso(s.ts[0]), end=iso(s.ts[-1]), rows=len(s.ts),
            gaps=int(len(holes)), largest_gap_hours=float(holes.max() / HOUR) if len(holes) else 0.0,
        ))
    return rows
