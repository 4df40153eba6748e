"""Live sessions in the store (tables in results/schema.py), one transaction per tick:

  live_sessions(name, mode, accounts, config, status, created_at, updated_at, error, webhook, execute, halted,
                kill_reason, kill_done)
  live_ticks(session, tick, timestamp, block, nav_usd, nav, book, reconciliation, plan)
  live_orders(session, seq, tick, timestamp, venue, instrument, side, size, price, reason, client_id, status,
              notional_usd, filled, average, fee, created_epoch, updated_at, booked_tick)   -- the plan's
              intents, as sent; booked_tick: the reading whose explanation counts the order's fill
  live_order_log(session, seq, client_id, logged_at, step, status, details)   -- requests, answers, approvals, kills
  live_alerts(session, seq, tick, timestamp, kind, message, details)   -- also the webhook's outbox
  live_deliveries(session, seq, delivered_at, attempts, last_error)   -- what reached the webhook

A tick's book is the observation itself (what the venues said), so a resumed session explains its next hour
against exactly what it last read. No credential is ever written: the book holds units, prices and risk only.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..results.db import SESSION_STORE_WAIT_S, RunStore, StoreError, json_safe, now
from ..sessions.alerts import Alert
from ..sessions.outbox import AlertOutbox
from ..sessions.secrets import given, resolve
from ..sessions.stopping import STOP
from ..sessions.times import ts_of

__all__ = ["SESSION_STORE_WAIT_S", "LiveStore"]

ORDER_COLUMNS = ("session, seq, tick, timestamp, venue, instrument, side, size, price, reason, client_id, status, "
                 "notional_usd, filled, average, fee, created_epoch, updated_at, action, asset, to_asset, bundle, "
                 "trigger, safety, counted_usd, read_epoch, approved_epoch, note")
N_ORDER_COLUMNS = ORDER_COLUMNS.count(",") + 1
# live_orders columns -> Order fields (live/execution.py), as orders_in reads them
ORDER_READ = ("client_id", "tick", "seq", "venue", "instrument", "side", "size", "price", "reason", "status",
              "notional_usd", "created_epoch", "coalesce(action, '')", "coalesce(asset, '')", "to_asset", "bundle",
              "coalesce(trigger, 'strategy')", "coalesce(safety, false)", "counted_usd", "read_epoch",
              "approved_epoch", "note")
_SAFETY = ORDER_READ.index("coalesce(safety, false)")
_HALTED_OR = "CASE WHEN coalesce(halted, false) THEN 'halted' ELSE ? END"  # a kill outlives stops and restarts
# each session's latest reading, joined to live_sessions s as t
_LAST_TICK = ("LEFT JOIN (SELECT session, max(tick) AS tick FROM live_ticks GROUP BY session) m ON m.session = s.name "
              "LEFT JOIN live_ticks t ON t.session = m.session AND t.tick = m.tick")


class LiveStore(RunStore, AlertOutbox):
    ALERTS, DELIVERIES = "live_alerts", "live_deliveries"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        with self._conn() as con:
            # an earlier version stored the webhook URL itself: kept as a reference (sessions/secrets.py) only
            for name, url in con.execute("SELECT name, webhook FROM live_sessions WHERE webhook IS NOT NULL AND "
                                         "webhook NOT LIKE 'env:%' AND webhook NOT LIKE 'given:%'").fetchall():
                con.execute("UPDATE live_sessions SET webhook = ? WHERE name = ?", [given(url), name])

    def open_session(self, name: str, mode: str, accounts: str, config: dict, webhook: str | None = None,
                     execute: str = "off") -> bool:
        """Create the session, or find it to resume (same mode; a new webhook replaces the old; a halted session
        stays halted); True when new."""
        with self._conn() as con:
            row = con.execute("SELECT mode FROM live_sessions WHERE name = ?", [name]).fetchone()
            if row is not None:
                if row[0] != mode:
                    raise StoreError(f"live session {name!r} runs {row[0]}, not {mode}: choose another --session")
                con.execute(f"UPDATE live_sessions SET status = {_HALTED_OR}, error = NULL, updated_at = ?, "
                            "webhook = COALESCE(?, webhook), execute = ? WHERE name = ?",
                            ["running", now(), webhook, execute, name])
                return False
            t = now()
            con.execute("INSERT INTO live_sessions (name, mode, accounts, config, status, created_at, updated_at, "
                        "error, webhook, execute, halted) VALUES (?, ?, ?, ?, 'running', ?, ?, NULL, ?, ?, false)",
                        [name, mode, accounts, json.dumps(json_safe(config)), t, t, webhook, execute])
            return True

    # --- leases and heartbeats (live/lease.py) ----------------------------------------------------------------
    def take_leases(self, session: str, keys: list[str], holder: str, stale_after: float):
        """Take the leases of `keys` for `session`, all or none: (key, holder, age) of one another session holds
        with a heartbeat younger than `stale_after` seconds, else None (taken)."""
        t = time.time()
        with STOP.guard(), self._conn() as con:
            con.execute("BEGIN")
            try:
                for key in keys:
                    row = con.execute("SELECT session, holder, heartbeat_epoch FROM live_leases WHERE key = ?",
                                      [key]).fetchone()
                    if row is not None and row[0] != session and t - (row[2] or 0.0) < stale_after:
                        con.execute("ROLLBACK")
                        return key, row[1], t - (row[2] or 0.0)
                for key in keys:
                    con.execute("DELETE FROM live_leases WHERE key = ?", [key])
                    con.execute("INSERT INTO live_leases VALUES (?, ?, ?, ?)", [key, session, holder, t])
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return None

    def heartbeat(self, session: str, keys: list[str], heartbeat_s: float, holder: str) -> None:
        t = time.time()
        with self._conn() as con:
            con.execute("UPDATE live_sessions SET heartbeat_epoch = ?, heartbeat_s = ?, holder = ?, lease_keys = ? "
                        "WHERE name = ?", [t, heartbeat_s, holder, json.dumps(keys), session])
            con.execute("UPDATE live_leases SET heartbeat_epoch = ? WHERE session = ?", [t, session])

    def release_leases(self, session: str) -> None:
        """The run ended: its leases are free and it has no heartbeat (it is not running, not dead)."""
        with self._conn() as con:
            con.execute("DELETE FROM live_leases WHERE session = ?", [session])
            con.execute("UPDATE live_sessions SET heartbeat_epoch = NULL WHERE name = ?", [session])

    def liveness(self, name: str) -> dict:
        """How the session's process is: its heartbeat's age, and `dead` when it is older than 2 heartbeats or, on
        this machine, no process holds its locks (a session not run under a lease has no heartbeat: None)."""
        from .lease import DEAD_BEATS, lock_free

        with self._conn() as con:
            row = con.execute("SELECT status, heartbeat_epoch, heartbeat_s, holder, lease_keys FROM live_sessions "
                              "WHERE name = ?", [name]).fetchone()
        if row is None or row[1] is None:
            return {"heartbeat_age_s": None, "dead": False}
        _, beat, every, holder, keys = row  # a heartbeat is there while a process holds the lease (whatever status)
        age = time.time() - beat
        held = json.loads(holder) if holder else None
        dead = age > DEAD_BEATS * (every or 10.0)
        if not dead and held and keys:
            import socket

            here = held.get("host") == socket.gethostname()
            where = Path(held["leases"]) if held.get("leases") else None  # where its process locked them
            frees = [lock_free(k, where) for k in json.loads(keys)]
            dead = here and all(f is True for f in frees) and bool(frees)
        return {"heartbeat_age_s": age, "dead": bool(dead), "holder": held}

    def mark_dead_alerted(self, name: str) -> bool:
        """True once per death: the heartbeat it stopped at had not been alerted yet (it is marked now)."""
        with self._conn() as con:
            row = con.execute("SELECT heartbeat_epoch, dead_alerted FROM live_sessions WHERE name = ?",
                              [name]).fetchone()
            if row is None or row[0] is None or row[1] == row[0]:
                return False
            con.execute("UPDATE live_sessions SET dead_alerted = ? WHERE name = ?", [row[0], name])
            return True

    def webhook_ref(self, name: str) -> str | None:
        """The session's webhook as stored: a reference (sessions/secrets.py), never a URL with its key."""
        with self._conn() as con:
            row = con.execute("SELECT webhook FROM live_sessions WHERE name = ?", [name]).fetchone()
        return row[0] if row else None

    def webhook(self, name: str) -> str | None:
        """The session's webhook URL where this process can have it (its env: reference's variable)."""
        return resolve(self.webhook_ref(name))

    def webhook_sessions(self) -> list[tuple[str, str, str]]:
        """(name, status, webhook URL) of every live session whose webhook URL this process can have."""
        with self._conn() as con:
            rows = [tuple(r) for r in con.execute(
                "SELECT name, status, webhook FROM live_sessions WHERE webhook IS NOT NULL").fetchall()]
        return [(n, "dead" if self.liveness(n)["dead"] else status, url) for n, status, ref in rows
                if (url := resolve(ref))]

    def set_status(self, name: str, status: str, error: str | None = None) -> None:
        with self._conn() as con:
            con.execute(f"UPDATE live_sessions SET status = {_HALTED_OR}, error = ?, updated_at = ? WHERE name = ?",
                        [status, error, now(), name])

    def last_tick(self, name: str) -> tuple[int, dict] | None:
        with self._conn() as con:
            row = con.execute("SELECT tick, book FROM live_ticks WHERE session = ? ORDER BY tick DESC LIMIT 1",
                              [name]).fetchone()
        return (row[0], json.loads(row[1])) if row else None

    def commit_tick(self, name: str, k: int, t: int, block: int | None, nav_usd: float, nav: float, book: dict,
                    reconciliation: dict | None, alerts: list[Alert], plan: dict | None = None,
                    orders: list = (), booked: list[str] = (), read_epoch: float | None = None) -> None:
        with STOP.guard(), self._conn() as con:
            con.execute("BEGIN")
            try:
                con.execute("INSERT INTO live_ticks (session, tick, timestamp, block, nav_usd, nav, book, "
                            "reconciliation, plan, read_epoch) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [name, k, ts_of(t), block, nav_usd, nav, json.dumps(json_safe(book)),
                             json.dumps(json_safe(reconciliation)) if reconciliation else None,
                             json.dumps(json_safe(plan)) if plan else None, read_epoch])
                if orders:
                    seq = con.execute("SELECT count(*) FROM live_orders WHERE session = ?", [name]).fetchone()[0]
                    stamp, created = now(), time.time()
                    con.executemany(
                        f"INSERT INTO live_orders ({ORDER_COLUMNS}) VALUES ({', '.join('?' * N_ORDER_COLUMNS)})",
                        [[name, seq + i, k, ts_of(t), o.venue, o.instrument, o.side, o.size, o.price, o.reason,
                          o.client_id, o.status, o.notional_usd, 0.0, None, None, o.created or created, stamp,
                          o.action, o.asset, o.to_asset, o.bundle, o.trigger, o.safety, o.counted_usd, o.read_at,
                          o.approved_at, o.note] for i, o in enumerate(orders)])
                for cid in booked:
                    con.execute("UPDATE live_orders SET booked_tick = ? WHERE session = ? AND client_id = ?",
                                [k, name, cid])
                self._alerts(con, name, alerts)
                con.execute("UPDATE live_sessions SET updated_at = ? WHERE name = ?", [now(), name])
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def add_alerts(self, name: str, alerts: list[Alert]) -> None:
        with self.transaction() as con:
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
                f"FROM live_sessions s {_LAST_TICK} ORDER BY s.created_at DESC").fetchall()
        keys = ("name", "mode", "status", "created_at", "updated_at", "last_tick", "nav_usd", "error")
        out = [dict(zip(keys, r, strict=True)) for r in rows]
        for s in out:
            if self.liveness(s["name"])["dead"]:
                s["status"] = "dead"
        return out

    def status(self, name: str) -> dict:
        with self._conn() as con:
            row = con.execute("SELECT name, mode, status, accounts, error, coalesce(execute, 'off'), "
                              "coalesce(halted, false), kill_reason FROM live_sessions WHERE name = ?",
                              [name]).fetchone()
            if row is None:
                known = [r[0] for r in con.execute("SELECT name FROM live_sessions ORDER BY name").fetchall()]
                raise StoreError(f"no live session {name!r} in {self.where}; sessions: {', '.join(known) or 'none'}.")
            tick = con.execute("SELECT tick, timestamp, block, nav_usd, nav, book, reconciliation, plan "
                               "FROM live_ticks WHERE session = ? ORDER BY tick DESC LIMIT 1", [name]).fetchone()
            alerts = con.execute("SELECT tick, timestamp, kind, message, details FROM live_alerts WHERE session = ? "
                                 "ORDER BY seq DESC LIMIT 20", [name]).fetchall()
        out = dict(zip(("name", "mode", "status", "accounts", "error", "execute", "halted", "kill_reason"), row,
                       strict=True))
        out["halted"] = bool(out["halted"])
        alive = self.liveness(name)
        out["heartbeat_age_s"] = alive["heartbeat_age_s"]
        if alive["dead"]:
            out["status"] = "dead"  # no heartbeat: its process is gone (it resumes where it stopped when restarted)
        out["last"] = None if tick is None else {
            "tick": tick[0], "timestamp": tick[1].isoformat(), "block": tick[2], "nav_usd": tick[3], "nav": tick[4],
            "book": json.loads(tick[5]), "reconciliation": json.loads(tick[6]) if tick[6] else None,
            "plan": json.loads(tick[7]) if tick[7] else None}
        out["alerts"] = [{"tick": a[0], "timestamp": a[1].isoformat(), "kind": a[2], "message": a[3],
                          "details": json.loads(a[4])} for a in alerts]
        out["outbox"] = self.outbox(name) if self.webhook_ref(name) else None  # the URL itself is not shown
        return out

    def gauges(self) -> list[dict]:
        """Each session's last reading for /metrics: status, seconds since it was committed, NAV, the hour's
        unexplained USD, each account's Aave health factor, the alert count."""
        with self._conn() as con:
            rows = con.execute(
                "SELECT s.name, s.status, epoch(s.updated_at), t.nav_usd, t.book, t.reconciliation, "
                f"(SELECT count(*) FROM live_alerts a WHERE a.session = s.name) FROM live_sessions s {_LAST_TICK} "
                "ORDER BY s.name").fetchall()
        out = []
        for name, status, updated, nav, book, rec, n_alerts in rows:
            status = "dead" if self.liveness(name)["dead"] else status
            risk = json.loads(book)["risk"] if book else {}
            out.append({"name": name, "status": status, "updated": updated, "nav_usd": nav,
                        "unexplained_usd": json.loads(rec)["attribution"]["unexplained"] if rec else None,
                        "health_factors": {a: r["health_factor"] for a, r in risk.items()
                                           if isinstance(r.get("health_factor"), int | float)},
                        "alerts": n_alerts})
        return out

    def orders(self, name: str, since=None) -> list[dict]:
        """The plan's order intents of a session and how far each went, oldest first (from `since` on)."""
        self.status(name)
        sql = ("SELECT seq, tick, timestamp, venue, instrument, side, size, price, reason, client_id, status, "
               "notional_usd, filled, average, fee, action, asset, to_asset, bundle, trigger, "
               "coalesce(safety, false) AS safety, counted_usd, note FROM live_orders "
               "WHERE session = ?" + (" AND timestamp >= ?" if since is not None else "") + " ORDER BY seq")
        with self._conn() as con:
            cur = con.execute(sql, [name] + ([since] if since is not None else []))
            cols = [d[0] for d in cur.description]
            rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
        for r in rows:
            r["safety"] = bool(r["safety"])
        return rows

    # --- sending (live/execution.py) --------------------------------------------------------------------------
    def orders_in(self, name: str, statuses: tuple[str, ...] | None = None, tick: int | None = None) -> list:
        """The session's orders (of `statuses`, of plan `tick`) as live/execution.py's Order, in plan order."""
        from .execution import Order

        sql = f"SELECT {', '.join(ORDER_READ)} FROM live_orders WHERE session = ?"
        args: list = [name]
        if statuses is not None:
            sql += f" AND status IN ({', '.join('?' * len(statuses))})"
            args += list(statuses)
        if tick is not None:
            sql += " AND tick = ?"
            args.append(tick)
        with self._conn() as con:
            rows = con.execute(sql + " ORDER BY seq", args).fetchall()
        return [Order(*r[:_SAFETY], bool(r[_SAFETY]), *r[_SAFETY + 1:]) for r in rows]

    def own_txs(self, name: str, since: float | None = None) -> set[str]:
        """The hashes (hex, no 0x) of every transaction the session signed (journaled at or after epoch `since`)."""
        sql = "SELECT details FROM live_order_log WHERE session = ? AND step = 'tx'"
        args: list = [name]
        if since is not None:
            sql += " AND logged_at >= ?"
            args.append(ts_of(int(since)))
        with self._conn() as con:
            rows = con.execute(sql, args).fetchall()
        hashes = [json.loads(r[0]).get("hash") if r[0] else None for r in rows]
        return {h.removeprefix("0x") for h in hashes if h}

    def last_planned_tick(self, name: str) -> int | None:
        """The latest reading's tick (whose plan is the one to carry out)."""
        with self._conn() as con:
            return con.execute("SELECT max(tick) FROM live_ticks WHERE session = ?", [name]).fetchone()[0]

    def order_log(self, name: str, client_id: str | None = None) -> list[dict]:
        sql = "SELECT seq, client_id, logged_at, step, status, details FROM live_order_log WHERE session = ?"
        args = [name] + ([client_id] if client_id else [])
        with self._conn() as con:
            rows = con.execute(sql + (" AND client_id = ?" if client_id else "") + " ORDER BY seq", args).fetchall()
        return [{"seq": r[0], "client_id": r[1], "at": r[2], "step": r[3], "status": r[4],
                 "details": json.loads(r[5])} for r in rows]

    def order_step(self, name: str, client_id: str, status: str, step: str, details: dict,
                   fill: tuple | None = None, moves: list | None = None) -> None:
        """An order's new status and the step that set it (request, answer, lookup, approval, kill ...), at once;
        `moves`: what the order moved in the book ([block or None, {holding key: units}]), for the next reading."""
        with STOP.guard(), self._conn() as con:
            con.execute("BEGIN")
            try:
                self._step(con, name, client_id, status, step, details, fill)
                if moves:
                    con.execute("UPDATE live_orders SET moves = ? WHERE session = ? AND client_id = ?",
                                [json.dumps(moves), name, client_id])
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def _step(self, con, name, client_id, status, step, details, fill=None) -> None:
        con.execute("UPDATE live_orders SET status = ?, updated_at = ? WHERE session = ? AND client_id = ?",
                    [status, now(), name, client_id])
        if fill is not None:
            con.execute("UPDATE live_orders SET filled = ?, average = ?, fee = ? WHERE session = ? AND client_id = ?",
                        [*fill, name, client_id])
        seq = con.execute("SELECT count(*) FROM live_order_log WHERE session = ?", [name]).fetchone()[0]
        con.execute("INSERT INTO live_order_log VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [name, seq, client_id, now(), step, status, json.dumps(json_safe(details))])

    def unbooked_moves(self, name: str) -> list[tuple[str, list]]:
        """(client_id, [[block or None, {holding key: units}]]) of what the session's orders moved that no reading
        has counted yet."""
        with self._conn() as con:
            return [(r[0], json.loads(r[1])) for r in con.execute(
                "SELECT client_id, moves FROM live_orders WHERE session = ? AND moves IS NOT NULL AND "
                "booked_tick IS NULL ORDER BY seq", [name]).fetchall()]

    def day_notional(self, name: str, t: int, statuses: tuple[str, ...]) -> float:
        """USD counted against the day's limit (a bundle once, at its net change) of the orders in `statuses` (sent,
        or being sent) planned on t's UTC day."""
        day = t // 86_400 * 86_400
        with self._conn() as con:
            got = con.execute(
                f"SELECT sum(coalesce(counted_usd, notional_usd)) FROM live_orders WHERE session = ? AND status IN "
                f"({', '.join('?' * len(statuses))}) AND timestamp >= ? AND timestamp < ?",
                [name, *statuses, ts_of(day), ts_of(day + 86_400)],
            ).fetchone()[0]
        return float(got or 0.0)

    def awaiting_since(self, name: str) -> list[tuple]:
        """(order, epoch it was planned) of every order awaiting approval."""
        orders = self.orders_in(name, ("awaiting",))
        with self._conn() as con:
            at = dict(con.execute("SELECT client_id, created_epoch FROM live_orders WHERE session = ? AND "
                                  "status = 'awaiting'", [name]).fetchall())
        return [(o, at[o.client_id]) for o in orders]

    def decide(self, name: str, plan: int, ids: list[str] | None, approve: bool, by: str,
               at: float | None = None) -> list[str]:
        """Approve (or reject) orders of plan `plan` (a tick) awaiting approval: `ids`, or every one of that plan's
        when None (a plan's orders are fixed when it is committed: approving it never approves another). An id that
        is not an awaiting order of that plan is refused, naming it, and nothing changes. A flash-loan bundle's steps
        follow its order. `at`: when (epoch seconds; default now): live.approved_ttl_minutes count from it."""
        with self.transaction():  # read and written in one transaction: no other process changes them in between
            return self._decide(name, plan, ids, approve, by, time.time() if at is None else at)

    def _decide(self, name: str, plan: int, ids: list[str] | None, approve: bool, by: str, at: float) -> list[str]:
        self.status(name)
        awaiting = [o.client_id for o in self.orders_in(name, ("awaiting",), tick=plan)]
        latest = self.last_planned_tick(name)
        if not awaiting and ids is None:
            raise StoreError(f"live session {name!r}: plan {plan} has no order awaiting approval"
                             + (f" (the latest plan is {latest})" if latest is not None and latest != plan else ""))
        chosen = awaiting if ids is None else ids
        wrong = [i for i in chosen if i not in awaiting]
        if wrong:
            raise StoreError(f"live session {name!r}: {', '.join(wrong[:5])} not awaiting approval in plan {plan} "
                             f"(awaiting there: {', '.join(awaiting[:10]) or 'none'}; the latest plan is {latest})")
        status = "approved" if approve else "rejected"
        heads = {o.bundle for o in self.orders_in(name, ("awaiting",), tick=plan)
                 if o.client_id in chosen and o.is_bundle_head}
        steps = [o.client_id for o in self.orders_in(name, ("bundled",), tick=plan) if o.bundle in heads]
        with STOP.guard(), self._conn() as con:
            con.execute("BEGIN")
            try:
                for cid in chosen:
                    self._step(con, name, cid, status, "approval" if approve else "rejection", {"by": by, "plan": plan})
                for cid in chosen + steps:
                    if approve:
                        con.execute("UPDATE live_orders SET approved_epoch = ? WHERE session = ? AND client_id = ?",
                                    [at, name, cid])
                    else:
                        self._step(con, name, cid, "rejected", "rejection", {"by": by, "plan": plan})
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return chosen

    def kill(self, name: str, why: str) -> None:
        self.status(name)
        with self._conn() as con:
            con.execute("UPDATE live_sessions SET halted = true, kill_done = false, kill_reason = ?, status = "
                        "'halted', updated_at = ? WHERE name = ?", [why, now(), name])

    def kill_pending(self, name: str) -> str | None:
        """The reason of a kill the session has not carried out yet (cancelling what is open), else None."""
        with self._conn() as con:
            row = con.execute("SELECT kill_reason FROM live_sessions WHERE name = ? AND halted AND NOT kill_done",
                              [name]).fetchone()
        return row[0] if row else None

    def kill_carried_out(self, name: str) -> None:
        with self._conn() as con:
            con.execute("UPDATE live_sessions SET kill_done = true WHERE name = ?", [name])

    def is_halted(self, name: str) -> bool:
        with self._conn() as con:
            row = con.execute("SELECT coalesce(halted, false) FROM live_sessions WHERE name = ?", [name]).fetchone()
        return bool(row and row[0])

    def resume(self, name: str) -> None:
        self.status(name)
        alive = self.liveness(name)
        running = alive["heartbeat_age_s"] is not None and not alive["dead"]  # its process holds its lease
        with self._conn() as con:
            con.execute("UPDATE live_sessions SET halted = false, kill_reason = NULL, status = ?, updated_at = ? "
                        "WHERE name = ?", ["running" if running else "idle", now(), name])

    def alerts(self, name: str) -> list[dict]:
        with self._conn() as con:
            rows = con.execute("SELECT tick, kind, message, details FROM live_alerts WHERE session = ? ORDER BY seq",
                               [name]).fetchall()
        return [{"tick": r[0], "kind": r[1], "message": r[2], "details": json.loads(r[3])} for r in rows]

    def readings(self, name: str) -> list[dict]:
        """Every reading's NAV, hour by hour (the session's NAV so far)."""
        with self._conn() as con:
            rows = con.execute("SELECT tick, timestamp, block, nav_usd, nav FROM live_ticks WHERE session = ? "
                               "ORDER BY tick", [name]).fetchall()
        return [{"tick": r[0], "timestamp": r[1], "block": r[2], "nav_usd": r[3], "nav": r[4]} for r in rows]
