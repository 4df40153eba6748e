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


YEAR = 365 * 86400  # Aave v3 MathUtils.SECONDS_PER_YEAR
RAY = 10**27


def contract_compounded_interest(rate: float, exp: int) -> float:
    """MathUtils.calculateCompoundedInterest in the contract's integer ray arithmetic (rayMul rounds half
    up, divisions truncate), written from the Solidity source."""
    rate_ray = int(round(rate * RAY))
    if exp == 0:
        return 1.0
    b2 = (rate_ray * rate_ray + RAY // 2) // RAY // (YEAR * YEAR)
    b3 = (b2 * rate_ray + RAY // 2) // RAY // YEAR
    second = exp * (exp - 1) * b2 // 2
    third = exp * (exp - 1) * max(exp - 2, 0) * b3 // 6
    return (RAY + rate_ray * exp // YEAR + second + third) / RAY


def test_indexes_accrue_from_the_last_snapshot_at_its_rates():
    """Between snapshots the liquidity index grows linearly at the snapshot's liquidity rate and the
    variable borrow index by Aave's binomial approximation at its borrow rate; the next snapshot's
    observed value takes over at its own time (computed here from the raw CSV by the contract's formulas)."""
    raw = raw_csv(SAMPLE_DIR, "aave/usdt_reserve_1d")
    row0, row1 = raw.loc["2024-11-01T00:00:00Z"], raw.loc["2024-11-02T00:00:00Z"]
    s = Dataset(SAMPLE_DIR).series("aave/usdt_reserve_1d")
    grid = align.hourly_grid(epoch("2024-11-01T00:00:00Z"), epoch("2024-11-02T00:00:00Z"))
    supply = align.align_accrued(s, "liquidity_index", "liquidity_rate", "linear_accrual", grid)
    debt = align.align_accrued(s, "variable_borrow_index", "variable_borrow_rate", "compound_accrual", grid)
    assert supply[0] == row0.liquidity_index and supply[-1] == row1.liquidity_index
    assert debt[0] == row0.variable_borrow_index and debt[-1] == row1.variable_borrow_index
    for h in (1, 7, 13, 23):
        n = h * 3600
        growth = contract_compounded_interest(row0.variable_borrow_rate, n)
        assert supply[h] == pytest.approx(row0.liquidity_index * (1 + row0.liquidity_rate * n / YEAR),
                                          rel=1e-15, abs=0)
        assert debt[h] == pytest.approx(row0.variable_borrow_index * growth, rel=1e-15, abs=0)
    assert np.all(np.diff(supply[:24]) > 0)


def test_compounded_interest_matches_the_contract_on_integers():
    """calculateCompoundedInterest in ray integer arithmetic (WadRayMath.rayMul rounds half up) against the
    float version, for rates from 0 to 500% APR and durations from 0 s to a year."""
    for apr in (0.0, 0.0123456, 0.05, 0.5, 5.0):
        for seconds in (0, 1, 2, 3, 3600, 86400, 30 * 86400, YEAR):
            want = contract_compounded_interest(apr, seconds)
            got = float(align.compounded_interest(np.array([apr]), np.array([seconds]))[0])
            assert got == pytest.approx(want, rel=1e-12, abs=0), (apr, seconds)


def test_lst_rate_is_the_last_snapshot_ratio_never_the_next():
    raw_lst = raw_csv(SAMPLE_DIR, "aave/weeth_reserve_1d")
    raw_weth = raw_csv(SAMPLE_DIR, "aave/weth_reserve_1d")
    ds = Dataset(SAMPLE_DIR)
    grid = align.hourly_grid(epoch("2024-11-01T00:00:00Z"), epoch("2024-11-02T00:00:00Z"))
    got = align.align_ratio_last(ds.series("aave/weeth_reserve_1d"), ds.series("aave/weth_reserve_1d"),
                                 "oracle_price_usd", grid)
    day0 = raw_lst.loc["2024-11-01T00:00:00Z", "oracle_price_usd"] / raw_weth.loc["2024-11-01T00:00:00Z",
                                                                                  "oracle_price_usd"]
    day1 = raw_lst.loc["2024-11-02T00:00:00Z", "oracle_price_usd"] / raw_weth.loc["2024-11-02T00:00:00Z",
                                                                                  "oracle_price_usd"]
    assert np.all(got[:24] == day0) and got[24] == day1


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
