"""Stress tests over HTTP: GET /scenarios (the library), POST /stress (the CLI's options as JSON, library
scenarios and custom shocks; every problem at once), GET /stress, GET /stress/{id} (status),
GET /stress/{id}/result, GET /stress/{id}/report, DELETE /stress/{id}. A stress test runs in a thread of
the service (its grid, if any, in that thread too); its runs and result live in the store."""

from __future__ import annotations

import contextlib
import threading
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ..data.dataset import Dataset
from ..errors import BasiskitError
from ..results.db import StoreError, json_safe
from ..results.html import csp_for
from ..results.stress_report import render_stored
from ..results.stress_store import StressStore, new_stress_id
from ..stress.scenarios import library
from ..stress.service import StressRequest, check, stress_test
from .limits import Admission
from .models import Deleted, ErrorBody, ValidationFailed, refused

INTERRUPTED = "interrupted: the service stopped before the stress test finished"


class ScenarioInfo(BaseModel):
    name: str
    description: str
    shocks: list[dict[str, Any]]


class StressCreated(BaseModel):
    id: str
    status: str


class StressStatus(BaseModel):
    id: str
    mode: str
    status: Literal["running", "done", "failed", "cancelled"]
    created_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    baseline_run_id: str | None = Field(None, description="GET /backtests/{id}/... for its ticks and events")
    scenario_run_id: str | None = None
    grid_sweep_id: str | None = Field(None, description="The liquidation map's sweep (GET /sweeps/{id})")
    request: dict[str, Any] | None = Field(None, description="The stress test as it was asked for")


class StressPage(BaseModel):
    items: list[StressStatus]
    total: int
    page: int
    page_size: int


class StressResult(BaseModel):
    """A stress test's comparison, as `basiskit stress --json` prints it."""

    model_config = ConfigDict(extra="allow")

    stress_id: str
    mode: str
    at: str
    shocks: list[dict[str, Any]]
    baseline: dict[str, Any]
    scenario: dict[str, Any]
    loss_vs_baseline: float
    max_loss_vs_baseline: dict[str, Any]
    time_to_recover_hours: int | None
    liquidations: list[dict[str, Any]]
    triggered_actions: list[dict[str, Any]]
    grid: dict[str, Any] | None = None


class StressManager:
    """Stress tests running in this service, a thread each."""

    def __init__(self, store: StressStore, data_dir: Path, dataset: Dataset):
        self.store, self.data_dir, self.dataset = store, data_dir, dataset
        self.threads: dict[str, threading.Thread] = {}
        self.cancels: dict[str, threading.Event] = {}
        self.lock = threading.Lock()
        self.stopping: str | None = None  # the reason, once the service stops: its tests end failed, not cancelled

    def submit(self, req: StressRequest, admission: Admission, max_runs: int,
               checking: threading.BoundedSemaphore) -> str:
        with admission.claim():  # Busy -> 429 before any work; a refusal leaves again
            with checking:  # ConfigError: every problem, before anything starts (the grid's size first)
                check(req, self.dataset, files=False, max_runs=max_runs, limit_hint="serve --max-sweep-runs")
            stress_id = new_stress_id(req.mode)
            self.store.create_stress(stress_id, req.mode, "api", req.model_dump(mode="json"))

        cancel = threading.Event()

        def work() -> None:
            try:
                with admission.slot(cancel) as started, contextlib.suppress(Exception):  # errors: stored with it
                    if not started or cancel.is_set():  # cancelled while it waited for a slot: nothing ran
                        self.store.fail_stress(stress_id, self.stopping or "cancelled by request before it started",
                                               status="failed" if self.stopping else "cancelled")
                        return
                    stress_test(req, self.data_dir, self.dataset, self.store, "api", None, stress_id=stress_id,
                                files=False, cancelled=cancel.is_set, interrupted=lambda: self.stopping)
            finally:
                with self.lock:
                    self.threads.pop(stress_id, None)
                    self.cancels.pop(stress_id, None)

        thread = threading.Thread(target=work, name=f"stress-{stress_id}", daemon=True)
        with self.lock:
            self.threads[stress_id] = thread
            self.cancels[stress_id] = cancel
        thread.start()
        return stress_id

    def running(self, stress_id: str) -> bool:
        with self.lock:
            return stress_id in self.threads

    def cancel(self, stress_id: str) -> bool:
        """Stop a stress test of this server between its runs (its grid between blocks of runs)."""
        with self.lock:
            event = self.cancels.get(stress_id)
        if event is None:
            return False
        event.set()
        return True

    def shutdown(self) -> None:
        """The service stops: every test of this server ends, failed as interrupted (what it finished is kept)."""
        self.stopping = INTERRUPTED
        with self.lock:
            for event in self.cancels.values():
                event.set()


