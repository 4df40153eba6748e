"""Paper sessions in the results database, one transaction per tick:

  paper_sessions(name, mode, status, feed, created_at, updated_at, window_start, window_end, n_points,
                 config, options, error, results_dir, summary)
  paper_ticks(session, tick, timestamp, delivery, quantities, nav, nav_usd, risk)
  paper_events(session, seq, tick, timestamp, type, message, details)   -- the run's events and alerts
  paper_orders(session, seq, tick, timestamp, venue, instrument, side, size, price, reason)
  paper_alerts(session, seq, tick, timestamp, kind, message, details)   -- also the webhook's outbox
  paper_deliveries(session, seq, delivered_at, attempts, last_error)   -- what reached the webhook

Tables in results/schema.py. Each tick is one short transaction: a server or another command reads and writes
the store while a session runs.
"""

from __future__ import annotations

import json
from datetime import datetime

from ..results.db import RunStore, StoreError, json_safe, now
from ..sessions.outbox import AlertOutbox
from ..sessions.secrets import given, resolve
from ..sessions.stopping import STOP
from ..sessions.times import ts_of

SESSION_FIELDS = (
    "name",
    "mode",
    "status",
    "feed",
    "created_at",
    "updated_at",
    "window_start",
    "window_end",
    "last_tick",
    "last_ts",
    "n_points",
    "error",
    "results_dir",
)
# The last committed tick is read from paper_ticks (a tick is one INSERT: no second table to keep in step).
SELECT_SESSION = (
    "SELECT s.name, s.mode, s.status, s.feed, s.created_at, s.updated_at, s.window_start, s.window_end, "
    "t.tick, t.timestamp, s.n_points, s.error, s.results_dir{extra} FROM paper_sessions s LEFT JOIN "
    "(SELECT session, max(tick) AS tick, max(timestamp) AS timestamp FROM paper_ticks GROUP BY session) t "
    "ON t.session = s.name"
)


