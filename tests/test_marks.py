"""Honest marks through holes: a perp whose own bars are missing is marked from the same contract on another
venue, else from spot times the last observed basis; each such hour is flagged (tick column, summary, data
warning), the mark drives NAV, margin and funding, and a price to be had from nowhere still stops the run.
Expected marks are read from the raw CSV files here, independently of the engine."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from basiskit.data.dataset import Dataset
from basiskit.engine.run import Backtest
from basiskit.engine.runconfig import load_run_config
from basiskit.errors import DataError
from conftest import edit_series, raw_csv
from test_paper import events_of, paper

HOLE = pd.date_range("2024-11-12T03:00Z", "2024-11-12T12:00Z", freq="h")  # bars removed below
WINDOW = {"start": "2024-11-10T00:00:00Z", "end": "2024-11-15T00:00:00Z", "initial_capital": 250000.0}


def stamp(t: pd.Timestamp) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def drop_bars(root, series: str, hours) -> None:
    edit_series(root, series, lambda df: df[~df["timestamp"].isin([stamp(t) for t in hours])])


def run(root, sets=(), mode="usdt_market_neutral_no_leverage"):
    ds = Dataset(root)
    return Backtest(load_run_config(mode, sets=list(sets), extra=WINDOW, dataset=ds), ds).run()


def hours_of(r, hours) -> np.ndarray:
    return np.searchsorted(r.grid, [int(t.timestamp()) for t in hours])


def test_a_hole_is_marked_from_the_same_contract_on_another_venue(sample_copy):
    drop_bars(sample_copy, "perp/binance_ethusdt_1h", HOLE)
    r = run(sample_copy)
    source = r.extra_columns["mark_source:binance"]
    # the bar labelled 03:00 is gone: 03:00 is still the close of the 02:00 bar (observed), then nothing of
    # binance's own is seen at 04:00 .. 12:00; 13:00 is the open of the next bar
    marked = HOLE[1:]
    ks = hours_of(r, marked)
    assert np.all(source[ks] == 1) and (source == 1).sum() == len(marked)
    assert np.all(np.delete(source, ks) == 0)
    assert r.extra_summary["stale_marks"] == {"binance": len(marked), "bybit": 0}
    bybit = raw_csv(sample_copy, "perp/bybit_ethusdt_1h")
    j = r.position_keys.index("binance:Perp:ETHUSDT")
    size = r.quantities[j]
    for k, t in zip(ks, marked, strict=True):  # the position is valued at Bybit's price of that hour
        assert r.values[j][k] == pytest.approx(size[k] * bybit.loc[stamp(t), "open"], rel=1e-12)
    warnings = [e for e in r.events.of_type("data_warning") if e.details["series"] == "perp/binance_ethusdt_1h"]
    assert len(warnings) == 1 and "perp/bybit_ethusdt_1h" in warnings[0].message
    assert warnings[0].details["after"] == stamp(marked[0]) and warnings[0].details["until"] == stamp(marked[-1])
    assert np.max(np.abs(r.residual) / r.nav) < 1e-9


def test_without_another_venue_the_mark_is_spot_times_the_last_basis(sample_copy):
    drop_bars(sample_copy, "perp/binance_ethusdt_1h", HOLE)
    drop_bars(sample_copy, "perp/bybit_ethusdt_1h", HOLE)
    drop_bars(sample_copy, "perp/okx_ethusdt_1h", HOLE)
    r = run(sample_copy)
    spot = raw_csv(sample_copy, "spot/uniswapv3_wethusdt_1h")  # the preset's prices.eth_usdt
    for venue in ("binance", "bybit"):
        perp = raw_csv(sample_copy, f"perp/{venue}_ethusdt_1h")
        last = "2024-11-12T02:00:00Z"  # the last bar of the venue's own before the hole (closed at 03:00)
        basis = perp.loc[last, "close"] / spot.loc[last, "close"]
        j = r.position_keys.index(f"{venue}:Perp:ETHUSDT")
        ks = hours_of(r, HOLE[1:])
        assert np.all(r.extra_columns[f"mark_source:{venue}"][ks] == 2)
        for k, t in zip(ks, HOLE[1:], strict=True):
            assert r.values[j][k] == pytest.approx(r.quantities[j][k] * spot.loc[stamp(t), "open"] * basis,
                                                   rel=1e-12)
    assert np.max(np.abs(r.residual) / r.nav) < 1e-9


def test_a_price_from_nowhere_for_longer_than_the_limit_stops_the_run(sample_copy):
    long_hole = pd.date_range("2024-11-12T03:00Z", "2024-11-13T06:00Z", freq="h")  # 28 h
    for s in ("perp/binance_ethusdt_1h", "perp/bybit_ethusdt_1h", "perp/okx_ethusdt_1h", "spot/uniswapv3_wethusdt_1h"):
        drop_bars(sample_copy, s, long_hole)
    with pytest.raises(DataError, match=r"perp/binance_ethusdt_1h: no price from anywhere .*data.staleness_hours.bar"):
        run(sample_copy, sets=["data.staleness_hours_by_series.spot/uniswapv3_wethusdt_1h=48"])


def test_marks_can_be_switched_off_to_keep_the_last_own_price(sample_copy):
    drop_bars(sample_copy, "perp/binance_ethusdt_1h", HOLE)
    r = run(sample_copy, sets=["data.mark_fallback=false"])
    assert "mark_source:binance" not in r.extra_columns
    perp = raw_csv(sample_copy, "perp/binance_ethusdt_1h")
    j = r.position_keys.index("binance:Perp:ETHUSDT")
    k = hours_of(r, HOLE[5:6])[0]
    assert r.values[j][k] == pytest.approx(r.quantities[j][k] * perp.loc["2024-11-12T02:00:00Z", "close"], rel=1e-12)


def test_a_replay_through_a_marked_hole_equals_the_backtest(sample_copy, tmp_path):
    drop_bars(sample_copy, "perp/binance_ethusdt_1h", HOLE)
    ds = Dataset(sample_copy)
    cfg = load_run_config("usdt_market_neutral_no_leverage", extra=WINDOW, dataset=ds)
    expected = Backtest(cfg, ds).run()
    got, _ = paper(cfg, sample_copy, tmp_path)
    assert np.array_equal(got.nav, expected.nav) and np.array_equal(got.quantities, expected.quantities)
    assert np.array_equal(got.extra_columns["mark_source:binance"], expected.extra_columns["mark_source:binance"])
    assert events_of(got) == events_of(expected)


def test_a_year_of_usdt_market_neutral_has_no_stale_mark_spike(full_data):
    """The 2024-09-02 Binance ETHUSDT hole (23 h) is marked from Bybit; no hourly NAV move above 0.3%."""
    ds = Dataset(full_data)
    cfg = load_run_config("usdt_market_neutral", extra={"start": "2024-06-01T00:00:00Z", "end": "2025-06-01T00:00:00Z",
                                                        "initial_capital": 1_000_000.0}, dataset=ds)
    r = Backtest(cfg, ds).run()
    move = np.abs(np.diff(r.nav)) / r.nav[:-1]
    assert move.max() < 0.003, f"largest hourly NAV move {move.max():.3%}"
    raw = raw_csv(full_data, "perp/binance_ethusdt_1h")
    hours = pd.date_range("2024-09-02T00:00Z", "2024-09-03T00:00Z", freq="h")
    # hours binance observed nothing of its own: no bar labelled t, none labelled t - 1h
    unseen = [t for t in hours if stamp(t) not in raw.index and stamp(t - pd.Timedelta(hours=1)) not in raw.index]
    assert len(unseen) >= 20
    ks = hours_of(r, unseen)
    assert np.all(r.extra_columns["mark_source:binance"][ks] == 1)
    warned = [e for e in r.events.of_type("data_warning")
              if e.details["series"] == "perp/binance_ethusdt_1h" and e.details["after"].startswith("2024-09-02")]
    assert warned and "perp/bybit_ethusdt_1h" in warned[0].message
    assert r.extra_summary["stale_marks"]["binance"] >= len(unseen)
