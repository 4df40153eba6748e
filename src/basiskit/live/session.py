"""A live session: each hour, the fund's accounts read from the venues and the chain, explained against what the
previous reading should have become, attributed by source, checked against the mode's risk limits, planned (the
mode's strategy run on the book read: its decisions as order intents), committed.

A reading that fails is an alert and a retry, and a tick without a complete book is not committed, so nothing
downstream ever acts on a book that could not be read. With a Dispatcher (live/execution.py) the plan's orders
are then sent, and between readings the session polls for approvals, expiries and kills.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, wait_fixed

from ..config import RunConfig
from ..data.timeutil import HOUR
from ..errors import BasiskitError, ConfigError, RunError
from ..paper.alerts import Alert, AlertSink
from ..paper.outbox import WebhookSender, check_webhook_url
from .book import Observation, move, observe
from .execution import Order, client_id, notional_usd
from .reconcile import reconcile
from .store import LiveStore

READ_ATTEMPTS = 3


@dataclass(frozen=True)
class LiveLimits:
    """Alert when a holding moves by more than `unexplained_usd` that no venue explains, when the venues report a
    deposit or withdrawal, and when an Aave account's health factor falls under `health_factor`."""

    unexplained_usd: float = 1.0
    health_factor: float | None = None

    @classmethod
    def for_config(cls, cfg: RunConfig, unexplained_usd: float = 1.0) -> LiveLimits:
        if not unexplained_usd > 0:
            raise ConfigError([("--tolerance-usd", unexplained_usd, "must be a positive number of USD")])
        return cls(unexplained_usd, cfg.leverage.hf_floor if cfg.leverage is not None else None)


