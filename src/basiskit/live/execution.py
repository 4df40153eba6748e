"""Sending a plan's order intents (live step 2).

Each intent gets a client id derived from the session, the tick and its place in the plan, so the same intent is
the same id after a crash. It is admitted against the session's limits (`live:` in the config), waits for an
operator's approval (`--execute confirm`) or not (`auto`), and is sent by its venue's executor. Every step is
stored before the next one: `sending` is committed before the request leaves, so a session that dies there finds
the order on restart and looks it up by its client id; an order is never sent blind a second time. A kill (the
CLI, the API or the kill file) cancels what is open at the venues and sends nothing more until `live resume`.

Statuses: intent (execute off), manual (no executor for it: the operator's), awaiting, approved, rejected, expired,
blocked (a limit), halted (killed before it went), sending, open, filled, partial, unfilled, refused (the venue
said no, or the transaction reverted), lost (no answer, and the venue has no such order), cancelled, skipped (an
earlier on-chain step of its plan did not complete), bundled (a flash-loan bundle's step, sent with the bundle's
order, whose status it then takes).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from ..config.models import LiveConfig
from ..connectors.exchanges import ExchangeAccount, OrderRefused, OrderUnknown, VenueOrder
from ..errors import ConfigError
from ..paper.alerts import Alert
from ..paper.orders import OrderIntent
from .book import Observation
from .chain_executor import BUNDLED, LimitExceeded

EXECUTE = ("off", "confirm", "auto")
CHAIN = ("aave_v3", "ethereum")  # venues whose orders are steps of one plan, each building on the last
SENT = ("sending", "open", "filled", "partial", "unfilled", "lost")  # count against the day's notional
# What confirm needs to price an order; auto needs every limit.
CONFIRM_NEEDS = ("max_slippage_bps", "max_gas_gwei")


def client_id(session: str, tick: int, seq: int) -> str:
    """32 characters of [a-z0-9] (every venue accepts them): 'bk' and a hash of session, tick and place in plan."""
    return "bk" + hashlib.sha256(f"{session}|{tick}|{seq}".encode()).hexdigest()[:30]


def check_execute(execute: str, limits: LiveConfig) -> None:
    """Refuse at start an unknown mode, or sending without the limits it needs (each named)."""
    if execute not in EXECUTE:
        raise ConfigError([("--execute", execute, f"must be one of {', '.join(EXECUTE)}")])
    needs = limits.missing() if execute == "auto" else [k for k in CONFIRM_NEEDS if getattr(limits, k) is None]
    if execute != "off" and needs:
        raise ConfigError([(f"live.{k}", None, f"--execute {execute} needs it (set it in the config or with --set "
                            f"live.{k}=...)") for k in needs])


def _asset_usd(symbol: str, obs: Observation) -> float | None:
    """USD per unit of an operation's asset at the reading (Aave's oracle; an exchange's USDT at 1)."""
    s = symbol.lower()
    if s in ("eth", "weth"):
        return obs.eth_usd
    if s == "usdt":
        return 1.0
    prices = [h.price for key, h in obs.holdings.items() if key.endswith(f"/token/{s}")]
    return prices[0] if prices else None


def notional_usd(intent: OrderIntent, obs: Observation) -> float | None:
    """An intent's size in USD: a perp's size x price; an on-chain amount x its asset's oracle price."""
    if intent.price is not None:
        return abs(intent.size * intent.price)
    asset = "WETH" if intent.instrument.startswith("flash_loan_") else intent.instrument.rsplit("_", 1)[-1]
    price = _asset_usd(asset, obs)
    return None if price is None else abs(intent.size) * price


@dataclass
class Order:
    """One intent as stored: identity, what it asks, how far it went."""

    client_id: str
    tick: int
    seq: int
    venue: str
    instrument: str
    side: str
    size: float
    price: float | None
    reason: str
    status: str
    notional_usd: float | None
    created: float | None = None  # epoch seconds it was planned (approval_minutes count from there)


