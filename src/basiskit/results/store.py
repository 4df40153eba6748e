"""Writes a run's tables (Parquet), summary (JSON) and resolved config (YAML) under its run folder."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import yaml

from ..engine.run import RunResult
from .tables import events_table, ticks_table


def new_run_id(mode: str, config_hash: str) -> str:
    now = datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%S}{now.microsecond:06d}-{mode}-{config_hash[:8]}"


def write_run(result: RunResult, summary: dict, out_dir: Path, run_id: str) -> Path:
    folder = Path(out_dir) / run_id
    folder.mkdir(parents=True, exist_ok=False)
    ticks_table(result).to_parquet(folder / "ticks.parquet", index=False)
    events_table(result).to_parquet(folder / "events.parquet", index=False)
    (folder / "config.yaml").write_text(yaml.safe_dump(result.cfg.model_dump(mode="json"), sort_keys=False))
    (folder / "summary.json").write_text(json.dumps(summary, indent=2))
    return folder
