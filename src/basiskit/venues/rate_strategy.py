"""Aave v3 interest-rate strategies as dated parameters, and the rates they give at a utilisation.

borrow rate = base + slope1 x U / U*                       for U <= U*
            = base + slope1 + slope2 x (U - U*) / (1 - U*)  above it
supply rate = borrow rate x U x (1 - reserve factor)
(Aave v3 DefaultReserveInterestRateStrategy.calculateInterestRates; stable debt is zero on these reserves.)

The parameters live in params/aave_v3_rate_strategies.json: the dataset's own file when it has one, else the
file this package ships, fitted from the reserve snapshots by `basiskit data fit-rates` (venues/rate_fit.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ..data.dataset import Dataset
from ..data.timeutil import iso, to_epoch
from ..errors import DataError

PARAMS = "params/aave_v3_rate_strategies"


@dataclass(frozen=True)
class RateStrategy:
    """One reserve's strategy from `start` (epoch seconds) until the next one."""

    start: int
    base: float
    slope1: float
    slope2: float
    optimal: float  # U*, the optimal utilisation (the kink)

    def borrow_rate(self, u: float) -> float:
        """Variable borrow APR at utilisation u."""
        return float(borrow_curve(u, self.base, self.slope1, self.slope2, self.optimal))


def borrow_curve(u, base, slope1, slope2, optimal):
    """Variable borrow APR at utilisation u, elementwise over numbers or arrays (Aave v3
    DefaultReserveInterestRateStrategy: base + slope1 u/U* up to the kink U*, + slope2 (u - U*)/(1 - U*) above)."""
    return np.where(u <= optimal, base + slope1 * u / optimal,
                    base + slope1 + slope2 * (u - optimal) / (1.0 - optimal))


def shipped_path() -> Path:
    """The package's own fitted file."""
    return Path(str(resources.files("basiskit").joinpath("params", "aave_v3_rate_strategies.json")))


def shipped_params() -> dict:
    return json.loads(shipped_path().read_text())


def load_params(dataset: Dataset) -> tuple[dict, str]:
    """The rate-strategy parameters and where they came from (the dataset's file, else the package's)."""
    if PARAMS in dataset.params_files:
        return dataset.params(PARAMS), f"{dataset.root}/{PARAMS}.json"
    return shipped_params(), "basiskit/params/aave_v3_rate_strategies.json"


@dataclass(frozen=True)
class ReserveRates:
    """A reserve's dated strategies and reserve factors."""

    symbol: str
    strategies: tuple[RateStrategy, ...]
    reserve_factors: tuple[tuple[int, float], ...]  # (start, factor)

    @classmethod
    def from_params(cls, params: dict, symbol: str, source: str) -> ReserveRates:
        entry = params.get("reserves", {}).get(symbol)
        if entry is None:
            raise DataError(f"{source} has no reserve {symbol!r} (it has {sorted(params.get('reserves', {}))}); "
                            "run `basiskit data fit-rates` on a dataset that holds its snapshots.")
        try:
            strategies = tuple(RateStrategy(to_epoch(s["from"]), float(s["base"]), float(s["slope1"]),
                                            float(s["slope2"]), float(s["optimal_utilisation"]))
                               for s in entry["strategies"])
            factors = tuple((to_epoch(r["from"]), float(r["reserve_factor"])) for r in entry["reserve_factors"])
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"{source}: reserve {symbol}: malformed entry ({e!r}); each strategy needs from, base, "
                            "slope1, slope2, optimal_utilisation and each reserve factor from, reserve_factor.") from e
        for s in strategies:
            if not 0.0 < s.optimal < 1.0:
                raise DataError(f"{source}: reserve {symbol}: optimal_utilisation {s.optimal} from {iso(s.start)} "
                                "must lie in (0, 1).")
        for dated, what in ((strategies, "strategies"), (factors, "reserve_factors")):
            starts = [d.start if isinstance(d, RateStrategy) else d[0] for d in dated]
            if starts != sorted(starts) or len(set(starts)) != len(starts):
                raise DataError(f"{source}: reserve {symbol}: its {what} must be in increasing order of `from`.")
        if not strategies or not factors:
            raise DataError(f"{source}: reserve {symbol} has no strategies or reserve factors.")
        return cls(symbol, strategies, factors)

    def strategy_at(self, t: int) -> RateStrategy:
        """The strategy in force at t (the first one before its start: the history starts there)."""
        found = self.strategies[0]
        for s in self.strategies:
            if s.start <= t:
                found = s
        return found

    def reserve_factor_at(self, t: int) -> float:
        found = self.reserve_factors[0][1]
        for start, value in self.reserve_factors:
            if start <= t:
                found = value
        return found

    def hourly(self, grid: np.ndarray) -> dict[str, np.ndarray]:
        """Each parameter over the grid (the one in force at each hour)."""
        starts = np.array([s.start for s in self.strategies])
        at = np.maximum(np.searchsorted(starts, grid, side="right") - 1, 0)
        rf_starts = np.array([t for t, _ in self.reserve_factors])
        rf_at = np.maximum(np.searchsorted(rf_starts, grid, side="right") - 1, 0)
        return {
            "base": np.array([s.base for s in self.strategies])[at],
            "slope1": np.array([s.slope1 for s in self.strategies])[at],
            "slope2": np.array([s.slope2 for s in self.strategies])[at],
            "optimal": np.array([s.optimal for s in self.strategies])[at],
            "reserve_factor": np.array([f for _, f in self.reserve_factors])[rf_at],
        }

    def rates(self, t: int, u: float) -> tuple[float, float]:
        """(borrow APR, supply APR) at time t and utilisation u."""
        borrow = self.strategy_at(t).borrow_rate(u)
        return borrow, borrow * u * (1.0 - self.reserve_factor_at(t))
