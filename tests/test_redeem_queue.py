"""LST exits: voluntary redemptions wait in the protocol's withdrawal queue (the fund holds a claim on ETH
meanwhile); withdrawals and safety actions that need ETH now swap at the DEX."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from basiskit.data.dataset import Dataset
from basiskit.engine.run import run_backtest
from basiskit.engine.runconfig import load_run_config
from conftest import raw_csv

DEPOSIT = "2024-12-16T12:00:00Z"  # ETH ~14% above the entry price: the allocation wants less ETH
WITHDRAWAL = "2025-01-10T12:00:00Z"


def run(full_data, *sets, flows=None):
    extra = {"start": "2024-07-01", "end": "2025-01-31",
             "flows": flows or [{"at": DEPOSIT, "amount": 20_000}, {"at": WITHDRAWAL, "amount": -100_000}]}
    cfg = load_run_config("usdt_market_neutral_no_leverage", sets=list(sets), extra=extra)
    return run_backtest(cfg, Dataset(full_data))


def tick_of(r, iso: str) -> int:
    return int(np.searchsorted(r.grid, pd.Timestamp(iso).timestamp()))


def ops(r, k: int, prefix: str) -> list:
    return [e for e in r.events.of_type("execution") if e.k == k and e.details.get("operation", "").startswith(prefix)]


def oracle_rate(full_data, day: str) -> float:
    """weETH/ETH as Aave's oracle has it on the day's snapshot (weETH USD / WETH USD)."""
    we = raw_csv(full_data, "aave/weeth_reserve_1d").loc[day, "oracle_price_usd"]
    weth = raw_csv(full_data, "aave/weth_reserve_1d").loc[day, "oracle_price_usd"]
    return we / weth


@pytest.fixture(scope="module")
def queued(full_data):
    return run(full_data)


def test_a_voluntary_trim_waits_in_the_queue_as_a_claim_on_eth(full_data, queued):
    r = queued
    k = tick_of(r, DEPOSIT)
    (request,) = ops(r, k, "redeem_weETH")
    assert not ops(r, k, "swap_weETH")
    units, eth = request.details["amount"], request.details["eth"]
    assert eth == pytest.approx(units * oracle_rate(full_data, "2024-12-16T00:00:00Z"), rel=1e-12)
    # ether.fi's queue: 7 days (the default) from the request to the ETH
    assert request.details["payable_at"] == k + 168
    claim = r.extra_columns["claim_eth"]
    assert np.all(claim[:k] == 0.0)
    assert np.allclose(claim[k:k + 168], eth, rtol=1e-12)
    assert claim[k + 168] == pytest.approx(0.0, abs=1e-9)
    (paid,) = ops(r, k + 168, "claim_weETH")
    assert paid.details["amount"] == pytest.approx(eth, rel=1e-12)
    # the claim is ETH the fund still owns, valued at the ETH price like the staked ETH, and still hedged
    slot, lst = r.position_keys.index("etherfi:Claim:weETH"), r.position_keys.index("etherfi:BaseToken:weETH")
    span = slice(k, k + 168)
    eth_price = r.values[lst, span] / (r.quantities[lst, span] * r.extra_columns["lst_rate"][span])
    assert np.allclose(r.values[slot, span], claim[span] * eth_price, rtol=1e-12)
    net = r.extra_columns["net_delta_usdt:ETH"][k:k + 168]
    assert np.all(np.abs(net) <= 2 * r.cfg.position_deviation_threshold * r.nav[k:k + 168])
    assert np.all(np.abs(r.residual) <= 1e-9 * np.maximum(np.abs(r.nav), 1.0))


def test_the_claim_earns_no_staking_yield_while_queued(full_data, queued):
    r = queued
    k = tick_of(r, DEPOSIT)
    (request,) = ops(r, k, "redeem_weETH")
    lst = r.position_keys.index("etherfi:BaseToken:weETH")
    assert r.quantities[lst, k] == pytest.approx(r.quantities[lst, k - 1] - request.details["amount"], rel=1e-12)
    slot = r.position_keys.index("etherfi:Claim:weETH")
    assert np.all(r.quantities[slot, k:k + 168] == r.quantities[slot, k])  # fixed ETH, no accrual


def test_a_shorter_queue_pays_sooner(full_data):
    r = run(full_data, "staking.redeem_queue_hours.weETH=24")
    k = tick_of(r, DEPOSIT)
    (request,) = ops(r, k, "redeem_weETH")
    assert request.details["payable_at"] == k + 24
    assert ops(r, k + 24, "claim_weETH")


def test_a_withdrawal_swaps_at_the_dex_price_and_cost(full_data, queued):
    r = queued
    k = tick_of(r, WITHDRAWAL)
    assert not ops(r, k, "redeem_weETH")
    (swap,) = ops(r, k, "swap_weETH_to_ETH")
    units = swap.details["amount"]
    market = raw_csv(full_data, "staking/weeth_eth_dex_1h").loc[WITHDRAWAL, "market_rate"]
    eth_usd = raw_csv(full_data, "aave/weth_reserve_1d").loc["2025-01-10T00:00:00Z", "oracle_price_usd"]
    bps = bucket_bps(full_data, "ETH_weETH", units * market * eth_usd)
    eth_pos = r.position_keys.index("wallet:BaseToken:ETH")
    lst = r.position_keys.index("etherfi:BaseToken:weETH")
    assert r.quantities[lst, k - 1] - r.quantities[lst, k] == pytest.approx(units, rel=1e-12)
    received = units * market * (1 - bps * 1e-4)
    # the ETH that arrived was sold at once for the withdrawal: it equals the spot sale of the hour
    (sale,) = [e for e in r.events.of_type("execution") if e.k == k and e.details.get("operation") == "spot_trade"]
    # ... less the gas of the hour's on-chain operations, paid in ETH from the wallet's ETH (the gas reserve)
    gwei = raw_csv(full_data, "gas/ethereum_gas_1h").loc[WITHDRAWAL, "gas_price_gwei"]
    gas_eth = sum(e.details.get("gas_units", 0) for e in r.events.of_type("execution") if e.k == k) * gwei * 1e-9
    assert -sale.details["units"] == pytest.approx(received + r.quantities[eth_pos, k - 1]
                                                   - r.quantities[eth_pos, k] - gas_eth, rel=1e-9)


def test_without_a_dex_price_the_swap_is_priced_at_the_oracle_and_flagged(full_data):
    # the weETH DEX series starts 2024-05-13T04:00Z, a day after the Aave snapshots
    cfg = load_run_config("eth_staking_only", extra={
        "start": "2024-05-12T00:00:00Z", "end": "2024-05-14T00:00:00Z",
        "flows": [{"at": "2024-05-12T20:00:00Z", "amount": -100}]})
    r = run_backtest(cfg, Dataset(full_data))
    k = tick_of(r, "2024-05-12T20:00:00Z")
    warned = [e for e in r.events.of_type("data_warning") if e.k == k and "no DEX price" in e.message]
    assert warned and warned[0].details["series"] == "staking/weeth_eth_dex_1h"
    (swap,) = ops(r, k, "swap_weETH_to_ETH")
    units = swap.details["amount"]
    rate = oracle_rate(full_data, "2024-05-12T00:00:00Z")
    eth_usd = raw_csv(full_data, "aave/weth_reserve_1d").loc["2024-05-12T00:00:00Z", "oracle_price_usd"]
    lst, wallet = r.position_keys.index("etherfi:BaseToken:weETH"), r.position_keys.index("wallet:BaseToken:ETH")
    assert r.quantities[lst, k - 1] - r.quantities[lst, k] == pytest.approx(units, rel=1e-12)
    gas = sum(e.details.get("cost", 0.0) for e in r.events.of_type("execution") if e.k == k)
    received = r.quantities[wallet, k] - r.quantities[wallet, k - 1] + 100.0 + gas
    usd = units * rate * eth_usd
    bps = bucket_bps(full_data, "ETH_weETH", usd)
    assert received == pytest.approx(units * rate * (1 - bps * 1e-4), rel=1e-9)


def bucket_bps(full_data, pair: str, usd: float) -> float:
    """The size-bucket slippage of params/execution_costs_bps.json for an order of `usd`."""
    doc = json.loads((full_data / "params/execution_costs_bps.json").read_text())
    table = next(v for v in doc.values() if isinstance(v, dict) and pair in v)[pair]
    return table["10k"] if usd <= 1e4 else table["100k"] if usd <= 1e5 else table["1m"]


def test_a_negative_queue_time_is_a_config_error_naming_the_key(tmp_path):
    out = subprocess.run([sys.executable, "-m", "basiskit.cli", "backtest", "eth_staking_only", "--out",
                          str(tmp_path), "--set", "staking.redeem_queue_hours.wstETH=-5"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and out.stdout == ""
    assert "staking.redeem_queue_hours.wstETH" in out.stderr and "-5" in out.stderr


def test_a_loop_de_lever_for_a_withdrawal_swaps_within_the_max_ltv(full_data):
    cfg = load_run_config("eth_leveraged", sets=["leverage.entry=loop"], extra={
        "start": "2024-07-01", "end": "2024-08-01", "flows": [{"at": "2024-07-10T00:00:00Z", "amount": -100}]})
    r = run_backtest(cfg, Dataset(full_data))
    k = tick_of(r, "2024-07-10T00:00:00Z")
    assert [e.details["amount"] for e in r.events.of_type("withdrawal") if e.k == k] == [100.0]
    swaps, repays = ops(r, k, "swap_weETH_to_ETH"), ops(r, k, "aave_repay")
    assert len(swaps) >= 2 and len(repays) >= 2 and not ops(r, k, "redeem_weETH")  # each step's ETH repays debt
    max_ltv = json.loads((full_data / "params/aave_v3_risk.json").read_text())["emode"]["ltv_limits"]["weETH_WETH"]
    assert r.extra_columns["ltv"][k] <= max_ltv  # never past what Aave lets a loop withdraw
    assert abs(r.extra_columns["ltv"][k] - 0.85) < cfg.leverage.ltv_tolerance
    assert np.all(np.abs(r.residual) <= 1e-9 * np.maximum(np.abs(r.nav), 1.0))

