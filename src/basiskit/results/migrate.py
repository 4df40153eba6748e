"""An earlier release's DuckDB store read into the current one: every row of every table both know (columns by name;
a column the old file lacks stays NULL), and each run's tick_values and events written as the run's Parquet files.
The old file is only read (it stays where it was, or beside the new store as `<name>.duckdb-legacy`); the migration
is recorded in schema_version, last and in the rows' transaction, so it happens once and, cut short, again whole."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from . import schema
from .sql import StoreError


def from_duckdb(legacy: Path, store) -> dict[str, int]:
    """Copy `legacy` into `store`; returns the rows copied per table (and `runs_with_ticks`)."""
    import duckdb

    try:
        old = duckdb.connect(str(legacy), read_only=True)
    except duckdb.Error as exc:
        raise StoreError(f"{legacy} (an earlier release's store) cannot be read to migrate it: {exc}") from None
    copied: dict[str, int] = {}
    try:
        have = {r[0] for r in old.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        ticks = _analytics(old, have, store)  # first: rewritten whole if a failure below makes it run again
        with store.transaction() as con:  # every row and, last, the mark that it is done: all or nothing
            for table in schema.tables():
                if table not in have:
                    continue
                new_cols = [r[0] for r in con.execute(f"SELECT * FROM {table} WHERE 1 = 0").description]
                old_cols = [r[0] for r in old.execute(f"SELECT * FROM {table} LIMIT 0").description]
                cols = [c for c in new_cols if c in old_cols]
                rows = old.execute(f"SELECT {', '.join(_text(c, old, table) for c in cols)} FROM {table}").fetchall()
                try:
                    con.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                                    rows)
                except StoreError as exc:
                    raise StoreError(f"migrating {legacy} (an earlier release's store) into {store.where}: its table "
                                     f"{table} cannot be copied ({str(exc).split(': ', 1)[-1]}); nothing was copied. "
                                     f"Mend {legacy} with duckdb (e.g. remove the duplicate rows), then open the store "
                                     "again: the migration runs again whole") from None
                copied[table] = len(rows)
            con.execute("INSERT INTO schema_version VALUES (?, ?, ?)",
                        [schema.CURRENT, pd.Timestamp.now("UTC").to_pydatetime(), f"migrated {legacy.name}"])
        copied["runs_with_ticks"] = ticks
    finally:
        old.close()
    sys.stderr.write(f"store: migrated {legacy} into {store.where} ("
                     + ", ".join(f"{n} {t}" for t, n in copied.items() if n) + "); the old file is kept\n")
    return copied


def _text(column: str, old, table: str) -> str:
    """JSON columns come out of DuckDB as text, as the new store keeps them."""
    kind = old.execute("SELECT data_type FROM information_schema.columns WHERE table_name = ? AND column_name = ?",
                       [table, column]).fetchone()[0]
    return f"CAST({column} AS VARCHAR) AS {column}" if kind == "JSON" else column


def _analytics(old, have: set[str], store) -> int:
    if "tick_values" not in have:
        return 0
    n = 0
    for (run_id,) in old.execute("SELECT DISTINCT run_id FROM tick_values").fetchall():
        long = old.execute("SELECT tick, timestamp, metric, value FROM tick_values WHERE run_id = ? ORDER BY tick",
                           [run_id]).df()
        wide = long.pivot(index=["tick", "timestamp"], columns="metric", values="value").reset_index()
        cols = old.execute("SELECT columns FROM runs WHERE run_id = ?", [run_id]).fetchone()
        order = json.loads(cols[0]) if cols and cols[0] else \
            ["timestamp", *[c for c in wide.columns if c not in ("tick", "timestamp")]]
        wide = wide[[c for c in order if c in wide.columns]]
        events = old.execute("SELECT tick, timestamp, type, message, CAST(details AS VARCHAR) AS details FROM events "
                             "WHERE run_id = ? ORDER BY tick", [run_id]).df() if "events" in have else None
        store.analytics.write(run_id, wide, events if events is not None else pd.DataFrame())
        n += 1
    return n
