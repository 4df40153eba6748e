"""What one server takes on: jobs running and waiting by kind (then 429 with Retry-After), per-sweep limits
named in the refusal, /health answering throughout; /metrics parsed by prometheus-client's own parser."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from prometheus_client.parser import text_string_to_metric_families

from basiskit.data.dataset import SAMPLE_DIR
from server import Server, wait_for

SWEEP = {"mode": "pure_lending_usdt", "start": "2024-11-01", "end": "2024-11-20", "workers": 1,
         "params": ["initial_capital=1000,2000,3000,4000"]}


def metrics(client) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics: (name, sorted labels) -> value."""
    text = client.get("/metrics").text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_fifty_sweeps_at_once_run_queue_or_get_429(tmp_path):
    server = Server(tmp_path / "busy.db", SAMPLE_DIR, tmp_path / "server.log",
                    extra=("--queue-sweeps", "3", "--max-workers", "1", "--max-sweep-runs", "6")).start()
    health: list[float] = []
    stop = threading.Event()

    def poll_health() -> None:
        with server.client(token=None, timeout=10) as c:
            while not stop.is_set():
                t0 = time.perf_counter()
                assert c.get("/health").status_code == 200
                health.append(time.perf_counter() - t0)
                time.sleep(0.05)

    poller = threading.Thread(target=poll_health, daemon=True)
    poller.start()
    try:
        with server.client() as c, ThreadPoolExecutor(50) as pool:
            responses = list(pool.map(lambda _: c.post("/sweeps", json=SWEEP), range(50)))
            codes = [r.status_code for r in responses]
            accepted = codes.count(202)
            m = metrics(c)
            done = m[("basiskit_jobs", (("kind", "sweep"), ("status", "done")))]
            running = m[("basiskit_jobs", (("kind", "sweep"), ("status", "running")))]
            queued = m[("basiskit_jobs", (("kind", "sweep"), ("status", "queued")))]
            # 2 run (serve --workers), 3 wait, the rest get 429; a sweep that ended during the burst frees its place
            # (the store no longer slows each request down), so at most 5 more than have finished were accepted
            assert 5 <= accepted <= 5 + done and codes.count(429) == 50 - accepted >= 30, codes
            assert running <= 2 and running + queued <= 5 and running + queued + done <= accepted  # (not one snapshot)
            busy = next(r for r in responses if r.status_code == 429)
            assert busy.headers["retry-after"] == "30"
            assert "--queue-sweeps" in busy.json()["detail"] and "5 sweeps" in busy.json()["detail"]
            ids = [r.json()["id"] for r in responses if r.status_code == 202]
            assert [wait_for(c, i, kind="sweeps", timeout=300)["status"] for i in ids] == ["done"] * accepted
            m = metrics(c)
            assert m[("basiskit_jobs", (("kind", "sweep"), ("status", "done")))] == accepted
            assert m[("basiskit_sweep_duration_seconds_count", ())] == accepted
            # per sweep: its workers and runs
            r = c.post("/sweeps", json=SWEEP | {"workers": 4})
            assert r.status_code == 422 and r.json()["detail"][0]["field"] == "workers"
            assert "limit of 1 worker" in r.json()["detail"][0]["message"]
            r = c.post("/sweeps", json=SWEEP | {"params": ["initial_capital=1000:7000:1000"]})  # 7 runs
            assert r.status_code == 422 and "limit of 6 runs" in r.json()["detail"][0]["message"]
        deadline = time.monotonic() + 10
        while len(health) < 5 and time.monotonic() < deadline:  # (the burst may be over in well under a second)
            time.sleep(0.05)
        stop.set()
        poller.join(timeout=10)
        assert len(health) >= 5 and max(health) < 1.0, f"slowest /health {max(health):.3f} s"
    finally:
        stop.set()
        server.stop()


def test_metrics_equal_the_api_for_a_running_paper_replay(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    db = tmp_path / "paper.db"
    env = {k: v for k, v in os.environ.items() if k != "BASISKIT_DATA"}
    proc = subprocess.Popen([sys.executable, "-m", "basiskit.cli", "paper", "run", "eth_leveraged", "--data",
                             str(SAMPLE_DIR), "--start", "2024-11-01", "--end", "2024-11-20", "--session", "m",
                             "--alert-hf", "1.2", "--speed", "0.25", "--db", str(db), "--out", str(tmp_path / "runs")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    server = Server(db, SAMPLE_DIR, tmp_path / "server.log").start()
    try:
        with server.client(token="read") as c:
            compared = 0
            deadline = time.monotonic() + 120
            while compared < 1 and time.monotonic() < deadline:
                before = c.get("/paper/m")
                if before.status_code != 200 or before.json()["last_tick"] is None:
                    time.sleep(0.2)
                    continue
                m = metrics(c)
                after = c.get("/paper/m").json()
                if before.json() != after or after["status"] != "running":
                    continue  # a tick landed in between: read again
                assert m[("basiskit_session_health_factor", (("session", "m"),))] == after["risk"]["health_factor"]
                assert m[("basiskit_session_alerts", (("session", "m"),))] == after["alert_count"] >= 1
                age = m[("basiskit_session_last_tick_age_seconds", (("session", "m"), ("status", "running")))]
                assert 0 <= age < 30
                compared += 1
                time.sleep(0.3)
            assert compared == 1, "no quiet moment to compare in 2 minutes"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        server.stop()
