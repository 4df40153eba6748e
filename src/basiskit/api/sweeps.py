"""Sweeps over HTTP: POST /sweeps (the CLI's options as JSON, every problem at once), GET /sweeps,
GET /sweeps/{id} (status, done/total), GET /sweeps/{id}/result, GET /sweeps/{id}/report,
DELETE /sweeps/{id} (cancels a running sweep, else deletes it). Each sweep runs in a thread of the
service with its own pool of worker processes; its runs and result live in the store."""

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
from ..errors import BasiskitError, ConfigError
from ..results.db import StoreError, json_safe
from ..results.html import csp_for
from ..results.sweep_report import CAPITAL, capacity
from ..results.sweep_report import render as render_sweep
from ..results.sweep_store import SweepStore
from ..sweeps.plan import SweepPlan, prepare
from ..sweeps.service import execute_sweep, register_sweep
from ..sweeps.spec import SweepRequest
from .limits import Admission, ServiceLimits
from .models import Deleted, ErrorBody, ValidationFailed, refused

INTERRUPTED = "interrupted: the service stopped before the sweep finished"


class SweepCreated(BaseModel):
    id: str
    status: str
    n_runs: int


class SweepStatus(BaseModel):
    id: str
    mode: str
    status: Literal["running", "done", "failed", "cancelled"]
    done: int
    total: int
    progress: float
    n_failed: int
    created_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    request: dict[str, Any] | None = Field(None, description="The sweep as it was asked for")


class SweepPage(BaseModel):
    items: list[SweepStatus]
    total: int
    page: int
    page_size: int


class SweepResult(BaseModel):
    """A sweep's result, as `basiskit sweep --json` prints it."""

    model_config = ConfigDict(extra="allow")

    sweep_id: str
    mode: str
    status: str
    n_runs: int
    n_failed: int
    objective: str
    params: list[str]
    runs: list[dict[str, Any]]
    best: dict[str, Any] | None
    capacity: list[dict[str, Any]] | None = Field(None, description=(
        "when initial_capital is a param: per capital (ascending) the mean APY, APY net of exit, benchmark APY, "
        "transaction costs, rate impact and exit cost as shares of the capital, liquidity-constrained hours; "
        "`refused` where the Aave reserves could not lend it, `below_benchmark` from the first capital under the "
        "benchmark"))


class SweepManager:
    """Sweeps running in this service: a thread each, a cancel flag each, live progress."""

    def __init__(self, store: SweepStore, data_dir: Path, dataset: Dataset, workers: int):
        self.store, self.data_dir, self.dataset, self.workers = store, data_dir, dataset, workers
        self.live: dict[str, tuple[threading.Event, list[int]]] = {}  # id -> (cancel, [done, total])
        self.lock = threading.Lock()
        self.stopping: str | None = None  # the reason, once the service stops: its sweeps end failed, not cancelled

    def submit(self, req: SweepRequest, limits: ServiceLimits, admission: Admission, ray_address: str | None,
               checking: threading.BoundedSemaphore) -> tuple[str, int]:
        with admission.claim():  # Busy -> 429 before any work; a refusal leaves again
            with checking:
                plan = self._check(req, limits, ray_address)
            sweep_id = register_sweep(plan, self.store, "api")
        return self._start(plan, sweep_id, admission)

    def _check(self, req: SweepRequest, limits: ServiceLimits, ray_address: str | None) -> SweepPlan:
        problems = []
        if req.backend == "ray" and ray_address is None and not limits.ray_local:
            problems.append(("backend", "ray", "this server starts no Ray of its own (Ray listens on every network "
                             "interface, whatever address it is given): start it with --ray-address of a Ray cluster "
                             "you run, or with --ray-local to let it start one on this machine (guarded only by "
                             "Ray's token, ~/.ray/auth_token)"))
        if req.workers is not None and req.workers > limits.max_workers:
            problems.append(("workers", req.workers, f"above this server's limit of {limits.max_workers} worker "
                             "processes per sweep (serve --max-workers)"))
        req = req.model_copy(update={"workers": req.workers or min(self.workers, limits.max_workers),
                                     "ray_address": ray_address})
        if problems:
            raise ConfigError(problems)
        # the run count is checked first, from the request's text; then every problem at once (ConfigError)
        plan = prepare(req, self.dataset, max_runs=limits.max_sweep_runs, limit_hint="serve --max-sweep-runs")
        if req.keep_ticks and plan.n_runs > limits.max_keep_ticks_runs:
            problems.append(("keep_ticks", True, f"{plan.n_runs:,} runs would keep their ticks: above this server's "
                             f"limit of {limits.max_keep_ticks_runs:,} (serve --max-keep-ticks-runs)"))
        if problems:
            raise ConfigError(problems)
        return plan

    def _start(self, plan: SweepPlan, sweep_id: str, admission: Admission) -> tuple[str, int]:
        cancel, counts = threading.Event(), [0, plan.n_runs]
        with self.lock:
            self.live[sweep_id] = (cancel, counts)

        def work() -> None:
            try:
                with admission.slot(cancel) as started, contextlib.suppress(Exception):  # errors: stored with it
                    if not started:  # cancelled while it waited for a slot: nothing ran
                        self.store.fail_sweep(sweep_id, "cancelled", "cancelled by request before it started")
                        return
                    execute_sweep(plan, sweep_id, self.data_dir, self.dataset, self.store,
                                  on_progress=lambda done, total: counts.__setitem__(0, done), cancelled=cancel.is_set)
            finally:
                with contextlib.suppress(Exception):  # stopped by the service, not by a request: failed as
                    if self.stopping and self.store.get_sweep(sweep_id)["status"] in ("cancelled", "running"):
                        self.store.fail_sweep(sweep_id, "failed", self.stopping)  # interrupted (its runs kept)
                with self.lock:
                    self.live.pop(sweep_id, None)

        threading.Thread(target=work, name=f"sweep-{sweep_id}", daemon=True).start()
        return sweep_id, plan.n_runs

    def done_count(self, sweep_id: str) -> int | None:
        with self.lock:
            entry = self.live.get(sweep_id)
        return None if entry is None else entry[1][0]

    def cancel(self, sweep_id: str) -> bool:
        with self.lock:
            entry = self.live.get(sweep_id)
        if entry is None:
            return False
        entry[0].set()
        return True

    def shutdown(self) -> None:
        """The service stops: every sweep of this server ends, failed as interrupted (what it finished is kept)."""
        self.stopping = INTERRUPTED
        with self.lock:
            for cancel, _ in self.live.values():
                cancel.set()


