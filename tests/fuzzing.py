"""Hypothesis strategies for random run configs of the staking, leveraged, basis and market-neutral
presets (every numeric and choice key of theirs, within the validated ranges, capital from tiny to
large, deposits and withdrawals) over random windows of the real dataset, and the checks every
accepted config must pass. Used by test_properties.py (a fixed set in CI) and `make fuzz` (many)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
from hypothesis import strategies as st

from basiskit.data.dataset import Dataset
from basiskit.engine.run import Backtest, RunResult
from basiskit.engine.runconfig import load_run_config
from basiskit.errors import ConfigError, DataError, RunError
from basiskit.portfolio.attribution import SLOT
from basiskit.results.tables import ticks_table
from basiskit.venues.aave_footprint import REFUSED_MARK

HOUR = timedelta(hours=1)
FORCED = ("health_factor", "margin_ratio", "risk_override", "withdrawal")  # safety actions and flows
# Windows every series of the family covers in ../shared/market-data (MANIFEST common_windows), with a
# day's margin for the LST DEX series that starts 2024-05-13T04:00.
WINDOWS = {
    "basis": (datetime(2024, 1, 2, tzinfo=UTC), datetime(2025, 9, 25, tzinfo=UTC)),
    "lst": (datetime(2024, 5, 14, tzinfo=UTC), datetime(2025, 9, 25, tzinfo=UTC)),
}
MODES = {"eth_staking_only": "lst", "eth_leveraged": "lst", "btc_basis": "basis", "eth_basis": "basis",
         "usdt_market_neutral_no_leverage": "lst", "usdt_market_neutral": "lst"}
SHARE_CLASS = {"eth_staking_only": "ETH", "eth_leveraged": "ETH"}


def _fraction(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


def _log_uniform(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(math.log10(lo), math.log10(hi)).map(lambda e: float(f"{10 ** e:.6g}"))


def _hedge(draw, okx: bool = True) -> dict:
    choices = [("binance", "bybit"), ("binance",), ("bybit",)] + ([("binance", "bybit", "okx")] if okx else [])
    venues = draw(st.sampled_from(choices))
    raw = [draw(_fraction(0.05, 1.0)) for _ in venues]
    weights = [round(w / sum(raw), 4) for w in raw]
    weights[-1] = round(1.0 - sum(weights[:-1]), 10)
    alloc = {"binance": 0.0, "bybit": 0.0, "okx": 0.0} | dict(zip(venues, weights, strict=True))
    return {f"hedge_allocation.{v}": w for v, w in alloc.items()}


# One draw in four takes one field from the whole validated range (WILD names them); every other field is
# drawn from the range the config rules accept, so most configs run and the refused ones still say why.
WILD = ("capital", "threshold", "limit", "override", "max_net_delta", "margin", "hf_floor", "ltv_tolerance",
        "okx", "swap_entry")
MMR = 0.005  # the largest maintenance margin rate of the venues' perps (params/cex_venues.json)
LIQUIDATION_BUFFER = 0.02  # strategies/hedge.py: the move a margin ratio limit must leave before liquidation


def _pick(draw, wild: str | None, name: str, valid: st.SearchStrategy, anything: st.SearchStrategy):
    return draw(anything if wild == name else valid)


def _risk(draw, wild: str | None, limit: float, threshold: float) -> dict:
    return {"risk.margin_ratio_override": _pick(draw, wild, "override", _fraction(min(limit * 1.05, 0.98), 0.99),
                                                _fraction(0.05, 0.99)),
            "risk.max_net_delta_pct": _pick(draw, wild, "max_net_delta", _fraction(min(threshold, 0.3), 0.3),
                                            _fraction(0.01, 0.3)),
            "risk.reduce_fraction": draw(_fraction(0.05, 0.95))}


def _limit(draw, wild: str | None, margin: float) -> float:
    """A margin ratio limit the hedge rules accept for `margin` per unit of notional: at least twice the
    entry ratio mmr / margin, and leaving LIQUIDATION_BUFFER before liquidation on every venue."""
    high = 0.004 / (0.004 + LIQUIDATION_BUFFER) * 0.99  # the tightest venue (maintenance margin 0.4%)
    low = min(max(0.02, 2 * MMR / margin * 1.01), high)
    return _pick(draw, wild, "limit", _fraction(low, high), _fraction(0.02, 0.9))


def _leverage(draw, wild: str | None) -> dict:
    floor = _pick(draw, wild, "hf_floor", _fraction(1.001, 1.1), _fraction(1.001, 1.4))
    top = min(0.93, 0.95 / (floor + 0.011))  # HF = LT 0.95 / LTV must clear the floor by 0.01
    releverage = draw(_fraction(0.005, 0.2))
    return {"target_ltv": draw(st.one_of(st.just(min(0.85, top)), _fraction(0.2, top))),
            "leverage.entry": draw(st.sampled_from(["flash_loan", "loop"])),
            "leverage.hf_floor": floor,
            "leverage.releverage_threshold": releverage,
            "leverage.ltv_tolerance": _pick(draw, wild, "ltv_tolerance", _fraction(0.001, min(0.02, releverage * 0.9)),
                                            _fraction(0.001, 0.02)),
            "leverage.loop_max_steps": draw(st.integers(60, 200)),
            "leverage.flash_loan_premium": draw(_fraction(0.0, 0.002))}


@dataclass
class Draw:
    mode: str
    sets: dict
    start: datetime
    end: datetime
    capital: float
    flows: list[dict] = field(default_factory=list)
    stress: list[dict] = field(default_factory=list)

    def extra(self, end: datetime | None = None) -> dict:
        end = end or self.end
        flows = [f for f in self.flows if datetime.fromisoformat(f["at"]) < end]
        stress = [s for s in self.stress if datetime.fromisoformat(s["at"]) <= end]
        return {"start": self.start.isoformat(), "end": end.isoformat(), "initial_capital": self.capital,
                "flows": flows, "stress": stress}

    def cli_args(self) -> list[str]:
        """The same run as `basiskit backtest` arguments (for a failing example's report)."""
        args = [self.mode, "--start", self.start.isoformat(), "--end", self.end.isoformat(), "--capital",
                repr(self.capital)]
        for key, value in self.sets.items():
            args += ["--set", f"{key}={value}"]
        if self.flows:
            args += ["--set", "flows=" + str(self.flows).replace("'", '"')]
        if self.stress:
            args += ["--set", "stress=" + json.dumps(self.stress)]
        return args


def _staking(draw, wild: str | None, levered: bool) -> dict:
    """A levered entry through the DEX pays its slippage on the whole levered stake (over the 1% an entry may
    cost): a valid levered draw mints."""
    entries = ["mint", "swap"] if wild == "swap_entry" or not levered else ["mint"]
    return {"lst": draw(st.sampled_from(["weETH", "wstETH"])),
            "staking.entry": draw(st.sampled_from(entries)),
            "staking.exit": draw(st.sampled_from(["redeem", "swap"])),
            "rewards.enabled": draw(st.booleans()), "rewards.sell_dust": draw(st.booleans()),
            "rewards.min_sell_value_usd": draw(_fraction(0.0, 1000.0))}


@st.composite
def run_draws(draw, mode: str | None = None) -> Draw:
    mode = mode or draw(st.sampled_from(sorted(MODES)))
    wild = draw(st.sampled_from([None, None, None, *WILD[:3]]) | st.sampled_from([None, *WILD]))
    lo, hi = WINDOWS[MODES[mode]]
    days = draw(st.one_of(st.integers(2, 45), st.integers(45, 200)))
    span = (hi - lo).days - days
    start = lo + timedelta(days=draw(st.integers(0, span)), hours=draw(st.integers(0, 23)))
    end = start + timedelta(days=days)
    eth = SHARE_CLASS.get(mode) == "ETH"
    # capital from tiny to huge; the valid draws above every mode's floor (entry costs, venue minimums)
    capital = _pick(draw, wild, "capital", _log_uniform(50.0, 1e5) if eth else _log_uniform(2e4, 1e8),
                    _log_uniform(0.01, 1e5) if eth else _log_uniform(10.0, 1e8))
    sets: dict = {"costs.enabled": draw(st.sampled_from([True, True, True, False]))}
    hedged = mode not in ("eth_staking_only", "eth_leveraged")
    threshold = (_pick(draw, wild, "threshold", st.one_of(st.just(0.01), _fraction(0.001, 0.1)), _fraction(0.0, 0.2))
                 if hedged else draw(st.one_of(st.just(0.001), _fraction(0.0, 0.2))))
    sets["position_deviation_threshold"] = threshold
    if not hedged:
        sets |= _staking(draw, wild, mode == "eth_leveraged")
        if mode == "eth_leveraged":
            sets |= _leverage(draw, wild)
    elif mode in ("btc_basis", "eth_basis"):
        margin = _pick(draw, wild, "margin", _fraction(0.12, 2.0), _fraction(0.05, 2.0))
        limit = _limit(draw, wild, margin)
        sets |= _hedge(draw, okx=mode == "eth_basis" and wild == "okx") | _risk(draw, wild, limit, threshold)
        sets |= {"basis.spot_venue": draw(st.sampled_from(["binance", "bybit"]) if mode == "btc_basis"
                                          else st.just("bybit")),
                 "basis.margin_buffer": margin,
                 "basis.margin_ratio_limit": limit}
        if draw(st.integers(0, 9)) == 0:
            sets["basis.fixed_units"] = draw(_log_uniform(1e-3, 100.0))
    else:
        allocation = _pick(draw, wild, "margin", _fraction(0.3, 0.88), _fraction(0.3, 0.95))
        limit = _limit(draw, wild, (1 - allocation) / allocation)  # the rest of the equity is perp margin
        sets |= (_staking(draw, wild, mode == "usdt_market_neutral") | _hedge(draw, okx=wild == "okx")
                 | _risk(draw, wild, limit, threshold))
        sets |= {"stake_allocation": allocation, "market_neutral.margin_ratio_limit": limit}
        if mode == "usdt_market_neutral":
            sets |= _leverage(draw, wild)
    flows = []
    for _ in range(draw(st.integers(0, 3))):
        at = start + HOUR * draw(st.integers(1, days * 24 - 1))
        sign = draw(st.sampled_from([1.0, -1.0]))
        amount = float(f"{sign * capital * draw(st.one_of(*[_fraction(0.01, 0.9)] * 9, _fraction(0.01, 1.2))):.6g}")
        flows.append({"at": at.isoformat().replace("+00:00", "Z"), "amount": amount})
    flows.sort(key=lambda f: f["at"])
    return Draw(mode, sets, start, end, capital, flows)


# Shock parameters drawn for the stress properties: wide, but each inside the range the config accepts.
SHOCK_VALUES = {"eth_price_shock": ("magnitude", -0.9, 2.0), "btc_price_shock": ("magnitude", -0.9, 2.0),
                "lst_rate_shock": ("magnitude", 0.0, 0.6), "lst_market_depeg": ("magnitude", 0.0, 0.6),
                "borrow_rate_spike": ("apr", 0.0, 5.0), "funding_flip": ("factor", -10.0, 10.0),
                "gas_spike": ("factor", 0.0, 100.0), "venue_outage": (None, None, None)}


@st.composite
def stressed_draws(draw, mode: str) -> Draw:
    """A random run (run_draws) with one or two random shocks inside its window."""
    d = draw(run_draws(mode))
    hours = int((d.end - d.start).total_seconds() // 3600)
    shocks = []
    for _ in range(draw(st.integers(1, 2))):
        kind = draw(st.sampled_from(sorted(SHOCK_VALUES)))
        param, lo, hi = SHOCK_VALUES[kind]
        shock = {"type": kind, "at": (d.start + HOUR * draw(st.integers(0, hours))).isoformat()}
        if param:
            shock[param] = draw(_fraction(lo, hi))
        if kind in ("venue_outage", "funding_flip"):
            shock["venues"] = draw(st.lists(st.sampled_from(["binance", "bybit", "okx"]), min_size=1, max_size=3,
                                            unique=True))
        if draw(st.booleans()):
            shock["hours"] = draw(st.integers(1, max(hours, 1)))
        if draw(st.booleans()):
            shock |= {"path": "linear", "ramp_hours": draw(st.integers(1, 72))}
        if draw(st.booleans()):
            shock["recovery_hours"] = draw(st.integers(0, 72))
        shocks.append(shock)
    d.stress = shocks
    return d


def _sets(d: Draw) -> list[str]:
    return [f"{k}={v}" for k, v in d.sets.items()]


@dataclass
class Outcome:
    status: str  # ran, refused, refused_data, stopped (a withdrawal that cannot be met)
    message: str = ""
    result: RunResult | None = None
    backtest: Backtest | None = None


def build_and_run(d: Draw, dataset: Dataset, end: datetime | None = None) -> Outcome:
    try:
        cfg = load_run_config(d.mode, sets=_sets(d), extra=d.extra(end), dataset=dataset)
        bt = Backtest(cfg, dataset)
    except ConfigError as exc:
        return Outcome("refused", str(exc))
    except DataError as exc:
        return Outcome("refused_data", str(exc))
    try:
        return Outcome("ran", result=bt.run(), backtest=bt)
    except RunError as exc:
        return Outcome("stopped", str(exc))
    except ConfigError as exc:  # aave.liquidity_policy refuse: the reserves could not lend that much
        assert REFUSED_MARK in str(exc), str(exc)
        return Outcome("refused", str(exc))


@dataclass
class Stats:
    """What a property run saw, for the closing summary."""

    counts: dict = field(default_factory=dict)
    worst_cost_rate: tuple[float, str] = (0.0, "")
    worst_rebalance_rate: tuple[float, str] = (0.0, "")
    worst_forced_cost_rate: tuple[float, str] = (0.0, "")

    def add(self, status: str) -> None:
        self.counts[status] = self.counts.get(status, 0) + 1


def check_accepted(d: Draw, out: Outcome, dataset: Dataset, stats: Stats) -> None:
    """(a) reconciles, (b) does not churn, (c) no negative balance but debts and perps, (d) no look-ahead,
    (e) deterministic."""
    r, where = out.result, " ".join(d.cli_args())
    check_reconciles(r, where)
    check_no_churn(r, where, stats)
    check_no_overdraft(r, where)
    check_no_look_ahead(d, r, dataset, where)
    check_deterministic(r, dataset, where)


def check_stressed(d: Draw, out: Outcome, dataset: Dataset, stats: Stats) -> None:
    """A run under random shocks: (a), (c), (d), (e), and a NAV that never falls below zero (a loss stops
    at what was put in: liquidations write off what the collateral or the margin cannot cover)."""
    r, where = out.result, " ".join(d.cli_args())
    if r.extra_summary.get("liquidations", {}).get("count"):
        stats.add("liquidated")
    check_reconciles(r, where)
    check_no_overdraft(r, where)
    assert r.nav.min() >= -1e-9 * r.cfg.initial_capital, f"NAV {r.nav.min():.6g} < 0: {where}"
    check_no_look_ahead(d, r, dataset, where)
    check_deterministic(r, dataset, where)


def _scale(r: RunResult) -> np.ndarray:
    return np.maximum(np.abs(r.nav), r.cfg.initial_capital)


def check_reconciles(r: RunResult, where: str) -> None:
    """(a) residual <= 1e-9 x max(|NAV|, initial capital) every hour."""
    worst = float(np.max(np.abs(r.residual) / _scale(r)))
    assert worst <= 1e-9, f"residual {worst:.3e} x scale: {where}"


def check_no_churn(r: RunResult, where: str, stats: Stats) -> None:
    """(b) at most max(3, days) rebalances besides the entry (and one per flow); costs (fees, slippage, gas,
    transfer fees; not liquidation losses) at most 1% of the capital put in plus 1.5% of it a year. Safety
    actions (health factor, margin ratio, risk override) and withdrawals are the market's or the
    owner's doing, not churn: their costs are counted apart, and each must answer a real breach."""
    cfg = r.cfg
    days = (len(r.grid) - 1) / 24
    rebalances = [e for e in r.events.of_type("rebalance") if e.details["trigger"] != "build"]  # a split order's
    allowed = max(3, days) + 1 + len(cfg.flows)  # later slices are the order that began it, not a new decision
    # the gas reserve (ETH for a full de-lever) is refilled as the strategy's own gas spends it: upkeep of a safety
    # margin, not a decision on the book, bounded apart (at most one refill a day, the strategy's retry pace)
    refills = [e for e in rebalances if e.details["trigger"] == "gas_reserve"]
    assert len(refills) <= days + 1, f"the gas reserve refilled {len(refills)} times in {days:g} days: {where}"
    decisions = len(rebalances) - len(refills)
    assert decisions <= allowed, f"{decisions} rebalances (and {len(refills)} gas refills) in {days:g} days: {where}"
    forced = [e for e in rebalances if e.details["trigger"] in FORCED]
    for e in forced:
        value, limit = e.details["trigger_value"], e.details["threshold"]
        breach = value < limit if e.details["trigger"] == "health_factor" else value >= limit
        assert breach or e.details["trigger"] == "withdrawal", f"{e.message} without a breach: {where}"
    put_in = cfg.initial_capital + sum(f.amount for f in cfg.flows if f.amount > 0)
    forced_costs = sum(e.details["cost"] for e in forced)
    costs = -float(r.attribution[SLOT["transaction_costs"]].sum()) - forced_costs
    bound = put_in * (0.01 + 0.015 * days / 365)
    assert costs <= bound * (1 + 1e-9), f"costs {costs:.6g} > {bound:.6g} ({costs / put_in:.4%} of capital): {where}"
    stats.worst_cost_rate = max(stats.worst_cost_rate, (costs / put_in, where))
    stats.worst_forced_cost_rate = max(stats.worst_forced_cost_rate, (forced_costs / put_in, where))
    stats.worst_rebalance_rate = max(stats.worst_rebalance_rate, ((len(rebalances) - 1) / max(days, 1), where))
    if r.extra_summary.get("liquidations", {}).get("count"):
        stats.add("liquidated")


def check_no_overdraft(r: RunResult, where: str) -> None:
    """(c) no balance other than a debt or a perp position is ever negative."""
    scale = _scale(r)
    for j, key in enumerate(r.position_keys):
        kind = key.split(":")[1]
        if kind in ("debtToken", "Perp"):
            continue
        low = r.values[j] / scale
        assert low.min() >= -1e-9, f"{key} negative ({r.quantities[j].min():.6g}) at {int(low.argmin())}: {where}"


def check_no_look_ahead(d: Draw, r: RunResult, dataset: Dataset, where: str) -> None:
    """(d) a run cut at an earlier end equals the first part of this one, every column."""
    cfg = r.cfg
    hours = len(r.grid) - 1
    flow_hours = {int((f.at - cfg.start).total_seconds() // 3600) for f in cfg.flows}
    cut_hours = next((h for h in range(max(1, hours // 3), hours) if h not in flow_hours), None)
    if cut_hours is None:  # a flow at the cut would lie outside the shorter window
        return
    cut = build_and_run(d, dataset, end=d.start + HOUR * cut_hours)
    if cut.status == "ran":
        long_ticks, short_ticks = ticks_table(r), ticks_table(cut.result)
        n = len(short_ticks)
        for col in short_ticks.columns:
            a, b = short_ticks[col].to_numpy(), long_ticks[col].to_numpy()[:n]
            assert np.array_equal(a, b) or (a.dtype.kind == "f" and np.array_equal(a, b, equal_nan=True)), \
                f"look-ahead in {col}: cut at {cut_hours} h differs: {where}"


def check_deterministic(r: RunResult, dataset: Dataset, where: str) -> None:
    """(e) the same config again gives identical results."""
    again = Backtest(r.cfg, dataset).run()
    for name in ("nav", "quantities", "attribution", "residual"):
        assert np.array_equal(getattr(again, name), getattr(r, name)), f"{name} differs between runs: {where}"
