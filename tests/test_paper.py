"""Paper trading: a replay through the live path equals the backtest, survives a SIGKILL, refuses bad
rows, stops at a hole beyond its limit, and sends its alerts to a webhook."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from basiskit.config import preset_names
from basiskit.data.dataset import Dataset
from basiskit.engine.run import Backtest
from basiskit.engine.runconfig import load_run_config
from basiskit.errors import RunError
from basiskit.paper.session import PaperOptions, PaperSession
from basiskit.paper.store import PaperStore
from conftest import edit_series
from fuzzing import MODES, build_and_run, run_draws

FUZZ = int(os.environ.get("BASISKIT_FUZZ_EXAMPLES", "0"))  # `make fuzz` draws more random configs
STATUS: dict[str, int] = {}  # what the random configs' backtests did (ran, stopped), for the closing note
WINDOW = {"start": "2024-06-01T00:00:00Z", "end": "2024-09-01T00:00:00Z"}
# every mode's parity: a month around the crash of 2024-08-05 (rebalances, de-levers, funding flips)
PARITY = {"start": "2024-07-25T00:00:00Z", "end": "2024-08-24T00:00:00Z"}


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "BASISKIT_DATA"}
    return subprocess.run([sys.executable, "-m", "basiskit.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def paper(cfg, root: Path, tmp_path: Path, name: str = "s", **options):
    store = PaperStore(tmp_path / "paper.db")
    session = PaperSession(store, name, cfg, PaperOptions(data=str(root), out=str(tmp_path / "runs"), **options),
                           quiet=True)
    return session.run().result, store


def events_of(result, skip=("feed_refused",)):
    return [(e.k, e.type, e.message, e.details) for e in result.events.events if e.type not in skip]


@pytest.mark.parametrize("mode", preset_names())
def test_a_replay_equals_the_backtest_in_every_mode(full_data, tmp_path, mode):
    ds = Dataset(full_data)
    cfg = load_run_config(mode, [], [], PARITY, ds)
    expected = Backtest(cfg, Dataset(full_data)).run()
    got, _ = paper(cfg, full_data, tmp_path)
    assert len(got.nav) == 30 * 24 + 1
    assert np.array_equal(got.nav, expected.nav)  # every tick's NAV, bit for bit
    assert np.array_equal(got.attribution, expected.attribution)  # every attribution type, every hour
    assert np.array_equal(got.quantities, expected.quantities)
    assert events_of(got) == events_of(expected)  # every event the backtest logs, in its order
    assert got.reported_types == expected.reported_types


def test_the_cli_replay_summary_equals_the_backtest(full_data, tmp_path):
    common = ["--data", str(full_data), "--start", "2024-07-15", "--end", "2024-09-01", "--capital", "250000",
              "--db", str(tmp_path / "db.db"), "--out", str(tmp_path / "runs"), "--json"]
    a = cli("paper", "run", "eth_basis", "--feed", "replay", "--speed", "0", "--session", "cli", *common)
    assert a.returncode == 0, a.stderr
    b = cli("backtest", "eth_basis", *common)
    pa, ba = json.loads(a.stdout), json.loads(b.stdout)
    for key in ("final_nav", "final_nav_usd", "pnl_attribution", "pnl_attribution_usd", "executions", "steps",
                "data_warnings", "config_hash", "data_hash"):
        assert pa[key] == ba[key], key
    assert pa["session"] == "cli" and Path(pa["results_dir"], "ticks.parquet").is_file()
    again = cli("paper", "run", "eth_basis", "--session", "cli", *common)
    assert again.returncode == 1 and "paper session 'cli' already exists" in again.stderr


def test_a_session_killed_mid_run_resumes_bit_for_bit(full_data, tmp_path):
    db, runs = tmp_path / "db.db", tmp_path / "runs"
    common = ["--data", str(full_data), "--start", "2024-07-01", "--end", "2024-08-12", "--db", str(db),
              "--out", str(runs)]
    n_points = 42 * 24 + 1
    env = {k: v for k, v in os.environ.items() if k != "BASISKIT_DATA"}
    proc = subprocess.Popen([sys.executable, "-m", "basiskit.cli", "paper", "run", "usdt_market_neutral",
                             "--speed", "100", "--session", "kill", "--json", *common],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:  # until it has committed a few hundred ticks
        try:
            if (PaperStore(db).session("kill")["last_tick"] or 0) >= 300:
                break
        except Exception:  # not created yet, or the session holds the file for a moment
            pass
        time.sleep(0.2)
    assert proc.poll() is None, "the session ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    stored = PaperStore(db).session("kill")
    assert stored["status"] == "running"  # nobody had the chance to say otherwise
    assert 100 < stored["last_tick"] < n_points - 100  # ~85-100 hours a second for a few seconds
    resumed = cli("paper", "resume", "kill", "--speed", "0", "--json", "--db", str(db))
    assert resumed.returncode == 0, resumed.stderr
    backtest = cli("backtest", "usdt_market_neutral", "--json", *common[:-4], "--db", str(db), "--out", str(runs))
    r, b = json.loads(resumed.stdout), json.loads(backtest.stdout)
    assert r["final_nav"] == b["final_nav"]
    assert r["pnl_attribution"] == b["pnl_attribution"] and r["executions"] == b["executions"]
    ticks = PaperStore(db).table("kill", "ticks")
    assert [t["tick"] for t in ticks] == list(range(n_points))  # no gap, nothing doubled
    expected = pd.read_parquet(Path(b["results_dir"]) / "ticks.parquet")["nav"].to_numpy()
    assert np.array_equal(np.array([t["nav"] for t in ticks]), expected)
    assert PaperStore(db).session("kill")["status"] == "done"


PERP = "perp/binance_btcusdt_1h"


def test_a_zero_price_is_refused_with_an_alert_and_never_reaches_the_book(full_data, tmp_path):
    zero, removed = tmp_path / "zero", tmp_path / "removed"
    shutil.copytree(full_data, zero)
    shutil.copytree(full_data, removed)
    at = "2024-07-10T05:00:00Z"
    edit_series(zero, PERP, lambda df: df.assign(open=np.where(df["timestamp"] == at, 0.0, df["open"])))
    edit_series(removed, PERP, lambda df: df[df["timestamp"] != at])
    cfg = load_run_config("btc_basis", [], [], WINDOW, Dataset(full_data))
    got, store = paper(cfg, zero, tmp_path, name="zero")
    # Refusing the row is the row never having existed: the backtest without it, tick for tick.
    expected = Backtest(cfg, Dataset(removed)).run()
    assert np.array_equal(got.nav, expected.nav) and np.array_equal(got.attribution, expected.attribution)
    refused = [e for e in got.events.events if e.type == "feed_refused"]
    assert [(e.details["series"], e.details["at"]) for e in refused] == [(PERP, at), (PERP, at)]  # open, then close
    assert "open is 0.0; a price, index or rate must be > 0" in refused[0].message
    alerts = store.table("zero", "alerts")
    assert [a["kind"] for a in alerts] == ["feed_refused", "feed_refused"]
    assert str(alerts[0]["timestamp"]).startswith("2024-07-10 05:00:00")


def test_a_hole_beyond_the_limit_stops_a_replay_before_it_trades_on_stale_data(full_data, tmp_path):
    root = tmp_path / "hole"
    shutil.copytree(full_data, root)
    ts = pd.date_range("2024-07-01T00:00:00Z", periods=30, freq="h").strftime("%Y-%m-%dT%H:%M:%SZ")
    # 30 h without a BTC price anywhere the marks could look (both perps and the spot); the limit is 24 h
    for series in (PERP, "perp/bybit_btcusdt_1h", "spot/bybit_btcusdt_1h"):
        edit_series(root, series, lambda df: df[~df["timestamp"].isin(ts)])
    db = tmp_path / "db.db"
    r = cli("paper", "run", "btc_basis", "--data", str(root), "--start", "2024-06-01", "--end", "2024-09-01",
            "--session", "hole", "--db", str(db), "--out", str(tmp_path / "runs"), "--json")
    assert r.returncode == 1
    # The last bar before the hole is labelled 2024-06-30T23:00 (its close seen at 07-01T00:00). At 07-01T23:00
    # there is still no bar: the hole between labels is at least 25 h, over the limit, and the perps are stale.
    assert ("perp/binance_btcusdt_1h: no observation for 24 h after 2024-06-30T23:00:00Z" in r.stderr
            and "the limit is 24 h (data.staleness_hours.bar)" in r.stderr), r.stderr
    assert "ALERT hole 2024-07-01T23:00:00Z staleness" in r.stderr
    store = PaperStore(db)
    s = store.session("hole")
    assert s["status"] == "stalled" and "24 h" in s["error"]
    stale_k = (pd.Timestamp("2024-07-01T23:00:00Z") - pd.Timestamp("2024-06-01T00:00:00Z")) // pd.Timedelta("1h")
    assert s["last_tick"] == stale_k - 1  # the stale hour was never traded
    assert [a["kind"] for a in store.table("hole", "alerts")] == ["staleness", "staleness"]  # each perp
    resumed = cli("paper", "resume", "hole", "--db", str(db))  # the recorded hole cannot fill: same stop
    assert resumed.returncode == 1 and "no observation for 24 h" in resumed.stderr
    assert PaperStore(db).session("hole")["last_tick"] == stale_k - 1


class _Hook(BaseHTTPRequestHandler):
    received: list[dict] = []
    fail_first = 1  # the first POST gets a 503: the sender must retry

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if _Hook.fail_first:
            _Hook.fail_first -= 1
            self.send_response(503)
        else:
            _Hook.received.append(body)
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_the_webhook_receives_the_alerts_of_a_health_factor_breach(full_data, tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/alerts"
        db = tmp_path / "db.db"
        r = cli("paper", "run", "eth_leveraged", "--data", str(full_data), "--start", "2024-06-01",
                "--end", "2024-06-08", "--session", "hf", "--alert-hf", "1.2", "--alert-webhook", url,
                "--db", str(db), "--out", str(tmp_path / "runs"), "--json")
        assert r.returncode == 0, r.stderr
    finally:
        server.shutdown()
    # eMode: HF at the target LTV = liquidation threshold / LTV = 0.95 / 0.85 (preset and aave_v3_risk.json).
    hf_alerts = [a for a in _Hook.received if a["kind"] == "health_factor"]
    assert len(hf_alerts) == 1  # once per crossing: the HF stays under 1.2 all week
    a = hf_alerts[0]
    assert a["session"] == "hf" and a["timestamp"] == "2024-06-01T00:00:00Z" and a["details"]["limit"] == 1.2
    assert a["details"]["health_factor"] == pytest.approx(0.95 / 0.85, rel=2e-3)
    stored = PaperStore(db).table("hf", "alerts")
    assert [s["kind"] for s in stored] == [x["kind"] for x in _Hook.received]
    assert "ALERT hf 2024-06-01T00:00:00Z health_factor: health factor 1.11" in r.stderr


def test_bad_paper_options_are_refused_naming_the_option(tmp_path):
    db = ["--db", str(tmp_path / "db.db")]
    r = cli("paper", "run", "pure_lending_usdt", "--session", "a/b", *db)
    assert r.returncode == 2 and "--session: 'a/b'" in r.stderr
    r = cli("paper", "run", "pure_lending_usdt", "--feed", "live", *db)
    assert r.returncode == 2 and "--rpc-url: None -> a live session reads Aave v3" in r.stderr
    r = cli("paper", "run", "pure_lending_usdt", "--speed", "-1", *db)
    assert r.returncode == 2 and "--speed: -1.0" in r.stderr
    r = cli("paper", "run", "pure_lending_usdt", "--start", "2023-01-01", "--end", "2023-02-01", *db)
    assert r.returncode == 1 and "is not covered by the data" in r.stderr  # the replay checks the window first
    r = cli("paper", "status", "nope", *db)
    assert r.returncode == 1 and "no paper session 'nope'" in r.stderr
    r = cli("paper", "orders", "nope", "--since", "yesterday-ish", *db)
    assert r.returncode == 2 and "--since: 'yesterday-ish'" in r.stderr
    r = cli("data", "fetch", "--out", str(tmp_path / "nowhere"))
    assert r.returncode == 1 and "MANIFEST.json: not found" in r.stderr


@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_replay_equals_the_backtest_for_random_configs(full_data, tmp_path, mode):
    """Random configs, windows (cut to 10 days: a replay commits every hour), capitals tiny to huge and
    deposits and withdrawals: whatever the backtest does (run, refuse, stop), the replay does the same."""
    from hypothesis import HealthCheck, given, settings

    dataset = Dataset(full_data)
    seen: list[int] = [0]
    drawn: list[int] = [0]
    refusals: list[str] = []

    @given(d=run_draws(mode))
    @settings(max_examples=FUZZ or 2, deadline=None, database=None, derandomize=not FUZZ,
              suppress_health_check=list(HealthCheck))
    def check(d):
        end = min(d.end, d.start + timedelta(days=10))
        drawn[0] += 1
        expected = build_and_run(d, dataset, end)
        if expected.status in ("refused", "refused_data"):
            refusals.append(expected.message.splitlines()[1][:200])
            return
        seen[0] += 1
        STATUS[expected.status] = STATUS.get(expected.status, 0) + 1
        cfg = load_run_config(d.mode, sets=[f"{k}={v}" for k, v in d.sets.items()], extra=d.extra(end),
                              dataset=dataset)
        name = f"p{seen[0]}"
        if expected.status == "stopped":  # a withdrawal it cannot meet stops both, with the same words
            with pytest.raises(RunError) as stopped:
                paper(cfg, full_data, tmp_path, name=name)
            assert str(stopped.value) == expected.message
            return
        got, _ = paper(cfg, full_data, tmp_path, name=name)
        want = expected.result
        where = " ".join(d.cli_args())
        assert np.array_equal(got.nav, want.nav), where
        assert np.array_equal(got.attribution, want.attribution), where
        assert events_of(got) == events_of(want), where

    check()
    assert seen[0] >= drawn[0] / 2, f"{mode}: only {seen[0]} of {drawn[0]} random configs ran: {refusals}"


def teardown_module(module) -> None:
    if FUZZ:
        print(f"\nreplay parity over random configs: {STATUS}")


def test_a_session_never_exits_over_a_store_another_process_holds(full_data, tmp_path):
    """Another process holds the store's write lock for 3 s mid-run: the session (which waits at most 1 s per write)
    keeps each hour in memory, says so at once and tries again; it ends with every hour committed once, the same
    NAV as the backtest, and one stored store_unavailable alert."""
    db, flag = tmp_path / "db.db", tmp_path / "held"
    common = ["--data", str(full_data), "--start", "2024-07-01", "--end", "2024-07-05", "--db", str(db),
              "--out", str(tmp_path / "runs"), "--json"]
    env = {k: v for k, v in os.environ.items() if k != "BASISKIT_DATA"}
    proc = subprocess.Popen([sys.executable, "-m", "basiskit.cli", "paper", "run", "pure_lending_usdt", "--speed", "10",
                             "--session", "held", *common], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until it has committed a few hours
        try:
            if (PaperStore(db).session("held")["last_tick"] or 0) >= 5:
                break
        except Exception:  # not created yet
            pass
        time.sleep(0.05)
    holder = subprocess.Popen([sys.executable, "-c", "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], "
                               "isolation_level=None); c.execute('BEGIN IMMEDIATE'); open(sys.argv[2], 'w').close(); "
                               "time.sleep(3)", str(db), str(flag)])
    out, errs = proc.communicate(timeout=120)
    holder.wait(timeout=30)
    assert flag.exists() and proc.returncode == 0, errs
    assert "store_unavailable: the store cannot be used" in errs and "another process is writing" in errs
    n = 4 * 24 + 1
    store = PaperStore(db)
    assert [t["tick"] for t in store.table("held", "ticks")] == list(range(n))  # each hour once, none lost
    stored = [a for a in store.table("held", "alerts") if a["kind"] == "store_unavailable"]
    assert len(stored) == 1 and json.loads(stored[0]["details"])["down_s"] >= 1.5
    backtest = cli("backtest", "pure_lending_usdt", *common)
    assert json.loads(out)["final_nav"] == json.loads(backtest.stdout)["final_nav"]
