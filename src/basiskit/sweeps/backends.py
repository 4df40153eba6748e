"""Where a sweep's runs execute: here (one process), a pool of long-lived local processes, or Ray
actors on a cluster. Every backend gives the same rows, to the last bit."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path

from ..data.dataset import Dataset
from ..errors import BasiskitError
from .plan import Task
from .worker import SweepWorker, init_process, run_in_process

CANCEL_POLL_S = 0.5  # how often a running sweep looks at its cancel flag


class Backend:
    def run(self, tasks: list[Task], keep_ticks: bool, cancelled: Callable[[], bool]) -> Iterator[dict]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class InProcess(Backend):
    """One worker in this process (--workers 1)."""

    def __init__(self, dataset: Dataset):
        self.worker = SweepWorker(dataset)

    def run(self, tasks, keep_ticks, cancelled):
        for task in tasks:
            if cancelled():
                return
            yield self.worker.run(task, keep_ticks)


class LocalPool(Backend):
    """Long-lived worker processes, each loading the dataset once."""

    def __init__(self, data_dir: Path, workers: int):
        ctx = multiprocessing.get_context("spawn")
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=init_process,
                                        initargs=(str(data_dir),))
        self.window = workers * 4  # tasks in flight: enough to keep every worker busy
        self.abandoned = False  # cancelled with tasks in flight: close() ends the workers

    def run(self, tasks, keep_ticks, cancelled):
        pending: set[Future] = set()
        queue = iter(tasks)
        while True:
            while len(pending) < self.window and not cancelled():
                task = next(queue, None)
                if task is None:
                    break
                pending.add(self.pool.submit(run_in_process, task, keep_ticks))
            if not pending:
                return
            done, pending = wait(pending, timeout=CANCEL_POLL_S, return_when=FIRST_COMPLETED)
            for fut in done:
                yield fut.result()
            if cancelled() and pending:  # what finished is kept; what is in flight is dropped with its worker
                for fut in pending:
                    fut.cancel()
                self.abandoned = True
                return

    def close(self) -> None:
        if self.abandoned:  # a cancelled sweep's runs in flight stop now, not when they finish
            for process in list(getattr(self.pool, "_processes", {}).values()):  # the executor's own workers
                process.terminate()
            self.pool.shutdown(wait=True, cancel_futures=True)
            return
        self.pool.shutdown(wait=True, cancel_futures=True)


_RAY_LOCK = threading.Lock()
_RAY_USERS = [0, False]  # sweeps of this process using Ray now; whether this process started it


class RayActors(Backend):
    """Ray actors (one per worker), each holding the dataset, which is put in the object store once
    (Ray copies it to each node once). Sweeps of one process share its Ray: the last to finish shuts down a
    Ray this process started; one it joined is left running."""

    def __init__(self, dataset: Dataset, workers: int, address: str | None):
        try:
            import ray
            from ray.util import ActorPool
        except ImportError as exc:
            raise BasiskitError("the Ray backend needs Ray: pip install 'basiskit[ray]'") from exc
        self.ray = ray
        with _RAY_LOCK:
            if not ray.is_initialized():
                if address:
                    ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
                else:  # a Ray of our own: its session files and auth token are the owner's alone
                    old = os.umask(0o077)
                    try:
                        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
                                 logging_level=logging.WARNING)
                    finally:
                        os.umask(old)
                    # Ray keeps its token-auth secret in ~/.ray/auth_token, created once (an older one may be
                    # world-readable); Ray 2.60's servers listen on every interface whatever the node address, so
                    # this token is what keeps others out (measured; see README)
                    token = Path.home() / ".ray" / "auth_token"
                    with contextlib.suppress(OSError):
                        if token.stat().st_mode & 0o077 and token.stat().st_uid == os.getuid():
                            token.chmod(0o600)
                _RAY_USERS[1] = True
            _RAY_USERS[0] += 1
        dataset.load_all()
        ref = ray.put(dataset)
        actor = ray.remote(num_cpus=1)(RayWorker)
        self.actors = [actor.remote(ref) for _ in range(workers)]
        self.pool = ActorPool(self.actors)

    def run(self, tasks, keep_ticks, cancelled):
        for task in tasks:  # the pool hands them to actors as they free up
            self.pool.submit(lambda actor, t: actor.run.remote(t, keep_ticks), task)
        while self.pool.has_next() and not cancelled():
            try:
                yield self.pool.get_next_unordered(timeout=CANCEL_POLL_S)
            except TimeoutError:  # nothing finished yet: look at the cancel flag again
                continue

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        with _RAY_LOCK:
            _RAY_USERS[0] -= 1
            if _RAY_USERS[0] == 0 and _RAY_USERS[1]:
                self.ray.shutdown()
                _RAY_USERS[1] = False


class RayWorker:
    """The Ray actor: a SweepWorker over the dataset from the object store."""

    def __init__(self, dataset: Dataset):
        self.worker = SweepWorker(dataset)

    def run(self, task: Task, keep_ticks: bool) -> dict:
        return self.worker.run(task, keep_ticks)


class RayProcess(Backend):
    """Ray's driver (RayActors) in a spawned child process of its own, fed tasks and giving back rows through
    queues: a Ray failure, even one that ends its process, fails the sweep with what happened, never the process
    that runs the sweep (the API's). A cancel or close ends the child (SIGTERM: it shuts down a Ray it started)."""

    def __init__(self, data_dir: Path, workers: int, address: str | None):
        ctx = multiprocessing.get_context("spawn")
        self.inbox, self.outbox = ctx.Queue(), ctx.Queue()
        self.proc = ctx.Process(target=_ray_driver, args=(str(data_dir), workers, address, self.inbox, self.outbox),
                                name="basiskit-ray-driver", daemon=True)
        self.proc.start()
        kind, payload = self._next(lambda: False, RAY_START_S)
        if kind != "ready":
            self.close()
            raise BasiskitError(f"Ray could not be started: {payload}")

    def _next(self, cancelled: Callable[[], bool], timeout: float) -> tuple[str, object]:
        import queue

        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.outbox.get(timeout=CANCEL_POLL_S)
            except queue.Empty:
                if not self.proc.is_alive():
                    return "error", f"its driver process ended (exit code {self.proc.exitcode})"
                if cancelled():
                    return "cancelled", None
                if time.monotonic() > deadline:
                    return "error", f"no answer from its driver process in {timeout:g} s"

    def run(self, tasks, keep_ticks, cancelled):
        tasks = list(tasks)
        self.inbox.put(("run", tasks, keep_ticks))
        for _ in tasks:
            kind, payload = self._next(cancelled, RAY_TASK_S)
            if kind == "cancelled":
                return
            if kind == "error":
                raise BasiskitError(f"Ray failed: {payload}; the sweep stops (what finished is kept)")
            yield payload

    def close(self) -> None:
        if self.proc.is_alive():
            self.proc.terminate()  # SIGTERM: the driver shuts down a Ray it started, then exits
            self.proc.join(RAY_STOP_S)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        with contextlib.suppress(ProcessLookupError, PermissionError):  # what it left of Ray (a driver killed -9
            os.killpg(self.proc.pid, signal.SIGKILL)  # leaves its agents): its own process group


RAY_START_S = 180.0  # the longest a Ray driver may take to start
RAY_TASK_S = 3600.0  # the longest one run may take on Ray before the sweep gives up on it
RAY_STOP_S = 30.0


def _ray_driver(data_dir: str, workers: int, address: str | None, inbox, outbox) -> None:
    """The child of RayProcess: RayActors over the dataset; runs what it is sent until told to stop."""
    import sys

    os.setpgrp()  # Ray's processes started here are this group's: the parent ends them all with it
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        backend = RayActors(Dataset(Path(data_dir)), workers, address)
    except BaseException as exc:  # noqa: BLE001 (told to the parent, which fails the sweep with it)
        outbox.put(("error", f"{type(exc).__name__}: {exc}"))
        return
    try:
        outbox.put(("ready", None))
        while True:
            _, tasks, keep_ticks = inbox.get()
            try:
                for row in backend.run(tasks, keep_ticks, lambda: False):
                    outbox.put(("row", row))
            except Exception as exc:  # noqa: BLE001 (an actor died, the cluster went away: the sweep fails)
                outbox.put(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        backend.close()


def make_backend(kind: str, data_dir: Path, dataset: Dataset, workers: int, ray_address: str | None) -> Backend:
    if kind == "ray":
        return RayProcess(data_dir, workers, ray_address)
    return InProcess(dataset) if workers == 1 else LocalPool(data_dir, workers)