class PaperStore(RunStore, AlertOutbox):
    """The results store with the paper tables; a session writes through `writer()`."""

    ALERTS, DELIVERIES = "paper_alerts", "paper_deliveries"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        with self._conn() as con:
            # an earlier version stored the RPC and webhook URLs themselves: kept as references only
            for name, text in con.execute("SELECT name, options FROM paper_sessions WHERE options LIKE "
                                          "'%\"rpc_url\": \"%' OR options LIKE '%\"webhook\": \"%'").fetchall():
                options = json.loads(text)
                for url, ref in (("rpc_url", "rpc_url_ref"), ("webhook", "webhook_ref")):
                    if options.get(url):
                        options[ref] = options.get(ref) or given(options[url])
                        options[url] = None
                con.execute("UPDATE paper_sessions SET options = ? WHERE name = ?", [json.dumps(options), name])

    # --- sessions ---------------------------------------------------------------------------------------
    def create_session(
        self, name: str, mode: str, feed: str, start: int, end: int, n_points: int, config: dict, options: dict
    ) -> None:
        with self._conn() as con:
            if con.execute("SELECT 1 FROM paper_sessions WHERE name = ?", [name]).fetchone():
                raise StoreError(
                    f"paper session {name!r} already exists in {self.where}: resume it with "
                    f"`basiskit paper resume {name}`, or choose another --session."
                )
            t = now()
            con.execute(
                "INSERT INTO paper_sessions VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL)",
                [
                    name,
                    mode,
                    feed,
                    t,
                    t,
                    ts_of(start),
                    ts_of(end),
                    n_points,
                    json.dumps(json_safe(config)),
                    json.dumps(json_safe(options)),
                ],
            )

    def session(self, name: str) -> dict:
        with self._conn() as con:
            row = con.execute(
                SELECT_SESSION.format(extra=", s.config, s.options, s.summary") + " WHERE s.name = ?", [name]
            ).fetchone()
            if row is None:
                known = [r[0] for r in con.execute("SELECT name FROM paper_sessions ORDER BY name").fetchall()]
                raise StoreError(f"no paper session {name!r} in {self.where}; sessions: {', '.join(known) or 'none'}.")
        out = dict(zip(SESSION_FIELDS, row[: len(SESSION_FIELDS)], strict=True))
        out["config"], out["options"] = json.loads(row[-3]), json.loads(row[-2])
        out["summary"] = json.loads(row[-1]) if row[-1] else None
        return out

    def sessions(self) -> list[dict]:
        with self._conn() as con:
            rows = con.execute(SELECT_SESSION.format(extra="") + " ORDER BY s.created_at DESC").fetchall()
        return [dict(zip(SESSION_FIELDS, r, strict=True)) for r in rows]

    def set_status(
        self,
        name: str,
        status: str,
        error: str | None = None,
        summary: dict | None = None,
        results_dir: str | None = None,
    ) -> None:
        sql = (
            "UPDATE paper_sessions SET status = ?, error = ?, updated_at = ?, summary = COALESCE(?, summary), "
            "results_dir = COALESCE(?, results_dir) WHERE name = ?"
        )
        args = [status, error, now(), json.dumps(json_safe(summary)) if summary else None, results_dir, name]
        with self._conn() as con:
            con.execute(sql, args)

    # --- ticks ------------------------------------------------------------------------------------------
    def commit_tick(
        self,
        name: str,
        k: int,
        t: int,
        delivery: str,
        quantities: list[float],
        nav: float,
        nav_usd: float,
        risk: dict,
        events: list[tuple],
        orders: list[tuple],
        alerts: list[tuple],
        first_event_seq: int,
        first_order_seq: int,
        first_alert_seq: int,
    ) -> None:
        """Everything tick k produced, in one transaction: after a crash the session is at k or k - 1; a stop
        (SIGTERM) waits for it."""
        with STOP.guard():
            self._commit_tick(name, k, t, delivery, quantities, nav, nav_usd, risk, events, orders, alerts,
                              first_event_seq, first_order_seq, first_alert_seq)

    def _commit_tick(self, name, k, t, delivery, quantities, nav, nav_usd, risk, events, orders, alerts,
                     first_event_seq, first_order_seq, first_alert_seq) -> None:
        with self._conn() as con:
            self._write_tick(con, name, k, t, delivery, quantities, nav, nav_usd, risk, events, orders, alerts,
                             first_event_seq, first_order_seq, first_alert_seq)

    def _write_tick(self, con, name, k, t, delivery, quantities, nav, nav_usd, risk, events, orders, alerts,
                    first_event_seq, first_order_seq, first_alert_seq) -> None:
        stamp = ts_of(t)
        tick = [name, k, stamp, delivery, json.dumps(quantities), nav, nav_usd, json.dumps(json_safe(risk))]
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute("INSERT INTO paper_ticks VALUES (?, ?, ?, ?, ?, ?, ?, ?)", tick)
            if events:
                con.executemany(
                    "INSERT INTO paper_events VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        [name, first_event_seq + i, ek, ts_of(et), typ, msg, json.dumps(json_safe(d))]
                        for i, (ek, et, typ, msg, d) in enumerate(events)
                    ],
                )
            if orders:
                con.executemany(
                    "INSERT INTO paper_orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [[name, first_order_seq + i, k, stamp, *o] for i, o in enumerate(orders)],
                )
            if alerts:
                con.executemany(
                    "INSERT INTO paper_alerts VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        [name, first_alert_seq + i, ak, ts_of(at), kind, msg, json.dumps(json_safe(d))]
                        for i, (ak, at, kind, msg, d) in enumerate(alerts)
                    ],
                )
            con.execute("UPDATE paper_sessions SET updated_at = ? WHERE name = ?", [now(), name])
            con.execute("COMMIT")
        except BaseException:  # a signal mid-commit too: the tick is all or nothing
            con.execute("ROLLBACK")  # (nothing to roll back when it struck just after COMMIT)
            raise

    def add_alerts(self, name: str, alerts: list[tuple], first_alert_seq: int, first_event_seq: int) -> None:
        """Alerts raised between ticks (a feed gone stale while the session waits), also as events."""
        with STOP.guard():
            self._add_alerts(name, alerts, first_alert_seq, first_event_seq)

    def _add_alerts(self, name: str, alerts: list[tuple], first_alert_seq: int, first_event_seq: int) -> None:
        with self.transaction() as con:
            self._write_alerts(con, name, alerts, first_alert_seq, first_event_seq)

    def _write_alerts(self, con, name: str, alerts: list[tuple], first_alert_seq: int, first_event_seq: int) -> None:
        con.executemany(
            "INSERT INTO paper_alerts VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                [name, first_alert_seq + i, ak, ts_of(at), kind, msg, json.dumps(json_safe(d))]
                for i, (ak, at, kind, msg, d) in enumerate(alerts)
            ],
        )
        con.executemany(
            "INSERT INTO paper_events VALUES (?, ?, ?, ?, 'alert', ?, ?)",
            [
                [name, first_event_seq + i, ak, ts_of(at), msg, json.dumps(json_safe({"kind": kind, **d}))]
                for i, (ak, at, kind, msg, d) in enumerate(alerts)
            ],
        )

    # --- the webhook outbox ------------------------------------------------------------------------------
    def webhook_sessions(self) -> list[tuple[str, str, str]]:
        """(name, status, webhook URL) of every session that posts its alerts to a webhook."""
        with self._conn() as con:
            rows = con.execute("SELECT name, status, options FROM paper_sessions").fetchall()
        return [(n, st, url) for n, st, o in rows if (url := webhook_of(json.loads(o or "{}")))]

    def last_tick_time(self, name: str) -> float | None:
        """Wall-clock time (epoch seconds) the session last changed: its last committed tick or status."""
        with self._conn() as con:
            row = con.execute("SELECT updated_at FROM paper_sessions WHERE name = ?", [name]).fetchone()
        return row[0].timestamp() if row and row[0] is not None else None

    def deliveries(self, name: str) -> list[tuple[int, str, list[float]]]:
        """Every committed tick: (tick, delivery JSON, quantities after it), in order."""
        with self._conn() as con:
            rows = con.execute(
                "SELECT tick, delivery, quantities FROM paper_ticks WHERE session = ? ORDER BY tick", [name]
            ).fetchall()
        return [(k, d, json.loads(q)) for k, d, q in rows]

    def counts(self, name: str) -> dict[str, int]:
        """Rows stored per table; `run_events`: the events of the run itself (not alerts)."""
        with self._conn() as con:
            one = lambda sql: con.execute(sql, [name]).fetchone()[0]  # noqa: E731
            return {
                "events": one("SELECT COUNT(*) FROM paper_events WHERE session = ?"),
                "run_events": one("SELECT COUNT(*) FROM paper_events WHERE session = ? AND type <> 'alert'"),
                "orders": one("SELECT COUNT(*) FROM paper_orders WHERE session = ?"),
                "alerts": one("SELECT COUNT(*) FROM paper_alerts WHERE session = ?"),
            }

    def tick_series(self, name: str, after: int = -1) -> list[dict]:
        """NAV, NAV in USD and the risk reading of every committed tick after `after`."""
        self.session(name)
        with self._conn() as con:
            rows = con.execute("SELECT tick, timestamp, nav, nav_usd, risk FROM paper_ticks WHERE session = ? AND "
                               "tick > ? ORDER BY tick", [name, after]).fetchall()
        return [{"tick": k, "timestamp": f"{t:%Y-%m-%dT%H:%M:%SZ}", "nav": nav, "nav_usd": usd, "risk": json.loads(r)}
                for k, t, nav, usd, r in rows]

    def table(self, name: str, table: str, since: datetime | None = None, limit: int | None = None) -> list[dict]:
        """Rows of paper_{table} for a session (newest last), optionally from `since` on."""
        self.session(name)
        sql = f"SELECT * FROM paper_{table} WHERE session = ?"
        args: list = [name]
        if since is not None:
            sql += " AND timestamp >= ?"
            args.append(since)
        order = "tick" if table == "ticks" else "seq"
        if limit:
            sql = f"SELECT * FROM ({sql} ORDER BY {order} DESC LIMIT {int(limit)}) AS t ORDER BY {order}"
        else:
            sql += f" ORDER BY {order}"
        with self._conn() as con:
            cur = con.execute(sql, args)
            cols = [d[0] for d in cur.description]
            return [{c: v for c, v in zip(cols, r, strict=True) if c != "session"} for r in cur.fetchall()]


def webhook_of(options: dict) -> str | None:
    """A session's webhook URL where this process can have it: an old row's URL, or its env: reference's."""
    return options.get("webhook") or resolve(options.get("webhook_ref"))
