"""Live sessions in the results database, one transaction per tick:

  live_sessions(name, mode, accounts, config, status, created_at, updated_at, error, webhook)
  live_ticks(session, tick, timestamp, block, nav_usd, nav, book, reconciliation, plan)
  live_orders(session, seq, tick, timestamp, venue, instrument, side, size, price, reason)  -- the plan's intents
  live_alerts(session, seq, tick, timestamp, kind, message, details)   -- also the webhook's outbox
  live_deliveries(session, seq, delivered_at, attempts, last_error)   -- what reached the webhook

A tick's book is the observation itself (what the venues said), so a resumed session explains its next hour
against exactly what it last read. No credential is ever written: the book holds units, prices and risk only.
"""

from __future__ import annotations

import json

from ..paper.alerts import Alert
from ..paper.outbox import AlertOutbox
from ..paper.stopping import STOP
from ..paper.store import ts_of
from ..results.db import RunStore, StoreError, json_safe, now

LIVE_SCHEMA = """
CREATE TABLE IF NOT EXISTS live_sessions (
  name VARCHAR PRIMARY KEY, mode VARCHAR, accounts VARCHAR, config JSON, status VARCHAR, created_at TIMESTAMPTZ,
  updated_at TIMESTAMPTZ, error VARCHAR, webhook VARCHAR);
CREATE TABLE IF NOT EXISTS live_ticks (
  session VARCHAR, tick INTEGER, timestamp TIMESTAMPTZ, block BIGINT, nav_usd DOUBLE, nav DOUBLE, book JSON,
  reconciliation JSON, PRIMARY KEY (session, tick));
ALTER TABLE live_ticks ADD COLUMN IF NOT EXISTS plan JSON;
CREATE TABLE IF NOT EXISTS live_orders (
  session VARCHAR, seq INTEGER, tick INTEGER, timestamp TIMESTAMPTZ, venue VARCHAR, instrument VARCHAR,
  side VARCHAR, size DOUBLE, price DOUBLE, reason VARCHAR);
CREATE TABLE IF NOT EXISTS live_alerts (
  session VARCHAR, seq INTEGER, tick INTEGER, timestamp TIMESTAMPTZ, kind VARCHAR, message VARCHAR, details JSON);
CREATE TABLE IF NOT EXISTS live_deliveries (
  session VARCHAR, seq INTEGER, delivered_at TIMESTAMPTZ, attempts INTEGER, last_error VARCHAR,
  PRIMARY KEY (session, seq));
"""


