"""The run's event log: executions, flows, data warnings, reconciliation errors."""

from __future__ import annotations

from dataclasses import dataclass, field

from .intents import OrderIntent


@dataclass(frozen=True, slots=True)
class Event:
    k: int
    type: str
    message: str  # for people: nothing routes on it (an action's order is its `intent`)
    details: dict = field(default_factory=dict)
    intent: OrderIntent | None = None


class EventLog:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def add(self, k: int, type_: str, message: str, intent: OrderIntent | None = None, **details: object) -> None:
        self.events.append(Event(k, type_, message, details, intent))

    def of_type(self, type_: str) -> list[Event]:
        return [e for e in self.events if e.type == type_]
