"""The embedded sample is a real slice of the full dataset, rebuilt byte for byte by its command."""

from __future__ import annotations

import gzip
import json

import pytest

from basiskit.data.dataset import SAMPLE_DIR, Dataset
from basiskit.data.sample import build_sample


def test_sample_is_small_and_valid():
    size = sum(p.stat().st_size for p in SAMPLE_DIR.rglob("*") if p.is_file())
    assert size < 3 * 1024 * 1024
    Dataset(SAMPLE_DIR).load_all()


def test_sample_rebuilds_identically_from_full_data(full_data, tmp_path):
    build_sample(Dataset(full_data), tmp_path / "s", "2024-10-06", "2025-01-06")
    built = sorted(p.relative_to(tmp_path / "s") for p in (tmp_path / "s").rglob("*") if p.is_file())
    shipped = sorted(p.relative_to(SAMPLE_DIR) for p in SAMPLE_DIR.rglob("*") if p.is_file())
    assert built == shipped
    for rel in built:
        assert (tmp_path / "s" / rel).read_bytes() == (SAMPLE_DIR / rel).read_bytes(), rel


@pytest.mark.parametrize("series", ["aave/weth_reserve_1d", "perp/binance_btcusdt_1h", "funding/okx_ethusdt_8h"])
def test_sample_rows_are_the_full_rows(full_data, series):
    full = gzip.decompress((full_data / f"{series}.csv.gz").read_bytes()).decode().splitlines()
    part = gzip.decompress((SAMPLE_DIR / f"{series}.csv.gz").read_bytes()).decode().splitlines()
    assert part[0] == full[0]
    start = full.index(part[1])
    assert full[start: start + len(part) - 1] == part[1:]
    meta = json.loads((SAMPLE_DIR / "MANIFEST.json").read_text())["files"][f"{series}.csv.gz"]
    assert meta["rows"] == len(part) - 1
