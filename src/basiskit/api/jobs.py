"""Backtest jobs run outside the request thread, in a process pool; jobs and results live in the
results store, so a restart loses no finished result and marks interrupted jobs as failed."""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
import traceback
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from pathlib import Path

from ..config import parse
from ..results.db import RunStore
from ..results.service import execute

INTERRUPTED = "interrupted: the service stopped before the run finished"


class JobCancelled(Exception):
    """Raised inside a worker when its job was cancelled."""


def run_job(run_id: str, config: dict, data_dir: str, data_label: str, progress, cancelled) -> tuple:
    """Worker process: run one backtest; returns (summary, ticks, events)."""

    def report(done: int, total: int) -> None:
        if cancelled.get(run_id):
            raise JobCancelled(run_id)
        progress[run_id] = done / total if total else 0.0

    output = execute(parse(config), Path(data_dir), data_label, run_id, report)  # rules: in Backtest
    return output.summary, output.ticks, output.events


class JobManager:
    def __init__(self, store: RunStore, data_dir: Path, data_label: str, workers: int = 2, on_saved=None):
        """`on_saved(run_id)`: called on a thread of its own once a finished run is stored (the API computes its
        tearsheet there, so the run's page opens without waiting for it)."""
        self.on_saved = on_saved
        self.store = store
        self.data_dir = data_dir
        self.data_label = data_label
        ctx = multiprocessing.get_context("spawn")
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
        self._manager = ctx.Manager()
        self.progress = self._manager.dict()
        self.cancelled = self._manager.dict()
        self.futures: dict[str, Future] = {}
        self.configs: dict[str, dict] = {}
        self.admissions: dict[str, object] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, daemon=True)
        self._poller.start()

    def submit(self, run_id: str, config: dict, admission=None) -> None:
        """Queue a backtest; `admission` (limits.Admission) counts it until it ends."""
        if admission is not None:
            admission.running_now = self.running_count
            self.admissions[run_id] = admission
        fut = self.pool.submit(run_job, run_id, config, str(self.data_dir), self.data_label, self.progress,
                               self.cancelled)
        with self._lock:
            self.futures[run_id] = fut
            self.configs[run_id] = config
        fut.add_done_callback(lambda f, rid=run_id: self._finish(rid, f))

    def _finish(self, run_id: str, fut: Future) -> None:
        try:
            summary, ticks, events = fut.result()
        except (CancelledError, JobCancelled):
            self.store.set_status(run_id, "cancelled", error="cancelled by request")
        except Exception as exc:  # the job's own error, reported to the user
            msg = str(exc) if str(exc) else traceback.format_exception_only(exc)[-1].strip()
            self.store.set_status(run_id, "failed", error=msg)
        else:
            self.store.save_result(run_id, summary, ticks, events, self.configs[run_id])
            if self.on_saved is not None:
                threading.Thread(target=self.on_saved, args=(run_id,), daemon=True).start()
        finally:
            with self._lock:
                self.futures.pop(run_id, None)
                self.configs.pop(run_id, None)
                admission = self.admissions.pop(run_id, None)
            if admission is not None:
                admission.leave()

    def running_count(self) -> int:
        with self._lock:
            return sum(f.running() for f in self.futures.values())

    def _poll(self) -> None:
        """Copy workers' progress into the store (status running) twice a second."""
        while not self._stop.wait(0.5):
            with self._lock:
                active = [rid for rid, f in self.futures.items() if f.running()]
            for rid in active:
                p = self.progress.get(rid)
                if p is not None:
                    with contextlib.suppress(Exception):  # a busy store must not kill the poller
                        self.store.set_progress(rid, float(p))

    def live_progress(self, run_id: str) -> float | None:
        return self.progress.get(run_id)

    def cancel(self, run_id: str) -> bool:
        with self._lock:
            fut = self.futures.get(run_id)
        if fut is None:
            return False
        if not fut.cancel():
            self.cancelled[run_id] = True
        return True

    def shutdown(self) -> None:
        self._stop.set()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self._manager.shutdown()
