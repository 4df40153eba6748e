"""FastAPI app: modes, backtests (submit, status, result, timeseries, report, delete), dashboard."""

from __future__ import annotations

import io
import logging
import math
import threading
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from plotly.offline import get_plotlyjs
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware

from .. import __version__
from ..config import config_hash, preset_names, read_preset
from ..config.loading import run_overrides
from ..config.models import RunConfig
from ..data.dataset import Dataset, resolve_data_dir
from ..engine.run import Backtest
from ..engine.runconfig import load_run_config
from ..errors import BasiskitError
from ..live.store import LiveStore
from ..live.watch import HeartbeatWatch
from ..paper.store import PaperStore
from ..results.compare import MAX_RUNS, MIN_RUNS, compare
from ..results.db import StoreBusy, StoreError, json_safe
from ..results.html import csp_for
from ..results.panels import tearsheet_document
from ..results.report import render as render_report
from ..results.store import new_run_id
from ..results.stress_store import StressStore
from ..sessions.outbox import WebhookSender
from ..strategies.registry import load_builtins
from .auth import LINK_SECONDS, Tokens, is_public
from .guard import Guard
from .jobs import INTERRUPTED, JobManager
from .limits import RETRY_AFTER_SECONDS, Admission, Busy, ServiceLimits
from .live import live_router
from .metrics import metrics_text
from .models import (
    BacktestCreated,
    BacktestPage,
    BacktestRequest,
    BacktestStatus,
    Deleted,
    ErrorBody,
    Health,
    ModeDetail,
    ModeInfo,
    RunHeadline,
    RunState,
    RunSummary,
    SignedLink,
    Tearsheet,
    Timeseries,
    ValidationFailed,
    refused,
)
from .paper import paper_router
from .stress import INTERRUPTED as STRESS_INTERRUPTED
from .stress import StressManager, stress_router
from .sweeps import INTERRUPTED as SWEEP_INTERRUPTED
from .sweeps import SweepManager, sweeps_router

STATIC = Path(__file__).resolve().parent / "static"
log = logging.getLogger("basiskit.api")
TEARSHEETS_KEPT = 16
NOT_FOUND = {404: {"model": ErrorBody, "description": "No such run or mode"}}


