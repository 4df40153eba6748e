"""The action gate and the transaction, directly: an action that raises half-way is undone like one that
overdraws (balances, attribution, events, perp state), says why once and counts as a skip; the gate decides
per trigger (one that keeps firing waits, another is tried)."""

from __future__ import annotations

import pytest

from basiskit.data.dataset import SAMPLE_DIR, Dataset
from basiskit.engine.run import Backtest
from basiskit.engine.runconfig import load_run_config
from basiskit.strategies.discipline import Trigger


@pytest.fixture
def lending():
    cfg = load_run_config("pure_lending_usdt", extra={"start": "2024-11-01T00:00:00Z", "end": "2024-11-03T00:00:00Z"})
    bt = Backtest(cfg, Dataset(SAMPLE_DIR))
    bt.run()
    return bt


def state(bt, k):
    book = bt.executor.book
    return list(book.qty), [column[k] for column in book.attribution], len(bt.executor.events.events)


def test_an_action_that_raises_half_way_is_undone_as_a_whole(lending):
    s, ex, gate = lending.strategy, lending.executor, lending.strategy.gate
    k = 40
    before = state(lending, k)
    ran: list[str] = []

    def half_way():
        ex.aave_withdraw(k, s.reserve, s.position, 1000.0)  # moves balances and pays gas ...
        ran.append("withdrew")
        raise RuntimeError("the venue said no")  # ... then fails before the rest of the action

    tx = gate.attempt(k, Trigger("deviation", 0.5, 0.1), half_way)
    assert ran == ["withdrew"] and tx is None
    qty, attribution, n_events = state(lending, k)
    assert (qty, attribution) == before[:2]  # every balance and the hour's attribution as before
    new = ex.events.events[before[2]:]
    assert [e.type for e in new] == ["error"] and n_events == before[2] + 1  # the withdrawal's event is gone
    assert "failed half-way (RuntimeError: the venue said no); undone" in new[0].message
    assert gate.skips == {"deviation": 1}


def test_an_overdraft_is_undone_the_same_way(lending):
    s, ex, gate = lending.strategy, lending.executor, lending.strategy.gate
    k = 41
    before = state(lending, k)
    wallet = lending.executor.wallet
    tx = gate.attempt(k, Trigger("deviation", 0.5, 0.1),
                      lambda: ex.aave_supply(k, s.reserve, s.position, ex.book.qty[wallet] + 10.0))
    assert tx is None and state(lending, k)[:2] == before[:2]
    assert "it cannot be paid" in ex.events.events[-1].message


def test_the_gate_decides_per_trigger(lending):
    gate = lending.strategy.gate
    calls: list[str] = []

    def act(name):
        return lambda: calls.append(name)  # a no-op action: nothing moved, nothing to undo

    gate.attempt(30, Trigger("deviation", 0.5, 0.1), act("deviation@30"))
    gate.attempt(31, Trigger("deviation", 0.5, 0.1), act("deviation@31"))  # still firing, no worse: waits
    gate.attempt(31, Trigger("idle_cash", 0.5, 0.1), act("idle_cash@31"))  # another trigger: its own gate
    gate.attempt(32, Trigger("deviation", 0.6, 0.1), act("deviation@32"))  # 25% further past: tried again
    gate.attempt(32, Trigger("build", 0.5, 0.0, every_hour=True), act("build@32"))
    gate.attempt(33, Trigger("build", 0.5, 0.0, every_hour=True), act("build@33"))  # a split order's slices
    gate.attempt(33, Trigger("build", 0.5, 0.0, every_hour=True), act("build@33 again"))  # once an hour
    assert calls == ["deviation@30", "idle_cash@31", "deviation@32", "build@32", "build@33"]
