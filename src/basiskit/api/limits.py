"""What one server takes on: per job (workers, runs, runs keeping ticks, body size) and per server (jobs
running at once and waiting, by kind). A refusal names the limit, its value and the `serve` option."""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass

RETRY_AFTER_SECONDS = 30


@dataclass(frozen=True)
class ServiceLimits:
    max_workers: int = os.cpu_count() or 1  # worker processes one sweep may ask for
    max_sweep_runs: int = 5_000
    max_keep_ticks_runs: int = 200  # runs of one sweep that keep their per-tick tables
    max_body_bytes: int = 1_000_000
    running: int = 2  # jobs of each kind running at once
    queue_backtests: int = 100
    queue_sweeps: int = 8
    queue_stress: int = 8
    ray_local: bool = False  # sweeps with backend ray may start a Ray on this machine (without --ray-address)
    checking: int = 1  # requests checked (parsed, validated, data aligned) at once; the rest wait their turn, so
    # the event loop (/health, 429s) and the store's other callers are not starved of the interpreter


class Busy(Exception):
    """The server holds as many jobs of a kind as it may: answered 429 with Retry-After."""

    def __init__(self, kind: str, running: int, queued: int, option: str):
        super().__init__(f"the server already holds {running + queued} {kind} ({running} running at once, "
                         f"{queued} waiting: serve --max-running, {option}); retry later")


class Admission:
    """Jobs of one kind: at most `running` run at once, `queued` more wait; beyond that, Busy."""

    def __init__(self, kind: str, running: int, queued: int, option: str):
        self.kind, self.running_limit, self.queued_limit, self.option = kind, running, queued, option
        self._slots = threading.Semaphore(running)
        self._lock = threading.Lock()
        self.held = 0  # admitted and not finished
        self._active = 0  # running now (through slot())
        self.running_now = None  # or a callable counting them, when another pool runs the jobs

    def admit(self) -> None:
        with self._lock:
            if self.held >= self.running_limit + self.queued_limit:
                raise Busy(self.kind, self.running_limit, self.queued_limit, self.option)
            self.held += 1

    def refusal(self) -> Busy | None:
        """Busy when a job of this kind would be refused now: the front door answers 429 before reading the
        request (admit() decides again once it is checked)."""
        with self._lock:
            full = self.held >= self.running_limit + self.queued_limit
        return Busy(self.kind, self.running_limit, self.queued_limit, self.option) if full else None

    @contextmanager
    def claim(self):
        """Admit a job before it is checked (Busy first: a full server does no work for a request); a refusal or
        error inside leaves again, else the job is held until it ends (slot() or leave())."""
        self.admit()
        try:
            yield
        except BaseException:
            self.leave()
            raise

    def leave(self) -> None:
        """An admitted job that ends without running (refused later, cancelled while waiting)."""
        with self._lock:
            self.held -= 1

    @contextmanager
    def slot(self, cancel: threading.Event | None = None):
        """Wait for a running slot, run, give it back (the admitted job then leaves). Yields True once the slot
        is taken; False when `cancel` was set while it waited (the job then leaves without running)."""
        while not self._slots.acquire(timeout=0.25):
            if cancel is not None and cancel.is_set():
                try:
                    yield False
                finally:
                    self.leave()
                return
        with self._lock:
            self._active += 1
        try:
            yield True
        finally:
            with self._lock:
                self._active -= 1
                self.held -= 1
            self._slots.release()

    @property
    def active(self) -> int:
        if self.running_now is not None:
            return self.running_now()
        with self._lock:
            return self._active

    @property
    def waiting(self) -> int:
        return max(self.held - self.active, 0)
