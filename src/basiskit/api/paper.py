"""Paper sessions over HTTP (read-only: sessions are started with `basiskit paper run`): GET /paper, GET
/paper/{session} (status), GET /paper/{session}/ticks (NAV and risk, hour by hour), GET
/paper/{session}/orders (order intents), GET /paper/{session}/alerts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from ..paper.status import session_status
from ..paper.store import PaperStore
from ..results.db import json_safe
from ..sessions.times import iso_time
from .models import SESSION_NOT_FOUND, found_or_404


class PaperSessionInfo(BaseModel):
    name: str
    mode: str
    status: str = Field(description="running, done, stalled (a recorded feed's hole), stopped or failed")
    feed: str
    window_start: str | None = None
    window_end: str | None = None
    last_tick: int | None = None
    last_ts: str | None = None
    n_points: int


class PaperStatus(BaseModel):
    """Positions, NAV in both units, risk (health factor, margin ratios, liquidation distances, net delta),
    the latest alerts and the last tick."""

    model_config = ConfigDict(extra="allow")

    name: str
    status: str
    nav: float | None = None
    nav_usd: float | None = None
    positions: dict[str, float]
    risk: dict[str, Any]
    alerts: list[dict[str, Any]]


class PaperTick(BaseModel):
    tick: int
    timestamp: str
    nav: float
    nav_usd: float
    risk: dict[str, Any]


class OrderIntent(BaseModel):
    seq: int
    tick: int
    timestamp: str
    venue: str
    instrument: str
    side: str
    size: float
    price: float | None = None
    reason: str


class PaperAlert(BaseModel):
    seq: int
    tick: int
    timestamp: str
    kind: str
    message: str
    details: dict[str, Any]


def paper_router(store: PaperStore) -> APIRouter:
    router = APIRouter(tags=["paper"])
    not_found, guarded = SESSION_NOT_FOUND, found_or_404

    def stamped(rows: list[dict]) -> list[dict]:
        return [{**r, "timestamp": iso_time(r["timestamp"])} for r in rows]

    @router.get("/paper", response_model=list[PaperSessionInfo])
    def sessions() -> list[PaperSessionInfo]:
        return [PaperSessionInfo(**{**s, **{k: iso_time(s[k]) for k in ("window_start", "window_end", "last_ts")}})
                for s in store.sessions()]

    @router.get("/paper/{session}", response_model=PaperStatus, responses=not_found)
    def status(session: str) -> dict:
        return json_safe(guarded(lambda: session_status(store, session)))

    @router.get("/paper/{session}/ticks", response_model=list[PaperTick], responses=not_found)
    def ticks(session: str, after: int = Query(-1, ge=-1, le=10**7, description="Only ticks after this one")):
        return json_safe(guarded(lambda: store.tick_series(session, after)))

    @router.get("/paper/{session}/orders", response_model=list[OrderIntent], responses=not_found)
    def orders(session: str, since: datetime | None = Query(None, description="Only orders at or after (UTC)")):
        when = None if since is None else (since if since.tzinfo else since.replace(tzinfo=UTC))
        return stamped(guarded(lambda: store.table(session, "orders", since=when)))

    @router.get("/paper/{session}/alerts", response_model=list[PaperAlert], responses=not_found)
    def alerts(session: str) -> list[dict]:
        rows = stamped(guarded(lambda: store.table(session, "alerts")))
        return [{**a, "details": json.loads(a["details"])} for a in rows]

    return router
