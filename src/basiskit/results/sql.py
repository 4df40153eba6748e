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

import os
import random
import re
import threading
import time
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
    """A database URL without its password."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 (an unparsable URL: only its scheme is shown)
        return url.split(":", 1)[0] + "://..."


def engine_for(target: str | Path, busy_timeout: float) -> sa.Engine:
    """An engine in autocommit mode (transactions are the stores' own BEGIN/COMMIT)."""
    if is_url(target):
        url = sa.engine.make_url(target)
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        try:
            return sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool,
                                    connect_args={"options": "-c timezone=UTC", "connect_timeout": 10})
        except ModuleNotFoundError as exc:
            raise StoreError(f"--db {shown_url(str(target))}: PostgreSQL needs the psycopg driver ({exc.name} is "
                             "missing): pip install 'basiskit[postgres]'") from None
    path = Path(target)
    engine = sa.create_engine(f"sqlite:///{path}", isolation_level="AUTOCOMMIT", poolclass=NullPool,
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
    """One connection to the store (a process's, guarded by its store's lock)."""

    def __init__(self, engine: sa.Engine, where: str, busy_timeout: float):
        self.backend = engine.dialect.name
        self.where, self.busy_timeout = where, busy_timeout
        try:
            self._con = engine.connect()
        except sa.exc.OperationalError as exc:
            raise StoreBusy(f"store {where} cannot be opened: {_reason(exc)}") from None
        except sa.exc.DBAPIError as exc:
            raise StoreError(f"store {where} cannot be opened: {_reason(exc)}") from None
        self._depth = 0
        self._cache: dict[str, str] = {}

    def close(self) -> None:
        self._con.close()

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
        self._begin()  # a lone write: its lock is taken as a transaction's is (below), not by SQLite's busy handler
        try:
            got = self._run(self._sql(sql), params)
        except BaseException:
            self._end(commit=False)
            raise
        self._end(commit=True)
        return got

    def executemany(self, sql: str, rows) -> None:
        rows = [tuple(_param(p, self.backend) for p in r) for r in rows]
        if not rows:
            return
        self._begin()  # all rows or none
        try:
            self._run(self._sql(sql), rows)
        except BaseException:
            self._end(commit=False)
            raise
        self._end(commit=True)

    def _run(self, sql: str, params) -> Result:
        try:
            res = self._con.exec_driver_sql(sql, params)
        except sa.exc.OperationalError as exc:
            raise StoreBusy(f"store {self.where}: {_reason(exc)}") from None
        except sa.exc.DBAPIError as exc:
            raise StoreError(f"store {self.where}: {_reason(exc)}") from None
        if not res.returns_rows:
            return Result([], [])
        return Result(list(res.keys()), [tuple(_value(v) for v in r) for r in res.fetchall()])

    def _begin(self) -> Result:
        if self._depth == 0:
            if self.backend == "sqlite":
                self._lock_sqlite()
            else:
                self._run("BEGIN", ())
                self._run(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})", ())
        self._depth += 1
        return Result([], [])

    def _lock_sqlite(self) -> None:
        """BEGIN IMMEDIATE: the write lock now, not at the first write (two writers never deadlock upgrading a read),
        tried again every 0.5-3 ms up to the busy timeout. SQLite's own busy handler sleeps ever longer between tries
        (up to 100 ms), so under steady contention one writer could wait out the others for seconds."""
        deadline = time.monotonic() + self.busy_timeout
        self._con.exec_driver_sql("PRAGMA busy_timeout=0")
        try:
            while True:
                try:
                    self._con.exec_driver_sql("BEGIN IMMEDIATE")
                    return
                except sa.exc.OperationalError as exc:
                    if "locked" not in str(exc.orig) or time.monotonic() > deadline:
                        raise StoreBusy(f"store {self.where}: {_reason(exc)}") from None
                time.sleep(random.uniform(0.0005, 0.003))
        finally:
            self._con.exec_driver_sql(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")

    def _end(self, commit: bool) -> Result:
        if self._depth == 0:
            return Result([], [])  # nothing open (a rollback after a commit went through)
        self._depth -= 1
        if self._depth == 0 or not commit:
            self._depth = 0
            self._run("COMMIT" if commit else "ROLLBACK", ())
        return Result([], [])


def _reason(exc: sa.exc.DBAPIError) -> str:
    text = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
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

    def connection(self) -> Connection:
        if self._pid != os.getpid():  # a forked child: the parent's connection is not ours to use
            self.engine.dispose(close=False)
            self._con, self._pid, self.lock = None, os.getpid(), threading.RLock()
        if self._con is None:
            self._con = Connection(self.engine, self.where, self.busy_timeout)
        return self._con

    def close(self) -> None:
        if self._con is not None and self._pid == os.getpid():
            self._con.close()
        self._con = None
        self.engine.dispose()
