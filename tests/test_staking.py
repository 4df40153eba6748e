"""LST staking, Aave eMode leverage, liquidations and rewards, against raw data and by hand."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from basiskit.data.dataset import SAMPLE_DIR, Dataset
from basiskit.data.synthetic import SyntheticMarket
from basiskit.engine.run import Backtest, run_backtest
from basiskit.engine.runconfig import load_run_config
from basiskit.results.summary import summarize
from basiskit.results.tables import ticks_table
from conftest import raw_csv


def raw_rate(root, ts: str, lst: str = "weeth") -> float:
    """LST rate to ETH as Aave's oracle sees it, at a daily snapshot, from the raw reserve files."""
    lst_px = raw_csv(root, f"aave/{lst}_reserve_1d").loc[ts, "oracle_price_usd"]
    return lst_px / raw_csv(root, "aave/weth_reserve_1d").loc[ts, "oracle_price_usd"]


@pytest.mark.parametrize("lst", ["weETH", "wstETH"])
def test_staking_only_return_equals_rate_ratio(full_data, lst):
    cfg = load_run_config("eth_staking_only", sets=["costs.enabled=false", "rewards.enabled=false", f"lst={lst}"],
                          extra={"start": "2024-06-01", "end": "2025-06-01"})
    s = summarize(run_backtest(cfg, Dataset(full_data)))
    expected = raw_rate(full_data, "2025-06-01T00:00:00Z", lst.lower()) / raw_rate(
        full_data, "2024-06-01T00:00:00Z", lst.lower()) - 1
    assert s["total_return"] == pytest.approx(expected, rel=1e-9)
    assert s["pnl_attribution"]["staking_yield"] == pytest.approx(cfg.initial_capital * expected, rel=1e-9)


def test_rewards_credited_from_the_rewards_file():
    cfg = load_run_config("eth_staking_only", sets=["costs.enabled=false", "rewards.sell_dust=false"])
    r = run_backtest(cfg, Dataset(SAMPLE_DIR))
    s = summarize(r)
    units = cfg.initial_capital / raw_rate(SAMPLE_DIR, s["start"])  # weETH minted at the start, held after
    run_start = pd.Timestamp(s["start"])
    for token, series, column, price_series in (
        ("EIGEN", "rewards/etherfi_eigen_distributions", "eigen_per_eeth", "spot/uniswapv3_eigenweth_1h"),
        ("ETHFI", "rewards/etherfi_ethfi_topups", "ethfi_per_eeth", "spot/uniswapv3_ethfiweth_1h"),
    ):
        rows = raw_csv(SAMPLE_DIR, series)
        rows = rows[(rows.index > s["start"]) & (rows.index <= s["end"])]
        assert len(rows) > 0
        expected_units = expected_value = 0.0
        price = raw_csv(SAMPLE_DIR, price_series)
        for ts, row in rows.iterrows():
            # per eETH held over [period_start, period_end + 1 day); nothing was held before the run
            start, end = pd.Timestamp(row["period_start"], tz="UTC"), pd.Timestamp(row["period_end"], tz="UTC")
            end += pd.Timedelta(days=1)
            held = units * (end - max(start, run_start)) / (end - start)
            credited = row[column] * held * raw_rate(SAMPLE_DIR, ts)
            expected_units += credited
            expected_value += credited * price.loc[ts, "open"]  # token/WETH: the ETH share class values WETH at 1
        got = s["rewards_by_token"][token]
        assert got["units"] == pytest.approx(expected_units, rel=1e-9)
        assert got["value"] == pytest.approx(expected_value, rel=1e-9)
        assert r.quantities[r.position_keys.index(f"wallet:BaseToken:{token}")][-1] == pytest.approx(expected_units)
    assert s["pnl_attribution"]["staking_rewards"] == pytest.approx(
        sum(v["value"] for v in s["rewards_by_token"].values()), rel=1e-12)


