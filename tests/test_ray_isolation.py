"""Ray under the API: the server starts no Ray of its own unless told (`serve --ray-local`: Ray listens on every
interface); one it starts runs its driver in a child process, so a Ray failure, even its driver killed -9, fails the
sweep with what happened while the API goes on serving and sweeping."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from basiskit.data.dataset import SAMPLE_DIR
from server import Server, wait_for

pytest.importorskip("ray")

SWEEP = {"mode": "usdt_market_neutral", "workers": 1, "backend": "ray",
         "params": ["initial_capital=100000:2000000:100000"]}  # 20 runs of the sample's whole window


def process_named(name: str, timeout: float = 120.0) -> int:
    """The pid of the process whose command is `name` (from /proc), once there is one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if (entry / "comm").read_text().strip() == name:
                        return int(entry.name)
                except OSError:
                    continue
        time.sleep(0.2)
    raise TimeoutError(f"no {name} process")


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_a_server_starts_no_ray_unless_told(tmp_path):
    server = Server(tmp_path / "noray.db", SAMPLE_DIR, tmp_path / "server.log").start()
    try:
        with server.client() as c:
            r = c.post("/sweeps", json=SWEEP)
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "backend"
        assert "--ray-local" in r.json()["detail"][0]["message"] and "--ray-address" in r.json()["detail"][0]["message"]
    finally:
        server.stop()


def test_a_ray_driver_killed_mid_sweep_fails_the_sweep_never_the_api(tmp_path):
    server = Server(tmp_path / "ray.db", SAMPLE_DIR, tmp_path / "server.log", extra=("--ray-local",)).start()
    try:
        with server.client() as c:
            r = c.post("/sweeps", json=SWEEP)
            assert r.status_code == 202, r.text
            sweep_id = r.json()["id"]
            wait_for(c, sweep_id, kind="sweeps", statuses=("running",), predicate=lambda s: s["done"] >= 1,
                     timeout=180)
            driver = parent_of(process_named("gcs_server"))  # the child process that started this Ray
            assert driver != server.proc.pid and parent_of(driver) == server.proc.pid
            os.kill(driver, signal.SIGKILL)  # as a crash of Ray's driver would
            failed = wait_for(c, sweep_id, kind="sweeps", timeout=120)
            assert failed["status"] == "failed" and "Ray failed" in failed["error"], failed
            assert c.get("/health").status_code == 200 and server.proc.poll() is None
            local = c.post("/sweeps", json=SWEEP | {"backend": "local", "params": ["initial_capital=100000,200000"]})
            assert wait_for(c, local.json()["id"], kind="sweeps", timeout=180)["status"] == "done"
    finally:
        server.stop()
