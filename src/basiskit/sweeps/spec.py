"""A sweep as the user states it (CLI flags or the API's JSON): the params and how they are drawn,
the windows, the objective and constraints. Parsed here, checked in plan.py with every problem at once."""

from __future__ import annotations

import math
import operator
import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..config.loading import Overrides, parse_set
from ..errors import ConfigError

MAX_GRID = 100_000  # runs in one sweep (configs x windows)
MAX_VALUES = 10_000  # param values one sweep lists in all (a draw or a search picks among them)


class SweepRequest(BaseModel):
    """Every option of `basiskit sweep`, as the API takes it (POST /sweeps)."""

    model_config = ConfigDict(extra="forbid")

    mode: str = Field(description="A preset name, see GET /modes", max_length=100)
    params: list[str] = Field(default_factory=list, max_length=32,
                              description="KEY=V1,V2,... (values parsed like --set) or KEY=LO:HI:STEP (HI included)")
    random: int | None = Field(None, ge=1, le=MAX_GRID, description="draw this many configs from the params")
    seed: int = Field(0, ge=0, le=2**32 - 1)
    search: Literal["tpe"] | None = Field(None, description="search the params with optuna's TPE sampler")
    trials: int | None = Field(None, ge=1, le=MAX_GRID, description="configs a search tries")
    windows: list[str] = Field(default_factory=list, max_length=1000,
                               description="rolling:LEN:STEP (e.g. rolling:90d:30d) or START..END items")
    start: str | None = Field(None, description="Window start, ISO 8601 UTC (default: the data's)")
    end: str | None = Field(None, description="Window end, ISO 8601 UTC (default: the data's)")
    capital: float | None = Field(None, description="Initial capital in share-class units")
    sets: list[str] = Field(default_factory=list, max_length=200, description="dotted.key=value overrides")
    config_overrides: Overrides = Field(default_factory=dict,
                                             description="Deep-merged over the preset, as in POST /backtests")
    objective: str = Field("apy", max_length=200, description="numeric summary key to maximise")
    constraints: list[str] = Field(default_factory=list, max_length=50,
                                   description="KEY>=VALUE (or <=, >, <, ==) on summary keys")
    workers: int | None = Field(None, ge=1, le=1024, description="processes (default: the machine's cores)")
    backend: Literal["local", "ray"] = "local"
    ray_address: str | None = Field(None, max_length=500, description="a running Ray cluster (default: start one)")
    keep_ticks: bool = Field(False, description="keep every run's per-tick table (slower, larger)")


@dataclass(frozen=True)
class Param:
    """One swept key: explicit values, or LO:HI:STEP whose value i is LO + i x STEP rounded to STEP's
    decimals (HI included)."""

    key: str
    values: tuple
    low: float | None = None
    high: float | None = None
    step: float | None = None
    decimals: int = 0

    @property
    def is_range(self) -> bool:
        return self.low is not None

    def draw(self, rng: random.Random):
        """A value drawn uniformly: from [LO, HI] (rounded to STEP's decimals) or among the values."""
        if self.is_range:
            return round(rng.uniform(self.low, self.high), self.decimals)
        return rng.choice(self.values)


def parse_param(text: str) -> Param:
    """`KEY=V1,V2,...` or `KEY=LO:HI:STEP`; ValueError says what is wrong."""
    if "=" not in text:
        raise ValueError("a param looks like KEY=V1,V2 or KEY=LO:HI:STEP")
    key, raw = (part.strip() for part in text.split("=", 1))
    if not key or not all(key.split(".")):
        raise ValueError("the key is empty or has an empty part")
    parts = raw.split(":")
    if len(parts) == 3:
        return _range(key, *parts)
    if len(parts) > 1:
        raise ValueError("a range is LO:HI:STEP; a value holding ':' (a timestamp, JSON) goes in a --config file")
    values = []
    for item in raw.split(","):
        if not item.strip():
            raise ValueError("an empty value in the list")
        try:
            values.append(parse_set(f"{key}={item.strip()}")[1])
        except ConfigError as exc:
            raise ValueError(exc.problems[0][2]) from None
    if len({repr(v) for v in values}) != len(values):
        raise ValueError("a value is listed twice")
    return Param(key, tuple(values))


def _range(key: str, lo: str, hi: str, step: str) -> Param:
    try:
        low, high, size = float(lo), float(hi), float(step)
        decimals = max(-Decimal(step.strip()).normalize().as_tuple().exponent, 0)
    except (ValueError, InvalidOperation):
        raise ValueError(f"LO:HI:STEP must be numbers, got {lo!r}:{hi!r}:{step!r} (a value holding ':', such as "
                         "a timestamp or JSON, goes in a --config file)") from None
    if not all(math.isfinite(x) for x in (low, high, size)) or size <= 0 or high < low:
        raise ValueError("a range needs finite LO <= HI and STEP > 0")
    ratio = (high - low) / size
    if not ratio < MAX_VALUES:  # also inf, from a step of 1e-320 or a range of +-1e308
        raise ValueError(f"more than {MAX_VALUES:,} values")
    n = math.floor(ratio + 1e-9) + 1
    values = tuple(_number(round(low + i * size, decimals), decimals) for i in range(n))
    return Param(key, values, low, high, size, decimals)


