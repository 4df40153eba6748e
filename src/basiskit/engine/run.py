"""A backtest run: build components from config, align data, run the loop, reconcile."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from ..config import config_hash
from ..config.models import RunConfig
from ..data import overlays
from ..data.dataset import Dataset
from ..data.market import MarketCache, MarketData, Need
from ..data.timeutil import HOUR, iso, to_epoch
from ..errors import ConfigError
from ..execution.events import EventLog
from ..execution.executor import Executor
from ..portfolio.attribution import ATTRIBUTION_TYPES, N_SLOTS, SPOT_PRICE, TRANSACTION_COSTS, VOID
from ..portfolio.benchmark import benchmark_of
from ..portfolio.book import Book, PositionSpec
from ..portfolio.currency import SHARE_CLASS_ASSET, ShareClassPricer
from ..portfolio.instruments import Instrument
from ..portfolio.risk import liquidation_summary
from ..strategies.base import Hooks, Strategy, StrategyContext, StrategyEnv
from ..strategies.registry import get_strategy
from ..strategies.rules import run_config_problems
from ..venues.aave_footprint import Alarm, footprints, refusal
from ..venues.costs import GasModel, slippage_from_dataset
from .clock import BacktestClock
from .loop import run_loop

BENCHMARK = "benchmarks/ethena_susde_apy_1d"


@dataclass
class RunResult:
    """Everything a run produced, as numpy arrays over the grid plus the event log."""

    cfg: RunConfig
    grid: np.ndarray
    position_keys: list[str]
    quantities: np.ndarray  # positions x points
    values: np.ndarray  # positions x points, share-class units
    nav: np.ndarray
    flows: np.ndarray
    balance_pnl: np.ndarray
    attribution: np.ndarray  # types x points (hourly), share-class units
    residual: np.ndarray
    unit_usd: np.ndarray
    nav_usd: np.ndarray
    attribution_usd: np.ndarray
    residual_usd: np.ndarray
    extra_columns: dict[str, np.ndarray]
    extra_summary: dict
    reported_types: list[str]
    reported_types_usd: list[str]
    events: EventLog
    data_warnings: list
    engine_seconds: float
    config_hash: str
    data_hash: str
    data_root: str


def _components(cfg: RunConfig, dataset: Dataset, footprint: bool = True):
    """Pricer, gas and slippage models, the strategy, the market data they need, the benchmark's need and the
    fund's footprints on the Aave reserves it uses (none when `footprint` is off)."""
    pricer = ShareClassPricer(cfg)
    strategy_cls = get_strategy(cfg.strategy)
    gas = GasModel(cfg.costs, pricer, on_chain=strategy_cls.on_chain, reserve_floor_eth=cfg.live.gas_reserve_eth)
    slippage = slippage_from_dataset(dataset, cfg.costs)
    strategy: Strategy = strategy_cls(cfg, StrategyEnv(dataset, pricer, gas, slippage))
    needs = gas.needs() + strategy.needs() + pricer.needs()
    fps = footprints(cfg, dataset, needs) if footprint else []
    needs += [n for fp in fps for n in fp.needs()]
    judge = benchmark_of(cfg, dataset)
    if judge is not None and judge.need not in needs:
        needs.append(judge.need)
    benchmark = None
    if BENCHMARK in dataset.meta:  # Ethena sUSDe APY, reported beside the run where it covers it
        benchmark = Need(BENCHMARK, "apy", "last", partial=True)
        needs.append(benchmark)
    return pricer, gas, slippage, strategy, needs, benchmark, fps, judge


def default_window(cfg: RunConfig, dataset: Dataset) -> tuple[int, int]:
    """The window (epoch seconds) a run of `cfg` covers when it names none: all its series share it."""
    return MarketData.default_window(dataset, _components(cfg, dataset)[4])


