"""Under load: a freshly started server takes 24 concurrent backtests across six modes (its registry
and caches complete before it answers), finishes them all, gives identical requests identical results,
and keeps /health answering within a second meanwhile."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from basiskit.data.dataset import SAMPLE_DIR
from server import Server, wait_for

MODES = ["btc_basis", "eth_basis", "eth_staking_only", "eth_leveraged", "usdt_market_neutral",
         "usdt_market_neutral_no_leverage"]
VOLATILE = {"run_id", "wall_seconds", "engine_seconds", "steps_per_second", "data_source", "results_dir"}


def test_24_concurrent_backtests_on_a_fresh_server(tmp_path):
    server = Server(tmp_path / "load.db", SAMPLE_DIR, tmp_path / "server.log").start()
    bodies = [{"mode": mode, "start": "2024-11-01", "end": "2024-12-01"} for mode in MODES for _ in range(4)]
    health: list[float] = []
    stop = threading.Event()

    def poll_health() -> None:
        with server.client(timeout=10) as c:
            while not stop.is_set():
                t0 = time.perf_counter()
                assert c.get("/health").status_code == 200
                health.append(time.perf_counter() - t0)
                time.sleep(0.05)

    try:
        poller = threading.Thread(target=poll_health, daemon=True)
        poller.start()
        with server.client(timeout=60) as c, ThreadPoolExecutor(24) as pool:
            responses = list(pool.map(lambda b: c.post("/backtests", json=b), bodies))
            assert [r.status_code for r in responses] == [202] * 24, [r.text for r in responses if r.status_code != 202]
            ids = [r.json()["id"] for r in responses]
            finals = [wait_for(c, run_id, timeout=300) for run_id in ids]
            assert [f["status"] for f in finals] == ["done"] * 24, [f["error"] for f in finals]
            results = [{k: v for k, v in c.get(f"/backtests/{i}/result").json().items() if k not in VOLATILE}
                       for i in ids]
            navs = [c.get(f"/backtests/{i}/timeseries").json()["data"]["nav"] for i in ids]
        stop.set()
        poller.join(timeout=10)
        for m in range(len(MODES)):  # the four identical requests of each mode
            group = range(4 * m, 4 * m + 4)
            assert all(results[i] == results[4 * m] for i in group)
            assert all(navs[i] == navs[4 * m] for i in group)
        assert results[0]["mode"] == "btc_basis" and results[-1]["mode"] == "usdt_market_neutral_no_leverage"
        assert len(health) >= 5 and max(health) < 1.0, f"slowest /health {max(health):.3f} s"
    finally:
        stop.set()
        server.stop()
