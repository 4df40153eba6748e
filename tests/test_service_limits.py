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
    server = Server(tmp_path / "busy.duckdb", SAMPLE_DIR, tmp_path / "server.log",
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
            assert codes.count(202) == 2 + 3 and codes.count(429) == 45, codes  # 2 run (serve --workers), 3 wait
            busy = next(r for r in responses if r.status_code == 429)
            assert busy.headers["retry-after"] == "30"
            assert "--queue-sweeps" in busy.json()["detail"] and "5 sweeps" in busy.json()["detail"]
            m = metrics(c)
            running = m[("basiskit_jobs", (("kind", "sweep"), ("status", "running")))]
            queued = m[("basiskit_jobs", (("kind", "sweep"), ("status", "queued")))]
            assert running <= 2 and running + queued <= 5
            ids = [r.json()["id"] for r in responses if r.status_code == 202]
            assert [wait_for(c, i, kind="sweeps", timeout=300)["status"] for i in ids] == ["done"] * 5
            m = metrics(c)
            assert m[("basiskit_jobs", (("kind", "sweep"), ("status", "done")))] == 5
            assert m[("basiskit_sweep_duration_seconds_count", ())] == 5
            # per sweep: its workers and runs
            r = c.post("/sweeps", json=SWEEP | {"workers": 4})
            assert r.status_code == 422 and r.json()["detail"][0]["field"] == "workers"
            assert "limit of 1 worker" in r.json()["detail"][0]["message"]
            r = c.post("/sweeps", json=SWEEP | {"params": ["initial_capital=1000:7000:1000"]})  # 7 runs
            assert r.status_code == 422 and "limit of 6 runs" in r.json()["detail"][0]["message"]
        stop.set()
        poller.join(timeout=10)
        assert len(health) >= 5 and max(health) < 1.0, f"slowest /health {max(health):.3f} s"
    finally:
        stop.set()
        server.stop()


def test_metrics_equal_the_api_for_a_paper_session(tmp_path):
    import subprocess
    import sys

    db = tmp_path / "paper.duckdb"
    r = subprocess.run([sys.executable, "-m", "basiskit.cli", "paper", "run", "eth_leveraged", "--data",
                        str(SAMPLE_DIR), "--start", "2024-11-01", "--end", "2024-11-04", "--session", "m",
                        "--alert-hf", "1.2", "--db", str(db), "--out", str(tmp_path / "runs"), "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    server = Server(db, SAMPLE_DIR, tmp_path / "server.log").start()
    try:
        with server.client(token="read") as c:
            status = c.get("/paper/m").json()
            m = metrics(c)
        assert m[("basiskit_session_health_factor", (("session", "m"),))] == status["risk"]["health_factor"]
        assert m[("basiskit_session_alerts", (("session", "m"),))] == status["alert_count"] >= 1
        assert m[("basiskit_session_last_tick_age_seconds", (("session", "m"), ("status", "done")))] >= 0
        assert status["risk"]["health_factor"] < 1.2
    finally:
        server.stop()