class LiveSession:
    def __init__(self, store: LiveStore, name: str, cfg: RunConfig, accounts, chain, exchanges: dict,
                 limits: LiveLimits, quiet: bool = False, retry_wait: float = 2.0, webhook: str | None = None,
                 planner=None, dispatcher=None, unwind: bool = False):
        self.store, self.name, self.cfg, self.accounts = store, name, cfg, accounts
        self.dispatcher = dispatcher  # sends the plan's orders (live/execution.py); None: intents only
        self.unwind = unwind  # each plan is the strategy's exit (live run --exit)
        self.planner = planner  # the strategy's decisions on the book read, as order intents (live/plan.py)
        self.unmodelled: set[str] = set()
        self.chain, self.exchanges, self.limits = chain, exchanges, limits
        self.sink = AlertSink(name, quiet=quiet)
        self.retry_wait = retry_wait
        if webhook is not None:
            check_webhook_url(webhook)
        store.open_session(name, cfg.mode, str(accounts.path), cfg.model_dump(mode="json"), webhook,
                           dispatcher.execute if dispatcher is not None else "off")
        url = store.webhook(name)  # this start's, or the one the session was started with
        # alerts are committed first, then posted from the outbox (what an earlier run left undelivered too)
        self.sender = WebhookSender(store, name, url, quiet=quiet) if url else None
        last = store.last_tick(name)
        self.k = last[0] + 1 if last else 0
        self.previous = Observation.from_json(last[1]) if last else None

    def read(self) -> Observation:
        """The book now, read up to READ_ATTEMPTS times; each failure is an alert."""
        failures: list[str] = []

        def attempt() -> Observation:
            try:
                return observe(self.accounts, self.chain, self.exchanges, self.previous, self.store.own_txs(self.name))
            except Exception as exc:  # noqa: BLE001 (a venue's or the RPC's error: alert, then retry)
                # exchange errors come without credentials (ExchangeAccount); the RPC URL's key is cut here
                text = self.chain.scrub(str(exc)) if self.chain is not None else str(exc)
                message = f"reading the accounts failed ({type(exc).__name__}: {text[:300]})"
                failures.append(message)
                self._alert([Alert(self.k, int(time.time()), "venue_error", message, {"attempt": len(failures)})])
                raise _ReadFailed(message) from None

        try:
            for tried in Retrying(stop=stop_after_attempt(READ_ATTEMPTS), wait=wait_fixed(self.retry_wait),
                                  retry=retry_if_exception_type(_ReadFailed), reraise=False):
                with tried:
                    return attempt()
        except RetryError:
            pass
        raise RunError(f"live session {self.name!r}: the accounts could not be read after {READ_ATTEMPTS} attempts "
                       f"({failures[-1]}); no book was committed for this hour")

    def tick(self) -> dict:
        """Read, explain, attribute, check and commit one hour; returns what was committed."""
        fills = self.store.unbooked_moves(self.name)  # what this session's own orders moved since the last reading
        now = self.read()
        self._book_trades(now, fills)
        rec = reconcile(self.previous, now) if self.previous is not None else None
        if rec is not None and abs(rec.residual) > 1e-9 * max(abs(rec.nav_after), 1.0):
            raise RunError(f"live session {self.name!r}: attribution misses NAV by {rec.residual!r} USD (a bug)")
        alerts = self._checks(now, rec)
        plan, plan_alerts = self._plan(now)
        alerts += plan_alerts
        nav_usd = now.nav_usd()
        nav = nav_usd / now.eth_usd if self.cfg.share_class == "ETH" and now.eth_usd else nav_usd
        orders = []
        if plan is not None and self.dispatcher is not None:
            orders, limited = self.dispatcher.admit(self.k, now.t, plan.intents, now)
            alerts += limited
        elif plan is not None:
            orders = [Order(client_id(self.name, self.k, i), self.k, i, o.venue, o.instrument, o.side, o.size,
                            o.price, o.reason, "intent", notional_usd(o, now)) for i, o in enumerate(plan.intents)]
        self.store.commit_tick(self.name, self.k, now.t, now.block, nav_usd, nav, now.to_json(),
                               rec.to_json() if rec else None, alerts, plan.to_json() if plan else None, orders,
                               [f[0] for f in fills])
        self._emitted(alerts)
        if self.dispatcher is not None:
            self._alert(self.dispatcher.poll())  # auto: sent now; confirm: what was approved meanwhile
        out = {"tick": self.k, "t": now.t, "block": now.block, "nav_usd": nav_usd, "nav": nav,
               "reconciliation": rec.to_json() if rec else None, "alerts": [a.kind for a in alerts],
               "orders": len(orders)}
        self.previous, self.k = now, self.k + 1
        return out

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
        limit = self.limits.health_factor
        before = self.previous.risk if self.previous is not None else {}
        for account, risk in now.risk.items():
            hf, was = risk.get("health_factor"), before.get(account, {}).get("health_factor")
            if limit is not None and hf is not None and hf < limit and not (was is not None and was < limit):
                alerts.append(Alert(self.k, now.t, "health_factor", f"{account}: Aave health factor {hf:.4f} < "
                                    f"{limit:g}", {"account": account, "health_factor": hf, "limit": limit}))
        return alerts

    def _alert(self, alerts: list[Alert]) -> None:
        self.store.add_alerts(self.name, alerts)
        self._emitted(alerts)

    def _emitted(self, alerts: list[Alert]) -> None:
        self.sink.emit(alerts)
        if alerts and self.sender is not None:
            self.sender.notify()

    def _wait(self, seconds: float, poll: float = 5.0) -> None:
        """Sleep until the next reading; a sending session polls meanwhile (kills, approvals, expiries)."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(left, poll))
            if self.dispatcher is not None:
                self._alert(self.dispatcher.poll())

    def close(self, wait_seconds: float = 10.0) -> int:
        """Give the webhook a few seconds for what is pending; the rest stays in the outbox (returns how many)."""
        if self.sender is None:
            return 0
        left, self.sender = self.sender.close(wait_seconds), None
        return left

    def run(self, ticks: int | None, every: float, progress: Callable[[dict], None] | None = None) -> None:
        """Tick now, then every `every` seconds (on the hour when it is 3600), `ticks` times or until stopped."""
        done = 0
        try:
            if self.dispatcher is not None:
                self._alert(self.dispatcher.poll())  # a restart: lost answers looked up before anything else
            while ticks is None or done < ticks:
                if done:
                    wait = every - time.time() % every if every == HOUR else every
                    self._wait(wait)
                result = self.tick()
                done += 1
                if progress:
                    progress(result)
        except KeyboardInterrupt:
            self.store.set_status(self.name, "stopped", "interrupted")
            raise
        except BasiskitError as exc:
            self.store.set_status(self.name, "failed", str(exc))
            raise
        finally:
            self.close()
        self.store.set_status(self.name, "idle")


class _ReadFailed(Exception):
    pass
