"""Bad data is refused with an error that names the file, the timestamp and the fix."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest

from basiskit.data.dataset import Dataset
from basiskit.engine.run import run_backtest
from basiskit.engine.runconfig import load_run_config
from basiskit.errors import DataError
from basiskit.results.summary import summarize

UNI = "spot/uniswapv3_wethusdt_1h"


def rewrite(root: Path, series: str, edit) -> None:
    """Apply `edit` to the CSV lines of a series and keep MANIFEST.json consistent (sha256, rows)."""
    path = root / f"{series}.csv.gz"
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    lines = [lines[0], *edit(lines[1:])]
    raw = gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0)
    path.write_bytes(raw)
    manifest = json.loads((root / "MANIFEST.json").read_text())
    entry = manifest["files"][f"{series}.csv.gz"]
    entry["sha256"] = hashlib.sha256(raw).hexdigest()
    entry["rows"] = len(lines) - 1
    (root / "MANIFEST.json").write_text(json.dumps(manifest))


def set_field(line: str, col: int, value: str) -> str:
    parts = line.split(",")
    parts[col] = value
    return ",".join(parts)


def test_zero_price_names_file_and_timestamp(sample_copy):
    rewrite(sample_copy, UNI, lambda rows: [set_field(r, 1, "0.0") if r.startswith("2024-11-05T03") else r
                                            for r in rows])
    with pytest.raises(DataError) as exc:
        Dataset(sample_copy).series(UNI)
    msg = str(exc.value)
    assert "uniswapv3_wethusdt_1h.csv.gz" in msg and "2024-11-05T03:00:00Z" in msg and "'open'" in msg


def test_duplicate_timestamp_names_file_and_timestamp(sample_copy):
    def dup(rows):
        i = next(i for i, r in enumerate(rows) if r.startswith("2024-11-05T03"))
        return rows[: i + 1] + [rows[i]] + rows[i + 1:]

    rewrite(sample_copy, UNI, dup)
    with pytest.raises(DataError, match=r"uniswapv3_wethusdt_1h\.csv\.gz.*2024-11-05T03:00:00Z.*duplicate"):
        Dataset(sample_copy).series(UNI)


def test_changed_file_fails_its_checksum(sample_copy):
    path = sample_copy / f"{UNI}.csv.gz"
    path.write_bytes(path.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(DataError, match=r"uniswapv3_wethusdt_1h\.csv\.gz: sha256 .* differs"):
        Dataset(sample_copy).series(UNI)


def test_hole_longer_than_limit_stops_the_run(sample_copy):
    # 30 bars removed: a 31 h hole, over the 24 h limit for hourly prices
    rewrite(sample_copy, UNI, lambda rows: [r for r in rows if not ("2024-11-05T00" < r[:13] <= "2024-11-06T06")])
    cfg = load_run_config("pure_lending_usdt")
    with pytest.raises(DataError) as exc:
        run_backtest(cfg, Dataset(sample_copy))
    msg = str(exc.value)
    assert "uniswapv3_wethusdt_1h.csv.gz" in msg and "31 h after 2024-11-05T00:00:00Z" in msg
    assert "data.staleness_hours.bar" in msg


def test_short_hole_is_used_and_counted_as_a_warning(sample_copy):
    rewrite(sample_copy, UNI, lambda rows: [r for r in rows if not ("2024-11-05T00" < r[:13] <= "2024-11-05T03")])
    result = run_backtest(load_run_config("pure_lending_usdt"), Dataset(sample_copy))
    assert summarize(result)["data_warnings"] == 1
    (warning,) = result.events.of_type("data_warning")
    assert warning.details["series"] == UNI and warning.details["hours"] == 4.0
    assert warning.details["after"] == "2024-11-05T00:00:00Z"


def test_hole_limit_is_configurable(sample_copy):
    rewrite(sample_copy, UNI, lambda rows: [r for r in rows if not ("2024-11-05T00" < r[:13] <= "2024-11-05T03")])
    cfg = load_run_config("pure_lending_usdt", sets=["data.staleness_hours.bar=2"])
    with pytest.raises(DataError, match="limit is 2 h"):
        run_backtest(cfg, Dataset(sample_copy))


def test_window_outside_coverage_names_series_and_common_window(full_data):
    cfg = load_run_config("pure_lending_usdt", extra={"start": "2023-06-01", "end": "2024-03-01"})
    with pytest.raises(DataError) as exc:
        run_backtest(cfg, Dataset(full_data))
    msg = str(exc.value)
    for series in ("aave/usdt_reserve_1d", "gas/ethereum_gas_1h", UNI):
        assert f"{series} covers 2024-01-01T00:00:00Z" in msg
    # by hand: the gas series' last row is 2025-09-26T23:00, and a point series may be used 24 h past it
    assert "exist together in 2024-01-01T00:00:00Z .. 2025-09-27T23:00:00Z" in msg


def test_missing_manifest_says_what_a_dataset_is(tmp_path):
    with pytest.raises(DataError, match="MANIFEST.json: not found"):
        Dataset(tmp_path)


def test_full_dataset_validates(full_data):
    from basiskit.data.check import check_dataset

    rows = {r.series: r for r in check_dataset(Dataset(full_data))}
    manifest = json.loads((full_data / "MANIFEST.json").read_text())["files"]
    assert len(rows) == sum(1 for f in manifest if f.endswith(".csv.gz"))
    okx = rows["perp/okx_ethusdt_1h"]
    assert okx.rows == manifest["perp/okx_ethusdt_1h.csv.gz"]["rows"] and okx.largest_gap_hours == 721
