"""Costs that grow with size and entries that take time: square-root market impact from the market's own
closed bars, voluntary orders split at execution.max_participation of the last closed hour's volume with the
hedge built in step, the bucket costs where a market has no volume, and the capacity curve of a sweep.
Expected figures are computed here from the raw CSV files and the formulas."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from basiskit.data.dataset import SAMPLE_DIR, Dataset
from basiskit.engine.run import Backtest
from basiskit.engine.runconfig import load_run_config
from basiskit.errors import ConfigError
from basiskit.portfolio.attribution import SLOT
from basiskit.results.sweep_report import capacity, render
from conftest import edit_series, raw_csv

MODE = "usdt_market_neutral_no_leverage"
SPOT = "spot/bybit_ethusdt_1h"
ACCEPTANCE = {"start": "2024-07-01T00:00:00Z", "end": "2024-08-30T00:00:00Z"}


def run(root, capital: float, sets=(), window=ACCEPTANCE):
    ds = Dataset(root)
    return Backtest(load_run_config(MODE, sets=list(sets), extra=window | {"initial_capital": capital}, dataset=ds),
                    ds).run()


def spot_slices(r):
    return [e for e in r.events.of_type("execution") if e.details.get("operation") == "spot_trade"]


def liquidity_by_hand(root, t: pd.Timestamp, window: int = 24) -> tuple[float, float, float]:
    """From the raw bars closed by t: the last closed hour's USD volume, the mean hourly USD volume and the
    hourly volatility (root mean square of log returns) over `window` hours."""
    bars = raw_csv(root, SPOT)
    label = [(t - pd.Timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ") for h in range(window + 1, 0, -1)]
    close = bars.loc[label, "close"].to_numpy()
    usd = (bars.loc[label[1:], "volume"] * bars.loc[label[1:], "close"]).to_numpy()
    r = np.log(close[1:] / close[:-1])
    return float(usd[-1]), float(usd.mean()), math.sqrt(float(np.mean(r * r)))


def test_a_large_entry_is_split_in_step_and_costs_more_per_dollar(full_data):
    small, large = run(full_data, 100_000.0), run(full_data, 50_000_000.0)
    cost = {name: -float(r.attribution[SLOT["transaction_costs"]].sum()) / r.cfg.initial_capital
            for name, r in (("small", small), ("large", large))}
    assert cost["large"] >= 2 * cost["small"] > 0
    slices = spot_slices(large)
    build = sorted({e.k for e in slices})
    assert len(build) >= 5 and len(spot_slices(small)) == 1  # the entry spans hours; the small one takes one
    for e in slices:  # one event per slice, each within its share of the last closed hour's volume
        assert 0 < e.details["participation"] <= 0.1
        t = pd.Timestamp(large.grid[e.k], unit="s", tz="UTC")
        last, _, _ = liquidity_by_hand(full_data, t)
        assert e.details["participation"] == pytest.approx(e.details["notional_usd"] / last, rel=1e-9)
    assert len([e for e in slices if e.k == build[0]]) == 1  # one slice an hour
    # the hedge is built in step: |net delta| / NAV within twice the threshold at every hour of the build
    delta = np.abs(large.extra_columns["net_delta_usdt:ETH"]) / large.nav
    assert delta[: build[-1] + 1].max() <= 2 * large.cfg.position_deviation_threshold
    for e in large.events.of_type("execution"):
        if e.details.get("operation") == "perp_trade" and e.k in build:
            assert e.details["participation"] <= 0.1


def test_the_first_slice_pays_the_whole_orders_square_root_impact(full_data):
    r = run(full_data, 50_000_000.0)
    first = spot_slices(r)[0]
    t = pd.Timestamp(r.grid[first.k], unit="s", tz="UTC")
    last, volume, sigma = liquidity_by_hand(full_data, t)
    assert first.details["notional_usd"] == pytest.approx(0.1 * last, rel=1e-9)  # the cap binds
    # the whole order: stake_allocation of the capital in ETH (USD per USDT from the Aave oracle)
    usdt_usd = raw_csv(full_data, "aave/usdt_reserve_1d")
    day = t.strftime("%Y-%m-%dT00:00:00Z")
    order_usd = r.cfg.stake_allocation * 50_000_000.0 * usdt_usd.loc[day, "oracle_price_usd"]
    rate = max(13e-4, 1.0 * sigma * math.sqrt(order_usd / volume))  # max(bucket > $1M, Y sigma sqrt(Q / V))
    fee = 0.001  # bybit spot taker fee (params/cex_venues.json)
    notional_usdt = first.details["notional_usd"] / usdt_usd.loc[day, "oracle_price_usd"]
    assert rate > 13e-4  # impact, not the bucket, prices an order this size
    assert first.details["cost"] == pytest.approx(notional_usdt * (rate + fee), rel=2e-3)


def test_a_market_without_volume_falls_back_to_the_bucket_costs_unsplit(sample_copy):
    window = {"start": "2024-11-05T00:00:00Z", "end": "2024-11-08T00:00:00Z"}
    markets = (SPOT, "perp/binance_ethusdt_1h", "perp/bybit_ethusdt_1h")
    for series in markets:  # no trade in the hour before the entry, on every market the entry uses
        edit_series(sample_copy, series, lambda df: df.assign(
            volume=np.where(df["timestamp"] == "2024-11-04T23:00:00Z", 0.0, df["volume"])))
    r = run(sample_copy, 50_000_000.0, window=window)
    slices = spot_slices(r)
    assert slices[0].k == 0 and math.isnan(slices[0].details["participation"])
    warned = r.events.of_type("volume_warning")
    assert sorted(e.details["series"] for e in warned if e.k == 0) == sorted(markets)
    # not split: the whole stake is bought at hour 0, at the largest bucket's slippage (13 bps) plus the fee
    notional = slices[0].details["units"] * slices[0].details["price"]
    assert notional == pytest.approx(r.cfg.stake_allocation * 50_000_000.0, rel=0.01)
    assert slices[0].details["cost"] == pytest.approx(notional * (13e-4 + 0.001), rel=1e-9)


def test_the_capacity_curve_of_a_capital_sweep(tmp_path):
    from basiskit.results.sweep_store import SweepStore
    from basiskit.sweeps.service import sweep
    from basiskit.sweeps.spec import SweepRequest

    req = SweepRequest(mode=MODE, workers=1, params=["initial_capital=100000,10000000,50000000"],
                       start="2024-11-05", end="2024-11-20")
    result = sweep(req, SAMPLE_DIR, Dataset(SAMPLE_DIR), SweepStore(tmp_path / "s.db"), "test")
    points = capacity(result)
    assert [p["capital"] for p in points] == [1e5, 1e7, 5e7]
    shares = [p["cost_share"] for p in points]
    assert shares[0] < shares[1] < shares[2]  # costs per dollar grow with size
    assert points[0]["apy"] > points[2]["apy"]
    for p in points:  # each point from its run, by hand
        (row,) = [r for r in result["runs"] if float(r["params"]["initial_capital"]) == p["capital"]]
        assert p["cost_share"] == -row["transaction_costs"] / p["capital"] and p["apy"] == row["apy"]
    assert "capacity: APY by capital" in render(result)


@pytest.mark.parametrize("key,value", [("costs.impact.coefficient", -1), ("costs.impact.coefficient", 50),
                                       ("costs.impact.window_hours", 1), ("execution.max_participation", 0),
                                       ("execution.max_participation", 1.5)])
def test_impact_and_participation_out_of_range_name_the_key(key, value):
    with pytest.raises(ConfigError) as exc:
        load_run_config(MODE, sets=[f"{key}={value}"])
    assert any(field == key for field, _, _ in exc.value.problems), exc.value.problems
