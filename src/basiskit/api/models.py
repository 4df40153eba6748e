"""Request and response bodies of the HTTP API (they make the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ..config.loading import Overrides
from ..errors import BasiskitError, ConfigError
from ..results.db import json_safe


class Health(BaseModel):
    status: Literal["ok"]
    version: str


class SignedLink(BaseModel):
    url: str = Field(description="the target with its signature: a GET of it needs no token until it expires")
    expires_in: int = Field(description="seconds")


class ModeInfo(BaseModel):
    mode: str
    strategy: str
    share_class: str
    description: str


class ModeDetail(BaseModel):
    mode: str
    preset: dict[str, Any] = Field(description="The preset's config, with every default filled in")
    config_schema: dict[str, Any] = Field(description="JSON schema of a run config")


class BacktestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: str = Field(description="A preset name, see GET /modes", examples=["pure_lending_usdt"])
    start: str | None = Field(None, description="Window start, ISO 8601 UTC on a whole hour")
    end: str | None = Field(None, description="Window end, ISO 8601 UTC on a whole hour")
    capital: float | None = Field(None, description="Initial capital in share-class units (> 0)")
    config_overrides: Overrides = Field(
        default_factory=dict,
        description="Deep-merged over the preset; keys may be nested mappings or dotted paths (costs.enabled)")


class ConfigProblem(BaseModel):
    field: str
    value: Any = None
    message: str


class ValidationFailed(BaseModel):
    detail: list[ConfigProblem] | str


class ErrorBody(BaseModel):
    detail: str


SESSION_NOT_FOUND = {404: {"model": ErrorBody, "description": "No such session"}}


def found_or_404(read):
    """A session store's read; its StoreError (no such session) as a 404 that says which sessions exist."""
    from fastapi import HTTPException

    from ..results.db import StoreBusy, StoreError

    try:
        return read()
    except StoreBusy as exc:  # busy or unreachable, not absent
        raise HTTPException(503, str(exc), headers={"Retry-After": "5"}) from None
    except StoreError as exc:
        raise HTTPException(404, str(exc)) from None


class BacktestCreated(BaseModel):
    id: str
    status: str


class RunHeadline(BaseModel):
    share_class: str
    start: str
    end: str
    total_return: float
    apy: float
    max_drawdown: float
    final_nav: float


RunState = Literal["queued", "running", "done", "failed", "cancelled"]


class BacktestStatus(BaseModel):
    id: str
    mode: str
    status: RunState
    progress: float
    source: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    headline: RunHeadline | None = Field(None, description="a finished run's headline figures (its /result has all)")


class BacktestPage(BaseModel):
    items: list[BacktestStatus]
    total: int
    page: int
    page_size: int


class Deleted(BaseModel):
    id: str
    status: Literal["cancelled", "deleted"]


class Timeseries(BaseModel):
    columns: list[str]
    data: dict[str, list[Any]]


class MonthlyReturn(BaseModel):
    month: str = Field(description="YYYY-MM")
    return_: float | None = Field(alias="return", description="share index at the month's last tick / at the last "
                                  "tick before the month - 1 (the first month from 1.0 before the run); null after a "
                                  "total loss (undefined)")


class YearlyReturn(BaseModel):
    year: str
    return_: float | None = Field(alias="return", description="as a month's, over the year; null after a total loss")


class Drawdown(BaseModel):
    start: str = Field(description="the peak's time (the window's start for the peak before the run)")
    trough: str
    end: str | None = Field(description="the first tick back at the peak; null: not recovered")
    depth: float = Field(description="fall from the peak, a positive fraction")
    hours: int = Field(description="from the peak to the recovery, or to the last tick")


class Rolling(BaseModel):
    days: int
    timestamp: list[str]
    apy: list[float | None]
    volatility: list[float | None]
    sharpe: list[float | None]


class HeadlineMetric(BaseModel):
    key: str
    label: str
    value: float | int | None
    unit: Literal["pct", "ratio", "ccy", "hours", "count", "sci"]
    definition: str = Field(description="one line: what the figure measures")


class Attribution(BaseModel):
    share_class: dict[str, float]
    usd: dict[str, float]


class ChartPanel(BaseModel):
    id: str
    title: str
    figure: dict[str, Any] = Field(description="a plotly figure (data and layout), arrays as base64 typed arrays")


class Tearsheet(BaseModel):
    monthly_returns: list[MonthlyReturn]
    yearly_returns: list[YearlyReturn]
    drawdowns: list[Drawdown] = Field(description="the five worst, deepest first; the first is max_drawdown")
    rolling: Rolling
    share_class: Literal["USDT", "ETH"]
    headline: list[HeadlineMetric]
    attribution: Attribution = Field(description="PnL by source over the run, with the residual")
    costs_by_kind: dict[str, float] = Field(description="transaction costs by kind (share class), from the events")
    panels: list[ChartPanel] = Field(description="the tearsheet's charts, as the run report draws them")


class RunSummary(BaseModel):
    """A finished run's summary (the CLI's --json object); strategies add their own keys."""

    model_config = ConfigDict(extra="allow")

    run_id: str
    mode: str
    strategy: str
    share_class: Literal["USDT", "ETH"]
    start: str
    end: str
    steps: int
    initial_capital: float
    final_nav: float
    final_nav_usd: float
    total_return: float
    apy: float
    max_drawdown: float
    volatility: float | None
    sharpe: float | None
    metrics_note: str | None = Field(None, description="Why volatility or Sharpe is null, when it is")
    balance_pnl: float
    pnl_attribution: dict[str, float] = Field(description="Cumulative PnL by source, share-class units")
    pnl_attribution_usd: dict[str, float]
    reconciliation_max_residual: float
    data_warnings: int
    engine_seconds: float
    wall_seconds: float
    config_hash: str
    data_hash: str


def refused(exc: BasiskitError) -> JSONResponse:
    """422 for a request the engine refused: every problem (field, value, message) of a config error, else
    the error's message."""
    if isinstance(exc, ConfigError):
        return JSONResponse(status_code=422, content={"detail": [
            {"field": f, "value": json_safe(v), "message": m} for f, v, m in exc.problems]})
    return JSONResponse(status_code=422, content={"detail": str(exc)})
