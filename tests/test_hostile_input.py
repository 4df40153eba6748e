"""Hostile values in --set, --config files and the API's config_overrides (impossible dates, NaN, inf,
huge numbers, wrong types, NUL): a refused config exits 2 (or 422) with a message, never a traceback
or a 500. Derandomized in CI; `make fuzz` draws many more (BASISKIT_FUZZ_EXAMPLES)."""

from __future__ import annotations

import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from basiskit.cli import app
from basiskit.data.dataset import SAMPLE_DIR

FUZZ = int(os.environ.get("BASISKIT_FUZZ_EXAMPLES", "0"))
SETTINGS = settings(max_examples=FUZZ or 30, deadline=None, database=None, derandomize=not FUZZ,
                    suppress_health_check=list(HealthCheck))
KEYS = ["initial_capital", "start", "end", "target_ltv", "stake_allocation", "lst", "strategy", "share_class",
        "leverage.hf_floor", "leverage.entry", "leverage.loop_max_steps", "costs.gas_units.supply",
        "costs.gas_series", "costs.slippage_bps.ETH_USDT", "hedge_allocation.binance", "hedge_allocation",
        "flows", "flows.0.at", "data.staleness_hours.bar", "venues.bybit.transfer_fee_usdt", "prices.eth_usdt",
        "position_deviation_threshold", "risk.max_net_delta_pct", "market_neutral.margin_ratio_limit", "nope",
        "costs", "description", "rewards.min_sell_value_usd"]
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
HOSTILE_RAW = st.one_of(  # what a user types after `=`
    st.sampled_from(["2024-13-01", "2024-02-30T00:00:00Z", ".nan", ".inf", "-.inf", "1e400", "1.0e+400", "null", "",
                     "[1, 2]", "{a: 1}", "99999999999999999999999", "-1", "0", "true", "'0.5'", "2024-11-01T00:30:00Z",
                     '[{"at": "2024-11-02T00:00:00Z", "amount": 1e308}]', "&a [*a]", "!!python/object:os.system",
                     "0.85", "1.0001", "weETH", "flash_loan", "gas/ethereum_gas_1h"]),
    TEXT, st.floats(allow_nan=True, allow_infinity=True).map(repr), st.integers().map(str))
HOSTILE_JSON = st.one_of(  # what an API client sends as a JSON value
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30), st.floats(allow_nan=False),
    TEXT, st.lists(st.integers(), max_size=3), st.dictionaries(TEXT, st.integers(), max_size=2),
    st.sampled_from(["2024-13-01", "2024-11-01T00:30:00Z", "1e400", "we\0ETH", 1e308, -1e308]))
ARGS = ["--start", "2024-11-01", "--end", "2024-11-03", "--data", str(SAMPLE_DIR), "--json"]


def invoke(tmp_path, *args: str):
    return CliRunner().invoke(app, ["backtest", *args, *ARGS, "--out", str(tmp_path / "runs")])


def assert_clean(result) -> None:
    """Exit 0 (accepted and run), 2 (config error) or 1 (data or run error), with a message, never a traceback."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (0, 1, 2), result.output
    if result.exit_code:
        assert "error:" in result.output and "Traceback" not in result.output


def test_hostile_set_values(tmp_path):
    @given(mode=st.sampled_from(["pure_lending_usdt", "eth_leveraged", "usdt_market_neutral", "btc_basis"]),
           key=st.sampled_from(KEYS), raw=HOSTILE_RAW)
    @SETTINGS
    def check(mode, key, raw):
        assert_clean(invoke(tmp_path, mode, "--set", f"{key}={raw}"))

    check()


def test_impossible_date_exits_2_naming_the_key(tmp_path):
    result = invoke(tmp_path, "pure_lending_usdt", "--set", "end=2024-13-01")
    assert result.exit_code == 2 and "end: '2024-13-01'" in result.output and "month must be in 1..12" in result.output


def test_hostile_config_files(tmp_path):
    @given(content=st.one_of(
        TEXT, st.sampled_from(["start: 2024-13-01\n", "- 1\n- 2\n", "costs: [1\n", "\0\0\0", "a: &x [*x]\n",
                               "initial_capital: .nan\n", "flows: {at: 1}\n", "costs: {gas_units: {supply: 1e99}}\n",
                               "target_ltv: 0.85\nleverage: {hf_floor: 1.2}\n"])))
    @SETTINGS
    def check(content):
        path = tmp_path / "over.yaml"
        path.write_text(content, encoding="utf-8", errors="surrogatepass")
        assert_clean(invoke(tmp_path, "usdt_market_neutral", "--config", str(path)))

    check()
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00garbage")
    result = invoke(tmp_path, "eth_basis", "--config", str(tmp_path / "binary.yaml"))
    assert result.exit_code == 2 and "--config" in result.output


def test_hostile_api_overrides(server):
    with server.client(timeout=60) as client:
        @given(mode=st.sampled_from(["eth_leveraged", "usdt_market_neutral", "eth_basis"]), key=st.sampled_from(KEYS),
               value=HOSTILE_JSON)
        @SETTINGS
        def check(mode, key, value):
            body = {"mode": mode, "start": "2024-11-01", "end": "2024-11-03", "config_overrides": {key: value}}
            # json.dumps, not httpx's encoder: a non-finite float goes out as the non-standard token Infinity
            # or NaN, as a careless client would send it
            r = client.post("/backtests", content=json.dumps(body), headers={"content-type": "application/json"})
            assert r.status_code in (202, 422), r.text
            if r.status_code == 422:
                assert r.json()["detail"]

        check()
        r = client.post("/backtests", json={"mode": "eth_leveraged", "config_overrides": {"end": "2024-13-01"}})
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "end"
