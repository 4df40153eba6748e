"""The position book: quantities in flat lists, each valued as a product of hourly factors.

value_j(k) = sign_j * qty_j * f1_j[k] * f2_j[k] * price_j[k]
  f1: accrual index (Aave liquidity/borrow index; 1 for plain tokens)
  f2: exchange rate (LST rate to its base asset; 1 otherwise)
  price: the asset's price in share-class units
Accrual over a tick changes one factor at a time in the order f1, f2, price, so the three
attribution terms add up to the value change exactly (ARCHITECTURE.md §6).
"""

from __future__ import annotations

from dataclasses import dataclass

from .instruments import Instrument


@dataclass(frozen=True)
class PositionSpec:
    """How one position is valued and where each factor's change is attributed."""

    instrument: Instrument
    index: list[float]
    rate: list[float]
    price: list[float]
    index_slot: int
    rate_slot: int
    price_slot: int
    sign: float = 1.0  # -1 for debts
    index_written: bool = False  # the index list is the run's own, written during the run (never taken as constant)


def _constant(values: list[float]) -> bool:
    """True when every value is the same (checked cheaply: most varying series differ at their ends)."""
    return values[0] == values[-1] and values.count(values[0]) == len(values)


class Book:
    """Quantities (scaled balances or units) of every position a run may hold."""

    def __init__(self, specs: list[PositionSpec], n_points: int, n_slots: int):
        self.specs = specs
        self.qty = [0.0] * len(specs)
        self.position = {s.instrument.key: j for j, s in enumerate(specs)}
        self._rows = [
            (j, s.index, s.rate, s.price, s.index_slot, s.rate_slot, s.price_slot, s.sign)
            for j, s in enumerate(specs)
        ]
        # Accrual fast paths: positions whose factors never move are skipped; those where one factor
        # moves need one term, computed with the same operations, in the same order, as the general one
        # (the others' constant values in place of their lookups), so that which path a position takes, which
        # depends on the window, never changes a result's last bit.
        self._unit: list[tuple[int, list[float], int, float]] = []  # the others are 1.0: q x sign x (f1 - f0)
        self._single: tuple[list, list, list] = ([], [], [])  # by the moving factor: index, rate, price
        self._general = []
        for row in self._rows:
            j, f1, f2, p, s1, s2, s3, sign = row
            factors = ((f1, s1), (f2, s2), (p, s3))
            written = specs[j].index_written  # (constant at the start, e.g. a 0% rate, but not for the whole run)
            moving = [i for i, (f, _) in enumerate(factors) if not _constant(f) or (i == 0 and written)]
            if len(moving) == 1:
                i = moving[0]
                f, slot = factors[i]
                others = [g[0] for n, (g, _) in enumerate(factors) if n != i]
                if others == [1.0, 1.0]:  # x 1.0 is exact: the general term's value with fewer operations
                    self._unit.append((j, f, slot, sign))
                else:
                    self._single[i].append((j, f, slot, sign, others[0], others[1]))
            elif moving:
                self._general.append(row)
        self._ordered = any(self._single)
        # Balances that may never be negative: all but debts and perp sizes (checked after actions).
        self._cash_like = [(s.instrument.key, j, s.index, s.rate, s.price) for j, s in enumerate(specs)
                           if s.sign > 0 and s.instrument.kind != "Perp"]
        # Per-tick attribution, one list per slot; filled by accrue() and book_cost().
        self.attribution = [[0.0] * n_points for _ in range(n_slots)]
        # Quantity of each position after each tick, filled by the loop (read by hooks for past ticks).
        self.history = [[0.0] * n_points for _ in specs]

    def slot_of(self, key: str) -> int:
        return self.position[key]

    def accrue(self, k: int) -> None:
        """Attribute the value change of every held position from point k-1 to point k."""
        qty = self.qty
        attr = self.attribution
        for j, f, slot, sign in self._unit:
            q = qty[j]
            if q != 0.0:
                attr[slot][k] += q * sign * (f[k] - f[k - 1])
        if self._ordered:
            self._accrue_ordered(k)
        for j, f1, f2, p, s1, s2, s3, sign in self._general:
            q = qty[j]
            if q == 0.0:
                continue
            q *= sign
            a0 = f1[k - 1]
            a1 = f1[k]
            b0 = f2[k - 1]
            b1 = f2[k]
            p0 = p[k - 1]
            attr[s1][k] += q * (a1 - a0) * b0 * p0
            attr[s2][k] += q * a1 * (b1 - b0) * p0
            attr[s3][k] += q * a1 * b1 * (p[k] - p0)

    def _accrue_ordered(self, k: int) -> None:
        """The one-term paths whose constant factors are not 1.0, in the general term's order of operations."""
        qty = self.qty
        attr = self.attribution
        index, rate, price = self._single
        for j, f, slot, sign, b, p in index:  # q (a1 - a0) b p
            q = qty[j]
            if q != 0.0:
                attr[slot][k] += q * sign * (f[k] - f[k - 1]) * b * p
        for j, f, slot, sign, a, p in rate:  # q a (b1 - b0) p
            q = qty[j]
            if q != 0.0:
                attr[slot][k] += q * sign * a * (f[k] - f[k - 1]) * p
        for j, f, slot, sign, a, b in price:  # q a b (p1 - p0)
            q = qty[j]
            if q != 0.0:
                attr[slot][k] += q * sign * a * b * (f[k] - f[k - 1])

    def nav(self, k: int) -> float:
        """Net asset value at point k in share-class units, from balances."""
        qty = self.qty
        total = 0.0
        for j, f1, f2, p, _, _, _, sign in self._rows:
            q = qty[j]
            if q != 0.0:
                total += sign * q * f1[k] * f2[k] * p[k]
        return total

    def cash_like(self, k: int):
        """(key, slot, value at k) of every balance that must not be negative."""
        qty = self.qty
        for key, j, f1, f2, p in self._cash_like:
            yield key, j, qty[j] * f1[k] * f2[k] * p[k]

    def book_cost(self, k: int, slot: int, amount: float) -> None:
        """Record a cash flow attributed to `slot` (negative for a cost)."""
        self.attribution[slot][k] += amount
