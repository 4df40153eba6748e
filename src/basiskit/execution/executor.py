"""The only place balances change during a run: each action moves quantities at point-k prices
(value-neutral) and books its costs to transaction_costs."""

from __future__ import annotations

from ..engine.events import EventLog
from ..portfolio.attribution import TRANSACTION_COSTS
from ..portfolio.book import Book
from ..venues.aave import AaveReserve
from ..venues.costs import GasModel


class Executor:
    def __init__(self, book: Book, gas: GasModel, events: EventLog, wallet: int):
        self.book = book
        self.gas = gas
        self.events = events
        self.wallet = wallet

    def pay_gas(self, k: int, units: int, operation: str, amount: float) -> float:
        """Pay an operation's gas from the wallet; returns the cost in share-class units."""
        cost = self.gas.cost(units, k)
        self.book.qty[self.wallet] -= cost
        self.book.book_cost(k, TRANSACTION_COSTS, -cost)
        self.events.add(k, "execution", f"{operation} {amount:.6f}", operation=operation, amount=amount,
                        gas_units=units, cost=cost)
        return cost

    def aave_supply(self, k: int, reserve: AaveReserve, position: int, amount: float) -> None:
        """Supply `amount` tokens from the wallet to an Aave reserve."""
        qty = self.book.qty
        qty[self.wallet] -= amount
        qty[position] += reserve.scaled_amount(amount, k)
        self.pay_gas(k, self.gas.units.supply, f"aave_supply_{reserve.symbol}", amount)

    def aave_withdraw(self, k: int, reserve: AaveReserve, position: int, amount: float) -> float:
        """Withdraw up to `amount` tokens to the wallet; returns the amount withdrawn."""
        qty = self.book.qty
        scaled = min(reserve.scaled_amount(amount, k), qty[position])
        amount = reserve.balance(scaled, k)
        qty[position] -= scaled
        qty[self.wallet] += amount
        self.pay_gas(k, self.gas.units.withdraw, f"aave_withdraw_{reserve.symbol}", amount)
        return amount