class Backtest:
    """Components of one run, wired from config; `run()` executes it once."""

    def __init__(self, cfg: RunConfig, dataset: Dataset, cache: MarketCache | None = None,
                 market_factory: Callable[[list[Need], int | None, int | None], MarketData] | None = None,
                 check_capital: bool = True, footprint: bool = True):
        """Checks the config against this dataset (every rule, then, unless `check_capital` is off, the capital
        floor at the window start: a live plan manages a book that exists, whatever entering it would cost),
        aligns the data (or takes it from `cache`, shared by the runs of a sweep) and wires the components.
        `footprint` off: no rate impact and no liquidity limits (a live plan: the observed reserve holds the fund)."""
        problems = run_config_problems(cfg, dataset)
        if problems:
            raise ConfigError(problems)
        self.cfg = cfg
        self.dataset = dataset
        (self.pricer, self.gas, self.slippage, self.strategy, needs, self.benchmark,
         self.footprints, self.judge) = _components(cfg, dataset, footprint)
        start = to_epoch(cfg.start) if cfg.start else None
        end = to_epoch(cfg.end) if cfg.end else None
        self.hour_by_hour = market_factory is not None
        if market_factory is not None:  # a market fed hour by hour (paper trading)
            self.market = market_factory(needs, start, end)
        elif cache is not None:
            self.market = cache.market(dataset, cfg.data, needs, start, end)
        else:
            self.market = MarketData(dataset, cfg.data, needs, start, end)
        if cfg.stress:  # a stress scenario: overlays on a copy of the aligned data, before anything reads it
            self.market = overlays.apply(self.market, cfg)
        self.market.begin_run()
        self.market.before_derived(self.pricer.bind)
        self.gas.bind(self.market)
        n = self.market.n_points
        ones = self.market.ones
        asset = SHARE_CLASS_ASSET[cfg.share_class]
        wallet = PositionSpec(Instrument("wallet", "BaseToken", asset, asset), ones, ones, ones,
                              index_slot=VOID, rate_slot=VOID, price_slot=VOID)
        self.specs = [wallet, *self.strategy.bind(self.market)]
        for fp in self.footprints:  # (may give the strategy's reserves and their positions the fund's own indexes)
            fp.bind(self.market, self.specs, self.strategy.aave_reserves(), self.hour_by_hour)
        self.flows = self._flows(n)
        floor = self.strategy.capital_floor(0, cfg.initial_capital)
        problem = floor.problem(cfg.initial_capital, cfg.share_class, cfg.mode, iso(self.market.start))
        if problem and check_capital:
            raise ConfigError([problem])
        # The data hash covers every series and parameter file the run read.
        params = {name: dataset.params_files[name] for name in sorted(dataset.loaded_params())}
        params |= {f"rate_strategies:{fp.symbol}": fp.params_hash for fp in self.footprints}
        self.data_hash = hashlib.sha256(f"{self.market.data_hash}{params}".encode()).hexdigest()

    def _flows(self, n: int) -> list[float]:
        flows = [0.0] * n
        flows[0] = self.cfg.initial_capital
        self.flow_labels: dict[int, str] = {}
        for i, f in enumerate(self.cfg.flows):
            k = (to_epoch(f.at) - self.market.start) // HOUR
            flows[k] += f.amount
            label = f"flows.{i} at {iso(to_epoch(f.at))}"
            self.flow_labels[k] = f"{self.flow_labels[k]} and {label}" if k in self.flow_labels else label
        return flows

    def prepare(self, events: EventLog) -> Book:
        """An empty book over the window, the executor (`self.executor`) and the strategy attached to both."""
        n = self.market.n_points
        book = Book(self.specs, n, N_SLOTS)
        for w in self.market.warnings:
            warning_event(events, w, self.market.start, n)
        executor = Executor(book, self.gas, events, wallet=0, slippage=self.slippage)
        executor.unit_usd = self.market.derived(self.pricer.unit_usd)
        executor.usdt_usd = self.market.derived(self.pricer.usd_per_usdt)
        self.executor = executor
        self.alarm = Alarm()  # wakes the loop when the fund's own Aave indexes need writing
        for fp in self.footprints:
            fp.attach(book, self.alarm)
            self.alarm.add(fp)
            executor.footprints[fp.symbol] = fp
            if self.cfg.aave.liquidity_policy == "partial":
                executor.aave_room[fp.symbol] = fp.room
        self.strategy.attach(StrategyContext(book, executor, events, wallet=0, n_points=n,
                                             hour_by_hour=self.hour_by_hour))
        return book

    def run(self, progress: Callable[[int], None] | None = None, clock=None,
            events: EventLog | None = None) -> RunResult:
        """Run the loop once. `clock` drives it (the backtest grid by default; paper trading passes a clock
        that waits for each hour's data); `events` is the log to write to (a fresh one by default)."""
        events = EventLog() if events is None else events
        book = self.prepare(events)
        executor = self.executor
        t0 = time.perf_counter()
        clock = BacktestClock(self.market.grid) if clock is None else clock
        clock.start(book, events)
        guards = []  # a market fed hour by hour refuses at the hour it happens, not at the end of its window
        if self.hour_by_hour and self.cfg.aave.liquidity_policy == "refuse":
            guards = [partial(fp.guard, self.cfg) for fp in self.footprints]
        hooks = self.strategy.hooks() + Hooks(monitors=guards)
        history = run_loop(clock, book, self.strategy, hooks, executor,
                           self.flows, 0, events, progress, self.flow_labels, self.alarm)
        engine_seconds = time.perf_counter() - t0
        self.market.finish()
        return self._reconcile(book, history, events, engine_seconds)

    def _reconcile(self, book: Book, history, events: EventLog, engine_seconds: float) -> RunResult:
        quantities = np.array(history, dtype=np.float64)
        array = self.market.array_of
        values = np.array([
            s.sign * quantities[j] * array(s.index) * array(s.rate) * array(s.price)
            for j, s in enumerate(self.specs)
        ])
        nav = values.sum(axis=0)
        flows = np.asarray(self.flows)
        prev_nav = np.concatenate(([0.0], nav[:-1]))
        # Balance PnL over a tick = NAV(t) - NAV(t-1) - net external flows (ARCHITECTURE.md §6).
        balance_pnl = nav - prev_nav - flows
        attribution = np.array(book.attribution[:VOID], dtype=np.float64)
        residual = balance_pnl - attribution.sum(axis=0)
        fx = self.pricer.unit_usd()
        prev_fx = np.concatenate(([fx[0]], fx[:-1]))
        nav_usd = nav * fx
        # In USD: d(NAV*fx) - flow*fx = (dNAV - flow)*fx1 + NAV0*(fx1 - fx0): the share-class unit's price move.
        attribution_usd = attribution * fx
        attribution_usd[SPOT_PRICE] += prev_nav * (fx - prev_fx)
        balance_pnl_usd = nav_usd - prev_nav * prev_fx - flows * fx
        residual_usd = balance_pnl_usd - attribution_usd.sum(axis=0)
        tol = self.cfg.reconciliation_tolerance
        bad = np.nonzero(np.abs(residual) > tol * np.maximum(np.abs(nav), 1e-12))[0]
        for k in bad[:100]:
            events.add(int(k), "reconciliation_error",
                       f"residual {residual[k]:.3e} exceeds {tol:g} x NAV ({nav[k]:.6f})",
                       residual=float(residual[k]), nav=float(nav[k]))
        used = {TRANSACTION_COSTS}
        for s in self.specs:
            for factor, slot in ((s.index, s.index_slot), (s.rate, s.rate_slot), (s.price, s.price_slot)):
                if slot != VOID and np.ptp(array(factor)) != 0.0:
                    used.add(slot)
        used |= {i for i in range(len(ATTRIBUTION_TYPES)) if attribution[i].any()}  # cash-flow types (funding)
        used_usd = used | ({SPOT_PRICE} if fx.min() != fx.max() else set())
        report = self.strategy.report(quantities, nav)
        report.summary["skipped_actions"] = dict(sorted(self.strategy.gate.skips.items()))
        report.summary.setdefault("liquidations", liquidation_summary([]))  # nothing borrowed, nothing to liquidate
        report.summary |= _closest_to_liquidation(report.columns, self.market.grid)
        self._footprint_report(report, quantities)
        report.summary["exit"] = self._exit(book, events)
        if self.judge is not None:
            report.summary["benchmark"] = {"name": self.judge.name, "about": self.judge.about,
                                           "apy": self.judge.apy(self.market)}
        if self.benchmark is not None:
            lo, hi = self.market.partial_coverage[BENCHMARK]
            grid = self.market.grid
            apy = np.where((grid >= lo) & (grid <= hi), self.market.array(self.benchmark), np.nan)
            report.columns["benchmark_susde_apy"] = apy
        return RunResult(
            cfg=self.cfg, grid=self.market.grid, position_keys=[s.instrument.key for s in self.specs],
            quantities=quantities, values=values, nav=nav, flows=flows, balance_pnl=balance_pnl,
            attribution=attribution, residual=residual, unit_usd=fx, nav_usd=nav_usd,
            attribution_usd=attribution_usd, residual_usd=residual_usd,
            extra_columns=report.columns, extra_summary=report.summary,
            reported_types=[ATTRIBUTION_TYPES[i] for i in sorted(used)],
            reported_types_usd=[ATTRIBUTION_TYPES[i] for i in sorted(used_usd)],
            events=events, data_warnings=list(self.market.warnings), engine_seconds=engine_seconds,
            config_hash=config_hash(self.cfg), data_hash=self.data_hash, data_root=str(self.dataset.root),
        )


    def _exit(self, book: Book, events: EventLog) -> dict | None:
        """The liquidation value at the last hour: the strategy frees the whole NAV as for a withdrawal (never
        split, at the impact of its full size) and sells its reward tokens in that hour, in a transaction that
        is then undone; the costs it booked are the exit cost. Where the book holds an LST, the redemption queue
        is the alternative: no swap slippage, the queue's wait."""
        k = self.market.n_points - 1
        nav = book.nav(k)
        if nav <= 0.0:
            return None
        ex = self.executor
        tx = ex.transaction(k)
        n_events = len(events.events)
        try:
            self.strategy.raise_cash(k, nav)
            self.strategy.sell_all_rewards(k)
            cost = tx.cost()
            freed = book.qty[0]
            swaps = sum(float(e.details.get("slippage_cost", 0.0)) for e in events.events[n_events:]
                        if str(e.details.get("operation", "")).startswith("swap_"))
        finally:
            tx.rollback()
        out = {"cost": cost, "liquidation_nav": nav - cost, "cost_share": cost / nav, "unwound_share": freed / nav}
        queue = self.strategy.redeem_queue_hours()
        owes = any(spec.sign < 0 and book.qty[j] != 0.0 for j, spec in enumerate(self.specs))
        if queue is not None and swaps > 0.0 and not owes:  # debt is repaid at once: no queue for a levered book
            out["via_redeem_queue"] = {"cost": cost - swaps, "liquidation_nav": nav - cost + swaps,
                                       "wait_hours": queue}
        return out

    def _footprint_report(self, report, quantities: np.ndarray) -> None:
        """Utilisation with the fund, the rate impact and the liquidity constraints (refused: stops the run)."""
        if not self.footprints:
            return
        shortfalls, impact = [], np.zeros(self.market.n_points)
        for fp in self.footprints:
            columns, short = fp.report(self.market, quantities)
            report.columns |= columns
            shortfalls += short
            impact += fp.impact
        if self.cfg.aave.liquidity_policy == "refuse" and shortfalls:
            raise refusal(self.cfg, shortfalls, min(fp.fit_ratio for fp in self.footprints),
                          min(fp.kink_ratio for fp in self.footprints))
        report.columns["rate_impact"] = impact
        constrained = {s.k for s in shortfalls} | {c[0] for c in self.executor.constrained}
        worst = max(shortfalls, key=lambda s: s.shortfall, default=None)
        report.summary["rate_impact"] = float(impact.sum())
        report.summary["liquidity_policy"] = self.cfg.aave.liquidity_policy
        report.summary["liquidity_constrained_hours"] = len(constrained)
        report.summary["largest_liquidity_shortfall"] = None if worst is None else worst.as_dict()
        report.summary["limited_borrows"] = len(self.executor.constrained)
        # the fund alone takes a reserve to 100%: its debt pays the top of the rate curve, and others cannot withdraw
        full = {}
        for fp in self.footprints:
            u = report.columns[f"utilisation_with_fund:{fp.symbol}"]
            hours = np.flatnonzero(u >= 1.0 - 1e-12)
            if hours.size:
                full[fp.symbol] = int(hours.size)
                k = int(hours[0])
                rate = fp.rates.strategy_at(int(self.market.grid[k])).borrow_rate(1.0)
                self.executor.events.add(k, "risk_alert", f"aave_v3 {fp.symbol}: the fund's borrowing takes the "
                                         f"reserve to 100% utilisation ({hours.size} h in the run; borrow rate "
                                         f"{rate:.2%} at 100%)", reserve=fp.symbol, hours=int(hours.size),
                                         borrow_rate=rate)
        report.summary["full_utilisation_hours"] = full


def warning_event(events: EventLog, w, start: int, n: int) -> None:
    """The event of a stale stretch a run used, at the point where it starts (or the first point)."""
    k = int(np.clip((max(w.after, start) - start) // HOUR, 0, n - 1))
    events.add(k, "data_warning", w.message(), series=w.series, after=iso(w.after),
               until=iso(w.until), hours=w.hours, limit_hours=w.limit_hours)


def _closest_to_liquidation(columns: dict[str, np.ndarray], grid: np.ndarray) -> dict:
    """Per venue, the smallest liquidation distance over the run and the hour it happened."""
    lowest, at = {}, {}
    for name, values in columns.items():
        if name.startswith("liq_distance:") and np.isfinite(values).any():
            k = int(np.nanargmin(values))
            venue = name.split(":", 1)[1]
            lowest[venue], at[venue] = float(values[k]), iso(grid[k])
    return {"min_liquidation_distance": lowest, "min_liquidation_distance_at": at} if lowest else {}


def run_backtest(cfg: RunConfig, dataset: Dataset, progress: Callable[[int], None] | None = None) -> RunResult:
    return Backtest(cfg, dataset).run(progress)
