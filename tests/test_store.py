"""Stored runs: the CLI writes every run to the store (SQLite, the runs' ticks and events as Parquet); list, show,
compare, export, sql and report read it."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys

import pandas as pd
import pytest

from basiskit.data.dataset import SAMPLE_DIR


def basiskit(*args):
    p = subprocess.run([sys.executable, "-m", "basiskit.cli", *args], capture_output=True, text=True,
                       env=dict(os.environ), timeout=300)
    assert p.returncode == 0, p.stderr
    return p.stdout


@pytest.fixture
def two_runs(tmp_path):
    out = tmp_path / "runs"
    a = json.loads(basiskit("backtest", "eth_basis", "--json", "--out", str(out), "--data", str(SAMPLE_DIR)))
    b = json.loads(basiskit("backtest", "pure_lending_usdt", "--json", "--out", str(out), "--data", str(SAMPLE_DIR),
                            "--set", "costs.enabled=false"))
    return a, b, out


def test_runs_are_queryable_with_plain_sql(two_runs):
    a, b, _ = two_runs
    con = sqlite3.connect(f"file:{os.environ['BASISKIT_DB']}?mode=ro", uri=True)  # the store itself, read-only
    rows = con.execute("SELECT run_id, mode, status, source, json_extract(summary, '$.final_nav') FROM runs "
                       "ORDER BY created_at").fetchall()
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [(a["run_id"], "eth_basis", "done", "cli"),
                                                         (b["run_id"], "pure_lending_usdt", "done", "cli")]
    assert rows[0][4] == a["final_nav"]
    con.close()
    # DuckDB over the runs' Parquet files and the store's tables (`basiskit runs sql`)
    got = json.loads(basiskit("runs", "sql", "--json", "SELECT r.mode, count(*) AS n, max(t.value) AS last FROM "
                              "tick_values t JOIN runs r USING (run_id) WHERE t.metric = 'nav' AND t.tick = "
                              f"{a['steps']} GROUP BY r.mode ORDER BY r.mode"))
    assert got == [{"mode": "eth_basis", "n": 1, "last": a["final_nav"]},
                   {"mode": "pure_lending_usdt", "n": 1, "last": b["final_nav"]}]
    nav = json.loads(basiskit("runs", "sql", "--json", f"SELECT value FROM tick_values WHERE run_id = '{a['run_id']}' "
                              "AND metric = 'nav' ORDER BY tick"))
    assert len(nav) == a["steps"] + 1 and nav[-1]["value"] == a["final_nav"]
    funding = json.loads(basiskit("runs", "sql", "--json", "SELECT sum(value) AS f FROM tick_values WHERE run_id = "
                                  f"'{a['run_id']}' AND metric LIKE 'funding:%'"))[0]["f"]
    assert funding == pytest.approx(a["pnl_attribution"]["funding"], rel=1e-12)
    apy = json.loads(basiskit("runs", "sql", "--json", f"SELECT CAST(summary->>'apy' AS DOUBLE) AS apy FROM runs "
                              f"WHERE run_id = '{b['run_id']}'"))[0]["apy"]
    assert apy == b["apy"]
    # one SELECT, over the store's own files only
    for query, said in ((f"COPY (SELECT * FROM runs) TO '{two_runs[2]}/out.csv'", "one SELECT statement"),
                        ("SELECT 1; SELECT 2", "not 2 statement(s)"),
                        ("SELECT * FROM read_text('/etc/hostname')", "Permission Error")):
        p = subprocess.run([sys.executable, "-m", "basiskit.cli", "runs", "sql", query], capture_output=True,
                           text=True, env=dict(os.environ), timeout=120)
        assert p.returncode == 2 and said in p.stderr and "Traceback" not in p.stderr, (query, p.stderr)
    assert not (two_runs[2] / "out.csv").exists()


def test_list_show_compare_export(two_runs, tmp_path):
    a, b, out = two_runs
    listing = basiskit("runs", "list", "--mode", "eth_basis")
    assert a["run_id"][:20] in listing and b["run_id"][:20] not in listing
    shown = json.loads(basiskit("runs", "show", b["run_id"]))
    assert shown["status"] == "done" and shown["summary"]["final_nav"] == b["final_nav"]
    compared = basiskit("runs", "compare", a["run_id"], b["run_id"])
    assert "PnL funding" in compared and "PnL supply_yield" in compared
    basiskit("runs", "export", a["run_id"], "-o", str(tmp_path / "exp"))
    exported = pd.read_parquet(tmp_path / "exp" / a["run_id"] / "ticks.parquet")
    original = pd.read_parquet(out / a["run_id"] / "ticks.parquet")
    pd.testing.assert_frame_equal(exported.reset_index(drop=True), original, check_dtype=False)


def test_report_is_self_contained_and_shows_the_runs_numbers(two_runs, tmp_path):
    a, _, _ = two_runs
    path = tmp_path / "r.html"
    basiskit("report", a["run_id"], "-o", str(path))
    html = path.read_text()
    assert "<script src=" not in html and "plotly" in html.lower()  # JS embedded, nothing fetched
    summary = json.loads(re.search(r'<script type="application/json" id="summary">(.*?)</script>', html, re.S)
                         .group(1).replace("&quot;", '"'))
    assert summary["final_nav"] == a["final_nav"] and summary["run_id"] == a["run_id"]
    assert f"{a['apy']:.4%}" in html
    for title in ("NAV and share index, with the run&#x27;s events", "Underwater", "Rolling 30-day APY",
                  "PnL attribution (USD)", "Cumulative PnL attribution", "Transaction costs by kind",
                  "Exposure per venue and instrument", "margin ratio per venue", "Net delta per asset",
                  "Cumulative funding by venue", "Ethena sUSDe"):
        assert title in html, title


def test_unknown_run_is_a_clear_error():
    p = subprocess.run([sys.executable, "-m", "basiskit.cli", "runs", "show", "nope"], capture_output=True,
                       text=True, env=dict(os.environ))
    assert p.returncode == 1 and "no run 'nope'" in p.stderr