def sweeps_router(store: SweepStore, state: dict) -> APIRouter:
    router = APIRouter(tags=["sweeps"])
    not_found = {404: {"model": ErrorBody, "description": "No such sweep"}}

    def status(sweep: dict) -> SweepStatus:
        live = state["sweeps"].done_count(sweep["sweep_id"])
        done = sweep["n_done"] if live is None else live
        total = sweep["n_runs"] or 0
        return SweepStatus(id=sweep["sweep_id"], mode=sweep["mode"], status=sweep["status"], done=done, total=total,
                           progress=done / total if total else 0.0, n_failed=sweep["n_failed"] or 0,
                           created_at=sweep["created_at"], finished_at=sweep["finished_at"], error=sweep["error"],
                           request=sweep.get("request"))

    def get_or_404(sweep_id: str) -> dict:
        try:
            return store.get_sweep(sweep_id)
        except StoreError as exc:
            raise HTTPException(404, str(exc)) from None

    def finished(sweep_id: str) -> dict:
        sweep = get_or_404(sweep_id)
        if sweep["status"] not in ("done", "cancelled"):
            raise HTTPException(409, f"sweep {sweep_id} is {sweep['status']}; its result exists once it is done"
                                + (f" (error: {sweep['error']})" if sweep["error"] else ""))
        return sweep

    @router.post("/sweeps", status_code=202, response_model=SweepCreated,
                 responses={422: {"model": ValidationFailed, "description": "Every problem with the request"}})
    def submit(req: SweepRequest):
        if req.ray_address is not None:  # the server says where it connects, never the caller
            return refused(ConfigError([("ray_address", req.ray_address, "not a request field: the Ray cluster is "
                                         "the server's configuration (serve --ray-address)")]))
        try:
            sweep_id, n_runs = state["sweeps"].submit(req, state["limits"], state["admission"]["sweep"],
                                                      state["ray_address"], state["checking"])
        except BasiskitError as exc:
            return refused(exc)
        return SweepCreated(id=sweep_id, status="running", n_runs=n_runs)

    @router.get("/sweeps", response_model=SweepPage)
    def list_sweeps(page: int = Query(1, ge=1), page_size: int = Query(20, ge=1, le=200)) -> SweepPage:
        sweeps, total = store.list_sweeps(limit=page_size, offset=(page - 1) * page_size)
        return SweepPage(items=[status(s) for s in sweeps], total=total, page=page, page_size=page_size)

    @router.get("/sweeps/{sweep_id}", response_model=SweepStatus, responses=not_found)
    def get_sweep(sweep_id: str) -> SweepStatus:
        return status(get_or_404(sweep_id))

    conflict = {409: {"model": ErrorBody, "description": "The sweep has not finished"}, **not_found}

    @router.get("/sweeps/{sweep_id}/result", response_model=SweepResult, responses=conflict)
    def result(sweep_id: str) -> JSONResponse:
        finished(sweep_id)
        out = store.sweep_result(sweep_id)
        out["capacity"] = capacity(out) if CAPITAL in out["params"] else None
        return JSONResponse(json_safe(out))

    @router.get("/sweeps/{sweep_id}/report", response_class=HTMLResponse, responses=conflict)
    def report(sweep_id: str, x: str | None = None, y: str | None = None) -> HTMLResponse:
        finished(sweep_id)
        try:
            page = render_sweep(store.sweep_result(sweep_id), x, y)
        except BasiskitError as exc:
            raise HTTPException(422, str(exc)) from None
        return HTMLResponse(page, headers={"Content-Security-Policy": csp_for(page)})

    @router.delete("/sweeps/{sweep_id}", response_model=Deleted, responses={
        409: {"model": ErrorBody, "description": "The sweep runs elsewhere (a stress test, another process)"},
        **not_found})
    def delete(sweep_id: str) -> Deleted:
        sweep = get_or_404(sweep_id)
        if sweep["status"] == "running" and state["sweeps"].cancel(sweep_id):
            return Deleted(id=sweep_id, status="cancelled")
        if sweep["status"] == "running":  # a stress test's grid, or a sweep of another process
            owner = "its stress test (DELETE /stress/{id})" if sweep.get("source") == "stress" else \
                f"the process that runs it (source {sweep.get('source')!r})"
            raise HTTPException(409, f"sweep {sweep_id} is running and not this server's own: stop it through "
                                f"{owner}, then delete it")
        store.delete_sweep(sweep_id)
        return Deleted(id=sweep_id, status="deleted")

    return router
