"""No look-ahead, proven by cutting the data rather than the run: a backtest ending at T on a copy of the
dataset holding only what was observed by T gives every tick column equal, bit for bit, to the hours up to T
of a backtest on the full dataset whose window ends at least 48 h after T. A value that read a later row
(an index interpolated toward the next snapshot, a bar's close at its open) differs, or is refused.

CI checks every mode at fixed hours (one not a snapshot time, one just before a snapshot); `make fuzz`
draws many random hours (BASISKIT_FUZZ_EXAMPLES).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from basiskit.data.dataset import Dataset
from basiskit.engine.run import Backtest
from basiskit.engine.runconfig import load_run_config
from basiskit.errors import DataError
from basiskit.results.tables import ticks_table
from cut_data import cut_dataset

MODES = ["btc_basis", "eth_basis", "eth_leveraged", "eth_staking_only", "pure_lending_eth", "pure_lending_usdt",
         "usdt_market_neutral", "usdt_market_neutral_no_leverage"]
FUZZ = int(os.environ.get("BASISKIT_FUZZ_EXAMPLES", "0"))
HOUR = timedelta(hours=1)
# Every series (rewards included) has rows from 2024-10-18 on; the full runs end 48 h after T.
EARLIEST, LATEST = datetime(2024, 11, 1, tzinfo=UTC), datetime(2025, 8, 25, tzinfo=UTC)


def _run(mode: str, root: Path, start: datetime, end: datetime, sets=()):
    dataset = Dataset(root)
    cfg = load_run_config(mode, sets=list(sets), extra={"start": start.isoformat(), "end": end.isoformat()},
                          dataset=dataset)
    return Backtest(cfg, dataset).run()


def check_cut_equals_full(mode: str, full: Path, cut_root: Path, at: datetime, days: int = 21) -> str:
    """The cut run against the full run; 'ran' or 'refused_data' (a hole beyond its limit in the window)."""
    start = at - timedelta(days=days)
    try:
        long = _run(mode, full, start, at + 48 * HOUR)
    except DataError:
        return "refused_data"  # the full data cannot serve this window (e.g. OKX's missing month)
    short = _run(mode, cut_root, start, at)  # must not be refused: everything it needs was observed by T
    a, b = ticks_table(short), ticks_table(long)
    n = len(a)
    assert n == int((at - start) / HOUR) + 1
    assert set(a.columns) <= set(b.columns), f"{mode} at {at}: columns only the cut run has"
    for col in set(b.columns) - set(a.columns):  # a source only the later hours used (rewards credited after T)
        assert not np.any(b[col].to_numpy()[:n]), f"{mode} at {at}: {col} moved by T, yet the cut run lacks it"
    for col in a.columns:
        x, y = a[col].to_numpy(), b[col].to_numpy()[:n]
        same = np.array_equal(x, y) or (x.dtype.kind == "f" and np.array_equal(x, y, equal_nan=True))
        assert same, f"{mode}, data cut at {at:%Y-%m-%dT%H:%MZ}: {col} differs from the full data's run " \
                     f"(first at hour {int(np.argmax(~((x == y) | (x != x) & (y != y))))})"
    return "ran"


@pytest.mark.parametrize("at", [datetime(2025, 3, 10, 13, tzinfo=UTC), datetime(2025, 1, 21, 23, tzinfo=UTC)],
                         ids=["13h", "23h"])
def test_a_backtest_on_data_cut_at_t_equals_the_full_backtest_up_to_t(full_data, tmp_path, at):
    cut_root = cut_dataset(full_data, tmp_path / "cut", at)
    outcomes = {mode: check_cut_equals_full(mode, full_data, cut_root, at) for mode in MODES}
    assert all(v == "ran" for v in outcomes.values()), outcomes


def test_the_cut_copy_holds_nothing_after_t(full_data, tmp_path):
    """The helper itself: no row after T, and the bar labelled T carries its open only."""
    at = datetime(2025, 3, 10, 13, tzinfo=UTC)
    root = cut_dataset(full_data, tmp_path / "cut", at)
    ds = Dataset(root)
    t = int(at.timestamp())
    for name in ds.names():
        s = ds.series(name)
        assert s.ts[-1] <= t, name
    bar = ds.series("perp/binance_ethusdt_1h")
    assert bar.ts[-1] == t and np.isfinite(bar.column("open")[-1]) and np.isnan(bar.column("close")[-1])


def test_interpolating_toward_the_next_snapshot_would_be_caught(full_data, tmp_path):
    """The check is able to fail: the index a run on the full data used at T (13:00) equals, on the cut
    data, the last snapshot accrued at its rate; an interpolation toward the next day's snapshot would not."""
    at = datetime(2025, 3, 10, 13, tzinfo=UTC)
    cut_root = cut_dataset(full_data, tmp_path / "cut", at)
    full = Dataset(full_data).series("aave/usdt_reserve_1d")
    t = int(at.timestamp())
    i = int(np.searchsorted(full.ts, t, side="right")) - 1
    day = full.ts[i]
    interpolated = full.column("liquidity_index")[i] * (
        full.column("liquidity_index")[i + 1] / full.column("liquidity_index")[i]) ** ((t - day) / 86400)
    accrued = full.column("liquidity_index")[i] * (1 + full.column("liquidity_rate")[i] * (t - day) / (365 * 86400))
    assert interpolated != accrued
    r = _run("pure_lending_usdt", cut_root, at - timedelta(days=2), at, ["aave.rate_impact=false"])  # the observed
    j = r.position_keys.index("aave_v3:aToken:aUSDT")  # index alone (the fund's own spread rides on top of it)
    # the aUSDT balance at T is its (constant after the entry) scaled balance times the index used at T
    assert r.values[j][-1] == pytest.approx(r.quantities[j][-1] * accrued, rel=1e-15)
    assert r.values[j][-1] != pytest.approx(r.quantities[j][-1] * interpolated, rel=1e-12)


@pytest.mark.skipif(not FUZZ, reason="random hours run under `make fuzz` (BASISKIT_FUZZ_EXAMPLES)")
def test_random_hours_cut_equals_full(full_data, tmp_path_factory):
    counts: dict[str, dict[str, int]] = {m: {} for m in MODES}

    @given(hours=st.integers(0, int((LATEST - EARLIEST) / HOUR)), days=st.integers(2, 40))
    @settings(max_examples=FUZZ, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def check(hours, days):
        at = EARLIEST + hours * HOUR
        cut_root = cut_dataset(full_data, tmp_path_factory.mktemp("cut"), at)
        for mode in MODES:
            status = check_cut_equals_full(mode, full_data, cut_root, at, days)
            counts[mode][status] = counts[mode].get(status, 0) + 1

    check()
    print("\ncut-data runs per mode:", counts)
    for mode, c in counts.items():
        assert c.get("ran", 0) >= sum(c.values()) / 2, f"{mode}: fewer than half the draws ran: {c}"