def test_health_factor_by_hand(full_data):
    cfg = load_run_config("eth_leveraged", sets=["aave.rate_impact=false"],  # the observed indexes, as by hand
                          extra={"start": "2024-09-01", "end": "2024-12-01"})
    r = run_backtest(cfg, Dataset(full_data))
    ticks = ticks_table(r)
    k = 24 * 45  # a midnight: indexes and the rate are exact snapshots
    ts = ticks["timestamp"].iloc[k].strftime("%Y-%m-%dT%H:%M:%SZ")
    weeth = raw_csv(full_data, "aave/weeth_reserve_1d").loc[ts]
    weth = raw_csv(full_data, "aave/weth_reserve_1d").loc[ts]
    lt = json.loads((full_data / "params/aave_v3_risk.json").read_text())["emode"]["liquidation_thresholds"]
    collateral_usd = ticks["qty:aave_v3:aToken:aweETH"].iloc[k] * weeth["liquidity_index"] * weeth["oracle_price_usd"]
    debt_weth = ticks["qty:aave_v3:debtToken:debtWETH"].iloc[k] * weth["variable_borrow_index"]
    debt_usd = debt_weth * weth["oracle_price_usd"]
    expected = collateral_usd * lt["weETH_WETH"] / debt_usd
    assert ticks["health_factor"].iloc[k] == pytest.approx(expected, rel=1e-12)
    assert ticks["ltv"].iloc[k] == pytest.approx(debt_usd / collateral_usd, rel=1e-12)
    assert 1.0 < expected < 0.95 / 0.8


def test_lst_depeg_liquidation_by_hand(tmp_path):
    hours = pd.date_range("2024-06-01", "2024-06-06", freq="h", tz="UTC")
    rate = np.full(len(hours), 1.05)
    day = 72  # the oracle snapshot of 2024-06-04 shows a 12% depeg; hours after it stay depegged
    rate[day:] = 1.05 * 0.88
    SyntheticMarket("2024-06-01", "2024-06-06", start_price={"ETH": 3000.0}, paths={"ETH": np.full(len(hours), 3000.0)},
                    lst_rate=rate, supply_apr=0.0).write(tmp_path / "d")
    cfg = load_run_config("eth_leveraged", sets=["costs.enabled=false", "rewards.enabled=false",
                                                  "leverage.hf_floor=1.001", "aave.rate_impact=false"],
                          extra={"initial_capital": 100})  # the observed indexes, as the hand computation
    r = run_backtest(cfg, Dataset(tmp_path / "d"))
    # by hand: 100 ETH at LTV 0.85 -> collateral 666.67 ETH of weETH at 1.05, debt 566.67 WETH
    collateral_eth, debt = 100 / 0.15, 100 * 0.85 / 0.15
    units = collateral_eth / 1.05
    # the oracle's rate is the last snapshot's: the whole depeg arrives with the 2024-06-04 snapshot, at once
    rate_t = 1.05 * 0.88
    hf_before, hf = units * 1.05 * 0.95 / debt, units * rate_t * 0.95 / debt
    assert hf < 1.0 and hf_before >= 1.001  # the strategy's floor was not hit before: the protocol acts first
    (liq,) = r.events.of_type("liquidation")
    assert liq.k == day
    assert liq.details["health_factor"] == pytest.approx(hf, rel=1e-9)
    assert liq.details["close_factor"] == 0.5  # HF >= 0.95
    assert liq.details["repaid"] == pytest.approx(0.5 * debt, rel=1e-9)
    assert liq.details["seized_units"] == pytest.approx(0.5 * debt * 1.01 / rate_t, rel=1e-9)
    assert liq.details["loss"] == pytest.approx(0.5 * debt * 0.01, rel=1e-9)
    k = liq.k
    expected_nav = (units - 0.5 * debt * 1.01 / rate_t) * rate_t - 0.5 * debt
    assert r.nav[k] == pytest.approx(expected_nav, rel=1e-9)
    assert np.all(np.abs(r.residual) <= 1e-9 * r.nav)
    assert len(r.nav) == len(hours) and r.nav[-1] > 0  # the run went on
    assert summarize(r)["liquidations"]["count"] == 1


