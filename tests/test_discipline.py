"""Strategies act like careful operators: a breach is fixed once and well inside its limit, an action
that costs more than it may is skipped (and says why), nothing is paid with money the portfolio does
not hold, and the acceptance checks of the robustness issue on the full history."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from basiskit.data.dataset import SAMPLE_DIR, Dataset
from basiskit.data.synthetic import SyntheticMarket
from basiskit.engine.run import run_backtest
from basiskit.engine.runconfig import load_run_config
from basiskit.portfolio.attribution import SLOT
from basiskit.results.summary import summarize
from basiskit.results.tables import ticks_table
from conftest import raw_csv

LT = json.loads((SAMPLE_DIR / "params/aave_v3_risk.json").read_text())["emode"]["liquidation_thresholds"]["weETH_WETH"]


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "BASISKIT_DATA"}
    return subprocess.run([sys.executable, "-m", "basiskit.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_health_factor_breach_delevers_once_to_the_target(tmp_path):
    hours = pd.date_range("2024-06-01", "2024-06-06", freq="h", tz="UTC")
    rate = np.full(len(hours), 1.05)
    rate[72:] = 1.05 * 0.98  # the snapshot of 2024-06-04 shows the rate 2% lower, and it stays there
    SyntheticMarket("2024-06-01", "2024-06-06", paths={"ETH": np.full(len(hours), 3000.0)},
                    start_price={"ETH": 3000.0}, lst_rate=rate, supply_apr=0.0).write(tmp_path / "d")
    cfg = load_run_config("eth_leveraged", sets=["costs.enabled=false", "rewards.enabled=false",
                                                  "leverage.hf_floor=1.1"], extra={"initial_capital": 100})
    r = run_backtest(cfg, Dataset(tmp_path / "d"))
    # by hand: HF = 0.95 x rate_t / (1.05 x 0.85); the oracle's rate is the last snapshot's, so the HF
    # steps down when the 2024-06-04 snapshot arrives (never before: nothing is read from a later row)
    hf = LT * 0.98 / 0.85
    assert hf < 1.1 < LT / 0.85
    (fix,) = [e for e in r.events.of_type("rebalance") if e.details["trigger"] == "health_factor"]
    assert fix.k == 72 and fix.details["trigger_value"] == pytest.approx(hf, rel=1e-9)
    assert fix.details["threshold"] == 1.1
    ticks = ticks_table(r)
    assert ticks["ltv"].iloc[fix.k] == pytest.approx(0.85, abs=1e-9)  # back to the target: HF 0.95 / 0.85
    assert ticks["health_factor"].iloc[fix.k:].min() > 1.1  # and it stays above the floor
    assert [e.k for e in r.events.of_type("rebalance")].count(fix.k) == 1  # no re-lever in the same hour
    assert np.all(np.abs(r.residual) <= 1e-9 * r.nav)


def test_margin_breach_lands_comfortably_inside_the_limit(tmp_path):
    hours = pd.date_range("2024-03-01", "2024-03-11", freq="h", tz="UTC")
    eth = 3000.0 * np.exp(np.linspace(0.0, 0.35, len(hours)))  # a steady 42% rise: shorts lose margin
    SyntheticMarket("2024-03-01", "2024-03-11", paths={"ETH": eth}, start_price={"ETH": 3000.0},
                    funding_rate=0.0).write(tmp_path / "d", venues=("binance", "bybit"), spot_venues=("bybit",))
    cfg = load_run_config("eth_basis", sets=["costs.enabled=false"], extra={"initial_capital": 1_000_000})
    r = run_backtest(cfg, Dataset(tmp_path / "d"))
    ticks = ticks_table(r)
    fixes = [e for e in r.events.of_type("rebalance") if e.details["trigger"] == "margin_ratio"]
    assert fixes and r.events.of_type("liquidation") == []
    for e in fixes:
        assert e.details["trigger_value"] >= 0.1  # a real breach of basis.margin_ratio_limit
        for v in ("binance", "bybit"):  # moved back to the entry ratio mmr / margin_buffer, well inside
            assert ticks[f"margin_ratio:{v}"].iloc[e.k] <= 0.05
    assert len(fixes) <= 3  # each fix lasts: the next breach needs another large move


def test_deploying_cash_that_costs_more_than_one_percent_of_it_is_skipped():
    # 2024-10-06 16:00 gas is 24.42 gwei: a flash-loan bundle (1M gas) costs 0.0244 ETH, more than 1% of a
    # 0.5 ETH deposit; the deposit stays in the wallet and nothing is paid
    at = "2024-10-06T16:00:00Z"
    cfg = load_run_config("eth_leveraged", extra={"start": "2024-10-06", "end": "2024-10-07",
                                                   "flows": [{"at": at, "amount": 0.5}]})
    r = run_backtest(cfg, Dataset(SAMPLE_DIR))
    k = 16
    gwei = raw_csv(SAMPLE_DIR, "gas/ethereum_gas_1h").loc[at, "gas_price_gwei"]
    assert 1_000_000 * gwei * 1e-9 > 0.01 * 0.5
    (skip,) = [e for e in r.events.of_type("rebalance_skipped") if e.k == k]
    assert skip.details["trigger"] == "idle_cash" and f"at least {1_000_000 * gwei * 1e-9:.6g}" in skip.message
    assert r.attribution[SLOT["transaction_costs"]][k] == 0.0
    assert r.quantities[0][k] - r.quantities[0][k - 1] == pytest.approx(0.5, rel=1e-12)
    assert summarize(r)["skipped_actions"]["idle_cash"] >= 1


def test_rebalance_events_say_why():
    r = run_backtest(load_run_config("eth_basis"), Dataset(SAMPLE_DIR))
    for e in r.events.of_type("rebalance"):
        d = e.details
        assert {"trigger", "trigger_value", "threshold", "cost"} <= set(d)
        assert f"{d['trigger']} {d['trigger_value']:.6g}" in e.message


# --- the robustness issue's acceptance checks, on the full history ------------------------------------
FIRST = ["backtest", "usdt_market_neutral", "--start", "2024-05-13", "--end", "2024-07-01", "--capital", "100000",
         "--set", "stake_allocation=0.5", "--set", "target_ltv=0.91"]


def test_first_command_is_refused_then_runs_with_a_lower_floor(full_data, tmp_path):
    p = cli(*FIRST, "--data", str(full_data), "--out", str(tmp_path))
    assert p.returncode == 2 and p.stdout == "" and "Traceback" not in p.stderr
    assert "target_ltv" in p.stderr and "leverage.hf_floor" in p.stderr
    assert "largest valid target_ltv for hf_floor 1.05 is 0.8962" in p.stderr
    p = cli(*FIRST, "--set", "leverage.hf_floor=1.03", "--data", str(full_data), "--out", str(tmp_path), "--json")
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    assert s["rebalances"] <= 5 and s["liquidations"]["count"] == 0
    assert s["reconciliation_max_residual"] <= 1e-9 * s["final_nav"]
    assert 0.0 < s["apy"] < 0.3
    assert -s["pnl_attribution"]["transaction_costs"] < 0.01 * 100_000


@pytest.mark.parametrize("capital", ["100", "1000"])
def test_tiny_capital_is_refused_naming_the_minimum(full_data, tmp_path, capital):
    p = cli("backtest", "usdt_market_neutral", "--start", "2024-06-01", "--end", "2024-07-01", "--capital", capital,
            "--data", str(full_data), "--out", str(tmp_path))
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert f"initial_capital: {float(capital)!r} -> below the minimum" in p.stderr


FLOWS = ["backtest", "usdt_market_neutral", "--start", "2024-06-01", "--end", "2024-08-01", "--capital", "100000"]


def test_a_withdrawal_beyond_what_the_portfolio_holds_stops_the_run(full_data, tmp_path):
    p = cli(*FLOWS, "--set", 'flows=[{"at":"2024-07-01T00:00:00Z","amount":-150000}]', "--data", str(full_data),
            "--out", str(tmp_path))
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "withdrawal flows.0 at 2024-07-01T00:00:00Z of 150,000.000000" in p.stderr
    assert "could free at most" in p.stderr


# the unwind sells ~5x the equity of levered weETH at the DEX (its discount and slippage): 97% is what it can free
def test_a_withdrawal_of_almost_everything_does_not_re_enter(full_data):
    cfg = load_run_config("usdt_market_neutral", extra={
        "start": "2024-06-01", "end": "2024-08-01", "initial_capital": 100_000,
        "flows": [{"at": "2024-07-01T00:00:00Z", "amount": -97_000}]})
    r = run_backtest(cfg, Dataset(full_data))
    s = summarize(r)
    reasons = [e.details["trigger"] for e in r.events.of_type("rebalance")]
    assert reasons == ["idle_cash", "withdrawal"]  # entry, then the unwind; the rest is held as cash
    assert np.all(np.abs(r.residual) <= 1e-9 * np.maximum(r.nav, 100_000))
    assert s["liquidations"]["count"] == 0
    cash_like = [j for j, key in enumerate(r.position_keys) if ":Perp:" not in key and ":debtToken:" not in key]
    assert (r.values[cash_like] >= -1e-9 * 100_000).all()
