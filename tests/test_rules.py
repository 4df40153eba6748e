"""Every rule between config fields: refused with exit-2 errors naming the fields, the values and the
valid range, with the figures computed here by hand from the dataset's parameters and raw files."""

from __future__ import annotations

import json
import math

import pytest

from basiskit.data.dataset import SAMPLE_DIR, Dataset
from basiskit.engine.run import Backtest
from basiskit.engine.runconfig import load_run_config
from basiskit.errors import ConfigError
from conftest import raw_csv

RISK = json.loads((SAMPLE_DIR / "params/aave_v3_risk.json").read_text())["emode"]
CEX = json.loads((SAMPLE_DIR / "params/cex_venues.json").read_text())
LT, MAX_LTV = RISK["liquidation_thresholds"]["weETH_WETH"], RISK["ltv_limits"]["weETH_WETH"]
MMR_ETH = CEX["binance"]["maintenance_margin_rate"]["ETHUSDT"]


def problems(mode: str, *sets: str, **extra) -> dict[str, str]:
    """field -> reason of every problem a config has (the config must be refused)."""
    with pytest.raises(ConfigError) as exc:
        cfg = load_run_config(mode, sets=list(sets), extra=extra or None, dataset=Dataset(SAMPLE_DIR))
        Backtest(cfg, Dataset(SAMPLE_DIR))
    found: dict[str, str] = {}
    for field, _, reason in exc.value.problems:
        found[field] = f"{found[field]} | {reason}" if field in found else reason
    return found


def accepted(mode: str, *sets: str, **extra) -> None:
    Backtest(load_run_config(mode, sets=list(sets), extra=extra or None, dataset=Dataset(SAMPLE_DIR)),
             Dataset(SAMPLE_DIR))


# --- leverage -----------------------------------------------------------------------------------
def test_health_factor_at_target_must_clear_the_floor_naming_the_largest_valid_target():
    got = problems("usdt_market_neutral", "target_ltv=0.91", "leverage.hf_floor=1.05")
    reason = got["target_ltv"]
    assert f"{LT / 0.91:.4f}" in reason and "leverage.hf_floor 1.05" in reason
    largest = math.floor(LT / (1.05 + 0.01) * 1e4) / 1e4  # 0.95 / 1.06 = 0.8962
    assert f"largest valid target_ltv for hf_floor 1.05 is {largest:.4f}" in reason
    assert f"hf_floor <= {math.floor((LT / 0.91 - 0.01) * 1e4) / 1e4:.4f}" in reason
    accepted("usdt_market_neutral", f"target_ltv={largest}", "leverage.hf_floor=1.05")
    accepted("usdt_market_neutral", "target_ltv=0.91", "leverage.hf_floor=1.03")


def test_target_ltv_at_most_the_emode_max_ltv():
    got = problems("eth_leveraged", "target_ltv=0.95", "leverage.hf_floor=1.001")
    assert f"above the eMode max LTV {MAX_LTV:g}" in got["target_ltv"]


def test_hf_floor_must_be_above_one():
    assert "greater than 1" in problems("eth_leveraged", "leverage.hf_floor=1.0")["leverage.hf_floor"]


def test_ltv_tolerance_below_the_releverage_threshold():
    got = problems("eth_leveraged", "leverage.ltv_tolerance=0.03", "leverage.releverage_threshold=0.02")
    assert "must be below leverage.releverage_threshold 0.02" in got["leverage.ltv_tolerance"]


def test_a_loop_too_short_for_the_target_is_refused_with_the_steps_it_needs():
    got = problems("eth_leveraged", "leverage.entry=loop", "target_ltv=0.9", "leverage.hf_floor=1.02",
                   "leverage.loop_max_steps=5")
    # each cycle borrows up to the max LTV: debt after n cycles from 1 ETH = 0.93 (1 - 0.93^n) / 0.07
    debt = [MAX_LTV * (1 - MAX_LTV ** n) / (1 - MAX_LTV) for n in range(1, 40)]
    reached = debt[4] / (1 + debt[4])
    needed = next(n + 1 for n, d in enumerate(debt) if d / (1 + d) >= 0.9 - 0.005)
    assert f"reaches LTV {reached:.4f}" in got["leverage.loop_max_steps"]
    assert f"it needs {needed} steps" in got["leverage.loop_max_steps"]
    accepted("eth_leveraged", "leverage.entry=loop", "target_ltv=0.9", "leverage.hf_floor=1.02",
             f"leverage.loop_max_steps={needed}")


def test_a_swap_entry_on_a_levered_position_costs_more_than_one_percent():
    got = problems("eth_leveraged", "staking.entry=swap")
    # slippage of the ETH -> weETH swap on the whole collateral, 1 / (1 - 0.85) of the equity
    assert "more than 1% whatever the capital" in got["staking.entry"]
    slippage = json.loads((SAMPLE_DIR / "params/execution_costs_bps.json").read_text())["slippage_bps"]["ETH_weETH"]
    share = min(slippage.values()) * 1e-4 / (1 - 0.85)
    assert share > 0.01


