"""Config: presets, overrides, and validation that reports every problem at once."""

from __future__ import annotations

import pytest

from basiskit.config import config_hash, preset_names
from basiskit.config.loading import parse_set
from basiskit.engine.runconfig import load_run_config
from basiskit.errors import ConfigError


def test_every_preset_validates():
    assert {"pure_lending_usdt", "pure_lending_eth"} <= set(preset_names())
    for name in preset_names():
        assert load_run_config(name).mode == name


def test_three_bad_overrides_give_one_error_listing_all_three():
    with pytest.raises(ConfigError) as exc:
        load_run_config("pure_lending_usdt", sets=["initial_capital=-5", "costs.enabled=maybe", "share_class=BTC"])
    fields = {field for field, _, _ in exc.value.problems}
    assert fields == {"initial_capital", "costs.enabled", "share_class"}
    text = str(exc.value)
    assert "3 problem(s)" in text and "-5" in text and "'maybe'" in text and "'BTC'" in text


def test_unknown_key_is_an_error_not_ignored():
    with pytest.raises(ConfigError) as exc:
        load_run_config("pure_lending_usdt", sets=["costs.enabeld=false"])
    assert exc.value.problems[0][0] == "costs.enabeld" and "unknown key" in exc.value.problems[0][2]


def test_overrides_parse_yaml_and_json_values(tmp_path):
    assert parse_set("costs.gas_units={\"supply\": 1}") == (["costs", "gas_units"], {"supply": 1})
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("costs:\n  gas_units:\n    withdraw: 7\n")
    cfg = load_run_config("pure_lending_usdt", config_files=[cfg_file],
                          sets=["costs.gas_units.supply=3", "start=2024-11-01", "end=2024-12-01T06:00:00Z"])
    assert cfg.costs.gas_units.supply == 3 and cfg.costs.gas_units.withdraw == 7  # deep merge keeps siblings
    assert cfg.costs.gas_units.borrow == 260_000
    assert cfg.start.isoformat() == "2024-11-01T00:00:00+00:00" and cfg.end.hour == 6


def test_cross_field_problems():
    with pytest.raises(ConfigError, match="must be before end"):
        load_run_config("pure_lending_usdt", extra={"start": "2024-12-01", "end": "2024-11-01"})
    with pytest.raises(ConfigError, match="whole UTC hour"):
        load_run_config("pure_lending_usdt", sets=["start=2024-11-01T00:30:00Z"])
    with pytest.raises(ConfigError, match="needs a USDT reserve"):
        load_run_config("pure_lending_usdt", sets=["lending.reserve=WETH"])
    with pytest.raises(ConfigError, match="flows.0.at"):
        load_run_config("pure_lending_usdt", extra={"start": "2024-11-01", "end": "2024-12-01",
                                                    "flows": [{"at": "2024-12-05", "amount": 1}]})


def test_unknown_mode_and_strategy():
    with pytest.raises(ConfigError, match="no such preset; known modes: .*pure_lending_usdt"):
        load_run_config("pure_lendin")
    with pytest.raises(ConfigError, match="unknown strategy; registered: basis, market_neutral, pure_lending, staking"):
        load_run_config("pure_lending_usdt", sets=["strategy=moon"])


def test_config_hash_changes_with_any_parameter():
    a = load_run_config("pure_lending_usdt")
    assert config_hash(a) == config_hash(load_run_config("pure_lending_usdt"))
    assert config_hash(a) != config_hash(load_run_config("pure_lending_usdt", sets=["costs.enabled=false"]))


def test_cross_field_problems_each_name_their_field():
    with pytest.raises(ConfigError) as exc:
        load_run_config("pure_lending_usdt", sets=["lending.reserve=WETH", "start=2024-12-01", "end=2024-11-01"])
    assert {field for field, _, _ in exc.value.problems} == {"start", "lending.reserve"}
    with pytest.raises(ConfigError) as exc:
        load_run_config("usdt_market_neutral", sets=["lst=null", "share_class=ETH", "stake_allocation=0.95"])
    problems = {field: reason for field, _, reason in exc.value.problems}
    assert set(problems) == {"lst", "share_class", "stake_allocation"}
    assert "initial_margin_rate 0.1" in problems["stake_allocation"]  # 0.05/0.95 of margin per unit of hedge


def test_mode_cannot_be_overridden():
    with pytest.raises(ConfigError) as exc:
        load_run_config("pure_lending_usdt", sets=["mode=eth_basis"])
    assert exc.value.problems[0][:2] == ("mode", "eth_basis")
