"""A stored run's analytics as Parquet files, one folder per run, read back whole or through DuckDB views:

  <root>/runs/<run_id>/ticks.parquet    the per-tick table (wide: timestamp, then one float column per metric)
  <root>/runs/<run_id>/events.parquet   tick, timestamp, type, message, details (JSON text)

Each file is written beside its final name and renamed into place, so a reader sees a run's file whole or not at
all; nothing keeps a DuckDB file open: `views()` is an in-memory DuckDB connection whose views `tick_values`
(run_id, tick, timestamp, metric, value: the long table earlier releases stored) and `events` read the files."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path

import pandas as pd

EVENT_COLUMNS = ["tick", "timestamp", "type", "message", "details"]


class Analytics:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.parent.mkdir(parents=True, exist_ok=True)
        for folder in (self.root, self.root / "runs"):  # owner-only: positions and PnL
            folder.mkdir(exist_ok=True, mode=0o700)

    def _dir(self, run_id: str) -> Path:
        if not run_id or "/" in run_id or "\\" in run_id or run_id.startswith("."):
            raise ValueError(f"run id {run_id!r} cannot name a folder")
        return self.root / "runs" / run_id

    def write(self, run_id: str, ticks: pd.DataFrame, events: pd.DataFrame) -> None:
        folder = self._dir(run_id)
        folder.mkdir(exist_ok=True, mode=0o700)
        ev = events.reindex(columns=EVENT_COLUMNS).copy()
        ev["details"] = ev["details"].map(lambda d: d if d is None or isinstance(d, str) else _json(d))
        wide = ticks.reset_index(drop=True)
        wide = wide.astype({c: "float64" for c in wide.columns if c != "timestamp" and wide[c].dtype != "float64"})
        for name, frame in (("ticks", wide), ("events", ev.reset_index(drop=True))):
            part = folder / f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part"  # one writer's own
            frame.to_parquet(part, index=False)
            os.replace(part, folder / f"{name}.parquet")

    def has(self, run_id: str) -> bool:
        return (self._dir(run_id) / "ticks.parquet").exists()

    def ticks(self, run_id: str) -> pd.DataFrame | None:
        path = self._dir(run_id) / "ticks.parquet"
        return pd.read_parquet(path) if path.exists() else None

    def events(self, run_id: str) -> pd.DataFrame:
        path = self._dir(run_id) / "events.parquet"
        if not path.exists():
            return pd.DataFrame(columns=EVENT_COLUMNS)
        return pd.read_parquet(path)

    def delete(self, run_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self._dir(run_id))

    def views(self):
        """An in-memory DuckDB connection with the views `tick_values` and `events` over every stored run."""
        import duckdb

        con = duckdb.connect()
        runs = self.root / "runs"
        ticks, events = str(runs / "*" / "ticks.parquet"), str(runs / "*" / "events.parquet")
        run_id = "regexp_extract(filename, '([^/\\\\]+)[/\\\\][a-z]+\\.parquet$', 1)"
        if any(runs.glob("*/ticks.parquet")):
            con.execute(
                f"CREATE VIEW tick_values AS SELECT {run_id} AS run_id, tick, timestamp, metric, value FROM ("
                f"UNPIVOT (SELECT row_number() OVER (PARTITION BY filename ORDER BY timestamp) - 1 AS tick, * "
                f"FROM read_parquet('{_quoted(ticks)}', union_by_name = true, filename = true)) "
                "ON COLUMNS(* EXCLUDE (tick, timestamp, filename)) INTO NAME metric VALUE value)")
            con.execute(f"CREATE VIEW events AS SELECT {run_id} AS run_id, tick, timestamp, type, message, details "
                        f"FROM read_parquet('{_quoted(events)}', union_by_name = true, filename = true)")
        else:
            con.execute("CREATE VIEW tick_values AS SELECT NULL::VARCHAR AS run_id, NULL::INTEGER AS tick, "
                        "NULL::TIMESTAMPTZ AS timestamp, NULL::VARCHAR AS metric, NULL::DOUBLE AS value WHERE false")
            con.execute("CREATE VIEW events AS SELECT NULL::VARCHAR AS run_id, NULL::INTEGER AS tick, "
                        "NULL::TIMESTAMPTZ AS timestamp, NULL::VARCHAR AS type, NULL::VARCHAR AS message, "
                        "NULL::VARCHAR AS details WHERE false")
        return con


def _json(value) -> str:
    import json

    from .db import json_safe

    return json.dumps(json_safe(value))


def _quoted(path: str) -> str:
    return path.replace("'", "''")
