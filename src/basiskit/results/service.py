"""One run from config to stored-ready output: the function the CLI and the API both call."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..config import RunConfig, config_hash
from ..data.dataset import Dataset
from ..engine.run import Backtest, RunResult
from .db import RunStore
from .store import new_run_id, write_run
from .summary import summarize
from .tables import events_table, ticks_table


@dataclass
class RunOutput:
    summary: dict
    ticks: pd.DataFrame
    events: pd.DataFrame
    result: RunResult


def execute(cfg: RunConfig, data_dir: Path, data_label: str, run_id: str,
            progress: Callable[[int, int], None] | None = None, dataset: Dataset | None = None) -> RunOutput:
    """Load (or use `dataset`), run and tabulate; `progress(done, total)` is called as the loop advances."""
    t0 = time.perf_counter()
    bt = Backtest(cfg, dataset or Dataset(data_dir))
    total = bt.market.n_points
    result = bt.run(None if progress is None else (lambda k: progress(k, total)))
    return tabulate(result, run_id, data_label, t0)


def tabulate(result: RunResult, run_id: str, data_label: str, t0: float) -> RunOutput:
    """A finished run's summary and tables (`t0`: when the work started, for wall_seconds)."""
    summary = {"run_id": run_id, **summarize(result), "data_source": data_label}
    ticks, events = ticks_table(result), events_table(result)
    summary["wall_seconds"] = time.perf_counter() - t0
    return RunOutput(summary, ticks, events, result)


def run_and_store(cfg: RunConfig, data_dir: Path, data_label: str, store: RunStore, source: str,
                  out_dir: Path | None, progress: Callable[[int, int], None] | None = None,
                  dataset: Dataset | None = None) -> RunOutput:
    """A run written to the results store and (given out_dir) to its folder (Parquet, summary, config);
    the summary gets its `results_dir` (None without a folder)."""
    run_id = new_run_id(cfg.mode, config_hash(cfg))
    output = execute(cfg, data_dir, data_label, run_id, progress, dataset)
    return store_output(output, cfg, store, source, out_dir)


def store_output(output: RunOutput, cfg: RunConfig, store: RunStore, source: str, out_dir: Path | None) -> RunOutput:
    """Write a finished run to its folder (given out_dir) and the store; sets the summary's `results_dir`."""
    run_id = output.summary["run_id"]
    folder = None if out_dir is None else write_run(output.result, output.summary, out_dir, run_id)
    config = cfg.model_dump(mode="json")
    store.create(run_id, cfg.mode, "running", source, config=config)
    store.save_result(run_id, output.summary, output.ticks, output.events, config)
    output.summary["results_dir"] = None if folder is None else str(folder)
    return output
