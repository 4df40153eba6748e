"""A copy of a dataset as it stood at hour T: every series cut to the rows timestamped at or before T, the
bar labelled T reduced to its open (its high, low, close and volume are known only at T + 1h), the manifest
rewritten (rows, end, sha256). Written with the standard library and pandas only, independently of
basiskit's loaders, so a look-ahead in them cannot hide here."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

BAR_FOLDERS = ("perp", "spot")


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cut_dataset(src: Path, dst: Path, at: datetime) -> Path:
    """Write `src` as known at `at` into `dst` (created); returns `dst`."""
    stamp = iso(at)
    manifest = json.loads((src / "MANIFEST.json").read_text())
    dst.mkdir(parents=True, exist_ok=True)
    for rel, entry in manifest["files"].items():
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        if not rel.endswith(".csv.gz"):
            shutil.copyfile(src / rel, dst / rel)
            continue
        header, *lines = gzip.decompress((src / rel).read_bytes()).decode().splitlines()
        kept = [ln for ln in lines if ln[:20] <= stamp]  # ISO 8601 UTC text orders as time does
        if rel.split("/", 1)[0] in BAR_FOLDERS and kept and kept[-1][:20] == stamp:
            cols = header.split(",")
            values = kept[-1].split(",")
            kept[-1] = ",".join(v if c in ("timestamp", "open") else "" for c, v in zip(cols, values, strict=True))
        if not kept:
            raise ValueError(f"{rel} has no row at or before {stamp}: choose a later hour")
        raw = gzip.compress(("\n".join([header, *kept]) + "\n").encode(), mtime=0)
        (dst / rel).write_bytes(raw)
        entry.update(rows=len(kept), end=kept[-1][:20], sha256=hashlib.sha256(raw).hexdigest())
    (dst / "MANIFEST.json").write_text(json.dumps(manifest, indent=1))
    return dst
