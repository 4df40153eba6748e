"""Live sessions over HTTP (read-only: sessions run with `basiskit live run`): GET /live, GET /live/{session}
(the last reading: book, NAV, the hour explained and attributed, its plan, recent alerts), GET /live/{session}/orders
(the plan's order intents; nothing is sent), GET /live/{session}/alerts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from ..live.store import LiveStore
from ..paper.status import iso_time
from ..results.db import json_safe
from .models import SESSION_NOT_FOUND, found_or_404
from .paper import OrderIntent


class LiveSessionInfo(BaseModel):
    name: str
    mode: str
    status: str = Field(description="running, idle (its ticks done), stopped or failed")
    last_tick: int | None = None
    nav_usd: float | None = None
    error: str | None = None


class LiveStatus(BaseModel):
    name: str
    mode: str
    status: str
    error: str | None = None
    last: dict[str, Any] | None = Field(None, description="tick, timestamp, block, nav_usd, nav, book, "
                                        "reconciliation (lines, attribution, residual), plan (intents, positions "
                                        "planned from, unmodelled holdings, market sources)")
    alerts: list[dict[str, Any]]
    outbox: dict[str, Any] | None = Field(None, description="the alert webhook's outbox: pending, delivered, "
                                          "retrying, last_error (none without a webhook)")


class LiveAlert(BaseModel):
    tick: int
    kind: str
    message: str
    details: dict[str, Any]


def live_router(store: LiveStore) -> APIRouter:
    router = APIRouter(tags=["live"])
    not_found, guarded = SESSION_NOT_FOUND, found_or_404

    @router.get("/live", response_model=list[LiveSessionInfo])
    def sessions() -> list[dict]:
        return json_safe([{k: v for k, v in s.items() if k not in ("created_at", "updated_at")}
                          for s in store.sessions()])

    @router.get("/live/{session}", response_model=LiveStatus, responses=not_found)
    def status(session: str) -> dict:
        got = guarded(lambda: store.status(session))
        got.pop("accounts", None)  # a path on the operator's machine
        return json_safe(got)

    @router.get("/live/{session}/orders", response_model=list[OrderIntent], responses=not_found)
    def orders(session: str, since: datetime | None = Query(None, description="Only intents at or after (UTC)")):
        when = None if since is None else (since if since.tzinfo else since.replace(tzinfo=UTC))
        rows = guarded(lambda: store.orders(session, since=when))
        return json_safe([{**r, "timestamp": iso_time(r["timestamp"])} for r in rows])

    @router.get("/live/{session}/alerts", response_model=list[LiveAlert], responses=not_found)
    def alerts(session: str) -> list[dict]:
        guarded(lambda: store.status(session))
        return json_safe(store.alerts(session))

    return router
