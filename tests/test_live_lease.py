"""A session's lease: its heartbeat goes on while the session holds the store for an order's burst; a dead
session is shown dead whatever its status says; the lock files live in one folder per machine; an order's burst
lets go of the store while a transaction is mined."""

from __future__ import annotations

import time

from basiskit.live import lease as lease_module
from basiskit.live.lease import Lease, lock_free
from basiskit.live.store import LiveStore


def _lease(tmp_path, beat=0.1):
    store = LiveStore(tmp_path / "runs.db")
    store.open_session("s", "eth_leveraged", "accounts.yaml", {})
    return store, Lease(store, "s", ["wallet:1:0xabc"], beat)


def test_the_heartbeat_goes_on_while_the_session_holds_the_store(tmp_path):
    store, lease = _lease(tmp_path)
    lease.start()
    try:
        with store.held():  # an order's burst on the session's own connection, for 10 heartbeats
            start = lease.beats
            time.sleep(1.0)
            beats = lease.beats - start
        assert beats >= 5  # 10 were due: none waited for the burst to end
        assert store.liveness("s")["heartbeat_age_s"] < 0.5 and not store.liveness("s")["dead"]
    finally:
        lease.release()


def test_a_session_whose_process_stopped_beating_is_dead_whatever_its_status(tmp_path):
    store, lease = _lease(tmp_path, beat=2.0)  # a beat a loaded machine keeps (dead is told by the lock below)
    lease.start()
    store.kill("s", "test")
    store.resume("s")  # a kill lifted while it runs: still running
    assert store.status("s")["status"] == "running"
    lease._stop.set()  # the process stops beating (its heartbeat row stays, as after kill -9) ...
    lease._thread.join()
    lease._unlock()  # ... and the kernel frees its locks
    time.sleep(0.05)
    assert store.status("s")["status"] == "dead"
    store.release_leases("s")  # a run that ends lets go of its heartbeat: not running, so not dead
    assert store.liveness("s") == {"heartbeat_age_s": None, "dead": False}


def test_the_lock_folder_is_one_per_machine_and_the_holder_names_it(tmp_path, monkeypatch):
    monkeypatch.delenv("BASISKIT_LEASE_DIR", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))  # a shell's own runtime dir is not used
    where = lease_module.lease_dir()
    assert "xdg" not in str(where) and where.name == "basiskit-leases"
    monkeypatch.setenv("BASISKIT_LEASE_DIR", str(tmp_path / "leases"))
    store, lease = _lease(tmp_path)
    lease.start()
    try:
        assert store.liveness("s")["holder"]["leases"] == str(tmp_path / "leases")  # where `live status` looks
        assert lock_free("wallet:1:0xabc", tmp_path / "leases") is False
    finally:
        lease.release()
    assert lock_free("wallet:1:0xabc", tmp_path / "leases") is True


def test_an_order_burst_never_keeps_another_process_from_the_store(tmp_path):
    """Inside an order's burst (store.held), between its steps, another process writes at once, twice (a busy timeout
    of 0: it would fail if anything held the store's write lock), and the burst goes on after."""
    import subprocess
    import sys

    store, _ = _lease(tmp_path)
    probe = [sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], timeout=0, "
             "isolation_level=None); c.execute('BEGIN IMMEDIATE'); c.execute(\"UPDATE live_sessions SET error = "
             "'probe' WHERE name = 's'\"); c.execute('COMMIT')", str(store.path)]
    with store.held():
        store.order_step("s", "x", "sending", "request", {})
        held = subprocess.run(probe, capture_output=True, text=True, timeout=60)
        free = subprocess.run(probe, capture_output=True, text=True, timeout=60)
        store.order_step("s", "x", "sending", "tx", {"hash": "0x1"})
    assert held.returncode == 0, held.stderr
    assert free.returncode == 0, free.stderr
    assert [e["step"] for e in store.order_log("s", "x")] == ["request", "tx"]
