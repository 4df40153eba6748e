"""A dataset folder in the market-data format: MANIFEST.json plus category folders of gzipped CSV.

Each series is read at most once per Dataset, checked against the manifest and for sane values,
and handed out as numpy arrays (timestamps in epoch seconds).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from .timeutil import HOUR, epoch_seconds, iso

# How each category folder meets the hourly grid (ARCHITECTURE.md §4).
FOLDER_KIND = {
    "aave": "snapshot",  # daily snapshots; indexes accrue from the last one at its rates
    "perp": "bar",  # OHLCV labelled by open time
    "spot": "bar",
    "staking": "point",  # last value at or before t
    "gas": "point",
    "benchmarks": "point",
    "funding": "event",  # settled at the first tick at or after the timestamp
    "rewards": "reward",  # irregular credit dates: events without a staleness limit
}

# Columns that must be strictly positive (prices, indexes, exchange rates).
POSITIVE_COLUMNS = {
    "open", "high", "low", "close", "oracle_price_usd", "liquidity_index",
    "variable_borrow_index", "market_rate", "gas_price_gwei",
}
# Columns that must not be negative.
NON_NEGATIVE_COLUMNS = {
    "volume", "liquidity_rate", "variable_borrow_rate", "total_supply", "total_variable_debt",
    "base_fee_gwei", "priority_fee_p50_gwei", "eigen_per_eeth", "ethfi_per_eeth",
}

SAMPLE_DIR = Path(__file__).resolve().parent / "sample"
ENV_VAR = "BASISKIT_DATA"


@dataclass(frozen=True)
class SeriesMeta:
    """What the manifest says of one series; `name` is its path without `.csv.gz`."""

    name: str
    file: str
    kind: str
    columns: tuple[str, ...]
    rows: int
    sha256: str
    spacing_hours: float
    start: int
    end: int
    volume_in_usd: bool = False  # the manifest's volume column is in USD (else in the base asset)


@dataclass
class Series:
    """One loaded, validated series: timestamps (epoch s) and its numeric columns."""

    meta: SeriesMeta
    path: Path
    ts: np.ndarray
    columns: dict[str, np.ndarray] = field(default_factory=dict)

    def column(self, name: str) -> np.ndarray:
        if name not in self.columns:
            raise DataError(
                f"{self.path}: no numeric column {name!r}; it has {sorted(self.columns)}. "
                "Fix the series/column name in the run config."
            )
        return self.columns[name]


def resolve_data_dir(cli_dir: str | os.PathLike | None) -> tuple[Path, str]:
    """The dataset folder in the documented order: --data DIR, $BASISKIT_DATA, the embedded sample."""
    if cli_dir:
        return Path(cli_dir), "--data"
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env), ENV_VAR
    return SAMPLE_DIR, "embedded sample"


class Dataset:
    """A market-data folder. Series are loaded lazily, each once, and validated on load."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        manifest_path = self.root / "MANIFEST.json"
        if not manifest_path.is_file():
            raise DataError(
                f"{manifest_path}: not found. A dataset folder needs MANIFEST.json beside its category "
                "folders; pass --data DIR pointing at such a folder (e.g. shared/market-data)."
            )
        try:
            self.manifest = json.loads(manifest_path.read_text())
        except ValueError as exc:
            raise DataError(f"{manifest_path}: not valid JSON ({exc}). Restore the file.") from exc
        self.meta: dict[str, SeriesMeta] = {}
        self.params_files: dict[str, str] = {}
        for rel, entry in self.manifest.get("files", {}).items():
            if rel.endswith(".json"):
                self.params_files[rel[: -len(".json")]] = entry["sha256"]
                continue
            self.meta[_series_name(rel)] = _meta_from_manifest(rel, entry, manifest_path)
        self._cache: dict[str, Series] = {}
        self._params: dict[str, dict] = {}

    def names(self) -> list[str]:
        return sorted(self.meta)

    def series_meta(self, name: str) -> SeriesMeta:
        if name not in self.meta:
            raise DataError(
                f"series {name!r} is not in {self.root / 'MANIFEST.json'}; known series: "
                f"{', '.join(self.names())}. Fix the series name in the config or use another --data."
            )
        return self.meta[name]

    def series(self, name: str) -> Series:
        """The validated series `name` (read from disk the first time only)."""
        if name not in self._cache:
            self._cache[name] = load_series(self.root, self.series_meta(name))
        return self._cache[name]

    def raw_series(self, name: str) -> Series:
        """The series as recorded (manifest and checksum checked, values not): what a replay feed serves."""
        return load_series(self.root, self.series_meta(name), checked=False)

    def params(self, name: str) -> dict:
        """A static JSON parameter file such as `params/cex_venues`, checked against the manifest."""
        if name not in self._params:
            if name not in self.params_files:
                raise DataError(f"parameter file {name}.json is not in {self.root / 'MANIFEST.json'}.")
            path = self.root / f"{name}.json"
            raw = _read_checked(path, self.params_files[name])
            self._params[name] = json.loads(raw)
        return self._params[name]

    def loaded_params(self) -> list[str]:
        return list(self._params)

    def load_all(self) -> None:
        for name in self.names():
            self.series(name)
        for name in self.params_files:
            self.params(name)


def _series_name(rel: str) -> str:
    return rel[: -len(".csv.gz")] if rel.endswith(".csv.gz") else rel