class PerpExecutor:
    """Perp orders on one exchange account: limit IOC at the mark within the slippage limit."""

    def __init__(self, account: ExchangeAccount, max_slippage_bps: float):
        self.account, self.slippage = account, max_slippage_bps / 1e4

    @staticmethod
    def handles(order: Order) -> bool:
        return ":Perp:" in order.instrument

    @staticmethod
    def asset(order: Order) -> str:
        return order.instrument.split(":")[2].removesuffix("USDT")

    def request(self, order: Order) -> dict:
        asset = self.asset(order)
        mark = self.account.mark(asset)
        # the worst price the order may fill at: the mark moved by the slippage limit against us
        limit = mark * (1 + self.slippage) if order.side == "buy" else mark * (1 - self.slippage)
        return {"asset": asset, "side": order.side, "size": order.size, "limit": limit, "mark": mark,
                "type": "limit", "time_in_force": "IOC", "client_id": order.client_id}

    def send(self, order: Order, request: dict) -> VenueOrder:
        return self.account.place(request["asset"], request["side"], request["size"], request["limit"],
                                  order.client_id)

    def lookup(self, order: Order) -> VenueOrder | None:
        return self.account.order(self.asset(order), order.client_id)

    def scrub(self, text: str) -> str:
        return self.account.scrub(text)

    def cancel_open(self, assets: list[str]) -> list[VenueOrder]:
        """Cancel every open order of ours (client ids starting 'bk'); returns them."""
        done = []
        for asset in assets:
            for o in self.account.open_orders(asset):
                if o.client_id.startswith("bk"):
                    self.account.cancel(asset, o)
                    done.append(o)
        return done


def _said(ex, exc: Exception) -> str:
    """An executor's error as it may be stored and shown: its own scrubbing (an API key, an RPC URL's path) applied,
    whatever raised it."""
    text = str(exc) if isinstance(exc, (OrderRefused, OrderUnknown, LimitExceeded)) else f"{type(exc).__name__}: {exc}"
    return ex.scrub(text)[:400]


def outcome(o: VenueOrder) -> str:
    """An order's status from the venue's answer."""
    if o.status == "open":
        return "open"
    if o.filled >= o.amount * (1 - 1e-12) and o.filled > 0:
        return "filled"
    if o.filled > 0:
        return "partial"
    return "refused" if o.status == "rejected" else "unfilled"


