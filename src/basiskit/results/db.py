"""The results store: every run (CLI or API) in an embedded DuckDB database.

Schema (plain SQL, see README):
  runs(run_id, mode, strategy, share_class, status, source, created_at, started_at, finished_at,
       window_start, window_end, progress, error, config_hash, data_hash, config, request, summary,
       columns)
  tick_values(run_id, tick, timestamp, metric, value)   -- the per-tick table, one row per value
  events(run_id, tick, timestamp, type, message, details)
Connections are opened per operation so several processes (a server and a CLI) can share the file.
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from ..errors import BasiskitError

ENV_VAR = "BASISKIT_DB"
STATUSES = ("queued", "running", "done", "failed", "cancelled")
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  run_id VARCHAR PRIMARY KEY, mode VARCHAR, strategy VARCHAR, share_class VARCHAR, status VARCHAR,
  source VARCHAR, created_at TIMESTAMPTZ, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ,
  window_start TIMESTAMPTZ, window_end TIMESTAMPTZ, progress DOUBLE, error VARCHAR,
  config_hash VARCHAR, data_hash VARCHAR, config JSON, request JSON, summary JSON, columns JSON);
CREATE TABLE IF NOT EXISTS tick_values (
  run_id VARCHAR, tick INTEGER, timestamp TIMESTAMPTZ, metric VARCHAR, value DOUBLE);
CREATE TABLE IF NOT EXISTS events (
  run_id VARCHAR, tick INTEGER, timestamp TIMESTAMPTZ, type VARCHAR, message VARCHAR, details JSON);
"""
RUN_FIELDS = ("run_id", "mode", "strategy", "share_class", "status", "source", "created_at", "started_at",
              "finished_at", "window_start", "window_end", "progress", "error", "config_hash", "data_hash")


class StoreError(BasiskitError):
    """The results database cannot be used (locked for too long, corrupt, unknown run)."""


def default_db_path() -> Path:
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    from platformdirs import user_data_dir

    return Path(user_data_dir("basiskit")) / "basiskit.duckdb"


