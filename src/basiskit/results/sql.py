"""The operational store's connection, one code path for two backends through SQLAlchemy:

- SQLite in WAL mode (a file; the embedded default): readers never wait for a writer, writers take the file's
  lock only for a transaction's few milliseconds and wait for one another up to a busy timeout;
- PostgreSQL, when the store is given as `postgresql://...` (a deployment's shared server).

The stores write one SQL text with `?` placeholders; `Connection` maps what differs (placeholders, `epoch()`,
`greatest()`, column types, how a write transaction starts) and gives every row the same Python values on both:
aware UTC datetimes, floats, ints, JSON as text. Explicit transactions (BEGIN ... COMMIT) nest (an inner one joins
the outer) and are serialized across processes on both backends (SQLite: BEGIN IMMEDIATE; PostgreSQL: a
transaction-scoped advisory lock), as one writer at a time."""

from __future__ import annotations

import contextlib
import os
import random
import re
import threading
import time
import weakref
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.pool import NullPool

from ..errors import BasiskitError

WRITE_LOCK = 7_210_563  # PostgreSQL advisory-lock key that serializes the stores' explicit transactions
_TS_FORMAT = "%Y-%m-%d %H:%M:%S.%f+00:00"  # how SQLite holds a TIMESTAMPTZ: sortable text, always UTC
_WRITES = ("INSERT", "UPDATE", "DELETE")
_EPOCH = re.compile(r"\bepoch\(([\w.]+)\)")
_TYPES = {"sqlite": {"JSON": "TEXT", "TIMESTAMPTZ": "TEXT", "DOUBLE": "REAL"},
          "postgresql": {"JSON": "TEXT", "DOUBLE": "DOUBLE PRECISION"}}


class StoreError(BasiskitError):
    """The store cannot be used (busy for too long, unreachable, corrupt, unknown run)."""


class StoreBusy(StoreError):
    """The store could not be had now (another process's transaction held it past the lock timeout, or the server
    did not answer): the same write may succeed later."""


def is_url(target: str | os.PathLike) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql:", "postgresql+", "postgres:"))


def shown_url(url: str) -> str:
    """A database URL as it may be shown: scheme, user, host, port and database only (no password, wherever it was
    given, and no query)."""
    try:
        u = sa.engine.make_url(url)
    except Exception:  # noqa: BLE001 (an unparsable URL: only its scheme is shown)
        return url.split(":", 1)[0] + "://..."
    return (f"{u.drivername.split('+')[0]}://{u.username + '@' if u.username else ''}{u.host or ''}"
            f"{':' + str(u.port) if u.port else ''}/{u.database or ''}")


def engine_for(target: str | Path, busy_timeout: float) -> sa.Engine:
    """An engine in autocommit mode (transactions are the stores' own BEGIN/COMMIT)."""
    if is_url(target):
        url = sa.engine.make_url(target)
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        ms = int(busy_timeout * 1000)
        try:  # a row lock waits no longer than the store's lock timeout; a dead server is found within ~20 s
            return sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool, connect_args={
                "options": f"-c timezone=UTC -c lock_timeout={ms} -c idle_in_transaction_session_timeout=60000",
                "connect_timeout": 10, "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
                "keepalives_count": 2, "tcp_user_timeout": 20_000})
        except ModuleNotFoundError as exc:
            raise StoreError(f"--db {shown_url(str(target))}: PostgreSQL needs the psycopg driver ({exc.name} is "
                             "missing): pip install 'basiskit[postgres]'") from None
    path = Path(target)
    engine = sa.create_engine(sa.engine.URL.create("sqlite", database=str(path)), isolation_level="AUTOCOMMIT",
                              poolclass=NullPool,
                              connect_args={"timeout": busy_timeout, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_con, _record):  # WAL: readers and one writer at once; FULL: a commit survives power loss
        cur = dbapi_con.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cur.execute("PRAGMA synchronous=FULL")
        cur.close()

    return engine


def _param(value, backend: str):
    if isinstance(value, datetime):
        if backend == "sqlite":
            return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).strftime(_TS_FORMAT)
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if hasattr(value, "item") and not isinstance(value, str | bytes):  # numpy scalars
        return value.item()
    return value


def _value(value):
    if isinstance(value, str) and len(value) == 32 and value[26:] == "+00:00" and value[4] == "-" and \
            value[19] == ".":
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, Decimal):
        return float(value)
    return value


