"""GET /metrics: the service in the Prometheus text format, read from the store and the live job counts at
each scrape (so the figures are the API's own)."""

from __future__ import annotations

import math
import time

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily

from ..live.store import LiveStore
from ..paper.status import session_status
from ..paper.store import PaperStore
from ..results.stress_store import StressStore

KINDS = {"backtest": ("runs", "started_at"), "sweep": ("sweeps", "started_at"), "stress": ("stress_tests", None)}
DURATION_BUCKETS = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, math.inf)


class ServiceCollector:
    def __init__(self, store: StressStore, paper: PaperStore, state: dict, live: LiveStore | None = None):
        self.store, self.paper, self.state, self.live = store, paper, state, live

    def collect(self):
        jobs = GaugeMetricFamily("basiskit_jobs", "Jobs by kind and status (stored; queued and running are live)",
                                 labels=["kind", "status"])
        for kind, (table, _) in KINDS.items():
            for status, n in self.store.count_by_status(table).items():
                if status not in ("queued", "running"):
                    jobs.add_metric([kind, status], n)
        for kind, admission in self.state.get("admission", {}).items():
            jobs.add_metric([kind, "running"], admission.active)
            jobs.add_metric([kind, "queued"], admission.waiting)
        yield jobs
        for kind, (table, started) in KINDS.items():
            if started is None:
                continue
            durations = self.store.durations(table, started)
            h = HistogramMetricFamily(f"basiskit_{kind}_duration_seconds", f"Wall time of finished {kind}s")
            counts = [sum(d <= b for d in durations) for b in DURATION_BUCKETS]
            h.add_metric([], [(("+Inf" if math.isinf(b) else str(b)), c) for b, c in zip(DURATION_BUCKETS, counts,
                                                                                          strict=True)],
                         sum_value=sum(durations))
            yield h
        yield from self._sessions()
        if self.live is not None:
            yield from self._live()

    def _sessions(self):
        age = GaugeMetricFamily("basiskit_session_last_tick_age_seconds", "Seconds since the session's last tick "
                                "was stored", labels=["session", "status"])
        hf = GaugeMetricFamily("basiskit_session_health_factor", "Aave health factor at the last tick",
                               labels=["session"])
        margin = GaugeMetricFamily("basiskit_session_margin_ratio", "Perp margin ratio at the last tick",
                                   labels=["session", "venue"])
        liq = GaugeMetricFamily("basiskit_session_liq_distance", "Fall to liquidation at the last tick",
                                labels=["session", "venue"])
        alerts = GaugeMetricFamily("basiskit_session_alerts", "Alerts the session raised", labels=["session"])
        outbox = GaugeMetricFamily("basiskit_webhook_outbox_depth", "Alerts not yet delivered to the webhook",
                                   labels=["session"])
        now = time.time()
        for s in self.paper.sessions():
            name = s["name"]
            st = session_status(self.paper, name)
            updated = self.paper.last_tick_time(name)
            if updated is not None:
                age.add_metric([name, st["status"]], now - updated)
            risk = st["risk"] or {}
            if isinstance(risk.get("health_factor"), int | float):
                hf.add_metric([name], risk["health_factor"])
            for venue, v in (risk.get("margin_ratio") or {}).items():
                margin.add_metric([name, venue], v)
            for venue, v in (risk.get("liq_distance") or {}).items():
                liq.add_metric([name, venue], v)
            alerts.add_metric([name], st["alert_count"])
            outbox.add_metric([name], self.paper.outbox_depth(name))
        yield from (age, hf, margin, liq, alerts, outbox)


    def _live(self):
        age = GaugeMetricFamily("basiskit_live_last_reading_age_seconds", "Seconds since the live session last "
                                "committed a reading of the accounts", labels=["session", "status"])
        nav = GaugeMetricFamily("basiskit_live_nav_usd", "NAV of the real accounts at the last reading (USD)",
                                labels=["session"])
        unexplained = GaugeMetricFamily("basiskit_live_unexplained_usd", "What no venue explained in the last "
                                        "hour (USD)", labels=["session"])
        hf = GaugeMetricFamily("basiskit_live_health_factor", "Aave's health factor of each wallet at the last "
                               "reading", labels=["session", "account"])
        alerts = GaugeMetricFamily("basiskit_live_alerts", "Alerts the live session raised", labels=["session"])
        now = time.time()
        for g in self.live.gauges():
            name = g["name"]
            age.add_metric([name, g["status"]], now - g["updated"])
            if g["nav_usd"] is not None:
                nav.add_metric([name], g["nav_usd"])
            if g["unexplained_usd"] is not None:
                unexplained.add_metric([name], g["unexplained_usd"])
            for account, value in g["health_factors"].items():
                hf.add_metric([name, account], value)
            alerts.add_metric([name], g["alerts"])
        yield from (age, nav, unexplained, hf, alerts)


def metrics_text(store: StressStore, paper: PaperStore, state: dict, live: LiveStore | None = None) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceCollector(store, paper, state, live))
    return generate_latest(registry)
