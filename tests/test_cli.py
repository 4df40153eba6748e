"""The CLI as a user runs it: a real subprocess, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from basiskit.data.dataset import SAMPLE_DIR
from conftest import raw_csv

REQUIRED_KEYS = {
    "mode", "share_class", "start", "end", "steps", "initial_capital", "final_nav", "total_return", "apy",
    "max_drawdown", "balance_pnl", "pnl_attribution", "reconciliation_max_residual", "data_warnings",
    "wall_seconds", "engine_seconds", "run_id", "config_hash", "data_hash",
}


def basiskit(*args, env=None, cwd=None):
    full_env = {k: v for k, v in os.environ.items() if k != "BASISKIT_DATA"} | (env or {})
    return subprocess.run([sys.executable, "-m", "basiskit.cli", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=300)


def test_backtest_json_prints_one_object(tmp_path):
    p = basiskit("backtest", "pure_lending_usdt", "--json", "--out", str(tmp_path), "--start", "2024-11-01",
                 "--end", "2024-12-01", "--capital", "5000")
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    assert set(s) >= REQUIRED_KEYS
    assert s["steps"] == 30 * 24 and s["initial_capital"] == 5000
    raw = raw_csv(SAMPLE_DIR, "aave/usdt_reserve_1d")
    gross = raw.loc["2024-12-01T00:00:00Z", "liquidity_index"] / raw.loc["2024-11-01T00:00:00Z", "liquidity_index"] - 1
    assert s["total_return"] < gross and s["total_return"] == pytest.approx(gross, abs=1e-3)  # gas on 5000 USDT
    folder = tmp_path / s["run_id"]
    ticks = pd.read_parquet(folder / "ticks.parquet")
    assert len(ticks) == s["steps"] + 1 and ticks["nav"].iloc[-1] == s["final_nav"]
    assert json.loads((folder / "summary.json").read_text())["run_id"] == s["run_id"]


def test_config_error_exit_2_stderr_only(tmp_path):
    p = basiskit("backtest", "pure_lending_usdt", "--json", "--out", str(tmp_path),
                 "--set", "initial_capital=-5", "--set", "costs.enabled=maybe", "--set", "share_class=BTC")
    assert p.returncode == 2 and p.stdout == ""
    for field in ("initial_capital", "costs.enabled", "share_class"):
        assert field in p.stderr


def test_data_source_order(tmp_path, full_data):
    # --data beats BASISKIT_DATA beats the embedded sample
    env = {"BASISKIT_DATA": str(full_data)}
    via_env = json.loads(basiskit("backtest", "pure_lending_usdt", "--json", "--out", str(tmp_path),
                                  env=env).stdout)
    assert via_env["start"] == "2024-01-01T00:00:00Z"
    via_flag = json.loads(basiskit("backtest", "pure_lending_usdt", "--json", "--out", str(tmp_path),
                                   "--data", str(SAMPLE_DIR), env=env).stdout)
    assert via_flag["start"] == "2024-10-04T00:00:00Z"
    default = json.loads(basiskit("backtest", "pure_lending_usdt", "--json", "--out", str(tmp_path)).stdout)
    assert "embedded sample" in default["data_source"] and default["start"] == via_flag["start"]


def test_data_error_names_the_problem(tmp_path):
    p = basiskit("backtest", "pure_lending_usdt", "--data", str(tmp_path), "--out", str(tmp_path))
    assert p.returncode == 1 and "MANIFEST.json: not found" in p.stderr


def test_modes_and_data_check():
    p = basiskit("modes")
    assert p.returncode == 0 and "pure_lending_usdt" in p.stdout and "pure_lending_eth" in p.stdout
    p = basiskit("data", "check", str(SAMPLE_DIR))
    assert p.returncode == 0 and "uniswapv3_wethusdt" in p.stdout.replace("\n", "")


def test_two_runs_identical_tables_and_hashes(tmp_path):
    args = ["backtest", "pure_lending_eth", "--json", "--out", str(tmp_path),
            "--config", str(_flows_file(tmp_path))]
    a, b = (json.loads(basiskit(*args).stdout) for _ in range(2))
    assert a["run_id"] != b["run_id"]
    assert (a["config_hash"], a["data_hash"]) == (b["config_hash"], b["data_hash"])
    for table in ("ticks.parquet", "events.parquet"):
        assert (tmp_path / a["run_id"] / table).read_bytes() == (tmp_path / b["run_id"] / table).read_bytes()


def _flows_file(tmp_path):
    f = tmp_path / "flows.yaml"
    f.write_text("flows:\n  - {at: 2024-11-01T05:00:00Z, amount: 10}\n  - {at: 2024-12-01T00:00:00Z, amount: -20}\n")
    return f


def test_error_text_with_brackets_is_printed_verbatim(tmp_path):
    p = basiskit("backtest", "pure_lending_usdt", "--out", str(tmp_path), "--set", "costs.gas_units=[1]")
    assert p.returncode == 2 and p.stdout == ""
    assert "costs.gas_units: [1] -> Input should be a valid dictionary" in p.stderr