class Dispatcher:
    """Admits, sends, recovers, expires and kills a session's orders, through the store (live_orders and its log)."""

    def __init__(self, store, session: str, execute: str, limits: LiveConfig, executors: dict, kill_file=None,
                 clock=time.time):
        check_execute(execute, limits)
        self.store, self.session, self.execute, self.limits = store, session, execute, limits
        self.executors, self.kill_file, self.clock = executors, kill_file, clock
        self.last_status: str | None = None
        for ex in executors.values():  # executors of several steps journal each before it leaves
            if hasattr(ex, "journal"):
                ex.journal = lambda cid, step, details: store.order_step(session, cid, "sending", step, details)
                ex.history = lambda cid: store.order_log(session, cid)

    # --- a tick's intents ---------------------------------------------------------------------------------------
    def admit(self, k: int, t: int, intents: list[OrderIntent], obs: Observation) -> tuple[list[Order], list[Alert]]:
        """Each intent as an Order with its first status; alerts for what a limit blocked."""
        orders, alerts = [], []
        day = self.store.day_notional(self.session, t, SENT)
        halted = self.halted()
        for seq, i in enumerate(intents):
            usd = notional_usd(i, obs)
            o = Order(client_id(self.session, k, seq), k, seq, i.venue, i.instrument, i.side, i.size, i.price,
                      i.reason, "intent", usd, self.clock())
            if self.execute != "off":
                problem = self._limit_problem(o, day)
                if self._executor(o) is None:
                    o.status = "manual"
                elif halted:
                    o.status = "halted"
                elif problem:
                    o.status = "blocked"
                    alerts.append(Alert(k, t, "limit", f"{o.venue} {o.instrument} {o.side} {o.size:.6g} not sent: "
                                        f"{problem}", {"client_id": o.client_id, "problem": problem}))
                else:
                    o.status = "awaiting" if self.execute == "confirm" else "approved"
                    day += usd or 0.0
            orders.append(o)
        return orders, alerts

    def _executor(self, o: Order):
        ex = self.executors.get(o.venue)
        return ex if ex is not None and ex.handles(o) else None

    def _limit_problem(self, o: Order, day: float) -> str | None:
        lim = self.limits
        if lim.venues is not None and o.venue not in lim.venues:
            return f"venue {o.venue} is not in live.venues ({', '.join(lim.venues)})"
        if o.notional_usd is None:
            return "its notional cannot be valued (no price for its asset in the reading)"
        if lim.max_order_usd is not None and o.notional_usd > lim.max_order_usd:
            return f"notional {o.notional_usd:,.2f} USD > live.max_order_usd {lim.max_order_usd:,.2f}"
        if lim.max_day_usd is not None and day + o.notional_usd > lim.max_day_usd:
            return (f"the day's notional would be {day + o.notional_usd:,.2f} USD > live.max_day_usd "
                    f"{lim.max_day_usd:,.2f}")
        return None

    # --- sending ------------------------------------------------------------------------------------------------
    def poll(self) -> list[Alert]:
        """A kill first (what is open cancelled), then lost answers looked up (nothing else goes while one is
        unknown), expiries, and the approved orders sent."""
        alerts = []
        if self.halted() and (why := self.store.kill_pending(self.session)) is not None:
            alerts += self.kill(why)
            self.store.kill_carried_out(self.session)
        if self.execute == "off" or self.store.is_halted(self.session):
            return alerts
        alerts += self.recover()
        if self.store.orders_in(self.session, ("sending",)):
            return alerts
        return alerts + self.expire() + self.send()

    def send(self) -> list[Alert]:
        """Send the approved orders of the latest plan, oldest first; stops at a kill (the next poll carries it out).
        Approved orders of an earlier plan (a restart, a slow approval) are stale: dropped, the latest plan decides."""
        alerts, broken, latest = [], set(), self.store.last_planned_tick(self.session)
        t = int(self.clock())
        day = self.store.day_notional(self.session, t, SENT)
        for o in self.store.orders_in(self.session, ("approved",)):
            with self.store.held():  # the order's steps on one connection
                if self.halted():
                    break
                if o.tick != latest:
                    self.store.order_step(self.session, o.client_id, "expired", "stale",
                                          {"why": f"planned at tick {o.tick}; the latest plan is tick {latest}"})
                    continue
                problem = self._limit_problem(o, day)
                if problem:  # approved a while ago: the day's other orders may have used the room since
                    self.store.order_step(self.session, o.client_id, "blocked", "limit", {"problem": problem})
                    alerts.append(Alert(o.tick, t, "limit", f"{o.client_id} not sent: {problem}", {"problem": problem}))
                    continue
                if o.venue in CHAIN and o.tick in broken:
                    self.store.order_step(self.session, o.client_id, "skipped", "skipped",
                                          {"why": "an earlier on-chain order of its plan did not complete"})
                    continue
                if BUNDLED in o.reason:  # a step of a flash-loan bundle: it goes with the bundle's own order
                    self.store.order_step(self.session, o.client_id, "bundled", "bundled", {})
                    continue
                ex = self._executor(o)
                bundle = []
                if o.instrument.startswith("flash_loan_"):
                    bundle = [b for b in self.store.orders_in(self.session, ("bundled",))
                              if b.tick == o.tick and b.seq < o.seq]
                    ex.bundle = bundle
                day += o.notional_usd or 0.0
                alerts += self._send_one(ex, o, t)
                for b in bundle:  # the steps went (or not) with it
                    self.store.order_step(self.session, b.client_id, self.last_status, "bundle",
                                          {"flash_order": o.client_id})
                if o.venue in CHAIN and self.last_status != "filled":
                    broken.add(o.tick)  # the plan's next steps build on this one: none goes, the next plan decides
        return alerts

    def _send_one(self, ex, o: Order, t: int) -> list[Alert]:
        """Price, journal, send and record one order; `self.last_status` is where it ended."""
        self.last_status = "blocked"
        try:
            request = ex.request(o)
        except LimitExceeded as exc:
            self.store.order_step(self.session, o.client_id, "blocked", "limit", {"problem": str(exc)})
            return [Alert(o.tick, t, "limit", f"{o.client_id} not sent: {exc}", {"problem": str(exc)})]
        except Exception as exc:  # noqa: BLE001 (the venue could not price it: nothing was sent)
            text = _said(ex, exc)
            self.store.order_step(self.session, o.client_id, "approved", "not_priced", {"error": text})
            return [Alert(o.tick, t, "order_error", f"{o.client_id}: not sent, pricing failed: {text}",
                          {"client_id": o.client_id})]
        self.store.order_step(self.session, o.client_id, "sending", "request", request)  # committed first
        self.last_status = "sending"
        try:
            got = ex.send(o, request)
        except OrderRefused as exc:
            self.last_status = "refused"
            text = _said(ex, exc)
            self.store.order_step(self.session, o.client_id, "refused", "refused",
                                  {"error": text, "kind": exc.kind}, moves=exc.moves or None)
            return [Alert(o.tick, t, "order_refused", f"{o.venue} refused {o.client_id} ({o.side} {o.size:.6g} "
                          f"{o.instrument}): {text}", {"client_id": o.client_id, "kind": exc.kind})]
        except Exception as exc:  # noqa: BLE001 (no answer, or a transport error: the order may have gone)
            self.store.order_step(self.session, o.client_id, "sending", "no_answer", {"error": _said(ex, exc)})
            return self._look_up(ex, o, t)
        return self._answered(o, got, "answer", t)

    def _answered(self, o: Order, got: VenueOrder, step: str, t: int) -> list[Alert]:
        status = self.last_status = outcome(got)
        moves = got.moves
        if moves is None and got.filled and ":Perp:" in o.instrument:  # the perp's size moved by the fill
            moves = [[None, {f"{o.venue}/{o.venue}/perp/{PerpExecutor.asset(o)}": got.filled if o.side == "buy"
                             else -got.filled}]]
        self.store.order_step(self.session, o.client_id, status, step, got.__dict__,
                              fill=(got.filled, got.average, got.fee), moves=moves)
        if status == "refused":
            return [Alert(o.tick, t, "order_refused", f"{o.venue} rejected {o.client_id}", {"client_id": o.client_id})]
        return []

    def _look_up(self, ex, o: Order, t: int) -> list[Alert]:
        """After a lost answer: ask the venue for the client id, never resend."""
        try:
            got = ex.lookup(o)
        except Exception as exc:  # noqa: BLE001 (it stays `sending`: looked up again before anything is sent)
            self.store.order_step(self.session, o.client_id, "sending", "lookup_failed", {"error": _said(ex, exc)})
            return [Alert(o.tick, t, "order_unknown", f"{o.client_id}: no answer and the lookup failed; looked up "
                          "again before anything else is sent", {"client_id": o.client_id})]
        if got is None:
            self.last_status = "lost"
            self.store.order_step(self.session, o.client_id, "lost", "lookup", {"found": False})
            return [Alert(o.tick, t, "order_lost", f"{o.client_id}: no answer, and {o.venue} has no such order: "
                          "nothing was placed; the next plan decides again", {"client_id": o.client_id})]
        return self._answered(o, got, "lookup", t)

    def recover(self) -> list[Alert]:
        """Orders left `sending` (a crash or a lost answer): each looked up by client id before anything is sent."""
        alerts = []
        for o in self.store.orders_in(self.session, ("sending",)):
            ex = self._executor(o)
            if ex is not None:
                alerts += self._look_up(ex, o, int(self.clock()))
        return alerts

    # --- approval, expiry, kill ---------------------------------------------------------------------------------
    def expire(self) -> list[Alert]:
        now = self.clock()
        alerts = []
        for o, at in self.store.awaiting_since(self.session):
            if now - at > self.limits.approval_minutes * 60:
                self.store.order_step(self.session, o.client_id, "expired", "expired",
                                      {"approval_minutes": self.limits.approval_minutes})
                alerts.append(Alert(o.tick, int(now), "expired", f"{o.client_id} ({o.side} {o.size:.6g} "
                                    f"{o.instrument}) was not approved within {self.limits.approval_minutes:g} min: "
                                    "dropped; the next plan decides again", {"client_id": o.client_id}))
        return alerts

    def halted(self) -> bool:
        if self.kill_file is not None and self.kill_file.exists() and not self.store.is_halted(self.session):
            self.store.kill(self.session, f"kill file {self.kill_file}")
        return self.store.is_halted(self.session)

    def kill(self, why: str) -> list[Alert]:
        """Cancel every open order of ours at every venue; what was approved or awaiting is halted."""
        t = int(self.clock())
        cancelled = []
        orders = self.store.orders_in(self.session)
        for venue, ex in self.executors.items():
            assets = sorted({PerpExecutor.asset(o) for o in orders if o.venue == venue and ":Perp:" in o.instrument})
            for got in ex.cancel_open(assets):
                self.store.order_step(self.session, got.client_id, "cancelled", "kill", {"order": got.__dict__})
                cancelled.append(got.client_id)
        for o in self.store.orders_in(self.session, ("approved", "awaiting")):
            self.store.order_step(self.session, o.client_id, "halted", "kill", {"why": why})
        tick = self.store.last_planned_tick(self.session) or 0
        return [Alert(tick, t, "halted", f"session halted ({why}); {len(cancelled)} open order(s) cancelled; nothing "
                      "is sent until `basiskit live resume`", {"cancelled": cancelled})]
