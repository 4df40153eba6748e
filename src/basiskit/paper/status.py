"""A paper session's status as `paper status` and GET /paper/{session} show it."""

from __future__ import annotations

import json

from ..sessions.times import iso_time
from .store import PaperStore


def session_status(store: PaperStore, name: str, recent_alerts: int = 10) -> dict:
    """What `paper status` and GET /paper/{session} show."""
    row = store.session(name)
    ticks = store.table(name, "ticks", limit=1)
    last = ticks[-1] if ticks else None
    alerts = store.table(name, "alerts")
    positions = json.loads(last["quantities"]) if last else []
    keys = row["options"].get("positions") or []
    return {
        "name": name,
        "mode": row["mode"],
        "status": row["status"],
        "feed": row["feed"],
        "share_class": row["config"]["share_class"],
        "window_start": iso_time(row["window_start"]),
        "window_end": iso_time(row["window_end"]),
        "n_points": row["n_points"],
        "last_tick": row["last_tick"],
        "last_ts": iso_time(row["last_ts"]),
        "nav": last["nav"] if last else None,
        "nav_usd": last["nav_usd"] if last else None,
        "positions": dict(zip(keys, positions, strict=False))
        if keys
        else {str(i): q for i, q in enumerate(positions)},
        "risk": json.loads(last["risk"]) if last else {},
        "alert_count": len(alerts),
        "alerts": [
            {**a, "timestamp": iso_time(a["timestamp"]), "details": json.loads(a["details"])}
            for a in alerts[-recent_alerts:]
        ],
        "error": row["error"],
        "results_dir": row["results_dir"],
        "outbox": store.outbox(name) if row["options"].get("webhook") or row["options"].get("webhook_ref") else None,
    }
