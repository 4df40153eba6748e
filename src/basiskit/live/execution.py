"""Sending a plan's order intents (live step 2).

Each intent gets a client id derived from the session, the tick and its place in the plan, so the same intent is
the same id after a crash. It is admitted against the session's limits (`live:` in the config), waits for an
operator's approval (`--execute confirm`) or not (`auto`), and is sent by its venue's executor, chosen by the
intent's typed `action` (execution/intents.py), never by the text of a message. Every step is stored before the
next one: `sending` is committed before the request leaves, so a session that dies there finds the order on
restart and looks it up by its client id; an order is never sent blind a second time. A kill (the CLI, the API or
the kill file) cancels what is open at the venues and sends nothing more until `live resume`.

Safety orders (their trigger is health_factor, margin_ratio, risk_override or the exit) are never blocked by
live.max_order_usd or live.max_day_usd: they are counted and alerted, capped only by live.safety_max_order_usd;
with confirm they go without approval unless live.safety_needs_approval. A flash-loan bundle is judged and counted
once, at its net exposure change (what it adds to or takes from collateral less debt); its steps go with it.

Nothing stale goes: an approved order not sent within live.approved_ttl_minutes expires; a plan whose reading is
older than live.fresh_reading_seconds when its first order would go is planned again on a fresh reading first
(`stale_plan`: the session reads and plans at once, and the new plan keeps the approval only when its orders are
the same); each order is priced again when it is sent (the mark, the oracle at the latest block) and the limits
are evaluated at that price. On-chain orders are one sequence: one that cannot go (the operator's, or blocked)
blocks those after it, and the plan says so.

Statuses: intent (execute off), manual (no executor for it: the operator's), awaiting, approved, rejected, expired,
blocked (a limit, or an earlier on-chain order it depends on cannot go), halted (killed before it went), sending,
open, filled, partial, unfilled, refused (the venue said no, or the transaction reverted), lost (no answer, and
the venue has no such order), cancelled, skipped (an earlier on-chain step of its plan did not complete), bundled
(a flash-loan bundle's step, sent with the bundle's order, whose status it then takes).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, fields

from ..config.models import LiveConfig
from ..connectors.exchanges import ExchangeAccount, OrderRefused, OrderUnknown, VenueOrder
from ..errors import ConfigError
from ..execution.intents import ON_CHAIN, BundleMember, OrderIntent
from ..sessions.alerts import Alert
from .book import Observation
from .chain_executor import LimitExceeded

EXECUTE = ("off", "confirm", "auto")
SENT = ("sending", "open", "filled", "partial", "unfilled", "lost")  # count against the day's notional
LEFT = SENT + ("refused", "cancelled", "skipped")  # an order of the plan went (or was tried): its sending began
SAFETY_RETRY_S = 60.0  # a failed safety order is planned again this soon, doubling while it fails ...
SAFETY_RETRY_MAX_S = 900.0  # ... up to this
SAFETY_FAILED = ("blocked", "refused", "lost", "unfilled")  # how a safety order ends when it did not go
PENDING = ("intent", "awaiting", "approved", "sending")  # an order that may still go (or may have gone)
# What confirm needs to price an order; auto needs every limit.
CONFIRM_NEEDS = ("max_slippage_bps", "max_gas_gwei")
# what an order of each action moves, for a bundle's net exposure change: collateral (+) and debt (-)
EXPOSURE = {"aave_supply": 1.0, "aave_withdraw": -1.0, "aave_borrow": -1.0, "aave_repay": 1.0}


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
    """USD per unit of an asset at the reading (Aave's oracle; an exchange's USDT at 1)."""
    s = symbol.lower()
    if s in ("eth", "weth"):
        return obs.eth_usd
    if s == "usdt":
        return 1.0
    prices = [h.price for key, h in obs.holdings.items() if key.endswith(f"/token/{s}")]
    return prices[0] if prices else None


def notional_usd(intent: OrderIntent, obs: Observation) -> float | None:
    """An intent's size in USD: a perp's or spot order's size x price; an on-chain amount x its asset's oracle
    price."""
    if intent.price is not None:
        return abs(intent.size * intent.price)
    price = _asset_usd(intent.asset, obs)
    return None if price is None else abs(intent.size) * price


def bundle_net_usd(steps: list, head_usd: float | None) -> float | None:
    """A flash-loan bundle's net exposure change (USD): collateral supplied less withdrawn, less debt borrowed net of
    repaid, over its steps (None when a step has no price)."""
    if any(s.notional_usd is None for s in steps):
        return head_usd
    return abs(sum(EXPOSURE.get(s.action, 0.0) * s.notional_usd for s in steps))


def bundle_gross_usd(head, steps: list) -> float | None:
    """What a flash-loan bundle moves at most in one step (USD): its flash amount or its largest step; the order
    limit (live.max_order_usd) holds it to that, so a re-lever of equal equity is still bounded."""
    values = [x.notional_usd for x in [head, *steps]]
    return None if any(v is None for v in values) else max(values)


@dataclass
class Order(BundleMember):
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
    action: str = ""
    asset: str = ""
    to_asset: str | None = None
    bundle: str | None = None
    trigger: str = "strategy"
    safety: bool = False
    counted_usd: float | None = None  # what it counts against the day's limit (a bundle: its net, steps: 0)
    read_at: float | None = None  # when the reading it was planned on was taken (epoch seconds)
    approved_at: float | None = None  # when it was approved (approved_ttl_minutes count from there)
    note: str | None = None  # why it is blocked or the operator's

    @classmethod
    def of(cls, cid: str, k: int, seq: int, i: OrderIntent, usd: float | None, created: float,
           read_at: float | None) -> Order:
        return cls(cid, k, seq, i.venue, i.instrument, i.side, i.size, i.price, i.reason, "intent", usd, created,
                   i.action, i.asset, i.to_asset, i.bundle, i.trigger, bool(i.safety), usd, read_at)

    def shown(self) -> str:
        return f"{self.venue} {self.instrument} {self.side} {self.size:.6g}"


ORDER_FIELDS = tuple(f.name for f in fields(Order))


class PerpExecutor:
    """Perp orders on one exchange account: limit IOC at the mark within the slippage limit."""

    def __init__(self, account: ExchangeAccount, max_slippage_bps: float):
        self.account, self.slippage = account, max_slippage_bps / 1e4

    @staticmethod
    def handles(order: Order) -> bool:
        return order.action == "perp"

    def request(self, order: Order) -> dict:
        mark = self.account.mark(order.asset)
        # the worst price the order may fill at: the mark moved by the slippage limit against us
        limit = mark * (1 + self.slippage) if order.side == "buy" else mark * (1 - self.slippage)
        return {"asset": order.asset, "side": order.side, "size": order.size, "limit": limit, "mark": mark,
                "type": "limit", "time_in_force": "IOC", "client_id": order.client_id, "usd": abs(order.size) * mark}

    def send(self, order: Order, request: dict) -> VenueOrder:
        return self.account.place(request["asset"], request["side"], request["size"], request["limit"],
                                  order.client_id)

    def lookup(self, order: Order) -> VenueOrder | None:
        return self.account.order(order.asset, order.client_id)

    def scrub(self, text: str) -> str:
        return self.account.scrub(text)

    def cancel_open(self, assets: list[str]):
        """Cancel every open order of ours (client ids starting 'bk'), yielding each once it is cancelled (the
        caller records it at once: a failure half-way loses none of those before it)."""
        for asset in assets:
            for o in self.account.open_orders(asset):
                if o.client_id.startswith("bk"):
                    self.account.cancel(asset, o)
                    yield o


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


def _same(a: Order, b: Order, tolerance: float) -> bool:
    """The same order planned again: what it does, where, on what, and its size within `tolerance`."""
    if (a.venue, a.action, a.asset, a.to_asset, a.side, a.in_bundle) != (b.venue, b.action, b.asset, b.to_asset,
                                                                        b.side, b.in_bundle):
        return False
    return abs(a.size - b.size) <= tolerance * max(abs(a.size), abs(b.size))


class Dispatcher:
    """Admits, sends, recovers, expires and kills a session's orders, through the store (live_orders and its log)."""

    def __init__(self, store, session: str, execute: str, limits: LiveConfig, executors: dict, kill_file=None,
                 clock=time.time):
        check_execute(execute, limits)
        self.store, self.session, self.execute, self.limits = store, session, execute, limits
        self.executors, self.kill_file, self.clock = executors, kill_file, clock
        self.last_status: str | None = None
        self.stale_plan = False  # the latest plan's approved orders wait for a fresh reading (the session plans)
        self.kill_failed: dict[str, str] = {}  # the last kill's venues that could not cancel (the kill is retried)
        self._kill_retrying = False
        self.replan_at: float | None = None  # a safety order failed: the session reads and plans again then
        self._safety_failures = 0
        self._safety_counted: set[str] = set()  # the failed safety orders counted in the back-off
        for ex in executors.values():  # executors of several steps journal each before it leaves
            if hasattr(ex, "journal"):
                ex.journal = lambda cid, step, details: store.order_step(session, cid, "sending", step, details)
                ex.history = lambda cid: store.order_log(session, cid)

    # --- a tick's intents ---------------------------------------------------------------------------------------
    def admit(self, k: int, t: int, intents: list[OrderIntent], obs: Observation) -> tuple[list[Order], list[Alert]]:
        """Each intent as an Order with its first status; alerts for what a limit blocked, what a safety action sent
        past a limit, an on-chain sequence waiting for the operator, and the plan awaiting approval."""
        now = self.clock()
        read_at = obs.read_at if obs.read_at is not None else now
        orders = [Order.of(client_id(self.session, k, seq), k, seq, i, notional_usd(i, obs), now, read_at)
                  for seq, i in enumerate(intents)]
        for head in (o for o in orders if o.is_bundle_head):
            head.counted_usd = bundle_net_usd([s for s in orders if s.in_bundle and s.bundle == head.bundle],
                                              head.notional_usd)
        for step in (o for o in orders if o.in_bundle):
            step.counted_usd = 0.0
        if self.execute == "off":
            return orders, []
        alerts: list[Alert] = []
        day = self.store.day_notional(self.session, t, SENT)
        halted = self.halted()
        stop: Order | None = None  # the first on-chain order that cannot go: the later ones wait for it
        waiting: list[Order] = []
        for o in orders:
            if o.in_bundle:
                continue
            if o.venue in ON_CHAIN and stop is not None:
                o.status, o.note = "blocked", f"waits for {stop.client_id} ({stop.instrument}, {stop.status})"
                waiting.append(o)
                continue
            if self._executor(o) is None:
                o.status, o.note = "manual", "no executor for it here: the operator places it"
            elif halted:
                o.status = "halted"
            else:
                gross = (bundle_gross_usd(o, [s for s in orders if s.in_bundle and s.bundle == o.bundle])
                         if o.is_bundle_head else None)
                problem, over = self._limit_problem(o, day, o.counted_usd, gross)
                if problem:
                    o.status, o.note = "blocked", problem
                    alerts.append(Alert(k, t, "limit", f"{o.shown()} not sent: {problem}",
                                        {"client_id": o.client_id, "problem": problem, "safety": o.safety}))
                else:
                    go = self.execute == "auto" or (o.safety and not self.limits.safety_needs_approval)
                    o.status = "approved" if go else "awaiting"
                    o.approved_at = now if go else None
                    day += o.counted_usd or 0.0
                    if o.safety:
                        alerts.append(Alert(k, t, "safety_order", f"{o.shown()} ({o.reason}): a safety action, "
                                            f"{'sent' if go else 'awaiting approval'}"
                                            + (f" past {'; '.join(over)}" if over else ""),
                                            {"client_id": o.client_id, "trigger": o.trigger, "over": over,
                                             "notional_usd": o.notional_usd}))
            if o.venue in ON_CHAIN and o.status in ("manual", "blocked") and stop is None:
                stop = o
                for before in orders:  # a plan's on-chain orders go together (a withdraw alone lowers the HF)
                    if before is o:
                        break
                    if before.venue in ON_CHAIN and not before.in_bundle and before.status in ("approved",
                                                                                                "awaiting"):
                        before.status, before.approved_at = "blocked", None
                        day -= before.counted_usd or 0.0
                        alerts = [a for a in alerts if a.details.get("client_id") != before.client_id]
                        before.note = f"held: {o.client_id} ({o.instrument}, {o.status}) after it cannot be sent"
                        waiting.append(before)
        for step in (o for o in orders if o.in_bundle):
            head = next((h for h in orders if h.is_bundle_head and h.bundle == step.bundle), None)
            status = head.status if head is not None else "blocked"
            step.status = "bundled" if status in ("awaiting", "approved") else status
            step.approved_at = head.approved_at if head is not None else None
        if waiting:
            why = "the operator places it" if stop.status == "manual" else stop.note
            alerts.append(Alert(k, t, "manual_step" if stop.status == "manual" else "blocked_step",
                                f"plan {k}: {stop.shown()} cannot be sent ({why}); the plan's {len(waiting)} other "
                                "on-chain order(s) wait for it and are not sent (they go together or not at all)",
                                {"plan": k, "client_id": stop.client_id, "waiting": [o.client_id for o in waiting]}))
        if awaiting := [o for o in orders if o.status == "awaiting"]:
            alerts.append(Alert(k, t, "approval_needed", f"plan {k}: {len(awaiting)} order(s) await approval within "
                                f"{self.limits.approval_minutes:g} min (`basiskit live approve {self.session} --plan "
                                f"{k}`): " + "; ".join(o.shown() for o in awaiting[:10]),
                                {"plan": k, "orders": [{"client_id": o.client_id, "venue": o.venue,
                                                        "instrument": o.instrument, "side": o.side, "size": o.size,
                                                        "notional_usd": o.notional_usd} for o in awaiting]}))
        return orders, alerts

    def supersede(self, k: int, orders: list[Order]) -> list[Alert]:
        """A new plan (tick k) replaces the earlier ones: what of theirs still waits (approved or awaiting) expires;
        with confirm, the new plan keeps the approval of the plan it replaces when its orders are that plan's, one
        for one (sizes within live.replan_tolerance), and only then."""
        old = [o for o in self.store.orders_in(self.session, ("approved", "awaiting", "bundled")) if o.tick < k]
        alerts: list[Alert] = []
        if not old:
            return alerts
        newest = max(o.tick for o in old)
        previous = [o for o in old if o.tick == newest]
        fresh = [o for o in orders if o.status in ("awaiting", "bundled", "approved")]
        carried = (self.execute == "confirm" and previous and all(o.status != "awaiting" for o in previous)
                   and len(previous) == len(fresh)
                   and all(_same(a, b, self.limits.replan_tolerance) for a, b in zip(previous, fresh, strict=True))
                   and any(o.status == "awaiting" for o in fresh))
        if carried:
            for a, b in zip(previous, fresh, strict=True):
                if b.status == "awaiting":
                    b.status, b.approved_at = "approved", a.approved_at
                elif b.status == "bundled":
                    b.approved_at = a.approved_at
        for o in old:
            self.store.order_step(self.session, o.client_id, "expired", "superseded",
                                  {"by_plan": k, "approval_carried": bool(carried)})
        if carried:
            alerts.append(Alert(k, int(self.clock()), "approval_carried", f"plan {k} re-planned plan {newest} on a "
                                "fresh reading: the same orders, so its approval stands",
                                {"plan": k, "from_plan": newest}))
        elif any(o.status == "approved" for o in previous):
            alerts.append(Alert(k, int(self.clock()), "superseded", f"plan {newest}'s approved orders were not sent: "
                                f"plan {k}, on a fresh reading, replaces them", {"plan": k, "from_plan": newest}))
        return alerts

    def _executor(self, o: Order):
        ex = self.executors.get(o.venue)
        return ex if ex is not None and ex.handles(o) else None

    def _limit_problem(self, o: Order, day: float, usd: float | None,
                       order_usd: float | None = None) -> tuple[str | None, list[str]]:
        """What stops the order (None: it may go), and for a safety order the limits it goes past. `usd` counts
        against the day (a bundle: its net change); `order_usd` against the order limits (a bundle: its gross, else
        `usd`)."""
        gross = usd if order_usd is None else order_usd
        lim = self.limits
        if lim.venues is not None and o.venue not in lim.venues:
            return f"venue {o.venue} is not in live.venues ({', '.join(lim.venues)})", []
        if usd is None:
            if o.safety:
                return None, ["no price for its asset in the reading"]
            return "its notional cannot be valued (no price for its asset in the reading)", []
        over = []
        what = "notional" if order_usd is None else "largest step"
        if lim.max_order_usd is not None and gross > lim.max_order_usd:
            over.append(f"{what} {gross:,.2f} USD > live.max_order_usd {lim.max_order_usd:,.2f}")
        if lim.max_day_usd is not None and day + usd > lim.max_day_usd:
            over.append(f"the day's notional would be {day + usd:,.2f} USD > live.max_day_usd {lim.max_day_usd:,.2f}")
        if o.safety:
            if lim.safety_max_order_usd is not None and gross > lim.safety_max_order_usd:
                return f"{what} {gross:,.2f} USD > live.safety_max_order_usd {lim.safety_max_order_usd:,.2f}", []
            return None, over
        return (over[0] if over else None), []

    # --- sending ------------------------------------------------------------------------------------------------
    def poll(self, send: bool = True) -> list[Alert]:
        """A kill first (what is open cancelled), then lost answers looked up (nothing else goes while one is
        unknown), expiries, and (`send`) the approved orders sent."""
        alerts = []
        if self.halted() and (why := self.store.kill_pending(self.session)) is not None:
            said = self.kill(why)
            if not self.kill_failed:  # else the next poll cancels again at the venues that could not be reached
                self.store.kill_carried_out(self.session)
            if not self._kill_retrying or not self.kill_failed:  # the first try and the one that ends it: alerted
                alerts += said
            self._kill_retrying = bool(self.kill_failed)
        if self.execute == "off" or self.store.is_halted(self.session):
            return alerts
        alerts += self.recover()
        if self.store.orders_in(self.session, ("sending",)):
            return alerts
        alerts += self.expire()
        return alerts + (self.send() if send else [])

    def send(self) -> list[Alert]:
        """Send the approved orders of the latest plan, oldest first, if its reading is fresh (or its sending has
        begun); stops at a kill (the next poll carries it out)."""
        alerts, latest = [], self.store.last_planned_tick(self.session)
        now = self.clock()
        t = int(now)
        approved = self.store.orders_in(self.session, ("approved",))
        for o in [o for o in approved if o.tick != latest]:  # a newer plan decides (supersede() missed none)
            self.store.order_step(self.session, o.client_id, "expired", "stale",
                                  {"why": f"planned at tick {o.tick}; the latest plan is tick {latest}"})
        current = [o for o in approved if o.tick == latest]
        if not current:
            return alerts
        plan = self.store.orders_in(self.session, None, tick=latest)
        begun = any(o.status in LEFT for o in plan)
        ttl = self.limits.approved_ttl_minutes * 60
        late = [o for o in current if o.approved_at is not None and now - o.approved_at > ttl]
        for o in late + [b for b in plan if b.status == "bundled" and b.approved_at is not None
                         and now - b.approved_at > ttl]:
            self.store.order_step(self.session, o.client_id, "expired", "ttl",
                                  {"approved_ttl_minutes": self.limits.approved_ttl_minutes})
        if late:
            alerts.append(Alert(latest, t, "expired", f"plan {latest}: {len(late)} approved order(s) not sent within "
                                f"live.approved_ttl_minutes {self.limits.approved_ttl_minutes:g}: dropped; the next "
                                "plan decides again", {"plan": latest, "orders": [o.client_id for o in late]}))
            current = [o for o in current if o not in late]
            if not current:
                return alerts
        read_at = min((o.read_at for o in current if o.read_at is not None), default=None)
        stale = read_at is not None and now - read_at > self.limits.fresh_reading_seconds
        # a plan of safety orders only goes on its reading (up to live.approved_ttl_minutes after it): re-planning
        # first would only delay it, and its steps are priced again as they go
        too_old = read_at is not None and now - read_at > self.limits.approved_ttl_minutes * 60
        if stale and not begun and (too_old or not all(o.safety for o in current)):
            self.stale_plan = True  # the session reads and plans again before any of it goes
            return alerts
        day = self.store.day_notional(self.session, t, SENT)
        for o in current:
            # an order's steps one after another among this process's threads (each step is its own transaction:
            # other processes read and write meanwhile)
            with self.store.held():
                if self.halted():
                    break
                if o.venue in ON_CHAIN and (wait := self._on_chain_wait(o)) is not None:
                    if wait.status in PENDING:  # it goes after the ones before it, and once all are approved
                        continue
                    self._skip(o, f"another on-chain order of its plan, {wait.client_id}, ended {wait.status}")
                    continue
                ex = self._executor(o)
                bundle = []
                if o.is_bundle_head:
                    bundle = [b for b in self.store.orders_in(self.session, ("bundled",), tick=o.tick)
                              if b.bundle == o.bundle]
                    ex.bundle = bundle
                alerts += self._send_one(ex, o, t, day, bundle_gross_usd(o, bundle) if o.is_bundle_head else None)
                if o.safety:  # one that failed (a gas spike over its cap, a revert at estimate) is planned again soon
                    self._safety_outcome(o, self.last_status, now)
                day += o.counted_usd or 0.0
                for b in bundle if self.last_status != "approved" else []:  # the steps went (or not) with it
                    self.store.order_step(self.session, b.client_id, self.last_status, "bundle",
                                          {"flash_order": o.client_id})
        return alerts

    def _safety_outcome(self, o: Order, status: str | None, now: float) -> None:
        """A safety order that ended without going: the session re-reads and re-plans after SAFETY_RETRY_S, doubling
        to SAFETY_RETRY_MAX_S while its plans keep failing, instead of waiting for the next hour (one that could not
        be priced stays approved and is priced again at the next poll)."""
        if status in SAFETY_FAILED and o.client_id not in self._safety_counted:
            self._safety_counted.add(o.client_id)
            self.replan_at = now + min(SAFETY_RETRY_S * 2 ** min(self._safety_failures, 5), SAFETY_RETRY_MAX_S)
            self._safety_failures += 1
        elif status in ("filled", "partial", "open"):
            self._safety_failures = 0
            self._safety_counted.clear()

    def _on_chain_wait(self, o: Order) -> Order | None:
        """What o waits for (as the store has it now), or None when it may go: each on-chain step builds on the ones
        before it (a repay on its withdraw and swap), so it goes once every earlier one filled and every later one
        is approved (a withdraw never goes alone); an order among them that ended otherwise ends the plan's."""
        for p in self.store.orders_in(self.session, None, tick=o.tick):
            if p.venue not in ON_CHAIN or p.in_bundle or p.seq == o.seq:
                continue
            if p.seq < o.seq and p.status != "filled":
                return p
            # a safety order never waits for a later one that is not (an approval it does not need)
            if p.seq > o.seq and (p.safety or not o.safety) and p.status not in ("approved", "sending", "filled"):
                return p
        return None

    def _skip(self, o: Order, why: str) -> None:
        """o will not go: it and its bundle's steps are skipped."""
        steps = self.store.orders_in(self.session, ("bundled",), tick=o.tick) if o.is_bundle_head else []
        for x in [o, *(b for b in steps if b.bundle == o.bundle)]:
            self.store.order_step(self.session, x.client_id, "skipped", "skipped", {"why": why})

    def _send_one(self, ex, o: Order, t: int, day: float, gross: float | None = None) -> list[Alert]:
        """Price, re-check the limits at that price, journal, send and record one order; `self.last_status` is where
        it ended."""
        self.last_status = "blocked"
        try:
            request = ex.request(o)
        except LimitExceeded as exc:
            self.store.order_step(self.session, o.client_id, "blocked", "limit", {"problem": str(exc)})
            return [Alert(o.tick, t, "limit", f"{o.client_id} not sent: {exc}", {"problem": str(exc),
                                                                                 "safety": o.safety})]
        except Exception as exc:  # noqa: BLE001 (the venue could not price it: nothing was sent)
            text = _said(ex, exc)
            self.last_status = "approved"  # it stays approved: priced again at the next poll (its steps wait too)
            self.store.order_step(self.session, o.client_id, "approved", "not_priced", {"error": text})
            return [Alert(o.tick, t, "order_error", f"{o.client_id}: not sent, pricing failed: {text}",
                          {"client_id": o.client_id})]
        usd = request.get("usd")
        if usd is not None and o.notional_usd and o.counted_usd is not None:
            scale = usd / o.notional_usd  # a bundle: its net change and its gross, at the price now
            usd, gross = o.counted_usd * scale, gross * scale if gross is not None else None
        problem, over = self._limit_problem(o, day, usd if usd is not None else o.counted_usd, gross)
        self.store.order_step(self.session, o.client_id, "approved", "recheck",
                              {"usd_planned": o.counted_usd, "usd_now": usd, "problem": problem, "over": over})
        if problem:  # at the price it would go at now (the day's other orders may have used the room since)
            self.store.order_step(self.session, o.client_id, "blocked", "limit", {"problem": problem})
            return [Alert(o.tick, t, "limit", f"{o.client_id} not sent: {problem} (at the price now)",
                          {"problem": problem, "client_id": o.client_id})]
        self.store.order_step(self.session, o.client_id, "sending", "request", request)  # committed first
        self.last_status = "sending"
        try:
            got = ex.send(o, request)
        except OrderRefused as exc:
            return self._refused(ex, o, exc, t, "refused")
        except Exception as exc:  # noqa: BLE001 (no answer, or a transport error: the order may have gone)
            self.store.order_step(self.session, o.client_id, "sending", "no_answer", {"error": _said(ex, exc)})
            return self._look_up(ex, o, t)
        return self._answered(o, got, "answer", t)

    def _refused(self, ex, o: Order, exc: OrderRefused, t: int, step: str) -> list[Alert]:
        self.last_status = "refused"
        text = _said(ex, exc)
        self.store.order_step(self.session, o.client_id, "refused", step, {"error": text, "kind": exc.kind},
                              moves=exc.moves or None)
        return [Alert(o.tick, t, "order_refused", f"{o.venue} refused {o.client_id} ({o.side} {o.size:.6g} "
                      f"{o.instrument}): {text}", {"client_id": o.client_id, "kind": exc.kind, "safety": o.safety})]

    def _answered(self, o: Order, got: VenueOrder, step: str, t: int) -> list[Alert]:
        status = self.last_status = outcome(got)
        moves = got.moves
        if moves is None and got.filled and o.action == "perp":  # the perp's size moved by the fill
            moves = [[None, {f"{o.venue}/{o.venue}/perp/{o.asset}": got.filled if o.side == "buy"
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
        except OrderRefused as exc:  # it went and failed (a reverted or replaced transaction): an answer, not a doubt
            return self._refused(ex, o, exc, t, "lookup")
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
        """Batches not approved within live.approval_minutes are dropped: one alert per plan."""
        now = self.clock()
        late: dict[int, list[Order]] = {}
        for o, at in self.store.awaiting_since(self.session):
            if now - at > self.limits.approval_minutes * 60:
                late.setdefault(o.tick, []).append(o)
        alerts = []
        for tick, orders in late.items():
            for o in orders:
                self.store.order_step(self.session, o.client_id, "expired", "expired",
                                      {"approval_minutes": self.limits.approval_minutes})
                for b in self.store.orders_in(self.session, ("bundled",), tick=tick):
                    if o.is_bundle_head and b.bundle == o.bundle:
                        self.store.order_step(self.session, b.client_id, "expired", "expired", {})
            alerts.append(Alert(tick, int(now), "expired", f"plan {tick}: {len(orders)} order(s) not approved within "
                                f"{self.limits.approval_minutes:g} min: dropped; the next plan decides again",
                                {"plan": tick, "orders": [o.client_id for o in orders]}))
        return alerts

    def halted(self) -> bool:
        if self.kill_file is not None and self.kill_file.exists() and not self.store.is_halted(self.session):
            self.store.kill(self.session, f"kill file {self.kill_file}")
        return self.store.is_halted(self.session)

    def kill(self, why: str) -> list[Alert]:
        """Cancel every open order of ours at every venue; what was approved or awaiting is halted."""
        t = int(self.clock())
        cancelled: list[str] = []
        self.kill_failed = {}  # venue -> why its open orders could not be cancelled (tried again at the next poll)
        orders = self.store.orders_in(self.session)
        for o in self.store.orders_in(self.session, ("approved", "awaiting", "bundled")):  # nothing more goes first
            self.store.order_step(self.session, o.client_id, "halted", "kill", {"why": why})
        for venue, ex in self.executors.items():
            assets = sorted({o.asset for o in orders if o.venue == venue and o.action == "perp"})
            try:
                for got in ex.cancel_open(assets):
                    self.store.order_step(self.session, got.client_id, "cancelled", "kill", {"order": got.__dict__})
                    cancelled.append(got.client_id)
            except Exception as exc:  # noqa: BLE001 (a venue down: the others are still cancelled)
                self.kill_failed[venue] = _said(ex, exc)
        tick = self.store.last_planned_tick(self.session) or 0
        failed = "; ".join(f"{v}: {why_}" for v, why_ in self.kill_failed.items())
        return [Alert(tick, t, "halted", f"session halted ({why}); {len(cancelled)} open order(s) cancelled; nothing "
                      "is sent until `basiskit live resume`"
                      + (f"; NOT cancelled yet (tried again): {failed}" if failed else ""),
                      {"cancelled": cancelled, "failed": self.kill_failed})]
