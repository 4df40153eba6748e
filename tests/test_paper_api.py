"""Paper sessions over HTTP: what a stored session holds, read by a real server on 127.0.0.1."""

from __future__ import annotations

from basiskit.data.dataset import SAMPLE_DIR, Dataset
from basiskit.engine.run import Backtest
from basiskit.engine.runconfig import load_run_config
from basiskit.paper.session import PaperOptions, PaperSession
from basiskit.paper.store import PaperStore
from server import Server


def test_the_api_serves_a_sessions_status_ticks_orders_and_alerts(tmp_path):
    db = tmp_path / "api.db"
    window = {"start": "2024-11-01T00:00:00Z", "end": "2024-11-08T00:00:00Z"}
    cfg = load_run_config("usdt_market_neutral", [], [], window, Dataset(SAMPLE_DIR))
    PaperSession(PaperStore(db), "mn", cfg, PaperOptions(data=str(SAMPLE_DIR), out=str(tmp_path / "runs"),
                                                          thresholds={"liq_distance": 0.6}), quiet=True).run()
    expected = Backtest(cfg, Dataset(SAMPLE_DIR)).run()
    server = Server(db, SAMPLE_DIR, tmp_path / "server.log").start()
    try:
        with server.client(timeout=30) as c:
            sessions = c.get("/paper").json()
            assert [(s["name"], s["mode"], s["status"], s["last_tick"]) for s in sessions] == \
                [("mn", "usdt_market_neutral", "done", 7 * 24)]
            status = c.get("/paper/mn").json()
            assert status["nav"] == expected.nav[-1] and status["last_ts"] == "2024-11-08T00:00:00Z"
            assert set(status["risk"]["margin_ratio"]) == {"binance", "bybit", "okx"} - {
                v for v, w in cfg.hedge_allocation.items() if w == 0}
            ticks = c.get("/paper/mn/ticks", params={"after": 100}).json()
            assert [t["tick"] for t in ticks] == list(range(101, 7 * 24 + 1))
            assert [t["nav"] for t in ticks] == expected.nav[101:].tolist()
            orders = c.get("/paper/mn/orders").json()
            executions = [e for e in expected.events.events if e.type in ("execution", "transfer")]
            # each order says what it answers: the entry deploys the idle deposit
            assert len(orders) == len(executions) and orders[0]["reason"].startswith("idle_cash ")
            perp = [o for o in orders if "Perp" in o["instrument"]]
            assert perp and all(o["side"] == "sell" and o["price"] > 0 for o in perp[:1])
            later = c.get("/paper/mn/orders", params={"since": "2024-11-01T01:00:00Z"}).json()
            assert all(o["timestamp"] >= "2024-11-01T01:00:00Z" for o in later) and len(later) < len(orders)
            alerts = c.get("/paper/mn/alerts").json()  # every venue is closer than 60% to liquidation
            assert {a["details"]["venue"] for a in alerts if a["kind"] == "liq_distance"} == set(
                status["risk"]["liq_distance"])
            missing = c.get("/paper/nope")
            assert missing.status_code == 404 and "no paper session 'nope'" in missing.json()["detail"]
    finally:
        server.stop()
