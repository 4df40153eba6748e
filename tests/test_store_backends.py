"""The operational store on both backends (SQLite in WAL mode, a throw-away PostgreSQL server): runs, sweeps, paper
and live tables round-trip their values; leases, approvals and the journal hold across processes; a process killed
-9 mid-commit leaves every tick whole; writers in several processes never wait a second for one another; an earlier
release's DuckDB file is migrated."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from basiskit.live.execution import Order
from basiskit.live.store import LiveStore
from basiskit.paper.store import PaperStore
from basiskit.results.db import RunStore, StoreBusy, StoreError
from basiskit.results.stress_store import StressStore
from basiskit.sessions.alerts import Alert


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request, tmp_path):
    """Where a store lives: a SQLite file, or a fresh database on the throw-away PostgreSQL server."""
    if request.param == "sqlite":
        return str(tmp_path / "store.db")
    return request.getfixturevalue("pg_database")


def store_of(cls, target, tmp_path, **kw):
    return cls(target, analytics=tmp_path / "analytics", **kw)


def ticks_frame(n: int) -> pd.DataFrame:
    t = pd.date_range("2024-06-01", periods=n, freq="h", tz="UTC")
    nav = 1_000_000.0 + np.cumsum(np.linspace(0.1, 3.3, n))
    return pd.DataFrame({"timestamp": t, "nav": nav, "cum_pnl_funding": nav - 1e6, "qty:aave_v3:aToken:aUSDT":
                         np.full(n, 1e6 / 3)})


def test_a_run_round_trips_its_row_ticks_and_events(target, tmp_path):
    store = store_of(StressStore, target, tmp_path)
    store.create("r1", "eth_basis", "running", "api", request={"mode": "eth_basis"}, config={"strategy": "basis"})
    store.create("r2", "btc_basis", "queued", "cli")
    ticks = ticks_frame(49)
    events = pd.DataFrame({"tick": [0, 7], "timestamp": ticks["timestamp"].iloc[[0, 7]].to_list(),
                           "type": ["execution", "rebalance"], "message": ["open", "rebalance 5%"],
                           "details": [json.dumps({"usd": 1.5}), json.dumps({"why": "drift"})]})
    summary = {"config_hash": "c", "data_hash": "d", "start": "2024-06-01T00:00:00Z", "end": "2024-06-03T00:00:00Z",
               "strategy": "basis", "share_class": "USDT", "wall_seconds": 2.5, "apy": 0.0712, "sharpe": float("inf")}
    store.save_result("r1", summary, ticks, events, {"strategy": "basis"})
    got = store.get("r1")
    assert (got["status"], got["progress"], got["summary"]["apy"], got["summary"]["sharpe"]) == ("done", 1, 0.0712,
                                                                                                  None)
    assert got["window_start"] == datetime(2024, 6, 1, tzinfo=UTC) and got["window_end"].utcoffset().seconds == 0
    assert (got["finished_at"] - got["started_at"]).total_seconds() == pytest.approx(2.5, abs=1e-3)
    assert store.durations("runs") == [pytest.approx(2.5, abs=1e-3)]
    pd.testing.assert_frame_equal(store.ticks("r1"), ticks)
    back = store.events("r1")
    assert back["message"].to_list() == ["open", "rebalance 5%"] and json.loads(back["details"][0]) == {"usd": 1.5}
    runs, total = store.list(status="done")
    assert total == 1 and runs[0]["run_id"] == "r1"
    assert store.count_by_status("runs") == {"done": 1, "queued": 1}
    assert store.mark_interrupted("the service stopped") == 1 and store.get("r2")["status"] == "failed"
    with pytest.raises(StoreError, match="no stored results"):
        store.ticks("r2")
    views = store.sql()
    nav = views.execute("SELECT value FROM tick_values WHERE run_id = 'r1' AND metric = 'nav' ORDER BY tick").fetchall()
    assert [v for (v,) in nav] == ticks["nav"].to_list()
    assert views.execute("SELECT CAST(summary->>'apy' AS DOUBLE) FROM runs WHERE run_id = 'r1'").fetchone()[0] == 0.0712
    store.delete("r1")
    with pytest.raises(StoreError, match="no run 'r1'"):
        store.get("r1")
    assert not store.analytics.has("r1")


def test_a_sweep_round_trips_its_runs(target, tmp_path):
    store = store_of(StressStore, target, tmp_path)
    store.create_sweep("s1", "eth_basis", "api", 2, {"a": 1}, {"b": 2}, [{"key": "x"}], [["2024-06-01", None]],
                       "apy", ["min_health_factor > 1.1"])
    store.sweep_progress("s1", 1, 0)
    assert store.get_sweep("s1")["progress"] == 0.5
    base = {"final_nav": 1.0, "total_return": 0.01, "apy": 0.05, "max_drawdown": -0.002, "sharpe": 3.0,
            "min_health_factor": 1.4, "liquidations": 0, "transaction_costs": 12.5, "rebalances": 3,
            "reconciliation_max_residual": 1e-9, "objective": 0.05, "constraints_met": True, "error": None,
            "command": "basiskit backtest ..."}
    runs = [{**base, "index": i, "config_index": i, "window": ["2024-06-01T00:00:00Z", "2024-07-01T00:00:00Z"],
             "params": {"x": 0.1 * (i + 1)}, "apy": 0.05 + i / 100, "constraints_met": i == 0,
             "min_health_factor": None if i else 1.4} for i in range(2)]
    result = {"runs": runs, "status": "done", "n_runs": 2, "n_failed": 0, "best": {"index": 1}, "wall_seconds": 3.0}
    store.finish_sweep("s1", result, {0: {"apy": 0.05}}, {1: "run-1"})
    got = store.sweep_result("s1")
    assert [r["apy"] for r in got["runs"]] == [0.05, 0.05 + 1 / 100]
    assert [r["constraints_met"] for r in got["runs"]] == [True, False] and got["n_failed"] == 0
    assert got["runs"][1]["min_health_factor"] is None and got["runs"][0]["params"] == {"x": 0.1}
    assert got["runs"][0]["window"] == ["2024-06-01T00:00:00Z", "2024-07-01T00:00:00Z"] and got["best"] == {"index": 1}
    assert store.sweep_runs("s1")["run_id"].to_list() == [None, "run-1"]


def test_paper_ticks_alerts_and_the_outbox_round_trip(target, tmp_path):
    store = store_of(PaperStore, target, tmp_path)
    store.create_session("p", "btc_basis", "replay", 1_717_200_000, 1_717_200_000 + 7200, 3, {"m": 1}, {"feed": "x"})
    with pytest.raises(StoreError, match="already exists"):
        store.create_session("p", "btc_basis", "replay", 0, 1, 1, {}, {})
    t0 = 1_717_200_000
    for k in range(3):
        store.commit_tick("p", k, t0 + 3600 * k, "{}", [1.0, 2.0 + k], 100.0 + k, 100.5 + k, {"hf": 1.5},
                          events=[(k, t0 + 3600 * k, "execution", f"e{k}", {"k": k})] if k else [],
                          orders=[("binance", "BTCUSDT", "sell", 0.1, 60_000.0, "open")] if k == 1 else [],
                          alerts=[(k, t0 + 3600 * k, "stale", f"a{k}", {})] if k == 2 else [],
                          first_event_seq=k - 1, first_order_seq=0, first_alert_seq=0)
    assert store.session("p")["last_tick"] == 2 and store.session("p")["last_ts"] == datetime.fromtimestamp(
        t0 + 7200, UTC)
    assert [r["nav"] for r in store.tick_series("p")] == [100.0, 101.0, 102.0]
    assert [r["side"] for r in store.table("p", "orders")] == ["sell"]
    assert store.counts("p") == {"events": 2, "run_events": 2, "orders": 1, "alerts": 1}
    assert [a["message"] for a in store.undelivered("p")] == ["a2"]
    store.record_attempts("p", 0, 2, "HTTP 500")
    assert store.outbox("p") == {"pending": 1, "delivered": 0, "retrying": 1, "last_error": "HTTP 500"}
    store.mark_delivered("p", 0, 1)
    assert store.outbox("p")["delivered"] == 1 and store.outbox_depth("p") == 0


def _order(cid, k, seq, status="awaiting", safety=False):
    return Order(cid, k, seq, "binance", "ETHUSDT", "sell", 1.5, 3000.0, "open", status, 4500.0, time.time(),
                 "perp", "ETH", None, None, "strategy", safety, 4500.0, time.time())


def test_live_leases_approvals_and_the_journal(target, tmp_path):
    store = store_of(LiveStore, target, tmp_path)
    other = store_of(LiveStore, target, tmp_path)  # another process's handle
    assert store.open_session("a", "eth_basis", "acc.yaml", {}) and other.open_session("b", "eth_basis", "acc.yaml", {})
    assert store.take_leases("a", ["wallet:1:0x1"], "{}", stale_after=30) is None
    key, _, age = other.take_leases("b", ["exchange:binance:k", "wallet:1:0x1"], "{}", stale_after=30)
    assert key == "wallet:1:0x1" and age < 5
    assert other.take_leases("b", ["exchange:binance:k"], "{}", stale_after=30) is None  # all or none: not taken above
    store.commit_tick("a", 0, 1_717_200_000, 19_000_000, 1e6, 1e6, {"risk": {}}, None,
                      [Alert(0, 1_717_200_000, "drift", "NAV drifted", {"usd": 3.0})],
                      orders=[_order("a-0-0", 0, 0), _order("a-0-1", 0, 1, safety=True)])
    assert [(o.client_id, o.safety) for o in other.orders_in("a", ("awaiting",))] == [("a-0-0", False), ("a-0-1", True)]
    with pytest.raises(StoreError, match="a-9-9 not awaiting approval in plan 0"):
        other.decide("a", 0, ["a-9-9"], True, "cli")
    assert other.decide("a", 0, ["a-0-1"], True, "api") == ["a-0-1"]
    assert [o.status for o in store.orders_in("a")] == ["awaiting", "approved"]
    store.order_step("a", "a-0-1", "sent", "tx", {"hash": "0xabc"}, fill=(1.5, 2999.0, 0.3))
    assert store.own_txs("a") == {"abc"}
    assert [(e["step"], e["status"]) for e in other.order_log("a", "a-0-1")] == [("approval", "approved"),
                                                                                 ("tx", "sent")]
    assert store.day_notional("a", 1_717_200_000, ("sent",)) == 4500.0
    other.kill("a", "operator")
    assert store.kill_pending("a") == "operator" and store.is_halted("a") and store.status("a")["halted"] is True
    store.kill_carried_out("a")
    assert other.kill_pending("a") is None
    other.resume("a")
    assert not store.is_halted("a")
    assert store.sessions()[0]["nav_usd"] == 1e6 or store.sessions()[1]["nav_usd"] == 1e6
    assert [a["message"] for a in other.alerts("a")] == ["NAV drifted"]


WRITER = """
import sys, time
from basiskit.paper.store import PaperStore
store = PaperStore(sys.argv[1], analytics=sys.argv[2], lock_timeout=float(sys.argv[5]))
name, n = sys.argv[3], int(sys.argv[4])
store.create_session(name, "btc_basis", "replay", 0, 3600 * n, n, {}, {})
print("ready", flush=True)
t0 = 1_717_200_000
for k in range(n):
    store.commit_tick(name, k, t0 + 3600 * k, "{}", [float(k)], 100.0 + k, 100.0 + k, {},
                      events=[(k, t0 + 3600 * k, "execution", "e", {})], orders=[("v", "i", "buy", 1.0, 2.0, "r")],
                      alerts=[], first_event_seq=k, first_order_seq=k, first_alert_seq=0)
