"""A strategy's actions at one tick as one transaction: it sees what they did (actions, cost, any
balance they overdrew) and can undo them exactly, as if they had never run."""

from __future__ import annotations

from ..portfolio.attribution import TRANSACTION_COSTS

OVERDRAWN_TOLERANCE = 1e-9  # of NAV: float noise of value-neutral moves, not money spent


class Transaction:
    def __init__(self, executor, k: int):
        book = executor.book
        self.executor = executor
        self.book = book
        self.k = k
        self.qty = book.qty[:]
        self.attribution = [column[k] for column in book.attribution]
        self.n_events = len(executor.events.events)
        self.actions = executor.actions
        self.perps = [(p, p.entry_price, p.realized_pnl) for p in executor.perps]
        self.claims = executor.claims[:]
        self.footprints = [(fp, fp.state()) for fp in executor.footprints.values()]
        self.nav = book.nav(k)

    @property
    def acted(self) -> bool:
        return self.executor.actions != self.actions

    def cost(self) -> float:
        """Fees, slippage, gas and premiums paid since the start, in share-class units (>= 0)."""
        return self.attribution[TRANSACTION_COSTS] - self.book.attribution[TRANSACTION_COSTS][self.k]

    def overdrawn(self) -> list[tuple[str, float]]:
        """Balances that must not be negative (all but debts and perp sizes) and are, beyond float noise."""
        book, k = self.book, self.k
        floor = -OVERDRAWN_TOLERANCE * max(abs(self.nav), abs(book.nav(k)))
        return [(key, q) for key, j, value in book.cash_like(k) if (q := book.qty[j]) < 0.0 and value < floor]

    def rollback(self) -> None:
        book, k = self.book, self.k
        book.qty[:] = self.qty
        for column, value in zip(book.attribution, self.attribution, strict=True):
            column[k] = value
        del self.executor.events.events[self.n_events:]
        self.executor.actions = self.actions
        for perp, entry, realized in self.perps:
            perp.entry_price, perp.realized_pnl = entry, realized
        self.executor.claims = self.claims
        for fp, state in self.footprints:  # the fund's own Aave indexes follow its restored balances
            fp.restore(state)