def _meta_from_manifest(rel: str, entry: dict, manifest_path: Path) -> SeriesMeta:
    folder = rel.split("/", 1)[0]
    if folder not in FOLDER_KIND:
        raise DataError(
            f"{manifest_path}: file {rel!r} is in folder {folder!r}, which basiskit does not know; "
            f"known folders: {', '.join(sorted(FOLDER_KIND))}."
        )
    try:
        columns = entry["columns"]
        spacing = float(entry.get("median_spacing_hours") or 0.0)
        start = pd.Timestamp(entry["start"]).value // 10**9
        end = pd.Timestamp(entry["end"]).value // 10**9
        return SeriesMeta(
            name=_series_name(rel), file=rel, kind=FOLDER_KIND[folder],
            columns=tuple(columns if isinstance(columns, list) else list(columns)),
            rows=int(entry["rows"]), sha256=entry["sha256"], spacing_hours=spacing or 1.0,
            start=int(start), end=int(end),
            volume_in_usd=isinstance(columns, dict) and "in USD" in str(columns.get("volume", "")),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise DataError(f"{manifest_path}: entry {rel!r} is incomplete or malformed ({exc!r}).") from exc


def _read_checked(path: Path, sha256: str) -> bytes:
    if not path.is_file():
        raise DataError(f"{path}: listed in MANIFEST.json but missing. Restore the file.")
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != sha256:
        raise DataError(
            f"{path}: sha256 {digest[:16]}... differs from MANIFEST.json ({sha256[:16]}...): the file was "
            "changed or corrupted. Restore it, or rebuild the manifest if the change is intended."
        )
    return raw


def load_series(root: Path, meta: SeriesMeta, checked: bool = True) -> Series:
    """Read one CSV, check it against the manifest and (unless `checked` is False: a replay feed checks
    each row as it delivers it) for sane values and increasing timestamps, return arrays."""
    path = root / meta.file
    raw = _read_checked(path, meta.sha256)
    import io

    try:
        df = pd.read_csv(io.BytesIO(raw), compression="gzip")
    except Exception as exc:  # pandas raises many kinds here
        raise DataError(f"{path}: cannot be read as gzipped CSV ({exc}). Restore the file.") from exc
    if list(df.columns[:1]) != ["timestamp"]:
        raise DataError(f"{path}: first column is {df.columns[0]!r}, expected 'timestamp'.")
    if set(df.columns) != set(meta.columns):
        raise DataError(
            f"{path}: columns {list(df.columns)} differ from MANIFEST.json {list(meta.columns)}."
        )
    if len(df) != meta.rows:
        raise DataError(f"{path}: {len(df)} rows, MANIFEST.json says {meta.rows}.")
    if len(df) == 0:
        raise DataError(f"{path}: no rows.")
    parsed = pd.to_datetime(df["timestamp"], utc=True, format="%Y-%m-%dT%H:%M:%SZ", errors="coerce")
    bad = parsed.isna().to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(
            f"{path}: row {row + 2} timestamp {df['timestamp'].iloc[row]!r} is not ISO 8601 UTC "
            "(YYYY-MM-DDTHH:MM:SSZ). Fix or remove the row."
        )
    ts = epoch_seconds(parsed)
    diffs = np.diff(ts)
    if checked and (diffs <= 0).any():
        i = int(np.argmax(diffs <= 0)) + 1
        what = "duplicate" if diffs[i - 1] == 0 else "out-of-order"
        raise DataError(
            f"{path}: row {i + 2} timestamp {iso(ts[i])} is a {what} timestamp (previous row has "
            f"{iso(ts[i - 1])}); timestamps must be strictly increasing. Remove or fix the row."
        )
    columns: dict[str, np.ndarray] = {}
    for col in df.columns[1:]:
        if not pd.api.types.is_numeric_dtype(df[col]):
            dates = pd.to_datetime(df[col], utc=True, format="ISO8601", errors="coerce")
            if dates.notna().all():  # date columns (rewards' period_start/end) become epoch seconds
                columns[col] = epoch_seconds(dates).astype(np.float64)
            continue
        values = df[col].to_numpy(dtype=np.float64)
        if checked:
            # a bar series may end with a bar still open: its open is known, the rest only once it closes
            still_open = meta.kind == "bar" and col != "open" and np.isnan(values[-1])
            _check_values(path, col, values[:-1] if still_open else values, ts)
        columns[col] = values
    return Series(meta=meta, path=path, ts=ts, columns=columns)


def _check_values(path: Path, col: str, values: np.ndarray, ts: np.ndarray) -> None:
    checks = [(np.isnan(values), "is NaN")]
    if col in POSITIVE_COLUMNS:
        checks.append((values <= 0, "is zero or negative; a price, index or rate must be > 0"))
    elif col in NON_NEGATIVE_COLUMNS:
        checks.append((values < 0, "is negative"))
    for mask, what in checks:
        if mask.any():
            i = int(np.argmax(mask))
            raise DataError(
                f"{path}: column {col!r} at {iso(ts[i])} (row {i + 2}) {what} (value {values[i]!r}). "
                "Fix or remove the row and update MANIFEST.json."
            )


def spacing_seconds(meta: SeriesMeta) -> int:
    return int(round(meta.spacing_hours * HOUR))