class LiveStore(RunStore, AlertOutbox):
    ALERTS, DELIVERIES = "live_alerts", "live_deliveries"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        with self._conn() as con:
            con.execute(LIVE_SCHEMA)

    def open_session(self, name: str, mode: str, accounts: str, config: dict, webhook: str | None = None) -> bool:
        """Create the session, or find it to resume (same mode; a new webhook replaces the old); True when new."""
        with self._conn() as con:
            row = con.execute("SELECT mode FROM live_sessions WHERE name = ?", [name]).fetchone()
            if row is not None:
                if row[0] != mode:
                    raise StoreError(f"live session {name!r} runs {row[0]}, not {mode}: choose another --session")
                con.execute("UPDATE live_sessions SET status = 'running', error = NULL, updated_at = ?, "
                            "webhook = COALESCE(?, webhook) WHERE name = ?", [now(), webhook, name])
                return False
            t = now()
            con.execute("INSERT INTO live_sessions VALUES (?, ?, ?, ?, 'running', ?, ?, NULL, ?)",
                        [name, mode, accounts, json.dumps(json_safe(config)), t, t, webhook])
            return True

    def webhook(self, name: str) -> str | None:
        with self._conn() as con:
            row = con.execute("SELECT webhook FROM live_sessions WHERE name = ?", [name]).fetchone()
        return row[0] if row else None

    def webhook_sessions(self) -> list[tuple[str, str, str]]:
        """(name, status, webhook URL) of every live session that posts its alerts to a webhook."""
        with self._conn() as con:
            return [tuple(r) for r in con.execute(
                "SELECT name, status, webhook FROM live_sessions WHERE webhook IS NOT NULL").fetchall()]

    def set_status(self, name: str, status: str, error: str | None = None) -> None:
        with self._conn() as con:
            con.execute("UPDATE live_sessions SET status = ?, error = ?, updated_at = ? WHERE name = ?",
                        [status, error, now(), name])

    def last_tick(self, name: str) -> tuple[int, dict] | None:
        with self._conn() as con:
            row = con.execute("SELECT tick, book FROM live_ticks WHERE session = ? ORDER BY tick DESC LIMIT 1",
                              [name]).fetchone()
        return (row[0], json.loads(row[1])) if row else None

    def commit_tick(self, name: str, k: int, t: int, block: int | None, nav_usd: float, nav: float, book: dict,
                    reconciliation: dict | None, alerts: list[Alert], plan: dict | None = None,
                    orders: list[tuple] = ()) -> None:
        with STOP.guard(), self._conn() as con:
            con.execute("BEGIN")
            try:
                con.execute("INSERT INTO live_ticks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [name, k, ts_of(t), block, nav_usd, nav, json.dumps(json_safe(book)),
                             json.dumps(json_safe(reconciliation)) if reconciliation else None,
                             json.dumps(json_safe(plan)) if plan else None])
                if orders:
                    seq = con.execute("SELECT count(*) FROM live_orders WHERE session = ?", [name]).fetchone()[0]
                    con.executemany("INSERT INTO live_orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                    [[name, seq + i, k, ts_of(t), *o] for i, o in enumerate(orders)])
                self._alerts(con, name, alerts)
                con.execute("UPDATE live_sessions SET updated_at = ? WHERE name = ?", [now(), name])
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def add_alerts(self, name: str, alerts: list[Alert]) -> None:
        with self._conn() as con:
            self._alerts(con, name, alerts)

    def _alerts(self, con, name: str, alerts: list[Alert]) -> None:
        seq = con.execute("SELECT count(*) FROM live_alerts WHERE session = ?", [name]).fetchone()[0]
        for i, a in enumerate(alerts):
            con.execute("INSERT INTO live_alerts VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [name, seq + i, a.k, ts_of(a.t), a.kind, a.message, json.dumps(json_safe(a.details))])

    def sessions(self) -> list[dict]:
        with self._conn() as con:
            rows = con.execute(
                "SELECT s.name, s.mode, s.status, s.created_at, s.updated_at, t.tick, t.nav_usd, s.error "
                "FROM live_sessions s LEFT JOIN (SELECT session, max(tick) AS tick, arg_max(nav_usd, tick) AS nav_usd "
                "FROM live_ticks GROUP BY session) t ON t.session = s.name ORDER BY s.created_at DESC").fetchall()
        keys = ("name", "mode", "status", "created_at", "updated_at", "last_tick", "nav_usd", "error")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def status(self, name: str) -> dict:
        with self._conn() as con:
            row = con.execute("SELECT name, mode, status, accounts, error FROM live_sessions WHERE name = ?",
                              [name]).fetchone()
            if row is None:
                known = [r[0] for r in con.execute("SELECT name FROM live_sessions ORDER BY name").fetchall()]
                raise StoreError(f"no live session {name!r} in {self.path}; sessions: {', '.join(known) or 'none'}.")
            tick = con.execute("SELECT tick, timestamp, block, nav_usd, nav, book, reconciliation, plan "
                               "FROM live_ticks WHERE session = ? ORDER BY tick DESC LIMIT 1", [name]).fetchone()
            alerts = con.execute("SELECT tick, timestamp, kind, message, details FROM live_alerts WHERE session = ? "
                                 "ORDER BY seq DESC LIMIT 20", [name]).fetchall()
        out = dict(zip(("name", "mode", "status", "accounts", "error"), row, strict=True))
        out["last"] = None if tick is None else {
            "tick": tick[0], "timestamp": tick[1].isoformat(), "block": tick[2], "nav_usd": tick[3], "nav": tick[4],
            "book": json.loads(tick[5]), "reconciliation": json.loads(tick[6]) if tick[6] else None,
            "plan": json.loads(tick[7]) if tick[7] else None}
        out["alerts"] = [{"tick": a[0], "timestamp": a[1].isoformat(), "kind": a[2], "message": a[3],
                          "details": json.loads(a[4])} for a in alerts]
        out["outbox"] = self.outbox(name) if self.webhook(name) else None  # the URL itself is not shown
        return out

    def gauges(self) -> list[dict]:
        """Each session's last reading for /metrics: status, seconds since it was committed, NAV, the hour's
        unexplained USD, each account's Aave health factor, the alert count."""
        with self._conn() as con:
            rows = con.execute(
                "SELECT s.name, s.status, epoch(s.updated_at), t.nav_usd, t.book, t.reconciliation, "
                "(SELECT count(*) FROM live_alerts a WHERE a.session = s.name) FROM live_sessions s LEFT JOIN "
                "(SELECT session, arg_max(nav_usd, tick) AS nav_usd, arg_max(book, tick) AS book, "
                "arg_max(reconciliation, tick) AS reconciliation FROM live_ticks GROUP BY session) t "
                "ON t.session = s.name ORDER BY s.name").fetchall()
        out = []
        for name, status, updated, nav, book, rec, n_alerts in rows:
            risk = json.loads(book)["risk"] if book else {}
            out.append({"name": name, "status": status, "updated": updated, "nav_usd": nav,
                        "unexplained_usd": json.loads(rec)["attribution"]["unexplained"] if rec else None,
                        "health_factors": {a: r["health_factor"] for a, r in risk.items()
                                           if isinstance(r.get("health_factor"), int | float)},
                        "alerts": n_alerts})
        return out

    def orders(self, name: str, since=None) -> list[dict]:
        """The plan's order intents of a session, oldest first (from `since` on, a datetime)."""
        self.status(name)
        sql = ("SELECT seq, tick, timestamp, venue, instrument, side, size, price, reason FROM live_orders "
               "WHERE session = ?" + (" AND timestamp >= ?" if since is not None else "") + " ORDER BY seq")
        with self._conn() as con:
            cur = con.execute(sql, [name] + ([since] if since is not None else []))
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

    def alerts(self, name: str) -> list[dict]:
        with self._conn() as con:
            rows = con.execute("SELECT tick, kind, message, details FROM live_alerts WHERE session = ? ORDER BY seq",
                               [name]).fetchall()
        return [{"tick": r[0], "kind": r[1], "message": r[2], "details": json.loads(r[3])} for r in rows]
