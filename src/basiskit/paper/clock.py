"""The paper clock: drives the engine's loop one hour at a time, only once that hour was observed.

Before tick k it waits (for the wall clock: `speed` simulated hours per second in a replay, the real hour
with a live feed), asks the feed for hour k, gives the rows to the market, and refuses to go on while a
required series is staler than its limit: a live feed is polled again (the loop waits, alerting once),
a recorded one can never fill the hole (the session stops, naming it). After tick k the session commits.
Ticks a resumed session already committed are served from the store, without waiting.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Protocol

from ..data.live import LiveMarket, Staleness
from ..errors import RunError
from ..feeds.replay import Delivery, Feed


class ClockedSession(Protocol):
    """What the clock calls on the session it drives (paper/session.py's PaperSession)."""

    def start(self, book, events) -> None: ...
    def before_tick(self, k: int) -> None: ...
    def after_tick(self, k: int, delivery: Delivery) -> None: ...
    def stale(self, k: int, t: int, stale: list[Staleness]) -> None: ...
    def fresh(self, k: int) -> None: ...


class StaleFeed(RunError):
    """A recorded feed has a hole beyond a staleness limit: the session cannot go on."""


class PaperClock:
    def __init__(self, session: ClockedSession, market: LiveMarket, feed: Feed, speed: float,
                 recorded: list[Delivery], poll_seconds: float = 30.0):
        self.session = session
        self.market = market
        self.feed = feed
        self.speed = speed
        self.recorded = recorded
        self.poll_seconds = poll_seconds
        self.deliveries: dict[int, Delivery] = {}
        self._paced_from: tuple[int, float] | None = None

    def __len__(self) -> int:
        return len(self.market.grid)

    def start(self, book, events) -> None:
        self.session.start(book, events)

    def ticks(self) -> Iterator[int]:
        for k in range(len(self.market.grid)):
            if k > self.market.delivered:
                self.deliver(k)
            self.session.before_tick(k)
            yield k
            self.session.after_tick(k, self.deliveries.pop(k))

    def deliver(self, k: int) -> None:
        """Hour k's observations into the market (waiting for them as the feed requires)."""
        market, t = self.market, int(self.market.grid[k])
        if k < len(self.recorded):  # committed before a restart: the same rows, in the same order
            delivery = self.recorded[k]
            self._take(delivery, t)
            market.stale(k)
        else:
            self._pace(k, t)
            delivery = self._poll(k, t)
            self._take(delivery, t)
            while stale := market.stale(k):
                self.session.stale(k, t, stale)
                if self.feed.final:
                    raise StaleFeed(_stale_message(stale, t))
                time.sleep(self.poll_seconds)
                more = self.feed.hour(k, t)
                if more is not None:
                    delivery.merge(more)
                    self._take(more, t)
            self.session.fresh(k)
        market.fill(k)
        self.deliveries[k] = delivery

    def _take(self, delivery: Delivery, t: int) -> None:
        for series, rows in delivery.rows.items():
            for ts, values in rows:
                self.market.take(series, ts, values, t)

    def _poll(self, k: int, t: int) -> Delivery:
        while (delivery := self.feed.hour(k, t)) is None:
            time.sleep(self.poll_seconds)
        return delivery

    def _pace(self, k: int, t: int) -> None:
        ready_at = getattr(self.feed, "ready_at", None)
        if ready_at is not None:  # a live feed: hour t can be observed from ready_at(t) on (wall clock)
            while (delay := ready_at(t) - time.time()) > 0:
                time.sleep(min(delay, self.poll_seconds))
            return
        if self.speed <= 0:
            return
        if self._paced_from is None:
            self._paced_from = (k, time.monotonic())
        k0, w0 = self._paced_from
        delay = w0 + (k - k0) / self.speed - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def _stale_message(stale: list[Staleness], t: int) -> str:
    from ..data.timeutil import iso

    lines = [f"the feed is stale at {iso(t)} and, being recorded, cannot catch up:"]
    lines += [f"  - {s.message()}" for s in stale]
    lines.append("The session stopped before trading on stale data (its last tick is stored). Raise the limit "
                 "(--set data.staleness_hours...) and `basiskit paper resume`, or replay a window without the hole.")
    return "\n".join(lines)