def json_safe(value):
    """A JSON-ready copy: inf/NaN become None, mappings and sequences are walked, other objects
    (dates, paths) become their text."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, numbers.Real):
        return value if math.isfinite(value) else None
    return str(value)


def now() -> datetime:
    return datetime.now(UTC)


def owner_only(path: Path) -> None:
    """The store file (and a journal left beside it) readable by its owner only, whatever the umask that created
    it (the CLI's is 077): it holds positions, orders and alert outboxes."""
    for f in (path, path.with_name(path.name + ".wal")):
        with contextlib.suppress(OSError):  # absent, or another user's file: left as it is
            if f.stat().st_mode & 0o077 and f.stat().st_uid == os.getuid():
                f.chmod(0o600)


class RunStore:
    def __init__(self, path: str | os.PathLike | None = None, lock_timeout: float = 30.0):
        self.path = Path(path) if path else default_db_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock_timeout = lock_timeout
        self._lock = threading.RLock()  # one operation at a time per process: no write-write conflicts
        self._burst: duckdb.DuckDBPyConnection | None = None  # held() keeps one connection for a burst
        with self._conn() as con:
            con.execute(SCHEMA)
        owner_only(self.path)

    @contextmanager
    def _conn(self):
        with self._lock:
            if self._burst is not None:
                yield self._burst
                return
            with self._open() as con:
                yield con

    @contextmanager
    def held(self):
        """One connection for a short burst of operations (an order's steps): other processes wait for the file
        (up to lock_timeout) until it ends."""
        with self._lock:
            if self._burst is not None:
                yield
                return
            self._burst = self._connect()
            try:
                yield
            finally:
                burst, self._burst = self._burst, None
                if burst is not None:
                    burst.close()

    @contextmanager
    def released(self):
        """Inside held(): let go of the file while something slow happens (a transaction waiting to be mined), so
        other processes may open it, then take it again (waiting up to lock_timeout)."""
        with self._lock:
            burst = self._burst
            if burst is None:
                yield
                return
            self._burst = None
            burst.close()
            try:
                yield
            finally:
                self._burst = self._connect()

    def _connect(self) -> duckdb.DuckDBPyConnection:
        """A connection, waiting up to lock_timeout for another process to let go of the file."""
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                return duckdb.connect(str(self.path))
            except duckdb.IOException as exc:  # another process holds the file: wait for it
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise StoreError(f"results database {self.path} cannot be opened: {exc}") from exc
                time.sleep(0.05)

    @contextmanager
    def _open(self):
        con = self._connect()
        try:
            yield con
        finally:
            con.close()

    # --- writing -------------------------------------------------------------------------------
    def create(self, run_id: str, mode: str, status: str, source: str, request: dict | None = None,
               config: dict | None = None) -> None:
        with self._conn() as con:
            con.execute(
                "INSERT INTO runs (run_id, mode, strategy, share_class, status, source, created_at, progress, "
                "config, request) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
                [run_id, mode, (config or {}).get("strategy"), (config or {}).get("share_class"), status, source,
                 now(), json.dumps(config) if config else None, json.dumps(request) if request else None])

    def set_status(self, run_id: str, status: str, progress: float | None = None, error: str | None = None) -> None:
        sets, args = ["status = ?"], [status]
        if progress is not None:
            sets.append("progress = ?")
            args.append(progress)
        if error is not None:
            sets.append("error = ?")
            args.append(error)
        if status == "running":
            sets.append("started_at = coalesce(started_at, ?)")
            args.append(now())
        if status in ("done", "failed", "cancelled"):
            sets.append("finished_at = ?")
            args.append(now())
        with self._conn() as con:
            con.execute(f"UPDATE runs SET {', '.join(sets)} WHERE run_id = ?", [*args, run_id])

    def set_progress(self, run_id: str, progress: float) -> None:
        """A job's progress; never turns a finished run (done, failed, cancelled) back into a running one."""
        with self._conn() as con:
            con.execute("UPDATE runs SET status = 'running', progress = ?, started_at = coalesce(started_at, ?) "
                        "WHERE run_id = ? AND status IN ('queued', 'running')", [progress, now(), run_id])

    def save_result(self, run_id: str, summary: dict, ticks: pd.DataFrame, events: pd.DataFrame,
                    config: dict) -> None:
        """Store a finished run: summary, per-tick values and events, in one transaction."""
        long = ticks.drop(columns=["timestamp"]).reset_index(names="tick").melt(
            id_vars="tick", var_name="metric", value_name="value")
        long.insert(0, "run_id", run_id)
        long.insert(2, "timestamp", ticks["timestamp"].to_numpy()[long["tick"].to_numpy()])
        ev = events.copy()
        ev.insert(0, "run_id", run_id)
        ev = ev[["run_id", "tick", "timestamp", "type", "message", "details"]]
        with self._conn() as con:
            con.execute("BEGIN")
            con.execute("DELETE FROM tick_values WHERE run_id = ?", [run_id])
            con.execute("DELETE FROM events WHERE run_id = ?", [run_id])
            con.register("long_df", long)
            con.execute("INSERT INTO tick_values SELECT run_id, tick, timestamp, metric, value FROM long_df")
            con.register("events_df", ev)
            con.execute("INSERT INTO events SELECT * FROM events_df")
            finished = now()
            started = finished - timedelta(seconds=float(summary.get("wall_seconds") or 0.0))
            con.execute("UPDATE runs SET started_at = coalesce(started_at, ?) WHERE run_id = ?", [started, run_id])
            con.execute(
                "UPDATE runs SET status = 'done', progress = 1, finished_at = ?, summary = ?, columns = ?, "
                "config = ?, config_hash = ?, data_hash = ?, window_start = ?, window_end = ?, strategy = ?, "
                "share_class = ? WHERE run_id = ?",
                [finished, json.dumps(json_safe(summary)), json.dumps(list(ticks.columns)), json.dumps(config),
                 summary["config_hash"], summary["data_hash"], summary["start"], summary["end"],
                 summary["strategy"], summary["share_class"], run_id])
            con.execute("COMMIT")

    def mark_interrupted(self, reason: str) -> int:
        """Jobs left queued or running by a service that stopped: failed, with the reason."""
        with self._conn() as con:
            n = con.execute("SELECT count(*) FROM runs WHERE status IN ('queued', 'running')").fetchone()[0]
            con.execute("UPDATE runs SET status = 'failed', error = ?, finished_at = ? "
                        "WHERE status IN ('queued', 'running')", [reason, now()])
        return n

    def delete(self, run_id: str) -> None:
        with self._conn() as con:
            for table in ("tick_values", "events", "runs"):
                con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])

    # --- reading -------------------------------------------------------------------------------
    def get(self, run_id: str) -> dict:
        with self._conn() as con:
            row = con.execute(f"SELECT {', '.join(RUN_FIELDS)}, summary, request, config FROM runs "
                              "WHERE run_id = ?", [run_id]).fetchone()
        if row is None:
            raise StoreError(f"no run {run_id!r} in {self.path}; `basiskit runs list` shows the stored runs.")
        out = dict(zip(RUN_FIELDS, row[: len(RUN_FIELDS)], strict=True))
        out["summary"], out["request"], out["config"] = (json.loads(x) if x else None for x in row[len(RUN_FIELDS):])
        return out

    def list(self, mode: str | None = None, status: str | None = None, since: datetime | None = None,
             limit: int = 50, offset: int = 0) -> tuple[list[dict], int]:
        where, args = [], []
        for clause, value in (("mode = ?", mode), ("status = ?", status), ("created_at >= ?", since)):
            if value is not None:
                where.append(clause)
                args.append(value)
        cond = f"WHERE {' AND '.join(where)}" if where else ""
        with self._conn() as con:
            total = con.execute(f"SELECT count(*) FROM runs {cond}", args).fetchone()[0]
            rows = con.execute(f"SELECT {', '.join(RUN_FIELDS)}, summary FROM runs {cond} "
                               "ORDER BY created_at DESC, run_id LIMIT ? OFFSET ?", [*args, limit, offset]).fetchall()
        runs = []
        for row in rows:
            d = dict(zip(RUN_FIELDS, row[: len(RUN_FIELDS)], strict=True))
            d["summary"] = json.loads(row[-1]) if row[-1] else None
            runs.append(d)
        return runs, total

    def count_by_status(self, table: str) -> dict[str, int]:
        """How many rows of a job table (runs, sweeps, stress_tests) have each status."""
        assert table in ("runs", "sweeps", "stress_tests")
        with self._conn() as con:
            return dict(con.execute(f"SELECT status, count(*) FROM {table} GROUP BY status").fetchall())

    def durations(self, table: str, started: str = "started_at") -> list[float]:
        """Wall seconds of the finished jobs of a table."""
        assert table in ("runs", "sweeps") and started == "started_at"
        with self._conn() as con:
            rows = con.execute(f"SELECT epoch(finished_at) - epoch(started_at) FROM {table} WHERE status = 'done' "
                               "AND started_at IS NOT NULL AND finished_at IS NOT NULL").fetchall()
        return [float(r[0]) for r in rows]

    def ticks(self, run_id: str) -> pd.DataFrame:
        """The run's per-tick table, wide, columns in their original order."""
        run = self.get(run_id)
        with self._conn() as con:
            columns = json.loads(con.execute("SELECT columns FROM runs WHERE run_id = ?", [run_id]).fetchone()[0]
                                 or "[]")
            long = con.execute("SELECT tick, timestamp, metric, value FROM tick_values WHERE run_id = ? "
                               "ORDER BY tick", [run_id]).df()
        if long.empty:
            raise StoreError(f"run {run_id} has no stored results (status {run['status']}).")
        wide = long.pivot(index=["tick", "timestamp"], columns="metric", values="value").reset_index()
        wide["timestamp"] = pd.to_datetime(wide["timestamp"], utc=True)
        return wide[[c for c in columns if c in wide.columns]]

    def events(self, run_id: str) -> pd.DataFrame:
        with self._conn() as con:
            df = con.execute("SELECT tick, timestamp, type, message, details FROM events WHERE run_id = ? "
                             "ORDER BY tick", [run_id]).df()
        df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
        return df