def create_app(tokens: Tokens, db_path: Path | None = None, data_dir: Path | None = None, workers: int = 2,
               limits: ServiceLimits | None = None, allowed_hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
               ray_address: str | None = None, cors_origins: tuple[str, ...] = (), docs: bool = False) -> FastAPI:
    """The service. Who may call it (`tokens`), what it takes on (`limits`), which Host names it answers
    (`allowed_hosts`) and where sweeps on Ray connect (`ray_address`) are the server's configuration."""
    limits = limits or ServiceLimits(running=workers)
    root, source = resolve_data_dir(data_dir)
    store = StressStore(db_path)
    paper_store = PaperStore(store.path, analytics=store.analytics.root)
    live_store = LiveStore(store.path, analytics=store.analytics.root)
    state: dict[str, Any] = {"limits": limits, "ray_address": ray_address, "admission": {
        "backtest": Admission("backtests", limits.running, limits.queue_backtests, "--queue-backtests"),
        "sweep": Admission("sweeps", limits.running, limits.queue_sweeps, "--queue-sweeps"),
        "stress": Admission("stress tests", limits.running, limits.queue_stress, "--queue-stress")},
        "checking": threading.BoundedSemaphore(limits.checking)}

    sheets: dict[str, bytes] = {}  # the last TEARSHEETS_KEPT tearsheets computed, oldest first
    sheets_lock = threading.Lock()

    def tearsheet_json(run: dict) -> bytes:
        """A finished run's tearsheet as JSON, computed once (a finished run never changes)."""
        run_id = run["run_id"]
        with sheets_lock:  # one at a time: a request waits for the computation already under way
            if run_id not in sheets:
                while len(sheets) >= TEARSHEETS_KEPT:
                    sheets.pop(next(iter(sheets)))
                sheets[run_id] = JSONResponse(json_safe(tearsheet_document(
                    run["summary"], store.ticks(run_id), store.events(run_id), run["config"]))).body
            return sheets[run_id]

    def warm_tearsheet(run_id: str) -> None:
        try:
            tearsheet_json(store.get(run_id))
        except Exception:  # the page computes it on request, and reports any error there
            log.exception("tearsheet of run %s not computed ahead", run_id)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        load_builtins()  # every strategy registered before the first request is answered
        store.mark_interrupted(INTERRUPTED)
        store.mark_sweeps_interrupted(SWEEP_INTERRUPTED)
        store.mark_stress_interrupted(STRESS_INTERRUPTED)
        state["jobs"] = JobManager(store, root, f"{root} ({source})", limits.running, on_saved=warm_tearsheet)
        state["dataset"] = Dataset(root)
        state["sweeps"] = SweepManager(store, root, state["dataset"], limits.max_workers)
        state["stress"] = StressManager(store, root, state["dataset"])
        threading.Thread(target=warm_plotly, daemon=True).start()
        # alerts a stopped paper or live session left in its outbox
        state["senders"] = resend_undelivered(paper_store, live_store)
        # a live session whose process died cannot alert: this server does (once per death)
        def deliver(name: str) -> None:  # the dead session's own sender is gone: this server posts its alerts
            url = live_store.webhook(name)
            if url and name not in {s.session for s in state["senders"]}:
                state["senders"].append(WebhookSender(live_store, name, url, quiet=True))
            for sender in state["senders"]:
                if sender.session == name:
                    sender.notify()

        state["watch"] = HeartbeatWatch(live_store, on_alert=deliver).start()
        yield
        state["watch"].stop()
        for sender in state["senders"]:
            sender.close(wait_seconds=2.0)
        state["sweeps"].shutdown()
        state["stress"].shutdown()
        state["jobs"].shutdown()

    # /docs and /redoc load Swagger UI and ReDoc from a CDN into this origin: off unless serve --docs
    app = FastAPI(title="basiskit", version=__version__, lifespan=lifespan,
                  docs_url="/docs" if docs else None, redoc_url="/redoc" if docs else None,
                  description="Backtests of the fund's basis strategies: submit runs, follow them, read results. "
                  "Every path but /health and the dashboard needs `Authorization: Bearer TOKEN` (role read: GET; "
                  "run: backtests, sweeps, stress tests; trade: every POST under /live/) or a link signed by "
                  "GET /links.")
    admission = state["admission"]
    app.add_middleware(Guard, tokens=tokens, max_body_bytes=limits.max_body_bytes, admissions={
        "/backtests": admission["backtest"], "/sweeps": admission["sweep"], "/stress": admission["stress"]})
    if cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["*"],
                           allow_headers=["authorization", "content-type"])
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))  # outermost: checked first

    def openapi() -> dict:
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            doc.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer", "description": "a token of serve's tokens file"}}
            doc["security"] = [{"bearer": []}]
            doc["paths"]["/health"]["get"]["security"] = []
            from ..config import preset_names

            for name in ("BacktestRequest", "SweepRequest", "StressRequest"):  # a mode is one of the presets
                schema = doc["components"]["schemas"].get(name, {}).get("properties", {}).get("mode")
                if schema is not None:
                    schema["enum"] = sorted(preset_names())
            for kind, param in (("backtests", "run_id"), ("sweeps", "sweep_id"), ("stress", "stress_id")):
                # OpenAPI links: what a created job's id leads to (clients and stateful testing follow them)
                doc["paths"][f"/{kind}"]["post"]["responses"]["202"]["links"] = {
                    op["operationId"]: {"operationId": op["operationId"], "parameters": {param: "$response.body#/id"}}
                    for path, ops in doc["paths"].items() if path.startswith(f"/{kind}/{{{param}}}")
                    for op in ops.values()}
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi

    @app.exception_handler(Busy)
    async def _busy(request: Request, exc: Busy):
        return JSONResponse(status_code=429, content={"detail": str(exc)},
                            headers={"Retry-After": str(RETRY_AFTER_SECONDS)})

    @app.exception_handler(StoreBusy)
    async def _store_busy(request: Request, exc: StoreBusy):  # another process holds the store, or it is down
        return JSONResponse(status_code=503, content={"detail": str(exc)}, headers={"Retry-After": "5"})

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        problems = [{"field": ".".join(str(p) for p in e["loc"] if p != "body") or "(body)",
                     "value": json_safe(e.get("input")), "message": e["msg"]} for e in exc.errors()]
        return JSONResponse(status_code=422, content={"detail": problems})

    def _run_or_404(run_id: str) -> dict:
        try:
            return store.get(run_id)
        except StoreBusy:
            raise
        except StoreError as exc:
            raise HTTPException(404, str(exc)) from None

    def _status(run: dict) -> BacktestStatus:
        progress = run["progress"] or 0.0
        live = state["jobs"].live_progress(run["run_id"]) if run["status"] in ("queued", "running") else None
        status = run["status"]
        if live is not None:
            progress, status = live, "running"
        summary = run.get("summary") if status == "done" else None
        headline = RunHeadline(**{k: summary[k] for k in RunHeadline.model_fields}) if summary else None
        return BacktestStatus(id=run["run_id"], mode=run["mode"], status=status, progress=progress,
                              source=run["source"], created_at=run["created_at"], started_at=run["started_at"],
                              finished_at=run["finished_at"], error=run["error"], headline=headline)

    @app.get("/health", response_model=Health)
    async def health() -> Health:  # on the event loop: answers while every worker thread is busy
        return Health(status="ok", version=__version__)

    @app.get("/links", response_model=SignedLink, responses={422: {"model": ErrorBody}})
    def link(request: Request, target: str = Query(max_length=2000, description="a GET path of this API, with its "
                                                   "query, e.g. /backtests/ID/report")) -> SignedLink:
        """A signed link to `target` that a browser may open for a few minutes without the token (report pages,
        downloads): the dashboard never puts the token where a page could read it."""
        if not target.startswith("/") or target.startswith("//") or "\\" in target or "#" in target:
            raise HTTPException(422, f"target {target[:100]!r} is not a path of this API (it starts with one '/')")
        if target.split("?", 1)[0].rstrip("/") == "/links" or is_public(target.split("?", 1)[0]):
            raise HTTPException(422, f"target {target[:100]!r}: a link signs a GET that needs a token, never /links")
        return SignedLink(url=tokens.sign(target), expires_in=LINK_SECONDS)

    @app.get("/modes", response_model=list[ModeInfo])
    def modes() -> list[ModeInfo]:
        out = []
        for name in preset_names():
            p = read_preset(name)
            out.append(ModeInfo(mode=name, strategy=p["strategy"], share_class=p["share_class"],
                                description=p.get("description", "")))
        return out

    @app.get("/modes/{mode}", response_model=ModeDetail, responses=NOT_FOUND)
    def mode_detail(mode: str) -> ModeDetail:
        if mode not in preset_names():
            raise HTTPException(404, f"no mode {mode!r}; GET /modes lists them")
        cfg = load_run_config(mode, dataset=state["dataset"])
        return ModeDetail(mode=mode, preset=cfg.model_dump(mode="json"), config_schema=RunConfig.model_json_schema())

    @app.post("/backtests", status_code=202, response_model=BacktestCreated,
              responses={422: {"model": ValidationFailed, "description": "Every problem with the request"}})
    def submit(req: BacktestRequest) -> BacktestCreated | JSONResponse:
        admission = state["admission"]["backtest"]
        try:
            with admission.claim():  # Busy -> 429 before any work
                with state["checking"]:
                    cfg = _config_from_request(req, state["dataset"])
                    Backtest(cfg, state["dataset"])  # the data covers the window: fail now, not in the worker
                run_id = new_run_id(cfg.mode, config_hash(cfg))
                config = cfg.model_dump(mode="json")
                store.create(run_id, cfg.mode, "queued", "api", request=req.model_dump(mode="json"), config=config)
                state["jobs"].submit(run_id, config, admission)
        except BasiskitError as exc:
            return refused(exc)
        return BacktestCreated(id=run_id, status="queued")

    @app.get("/backtests", response_model=BacktestPage)
    def list_backtests(page: int = Query(1, ge=1), page_size: int = Query(20, ge=1, le=200),
                       mode: str | None = None, status: RunState | None = None) -> BacktestPage:
        runs, total = store.list(mode=mode, status=status, limit=page_size, offset=(page - 1) * page_size)
        return BacktestPage(items=[_status(r) for r in runs], total=total, page=page, page_size=page_size)

    @app.get("/backtests/{run_id}", response_model=BacktestStatus, responses=NOT_FOUND)
    def get_backtest(run_id: str) -> BacktestStatus:
        return _status(_run_or_404(run_id))

    def _done(run_id: str) -> dict:
        run = _run_or_404(run_id)
        if run["status"] != "done":
            raise HTTPException(409, f"run {run_id} is {run['status']}; results exist once it is done"
                                + (f" (error: {run['error']})" if run["error"] else ""))
        return run

    conflict = {409: {"model": ErrorBody, "description": "The run has not finished"}, **NOT_FOUND}

    @app.get("/backtests/{run_id}/result", response_model=RunSummary, responses=conflict)
    def result(run_id: str) -> JSONResponse:
        return JSONResponse(_done(run_id)["summary"])  # stored as computed: every key, no re-validation

    @app.get("/backtests/{run_id}/timeseries", response_model=Timeseries, responses={
        **conflict, 200: {"content": {"application/json": {}, "text/csv": {}, "application/vnd.apache.parquet": {}},
                          "description": "The per-tick table as JSON (columns), CSV or Parquet"}})
    def timeseries(run_id: str, format: Literal["json", "csv", "parquet"] = "json"):  # noqa: A002
        _done(run_id)
        ticks = store.ticks(run_id)
        if format == "csv":
            return Response(ticks.to_csv(index=False), media_type="text/csv")
        if format == "parquet":
            buf = io.BytesIO()
            ticks.to_parquet(buf, index=False)
            return Response(buf.getvalue(), media_type="application/vnd.apache.parquet")
        data = {c: [None if isinstance(v, float) and not math.isfinite(v) else v for v in ticks[c].tolist()]
                for c in ticks.columns if c != "timestamp"}
        data["timestamp"] = ticks["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ").tolist()
        return Timeseries(columns=list(ticks.columns), data=data)

    @app.get("/compare", responses={**conflict, 422: {"model": ErrorBody, "description": "Fewer than 2 or more "
                                                       "than 6 runs"}})
    def compare_runs(ids: list[str] = Query(..., description="2 to 6 finished runs; the first is the base of the "
                                           "differences")) -> JSONResponse:
        """NAV indexed to 100 and drawdowns of each run, the metrics side by side with their differences from
        the first run, and the config keys whose values differ."""
        if not MIN_RUNS <= len(ids) <= MAX_RUNS:
            raise HTTPException(422, f"ids: {len(ids)} run(s) given -> compare takes {MIN_RUNS} to {MAX_RUNS} runs")
        runs = [_done(i) for i in ids]
        return JSONResponse(json_safe(compare(runs, [store.ticks(i) for i in ids])))

    @app.get("/backtests/{run_id}/tearsheet", response_model=Tearsheet, responses=conflict)
    def tearsheet_of(run_id: str) -> Response:
        """The run's tearsheet: monthly and yearly returns, the five worst drawdowns and rolling 30-day APY,
        volatility and Sharpe on the share index (flows are not returns); headline metrics with their definitions,
        attribution, costs by kind, and the chart panels the run report draws."""
        run = _done(run_id)
        return Response(tearsheet_json(run), media_type="application/json")

    @app.get("/backtests/{run_id}/report", response_class=HTMLResponse, responses=conflict)
    def report(run_id: str) -> HTMLResponse:
        run = _done(run_id)
        return report_response(render_report(run["summary"], store.ticks(run_id), store.events(run_id),
                                             run["config"],
                                             csv_href=tokens.sign(f"/backtests/{run_id}/timeseries?format=csv")))

    @app.delete("/backtests/{run_id}", response_model=Deleted, responses=NOT_FOUND)
    def delete(run_id: str) -> Deleted:
        run = _run_or_404(run_id)
        if run["status"] in ("queued", "running") and state["jobs"].cancel(run_id):
            return Deleted(id=run_id, status="cancelled")
        store.delete(run_id)
        with sheets_lock:
            sheets.pop(run_id, None)
        return Deleted(id=run_id, status="deleted")

    app.include_router(sweeps_router(store, state))
    app.include_router(stress_router(store, state))
    app.include_router(paper_router(paper_store))
    app.include_router(live_router(live_store))

    @app.get("/metrics", response_class=Response, tags=["service"], responses={200: {
        "content": {"text/plain": {}}, "description": "Prometheus text format (prometheus-client)"}})
    def metrics() -> Response:
        return Response(metrics_text(store, paper_store, state, live_store), media_type="text/plain; version=0.0.4")

    @app.get("/", include_in_schema=False)
    @app.get("/ui", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/ui/runs")

    @app.get("/ui/{page:path}", response_class=HTMLResponse, include_in_schema=False)
    def dashboard(page: str) -> FileResponse:
        """Every dashboard page is this one document; its script draws the page the URL names (ARCHITECTURE.md §10)."""
        return FileResponse(STATIC / "ui.html")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly_js() -> Response:  # the installed plotly's: it changes only with the package
        return Response(get_plotlyjs(), media_type="application/javascript",
                        headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> FileResponse:
        path = STATIC / name
        if not path.is_file() or path.parent != STATIC:
            raise HTTPException(404, f"no static file {name!r}")
        return FileResponse(path)

    return app


def warm_plotly() -> None:
    """Import plotly's figure classes and validators (about a second, once per process) before a first tearsheet or
    report needs them."""
    import plotly.graph_objects as go

    go.Figure([go.Scatter(x=[0], y=[0]), go.Waterfall(x=["a"], y=[0.0]), go.Bar(x=["a"], y=[0.0])]).to_json()


def report_response(page: str) -> HTMLResponse:
    """A report page with its Content Security Policy: only its own inline scripts, by their sha256."""
    return HTMLResponse(page, headers={"Content-Security-Policy": csp_for(page)})


def resend_undelivered(*stores) -> list:
    """Senders for every paper or live session whose webhook alerts were not all delivered (not one still
    running: its own sender delivers them)."""
    return [WebhookSender(store, name, url, quiet=True) for store in stores
            for name, status, url in store.webhook_sessions() if status != "running" and store.outbox_depth(name)]


def _config_from_request(req: BacktestRequest, dataset: Dataset):
    return load_run_config(req.mode, extra=run_overrides(req.start, req.end, req.capital, req.config_overrides),
                           dataset=dataset)
