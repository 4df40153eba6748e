"""One live session per wallet and per exchange account, whatever store each uses.

A session holds a lease on every account it reads and trades: each wallet (chain id and address) and each exchange
account (venue and a hash of its API key; the key itself is never written). A lease is held twice:
- an OS lock file per account (flock, in one folder per machine whoever runs the session: /run/lock/basiskit-leases;
  $BASISKIT_LEASE_DIR moves it): the kernel lets go of it when the process dies, so a second process on this machine
  is refused at once, and a session killed with -9 is free to take over at once; the file names its holder (session,
  store, host, pid);
- a row per account in the store, renewed with the session's heartbeat (every live.heartbeat_s, by a thread of its
  own, whatever the hourly tick is doing): a session on another machine sharing the store is refused while the
  lease is younger than 3 heartbeats, and may take it over after.
`live status` shows a session whose heartbeat is older than 2 heartbeats (or, on this machine, whose lock no
process holds) as `dead`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

from ..errors import ConfigError
from ..results.db import StoreError

TAKEOVER_BEATS = 3  # a lease this many heartbeats old may be taken over
DEAD_BEATS = 2  # a session this many heartbeats without one is dead
LEASE_DIR_ENV = "BASISKIT_LEASE_DIR"


def lease_dir() -> Path:
    """Where the lock files live: $BASISKIT_LEASE_DIR, else one folder per machine whoever runs the session (a shell
    and a service must meet there): /run/lock/basiskit-leases, else {temp dir}/basiskit-leases."""
    if os.environ.get(LEASE_DIR_ENV):
        return Path(os.environ[LEASE_DIR_ENV])
    run_lock = Path("/run/lock")
    if run_lock.is_dir() and os.access(run_lock, os.W_OK):
        return run_lock / "basiskit-leases"
    return Path(tempfile.gettempdir()) / "basiskit-leases"


def _open_lock(path: Path):
    """The lock file, opened for reading and writing; created, readable and writable by every user of the machine
    (any of them may run a session), only when missing (an existing file of another user in the sticky folder is
    opened, not created: Linux's protected_regular refuses O_CREAT on it)."""
    try:
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
                with contextlib.suppress(PermissionError):
                    os.fchmod(fd, 0o666)
            except FileExistsError:  # another process created it meanwhile
                fd = os.open(path, os.O_RDWR)
    except PermissionError:
        raise ConfigError([("lease", str(path), "cannot be opened for writing by this user: make the lease folder "
                            "and its files writable by every user that runs sessions, or set $BASISKIT_LEASE_DIR")]
                          ) from None
    return os.fdopen(fd, "r+")


def account_keys(accounts, store=None, session: str | None = None) -> list[str]:
    """The lease keys of accounts.yaml: wallet:{chain id}:{address}, exchange:{venue}:{hash of the API key}; and,
    given the store and the session's name, session:{store}:{name} (one process per session of a store)."""
    keys = [f"wallet:{accounts.chain_id}:{w.address.lower()}" for w in accounts.wallets]
    if store is not None and session is not None:
        keys.append(f"session:{store.ident}:{session}")
    keys += [f"exchange:{c.venue}:{hashlib.sha256(c.api_key.get_secret_value().encode()).hexdigest()[:16]}"
             for c in accounts.exchanges]
    return sorted(set(keys))


def holder_text(h: dict) -> str:
    age = time.time() - h["heartbeat"] if h.get("heartbeat") else None
    return (f"live session {h.get('session')!r} (pid {h.get('pid')} on {h.get('host')}, store {h.get('db')}"
            + (f", heartbeat {age:.0f} s ago" if age is not None else "") + ")")


def _lock_path(directory: Path, key: str) -> Path:
    """A lease key's lock file (named by a hash: a key holds a path and an address)."""
    return directory / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".lock")


