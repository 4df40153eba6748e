"""Perps, spot, funding, margin and the basis strategy, checked against raw data and by hand."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest

from basiskit.data.dataset import SAMPLE_DIR, Dataset
from basiskit.data.synthetic import SyntheticMarket
from basiskit.engine.run import run_backtest
from basiskit.engine.runconfig import load_run_config
from basiskit.errors import ConfigError, DataError
from basiskit.results.summary import summarize
from basiskit.results.tables import ticks_table
from conftest import raw_csv

FUNDING_COLUMN = {"binance": "funding_rate", "bybit": "funding_rate", "okx": "realized_funding_rate"}


def observed(perp: pd.DataFrame, ts: str) -> float | None:
    """The price a venue's bars observed at ts: the open of the bar labelled ts, or the close of the bar
    labelled ts - 1h (closed at ts); None in a hole."""
    before = (pd.Timestamp(ts) - pd.Timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    if ts in perp.index:
        return perp.loc[ts, "open"]
    return perp.loc[before, "close"] if before in perp.index else None


@functools.lru_cache(maxsize=16)
def bars(root, series: str) -> pd.DataFrame:
    """A bar series' raw CSV, read once per test session."""
    return raw_csv(root, series)


def raw_mark(root, venue: str, asset: str, ts: str) -> float:
    """Mark at ts from the raw files: the venue's own observed price, else the same contract's on the other
    venues (binance, bybit, okx order), else the last own close (the engine's spot fallback is not needed
    where another venue has the hour, which these tests check)."""
    perp = bars(root, f"perp/{venue}_{asset.lower()}usdt_1h")
    own = observed(perp, ts)
    if own is not None:
        return own
    for other in ("binance", "bybit", "okx"):
        path = root / f"perp/{other}_{asset.lower()}usdt_1h.csv.gz"
        if other != venue and path.is_file():
            got = observed(bars(root, f"perp/{other}_{asset.lower()}usdt_1h"), ts)
            if got is not None:
                return got
    return perp.loc[perp.index[perp.index < ts][-1], "close"]


def raw_funding(root, venue: str, asset: str, sizes: pd.Series) -> float:
    """Σ -size x mark x rate over the raw funding rows in (start, end], size held just before each row."""
    funding = raw_csv(root, f"funding/{venue}_{asset.lower()}usdt_8h")
    start, end = sizes.index[0], sizes.index[-1]
    total = 0.0
    for ts, row in funding.iterrows():
        if start < ts <= end:
            held = sizes.iloc[sizes.index.get_loc(ts) - 1]
            total += -held * raw_mark(root, venue, asset, ts) * row[FUNDING_COLUMN[venue]]
    return total


def fixed_short(venue: str, **extra):
    other = {"binance": "bybit", "bybit": "binance"}[venue]
    return load_run_config("btc_basis", sets=["costs.enabled=false", f"hedge_allocation.{venue}=1",
                                              f"hedge_allocation.{other}=0", "basis.fixed_units=1"],
                           extra={"initial_capital": 200_000, **extra})


