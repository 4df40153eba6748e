"""Running a sweep: its tasks on a backend (or a search's trials), ranked; the result the CLI prints
with --json, the API returns and the store keeps."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from ..data.dataset import Dataset
from .backends import make_backend
from .plan import SweepPlan
from .rank import ConfigResult, best, rank
from .search import search
from .worker import ROW_FIGURES


def run_sweep(plan: SweepPlan, data_dir: Path, dataset: Dataset, sweep_id: str,
              on_row: Callable[[dict], None] = lambda row: None,
              cancelled: Callable[[], bool] = lambda: False) -> dict:
    """Run every task (or the search), calling on_row as each run finishes; the sweep's result."""
    t0 = time.perf_counter()
    req = plan.request
    backend = make_backend(req.backend, data_dir, dataset, plan.workers, req.ray_address)
    try:
        if req.search:
            rows = search(plan, backend, req.keep_ticks, on_row, cancelled)
        else:
            rows = []
            for row in backend.run(plan.tasks(plan.configs), req.keep_ticks, cancelled):
                on_row(row)
                rows.append(row)
    finally:
        backend.close()
    return result(plan, sweep_id, rows, time.perf_counter() - t0, cancelled())


def result(plan: SweepPlan, sweep_id: str, rows: list[dict], wall_seconds: float, cancelled: bool) -> dict:
    ranked = rank(rows, plan.objective, plan.constraints)
    top = best(ranked)
    runs = sorted(rows, key=lambda r: r["index"])
    return {
        "sweep_id": sweep_id, "mode": plan.request.mode, "status": "cancelled" if cancelled else "done",
        "n_runs": len(runs), "n_failed": sum(r["error"] is not None for r in runs), "wall_seconds": wall_seconds,
        "objective": plan.objective, "constraints": [str(c) for c in plan.constraints],
        "params": [p.key for p in plan.params], "windows": [[w.start, w.end] for w in plan.windows],
        "runs": [run_json(plan, r) for r in runs],
        "best": None if top is None else config_json(plan, top),
    }


def run_json(plan: SweepPlan, row: dict) -> dict:
    return {"index": row["index"], "config_index": row["config_index"], "params": row["params"],
            "window": row["window"], **{k: row.get(k) for k in ROW_FIGURES}, "objective": row.get("objective"),
            "constraints_met": row.get("constraints_met"), "error": row["error"],
            "command": plan.command(row["params"], row["window"]), "capacity": row.get("capacity")}


def config_json(plan: SweepPlan, c: ConfigResult) -> dict:
    return {"config_index": c.config_index, "params": c.params, "objective": c.objective,
            "windows": [{"window": r["window"], **{k: r.get(k) for k in ROW_FIGURES}, "objective": r["objective"]}
                        for r in c.rows],
            "command": plan.command(c.params, c.rows[0]["window"] if c.rows else None)}
