"""pure_lending in both share classes: returns, gas costs and reconciliation against the raw data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from basiskit.data.dataset import SAMPLE_DIR, Dataset
from basiskit.engine.run import run_backtest
from basiskit.engine.runconfig import load_run_config
from basiskit.results.summary import summarize
from basiskit.results.tables import events_table
from conftest import raw_csv

RESERVE = {"pure_lending_usdt": "aave/usdt_reserve_1d", "pure_lending_eth": "aave/weth_reserve_1d"}
FLOWS = {  # a deposit and a withdrawal inside the sample window, in share-class units
    "pure_lending_usdt": [{"at": "2024-11-01T05:00:00Z", "amount": 250000},
                          {"at": "2024-12-10T17:00:00Z", "amount": -400000}],
    "pure_lending_eth": [{"at": "2024-11-01T05:00:00Z", "amount": 80},
                         {"at": "2024-12-10T17:00:00Z", "amount": -120}],
}


@pytest.mark.parametrize("mode", ["pure_lending_usdt", "pure_lending_eth"])
def test_return_equals_liquidity_index_ratio(full_data, mode):
    # the observed index alone (the fund's own rate impact is tested in test_footprint.py)
    cfg = load_run_config(mode, sets=["costs.enabled=false", "aave.rate_impact=false"],
                          extra={"start": "2024-02-01", "end": "2025-02-01"})
    summary = summarize(run_backtest(cfg, Dataset(full_data)))
    raw = raw_csv(full_data, RESERVE[mode])
    index = raw["liquidity_index"]
    expected = index["2025-02-01T00:00:00Z"] / index["2024-02-01T00:00:00Z"] - 1
    assert summary["steps"] == 366 * 24
    assert summary["total_return"] == pytest.approx(expected, rel=1e-9)
    assert summary["final_nav"] == pytest.approx(cfg.initial_capital * (1 + expected), rel=1e-9)
    assert summary["pnl_attribution"]["supply_yield"] == pytest.approx(cfg.initial_capital * expected, rel=1e-9)
    assert summary["pnl_attribution"]["transaction_costs"] == 0.0


def gas_cost_from_raw(root, events: pd.DataFrame, share_class: str, cfg) -> float:
    """Σ gas units x gas price (gwei) x 1e-9 x ETH price, every input read from the raw CSVs."""
    gas = raw_csv(root, "gas/ethereum_gas_1h")
    eth = raw_csv(root, "spot/uniswapv3_wethusdt_1h")
    units = {"supply": cfg.costs.gas_units.supply, "withdraw": cfg.costs.gas_units.withdraw}
    total = 0.0
    for _, e in events[events["type"] == "execution"].iterrows():
        ts = e["timestamp"].strftime("%Y-%m-%dT%H:%M:%SZ")
        op = json.loads(e["details"])["operation"].split("_")[1]  # aave_supply_USDT -> supply
        eth_in_ccy = eth.loc[ts, "open"] if share_class == "USDT" else 1.0
        total += units[op] * gas.loc[ts, "gas_price_gwei"] * 1e-9 * eth_in_ccy
    return total


@pytest.mark.parametrize("mode", ["pure_lending_usdt", "pure_lending_eth"])
def test_transaction_costs_equal_gas_of_operations(mode):
    cfg = load_run_config(mode, extra={"flows": FLOWS[mode]})
    result = run_backtest(cfg, Dataset(SAMPLE_DIR))
    events = events_table(result)
    ops = [json.loads(d)["operation"] for d in events[events["type"] == "execution"]["details"]]
    reserve = cfg.lending.reserve
    # supply at the start, supply of the deposit, withdraw for the withdrawal
    assert ops == [f"aave_supply_{reserve}", f"aave_supply_{reserve}", f"aave_withdraw_{reserve}"]
    expected = gas_cost_from_raw(SAMPLE_DIR, events, cfg.share_class, cfg)
    assert expected > 0
    assert summarize(result)["pnl_attribution"]["transaction_costs"] == pytest.approx(-expected, rel=1e-12)


@pytest.mark.parametrize("mode", ["pure_lending_usdt", "pure_lending_eth"])
def test_residual_within_1e9_of_nav_every_tick_with_flows(mode):
    cfg = load_run_config(mode, extra={"flows": FLOWS[mode]})
    r = run_backtest(cfg, Dataset(SAMPLE_DIR))
    assert np.all(np.abs(r.residual) <= 1e-9 * r.nav)
    assert np.all(np.abs(r.residual_usd) <= 1e-9 * r.nav_usd)
    assert not r.events.of_type("reconciliation_error")
    # the NAV drops by the withdrawal (plus that hour's accrual and gas) and rises by the deposit
    k_dep = int((pd.Timestamp(FLOWS[mode][0]["at"]).timestamp() - r.grid[0]) // 3600)
    k_wd = int((pd.Timestamp(FLOWS[mode][1]["at"]).timestamp() - r.grid[0]) // 3600)
    assert r.flows[k_dep] == FLOWS[mode][0]["amount"] and r.flows[k_wd] == FLOWS[mode][1]["amount"]
    assert abs(r.nav[k_wd] - r.nav[k_wd - 1] - FLOWS[mode][1]["amount"]) < 1e-4 * abs(FLOWS[mode][1]["amount"])
    s = summarize(r)
    assert s["balance_pnl"] == pytest.approx(r.nav[-1] - sum(f["amount"] for f in FLOWS[mode]) - cfg.initial_capital,
                                             rel=1e-12)
    assert s["balance_pnl"] == pytest.approx(sum(s["pnl_attribution"].values()), rel=1e-9)


def test_supply_yield_per_hour_is_scaled_balance_times_index_change():
    cfg = load_run_config("pure_lending_usdt", sets=["costs.enabled=false", "aave.rate_impact=false"])
    r = run_backtest(cfg, Dataset(SAMPLE_DIR))
    raw = raw_csv(SAMPLE_DIR, "aave/usdt_reserve_1d")
    start = pd.Timestamp(r.grid[0], unit="s", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
    scaled = cfg.initial_capital / raw.loc[start, "liquidity_index"]  # supplied at the first snapshot
    day = 24 * 3  # the third day boundary is an exact snapshot
    t_day = pd.Timestamp(r.grid[day], unit="s", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
    accrued = r.attribution[0][1: day + 1].sum()
    assert accrued == pytest.approx(scaled * (raw.loc[t_day, "liquidity_index"] - raw.loc[start, "liquidity_index"]),
                                    rel=1e-9)


def test_eth_share_class_reports_eth_price_in_usd_attribution():
    r = run_backtest(load_run_config("pure_lending_eth"), Dataset(SAMPLE_DIR))
    s = summarize(r)
    assert set(s["pnl_attribution"]) == {"supply_yield", "transaction_costs"}
    assert set(s["pnl_attribution_usd"]) == {"supply_yield", "spot_price", "transaction_costs"}
    eth = raw_csv(SAMPLE_DIR, "spot/uniswapv3_wethusdt_1h")
    usdt = raw_csv(SAMPLE_DIR, "aave/usdt_reserve_1d")
    end = s["end"]
    day = end[:10] + "T00:00:00Z"
    eth_usd = eth.loc[end, "open"] * usdt.loc[day, "oracle_price_usd"]
    assert s["final_nav_usd"] == pytest.approx(s["final_nav"] * eth_usd, rel=1e-12)
    assert s["balance_pnl_usd"] == pytest.approx(sum(s["pnl_attribution_usd"].values()), rel=1e-9)


def test_withdrawal_larger_than_nav_is_refused():
    from basiskit.errors import RunError

    cfg = load_run_config("pure_lending_usdt", extra={"flows": [{"at": "2024-11-01T05:00:00Z", "amount": -2e6}]})
    with pytest.raises(RunError, match="withdrawal flows.0 at 2024-11-01T05:00:00Z of 2,000,000.000000 exceeds the "
                       "portfolio's NAV"):
        run_backtest(cfg, Dataset(SAMPLE_DIR))


@pytest.mark.parametrize("mode", ["pure_lending_usdt", "pure_lending_eth"])
def test_full_history_residual_with_flows(full_data, mode):
    flows = [{"at": "2024-06-01T10:00:00Z", "amount": FLOWS[mode][0]["amount"]},
             {"at": "2025-03-03T21:00:00Z", "amount": FLOWS[mode][1]["amount"]}]
    cfg = load_run_config(mode, extra={"flows": flows})
    r = run_backtest(cfg, Dataset(full_data))
    assert len(r.grid) > 15000
    assert np.all(np.abs(r.residual) <= 1e-9 * r.nav)
    assert summarize(r)["reconciliation_errors"] == 0