def stress_router(store: StressStore, state: dict) -> APIRouter:
    router = APIRouter(tags=["stress"])
    not_found = {404: {"model": ErrorBody, "description": "No such stress test"}}

    def status(test: dict) -> StressStatus:
        return StressStatus(id=test["stress_id"], **{k: test.get(k) for k in (
            "mode", "status", "created_at", "finished_at", "error", "baseline_run_id", "scenario_run_id",
            "grid_sweep_id", "request")})

    def get_or_404(stress_id: str) -> dict:
        try:
            return store.get_stress(stress_id)
        except StoreError as exc:
            raise HTTPException(404, str(exc)) from None

    def finished(stress_id: str) -> dict:
        test = get_or_404(stress_id)
        if test["status"] != "done":
            raise HTTPException(409, f"stress test {stress_id} is {test['status']}; its result exists once it is "
                                "done" + (f" (error: {test['error']})" if test["error"] else ""))
        return test

    @router.get("/scenarios", response_model=list[ScenarioInfo])
    def scenarios() -> list[ScenarioInfo]:
        return [ScenarioInfo(name=s.name, description=s.description, shocks=s.shocks) for s in library().values()]

    @router.post("/stress", status_code=202, response_model=StressCreated,
                 responses={422: {"model": ValidationFailed, "description": "Every problem with the request"}})
    def submit(req: StressRequest):
        try:
            stress_id = state["stress"].submit(req, state["admission"]["stress"], state["limits"].max_sweep_runs,
                                               state["checking"])
        except BasiskitError as exc:
            return refused(exc)
        return StressCreated(id=stress_id, status="running")

    @router.get("/stress", response_model=StressPage)
    def list_stress(page: int = Query(1, ge=1), page_size: int = Query(20, ge=1, le=200)) -> StressPage:
        tests, total = store.list_stress(limit=page_size, offset=(page - 1) * page_size)
        return StressPage(items=[status(t) for t in tests], total=total, page=page, page_size=page_size)

    @router.get("/stress/{stress_id}", response_model=StressStatus, responses=not_found)
    def get_stress(stress_id: str) -> StressStatus:
        return status(get_or_404(stress_id))

    conflict = {409: {"model": ErrorBody, "description": "The stress test has not finished"}, **not_found}

    @router.get("/stress/{stress_id}/result", response_model=StressResult, responses=conflict)
    def result(stress_id: str) -> JSONResponse:
        return JSONResponse(json_safe(finished(stress_id)["result"]))

    @router.get("/stress/{stress_id}/report", response_class=HTMLResponse, responses=conflict)
    def report(stress_id: str) -> HTMLResponse:
        page = render_stored(store, finished(stress_id)["result"])
        return HTMLResponse(page, headers={"Content-Security-Policy": csp_for(page)})

    @router.delete("/stress/{stress_id}", response_model=Deleted, responses={
        409: {"model": ErrorBody, "description": "The stress test runs in another process"}, **not_found})
    def delete(stress_id: str) -> Deleted:
        """A running stress test of this server is cancelled (what it finished is kept); another is deleted."""
        test = get_or_404(stress_id)
        if state["stress"].cancel(stress_id):
            return Deleted(id=stress_id, status="cancelled")
        if test["status"] == "running":
            raise HTTPException(409, f"stress test {stress_id} is running in another process (source "
                                f"{test.get('source')!r}); stop it there, then delete it")
        store.delete_stress(stress_id)
        return Deleted(id=stress_id, status="deleted")

    return router
