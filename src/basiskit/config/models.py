"""The pydantic model of a run. Unknown keys are errors; components receive it already valid."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..strategies.registry import strategy_names, validate_strategy_config


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _utc_hour(value: object) -> object:
    """Dates become midnight UTC; naive datetimes are UTC; the result must be a whole hour."""
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError("expected an ISO 8601 date or time, e.g. 2024-02-01 or 2024-02-01T08:00:00Z") from exc
    if isinstance(value, datetime):
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if value.minute or value.second or value.microsecond:
            raise ValueError("must be on a whole UTC hour (the engine runs on an hourly grid)")
    return value


class Flow(Strict):
    """An external deposit (amount > 0) or withdrawal (amount < 0), in share-class units."""

    at: datetime
    amount: float

    _at = field_validator("at", mode="before")(_utc_hour)

    @field_validator("amount")
    @classmethod
    def _nonzero(cls, v: float) -> float:
        if v == 0:
            raise ValueError("must not be 0: a deposit is > 0, a withdrawal < 0")
        return v


class GasUnits(Strict):
    """Gas used per on-chain operation (typical Aave v3 Pool calls on Ethereum mainnet)."""

    supply: int = Field(200_000, ge=0)
    withdraw: int = Field(220_000, ge=0)
    borrow: int = Field(260_000, ge=0)
    repay: int = Field(200_000, ge=0)


class CostsConfig(Strict):
    enabled: bool = True
    gas_series: str = "gas/ethereum_gas_1h"
    gas_column: str = "gas_price_gwei"
    gas_units: GasUnits = GasUnits()


class PricesConfig(Strict):
    """Where hourly prices come from: series names of the dataset."""

    eth_usdt: str = "spot/uniswapv3_wethusdt_1h"
    usdt_usd: str = "aave/usdt_reserve_1d"


class StalenessHours(Strict):
    """Longest hole (hours between consecutive observations) a run may use, per series kind."""

    bar: float = Field(24.0, gt=0)
    point: float = Field(24.0, gt=0)
    snapshot: float = Field(48.0, gt=0)
    event: float = Field(8.0, gt=0)


class DataConfig(Strict):
    staleness_hours: StalenessHours = StalenessHours()
    staleness_hours_by_series: dict[str, float] = Field(default_factory=dict)


class LendingConfig(Strict):
    """Aave v3 supply: which reserve holds the capital."""

    reserve: Literal["USDT", "WETH"]


class RunConfig(Strict):
    mode: str
    description: str = ""
    strategy: str
    share_class: Literal["USDT", "ETH"]
    start: datetime | None = None
    end: datetime | None = None
    initial_capital: float = Field(gt=0)
    flows: list[Flow] = Field(default_factory=list)
    position_deviation_threshold: float = Field(0.001, ge=0, lt=1)
    reconciliation_tolerance: float = Field(1e-9, gt=0)
    lending: LendingConfig | None = None
    costs: CostsConfig = CostsConfig()
    prices: PricesConfig = PricesConfig()
    data: DataConfig = DataConfig()

    _hours = field_validator("start", "end", mode="before")(_utc_hour)

    @field_validator("strategy")
    @classmethod
    def _registered(cls, v: str) -> str:
        if v not in strategy_names():
            raise ValueError(f"unknown strategy; registered: {', '.join(strategy_names())}")
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> RunConfig:
        problems: list[str] = []
        if self.start and self.end and self.start >= self.end:
            problems.append(f"start {self.start.isoformat()} must be before end {self.end.isoformat()}")
        for i, flow in enumerate(self.flows):
            if (self.start and flow.at <= self.start) or (self.end and flow.at >= self.end):
                problems.append(f"flows.{i}.at {flow.at.isoformat()} must lie strictly inside the window")
        problems += validate_strategy_config(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self
