"""A paper session: the backtest's engine driven by the paper clock over a feed, every tick committed.

State. After each tick the session commits, in one transaction, what it observed (the delivery), the
book's quantities, NAV, the risk reading, new events, order intents and alerts. The strategy's own state
(positions' entry prices, gates, liquidation records) is not pickled: a resumed session rebuilds it by
running the committed deliveries through the same deterministic engine, then checks that the rebuilt
book and event count equal the committed ones at the last tick, bit for bit, before it goes on.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ..config import RunConfig, config_hash
from ..data.align import hourly_grid
from ..data.dataset import Dataset, resolve_data_dir
from ..data.live import LiveMarket, Staleness
from ..data.market import MarketData, Need
from ..data.timeutil import HOUR, iso, to_epoch
from ..engine.run import Backtest, warning_event
from ..errors import ConfigError, RunError
from ..execution.events import EventLog
from ..execution.intents import order_intents
from ..feeds.replay import Delivery, Feed, ReplayFeed
from ..results.db import StoreBusy, StoreError
from ..results.service import RunOutput, store_output, tabulate
from ..sessions.alerts import Alert, AlertMonitor, AlertSink, AlertThresholds
from ..sessions.outbox import WebhookSender, check_webhook_url
from ..sessions.secrets import again, given, shown
from ..sessions.stopping import STOP
from .capture import write_capture
from .clock import PaperClock, StaleFeed
from .store import PaperStore

FEEDS = ("replay", "live")
CAPTURE_EVERY = 24  # ticks between two writes of a live session's capture folder
STORE_RETRY_S = 0.1  # first wait before a write the store refused is tried again (doubling, at most 5 s)
LIVE_HORIZON_HOURS = 365 * 24  # a live session without --end runs for a year


@dataclass
class PaperOptions:
    """How a session is fed and where its output goes (stored with it, reused by resume)."""

    feed: str = "replay"
    data: str | None = None  # the replay's dataset; for a live feed the reference (series formats, params)
    speed: float = 0.0
    rpc_url: str | None = None  # in memory only: the store keeps rpc_url_ref (sessions/secrets.py)
    webhook: str | None = None  # in memory only: the store keeps webhook_ref
    thresholds: dict = field(default_factory=dict)
    out: str = "runs"
    capture: str | None = None  # folder a live session writes what it observed to (dataset format)
    poll_seconds: float = 30.0
    positions: list[str] = field(default_factory=list)  # the book's position keys (filled when built)
    rpc_url_ref: str | None = None  # env:NAME or given:SCHEME://HOST:PORT
    webhook_ref: str | None = None

    def stored(self) -> dict:
        """What the store keeps: every option but the URLs themselves (their references instead)."""
        return asdict(self) | {"rpc_url": None, "webhook": None}

    def __post_init__(self) -> None:
        for url, ref in (("rpc_url", "rpc_url_ref"), ("webhook", "webhook_ref")):  # a URL given without one
            if getattr(self, url) and not getattr(self, ref):
                setattr(self, ref, given(getattr(self, url)))
        if self.feed not in FEEDS:
            raise ConfigError([("--feed", self.feed, f"must be one of {', '.join(FEEDS)}")])
        if self.speed < 0 or self.speed != self.speed:
            raise ConfigError(
                [
                    (
                        "--speed",
                        self.speed,
                        "must be 0 (as fast as it can) or a positive number of simulated hours per second",
                    )
                ]
            )
        if self.webhook is not None:
            try:
                check_webhook_url(self.webhook)
            except ConfigError as exc:
                raise ConfigError([("--alert-webhook", shown(self.webhook), str(exc))]) from None
        if self.feed == "live" and not self.rpc_url:
            raise ConfigError(
                [
                    (
                        "--rpc-url",
                        None,
                        "a live session reads Aave v3 and the LST rates from an Ethereum RPC: pass --rpc-url URL",
                    )
                ]
            )


SESSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class PaperSession:
    def __init__(
        self,
        store: PaperStore,
        name: str,
        cfg: RunConfig,
        options: PaperOptions,
        *,
        resuming: bool = False,
        quiet: bool = False,
        progress: Callable[[int, int], None] | None = None,
        feed_factory: Callable[[Dataset, list[Need], object], Feed] | None = None,
    ):
        if not SESSION_NAME.match(name):
            raise ConfigError([("--session", name, "a session name is 1-100 letters, digits, '.', '_' or '-', "
                                "starting with a letter or digit")])
        if cfg.stress:
            raise ConfigError(
                [
                    (
                        "stress",
                        f"{len(cfg.stress)} shock(s)",
                        "a paper session trades the market as observed: stress scenarios are for "
                        "backtests (`basiskit stress`)",
                    )
                ]
            )
        self.store = store
        self.name = name
        self.cfg = cfg
        self.options = options
        self.resuming = resuming
        self.progress = progress
        self.feed_factory = feed_factory or (lambda d, n, g: make_feed(self.options, d, n, g, self.cfg.data))
        self.thresholds = AlertThresholds.for_config(cfg, **options.thresholds)
        self.monitor = AlertMonitor(self.thresholds)
        self.sink = AlertSink(name, quiet=quiet)
        self.quiet = quiet
        self.sender: WebhookSender | None = None  # started once the session is in the store
        self.recorded: list[Delivery] = []
        self.recorded_qty: list[float] = []
        self.counts = {"events": 0, "run_events": 0, "orders": 0, "alerts": 0}
        self._stale_alerted: set[str] = set()

    # --- building ---------------------------------------------------------------------------------
    @classmethod
    def resume(cls, store: PaperStore, name: str, speed: float | None = None, rpc_url: str | None = None,
               webhook: str | None = None, **kwargs) -> PaperSession:
        """Continue `name`; its RPC and webhook URLs from their references (or given again: `rpc_url`,
        `webhook`)."""
        row = store.session(name)
        if row["status"] == "done":
            raise StoreError(
                f"paper session {name!r} is done (its last tick {iso(to_epoch(row['last_ts']))} "
                f"was the end of its window); results in {row['results_dir']}."
            )
        raw = dict(row["options"])
        if raw.get("feed") == "live":  # a replay reads no RPC
            raw["rpc_url"] = again(raw.get("rpc_url_ref"), rpc_url or raw.get("rpc_url"), "rpc-url",
                                   f"RPC URL of paper session {name!r}")
        raw["webhook"] = again(raw.get("webhook_ref"), webhook or raw.get("webhook"), "alert-webhook",
                               f"alert webhook of paper session {name!r}")
        options = PaperOptions(**raw)
        if speed is not None:
            options = replace(options, speed=speed)  # checked again
        session = cls(store, name, RunConfig.model_validate(row["config"]), options, resuming=True, **kwargs)
        stored = store.deliveries(name)
        session.recorded = [Delivery.from_json(d) for _, d, _ in stored]
        session.recorded_qty = stored[-1][2] if stored else []
        session.counts = store.counts(name)
        return session

    def _market(self, dataset: Dataset, needs: list[Need], start: int | None, end: int | None) -> MarketData:
        if start is None or end is None:
            lo, hi = MarketData.default_window(dataset, needs)
            start = start if start is not None else lo
            end = end if end is not None else hi
        feed = self.feed_factory(dataset, needs, hourly_grid(start, end))
        self.feed = feed
        market = LiveMarket(dataset, self.cfg.data, needs, start, end, feed.coverage(self.cfg.data))
        feed.attach(market)
        self.market = market
        self.clock = PaperClock(self, market, feed, self.options.speed, self.recorded, self.options.poll_seconds)
        self.clock.deliver(0)  # the capital floor and the entry need hour 0
        return market

    def run(self) -> RunOutput:
        """Run (or continue) the session to the end of its window; the same output as a backtest's."""
        t0 = time.perf_counter()
        root, source = resolve_data_dir(self.options.data)
        dataset = Dataset(root)
        self.dataset = dataset
        self.events = EventLog()
        try:
            self.bt = Backtest(self.cfg, dataset, market_factory=lambda n, s, e: self._market(dataset, n, s, e))
            if not self.resuming:
                m = self.market
                self.options.positions = self.bt_keys()
                self.store.create_session(
                    self.name,
                    self.cfg.mode,
                    self.options.feed,
                    m.start,
                    m.end,
                    m.n_points,
                    self.cfg.model_dump(mode="json"),
                    self.options.stored(),
                )
            self.resuming = True
            if self.options.webhook and self.sender is None:  # sends what an earlier run left undelivered too
                self.sender = WebhookSender(self.store, self.name, self.options.webhook, quiet=self.quiet)
            result = self.bt.run(clock=self.clock, events=self.events)
        except StaleFeed as exc:
            self._stop("stalled", exc)
            raise
        except KeyboardInterrupt:
            self._stop("stopped", RunError("interrupted"))
            raise
        except Exception as exc:
            self._stop("failed", exc)
            raise
        # the last tick is committed: the results are written whole (a stop meanwhile has nothing left to stop;
        # let through, it would interrupt a query midway)
        with STOP.finishing():
            return self._finish(result, root, source, t0)

    def _finish(self, result, root, source: str, t0: float) -> RunOutput:
        # The backtest logs its data warnings before the loop; the paper session finds them as holes close.
        warnings = [e for e in result.events.events if e.type == "data_warning"]
        warnings.sort(key=lambda e: (e.details["after"], e.details["series"]))
        result.events.events = warnings + [e for e in result.events.events if e.type != "data_warning"]
        output = tabulate(result, f"paper-{self.name}-{config_hash(self.cfg)[:8]}", f"{root} ({source})", t0)
        output.summary["session"] = self.name
        self.capture()
        if self.options.capture:
            output.summary["capture_dir"] = self.options.capture
        store_output(output, self.cfg, self.store, "paper", Path(self.options.out))
        self.store.set_status(self.name, "done", summary=output.summary, results_dir=output.summary["results_dir"])
        self._close_sender()
        return output

    def _close_sender(self) -> None:
        """Give the webhook a few seconds for what is pending; the rest stays in the outbox for the next start."""
        if self.sender is not None:
            left = self.sender.close(wait_seconds=10.0)
            if left and not self.quiet:
                sys.stderr.write(f"alert webhook: {left} alert(s) not delivered yet; they are sent when the session "
                                 "resumes or `basiskit serve` starts\n")
            self.sender = None

    def capture(self) -> None:
        """Write what the feed delivered so far to the capture folder (live sessions)."""
        if self.options.capture and getattr(self, "market", None) is not None:
            write_capture(self.market, self.dataset, self.options.capture,
                          f"basiskit paper session {self.name} ({self.options.feed} feed)")

    def _stop(self, status: str, exc: BaseException) -> None:
        try:
            self.capture()
            if self.resuming:  # (a tick a signal interrupted mid-commit was rolled back by the store)
                self.store.set_status(self.name, status, error=str(exc))
        finally:
            self._close_sender()

    # --- the clock's calls ---------------------------------------------------------------------------
    def start(self, book, events: EventLog) -> None:
        self.book = book
        self._warned = len(self.market.warnings)
        self._refused = len(self.market.refusals)
        self._logged = 0

    def before_tick(self, k: int) -> None:
        """Warnings of holes the delivery closed and rows it refused, into the run's events."""
        m, n = self.market, self.market.n_points
        for w in m.warnings[self._warned :]:
            warning_event(self.events, w, m.start, n)
        self._warned = len(m.warnings)
        for r in m.refusals[self._refused :]:
            self.events.add(k, "feed_refused", r.message(), series=r.series, at=iso(r.ts), reason=r.reason)
        self._refused = len(m.refusals)

    def after_tick(self, k: int, delivery: Delivery) -> None:
        t = int(self.market.grid[k])
        risk = self.bt.strategy.risk_now(k)
        new = self.events.events[self._logged :]
        self._logged = len(self.events.events)
        alerts = self.monitor.check(k, t, risk) + AlertMonitor.from_events(new, self._t)
        quantities = [h[k] for h in self.book.history]
        if k < len(self.recorded):  # catching up on committed ticks: nothing to write or send again
            if k == len(self.recorded) - 1:
                self._verify(k, quantities)
            return
        nav = self.book.nav(k)
        orders = [o.row() for o in order_intents(new, k)]
        rows = [(e.k, self._t(e.k), e.type, e.message, e.details) for e in new]
        rows += [(a.k, a.t, "alert", a.message, {"kind": a.kind, **a.details}) for a in alerts]
        risk_row = {"nav": nav, **risk}
        down = self._stored(k, t, lambda: self.store.commit_tick(
            self.name,
            k,
            t,
            delivery.to_json(),
            quantities,
            nav,
            nav * self.bt.executor.unit_usd[k],
            risk_row,
            rows,
            orders,
            [a.row() for a in alerts],
            self.counts["events"],
            self.counts["orders"],
            self.counts["alerts"],
        ))
        self.counts["events"] += len(rows)
        self.counts["run_events"] += len(new)
        self.counts["orders"] += len(orders)
        self.counts["alerts"] += len(alerts)
        self.sink.emit(alerts)
        if alerts and self.sender is not None:
            self.sender.notify()
        if down is not None:  # said on stderr while it lasted; in the store now that it is back
            self._raise_alerts(k, [Alert(k, t, "store_unavailable", f"the store could not be used for {down[0]:.1f} s "
                                   f"({down[1]} tries); this hour was committed once it could be",
                                   {"down_s": down[0], "tries": down[1]})])
        if self.options.capture and (k + 1) % CAPTURE_EVERY == 0:
            self.capture()
        if self.progress is not None:
            self.progress(k + 1, self.market.n_points)

    def _verify(self, k: int, quantities: list[float]) -> None:
        """The rebuilt state at the last committed tick must be the committed one."""
        problems = []
        if quantities != self.recorded_qty:
            diff = [
                (key, a, b)
                for key, a, b in zip(self.bt_keys(), quantities, self.recorded_qty, strict=False)
                if a != b
            ]
            problems.append(f"positions differ: {diff[:3]}")
        if len(self.events.events) != self.counts["run_events"]:
            problems.append(f"{len(self.events.events)} events rebuilt, {self.counts['run_events']} committed")
        if problems:
            raise RunError(
                f"paper session {self.name!r} cannot resume: replaying its {k + 1} committed ticks does "
                f"not rebuild the committed state ({'; '.join(problems)}). The code or the data changed "
                "since the session started; start a new session."
            )

    def bt_keys(self) -> list[str]:
        return [s.instrument.key for s in self.bt.specs]

    def stale(self, k: int, t: int, stale: list[Staleness]) -> None:
        """The feed is staler than a limit at hour k: alert once per series until it is fresh again."""
        alerts = [
            Alert(
                k,
                t,
                "staleness",
                s.message(),
                {"series": s.series, "last": iso(s.last), "limit_hours": s.limit_hours, "limit_key": s.limit_key},
            )
            for s in stale
            if s.series not in self._stale_alerted
        ]
        self._stale_alerted |= {s.series for s in stale}
        if alerts and k >= len(self.recorded):
            self._raise_alerts(k, alerts)

    def _raise_alerts(self, k: int, alerts: list[Alert]) -> None:
        """Alerts between ticks: stored (waiting for the store as a tick does), said, sent. One raised before the
        session has its row (a live feed already stale at hour 0, waited for while the market is built) starts the
        webhook's sender at once: the session may wait for its feed for hours."""
        if alerts and self.options.webhook and self.sender is None:
            self.sender = WebhookSender(self.store, self.name, self.options.webhook, quiet=self.quiet)
        if alerts:
            self._stored(k, alerts[0].t, lambda: self.store.add_alerts(
                self.name, [a.row() for a in alerts], self.counts["alerts"], self.counts["events"]))
            self.counts["alerts"] += len(alerts)
            self.counts["events"] += len(alerts)
            self.sink.emit(alerts)
            if self.sender is not None:
                self.sender.notify()

    def _stored(self, k: int, t: int, write: Callable[[], None]) -> tuple[float, int] | None:
        """Run a store write; one the store refuses because another process holds it (StoreBusy, after the store's
        lock timeout) is tried again with the hour kept in memory, said on stderr at once and every 10th try: the
        session never exits over the store. (seconds down, tries) when it had to wait, else None."""
        since, tries = None, 0
        while True:
            try:
                write()
                return None if since is None else (time.monotonic() - since, tries)
            except StoreBusy as exc:
                since, tries = since or time.monotonic(), tries + 1
                if tries == 1 or tries % 10 == 0:
                    self.sink.emit([Alert(k, t, "store_unavailable", f"the store cannot be used ({exc}); the session "
                                          "keeps the hour and tries again", {"tries": tries})])
                time.sleep(min(STORE_RETRY_S * 2 ** min(tries - 1, 6), 5.0))

    def fresh(self, k: int) -> None:
        self._stale_alerted.clear()

    def _t(self, k: int) -> int:
        return int(self.market.grid[k])


def make_feed(options: PaperOptions, dataset: Dataset, needs: list[Need], grid, data_cfg) -> Feed:
    if options.feed == "replay":
        return ReplayFeed(dataset, needs, grid, data_cfg)
    from ..feeds.live import LiveFeed

    return LiveFeed(dataset, needs, grid, options)


def live_window(start: str | None, end: str | None) -> tuple[str, str]:
    """A live session starts at the last whole hour (or --start) and runs a year (or to --end)."""
    now = int(time.time()) // HOUR * HOUR
    s = to_epoch(start) if start else now
    e = to_epoch(end) if end else s + LIVE_HORIZON_HOURS * HOUR
    return iso(s), iso(e)
