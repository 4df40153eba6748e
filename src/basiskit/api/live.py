"""Live sessions over HTTP (sessions run with `basiskit live run`): GET /live, GET /live/{session} (the last
reading: book, NAV, the hour explained and attributed, its plan, recent alerts), GET /live/{session}/orders (the
plan's orders and how far each went), GET /live/{session}/alerts; and an operator's controls (POST, the `trade`
role): /live/{session}/approve and /reject (orders awaiting approval), /kill and /resume."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from ..live.store import LiveStore
from ..results.db import StoreError, json_safe
from ..sessions.times import iso_time
from .models import SESSION_NOT_FOUND, found_or_404
from .paper import OrderIntent


class LiveSessionInfo(BaseModel):
    name: str
    mode: str
    status: str = Field(description="running, idle (its ticks done), stopped, failed, halted, or dead (running "
                        "but without a heartbeat: its process is gone)")
    last_tick: int | None = None
    nav_usd: float | None = None
    error: str | None = None


class LiveStatus(BaseModel):
    name: str
    mode: str
    status: str
    error: str | None = None
    heartbeat_age_s: float | None = Field(None, description="seconds since the session's last heartbeat (none: it "
                                          "is not running under a lease)")
    execute: str = Field("off", description="off (intents only), confirm (orders wait for approval) or auto")
    halted: bool = Field(False, description="killed: nothing is sent until resumed")
    kill_reason: str | None = None
    last: dict[str, Any] | None = Field(None, description="tick, timestamp, block, nav_usd, nav, book, "
                                        "reconciliation (lines, attribution, residual), plan (intents, positions "
                                        "planned from, unmodelled holdings, market sources)")
    alerts: list[dict[str, Any]]
    outbox: dict[str, Any] | None = Field(None, description="the alert webhook's outbox: pending, delivered, "
                                          "retrying, last_error (none without a webhook)")


class LiveOrder(OrderIntent):
    """An order intent of a live session and how far it went."""

    client_id: str | None = Field(None, description="the id the venue knows the order by")
    status: str | None = Field(None, description="intent, manual, awaiting, approved, rejected, expired, blocked, "
                               "halted, sending, open, filled, partial, unfilled, refused, lost, cancelled")
    notional_usd: float | None = None
    counted_usd: float | None = Field(None, description="what it counts against live.max_day_usd (a flash-loan "
                                      "bundle once, at its net exposure change; its steps 0)")
    action: str | None = Field(None, description="what it does, typed (execution/intents.py ACTIONS)")
    asset: str | None = None
    to_asset: str | None = None
    bundle: str | None = Field(None, description="the flash-loan bundle it belongs to")
    trigger: str | None = Field(None, description="the trigger it answers (health_factor, idle_cash, exit ...)")
    safety: bool | None = Field(None, description="a safety action: never blocked by max_order_usd or max_day_usd")
    note: str | None = Field(None, description="why it is blocked or left to the operator")
    filled: float | None = None
    average: float | None = None
    fee: float | None = None


class LiveReading(BaseModel):
    tick: int
    timestamp: str
    block: int | None = None
    nav_usd: float | None = None
    nav: float | None = None


class Decision(BaseModel):
    plan: int = Field(ge=0, description="the plan (its tick) the orders belong to: approving it never approves "
                      "another plan's")
    ids: list[str] | None = Field(None, max_length=1000, description="client ids of that plan, as shown; none: "
                                  "every order of that plan awaiting approval")


class Decided(BaseModel):
    decided: list[str]
    status: str


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

    @router.get("/live/{session}/orders", response_model=list[LiveOrder], responses=not_found)
    def orders(session: str, since: datetime | None = Query(None, description="Only intents at or after (UTC)")):
        when = None if since is None else (since if since.tzinfo else since.replace(tzinfo=UTC))
        rows = guarded(lambda: store.orders(session, since=when))
        return json_safe([{**r, "timestamp": iso_time(r["timestamp"])} for r in rows])

    @router.get("/live/{session}/ticks", response_model=list[LiveReading], responses=not_found)
    def readings(session: str) -> list[dict]:
        """The session's NAV so far: every reading, oldest first."""
        guarded(lambda: store.status(session))
        return json_safe([{**r, "timestamp": iso_time(r["timestamp"])} for r in store.readings(session)])

    conflict = {**not_found, 409: {"description": "an id is not awaiting approval"}}

    def decide(session: str, body: Decision, approve: bool) -> Decided:
        guarded(lambda: store.status(session))
        try:
            done = store.decide(session, body.plan, body.ids, approve, "api")
        except StoreError as exc:
            raise HTTPException(409, str(exc)) from None
        return Decided(decided=done, status="approved" if approve else "rejected")

    @router.post("/live/{session}/approve", response_model=Decided, responses=conflict)
    def approve(session: str, body: Decision) -> Decided:
        return decide(session, body, True)

    @router.post("/live/{session}/reject", response_model=Decided, responses=conflict)
    def reject(session: str, body: Decision) -> Decided:
        return decide(session, body, False)

    @router.post("/live/{session}/kill", response_model=LiveSessionInfo, responses=not_found)
    def kill(session: str) -> dict:
        guarded(lambda: store.kill(session, "POST /live/{session}/kill"))
        return sessions_by_name()[session]

    @router.post("/live/{session}/resume", response_model=LiveSessionInfo, responses=not_found)
    def resume(session: str) -> dict:
        guarded(lambda: store.resume(session))
        return sessions_by_name()[session]

    def sessions_by_name() -> dict:
        return {s["name"]: json_safe({k: v for k, v in s.items() if k not in ("created_at", "updated_at")})
                for s in store.sessions()}

    @router.get("/live/{session}/alerts", response_model=list[LiveAlert], responses=not_found)
    def alerts(session: str) -> list[dict]:
        guarded(lambda: store.status(session))
        return json_safe(store.alerts(session))

    return router