print("done", flush=True)
"""


def _writer(target, tmp_path, name, n, lock_timeout=1.0):
    return subprocess.Popen([sys.executable, "-c", WRITER, target, str(tmp_path / "analytics"), name, str(n),
                             str(lock_timeout)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def test_writers_in_three_processes_never_wait_a_second_for_one_another(target, tmp_path):
    """Each writer gives up (StoreError) after waiting 1 s for the store: none does, and every tick is there."""
    store = store_of(PaperStore, target, tmp_path)
    procs = [_writer(target, tmp_path, f"w{i}", 300) for i in range(3)]
    reads = 0
    while any(p.poll() is None for p in procs):  # a reader meanwhile (as the API does)
        for s in store.sessions():
            reads += s["last_tick"] is not None
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    for i in range(3):
        assert [r["tick"] for r in store.tick_series(f"w{i}")] == list(range(300))
        assert store.counts(f"w{i}") == {"events": 300, "run_events": 300, "orders": 300, "alerts": 0}
    assert reads > 0


def test_a_writer_killed_mid_commit_leaves_every_tick_whole(target, tmp_path):
    store = store_of(PaperStore, target, tmp_path)
    proc = _writer(target, tmp_path, "k", 100_000, lock_timeout=30.0)
    assert proc.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 60
    while (store.session("k")["last_tick"] or 0) < 200 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    last = store.session("k")["last_tick"]
    assert 200 <= last < 100_000
    ticks = [r["tick"] for r in store.tick_series("k")]
    assert ticks == list(range(last + 1))  # no gap
    assert store.counts("k") == {"events": last + 1, "run_events": last + 1, "orders": last + 1, "alerts": 0}


def test_a_store_waits_at_most_its_lock_timeout_for_a_held_write_lock(tmp_path):
    """Another process holding the SQLite file's write lock: a write gives up after lock_timeout with a StoreError
    naming why (a session keeps its state in memory and retries, tests/test_live_session.py)."""
    db = tmp_path / "held.db"
    store = PaperStore(db, lock_timeout=0.3)
    holder = subprocess.Popen([sys.executable, "-c", "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], "
                               "isolation_level=None); c.execute('BEGIN IMMEDIATE'); print('held', flush=True); "
                               "time.sleep(5)", str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        with pytest.raises(StoreError, match="another process is writing"):
            store.create_session("x", "btc_basis", "replay", 0, 1, 1, {}, {})
        waited = time.monotonic() - t0
        assert store.sessions() == []  # reads go on meanwhile
    finally:
        holder.kill()
        holder.wait()
    assert 0.25 <= waited < 3.0
    store.create_session("x", "btc_basis", "replay", 0, 1, 1, {}, {})  # and writes, once it let go


def test_an_earlier_releases_duckdb_store_is_migrated_once_and_kept(tmp_path):
    import duckdb

    db = tmp_path / "old.db"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE runs (run_id VARCHAR PRIMARY KEY, mode VARCHAR, strategy VARCHAR, share_class VARCHAR, "
                "status VARCHAR, source VARCHAR, created_at TIMESTAMPTZ, started_at TIMESTAMPTZ, finished_at "
                "TIMESTAMPTZ, window_start TIMESTAMPTZ, window_end TIMESTAMPTZ, progress DOUBLE, error VARCHAR, "
                "config_hash VARCHAR, data_hash VARCHAR, config JSON, request JSON, summary JSON, columns JSON)")
    con.execute("CREATE TABLE tick_values (run_id VARCHAR, tick INTEGER, timestamp TIMESTAMPTZ, metric VARCHAR, "
                "value DOUBLE)")
    con.execute("CREATE TABLE events (run_id VARCHAR, tick INTEGER, timestamp TIMESTAMPTZ, type VARCHAR, message "
                "VARCHAR, details JSON)")
    con.execute("CREATE TABLE live_sessions (name VARCHAR PRIMARY KEY, mode VARCHAR, accounts VARCHAR, config JSON, "
                "status VARCHAR, created_at TIMESTAMPTZ, updated_at TIMESTAMPTZ, error VARCHAR, webhook VARCHAR)")
    con.execute("INSERT INTO runs VALUES ('old-run', 'eth_basis', 'basis', 'USDT', 'done', 'cli', "
                "'2025-01-01 00:00:00+00', '2025-01-01 00:00:00+00', '2025-01-01 00:00:05+00', "
                "'2024-06-01 00:00:00+00', '2024-06-01 02:00:00+00', 1, NULL, 'c', 'd', '{}', NULL, '{\"apy\": 0.04}', "
                "'[\"timestamp\", \"nav\", \"cum_pnl_funding\"]')")
    navs, funding = [100.0, 100.5, 101.25], [0.0, 0.25, 0.5]
    for k in range(3):
        for metric, v in (("nav", navs[k]), ("cum_pnl_funding", funding[k])):
            con.execute("INSERT INTO tick_values VALUES ('old-run', ?, ?, ?, ?)",
                        [k, datetime(2024, 6, 1, k, tzinfo=UTC), metric, v])
    con.execute("INSERT INTO events VALUES ('old-run', 1, '2024-06-01 01:00:00+00', 'execution', 'open', "
                "'{\"usd\": 2}')")
    con.execute("INSERT INTO live_sessions VALUES ('old-live', 'eth_basis', 'acc.yaml', '{}', 'idle', "
                "'2025-01-01 00:00:00+00', '2025-01-01 00:00:00+00', NULL, NULL)")
    con.close()
    store = LiveStore(db)
    assert (tmp_path / "old.db.duckdb-legacy").exists()
    assert store.get("old-run")["summary"] == {"apy": 0.04}
    ticks = store.ticks("old-run")
    assert ticks.columns.to_list() == ["timestamp", "nav", "cum_pnl_funding"] and ticks["nav"].to_list() == navs
    assert ticks["timestamp"].iloc[2] == pd.Timestamp("2024-06-01T02:00:00Z")
    assert json.loads(store.events("old-run")["details"][0]) == {"usd": 2}
    assert store.status("old-live")["status"] == "idle" and store.status("old-live")["halted"] is False
    again = LiveStore(db)  # opened again: nothing migrated twice
    assert again.list()[1] == 1 and [s["name"] for s in again.sessions()] == ["old-live"]


def test_an_inner_rollback_dooms_the_outer_transaction(target, tmp_path):
    store = store_of(StressStore, target, tmp_path)
    store.create("r", "eth_basis", "running", "cli")
    with pytest.raises(StoreError, match="rolled back"), store.transaction() as con:  # the outer transaction
        con.execute("UPDATE runs SET progress = 0.5 WHERE run_id = 'r'")
        with pytest.raises(ValueError), store.transaction() as inner:  # a failure caught inside
            inner.execute("UPDATE runs SET error = 'x' WHERE run_id = 'r'")
            raise ValueError("inner")
        con.execute("UPDATE runs SET status = 'done' WHERE run_id = 'r'")  # refused: the transaction is gone
    got = store.get("r")
    assert (got["progress"], got["status"], got["error"]) == (0, "running", None)  # nothing of it was written
    store.set_progress("r", 0.25)  # and the store goes on
    assert store.get("r")["progress"] == 0.25


def test_postgresql_waits_at_most_its_lock_timeout_and_reconnects_after_a_restart(pg_database, tmp_path):
    import sqlalchemy as sa

    from basiskit.results.sql import WRITE_LOCK, shown_url

    store = store_of(PaperStore, pg_database, tmp_path, lock_timeout=0.5)
    store.create_session("x", "btc_basis", "replay", 0, 7200, 2, {}, {})
    tick = ("x", 0, 1_717_200_000, "{}", [1.0], 1.0, 1.0, {}, [], [], [], 0, 0, 0)
    engine = sa.create_engine(pg_database, isolation_level="AUTOCOMMIT")
    with engine.connect() as other:
        other.exec_driver_sql("BEGIN")
        other.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")  # as another process's transaction
        t0 = time.monotonic()
        with pytest.raises(StoreBusy, match="another process"):
            store.commit_tick(*tick)
        waited = time.monotonic() - t0
        assert store.session("x")["last_tick"] is None  # reads go on; nothing of the tick was written
        other.exec_driver_sql("ROLLBACK")
    assert 0.45 <= waited < 3.0
    store.commit_tick(*tick)  # once the other let go
    assert store.session("x")["last_tick"] == 0
    with engine.connect() as other:  # the server drops the store's connection (a restart, a failover)
        other.exec_driver_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                              "AND datname = current_database()")
    with pytest.raises(StoreBusy):
        store.sessions()
    assert [s["name"] for s in store.sessions()] == ["x"]  # a new connection
    assert shown_url("postgresql://fund:pw1@db.internal:5433/fund?password=pw2") == \
        "postgresql://fund@db.internal:5433/fund"


def test_a_migration_cut_short_is_done_again_whole_and_the_old_logs_tail_is_kept(tmp_path):
    """An old store whose last commits are only in its write-ahead log (its process ended before a checkpoint),
    holding two paper events of one seq (the race earlier releases allowed): the migration fails whole (nothing
    half-copied), naming the table and the fix, keeps the file and its log, and runs again once the old file is
    mended; the log's rows are there."""
    import sqlite3

    import duckdb

    db = tmp_path / "old.db"
    script = ("import duckdb, os, sys; c = duckdb.connect(sys.argv[1]); c.execute(\"SET checkpoint_threshold = "
              "'10GB'\"); c.execute('CREATE TABLE runs (run_id VARCHAR PRIMARY KEY, mode VARCHAR, status VARCHAR, "
              "summary JSON)'); c.execute('CREATE TABLE paper_events (session VARCHAR, seq INTEGER, message VARCHAR)');"
              " c.execute(\"INSERT INTO runs VALUES ('a', 'eth_basis', 'done', '{\\\"apy\\\": 1}')\"); "
              "c.execute(\"INSERT INTO paper_events VALUES ('p', 0, 'x'), ('p', 0, 'x again')\"); "
              "c.execute('CHECKPOINT'); c.execute(\"INSERT INTO runs VALUES ('b', 'btc_basis', 'done', NULL)\"); "
              "os._exit(0)")  # 'b' only in the log
    subprocess.run([sys.executable, "-c", script, str(db)], check=True, timeout=60)
    assert (tmp_path / "old.db.wal").exists()
    with pytest.raises(StoreError, match=r"paper_events.*old\.db\.duckdb-legacy"):
        RunStore(db)
    legacy = tmp_path / "old.db.duckdb-legacy"
    assert legacy.exists() and (tmp_path / "old.db.duckdb-legacy.wal").exists()
    with sqlite3.connect(str(db), isolation_level=None) as c:
        assert c.execute("SELECT count(*) FROM runs").fetchone()[0] == 0  # nothing half-copied
    with duckdb.connect(str(legacy)) as c:  # the operator mends the old file
        c.execute("DELETE FROM paper_events WHERE message = 'x again'")
    store = RunStore(db)  # opened again: migrated whole
    assert sorted(r["run_id"] for r in store.list()[0]) == ["a", "b"] and store.get("a")["summary"] == {"apy": 1}
    assert RunStore(db).list()[1] == 2  # once


