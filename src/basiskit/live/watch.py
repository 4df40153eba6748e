"""The heartbeat watch: a session whose process is gone cannot say so itself, so `basiskit serve` watches every live
session's heartbeat and raises one `heartbeat_lost` alert (into the session's alerts: the dashboard, /metrics and
its webhook's outbox) when a running session has had none for 2 heartbeats; once again after it came back."""

from __future__ import annotations

import logging
import threading
import time

from ..sessions.alerts import Alert

log = logging.getLogger("basiskit.live")
WATCH_SECONDS = 5.0


class HeartbeatWatch:
    def __init__(self, store, every: float = WATCH_SECONDS, on_alert=None):
        self.store, self.every, self.on_alert = store, every, on_alert
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> list[tuple[str, Alert]]:
        """One look at every session: the alerts raised (session, alert)."""
        raised = []
        for s in self.store.sessions():
            name = s["name"]
            alive = self.store.liveness(name)
            if alive["dead"] and self.store.mark_dead_alerted(name):
                age = alive["heartbeat_age_s"]
                holder = alive.get("holder") or {}
                alert = Alert(s["last_tick"] or 0, int(time.time()), "heartbeat_lost",
                              f"live session {name!r} has had no heartbeat for {age:.0f} s: its process "
                              f"(pid {holder.get('pid')} on {holder.get('host')}) is gone; nothing is read or sent "
                              "until it is restarted (its supervisor restarts it; `basiskit live kill` cancels its "
                              "open exchange orders meanwhile)", {"heartbeat_age_s": age, "holder": holder})
                self.store.add_alerts(name, [alert])
                raised.append((name, alert))
                if self.on_alert is not None:
                    self.on_alert(name)
        return raised

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.check()
            except Exception:  # noqa: BLE001 (a busy store: the next look tries again)
                log.exception("heartbeat watch")

    def start(self) -> HeartbeatWatch:
        self._thread = threading.Thread(target=self._run, name="heartbeat-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