def test_loop_and_flash_loan_reach_the_same_ltv_flash_costs_less_gas():
    results = {}
    for entry in ("loop", "flash_loan"):
        cfg = load_run_config("eth_leveraged", sets=[f"leverage.entry={entry}", "rewards.enabled=false"],
                              extra={"start": "2024-11-01", "end": "2024-11-02"})
        bt = Backtest(cfg, Dataset(SAMPLE_DIR))
        r = bt.run()
        results[entry] = (ticks_table(r)["ltv"].iloc[0], r)
    (ltv_loop, loop), (ltv_flash, flash) = results["loop"], results["flash_loan"]
    tol = load_run_config("eth_leveraged").leverage.ltv_tolerance
    assert abs(ltv_loop - 0.85) <= tol and abs(ltv_flash - 0.85) <= tol
    gas = {name: sum(e.details["gas_units"] for e in r.events.of_type("execution") if e.k == 0)
           for name, r in (("loop", loop), ("flash", flash))}
    loop_borrows = [e for e in loop.events.of_type("execution") if e.details["operation"].startswith("aave_borrow")]
    assert len(loop_borrows) > 1
    assert gas["flash"] < gas["loop"]


def test_borrow_beyond_max_ltv_is_refused_with_an_error_event():
    cfg = load_run_config("eth_leveraged", extra={"start": "2024-11-01", "end": "2024-11-02"})
    bt = Backtest(cfg, Dataset(SAMPLE_DIR))
    r = bt.run()
    leg = bt.strategy.leg
    k = len(r.grid) - 1
    debt_before = leg.qty[leg.debt_pos]
    leg.borrow(k, leg.collateral_eth(k))  # 100% LTV on top of the existing debt
    assert leg.qty[leg.debt_pos] == debt_before
    (err,) = [e for e in r.events.events if e.type == "error"]
    assert "refused" in err.message and "max 0.93" in err.message


MODES = ["eth_staking_only", "eth_leveraged", "usdt_market_neutral_no_leverage", "usdt_market_neutral"]


@pytest.mark.parametrize("mode", MODES)
def test_every_new_mode_full_history(full_data, mode):
    cfg = load_run_config(mode)
    r = run_backtest(cfg, Dataset(full_data))
    s = summarize(r)
    assert np.all(np.abs(r.residual) <= 1e-9 * r.nav) and s["reconciliation_errors"] == 0
    assert s["liquidations"]["count"] == 0
    if mode.startswith("usdt_"):
        ticks = ticks_table(r)
        eth = raw_csv(full_data, "spot/bybit_ethusdt_1h")
        for e in r.events.of_type("rebalance"):
            ts = ticks["timestamp"].iloc[e.k].strftime("%Y-%m-%dT%H:%M:%SZ")
            net = ticks["net_delta:ETH"].iloc[e.k]
            assert abs(net) * eth.loc[ts, "open"] <= cfg.position_deviation_threshold * ticks["nav"].iloc[e.k]
        types = set(s["pnl_attribution"])
        assert {"staking_yield", "staking_rewards", "funding", "spot_price", "perp_price",
                "transaction_costs"} <= types
        if mode == "usdt_market_neutral":
            assert {"supply_yield", "borrow_cost"} <= types


def test_every_attribution_type_in_use_with_swap_exit():
    cfg = load_run_config("usdt_market_neutral", sets=["staking.exit=swap"],
                          extra={"flows": [{"at": "2024-12-01T00:00:00Z", "amount": -300_000}]})
    r = run_backtest(cfg, Dataset(SAMPLE_DIR))
    s = summarize(r)
    assert set(s["pnl_attribution"]) == {"supply_yield", "borrow_cost", "staking_yield", "staking_rewards", "funding",
                                         "spot_price", "perp_price", "lst_price", "transaction_costs"}
    assert np.all(np.abs(r.residual) <= 1e-9 * r.nav)


def test_depeg_view_is_dex_rate_against_oracle_rate(full_data):
    cfg = load_run_config("eth_staking_only", extra={"start": "2024-05-12", "end": "2024-07-01"})
    ticks = ticks_table(run_backtest(cfg, Dataset(full_data)))
    ticks.index = ticks["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    dex = raw_csv(full_data, "staking/weeth_eth_dex_1h")
    assert ticks["lst_depeg"].isna().sum() == 28  # the DEX series starts 2024-05-13T04:00: no view before
    for ts in ("2024-05-20T00:00:00Z", "2024-06-15T00:00:00Z"):
        assert ticks.loc[ts, "lst_depeg"] == pytest.approx(dex.loc[ts, "market_rate"] / raw_rate(full_data, ts) - 1,
                                                           rel=1e-12)
