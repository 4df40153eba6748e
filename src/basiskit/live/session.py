"""A live session: each hour, the fund's accounts read from the venues and the chain, explained against what the
previous reading should have become, attributed by source, checked against the alert levels, planned (the mode's
strategy run on the book read: its decisions as order intents), committed.

A reading that fails is retried with back-off, without end: the session keeps its state, alerts once the venues or
the RPC have been down live.outage_alert_s and again every live.outage_alert_every_minutes, and goes on when they
answer; a tick without a complete book is never committed, so nothing downstream acts on a book that could not be
read. With a Dispatcher (live/execution.py) the plan's orders are then sent; between readings the session polls
for approvals, expiries and kills, and plans again at once when an approved plan's reading has gone stale. A run
holds the session's leases (live/lease.py): one session per wallet and exchange account, with a heartbeat.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..config import RunConfig
from ..data.timeutil import HOUR
from ..errors import BasiskitError, ConfigError, RunError
from ..results.db import StoreError
from ..sessions.alerts import Alert, AlertSink
from ..sessions.outbox import WebhookSender, check_webhook_url
from ..sessions.secrets import given, shown
from .book import Observation, move, observe
from .execution import Order, client_id, notional_usd
from .lease import Lease, account_keys
from .reconcile import reconcile
from .store import LiveStore

MAX_BACKOFF_S = 60.0  # the longest wait between two tries of a reading
OWN_TX_LOOKBACK_S = 86_400  # the session's transactions signed this long before the last reading may be mined since


@dataclass(frozen=True)
class LiveLimits:
    """Alert when a holding moves by more than `unexplained_usd` that no venue explains, when the venues report a
    deposit or withdrawal, when an Aave account's health factor falls under `health_factor`, a venue's margin ratio
    (maintenance margin / equity) reaches `margin_ratio`, a perp comes within `liq_distance` of its liquidation
    price, and when the wallets' ETH falls under the plan's gas reserve."""

    unexplained_usd: float = 1.0
    health_factor: float | None = None
    margin_ratio: float | None = None
    liq_distance: float | None = None

    @classmethod
    def for_config(cls, cfg: RunConfig, unexplained_usd: float = 1.0) -> LiveLimits:
        if not unexplained_usd > 0:
            raise ConfigError([("--tolerance-usd", unexplained_usd, "must be a positive number of USD")])
        levels = cfg.live.alerts
        hf = levels.health_factor if levels.health_factor is not None else (
            cfg.leverage.hf_floor if cfg.target_ltv else None)
        margin = levels.margin_ratio if levels.margin_ratio is not None else cfg.risk.margin_ratio_alert
        return cls(unexplained_usd, hf, margin, levels.liq_distance)


def breaches(obs: Observation, limits: LiveLimits, reserve_eth: float | None) -> dict[str, tuple[str, str, dict]]:
    """What of a reading is past an alert level: key -> (kind, message, details)."""
    out: dict[str, tuple[str, str, dict]] = {}
    for account, risk in obs.risk.items():
        hf = risk.get("health_factor")
        if limits.health_factor is not None and isinstance(hf, float) and hf < limits.health_factor:
            out[f"health_factor:{account}"] = ("health_factor", f"{account}: Aave health factor {hf:.4f} < "
                                               f"{limits.health_factor:g}", {"account": account, "health_factor": hf,
                                                                             "limit": limits.health_factor})
        equity, mm = risk.get("equity_usd"), risk.get("maintenance_usd")
        if limits.margin_ratio is not None and equity is not None and mm:
            ratio = mm / equity if equity > 0 else math.inf
            if ratio >= limits.margin_ratio:
                out[f"margin_ratio:{account}"] = ("margin_ratio", f"{account}: margin ratio {ratio:.4f} >= "
                                                  f"{limits.margin_ratio:g}", {"venue": account, "margin_ratio": ratio,
                                                                               "limit": limits.margin_ratio})
    for key, h in obs.holdings.items():
        liq, mark = h.details.get("liquidation_price"), h.details.get("mark_price")
        if limits.liq_distance is None or not liq or not mark or not h.units:
            continue
        distance = abs(mark - liq) / mark  # the move of the mark that liquidates the position
        if distance < limits.liq_distance:
            out[f"liq_distance:{key}"] = ("liq_distance", f"{key}: {distance:.2%} from liquidation (mark {mark:,.2f}, "
                                          f"liquidation {liq:,.2f}; alert under {limits.liq_distance:.0%})",
                                          {"key": key, "liq_distance": distance, "limit": limits.liq_distance})
    if reserve_eth:
        eth = sum(h.units for key, h in obs.holdings.items() if key.endswith("/ethereum/native/ETH"))
        if eth < reserve_eth:
            out["gas_reserve"] = ("low_gas", f"the wallets hold {eth:.6f} ETH for gas, under the gas reserve "
                                  f"{reserve_eth:.6f} ETH (a full de-lever at the 30-day 99th percentile gas price): "
                                  "top the signing wallet up", {"eth": eth, "reserve_eth": reserve_eth})
    return out


class LiveSession:
    def __init__(self, store: LiveStore, name: str, cfg: RunConfig, accounts, chain, exchanges: dict,
                 limits: LiveLimits, quiet: bool = False, retry_wait: float = 2.0, webhook: str | None = None,
                 planner=None, dispatcher=None, unwind: bool = False, read_attempts: int | None = None,
                 lease: Lease | None = None, webhook_ref: str | None = None):
        """`webhook`: the URL alerts are posted to now; `webhook_ref`: what the store keeps of it (env:NAME, or
        given:SCHEME://HOST:PORT: sessions/secrets.py), so a URL's key is never stored."""
        self.store, self.name, self.cfg, self.accounts = store, name, cfg, accounts
        self.dispatcher = dispatcher  # sends the plan's orders (live/execution.py); None: intents only
        self._slow = False  # the last plan went stale before it could be sent (slow_plan alerted once)
        self.unwind = unwind  # each plan is the strategy's exit (live run --exit)
        self.planner = planner  # the strategy's decisions on the book read, as order intents (live/plan.py)
        self.unmodelled: set[str] = set()
        self.chain, self.exchanges, self.limits = chain, exchanges, limits
        self.sink = AlertSink(name, quiet=quiet)
        self.retry_wait = retry_wait
        self.read_attempts = read_attempts  # None: a reading is tried until it succeeds
        self.lease = lease  # taken before the session touches the store (live run); else run() takes it
        if webhook is not None:
            check_webhook_url(webhook)
            webhook_ref = webhook_ref or given(webhook)
        store.open_session(name, cfg.mode, str(accounts.path), cfg.model_dump(mode="json"), webhook_ref,
                           dispatcher.execute if dispatcher is not None else "off")
        url = webhook or store.webhook(name)  # this start's, or the one the session was started with (env:)
        if url is None and store.webhook_ref(name):
            sys.stderr.write(f"live session {name}: its alert webhook ({shown(store.webhook_ref(name))}) was not "
                             "stored (a URL may hold a key): alerts stay in the outbox until the session is started "
                             "with --alert-webhook URL or --alert-webhook-env NAME\n")
        # alerts are committed first, then posted from the outbox (what an earlier run left undelivered too)
        self.sender = WebhookSender(store, name, url, quiet=quiet) if url else None
        last = store.last_tick(name)
        self.k = last[0] + 1 if last else 0
        self.previous = Observation.from_json(last[1]) if last else None
        plan = store.status(name)["last"]["plan"] if last else None
        self.reserve_eth = plan.get("gas_reserve_eth") if plan else None
        self.active = set(breaches(self.previous, limits, self.reserve_eth)) if self.previous else set()

    # --- reading ------------------------------------------------------------------------------------------------
    def read(self, expected: dict[str, float] | None = None) -> Observation:
        """The book now. A failure is retried with back-off (2 s doubling to a minute) until it succeeds, or
        `read_attempts` tries; an outage is alerted once it has lasted live.outage_alert_s and again every
        live.outage_alert_every_minutes; a kill is carried out meanwhile."""
        live = self.cfg.live
        began, tries, alerted_at, last_error = time.monotonic(), 0, None, ""
        since = self.previous.read_at - OWN_TX_LOOKBACK_S if self.previous and self.previous.read_at else None
        while True:
            tries += 1
            try:
                got = observe(self.accounts, self.chain, self.exchanges, self.previous,
                              self.store.own_txs(self.name, since), expected, live.log_chunk_blocks)
            except Exception as exc:  # noqa: BLE001 (a venue's or the RPC's error: retried; alerted if it lasts)
                # exchange errors come without credentials (ExchangeAccount); the RPC URL's key is cut here
                text = self.chain.scrub(str(exc)) if self.chain is not None else str(exc)
                last_error = f"{type(exc).__name__}: {text[:300]}"
            else:
                if alerted_at is not None:
                    self._alert([Alert(self.k, int(time.time()), "recovered", f"the venues and the RPC answer again "
                                       f"after {time.monotonic() - began:.0f} s down; reading resumed", {})])
                return got
            down = time.monotonic() - began
            if self.read_attempts is not None and tries >= self.read_attempts:
                self._alert([Alert(self.k, int(time.time()), "venue_error",
                                   f"reading the accounts failed ({last_error})", {"attempts": tries})])
                raise RunError(f"live session {self.name!r}: the accounts could not be read after {tries} attempts "
                               f"({last_error}); no book was committed for this hour")
            due = alerted_at is None and down >= live.outage_alert_s
            again = alerted_at is not None and time.monotonic() - alerted_at >= live.outage_alert_every_minutes * 60
            if due or again:
                alerted_at = time.monotonic()
                self._alert([Alert(self.k, int(time.time()), "outage", f"the accounts cannot be read for {down:.0f} s "
                                   f"({tries} tries; last: {last_error}); retrying, nothing is sent meanwhile",
                                   {"down_s": down, "tries": tries, "error": last_error})])
            self._sleep(min(self.retry_wait * 2 ** min(tries - 1, 16), MAX_BACKOFF_S), send=False)

    # --- one hour -----------------------------------------------------------------------------------------------
    def tick(self) -> dict:
        """Read, explain, attribute, check, plan and commit one hour; returns what was committed."""
        fills = self.store.unbooked_moves(self.name)  # what this session's own orders moved since the last reading
        expected: dict[str, float] = {}
        for _, moves in fills:
            for _, units_by_key in moves:
                for key, units in units_by_key.items():
                    expected[key] = expected.get(key, 0.0) + units
        now = self.read(expected)
        if self.dispatcher is not None:
            self.dispatcher.stale_plan = False  # this reading is the fresh one
            self.dispatcher.replan_at = None
        self._book_trades(now, fills)
        rec = reconcile(self.previous, now) if self.previous is not None else None
        if rec is not None and abs(rec.residual) > 1e-9 * max(abs(rec.nav_after), 1.0):
            raise RunError(f"live session {self.name!r}: attribution misses NAV by {rec.residual!r} USD (a bug)")
        plan, plan_alerts = self._plan(now)
        if plan is not None:
            self.reserve_eth = plan.gas_reserve_eth
        alerts = self._checks(now, rec) + plan_alerts
        nav_usd = now.nav_usd()
        nav = nav_usd / now.eth_usd if self.cfg.share_class == "ETH" and now.eth_usd else nav_usd
        orders: list[Order] = []
        if plan is not None and self.dispatcher is not None:
            orders, limited = self.dispatcher.admit(self.k, now.t, plan.intents, now)
            carried = self.dispatcher.supersede(self.k, orders)
            waiting = any(o.status == "awaiting" for o in orders)  # (none, when the approval was carried)
            alerts += [a for a in limited if a.kind != "approval_needed" or waiting] + carried
        elif plan is not None:
            at = now.read_at or time.time()
            orders = [Order.of(client_id(self.name, self.k, i), self.k, i, o, notional_usd(o, now), at, at)
                      for i, o in enumerate(plan.intents)]
        self.store.commit_tick(self.name, self.k, now.t, now.block, nav_usd, nav, now.to_json(),
                               rec.to_json() if rec else None, alerts, plan.to_json() if plan else None, orders,
                               [f[0] for f in fills], now.read_at)
        k, self.previous, self.k = self.k, now, self.k + 1  # committed: a store error after this re-reads hour k + 1
        self._emitted(alerts)
        if self.dispatcher is not None:
            self._alert(self.dispatcher.poll())  # auto: sent now; confirm: what was approved meanwhile
            slow = self.dispatcher.stale_plan  # its own reading went stale before its first order could go
            if slow and not self._slow:  # once until a plan is quick again (the session re-reads every poll)
                self._alert([Alert(k, now.t, "slow_plan", f"planning took longer than live.fresh_reading_seconds "
                                   f"{self.cfg.live.fresh_reading_seconds:g} s after the reading: its approved orders "
                                   "wait for a fresher one (a slow RPC or venue?)", {})])
            self._slow = slow
        return {"tick": k, "t": now.t, "block": now.block, "nav_usd": nav_usd, "nav": nav,
                "reconciliation": rec.to_json() if rec else None, "alerts": [a.kind for a in alerts],
                "orders": len(orders)}

    def _book_trades(self, now: Observation, fills: list) -> None:
        """The session's own orders as trades of this reading; an Aave balance they moved at a block has grown
        with its index since (as a transfer's, live/book.py)."""
        for _, moves in fills:
            for block, units_by_key in moves:
                for key, units in units_by_key.items():
                    _, venue, kind, reserve = key.split("/")
                    if venue == "aave_v3" and block is not None and key in now.holdings:
                        units *= now.holdings[key].index / self.chain.index(reserve, kind, block)
                    move(now.moved, key, "trades", units)

    def _plan(self, now: Observation):
        """The strategy's decisions on the book read (None without a planner, or when the hour's market could not
        be read: an alert, and no intent for this hour)."""
        if self.planner is None:
            return None, []
        try:
            plan = self.planner.plan(self.k, now, unwind=self.unwind)
        except Exception as exc:  # noqa: BLE001 (a market read or the plan failed: alert, no intents this hour)
            text = self.chain.scrub(str(exc)) if self.chain is not None else str(exc)
            return None, [Alert(self.k, now.t, "plan_failed", f"no order intents this hour: {text[:400]}", {})]
        alerts = [Alert(self.k, now.t, "unmodelled", f"{key}: {usd:,.2f} USD held that {self.cfg.mode} has no "
                        "position for; the plan leaves it out", {"key": key, "usd": usd})
                  for key, usd in plan.unmodelled.items() if key not in self.unmodelled]
        self.unmodelled = set(plan.unmodelled)
        return plan, alerts

    def _checks(self, now: Observation, rec) -> list[Alert]:
        alerts = []
        for line in rec.lines if rec else []:
            if abs(line.value_usd) > self.limits.unexplained_usd:
                alerts.append(Alert(self.k, now.t, "unexplained", f"{line.key}: {line.unexplained:+.6g} units "
                                    f"({line.value_usd:+,.2f} USD) that no venue explains",
                                    {"key": line.key, "units": line.unexplained, "usd": line.value_usd,
                                     "expected": line.expected, "observed": line.observed}))
            if line.moved.get("flows"):
                alerts.append(Alert(self.k, now.t, "flow", f"{line.key}: {line.moved['flows']:+.6g} units moved in "
                                    "or out of the account", {"key": line.key, "units": line.moved["flows"]}))
        found = breaches(now, self.limits, self.reserve_eth)
        alerts += [Alert(self.k, now.t, kind, message, details) for key, (kind, message, details) in found.items()
                   if key not in self.active]  # once per crossing; again once it was back within the level
        self.active = set(found)
        return alerts

    def _alert(self, alerts: list[Alert]) -> None:
        if alerts:
            self.store.add_alerts(self.name, alerts)
            self._emitted(alerts)

    def _emitted(self, alerts: list[Alert]) -> None:
        self.sink.emit(alerts)
        if alerts and self.sender is not None:
            self.sender.notify()

    def _sleep(self, seconds: float, poll: float = 5.0, send: bool = True) -> bool:
        """Sleep; a sending session polls meanwhile (kills, approvals, expiries; `send`: approved orders go). True
        when an approved plan waits for a fresh reading (the caller reads and plans at once)."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(left, poll))
            if self.dispatcher is not None:
                self._alert(self.dispatcher.poll(send=send))
                due = self.dispatcher.replan_at if send else None  # a read's back-off is not cut short by it
                if self.dispatcher.stale_plan or (due is not None and time.time() >= due):
                    return True
        return False

    def _store_down(self, exc: StoreError, down: tuple[float, int] | None) -> tuple[float, int]:
        """A tick the store refused (nothing of it was committed): said on stderr at once (the store cannot take
        the alert now; it is stored once the store is back), then the reading is made again after a back-off."""
        since, tries = down or (time.monotonic(), 0)
        tries += 1
        if tries == 1 or tries % 10 == 0:
            self.sink.emit([Alert(self.k, int(time.time()), "store_unavailable", f"the store cannot be used ({exc}); "
                                  "the session goes on and reads again; nothing is sent meanwhile", {})])
        time.sleep(min(self.retry_wait * 2 ** min(tries - 1, 16), MAX_BACKOFF_S))
        return since, tries

    def close(self, wait_seconds: float = 10.0) -> int:
        """Give the webhook a few seconds for what is pending; the rest stays in the outbox (returns how many)."""
        if self.sender is None:
            return 0
        left, self.sender = self.sender.close(wait_seconds), None
        return left

    def run(self, ticks: int | None, every: float, progress: Callable[[dict], None] | None = None) -> None:
        """Tick now, then every `every` seconds (on the hour when it is 3600), `ticks` times or until stopped; the
        session's leases are held throughout (a second session on its accounts is refused, exit 2)."""
        done = 0
        lease = self.lease or Lease(self.store, self.name, account_keys(self.accounts, self.store, self.name),
                                    self.cfg.live.heartbeat_s)
        lease.start()
        try:
            if self.dispatcher is not None:  # a restart: lost answers looked up first; nothing planned before it goes
                self._alert(self.dispatcher.poll(send=False))
            down: tuple[float, int] | None = None  # (since, tries) while the store cannot be used
            while ticks is None or done < ticks:
                k, kept = self.k, (set(self.active), set(self.unmodelled), self.reserve_eth)
                try:
                    if done and down is None:
                        wait = every - time.time() % every if every == HOUR else every
                        self._sleep(wait)
                    result = self.tick()
                except StoreError as exc:  # another process holds the store: keep going, never exit over it
                    if self.k == k:  # the hour was not committed: its alerts are raised again with it
                        self.active, self.unmodelled, self.reserve_eth = kept
                    down = self._store_down(exc, down)
                    continue
                if down is not None:
                    self._alert([Alert(self.k - 1, int(time.time()), "store_unavailable", f"the store could not be "
                                       f"used for {time.monotonic() - down[0]:.0f} s ({down[1]} tries); this "
                                       "reading was committed once it could be", {"down_s": time.monotonic() -
                                                                                  down[0], "tries": down[1]})])
                    down = None
                done += 1
                if progress:
                    progress(result)
            self.store.set_status(self.name, "idle")
        except KeyboardInterrupt:
            self.store.set_status(self.name, "stopped", "interrupted")
            raise
        except Exception as exc:  # ours, or a bug: shown failed (never `running` without a heartbeat), then raised
            self.store.set_status(self.name, "failed",
                                  str(exc) if isinstance(exc, BasiskitError) else f"{type(exc).__name__}: {exc}")
            raise
        finally:
            lease.release()
            self.close()
