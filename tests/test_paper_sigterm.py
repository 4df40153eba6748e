"""A service manager's stop: SIGTERM at any point of a tick (its commit included) leaves the session `stopped`
with every committed tick intact, and it resumes to the backtest's result, bit for bit. Many real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from basiskit.data.dataset import SAMPLE_DIR
from basiskit.paper.store import PaperStore

WINDOW = ["--start", "2024-11-01", "--end", "2024-11-15"]
N_POINTS = 14 * 24 + 1


def cli(*args: str, **kwargs) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "BASISKIT_DATA"}
    return subprocess.Popen([sys.executable, "-m", "basiskit.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True, **kwargs)


def last_tick(db) -> int:
    try:
        tick = PaperStore(db, lock_timeout=1.0).session("t")["last_tick"]
        return -1 if tick is None else tick
    except Exception:  # not created yet, or the session holds the file for a moment
        return -1


def test_sigterm_at_any_point_stops_cleanly_and_resumes_bit_for_bit(tmp_path):
    db, runs = tmp_path / "db.db", tmp_path / "runs"
    common = ["--db", str(db), "--out", str(runs)]
    # alerts on every small net-delta move: many ticks commit events, alerts and orders in one transaction; 5
    # simulated hours a second: the test sees progress only when the session lets go of the file (about once a
    # second, later on a loaded machine: up to ~100 hours a stop were seen at 10 hours a second), so at 40 a loaded
    # machine ran the whole window before the third stop
    start = ["paper", "run", "usdt_market_neutral", "--data", str(SAMPLE_DIR), *WINDOW, "--session", "t",
             "--alert-net-delta", "0.0005", "--speed", "5", *common]
    stops = 0
    for i in range(4):
        args = start if i == 0 else ["paper", "resume", "t", "--speed", "5", "--db", str(db)]
        before = last_tick(db)
        proc = cli(*args)
        deadline = time.monotonic() + 60
        while proc.poll() is None and last_tick(db) <= before and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.03 + 0.083 * i)  # a different point of a tick each time
        if proc.poll() is not None:  # it reached the end first, or failed: which one, said
            _, stderr = proc.communicate(timeout=60)
            assert proc.returncode == 0 and PaperStore(db).session("t")["status"] == "done", (i, stderr[-3000:])
            break
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
        stored = PaperStore(db).session("t")
        if proc.returncode != 130 and stored["status"] == "done":
            break  # the signal met a session exiting at the end of its window
        assert proc.returncode == 130, (i, stderr[-3000:])
        assert stored["status"] == "stopped", stderr
        ticks = [t["tick"] for t in PaperStore(db).table("t", "ticks")]
        assert ticks == list(range(len(ticks)))  # every committed tick, no gap, none doubled
        stops += 1
    assert stops >= 3
    if PaperStore(db).session("t")["status"] != "done":
        resumed = cli("paper", "resume", "t", "--speed", "0", "--json", "--db", str(db))
        _, err = resumed.communicate(timeout=300)
        assert resumed.returncode == 0, err
    results_dir = PaperStore(db).session("t")["results_dir"]
    backtest = cli("backtest", "usdt_market_neutral", "--json", "--data", str(SAMPLE_DIR), *WINDOW, *common)
    b_out, b_err = backtest.communicate(timeout=300)
    assert backtest.returncode == 0, b_err
    r, b = json.loads(Path(results_dir, "summary.json").read_text()), json.loads(b_out)
    assert r["final_nav"] == b["final_nav"] and r["pnl_attribution"] == b["pnl_attribution"]
    ticks = PaperStore(db).table("t", "ticks")
    assert [t["tick"] for t in ticks] == list(range(N_POINTS))
    expected = pd.read_parquet(f"{b['results_dir']}/ticks.parquet")["nav"].to_numpy()
    assert np.array_equal(np.array([t["nav"] for t in ticks]), expected)