def test_the_default_store_migrates_an_earlier_releases_default_file_beside_it_once_even_after_a_failure(
        tmp_path, monkeypatch):
    """`basiskit.duckdb` in the user's data dir (an earlier release's default store) is read into `basiskit.db`
    beside it and left in place; a first try refused (two paper events of one seq) runs again once it is mended,
    though `basiskit.db` exists by then; after that, never again."""
    import duckdb

    monkeypatch.delenv("BASISKIT_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    from basiskit.results.db import default_db_path

    old = default_db_path().with_name("basiskit.duckdb")
    old.parent.mkdir(parents=True)
    with duckdb.connect(str(old)) as c:
        c.execute("CREATE TABLE runs (run_id VARCHAR PRIMARY KEY, mode VARCHAR, status VARCHAR)")
        c.execute("INSERT INTO runs VALUES ('a', 'eth_basis', 'done')")
        c.execute("CREATE TABLE paper_events (session VARCHAR, seq INTEGER, message VARCHAR)")
        c.execute("INSERT INTO paper_events VALUES ('p', 0, 'x'), ('p', 0, 'x again')")
    with pytest.raises(StoreError, match="paper_events"):
        RunStore()
    assert default_db_path().exists() and old.exists()
    with duckdb.connect(str(old)) as c:
        c.execute("DELETE FROM paper_events WHERE message = 'x again'")
    assert [r["run_id"] for r in RunStore().list()[0]] == ["a"] and old.exists()
    store = RunStore()
    store.delete("a")  # a change of the new store's own: the old file is not read into it again
    assert RunStore().list()[1] == 0
