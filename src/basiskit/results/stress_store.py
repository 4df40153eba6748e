"""Stress tests in the store, beside runs and sweeps (results/schema.py):

  stress_tests(stress_id, mode, status, source, created_at, finished_at, error, request, result,
               baseline_run_id, scenario_run_id, grid_sweep_id, unshocked_sweep_id)

The two runs are ordinary stored runs (source "stress"), the grid's two sweeps (shocked, and its configs unshocked)
ordinary sweeps, each linked as soon as it is stored; the result holds the comparison."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from .db import StoreError, json_safe, now
from .sweep_store import SweepStore

FIELDS = ("stress_id", "mode", "status", "source", "created_at", "finished_at", "error", "baseline_run_id",
          "scenario_run_id", "grid_sweep_id", "unshocked_sweep_id")
PARTS = ("baseline_run_id", "scenario_run_id", "grid_sweep_id", "unshocked_sweep_id")


def new_stress_id(mode: str) -> str:
    t = datetime.now(UTC)
    return f"{t:%Y%m%dT%H%M%S}{t.microsecond:06d}-stress-{mode}"


class StressStore(SweepStore):
    """The store with its sweep and stress tables."""

    def create_stress(self, stress_id: str, mode: str, source: str, request: dict) -> None:
        with self._conn() as con:
            con.execute("INSERT INTO stress_tests (stress_id, mode, status, source, created_at, request) "
                        "VALUES (?, ?, 'running', ?, ?, ?)", [stress_id, mode, source, now(), json.dumps(request)])

    def finish_stress(self, stress_id: str, result: dict) -> None:
        with self._conn() as con:
            con.execute("UPDATE stress_tests SET status = 'done', finished_at = ?, result = ?, baseline_run_id = ?, "
                        "scenario_run_id = ?, grid_sweep_id = ? WHERE stress_id = ?",
                        [now(), json.dumps(json_safe(result)), result["baseline"]["run_id"],
                         result["scenario"]["run_id"], (result.get("grid") or {}).get("sweep_id"), stress_id])

    def link_stress(self, stress_id: str, part: str, ident: str) -> None:
        """A run or sweep of the stress test, linked as soon as it is stored (a cancelled or failed test keeps what
        it finished, and deleting it deletes them)."""
        assert part in PARTS
        with self._conn() as con:
            con.execute(f"UPDATE stress_tests SET {part} = ? WHERE stress_id = ?", [ident, stress_id])

    def fail_stress(self, stress_id: str, error: str, status: str = "failed") -> None:
        """A stress test that ended without a result: `failed`, or `cancelled` by request."""
        with self._conn() as con:
            con.execute("UPDATE stress_tests SET status = ?, finished_at = ?, error = ? WHERE stress_id = ?",
                        [status, now(), error, stress_id])

    def mark_stress_interrupted(self, reason: str) -> None:
        with self._conn() as con:
            con.execute("UPDATE stress_tests SET status = 'failed', error = ?, finished_at = ? "
                        "WHERE status = 'running'", [reason, now()])

    def delete_stress(self, stress_id: str) -> None:
        """The stress test, its two runs and its grid sweep."""
        test = self.get_stress(stress_id)
        for run_id in (test["baseline_run_id"], test["scenario_run_id"]):
            if run_id:
                self.delete(run_id)
        for sweep_id in (test["grid_sweep_id"], test["unshocked_sweep_id"]):
            if sweep_id:
                self.delete_sweep(sweep_id)
        with self._conn() as con:
            con.execute("DELETE FROM stress_tests WHERE stress_id = ?", [stress_id])

    def get_stress(self, stress_id: str) -> dict:
        with self._conn() as con:
            row = con.execute(f"SELECT {', '.join(FIELDS)}, request, result FROM stress_tests WHERE stress_id = ?",
                              [stress_id]).fetchone()
        if row is None:
            raise StoreError(f"no stress test {stress_id!r} in {self.where}")
        out = dict(zip(FIELDS, row[: len(FIELDS)], strict=True))
        out["request"], out["result"] = (json.loads(x) if x else None for x in row[len(FIELDS):])
        return out

    def list_stress(self, limit: int = 50, offset: int = 0) -> tuple[list[dict], int]:
        with self._conn() as con:
            total = con.execute("SELECT count(*) FROM stress_tests").fetchone()[0]
            rows = con.execute(f"SELECT {', '.join(FIELDS)} FROM stress_tests ORDER BY created_at DESC "
                               "LIMIT ? OFFSET ?", [limit, offset]).fetchall()
        return [dict(zip(FIELDS, r, strict=True)) for r in rows], total
