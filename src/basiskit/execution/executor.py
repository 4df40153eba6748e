"""The only place balances change during a run: each action moves quantities at point-k prices
(value-neutral) and books its costs to transaction_costs."""

from __future__ import annotations

from ..engine.events import EventLog
from ..portfolio.attribution import TRANSACTION_COSTS
from ..portfolio.book import Book
from ..venues.aave import AaveReserve
from ..venues.costs import GasModel, SlippageModel
from ..venues.perp import PerpMarket
from ..venues.spot import SpotMarket


class Executor:
    def __init__(self, book: Book, gas: GasModel, events: EventLog, wallet: int, slippage: SlippageModel):
        self.book = book
        self.gas = gas
        self.slippage = slippage
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

    # --- centralised exchanges -------------------------------------------------------------
    def _cost(self, k: int, position: int, amount_usdt: float, fx: float) -> None:
        self.book.qty[position] -= amount_usdt
        self.book.book_cost(k, TRANSACTION_COSTS, -amount_usdt * fx)

    def spot_trade(self, k: int, spot: SpotMarket, position: int, units: float, price: float, fx: float) -> None:
        """Buy (units > 0) or sell spot for wallet USDT at `price` (USDT); slippage and taker fee are costs."""
        notional = abs(units) * price
        slip = self.slippage.rate(spot.pair, notional * fx)
        qty = self.book.qty
        qty[position] += units
        qty[self.wallet] -= units * price
        # cost = notional x (slippage + taker fee) (venue fee schedule: fee = notional x rate)
        cost = notional * (slip + spot.venue.spot_taker_fee)
        self._cost(k, self.wallet, cost, fx)
        self.events.add(k, "execution", f"spot {spot.venue.name} {units:+.6f} {spot.asset} at {price:.2f}",
                        operation="spot_trade", venue=spot.venue.name, units=units, price=price, cost=cost * fx)

    def perp_trade(self, k: int, perp: PerpMarket, size_pos: int, cash_pos: int, delta: float, fx: float) -> None:
        """Change a perp position by `delta` contracts at mark; slippage and taker fee from its margin."""
        mark = perp.mark[k]
        notional = abs(delta) * mark
        slip = self.slippage.rate(perp.pair, notional * fx)
        qty = self.book.qty
        perp.on_fill(qty[size_pos], delta, mark * (1.0 + slip if delta > 0 else 1.0 - slip))
        qty[size_pos] += delta
        qty[cash_pos] -= delta * mark
        cost = notional * (slip + perp.venue.perp_taker_fee)
        self._cost(k, cash_pos, cost, fx)
        self.events.add(k, "execution", f"perp {perp.venue.name} {delta:+.6f} {perp.symbol} at {mark:.2f}",
                        operation="perp_trade", venue=perp.venue.name, size=delta, price=mark, cost=cost * fx)

    def transfer(self, k: int, source: int, dest: int, amount: float, fee: float, fx: float, label: str) -> None:
        """Move USDT between the wallet and a venue account; the fee is paid by the source."""
        qty = self.book.qty
        qty[source] -= amount
        qty[dest] += amount
        self._cost(k, source, fee, fx)
        self.events.add(k, "transfer", f"transfer {amount:.2f} USDT {label}", amount=amount, cost=fee * fx)
