"""The store: every run, sweep, stress test and paper or live session of a deployment, shared by its processes.

Operational state (runs and their status, sweeps, stress tests, sessions, readings, orders, the journal, alerts
and their outbox, leases) is in one SQL database (results/sql.py: SQLite in WAL mode, the embedded default, or
PostgreSQL with `--db postgresql://...`; tables in results/schema.py, versioned). A finished run's per-tick table
and events are Parquet files beside it (results/analytics.py), read by DuckDB views; no process keeps a DuckDB file
open. A store given an earlier release's DuckDB file migrates it (results/migrate.py) and keeps the old file.
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from . import schema
from .analytics import Analytics
from .sql import Database, StoreBusy, StoreError, is_url

__all__ = ["RunStore", "StoreBusy", "StoreError", "default_db_path", "json_safe", "now", "owner_only"]

ENV_VAR = "BASISKIT_DB"
SESSION_STORE_WAIT_S = 1.0  # the longest a running session's write waits for another process's transaction
ANALYTICS_ENV = "BASISKIT_ANALYTICS"
STATUSES = ("queued", "running", "done", "failed", "cancelled")
RUN_FIELDS = ("run_id", "mode", "strategy", "share_class", "status", "source", "created_at", "started_at",
              "finished_at", "window_start", "window_end", "progress", "error", "config_hash", "data_hash")


def data_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("basiskit"))


def default_db_path() -> Path | str:
    """$BASISKIT_DB (a file or a postgresql:// URL), else basiskit.db in the user's data directory."""
    if os.environ.get(ENV_VAR):
        got = os.environ[ENV_VAR]
        return got if is_url(got) else Path(got)
    return data_dir() / "basiskit.db"


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


def as_time(value) -> datetime | None:
    """A time for a TIMESTAMPTZ column, from ISO text, a pandas Timestamp or a datetime (UTC when it has no zone)."""
    if value is None:
        return None
    t = pd.Timestamp(value)
    return (t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")).to_pydatetime()


def owner_only(path: Path) -> None:
    """The store file (and the journal files SQLite keeps beside it) readable by its owner only, whatever the umask
    that created it: it holds positions, orders and alert outboxes."""
    for f in (path, *(path.with_name(path.name + x) for x in ("-wal", "-shm", "-journal"))):
        with contextlib.suppress(OSError):  # absent, or another user's file: left as it is
            if f.stat().st_mode & 0o077 and f.stat().st_uid == os.getuid():
                f.chmod(0o600)


@contextmanager
def _migration_lock(path: Path):
    """An exclusive lock (flock on `<name>.migrate.lock`, beside the store) while a migration runs."""
    import fcntl

    fd = os.open(path.with_name(path.name + ".migrate.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _is_duckdb(path: Path) -> bool:
    """An earlier release's store: a DuckDB file (its header says DUCK at byte 8)."""
    try:
        with open(path, "rb") as f:
            return f.read(12)[8:12] == b"DUCK"
    except OSError:
        return False


class RunStore:
    """The store of a deployment: `path` is a file (SQLite) or a postgresql:// URL (default: default_db_path());
    `lock_timeout`: the longest a write waits for another process's transaction; `analytics`: the Parquet folder
    (default: beside the file, `<name>.analytics`; for PostgreSQL $BASISKIT_ANALYTICS or the user's data dir)."""

    def __init__(self, path: str | os.PathLike | None = None, lock_timeout: float = 30.0,
                 analytics: str | os.PathLike | None = None):
        target = path if path is not None and str(path) != "" else default_db_path()
        legacy = None
        if is_url(str(target)):
            self.path: Path | str = str(target)
            root = analytics or os.environ.get(ANALYTICS_ENV) or data_dir() / "analytics"
        else:
            self.path = Path(target)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if path is None and (old := self.path.with_name("basiskit.duckdb")).exists():
                legacy = old  # the default store of an earlier release, beside the new one (left in place; migrated
                # once, by its mark in schema_version, and again whole if a migration was cut short)
            root = analytics or os.environ.get(ANALYTICS_ENV) or self.path.with_name(self.path.name + ".analytics")
            # owner-only before SQLite makes its journal files (they take the file's mode); an existing file is never
            # opened here: closing any descriptor of it would drop this process's SQLite locks on it
            with contextlib.suppress(FileExistsError):
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        self.lock_timeout = lock_timeout
        self.db = Database(self.path, lock_timeout)
        self.where = self.db.where
        self.ident = self.where if is_url(str(self.path)) else str(Path(self.path).resolve())
        self.analytics = Analytics(Path(root))
        self._depth = 0
        try:
            self._migrate_schema()
        except StoreError as exc:
            if not (isinstance(self.path, Path) and "not a database" in str(exc)):
                raise
            with _migration_lock(self.path):  # one process moves an earlier release's file aside
                if _is_duckdb(self.path):
                    self._move_aside()
                else:  # another process did meanwhile
                    self.db.close()
                    self.db = Database(self.path, self.lock_timeout)
                    self._migrate_schema()
        if isinstance(self.path, Path):
            aside = self.path.with_name(self.path.name + ".duckdb-legacy")
            legacy = aside if aside.exists() else legacy
        if legacy is not None and not self._migrated(legacy):
            from .migrate import from_duckdb

            with _migration_lock(self.path):  # once, whoever gets there first; retried on the next open if it failed
                if not self._migrated(legacy):
                    from_duckdb(legacy, self)
        if isinstance(self.path, Path):
            owner_only(self.path)

    def _move_aside(self) -> None:
        """The DuckDB file (and its write-ahead log, which may hold its last commits) renamed to
        `<name>.duckdb-legacy`, never over an existing file; an empty store made at its path."""
        self.db.close()
        legacy = self.path.with_name(self.path.name + ".duckdb-legacy")
        wal, legacy_wal = self.path.with_name(self.path.name + ".wal"), legacy.with_name(legacy.name + ".wal")
        try:
            if wal.exists():
                os.link(wal, legacy_wal)
            os.link(self.path, legacy)
        except FileExistsError:
            raise StoreError(f"{self.path} is an earlier release's (DuckDB) store, and {legacy} already exists: move "
                             "one of them away, then open the store again") from None
        os.unlink(self.path)
        if wal.exists():
            os.unlink(wal)
        os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        self.db = Database(self.path, self.lock_timeout)
        self._migrate_schema()

    def _migrate_schema(self) -> None:
        with self._conn() as con:
            con.execute("BEGIN")  # serialized: two processes opening a new store at once create it once
            try:
                con.ddl("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER, applied_at TIMESTAMPTZ, "
                        "note VARCHAR)")
                have = con.execute("SELECT max(version) FROM schema_version").fetchone()[0] or 0
                if have > schema.CURRENT:
                    raise StoreError(f"store {self.where} has schema version {have}, newer than this release's "
                                     f"{schema.CURRENT}: upgrade basiskit to use it")
                for version, ddl in schema.VERSIONS:
                    if version > have:
                        for statement in schema.statements(ddl):
                            con.ddl(statement)
                        con.execute("INSERT INTO schema_version VALUES (?, ?, ?)", [version, now(), "schema"])
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def _migrated(self, legacy: Path) -> bool:
        with self._conn() as con:
            return con.execute("SELECT count(*) FROM schema_version WHERE note = ?",
                               [f"migrated {legacy.name}"]).fetchone()[0] > 0

    @contextmanager
    def _conn(self):
        """This process's connection, one operation at a time; a transaction an operation left open (it raised
        before COMMIT or ROLLBACK) is rolled back when the outermost operation ends."""
        with self.db.lock:
            con = self.db.connection()
            self._depth += 1
            try:
                yield con
            finally:
                self._depth -= 1
                if self._depth == 0 and con.in_transaction:
                    with contextlib.suppress(StoreError):
                        con.execute("ROLLBACK")

    @contextmanager
    def transaction(self):
        """Reads and writes that no other process interleaves with (one write transaction)."""
        with self._conn() as con:
            con.execute("BEGIN")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    @contextmanager
    def held(self):
        """A burst of operations (an order's steps) by this process's threads one at a time; each step is its own
        transaction, so other processes go on meanwhile."""
        with self.db.lock:
            yield

    def close(self) -> None:
        self.db.close()

    def sql(self):
        """An in-memory DuckDB connection for plain SQL: `tick_values` and `events` are views over the runs' Parquet
        files; runs, sweeps, sweep_runs and stress_tests are the operational tables as read now (JSON columns as
        JSON, so `summary->>'apy'` works, booleans as booleans). It reads no other file and writes none."""
        con = self.analytics.views()
        for table in ("runs", "sweeps", "sweep_runs", "stress_tests"):
            with self._conn() as c:
                got = c.execute(f"SELECT * FROM {table}")
                frame = pd.DataFrame(got.fetchall(), columns=[d[0] for d in got.description])
            json_cols = [c for c, kind in schema.column_types(table).items() if kind == "JSON"]
            times = [c for c, kind in schema.column_types(table).items() if kind == "TIMESTAMPTZ"]
            for c in times:
                frame[c] = pd.to_datetime(frame[c], utc=True)
            for c in (c for c, kind in schema.column_types(table).items() if kind == "BOOLEAN"):
                frame[c] = frame[c].map(lambda v: None if v is None else bool(v)).astype("boolean")
            con.register(f"_{table}", frame)
            casts = ", ".join(f"CAST({c} AS JSON) AS {c}" for c in json_cols)
            con.execute(f"CREATE VIEW {table} AS SELECT * {f'REPLACE ({casts})' if casts else ''} FROM _{table}")
        # read-only: no file but the runs' Parquet files, no extension fetched or loaded, settings locked
        con.execute(f"SET allowed_directories = ['{str(self.analytics.root / 'runs').replace(chr(39), chr(39) * 2)}/']")
        for setting in ("enable_external_access = false", "autoinstall_known_extensions = false",
                        "autoload_known_extensions = false", "lock_configuration = true"):
            con.execute(f"SET {setting}")
        return con

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
        """Store a finished run: its per-tick table and events as Parquet files, then (one transaction) its row
        with the summary; the run reads as done only once its files are whole."""
        self.analytics.write(run_id, ticks, events)
        finished = now()
        started = finished - timedelta(seconds=float(summary.get("wall_seconds") or 0.0))
        with self.transaction() as con:
            con.execute("UPDATE runs SET started_at = coalesce(started_at, ?) WHERE run_id = ?", [started, run_id])
            con.execute(
                "UPDATE runs SET status = 'done', progress = 1, finished_at = ?, summary = ?, columns = ?, "
                "config = ?, config_hash = ?, data_hash = ?, window_start = ?, window_end = ?, strategy = ?, "
                "share_class = ? WHERE run_id = ?",
                [finished, json.dumps(json_safe(summary)), json.dumps(list(ticks.columns)), json.dumps(config),
                 summary["config_hash"], summary["data_hash"], as_time(summary["start"]), as_time(summary["end"]),
                 summary["strategy"], summary["share_class"], run_id])

    def mark_interrupted(self, reason: str) -> int:
        """Jobs left queued or running by a service that stopped: failed, with the reason."""
        with self._conn() as con:
            n = con.execute("SELECT count(*) FROM runs WHERE status IN ('queued', 'running')").fetchone()[0]
            con.execute("UPDATE runs SET status = 'failed', error = ?, finished_at = ? "
                        "WHERE status IN ('queued', 'running')", [reason, now()])
        return n

    def delete(self, run_id: str) -> None:
        with self._conn() as con:
            con.execute("DELETE FROM runs WHERE run_id = ?", [run_id])
        self.analytics.delete(run_id)

    # --- reading -------------------------------------------------------------------------------
    def get(self, run_id: str) -> dict:
        with self._conn() as con:
            row = con.execute(f"SELECT {', '.join(RUN_FIELDS)}, summary, request, config FROM runs "
                              "WHERE run_id = ?", [run_id]).fetchone()
        if row is None:
            raise StoreError(f"no run {run_id!r} in {self.where}; `basiskit runs list` shows the stored runs.")
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
        wide = self.analytics.ticks(run_id) if run["status"] == "done" else None
        if wide is None or wide.empty:
            raise StoreError(f"run {run_id} has no stored results (status {run['status']}).")
        wide["timestamp"] = pd.to_datetime(wide["timestamp"], utc=True)
        return wide

    def events(self, run_id: str) -> pd.DataFrame:
        df = self.analytics.events(run_id)
        df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
        return df
