"""What a live session observed, written as a dataset folder in the market-data format (MANIFEST.json with
columns, rows, coverage, gaps and sha256; the reference dataset's parameter files beside it), so the
session can be backtested afterwards on exactly what it saw. Only final rows are written (a bar once it
closed); the folder is replaced atomically."""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ..data.dataset import Dataset
from ..data.live import LiveMarket
from ..data.sample import manifest_entry
from ..data.timeutil import HOUR, iso

DATE_COLUMNS = {"period_start", "period_end"}


def _text(value: float, column: str) -> str:
    if column in DATE_COLUMNS:
        return iso(value)
    return str(int(value)) if column == "block_number" else repr(float(value))


def write_capture(market: LiveMarket, reference: Dataset, dest: str | Path, provenance: str) -> dict:
    """Write every series the market's buffers hold to `dest`; returns {"series": n, "rows": n}."""
    dest = Path(dest)
    tmp = dest.with_name(dest.name + ".writing")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    manifest = {"capture": {"provenance": provenance, "written_at": f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}",
                            "reference": str(reference.root)},
                "conventions": reference.manifest.get("conventions", {}), "files": {}}
    rows_total = 0
    for _, buf in sorted(market.buffers.items()):
        ref = reference.manifest["files"][buf.meta.file]
        header = list(buf.meta.columns)
        cols = header[1:]
        kept = []
        arrays = [buf.column(c) for c in cols]
        for i, t in enumerate(buf.ts):
            values = [float(a[i]) for a in arrays]
            if any(math.isnan(v) for v in values):
                continue  # a bar still open, or a row a source gave only in part
            kept.append(",".join([iso(t), *(_text(v, c) for v, c in zip(values, cols, strict=True))]))
        if not kept:
            continue
        raw = gzip.compress(("\n".join([",".join(header), *kept]) + "\n").encode(), mtime=0)
        path = tmp / buf.meta.file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
        entry = dict(ref)
        if len(kept) > 1:
            ts = np.array([int(datetime.strptime(k[:20], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())
                           for k in kept])
            entry["median_spacing_hours"] = float(np.median(np.diff(ts)) / HOUR)
        entry["provenance"] = provenance
        manifest["files"][buf.meta.file] = manifest_entry(entry, kept, raw)
        rows_total += len(kept)
    for name in reference.params_files:
        rel = f"{name}.json"
        raw = (reference.root / rel).read_bytes()
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / rel).write_bytes(raw)
        manifest["files"][rel] = {**reference.manifest["files"][rel], "sha256": hashlib.sha256(raw).hexdigest()}
    (tmp / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    return {"series": sum(1 for f in manifest["files"] if f.endswith(".csv.gz")), "rows": rows_total}
