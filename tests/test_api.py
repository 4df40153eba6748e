"""The HTTP API against a real server on 127.0.0.1: results equal the CLI's, validation, formats,
deletion, and a crash during a run."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from basiskit.data.dataset import SAMPLE_DIR
from basiskit.data.synthetic import SyntheticMarket
from server import Server, wait_for

VOLATILE = {"run_id", "wall_seconds", "engine_seconds", "steps_per_second", "data_source", "results_dir"}


def test_api_run_equals_cli_run(client, tmp_path):
    body = {"mode": "usdt_market_neutral", "start": "2024-10-15", "end": "2024-12-15", "capital": 250000,
            "config_overrides": {"hedge_allocation": {"binance": 0.7, "bybit": 0.3}, "costs.enabled": True}}
    r = client.post("/backtests", json=body)
    assert r.status_code == 202, r.text
    run_id = r.json()["id"]
    assert wait_for(client, run_id)["status"] == "done"
    api = client.get(f"/backtests/{run_id}/result").json()
    cli = subprocess.run(
        [sys.executable, "-m", "basiskit.cli", "backtest", "usdt_market_neutral", "--start", "2024-10-15", "--end",
         "2024-12-15", "--capital", "250000", "--set", "hedge_allocation.binance=0.7", "--set",
         "hedge_allocation.bybit=0.3", "--json", "--out", str(tmp_path), "--data", str(SAMPLE_DIR)],
        capture_output=True, text=True, check=True)
    cli = json.loads(cli.stdout)
    assert {k: v for k, v in api.items() if k not in VOLATILE} == {k: v for k, v in cli.items() if k not in VOLATILE}
    assert api["steps"] == 61 * 24 and api["funding_by_venue"]["binance"] != 0
    ts = client.get(f"/backtests/{run_id}/timeseries").json()
    cli_ticks = pd.read_parquet(tmp_path / cli["run_id"] / "ticks.parquet")
    assert ts["data"]["nav"] == cli_ticks["nav"].tolist()


def test_every_problem_of_a_request_is_listed(client):
    r = client.post("/backtests", json={"mode": "btc_basis", "capital": -5, "config_overrides": {
        "costs.enabeld": False, "hedge_allocation": {"binance": 0.5, "bybit": 0.2}}})
    assert r.status_code == 422
    fields = {p["field"] for p in r.json()["detail"]}
    assert fields == {"initial_capital", "costs.enabeld", "hedge_allocation"}
    assert all(p["message"] for p in r.json()["detail"])
    r = client.post("/backtests", json={"mode": "no_such_mode"})
    assert r.status_code == 422 and "known modes" in r.json()["detail"][0]["message"]
    r = client.post("/backtests", json={"mode": "pure_lending_usdt", "start": "2023-01-01"})
    assert r.status_code == 422 and "not covered" in r.json()["detail"]


def test_modes_and_schema(client):
    modes = {m["mode"]: m for m in client.get("/modes").json()}
    assert len(modes) == 8 and modes["eth_leveraged"]["share_class"] == "ETH"
    detail = client.get("/modes/eth_leveraged").json()
    assert detail["preset"]["target_ltv"] == 0.85 and "properties" in detail["config_schema"]
    assert client.get("/modes/nope").status_code == 404


def test_timeseries_formats_report_listing_and_delete(client):
    run_id = client.post("/backtests", json={"mode": "pure_lending_eth", "start": "2024-11-01",
                                             "end": "2024-11-08"}).json()["id"]
    wait_for(client, run_id)
    as_json = client.get(f"/backtests/{run_id}/timeseries").json()
    as_csv = pd.read_csv(io.StringIO(client.get(f"/backtests/{run_id}/timeseries?format=csv").text))
    as_parquet = pd.read_parquet(io.BytesIO(client.get(f"/backtests/{run_id}/timeseries?format=parquet").content))
    assert len(as_csv) == len(as_parquet) == len(as_json["data"]["nav"]) == 7 * 24 + 1
    assert np.allclose(as_csv["nav"], as_parquet["nav"], rtol=1e-15)
    html = client.get(f"/backtests/{run_id}/report").text
    assert "Plotly" in html and run_id in html
    page = client.get("/backtests?page=1&page_size=1").json()
    assert page["page_size"] == 1 and len(page["items"]) == 1 and page["total"] >= 1
    assert client.get("/backtests?page=0").status_code == 422
    assert client.delete(f"/backtests/{run_id}").json()["status"] == "deleted"
    assert client.get(f"/backtests/{run_id}").status_code == 404


@pytest.fixture(scope="module")
def long_data(tmp_path_factory):
    """Twenty-five years of synthetic hourly BTC data: a run long enough to be killed mid-way."""
    root = tmp_path_factory.mktemp("long") / "data"
    return SyntheticMarket("2000-01-01", "2025-01-01", start_price={"BTC": 60_000.0}).write(
        root, venues=("binance", "bybit"), spot_venues=("bybit",))


def test_restart_keeps_finished_runs_and_fails_interrupted_ones(tmp_path, long_data):
    server = Server(tmp_path / "jobs.db", long_data, tmp_path / "server.log").start()
    try:
        with server.client(timeout=30) as c:
            short = c.post("/backtests", json={"mode": "btc_basis", "start": "2024-01-01", "end": "2024-02-01"}).json()
            wait_for(c, short["id"])
            before = c.get(f"/backtests/{short['id']}/result").json()
            long = c.post("/backtests", json={"mode": "btc_basis"}).json()
            wait_for(c, long["id"], statuses=("running",), predicate=lambda s: 0 < s["progress"] < 0.5)
            server.kill()
        server = Server(tmp_path / "jobs.db", long_data, tmp_path / "server.log", port=server.port).start()
        with server.client(timeout=30) as c:
            assert c.get(f"/backtests/{short['id']}").json()["status"] == "done"
            assert c.get(f"/backtests/{short['id']}/result").json() == before
            failed = c.get(f"/backtests/{long['id']}").json()
            assert failed["status"] == "failed" and "interrupted" in failed["error"]
            assert c.get(f"/backtests/{long['id']}/result").status_code == 409
    finally:
        server.stop()


def test_delete_cancels_a_running_backtest(tmp_path, long_data):
    server = Server(tmp_path / "cancel.db", long_data, tmp_path / "server.log").start()
    try:
        with server.client(timeout=30) as c:
            run_id = c.post("/backtests", json={"mode": "btc_basis"}).json()["id"]
            wait_for(c, run_id, statuses=("running",), predicate=lambda s: 0 < s["progress"] < 0.5)
            assert c.delete(f"/backtests/{run_id}").json() == {"id": run_id, "status": "cancelled"}
            final = wait_for(c, run_id, statuses=("cancelled", "done", "failed"))
            assert final["status"] == "cancelled" and final["error"] == "cancelled by request"
            assert c.get(f"/backtests/{run_id}/result").status_code == 409
            assert c.delete(f"/backtests/{run_id}").json()["status"] == "deleted"
    finally:
        server.stop()


def test_the_tearsheet_equals_what_the_ticks_give(client):
    """Monthly returns, the worst drawdown and a rolling APY against values computed here from ticks.parquet (the
    share index, 1.0 before the run): each month over the last tick before it; the deepest fall from a peak."""
    run_id = client.post("/backtests", json={"mode": "eth_leveraged", "start": "2024-10-05",
                                             "end": "2025-01-07T00:00:00Z"}).json()["id"]
    assert wait_for(client, run_id)["status"] == "done"
    got = client.get(f"/backtests/{run_id}/tearsheet").json()
    ticks = pd.read_parquet(io.BytesIO(client.get(f"/backtests/{run_id}/timeseries?format=parquet").content))
    index, times = ticks["share_index"].tolist(), [t.strftime("%Y-%m") for t in ticks["timestamp"]]
    before, expected = 1.0, {}
    for k, month in enumerate(times):  # the index at each month's last tick
        if k + 1 == len(times) or times[k + 1] != month:
            expected[month] = index[k] / before - 1.0
            before = index[k]
    assert [m["month"] for m in got["monthly_returns"]] == ["2024-10", "2024-11", "2024-12", "2025-01"]
    for m in got["monthly_returns"]:
        assert m["return"] == pytest.approx(expected[m["month"]], rel=1e-12, abs=1e-15)
    product = 1.0
    for m in got["monthly_returns"]:
        product *= 1.0 + m["return"]
    assert product - 1.0 == pytest.approx(client.get(f"/backtests/{run_id}/result").json()["total_return"],
                                          rel=1e-9)
    peak, peak_at, depth, worst = 1.0, 0, 0.0, None
    for k, v in enumerate(index):
        if v >= peak:
            peak, peak_at = v, k
        elif 1.0 - v / peak > depth:
            depth, worst = 1.0 - v / peak, (peak_at, k)
    dd = got["drawdowns"][0]
    assert dd["depth"] == pytest.approx(depth, rel=1e-12) and depth > 0
    assert dd["depth"] == pytest.approx(client.get(f"/backtests/{run_id}/result").json()["max_drawdown"], rel=1e-12)
    stamp = [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in ticks["timestamp"]]
    assert (dd["start"], dd["trough"]) == (stamp[worst[0]], stamp[worst[1]])
    assert [d["depth"] for d in got["drawdowns"]] == sorted((d["depth"] for d in got["drawdowns"]), reverse=True)
    k = len(index) - 1  # the last tick's 30-day APY: its growth over 720 hours, compounded to a year
    assert got["rolling"]["apy"][k] == pytest.approx((index[k] / index[k - 720]) ** (8760 / 720) - 1.0, rel=1e-9)
    assert got["rolling"]["apy"][719] is None
    assert client.get("/backtests/nope/tearsheet").status_code == 404
    report = client.get(f"/backtests/{run_id}/report").text  # the report's tables show the same figures
    for m in got["monthly_returns"]:
        assert f'<td data-month="{m["month"]}">{m["return"]:.2%}</td>' in report
    assert f'<td data-col="depth">{dd["depth"]:.4%}</td>' in report


def test_compare_two_runs_side_by_side(client):
    """Two runs differing in one config key: NAV indexed to 100 from each share index, the metrics and their
    differences from the first run, the config difference; 1 or 7 runs are refused naming the limit."""
    ids = []
    for capital in (100_000, 250_000):
        ids.append(client.post("/backtests", json={"mode": "pure_lending_usdt", "start": "2024-11-01",
                                                   "end": "2024-11-20T00:00:00Z", "capital": capital}).json()["id"])
    for run_id in ids:
        assert wait_for(client, run_id)["status"] == "done"
    got = client.get("/compare", params={"ids": ids}).json()
    assert got["runs"] == ids
    results = [client.get(f"/backtests/{i}/result").json() for i in ids]
    ticks = pd.read_parquet(io.BytesIO(client.get(f"/backtests/{ids[1]}/timeseries?format=parquet").content))
    assert got["series"][1]["nav_indexed"] == pytest.approx((100 * ticks["share_index"]).tolist(), rel=1e-12)
    rows = {m["metric"]: m for m in got["metrics"]}
    assert rows["final_nav"]["values"] == [r["final_nav"] for r in results]
    assert rows["final_nav"]["difference"][1] == pytest.approx(results[1]["final_nav"] - results[0]["final_nav"])
    assert rows["apy"]["difference"][0] == 0.0
    assert got["config_differences"] == [{"key": "initial_capital", "values": [100_000.0, 250_000.0]}]
    for wrong in ([ids[0]], [ids[0]] * 7):
        r = client.get("/compare", params={"ids": wrong})
        assert r.status_code == 422 and "compare takes 2 to 6 runs" in r.json()["detail"]
    assert client.get("/compare", params={"ids": [ids[0], "nope"]}).status_code == 404
