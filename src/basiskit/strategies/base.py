"""What every strategy provides to the engine."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from ..config.models import RunConfig
from ..data.market import MarketData, Need
from ..execution.executor import Executor
from ..portfolio.book import Book, PositionSpec
from ..portfolio.currency import ShareClassPricer
from ..venues.costs import GasModel


@dataclass
class StrategyContext:
    """What a strategy sees during the run: balances (read), executor (to act), gas, prices."""

    book: Book
    executor: Executor
    gas: GasModel
    pricer: ShareClassPricer
    wallet: int


class Strategy(ABC):
    name: ClassVar[str]
    description: ClassVar[str] = ""

    def __init__(self, cfg: RunConfig, pricer: ShareClassPricer, gas: GasModel):
        self.cfg = cfg
        self.pricer = pricer
        self.gas = gas

    @classmethod
    def validate_config(cls, cfg: RunConfig) -> list[str]:
        """Problems with `cfg` for this strategy (missing sections, inconsistent choices)."""
        return []

    @abstractmethod
    def needs(self) -> list[Need]:
        """Market data the strategy's venues need."""

    @abstractmethod
    def bind(self, market: MarketData) -> list[PositionSpec]:
        """Read aligned arrays; return the positions the strategy may hold (besides the wallet)."""

    def attach(self, ctx: StrategyContext) -> None:
        self.ctx = ctx

    @abstractmethod
    def on_tick(self, k: int) -> None:
        """Compare actual to target positions at point k and act through the executor if needed."""

    @abstractmethod
    def raise_cash(self, k: int, amount: float) -> None:
        """Free `amount` share-class units into the wallet for a withdrawal at point k."""