# --- hedges -------------------------------------------------------------------------------------
def test_margin_ratio_limit_against_the_entry_ratio():
    got = problems("eth_basis", "basis.margin_ratio_limit=0.03")
    entry = MMR_ETH / 0.3  # maintenance margin / equity at entry, margin_buffer 0.3
    assert f"sits at margin ratio {entry:.4g}" in got["basis.margin_ratio_limit"]
    assert f"at least {entry / 0.5:.4g}" in got["basis.margin_ratio_limit"]


def test_margin_ratio_limit_leaves_room_before_liquidation():
    got = problems("eth_basis", "basis.margin_ratio_limit=0.3", "risk.margin_ratio_override=0.6")
    room = MMR_ETH * (1 / 0.3 - 1)  # equity per notional falls from mmr / limit to mmr
    assert f"price move of only {room:.2%}" in got["basis.margin_ratio_limit"]
    assert f"largest valid limit is {math.floor(MMR_ETH / (MMR_ETH + 0.02) * 1e4) / 1e4:g}" in \
        got["basis.margin_ratio_limit"]


def test_hedge_margin_against_initial_margin_and_stake_allocation():
    got = problems("usdt_market_neutral", "stake_allocation=0.95")
    assert "initial_margin_rate 0.1" in got["stake_allocation"]  # 0.05 / 0.95 of margin per unit of hedge


def test_risk_override_above_the_margin_ratio_limit():
    got = problems("btc_basis", "risk.margin_ratio_override=0.08")
    assert "must be above basis.margin_ratio_limit 0.1" in got["risk.margin_ratio_override"]


def test_deviation_threshold_bounds_for_hedged_strategies():
    assert "at least 0.001" in problems("eth_basis", "position_deviation_threshold=0.0005")[
        "position_deviation_threshold"]
    too_late = problems("usdt_market_neutral", "position_deviation_threshold=0.06")["position_deviation_threshold"]
    assert "at most risk.max_net_delta_pct 0.05" in too_late


# --- capital ------------------------------------------------------------------------------------
def test_capital_floor_from_fixed_costs_by_hand():
    start = "2024-11-01T00:00:00Z"
    gwei = raw_csv(SAMPLE_DIR, "gas/ethereum_gas_1h").loc[start, "gas_price_gwei"]
    eth = raw_csv(SAMPLE_DIR, "spot/uniswapv3_wethusdt_1h").loc[start, "open"]
    # supply 200k + withdraw 220k gas units, in USDT: units x gwei x 1e-9 x ETH/USDT; at most 1% of the capital
    minimum = (200_000 + 220_000) * gwei * 1e-9 * eth / 0.01
    got = problems("pure_lending_usdt", start="2024-11-01", end="2024-12-01", initial_capital=minimum * 0.99)
    assert f"below the minimum {math.ceil(minimum * 100) / 100:,.2f} USDT" in got["initial_capital"]
    assert "gas" in got["initial_capital"]
    accepted("pure_lending_usdt", start="2024-11-01", end="2024-12-01", initial_capital=minimum * 1.01)


def test_capital_floor_from_venue_minimum_sizes():
    # binance holds 5% of the hedge: a re-hedge of 1% of the capital there must reach 5 USDT
    sets = ("hedge_allocation.binance=0.05", "hedge_allocation.bybit=0.95")
    minimum = 5.0 / (0.01 * 0.05)
    got = problems("eth_basis", *sets, initial_capital=minimum * 0.9)
    assert f"below the minimum {minimum:,.2f} USDT" in got["initial_capital"]
    assert "binance re-hedge" in got["initial_capital"]


# --- data names and hostile values --------------------------------------------------------------------
def test_names_the_dataset_does_not_have():
    got = problems("pure_lending_usdt", "costs.gas_series=gas/nope_1h", "costs.slippage_bps.DOGE_USDT=3",
                   "data.staleness_hours_by_series.spot/nope_1h=3")
    assert "no such series" in got["costs.gas_series"]
    assert "unknown pair" in got["costs.slippage_bps.DOGE_USDT"]
    assert "no such series" in got["data.staleness_hours_by_series.spot/nope_1h"]
    assert "not a column of gas/ethereum_gas_1h" in problems("pure_lending_usdt", "costs.gas_column=price")[
        "costs.gas_column"]
    assert "unknown strategy; registered: basis, market_neutral, pure_lending, staking" in problems(
        "pure_lending_usdt", "strategy=moon")["strategy"]


@pytest.mark.parametrize("item,field,needle", [
    ("end=2024-13-01", "end", "month must be in 1..12"),
    ("initial_capital=.nan", "initial_capital", "finite number"),
    ("leverage.hf_floor=.inf", "leverage.hf_floor", "finite number"),
    ("costs.gas_units.supply=99999999999999999999", "costs.gas_units.supply", "less than or equal to 30000000"),
    ("target_ltv=[1, 2]", "target_ltv", "valid number"),
    ("lst=we\0ETH", "lst", "not a YAML/JSON value"),
    ("costs.enab\0led=true", "costs.enab\0led", "unknown key"),
])
def test_hostile_values_are_config_errors_naming_the_key(item, field, needle):
    got = problems("eth_leveraged", item)
    assert field in got and needle in got[field], got
