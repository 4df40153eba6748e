"""The per-tick loop (ARCHITECTURE.md §1): accrue, external flows, strategy and execution, record balances.

Only plain floats and lists are touched here; valuation and reconciliation of the recorded
balances happen vectorised after the loop.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import RunError
from ..execution.events import EventLog
from ..execution.executor import Executor
from ..portfolio.book import Book
from ..strategies.base import Hooks, Strategy
from .clock import BacktestClock

PROGRESS_EVERY = 2048


def run_loop(clock: BacktestClock, book: Book, strategy: Strategy, hooks: Hooks, executor: Executor,
             flows: list[float], wallet: int, events: EventLog,
             progress: Callable[[int], None] | None = None,
             flow_labels: dict[int, str] | None = None, alarm=None) -> list[list[float]]:
    """Run every tick; returns the quantity of each position after each tick.

    Per tick: the alarm when it is due (the fund's own Aave indexes written ahead: venues/aave_footprint.py),
    accrue (indexes, prices), accrual hooks (funding, rewards), external flows, monitors
    (liquidations, risk), the strategy (acting through the executor); when it acted, the monitors run
    again on the new positions and the strategy may answer once more (the tight loop); then record.
    """
    n = len(clock)
    qty = book.qty
    n_pos = len(qty)
    history = book.history
    accrue = book.accrue
    on_tick = strategy.on_tick
    accruals, monitors = hooks.accruals, hooks.monitors
    positions = list(zip(range(n_pos), history, strict=True))
    if alarm is None:
        alarm = _Never()
    for k in clock.ticks():
        if k >= alarm.at:
            alarm(k)
        if k:
            accrue(k)
            for hook in accruals:
                hook(k)
        flow = flows[k]
        if flow != 0.0:
            _apply_flow(k, flow, book, strategy, wallet, events, (flow_labels or {}).get(k, f"flow at point {k}"))
        for hook in monitors:
            hook(k)
        acted = executor.actions
        on_tick(k)
        if executor.actions != acted:
            for hook in monitors:
                hook(k)
            on_tick(k)
        for j, h in positions:
            h[k] = qty[j]
        if progress is not None and not k % PROGRESS_EVERY:
            progress(k)
    if progress is not None:
        progress(n)
    return history


class _Never:
    at = 2**62


def _apply_flow(k: int, flow: float, book: Book, strategy: Strategy, wallet: int, events: EventLog,
                label: str) -> None:
    """A deposit lands in the wallet; a withdrawal first has the strategy free the cash. One that
    exceeds the NAV, or what unwinding could free, stops the run."""
    if flow > 0.0:
        book.qty[wallet] += flow
        events.add(k, "deposit", f"deposit {flow:.6f}", amount=flow)
        return
    amount = -flow
    nav = book.nav(k)
    if amount > nav:
        raise RunError(f"withdrawal {label} of {amount:,.6f} exceeds the portfolio's NAV {nav:,.6f} there: the "
                       f"portfolio could free at most {max(nav, 0.0):,.6f} (less the costs of unwinding); lower "
                       "the withdrawal in `flows`.")
    strategy.raise_cash(k, amount)
    available = book.qty[wallet]
    if available < amount * (1.0 - 1e-12):
        raise RunError(
            f"withdrawal {label} of {amount:,.6f} exceeds what the portfolio could free: {available:,.6f} in the "
            f"wallet after unwinding (NAV {nav:,.6f} before); lower the withdrawal in `flows`."
        )
    book.qty[wallet] -= amount
    events.add(k, "withdrawal", f"withdrawal {amount:.6f}", amount=amount)
