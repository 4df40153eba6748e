"""Alignment of real series onto the hourly grid (DESIGN §4), checked against the raw CSV by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from basiskit.data import align
from basiskit.data.dataset import SAMPLE_DIR, Dataset
from conftest import raw_csv


def epoch(text: str) -> int:
    return int(pd.Timestamp(text).timestamp())


def test_interpolated_index_is_geometric_between_snapshots():
    raw = raw_csv(SAMPLE_DIR, "aave/usdt_reserve_1d")
    i0 = raw.loc["2024-11-01T00:00:00Z", "liquidity_index"]
    i1 = raw.loc["2024-11-02T00:00:00Z", "liquidity_index"]
    s = Dataset(SAMPLE_DIR).series("aave/usdt_reserve_1d")
    grid = align.hourly_grid(epoch("2024-11-01T00:00:00Z"), epoch("2024-11-02T00:00:00Z"))
    got = align.align_geometric(s.ts, s.column("liquidity_index"), grid, "usdt")
    assert got[0] == i0 and got[-1] == i1  # endpoints exact
    for h in (1, 7, 13, 23):
        assert got[h] == pytest.approx(i0 * (i1 / i0) ** (h / 24), rel=1e-15)
    assert np.all(np.diff(got) > 0)


def test_geometric_refuses_extrapolation():
    s = Dataset(SAMPLE_DIR).series("aave/usdt_reserve_1d")
    grid = align.hourly_grid(int(s.ts[-1]) - 3600, int(s.ts[-1]) + 3600)
    with pytest.raises(Exception, match="cannot extrapolate"):
        align.align_geometric(s.ts, s.column("liquidity_index"), grid, "usdt")


def test_bar_price_is_open_at_label_never_its_close():
    raw = raw_csv(SAMPLE_DIR, "spot/uniswapv3_wethusdt_1h")
    s = Dataset(SAMPLE_DIR).series("spot/uniswapv3_wethusdt_1h")
    grid = align.hourly_grid(epoch("2024-11-05T00:00:00Z"), epoch("2024-11-05T05:00:00Z"))
    got = align.align_bar_price(s, grid)
    for k, t in enumerate(pd.date_range("2024-11-05", periods=6, freq="h", tz="UTC")):
        assert got[k] == raw.loc[t.strftime("%Y-%m-%dT%H:%M:%SZ"), "open"]


def test_missing_bar_uses_close_of_last_bar(full_data):
    # binance spot has no bars between 2024-02-10T00:00 and 2024-02-11T00:00 (dataset README)
    raw = raw_csv(full_data, "spot/binance_btcusdt_1h")
    assert "2024-02-10T01:00:00Z" not in raw.index
    s = Dataset(full_data).series("spot/binance_btcusdt_1h")
    grid = align.hourly_grid(epoch("2024-02-10T00:00:00Z"), epoch("2024-02-11T00:00:00Z"))
    got = align.align_bar_price(s, grid)
    assert got[0] == raw.loc["2024-02-10T00:00:00Z", "open"]
    assert np.all(got[1:24] == raw.loc["2024-02-10T00:00:00Z", "close"])
    assert got[24] == raw.loc["2024-02-11T00:00:00Z", "open"]


def test_funding_events_settle_at_their_own_tick():
    raw = raw_csv(SAMPLE_DIR, "funding/binance_btcusdt_8h")
    s = Dataset(SAMPLE_DIR).series("funding/binance_btcusdt_8h")
    grid = align.hourly_grid(epoch("2024-11-01T00:00:00Z"), epoch("2024-11-03T00:00:00Z"))
    got = align.align_events(s, "funding_rate", grid)
    # the event at the first point happened before the run; the one at the last point belongs to it
    assert got[0] == 0.0
    assert got[8] == raw.loc["2024-11-01T08:00:00Z", "funding_rate"]
    assert got[48] == raw.loc["2024-11-03T00:00:00Z", "funding_rate"]
    inside = raw.loc["2024-11-01T01:00:00Z":"2024-11-03T00:00:00Z", "funding_rate"]
    assert np.count_nonzero(got) == len(inside) == 6
    assert got.sum() == pytest.approx(inside.sum(), rel=1e-12)
