"""A long-lived sweep worker: the dataset loaded and validated once, aligned market data cached by
window and needs, each run returning its summary row (its ticks only when asked)."""

from __future__ import annotations

import traceback

from ..data.dataset import Dataset
from ..data.market import MarketCache
from ..engine.run import Backtest
from ..engine.runconfig import validate_run_config
from ..errors import BasiskitError
from ..results.capacity import run_figures
from ..results.db import json_safe
from ..results.summary import summarize
from ..results.tables import events_table, ticks_table
from .plan import Task
from .spec import summary_value

# The figures of each run in a sweep's output (summary keys, or their aliases in spec.ALIASES).
ROW_FIGURES = ("final_nav", "total_return", "apy", "max_drawdown", "sharpe", "min_health_factor", "liquidations",
               "transaction_costs", "rebalances", "reconciliation_max_residual")


class SweepWorker:
    def __init__(self, dataset: Dataset):
        self.dataset = dataset
        self.cache = MarketCache()

    def run(self, task: Task, keep_ticks: bool = False) -> dict:
        """One run, exactly as `basiskit backtest` would build it from the same raw config; a refused
        config or a failed run is a row with its error."""
        row = {"index": task.index, "config_index": task.config_index, "params": task.params,
               "window": [task.window.start, task.window.end], "error": None, "summary": None}
        try:
            cfg = validate_run_config(task.raw, self.dataset)
            result = Backtest(cfg, self.dataset, self.cache).run()
            summary = summarize(result)
        except BasiskitError as exc:
            row["error"] = str(exc)
            row["capacity"] = run_figures(None, row["error"])
            return row
        except Exception as exc:  # a bug in one run must not end the sweep: keep its error with the run
            row["error"] = "".join(traceback.format_exception_only(exc)).strip()
            return row
        row["window"] = [summary["start"], summary["end"]]
        row |= {key: summary_value(summary, key) for key in ROW_FIGURES}
        row["summary"] = json_safe(summary)
        row["capacity"] = run_figures(row["summary"])
        if keep_ticks:  # the whole run, to store it as a backtest would be
            row["ticks"], row["events"] = ticks_table(result), events_table(result)
            row["config"] = cfg.model_dump(mode="json")
        return row


_WORKER: SweepWorker | None = None  # one per worker process


def init_process(data_dir: str) -> None:
    global _WORKER
    _WORKER = SweepWorker(Dataset(data_dir))


def run_in_process(task: Task, keep_ticks: bool) -> dict:
    return _WORKER.run(task, keep_ticks)
