"""One run from config to stored-ready output: the function the CLI and the API both call."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..config import RunConfig
from ..data.dataset import Dataset
from ..results.summary import summarize
from ..results.tables import events_table, ticks_table
from .run import Backtest, RunResult


@dataclass
class RunOutput:
    summary: dict
    ticks: pd.DataFrame
    events: pd.DataFrame
    result: RunResult


def execute(cfg: RunConfig, data_dir: Path, data_label: str, run_id: str,
            progress: Callable[[int, int], None] | None = None) -> RunOutput:
    """Load, run and tabulate; `progress(done, total)` is called as the loop advances."""
    t0 = time.perf_counter()
    bt = Backtest(cfg, Dataset(data_dir))
    total = bt.market.n_points
    result = bt.run(None if progress is None else (lambda k: progress(k, total)))
    summary = {"run_id": run_id, **summarize(result), "data_source": data_label}
    ticks, events = ticks_table(result), events_table(result)
    summary["wall_seconds"] = time.perf_counter() - t0
    return RunOutput(summary, ticks, events, result)
