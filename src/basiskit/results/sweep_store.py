"""Sweeps in the store, beside the runs (results/schema.py):

  sweeps(sweep_id, mode, status, source, created_at, started_at, finished_at, progress, n_runs, n_done,
         n_failed, error, request, base_config, params, windows, objective, constraints, best, wall_seconds)
  sweep_runs(sweep_id, run_index, config_index, window_start, window_end, params, final_nav, total_return,
             apy, max_drawdown, sharpe, min_health_factor, liquidations, transaction_costs, rebalances,
             reconciliation_max_residual, objective, constraints_met, error, command, run_id, summary)
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pandas as pd

from .capacity import run_figures
from .db import RunStore, StoreError, as_time, json_safe, now

SWEEP_FIELDS = ("sweep_id", "mode", "status", "source", "created_at", "started_at", "finished_at", "progress",
                "n_runs", "n_done", "n_failed", "error", "objective", "wall_seconds")
RUN_COLUMNS = ("run_index", "config_index", "window_start", "window_end", "params", "final_nav", "total_return",
               "apy", "max_drawdown", "sharpe", "min_health_factor", "liquidations", "transaction_costs",
               "rebalances", "reconciliation_max_residual", "objective", "constraints_met", "error", "command",
               "run_id")


def new_sweep_id(mode: str) -> str:
    t = datetime.now(UTC)
    return f"{t:%Y%m%dT%H%M%S}{t.microsecond:06d}-sweep-{mode}"


class SweepStore(RunStore):
    """The run store with its sweep tables."""

    def create_sweep(self, sweep_id: str, mode: str, source: str, n_runs: int, request: dict, base_config: dict,
                     params: list, windows: list, objective: str, constraints: list[str]) -> None:
        with self._conn() as con:
            con.execute(
                "INSERT INTO sweeps (sweep_id, mode, status, source, created_at, started_at, progress, n_runs, n_done, "
                "n_failed, request, base_config, params, windows, objective, constraints) "
                "VALUES (?, ?, 'running', ?, ?, ?, 0, ?, 0, 0, ?, ?, ?, ?, ?, ?)",
                [sweep_id, mode, source, now(), now(), n_runs, json.dumps(json_safe(request)),
                 json.dumps(json_safe(base_config)), json.dumps(json_safe(params)), json.dumps(windows), objective,
                 json.dumps(constraints)])

    def sweep_progress(self, sweep_id: str, n_done: int, n_failed: int) -> None:
        with self._conn() as con:
            con.execute("UPDATE sweeps SET n_done = ?, n_failed = ?, progress = ? / greatest(n_runs, 1) "
                        "WHERE sweep_id = ?", [n_done, n_failed, float(n_done), sweep_id])

    def finish_sweep(self, sweep_id: str, result: dict, summaries: dict[int, dict],
                     run_ids: dict[int, str] | None = None) -> None:
        """Store a finished (or cancelled) sweep's runs (with each run's whole summary) and its best
        config, in one transaction."""
        rows = []
        for r in result["runs"]:
            start, end = r["window"]
            rows.append({"sweep_id": sweep_id, "run_index": r["index"], "config_index": r["config_index"],
                         "window_start": start, "window_end": end, "params": json.dumps(json_safe(r["params"])),
                         **{k: r[k] for k in RUN_COLUMNS[5:19] if k != "params"},
                         "run_id": (run_ids or {}).get(r["index"]),
                         "summary": json.dumps(json_safe(summaries[r["index"]])) if r["index"] in summaries else None})
        columns = ["sweep_id", *RUN_COLUMNS, "summary"]
        values = [[_stored(r[c], c) for c in columns] for r in rows]
        with self.transaction() as con:
            con.execute("DELETE FROM sweep_runs WHERE sweep_id = ?", [sweep_id])
            con.executemany(f"INSERT INTO sweep_runs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                            values)
            con.execute("UPDATE sweeps SET status = ?, finished_at = ?, progress = 1, n_done = ?, n_failed = ?, "
                        "best = ?, wall_seconds = ? WHERE sweep_id = ?",
                        [result["status"], now(), result["n_runs"], result["n_failed"],
                         json.dumps(json_safe(result["best"])), result["wall_seconds"], sweep_id])

    def fail_sweep(self, sweep_id: str, status: str, error: str) -> None:
        with self._conn() as con:
            con.execute("UPDATE sweeps SET status = ?, error = ?, finished_at = ? WHERE sweep_id = ?",
                        [status, error, now(), sweep_id])

    def mark_sweeps_interrupted(self, reason: str) -> None:
        with self._conn() as con:
            con.execute("UPDATE sweeps SET status = 'failed', error = ?, finished_at = ? WHERE status = 'running'",
                        [reason, now()])

    def delete_sweep(self, sweep_id: str) -> None:
        with self._conn() as con:
            for table in ("sweep_runs", "sweeps"):
                con.execute(f"DELETE FROM {table} WHERE sweep_id = ?", [sweep_id])

    # --- reading -------------------------------------------------------------------------------
    def has_sweep(self, sweep_id: str) -> bool:
        with self._conn() as con:
            return con.execute("SELECT count(*) FROM sweeps WHERE sweep_id = ?", [sweep_id]).fetchone()[0] > 0

    def get_sweep(self, sweep_id: str) -> dict:
        with self._conn() as con:
            row = con.execute(f"SELECT {', '.join(SWEEP_FIELDS)}, request, base_config, params, windows, constraints, "
                              "best FROM sweeps WHERE sweep_id = ?", [sweep_id]).fetchone()
        if row is None:
            raise StoreError(f"no sweep {sweep_id!r} in {self.where}; `basiskit sweeps list` shows the stored sweeps.")
        out = dict(zip(SWEEP_FIELDS, row[: len(SWEEP_FIELDS)], strict=True))
        for key, value in zip(("request", "base_config", "params", "windows", "constraints", "best"),
                              row[len(SWEEP_FIELDS):], strict=True):
            out[key] = json.loads(value) if value else None
        return out

    def list_sweeps(self, limit: int = 50, offset: int = 0) -> tuple[list[dict], int]:
        with self._conn() as con:
            total = con.execute("SELECT count(*) FROM sweeps").fetchone()[0]
            rows = con.execute(f"SELECT {', '.join(SWEEP_FIELDS)}, request FROM sweeps ORDER BY created_at DESC, "
                               "sweep_id LIMIT ? OFFSET ?", [limit, offset]).fetchall()
        return [dict(zip(SWEEP_FIELDS, r[:-1], strict=True)) | {"request": json.loads(r[-1]) if r[-1] else None}
                for r in rows], total

    def sweep_runs(self, sweep_id: str) -> pd.DataFrame:
        """The sweep's runs, one row each, in run order (params as JSON text)."""
        self.get_sweep(sweep_id)
        with self._conn() as con:
            df = con.execute(f"SELECT {', '.join(RUN_COLUMNS)} FROM sweep_runs WHERE sweep_id = ? ORDER BY run_index",
                             [sweep_id]).df()
        for col in ("window_start", "window_end"):
            df[col] = pd.to_datetime(df[col], utc=True)
        for col in ("liquidations", "rebalances"):
            df[col] = df[col].astype("Int64")
        df["constraints_met"] = df["constraints_met"].astype("boolean")
        for col in RUN_COLUMNS[5:16]:
            if col not in ("liquidations", "rebalances"):
                df[col] = df[col].astype("float64")
        return df

    def sweep_result(self, sweep_id: str) -> dict:
        """The sweep's result as `basiskit sweep --json` printed it."""
        sweep = self.get_sweep(sweep_id)
        runs = []
        with self._conn() as con:
            summaries = dict(con.execute("SELECT run_index, summary FROM sweep_runs WHERE sweep_id = ?",
                                         [sweep_id]).fetchall())
        for r in self.sweep_runs(sweep_id).to_dict("records"):
            window = [_iso(r.pop("window_start")), _iso(r.pop("window_end"))]
            r.pop("run_id")
            index = r.pop("run_index")
            summary = summaries.get(index)
            runs.append({"index": index, **{k: _clean(v) for k, v in r.items()}, "window": window,
                         "params": json.loads(r["params"]),
                         "capacity": run_figures(_json(summary), _clean(r["error"]))})
        return {"sweep_id": sweep_id, "mode": sweep["mode"], "status": sweep["status"], "n_runs": len(runs),
                "n_failed": sum(r["error"] is not None for r in runs), "wall_seconds": sweep["wall_seconds"],
                "objective": sweep["objective"], "constraints": sweep["constraints"],
                "params": [p["key"] for p in sweep["params"] or []], "windows": sweep["windows"], "runs": runs,
                "best": sweep["best"]}


def _stored(value, column: str):
    """A sweep run's value as its column holds it (times as UTC datetimes, NaN as NULL)."""
    if column in ("window_start", "window_end"):
        return as_time(value)
    if value is None or (isinstance(value, float) and value != value):
        return None
    if column in ("liquidations", "rebalances"):
        return int(value)
    if column == "constraints_met":
        return bool(value)
    return value.item() if hasattr(value, "item") else value


def _iso(t) -> str | None:
    return None if t is None or pd.isna(t) else pd.Timestamp(t).strftime("%Y-%m-%dT%H:%M:%SZ")


def _clean(v):
    if v is None or (isinstance(v, float) and v != v):
        return None
    if hasattr(v, "item"):  # numpy scalars
        return v.item()
    return v


def _json(value):
    """A JSON column's value (text on SQLite, parsed already by some PostgreSQL drivers)."""
    if value is None or isinstance(value, dict):
        return value
    return json.loads(value)