def _lock_soon(f, tries: int = 10, wait: float = 0.05) -> None:
    """flock, tried a few times: `live status` (lock_free) holds a free lock for an instant to see that it is."""
    for attempt in range(tries):
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if attempt == tries - 1:
                raise
            time.sleep(wait)


class Lease:
    """The session's leases and its heartbeat thread; `with lease:` holds them for a run."""

    def __init__(self, store, session: str, keys: list[str], heartbeat_s: float, directory: Path | None = None):
        self.store, self.session, self.keys, self.heartbeat_s = store, session, keys, heartbeat_s
        self.directory = directory or lease_dir()
        self.holder = {"session": session, "db": store.where, "host": socket.gethostname(), "pid": os.getpid(),
                       "leases": str(self.directory)}
        self._files: list = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.beats = 0
        self.acquired = False
        self._beat_store = None

    def path(self, key: str) -> Path:
        return _lock_path(self.directory, key)

    def acquire(self) -> None:
        """Take every lease or none: a held one refuses the start (exit 2), naming its holder."""
        if not self.directory.exists():
            self.directory.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(PermissionError):  # shared by the machine's users (sticky: each its own files)
                self.directory.chmod(0o1777)
        try:
            for key in self.keys:
                f = _open_lock(self.path(key))  # held open: the lock lives as long as the file
                try:
                    _lock_soon(f)
                except BlockingIOError:
                    f.seek(0)
                    try:
                        held = json.loads(f.read() or "{}")
                    except ValueError:
                        held = {}
                    f.close()
                    raise ConfigError([(key.split(":")[0], key, f"is held by {holder_text(held)}: one session per "
                                        "wallet and exchange account; stop that one (`basiskit live kill` halts it, "
                                        "its service manager stops it) or use another account")]) from None
                f.seek(0)
                f.truncate()
                f.write(json.dumps({**self.holder, "key": key, "heartbeat": time.time()}))
                f.flush()
                self._files.append(f)
            stale_after = TAKEOVER_BEATS * self.heartbeat_s
            taken = self.store.take_leases(self.session, self.keys, json.dumps(self.holder), stale_after)
            if taken is not None:
                key, holder, age = taken
                raise ConfigError([(key.split(":")[0], key, f"is held by {holder_text(json.loads(holder))} in the "
                                    f"store (its lease renewed {age:.0f} s ago; it may be taken over after "
                                    f"{stale_after:g} s without a heartbeat)")])
        except BaseException:
            self._unlock()
            raise
        self.acquired = True

    def beat(self) -> None:
        if self._beat_store is None:  # its own handle: never waits for what the session holds (an order's burst)
            self._beat_store = type(self.store)(self.store.path, lock_timeout=self.store.lock_timeout,
                                                analytics=self.store.analytics.root)
        self._beat_store.heartbeat(self.session, self.keys, self.heartbeat_s, json.dumps(self.holder))
        self.beats += 1

    def _run(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                self.beat()
            except Exception:  # noqa: BLE001 (a busy store: the next beat tries again; three misses lose the lease)
                continue

    def start(self) -> None:
        """Hold the leases (taken now unless acquire() took them) and beat until release()."""
        if not self.acquired:
            self.acquire()
        with contextlib.suppress(StoreError):  # a busy store: the lease was taken; the beats that follow renew it
            self.beat()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{self.session}", daemon=True)
        self._thread.start()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.store.release_leases(self.session)
        finally:
            self._unlock()
            self.acquired = False

    def _unlock(self) -> None:
        for f in self._files:
            try:
                fcntl.flock(f, fcntl.LOCK_UN)
            finally:
                f.close()
        self._files = []

    def __enter__(self) -> Lease:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def lock_free(key: str, directory: Path | None = None) -> bool | None:
    """True when no process on this machine holds `key`'s lock file (None: there is no such file here)."""
    path = _lock_path(directory or lease_dir(), key)
    if not path.exists():
        return None
    with open(path) as f:  # flock needs no write access
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(f, fcntl.LOCK_UN)
        return True
