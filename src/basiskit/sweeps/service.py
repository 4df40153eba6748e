"""A sweep from request to stored result: the function the CLI calls and the API runs in a thread."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from ..data.dataset import Dataset
from ..results.store import new_run_id
from ..results.sweep_store import SweepStore, new_sweep_id
from .plan import SweepPlan, prepare
from .run import run_sweep
from .spec import SweepRequest

PROGRESS_EVERY_S = 1.0


def register_sweep(plan: SweepPlan, store: SweepStore, source: str) -> str:
    """Store a new sweep as running (so it can be followed at once); its id."""
    req = plan.request
    sweep_id = new_sweep_id(req.mode)
    params = [{"key": p.key, "values": list(p.values), "range": [p.low, p.high, p.step] if p.is_range else None}
              for p in plan.params]
    store.create_sweep(sweep_id, req.mode, source, plan.n_runs, req.model_dump(mode="json"), plan.base, params,
                       [[w.start, w.end] for w in plan.windows], req.objective, req.constraints)
    return sweep_id


def execute_sweep(plan: SweepPlan, sweep_id: str, data_dir: Path, dataset: Dataset, store: SweepStore,
                  on_progress: Callable[[int, int], None] | None = None,
                  cancelled: Callable[[], bool] = lambda: False) -> dict:
    """Run a registered sweep and store its runs; its result (status done, or cancelled)."""
    state = {"done": 0, "failed": 0, "stored_at": time.monotonic()}
    summaries: dict[int, dict] = {}
    run_ids: dict[int, str] = {}

    def on_row(row: dict) -> None:
        state["done"] += 1
        state["failed"] += row["error"] is not None
        if row["summary"] is not None:
            summaries[row["index"]] = row["summary"]
        if "ticks" in row:  # --keep-ticks: the run is stored in full, as a backtest would be
            run_ids[row["index"]] = _store_run(store, row)
        if on_progress is not None:
            on_progress(state["done"], plan.n_runs)
        if time.monotonic() - state["stored_at"] >= PROGRESS_EVERY_S:
            store.sweep_progress(sweep_id, state["done"], state["failed"])
            state["stored_at"] = time.monotonic()

    try:
        result = run_sweep(plan, data_dir, dataset, sweep_id, on_row, cancelled)
    except BaseException as exc:
        store.fail_sweep(sweep_id, "cancelled" if cancelled() else "failed", str(exc) or type(exc).__name__)
        raise
    store.finish_sweep(sweep_id, result, summaries, run_ids)
    return result


def sweep(req: SweepRequest, data_dir: Path, dataset: Dataset, store: SweepStore, source: str,
          config_files: list | tuple = (), on_progress: Callable[[int, int], None] | None = None,
          cancelled: Callable[[], bool] = lambda: False,
          on_registered: Callable[[str], None] | None = None) -> dict:
    """Check the request (ConfigError with every problem), then register (`on_registered` is told its id) and run
    the sweep."""
    plan = prepare(req, dataset, list(config_files))
    sweep_id = register_sweep(plan, store, source)
    if on_registered is not None:
        on_registered(sweep_id)
    return execute_sweep(plan, sweep_id, data_dir, dataset, store, on_progress, cancelled)


def _store_run(store: SweepStore, row: dict) -> str:
    """A --keep-ticks run stored in full (summary, ticks, events), as `basiskit backtest` stores one."""
    summary = row["summary"]
    run_id = new_run_id(summary["mode"], summary["config_hash"])
    store.create(run_id, summary["mode"], "running", "sweep", config=row["config"])
    store.save_result(run_id, summary | {"run_id": run_id}, row.pop("ticks"), row.pop("events"), row.pop("config"))
    return run_id
