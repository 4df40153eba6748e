"""The run's event log: executions, flows, data warnings, reconciliation errors."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Event:
    k: int
    type: str
    message: str
    details: dict = field(default_factory=dict)


class EventLog:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def add(self, k: int, type_: str, message: str, **details: object) -> None:
        self.events.append(Event(k, type_, message, details))

    def of_type(self, type_: str) -> list[Event]:
        return [e for e in self.events if e.type == type_]
