"""`basiskit data fetch`: extend a dataset folder from the public sources, through the live feed's clients.

Only rows after a series' last row are appended, and only observations that are final (a bar once it
closed, a settlement once it happened, a daily Aave snapshot at 00:00 UTC read at its block); the
manifest entry is rebuilt (rows, end, gaps, sha256) and the folder is validated as `data check` does.
Running it again before anything new exists changes nothing.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path

from ..errors import DataError
from .check import check_dataset
from .dataset import Dataset
from .sample import manifest_entry
from .timeutil import HOUR, iso

DAY = 24 * HOUR
Row = tuple[int, dict[str, float]]
INTEGER_COLUMNS = {"block_number"}


def _fmt(value: float, column: str) -> str:
    """Shortest text that reads back as the same float; block numbers as integers (as the dataset writes them)."""
    return str(int(value)) if column in INTEGER_COLUMNS else repr(float(value))


def append_rows(root: Path, manifest: dict, series: str, rows: list[Row], provenance: str) -> int:
    """Append `rows` newer than the file's last row to `series` and rebuild its manifest entry."""
    rel = f"{series}.csv.gz"
    entry = manifest["files"].get(rel)
    if entry is None:
        raise DataError(
            f"{root / 'MANIFEST.json'}: no series {series!r} to extend; data fetch extends series the "
            "dataset already has."
        )
    path = root / rel
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    header = lines[0].split(",")
    last = lines[-1].split(",", 1)[0] if len(lines) > 1 else ""
    new = []
    for ts, values in rows:
        stamp = iso(ts)
        if stamp <= last:
            continue
        missing = [c for c in header[1:] if c not in values]
        if missing:
            raise DataError(
                f"{series}: the source gave no {', '.join(missing)} for {stamp}; the row is not appended."
            )
        new.append(",".join([stamp, *(_fmt(values[c], c) for c in header[1:])]))
        last = stamp
    if not new:
        return 0
    kept = [*lines[1:], *new]
    raw = gzip.compress(("\n".join([lines[0], *kept]) + "\n").encode(), mtime=0)
    path.write_bytes(raw)
    updated = manifest_entry(entry, kept, raw)
    if provenance not in str(updated.get("provenance", "")):
        updated["provenance"] = f"{updated.get('provenance', '')}; extended by {provenance}".lstrip("; ")
    manifest["files"][rel] = updated
    return len(new)


def fetch_dataset(
    root: str | Path,
    until: int,
    series: list[str] | None = None,
    since: int | None = None,
    exchanges: dict | None = None,
    chain=None,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Append every new final row of `series` (default: every series a public source serves) up to `until`;
    returns the rows appended per series. `exchanges` (venue -> ExchangeClient) and `chain` (a ChainClient)
    are built on demand; without a chain client, chain series are left out unless named."""
    from ..paper.chain import GAS, reserve_of
    from ..paper.exchanges import ExchangeClient, instrument_of

    root = Path(root)
    dataset = Dataset(root)
    manifest = json.loads((root / "MANIFEST.json").read_text())
    served = [s for s in dataset.names() if instrument_of(s) or (chain is not None and (reserve_of(s) or s == GAS))]
    targets = series or served
    unknown = [s for s in targets if s not in dataset.meta]
    unserved = [s for s in targets if s in dataset.meta and s not in served]
    if unknown or unserved:
        raise DataError(
            "data fetch cannot extend "
            + "; ".join(
                [f"{s} (not in {root / 'MANIFEST.json'})" for s in unknown]
                + [
                    f"{s} (no public source serves it"
                    + (", or pass --rpc-url)" if reserve_of(s) or s == GAS else ")")
                    for s in unserved
                ]
            )
        )
    exchanges = dict(exchanges or {})
    appended: dict[str, int] = {}
    for name in targets:
        last = int(dataset.series(name).ts[-1])
        start = max(last, since) if since is not None else last
        inst = instrument_of(name)
        if inst is not None:
            if inst.venue not in exchanges:
                exchanges[inst.venue] = ExchangeClient(
                    inst.venue,
                    sorted({i.asset for s in targets if (i := instrument_of(s)) and i.venue == inst.venue}),
                )
            client = exchanges[inst.venue]
            if inst.kind == "funding":
                rows = client.funding(inst, start + 1, until)
            else:
                rows = [(ts, v) for ts, v in client.bars(inst, start + HOUR, until) if ts + HOUR <= until]
        elif name == GAS:
            rows = [(t, chain.gas(chain.block_at(t))) for t in range(start + HOUR, until + 1, HOUR)]
        else:
            first_day = (start // DAY + 1) * DAY
            rows = [(t, chain.reserve(reserve_of(name), chain.block_at(t))) for t in range(first_day, until + 1, DAY)]
        appended[name] = append_rows(root, manifest, name, rows, "basiskit data fetch")
        if progress is not None:
            progress(name, appended[name])
    if any(appended.values()):
        (root / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
        check_dataset(Dataset(root))
    return appended
