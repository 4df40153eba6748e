"""How every strategy acts like a careful operator: an action runs for a named trigger (its value
against its threshold) as one transaction, and is undone, as if it never ran, when it would spend
money the portfolio does not hold, break a post-condition, or (unless the trigger is a safety or a
flow) cost more than it may. An error or rebalance_skipped event says why, once until the trigger's
next action; the summary counts every skip. A trigger acts at most once an hour; while it keeps
firing hour after hour (its last try did not clear it), it is tried again only once it has gone
further past its threshold or a day has passed."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from ..execution.events import EventLog
from ..execution.executor import Executor
from ..execution.intents import SAFETY_TRIGGERS
from ..execution.transaction import Transaction

DUST = 1e-9  # fraction of NAV below which a deviation, trade or transfer is float noise, not worth doing
RETRY_HOURS = 24  # a trigger that keeps firing is tried again after this long ...
RETRY_WORSE = 0.1  # ... or once it is this fraction further past its threshold than at its last try
RETRY_FLOOR = 1e-3  # (and by at least this fraction of the threshold)


@dataclass(slots=True)
class Trigger:
    """Why a strategy acts: `value` of the measure `reason` against its `threshold`.

    `forced`: a safety action (health factor, margin) or a flow, taken whatever it costs.
    `corrects`: the share-class value of the deviation the action removes; its cost may not exceed it,
    nor `max_cost` when given (deploying idle cash may cost at most 1% of it, as entering does).
    `min_cost`: what the action is sure to cost (its gas, most of its fees): above the limit, it is
    skipped untried. `every_hour`: tried every hour it fires (the slices of a split order). `moved`: what the
    action moved, known once it ran (share-class units): it may then cost at most `per_moved` of that.
    `urgent`: the action needs the ETH it frees at once (LST exits swap rather than queue); forced ones do.
    """

    reason: str
    value: float
    threshold: float
    forced: bool = False
    corrects: float = math.inf
    max_cost: float | None = None
    min_cost: float = 0.0
    every_hour: bool = False
    moved: Callable[[], float] | None = None
    per_moved: float = 0.0
    urgent: bool = False

    @property
    def safety(self) -> bool:
        """A safety action (health factor, margin ratio, risk override): live limits never block it."""
        return self.reason in SAFETY_TRIGGERS

    @property
    def cost_limit(self) -> float:
        return self.corrects if self.max_cost is None else min(self.corrects, self.max_cost)

    def limit_after(self) -> float:
        """The most the action may cost, once it ran."""
        return self.cost_limit if self.moved is None else min(self.cost_limit, self.per_moved * self.moved())

    def describe(self) -> str:
        side = "<" if self.value < self.threshold else ">="
        return f"{self.reason} {self.value:.6g} {side} {self.threshold:.6g}"

    def details(self) -> dict:
        return {"trigger": self.reason, "trigger_value": self.value, "threshold": self.threshold}


class Backoff:
    """A per-tick shortcut for a trigger its gate skipped: not worth evaluating again (NAV, reserves)
    until a day has passed or its raw measure (e.g. the wallet) grew by RETRY_WORSE."""

    __slots__ = ("above", "until")

    def __init__(self) -> None:
        self.until = -1
        self.above = 0.0

    def waiting(self, k: int, raw: float) -> bool:
        return k < self.until and raw < self.above

    def start(self, k: int, raw: float) -> None:
        self.until = k + RETRY_HOURS
        self.above = raw * (1.0 + RETRY_WORSE)


class ActionGate:
    def __init__(self, executor: Executor, events: EventLog):
        self.executor = executor
        self.events = events
        self._tried: dict[str, tuple[int, float]] = {}  # reason -> (tick, value) of its last action or skip
        self._fired: dict[str, int] = {}  # reason -> last tick it fired
        self._logged: set[str] = set()  # reasons whose skip is logged until one of their actions commits
        self.skips: dict[str, int] = {}  # reason -> how many times its action was skipped
        self.urgent = False  # whether the action running now needs the cash it frees at once

    def should_try(self, k: int, trigger: Trigger) -> bool:
        """At most once an hour; in an unbroken run of firing hours, again only when worse or a day on."""
        reason = trigger.reason
        fired_before, self._fired[reason] = self._fired.get(reason), k
        last = self._tried.get(reason)
        if last is None:
            return True
        k0, v0 = last
        if k0 == k:
            return False
        if trigger.every_hour:
            return True
        if fired_before is None or fired_before < k - 1 or k - k0 >= RETRY_HOURS:  # cleared in between
            return True
        distance0, distance = abs(v0 - trigger.threshold), abs(trigger.value - trigger.threshold)
        return distance > distance0 * (1.0 + RETRY_WORSE) + RETRY_FLOOR * abs(trigger.threshold)

    def attempt(self, k: int, trigger: Trigger, action: Callable[[], None],
                post_condition: Callable[[], str | None] | None = None) -> Transaction | None:
        """Run `action` as a transaction; the committed transaction, or None when nothing was done."""
        if not self.should_try(k, trigger):
            return None
        if not trigger.forced and trigger.min_cost > trigger.cost_limit:
            self._tried[trigger.reason] = (k, trigger.value)
            self._skip(k, trigger, "rebalance_skipped", f"it would cost at least {trigger.min_cost:.6g}, more than "
                       f"{trigger.cost_limit:.6g}, the most it may cost")
            return None
        tx = self.executor.transaction(k)
        self._tried[trigger.reason] = (k, trigger.value)
        outer, self.urgent = self.urgent, trigger.forced or trigger.urgent
        ex = self.executor
        outer_trigger, ex.trigger = ex.trigger, trigger  # each order the action places records what it answers
        try:
            action()
        except Exception as exc:  # half-way through: undone as a whole, like an action that overdraws
            tx.rollback()
            self._skip(k, trigger, "error", f"it failed half-way ({type(exc).__name__}: {exc}); undone")
            return None
        finally:
            self.urgent = outer
            ex.trigger = outer_trigger
        if not tx.acted:  # nothing worth doing: no cost, nothing logged
            return None
        problem = None
        overdrawn = tx.overdrawn()
        if overdrawn:
            problem = "it cannot be paid: it would leave " + ", ".join(f"{key} at {q:.6g}" for key, q in overdrawn)
        elif post_condition is not None and not trigger.forced:
            problem = post_condition()
        if problem is None and not trigger.forced and tx.cost() > (limit := trigger.limit_after()):
            problem = (f"its cost {tx.cost():.6g} exceeds what it corrects ({trigger.corrects:.6g})"
                       if tx.cost() > trigger.corrects else
                       f"its cost {tx.cost():.6g} exceeds {limit:.6g}, the most it may cost")
        if problem is None:
            self._logged.discard(trigger.reason)
            return tx
        tx.rollback()
        self._skip(k, trigger, "error" if overdrawn else "rebalance_skipped", problem)
        return None

    def _skip(self, k: int, trigger: Trigger, kind: str, problem: str) -> None:
        """Count a skip; log the first of each episode (until an action for the trigger commits)."""
        self.skips[trigger.reason] = self.skips.get(trigger.reason, 0) + 1
        if trigger.reason not in self._logged:
            self._logged.add(trigger.reason)
            self.events.add(k, kind, f"action for {trigger.describe()} skipped: {problem}", **trigger.details(),
                            problem=problem)
