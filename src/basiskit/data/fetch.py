"""`basiskit data fetch`: extend a dataset folder from the public sources, through the live feed's clients.

Only rows after a series' last row are appended, and only observations that are final (a bar once it
closed, a settlement once it happened, a daily Aave snapshot at 00:00 UTC read at its block, an hour's gas
from that hour's block); the manifest entry is rebuilt (rows, end, gaps, sha256) and the folder is validated
as `data check` does. All or nothing: every series is fetched to a temporary file first, and the files are
renamed into place only when all have succeeded, the manifest last; a failure half-way leaves the dataset
byte-identical. Running it again before anything new exists changes nothing.
"""

from __future__ import annotations

import gzip
import json
import os
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


def append_rows(root: Path, manifest: dict, series: str, rows: list[Row], provenance: str,
                staged: dict[Path, Path] | None = None) -> int:
    """Append `rows` newer than the file's last row to `series` and rebuild its manifest entry; with `staged`,
    the new file is written beside the old one (`staged[final] = temporary`) for the caller to rename."""
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
    if staged is None:
        path.write_bytes(raw)
    else:
        temp = path.with_name(path.name + ".fetching")
        temp.write_bytes(raw)
        staged[path] = temp
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
    from ..connectors.chain import GAS, reserve_of
    from ..connectors.exchanges import instrument_of

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
    staged: dict[Path, Path] = {}
    try:
        for name in targets:
            try:
                rows = _fetch_rows(name, dataset, targets, exchanges, chain, since, until)
            except DataError:
                raise
            except Exception as exc:  # the source's failure (network, HTTP, RPC), named: nothing was changed
                raise DataError(f"data fetch: {name}: the source failed ({type(exc).__name__}: {exc}); nothing "
                                "in the dataset was changed. Run it again once the source answers.") from exc
            appended[name] = append_rows(root, manifest, name, rows, "basiskit data fetch", staged)
            if progress is not None:
                progress(name, appended[name])
        if staged:
            manifest_temp = root / "MANIFEST.json.fetching"
            manifest_temp.write_text(json.dumps(manifest, indent=1) + "\n")
            for final, temp in staged.items():
                os.replace(temp, final)
            os.replace(manifest_temp, root / "MANIFEST.json")  # last: the files it describes are in place
            staged.clear()
    finally:
        for temp in [*staged.values(), root / "MANIFEST.json.fetching"]:
            temp.unlink(missing_ok=True)
    if any(appended.values()):
        check_dataset(Dataset(root))
    return appended


def _fetch_rows(name: str, dataset: Dataset, targets: list[str], exchanges: dict, chain, since: int | None,
                until: int) -> list[Row]:
    from ..connectors.chain import GAS, reserve_of
    from ..connectors.exchanges import ExchangeClient, instrument_of

    last = int(dataset.series(name).ts[-1])
    start = max(last, since) if since is not None else last
    inst = instrument_of(name)
    if inst is not None:
        if inst.venue not in exchanges:
            exchanges[inst.venue] = ExchangeClient(
                inst.venue, sorted({i.asset for s in targets if (i := instrument_of(s)) and i.venue == inst.venue}))
        client = exchanges[inst.venue]
        if inst.kind == "funding":
            return client.funding(inst, start + 1, until)
        return [(ts, v) for ts, v in client.bars(inst, start + HOUR, until) if ts + HOUR <= until]
    if name == GAS:  # a past hour's gas from that hour's block, never today's price
        return [(t, chain.gas_at(chain.block_at(t))) for t in range(start + HOUR, until + 1, HOUR)]
    first_day = (start // DAY + 1) * DAY
    return [(t, chain.reserve(reserve_of(name), chain.block_at(t))) for t in range(first_day, until + 1, DAY)]
