"""Build the embedded sample: every file of a full dataset cut to a short window, bytes unchanged.

Rows are selected on their raw text (no float re-formatting), gzip is written with mtime 0 so the
sample is byte-reproducible, and a new MANIFEST.json records rows, coverage, gaps and sha256.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from .dataset import Dataset
from .timeutil import epoch_seconds

MARGIN = timedelta(days=2)  # snapshots on both sides of the window, so interpolation needs no extrapolation


def _parse_day(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=UTC)
    except ValueError as exc:
        raise DataError(f"sample window bound {text!r} is not an ISO 8601 date.") from exc


def build_sample(full: Dataset, dest: Path, start: str, end: str) -> dict:
    lo_dt, hi_dt = _parse_day(start) - MARGIN, _parse_day(end) + MARGIN
    lo, hi = f"{lo_dt:%Y-%m-%dT%H:%M:%SZ}", f"{hi_dt:%Y-%m-%dT%H:%M:%SZ}"
    full.load_all()  # never sample from a dataset that does not validate
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    manifest = {
        "sample": {
            "window": [start, end],
            "rows_kept": [lo, hi],
            "source_manifest_sha256": hashlib.sha256((full.root / "MANIFEST.json").read_bytes()).hexdigest(),
            "built_by": "basiskit data sample",
        },
        "conventions": full.manifest.get("conventions", {}),
        "files": {},
    }
    total = 0
    for rel, entry in full.manifest["files"].items():
        src = full.root / rel
        out = dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith(".json"):
            raw = src.read_bytes()
            out.write_bytes(raw)
            manifest["files"][rel] = dict(entry)
            total += len(raw)
            continue
        lines = gzip.decompress(src.read_bytes()).decode().splitlines()
        kept = [ln for ln in lines[1:] if lo <= ln.split(",", 1)[0] <= hi]
        if not kept:
            continue
        text = "\n".join([lines[0], *kept]) + "\n"
        raw = gzip.compress(text.encode(), mtime=0)
        out.write_bytes(raw)
        total += len(raw)
        manifest["files"][rel] = manifest_entry(entry, kept, raw)
    (dest / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return {"files": len(manifest["files"]), "bytes": total}


def manifest_entry(entry: dict, kept: list[str], raw: bytes) -> dict:
    """`entry` with what the CSV lines `kept` (compressed to `raw`) say: rows, coverage, gaps, sha256."""
    ts = pd.to_datetime([ln.split(",", 1)[0] for ln in kept], utc=True, format="%Y-%m-%dT%H:%M:%SZ")
    secs = epoch_seconds(ts)
    spacing = float(entry.get("median_spacing_hours") or 1.0) * 3600
    gaps = np.diff(secs)
    big = np.nonzero(gaps > 2 * spacing)[0]
    largest = sorted(big, key=lambda i: -gaps[i])[:5]
    new = dict(entry)
    new.update(
        rows=len(kept), start=kept[0].split(",", 1)[0], end=kept[-1].split(",", 1)[0],
        sha256=hashlib.sha256(raw).hexdigest(), gaps_over_2x_spacing=int(len(big)),
        largest_gaps=[{"after": f"{ts[i]:%Y-%m-%dT%H:%M:%SZ}", "hours": float(gaps[i] / 3600)} for i in largest],
    )
    return new
