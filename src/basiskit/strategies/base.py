"""What every strategy provides to the engine."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ..config.models import RunConfig
from ..data.dataset import Dataset
from ..data.market import MarketData, Need
from ..execution.events import EventLog
from ..execution.executor import Executor
from ..portfolio.book import Book, PositionSpec
from ..portfolio.currency import ShareClassPricer
from ..venues.costs import GasModel, SlippageModel
from .capital import CapitalFloor
from .discipline import ActionGate


@dataclass
class StrategyEnv:
    """What a strategy may use to set itself up: the dataset's parameters, prices, cost models."""

    dataset: Dataset
    pricer: ShareClassPricer
    gas: GasModel
    slippage: SlippageModel


@dataclass
class StrategyContext:
    """What a strategy sees during the run: balances (read), executor (to act), the event log."""

    book: Book
    executor: Executor
    events: EventLog
    wallet: int
    n_points: int
    hour_by_hour: bool = False  # a market fed hour by hour (paper): nothing later than the hour is known


@dataclass
class Hooks:
    """Per-tick venue work. Accruals (funding, rewards) run once per tick after the index and price
    accrual; monitors (liquidations, risk) run before the strategy and again after it acts."""

    accruals: list[Callable[[int], None]] = field(default_factory=list)
    monitors: list[Callable[[int], None]] = field(default_factory=list)

    def __add__(self, other: Hooks) -> Hooks:
        return Hooks(self.accruals + other.accruals, self.monitors + other.monitors)


@dataclass
class Report:
    """A strategy's own per-tick columns and summary keys, computed after the loop."""

    columns: dict[str, np.ndarray]
    summary: dict


Problem = tuple[str, object, str]  # (field path, value given, what is wrong / allowed)


def require(cfg: RunConfig, strategy: str, share_class: str | None = None, **keys: str) -> list[Problem]:
    """Problems when `cfg` leaves a key the strategy needs unset (keys: name -> example) or uses
    another share class than the strategy runs in."""
    problems: list[Problem] = [(key, None, f"required by strategy {strategy} ({example})")
                               for key, example in keys.items() if getattr(cfg, key) is None]
    if share_class and cfg.share_class != share_class:
        problems.append(("share_class", cfg.share_class, f"strategy {strategy} runs in the {share_class} share class"))
    return problems


class Strategy(ABC):
    name: ClassVar[str]
    description: ClassVar[str] = ""
    on_chain: ClassVar[bool] = True  # uses Ethereum operations (pays gas)

    def __init__(self, cfg: RunConfig, env: StrategyEnv):
        self.cfg = cfg
        self.env = env
        self.pricer = env.pricer
        self.gas = env.gas

    @classmethod
    def validate_config(cls, cfg: RunConfig, dataset: Dataset) -> list[Problem]:
        """Problems with `cfg` for this strategy (missing sections, contradictions, limits the dataset's
        risk parameters set), each naming its fields, the values and what is valid."""
        return []

    @abstractmethod
    def needs(self) -> list[Need]:
        """Market data the strategy's venues need."""

    @abstractmethod
    def bind(self, market: MarketData) -> list[PositionSpec]:
        """Read aligned arrays; return the positions the strategy may hold (besides the wallet)."""

    def attach(self, ctx: StrategyContext) -> None:
        self.ctx = ctx
        self.gate = ActionGate(ctx.executor, ctx.events)

    def capital_floor(self, k: int, capital: float) -> CapitalFloor:
        """What entering with `capital` share-class units costs at point k (after bind), and so the least
        capital worth holding a position with."""
        return CapitalFloor()

    def hooks(self) -> Hooks:
        """The strategy's venues' per-tick work (funding, rewards, liquidations, risk monitors)."""
        return Hooks()

    @abstractmethod
    def on_tick(self, k: int) -> None:
        """Compare actual to target positions at point k and act through the executor if needed."""

    @abstractmethod
    def raise_cash(self, k: int, amount: float) -> None:
        """Free `amount` share-class units into the wallet for a withdrawal at point k."""

    def report(self, quantities: np.ndarray, nav: np.ndarray) -> Report:
        return Report({}, {})

    def sell_all_rewards(self, k: int) -> None:  # noqa: B027 (optional: only strategies holding rewards sell)
        """Sell every reward token held at point k in that hour (the exit's liquidation value)."""

    def aave_reserves(self) -> list:
        """The Aave reserves (venues/aave.AaveReserve) the strategy may hold positions in."""
        return []

    def redeem_queue_hours(self) -> float | None:
        """The wait of the protocol's redemption queue of the LST the strategy holds (None: no LST)."""
        return None

    def risk_now(self, k: int) -> dict:
        """What a risk manager reads at point k (after its tick): health factor, margin ratios, net delta,
        liquidation distances, LST depeg, as far as the strategy holds such positions."""
        return {}