class Result:
    """A statement's rows, as the stores read them."""

    def __init__(self, keys: list[str], rows: list[tuple]):
        self.description = [(k,) for k in keys]
        self._rows = rows
        self._at = 0

    def fetchone(self):
        if self._at >= len(self._rows):
            return None
        self._at += 1
        return self._rows[self._at - 1]

    def fetchall(self) -> list[tuple]:
        rows, self._at = self._rows[self._at:], len(self._rows)
        return rows

    def df(self):
        """The rows as a DataFrame: a column of numbers (NULL as NaN) is numeric, any other keeps its Python values
        (NULL as None)."""
        import pandas as pd

        rows = self.fetchall()
        out = {}
        for j, (name,) in enumerate(self.description):
            values = [r[j] for r in rows]
            numbers = [v for v in values if v is not None]
            if numbers and all(isinstance(v, int | float) and not isinstance(v, bool) for v in numbers):
                out[name] = pd.to_numeric(pd.Series(values, dtype=object))
            else:
                out[name] = pd.Series(values, dtype=object)
        return pd.DataFrame(out, columns=[d[0] for d in self.description])


class Connection:
    """One DBAPI connection to the store in autocommit mode (a process's, guarded by its store's lock).

    A failure inside a transaction rolls it back at once (PostgreSQL aborts it anyway) and dooms it: the caller's
    ROLLBACK ends it, a COMMIT or any other statement in it raises. A lost connection (the server restarted) is
    `broken`: the store opens a new one for its next operation."""

    def __init__(self, engine: sa.Engine, where: str, busy_timeout: float):
        self.backend = engine.dialect.name
        self.where, self.busy_timeout = where, busy_timeout
        self._dbapi = engine.dialect.loaded_dbapi
        try:
            self._raw = engine.raw_connection()
        except (sa.exc.DBAPIError, self._dbapi.Error) as exc:
            orig = getattr(exc, "orig", exc)
            kind = StoreBusy if isinstance(orig, self._dbapi.OperationalError) else StoreError
            raise kind(f"store {where} cannot be opened: {_reason(orig)}") from None
        self.broken = False
        self._depth = 0
        self._doomed: str | None = None
        self._cache: dict[str, str] = {}

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._raw.close()

    @property
    def in_transaction(self) -> bool:
        return self._depth > 0

    def _sql(self, sql: str) -> str:
        got = self._cache.get(sql)
        if got is None:
            got = _EPOCH.sub(r"((julianday(\1) - 2440587.5) * 86400.0)" if self.backend == "sqlite"
                             else r"extract(epoch from \1)", sql)
            if self.backend == "sqlite":
                got = re.sub(r"\bgreatest\(", "max(", got)
            else:
                got = got.replace("%", "%%").replace("?", "%s")
            self._cache[sql] = got
        return got

    def ddl(self, sql: str) -> None:
        for word, kind in _TYPES[self.backend].items():
            sql = re.sub(rf"\b{word}\b", kind, sql)
        self._run(sql, ())

    def execute(self, sql: str, params=()) -> Result:
        word = sql.strip().upper()
        if word in ("BEGIN", "BEGIN TRANSACTION"):
            return self._begin()
        if word == "COMMIT":
            return self._end(commit=True)
        if word == "ROLLBACK":
            return self._end(commit=False)
        params = tuple(_param(p, self.backend) for p in params)
        if self._depth or self.backend != "sqlite" or not word.startswith(_WRITES):
            return self._run(self._sql(sql), params)
        return self._alone(lambda: self._run(self._sql(sql), params))

    def executemany(self, sql: str, rows) -> None:
        rows = [tuple(_param(p, self.backend) for p in r) for r in rows]
        if rows:
            self._alone(lambda: self._run(self._sql(sql), rows, many=True))  # all rows or none

    def _alone(self, work):
        """A write in its own transaction (or in the one open): its lock taken as a transaction's is (below), not
        by SQLite's busy handler."""
        self._begin()
        try:
            got = work()
        except BaseException:
            self._end(commit=False)
            raise
        self._end(commit=True)
        return got

    def _run(self, sql: str, params, many: bool = False) -> Result:
        if self._doomed:
            raise StoreError(f"store {self.where}: this transaction was rolled back ({self._doomed})")
        cur = self._raw.cursor()
        try:
            (cur.executemany if many else cur.execute)(sql, params)
            if cur.description is None:
                return Result([], [])
            return Result([d[0] for d in cur.description], [tuple(_value(v) for v in r) for r in cur.fetchall()])
        except self._dbapi.Error as exc:
            busy = isinstance(exc, self._dbapi.OperationalError)
            why = _reason(exc)
            self._failed(why)
            raise (StoreBusy if busy else StoreError)(f"store {self.where}: {why}") from None
        finally:
            with contextlib.suppress(Exception):
                cur.close()

    def _failed(self, why: str) -> None:
        if self.backend != "sqlite" and getattr(self._raw.driver_connection, "broken", False):
            self.broken = True  # the server is gone: nothing to roll back here
            self._depth, self._doomed = 0, None
            return
        if self._depth:
            self._rollback()
            self._doomed = why

    def _rollback(self) -> None:
        cur = self._raw.cursor()
        try:
            cur.execute("ROLLBACK")
        except self._dbapi.Error:
            if self.backend != "sqlite":
                self.broken = True  # cannot even roll back: a new connection next time
        finally:
            with contextlib.suppress(Exception):
                cur.close()

    def _begin(self) -> Result:
        if self._depth == 0:
            self._lock()
        self._depth += 1
        return Result([], [])

    def _lock(self) -> None:
        """Start a write transaction once this process may write, trying every 0.5-3 ms up to the busy timeout.
        SQLite: BEGIN IMMEDIATE (the write lock now, not at the first write, so two writers never deadlock
        upgrading a read); its own busy handler sleeps ever longer between tries (up to 100 ms), so under steady
        contention one writer could wait out the others for seconds. PostgreSQL: BEGIN, then the stores' advisory
        lock (one writing transaction at a time, as on SQLite)."""
        deadline = time.monotonic() + self.busy_timeout
        if self.backend == "sqlite":
            self._run("PRAGMA busy_timeout=0", ())
        try:
            while True:
                try:
                    if self.backend == "sqlite":
                        self._run("BEGIN IMMEDIATE", ())
                        return
                    self._run("BEGIN", ())
                    self._depth = 1  # a failure below rolls it back
                    if self._run(f"SELECT pg_try_advisory_xact_lock({WRITE_LOCK})", ()).fetchone()[0]:
                        self._depth = 0
                        return
                    self._rollback()
                    self._depth = 0
                except StoreBusy:
                    self._depth, self._doomed = 0, None
                    if self.broken or time.monotonic() > deadline:
                        raise
                if time.monotonic() > deadline:
                    raise StoreBusy(f"store {self.where}: another process held its write lock for over "
                                    f"{self.busy_timeout:g} s (another process is writing to it)")
                time.sleep(random.uniform(0.0005, 0.003))
        except StoreError:
            self._depth, self._doomed = 0, None
            raise
        finally:
            if self.backend == "sqlite" and not self.broken:
                self._run_quiet(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")

    def _run_quiet(self, sql: str) -> None:
        cur = self._raw.cursor()
        try:
            cur.execute(sql)
        finally:
            cur.close()

    def _end(self, commit: bool) -> Result:
        if self._depth == 0:
            return Result([], [])  # nothing open (a rollback after a commit went through)
        self._depth -= 1
        if self._doomed:
            why = self._doomed
            if self._depth == 0:
                self._doomed = None
            if commit:
                raise StoreError(f"store {self.where}: this transaction was rolled back ({why}); nothing of it was "
                                 "written")
            return Result([], [])
        if not commit:
            self._rollback()  # an inner rollback ends the outer transaction too: it is doomed
            if self._depth:
                self._doomed = "an inner part of it failed"
            return Result([], [])
        if self._depth == 0:
            self._run("COMMIT", ())
        return Result([], [])


def _reason(exc: BaseException | None) -> str:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if "locked" in text or "busy" in text:
        text += " (another process is writing to it)"
    return text


class Database:
    """A store's engine and this process's connection to it (opened again in a forked child)."""

    def __init__(self, target: str | Path, busy_timeout: float):
        self.target = target
        self.where = shown_url(target) if is_url(target) else str(target)
        self.busy_timeout = busy_timeout
        self.engine = engine_for(target, busy_timeout)
        self.backend = self.engine.dialect.name
        self._con: Connection | None = None
        self._pid = os.getpid()
        self.lock = threading.RLock()
        _DATABASES.add(self)

    def connection(self) -> Connection:
        if self._pid != os.getpid():  # a forked child: the parent's connection is not ours to use
            self._forked()
        if self._con is not None and self._con.broken:  # the server went away: a new connection
            self._con.close()
            self._con = None
        if self._con is None:
            self._con = Connection(self.engine, self.where, self.busy_timeout)
        return self._con

    def _forked(self) -> None:
        """In a forked child: the parent's connection is left alone (never closed here), the lock is new."""
        self.engine.dispose(close=False)
        self._con, self._pid, self.lock = None, os.getpid(), threading.RLock()

    def close(self) -> None:
        if self._con is not None and self._pid == os.getpid():
            self._con.close()
        self._con = None
        self.engine.dispose()


_DATABASES: weakref.WeakSet[Database] = weakref.WeakSet()
os.register_at_fork(after_in_child=lambda: [db._forked() for db in list(_DATABASES)])