def test_fixed_short_funding_equals_raw_rows_full_history(full_data):
    r = run_backtest(fixed_short("bybit"), Dataset(full_data))
    ticks = ticks_table(r)
    ticks.index = ticks["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    sizes = ticks["qty:bybit:Perp:BTCUSDT"]
    assert (sizes.iloc[:] == -1.0).all()  # held all along, never rebalanced
    expected = raw_funding(full_data, "bybit", "BTC", sizes)
    s = summarize(r)
    assert s["pnl_attribution"]["funding"] == pytest.approx(expected, rel=1e-9)
    assert s["funding_by_venue"]["bybit"] == pytest.approx(expected, rel=1e-9)
    assert s["rebalances"] == 1 and s["liquidations"]["count"] == 0


def test_fixed_short_funding_through_missing_bars_uses_the_mark_from_another_venue():
    # the sample's binance bars miss whole days: the funding settled in them uses Bybit's price of the hour
    r = run_backtest(fixed_short("binance"), Dataset(SAMPLE_DIR))
    perp = raw_csv(SAMPLE_DIR, "perp/binance_btcusdt_1h")
    hours = [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in pd.to_datetime(r.grid, unit="s", utc=True)]
    unseen = np.array([observed(perp, ts) is None for ts in hours])
    stretches = int(np.sum(unseen[1:] & ~unseen[:-1]) + unseen[0])
    assert stretches == summarize(r)["data_warnings"] == 3  # one warning per hole, naming the venue used
    assert np.array_equal(r.extra_columns["mark_source:binance"] == 1, unseen)
    funding = raw_csv(SAMPLE_DIR, "funding/binance_btcusdt_8h")
    assert any(unseen[hours.index(ts)] for ts in funding.index if ts in hours)  # a settlement inside a hole
    ticks = ticks_table(r)
    ticks.index = ticks["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    expected = raw_funding(SAMPLE_DIR, "binance", "BTC", ticks["qty:binance:Perp:BTCUSDT"])
    assert summarize(r)["pnl_attribution"]["funding"] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("mode,asset", [("btc_basis", "BTC"), ("eth_basis", "ETH")])
def test_basis_full_history(full_data, mode, asset):
    cfg = load_run_config(mode)
    r = run_backtest(cfg, Dataset(full_data))
    s = summarize(r)
    assert np.all(np.abs(r.residual) <= 1e-9 * r.nav) and s["reconciliation_errors"] == 0
    ticks = ticks_table(r)
    ticks.index = ticks["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    # net delta after each rebalance, from the recorded balances and the raw spot price
    spot = raw_csv(full_data, f"spot/bybit_{asset.lower()}usdt_1h")
    perps = sum(ticks[f"qty:{v}:Perp:{asset}USDT"] for v in ("binance", "bybit"))
    units = ticks[f"qty:bybit:BaseToken:{asset}"] + perps
    rebalance_ts = [e.k for e in r.events.of_type("rebalance")]
    assert s["rebalances"] == len(rebalance_ts) >= 1
    for k in rebalance_ts:
        ts = ticks.index[k]
        assert abs(units.iloc[k]) * spot.loc[ts, "open"] <= cfg.position_deviation_threshold * ticks["nav"].iloc[k]
    # funding by venue, recomputed from the raw funding rows and the recorded perp sizes
    for venue in ("binance", "bybit"):
        expected = raw_funding(full_data, venue, asset, ticks[f"qty:{venue}:Perp:{asset}USDT"])
        assert s["funding_by_venue"][venue] == pytest.approx(expected, rel=1e-9)
    assert sum(s["funding_by_venue"].values()) == pytest.approx(s["pnl_attribution"]["funding"], rel=1e-12)
    assert s["pnl_attribution"]["funding"] > 0  # 2024-25 funding was mostly positive: shorts earned
    assert set(s["max_margin_ratio"]) == {"binance", "bybit"}


def test_price_spike_liquidates_at_the_right_tick_with_the_right_loss(tmp_path):
    hours = pd.date_range("2024-03-01", "2024-03-05", freq="h", tz="UTC")
    btc = np.full(len(hours), 60_000.0)
    spike = 50  # from this hour on BTC trades at 79,800
    btc[spike:] = 79_800.0
    SyntheticMarket("2024-03-01", "2024-03-05", paths={"BTC": btc}, start_price={"BTC": 60_000.0},
                    funding_rate=0.0).write(tmp_path / "d", venues=("binance", "bybit"), spot_venues=("bybit",))
    cfg = load_run_config("btc_basis", sets=[
        "costs.enabled=false", "hedge_allocation.binance=1", "hedge_allocation.bybit=0", "basis.fixed_units=1",
        "venues.binance.liquidation_fee_rate=0.002",
    ], extra={"initial_capital": 80_000})
    r = run_backtest(cfg, Dataset(tmp_path / "d"))
    # by hand: 1 BTC spot at 60,000 leaves 20,000 of margin for the 1 BTC short. At 79,800 the
    # account's equity is 20,000 - 19,800 = 200 and its maintenance margin 0.4% x 79,800 = 319.2:
    # margin ratio 1.596 >= 1, so binance liquidates at the spike hour, fee 0.2% x 79,800 = 159.6.
    (liq,) = r.events.of_type("liquidation")
    assert liq.k == spike
    assert liq.details["size"] == -1.0 and liq.details["mark"] == 79_800.0
    assert liq.details["equity_before"] == pytest.approx(200.0, abs=1e-6)
    assert liq.details["margin_ratio"] == pytest.approx(0.004 * 79_800 / 200.0, rel=1e-9)
    assert liq.details["fee"] == pytest.approx(159.6, rel=1e-12)
    # NAV loses exactly the fee at that hour (spot gain and perp loss cancel), then the run goes on
    assert r.nav[spike] - r.nav[spike - 1] == pytest.approx(-159.6, abs=1e-6)
    assert r.nav[-1] == pytest.approx(80_000 - 159.6, abs=1e-6)
    s = summarize(r)
    assert s["liquidations"]["count"] == 1 and s["liquidations"]["loss"] == pytest.approx(159.6)
    assert np.all(np.abs(r.residual) <= 1e-9 * r.nav)
    # the strategy re-hedges what is left, capped by initial margin: units = NAV / (P x 1.1)
    rebalance = r.events.of_type("rebalance")[-1]
    assert rebalance.k == spike
    assert rebalance.details["units_after"] == pytest.approx((80_000 - 159.6) / (79_800 * 1.1), rel=1e-12)
    assert r.quantities[r.position_keys.index("binance:Perp:BTCUSDT")][-1] == pytest.approx(
        -rebalance.details["units_after"], rel=1e-12)


@pytest.mark.parametrize("alloc,needle", [
    ({"binance": -0.2, "bybit": 1.2}, "must be >= 0"),
    ({"binance": 0.5, "bybit": 0.4}, "sum to 0.9"),
    ({"binance": 0.5, "kraken": 0.5}, "unknown venue 'kraken'"),
])
def test_bad_hedge_allocation(alloc, needle):
    sets = [f"hedge_allocation={{{', '.join(f'{k}: {v}' for k, v in alloc.items())}}}"]
    with pytest.raises(ConfigError) as exc:
        load_run_config("btc_basis", sets=sets)
    (field, _, reason), = exc.value.problems
    assert field == "hedge_allocation" and needle in reason


def test_okx_window_across_holes_is_refused_naming_them(full_data):
    cfg = load_run_config("eth_basis", sets=["hedge_allocation.okx=0.5", "hedge_allocation.bybit=0"],
                          extra={"start": "2024-08-01", "end": "2024-12-01"})
    with pytest.raises(DataError) as exc:
        run_backtest(cfg, Dataset(full_data))
    assert "okx_ethusdt" in str(exc.value) and "hole of" in str(exc.value)


def test_okx_window_without_holes_runs(full_data):
    cfg = load_run_config("eth_basis", sets=["hedge_allocation.okx=0.4", "hedge_allocation.binance=0.3",
                                             "hedge_allocation.bybit=0.3"],
                          extra={"start": "2024-10-01", "end": "2024-11-01"})
    s = summarize(run_backtest(cfg, Dataset(full_data)))
    assert set(s["funding_by_venue"]) == {"binance", "bybit", "okx"}
    assert s["funding_by_venue"]["okx"] != 0.0


def test_btc_on_okx_names_the_missing_series():
    with pytest.raises(DataError, match="perp/okx_btcusdt_1h"):
        run_backtest(load_run_config("btc_basis", sets=["hedge_allocation.okx=0.5", "hedge_allocation.bybit=0"]),
                     Dataset(SAMPLE_DIR))


def test_deposit_and_withdrawal_move_the_hedge():
    flows = [{"at": "2024-11-01T05:00:00Z", "amount": 500_000}, {"at": "2024-12-10T17:00:00Z", "amount": -700_000}]
    cfg = load_run_config("eth_basis", extra={"flows": flows})
    r = run_backtest(cfg, Dataset(SAMPLE_DIR))
    assert np.all(np.abs(r.residual) <= 1e-9 * r.nav)
    actions = [(e.details["reason"], e.details["action"]) for e in r.events.of_type("rebalance")]
    assert ("idle_cash", "entry_partial") in actions and ("withdrawal", "exit_partial") in actions
    spot = r.quantities[r.position_keys.index("bybit:BaseToken:ETH")]
    k_wd = int((pd.Timestamp(flows[1]["at"]).timestamp() - r.grid[0]) // 3600)
    assert spot[k_wd] < spot[k_wd - 1]
    wallet = r.quantities[0]
    assert wallet.min() > -1e-6 * r.nav.max()  # the fund's wallet is never overdrawn


def test_perp_pnl_is_realised_plus_unrealised_from_entry_prices():
    cfg = load_run_config("eth_basis", sets=["costs.enabled=false", "basis.margin_ratio_limit=0.034"])
    s = summarize(run_backtest(cfg, Dataset(SAMPLE_DIR)))
    assert s["rebalances_by_action"].get("exit_partial", 0) >= 1  # something was realised on reduce
    positions = s["perp_positions"].values()
    for p in positions:
        assert p["unrealized_pnl"] == pytest.approx(p["size"] * (p["mark"] - p["entry_price"]), rel=1e-12)
    total = sum(p["realized_pnl"] + p["unrealized_pnl"] for p in positions)
    assert s["pnl_attribution"]["perp_price"] == pytest.approx(total, rel=1e-9)