def _number(x: float, decimals: int):
    return int(x) if decimals == 0 and float(x).is_integer() else x


# --- windows ----------------------------------------------------------------------------------
DURATION = re.compile(r"^(\d{1,6})([hdw])$")  # at most 999,999 units: a timedelta that cannot overflow
UNIT_HOURS = {"h": 1, "d": 24, "w": 168}


@dataclass(frozen=True)
class Window:
    start: str | None  # ISO 8601 UTC; None: the data's own (as `backtest` without --start)
    end: str | None

    def label(self) -> str:
        return f"{self.start or 'data start'}..{self.end or 'data end'}"


def parse_duration(text: str) -> timedelta:
    m = DURATION.match(text.strip())
    if not m or int(m.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration like 90d, 12h or 2w")
    return timedelta(hours=int(m.group(1)) * UNIT_HOURS[m.group(2)])


def parse_windows(items: list[str], first: datetime, last: datetime) -> list[Window]:
    """`rolling:LEN:STEP` windows inside [first, last], or `START..END` items (ISO 8601 UTC)."""
    windows: list[Window] = []
    for item in items:
        if item.startswith("rolling:"):
            parts = item.split(":")
            if len(parts) != 3:
                raise ValueError(f"{item!r}: a rolling window is rolling:LEN:STEP, e.g. rolling:90d:30d")
            length, step = parse_duration(parts[1]), parse_duration(parts[2])
            start = first
            while start + length <= last:
                windows.append(Window(_iso(start), _iso(start + length)))
                start += step
                if len(windows) > MAX_GRID:  # sizes are checked before (sweeps/size.py); never build more
                    raise ValueError(f"more than {MAX_GRID:,} windows")
            if not windows:
                raise ValueError(f"{item!r}: no {parts[1]} window fits between {_iso(first)} and {_iso(last)}")
        elif ".." in item:
            start, end = (part.strip() for part in item.split("..", 1))
            windows.append(Window(start, end))
        else:
            raise ValueError(f"{item!r}: a window is rolling:LEN:STEP or START..END")
    return windows


def parse_time(text: str) -> datetime:
    """An ISO 8601 time as UTC (a naive one is UTC); ValueError names the text."""
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time") from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- objective and constraints ------------------------------------------------------------------
OPS = {">=": operator.ge, "<=": operator.le, "==": operator.eq, ">": operator.gt, "<": operator.lt}
CONSTRAINT = re.compile(r"^\s*([\w.:]+)\s*(>=|<=|==|>|<)\s*(\S+)\s*$")
# Numeric summary keys (dotted paths reach into its mappings); the run table's aliases come first.
ALIASES = {"transaction_costs": "pnl_attribution.transaction_costs", "liquidations": "liquidations.count"}
SUMMARY_KEYS = {
    "final_nav", "final_nav_usd", "total_return", "apy", "max_drawdown", "volatility", "sharpe", "balance_pnl",
    "balance_pnl_usd", "net_external_flows", "reconciliation_max_residual", "reconciliation_max_residual_usd",
    "data_warnings", "executions", "rebalances", "min_health_factor", "max_ltv", "max_abs_net_delta_pct",
    "steps", "initial_capital",
}
SUMMARY_FAMILIES = ("pnl_attribution.", "pnl_attribution_usd.", "funding_by_venue.", "max_margin_ratio.",
                    "liquidations.", "leverage.", "time_under_water.", "rewards_by_token.", "skipped_actions.")


def check_summary_key(key: str) -> None:
    key = ALIASES.get(key, key)
    if key not in SUMMARY_KEYS and not key.startswith(SUMMARY_FAMILIES):
        known = ", ".join(sorted(SUMMARY_KEYS | set(ALIASES)))
        raise ValueError(f"{key!r} is not a numeric summary key; keys: {known}, or {', '.join(SUMMARY_FAMILIES)}...")


def summary_value(summary: dict | None, key: str) -> float | None:
    """A numeric summary value by key or dotted path; None when absent, not a number or not finite."""
    node: Any = summary
    for part in ALIASES.get(key, key).split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    if isinstance(node, bool) or not isinstance(node, int | float) or not math.isfinite(node):
        return None
    return float(node)


@dataclass(frozen=True)
class Constraint:
    key: str
    op: str
    value: float

    def met(self, summary: dict | None) -> bool:
        v = summary_value(summary, self.key)
        return v is not None and OPS[self.op](v, self.value)

    def __str__(self) -> str:
        return f"{self.key}{self.op}{self.value:g}"


def parse_constraint(text: str) -> Constraint:
    m = CONSTRAINT.match(text)
    if not m:
        raise ValueError("a constraint looks like min_health_factor>=1.1 (ops: >=, <=, >, <, ==)")
    key, op, raw = m.groups()
    check_summary_key(key)
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{raw!r} is not a finite number")
    return Constraint(key, op, value)
