"""The mode's strategy on the real book: each hour the engine is built over that one hour, its market read at the
tick's own block (Aave reserves, gas; exchange series from the exchanges' public endpoints, as the paper live
feed reads them) and its book set to the holdings the session just read. The strategy's tick runs once; what it
executed in that simulation becomes order intents for an operator. Nothing is sent (live step 1).

How holdings become the engine's positions (summed over accounts):
  ethereum native ETH and WETH -> wallet:BaseToken:ETH; USDT -> wallet:BaseToken:USDT; weETH, wstETH -> the LST
  aave_v3 aToken / debtToken -> the engine's scaled balance (units / the reserve's index at the block)
  a venue's perp -> {venue}:Perp:{ASSET}USDT (its size) with the venue's entry price; the venue's USDT cash ->
  its margin account as cash - size x entry (the engine values the contract at the mark: cash + size x (mark -
  entry) is the account's equity either way); other cash -> {venue}:BaseToken:{coin}
Holdings the mode has no position for are `unmodelled`: shown with their USD value, never folded in.

An ETH price series no live source serves (the default Uniswap WETH/USDT pool) is taken from the Aave oracle at
the block (WETH's USD price / USDT's): a stand-in named in every plan's `sources`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import RunConfig
from ..connectors.chain import GAS, FeeHistory, reserve_of
from ..data.dataset import Dataset
from ..data.live import LiveMarket
from ..data.market import Need, reads
from ..data.timeutil import HOUR, iso
from ..engine.clock import BacktestClock
from ..engine.loop import run_loop
from ..engine.run import Backtest, _components
from ..errors import ConfigError, RunError
from ..execution.events import EventLog
from ..execution.intents import OrderIntent, order_intents
from ..feeds.live import LiveFeed, served, unserved_problems
from .book import Observation

SYMBOL = {"weth": "WETH", "usdt": "USDT", "weeth": "weETH", "wsteth": "wstETH"}
LST_PROTOCOL = {"weeth": "etherfi", "wsteth": "lido"}


@dataclass
class Plan:
    """What the strategy would do on the book read at tick `tick`: intents in order, and what it planned from."""

    tick: int
    t: int
    intents: list[OrderIntent]
    positions: dict[str, float]  # engine key -> quantity the plan started from
    unmodelled: dict[str, float]  # holding key -> USD value the mode holds no position for
    sources: dict[str, str]  # series -> where its value at the hour came from
    nav_usd: float  # of the modelled holdings, as the engine values them
    events: list[dict] = field(default_factory=list)  # the simulation's events (rebalance, execution, ...)
    after: dict[str, float] = field(default_factory=dict)  # engine key -> units once the intents are done
    gas_reserve_eth: float | None = None  # ETH the strategy keeps for gas (a full de-lever at the p99 gas price)

    def to_json(self) -> dict:
        return {"tick": self.tick, "t": self.t, "intents": [i.to_json() for i in self.intents],
                "positions": self.positions, "unmodelled": self.unmodelled, "sources": self.sources,
                "nav_usd": self.nav_usd, "events": self.events, "after": self.after,
                "gas_reserve_eth": self.gas_reserve_eth}


def engine_key(holding: str) -> str | None:
    """The engine position a holding key (account/venue/kind/asset) is part of, or None."""
    _, venue, kind, asset = holding.split("/")
    if venue == "ethereum":
        if kind == "native" or asset == "weth":
            return "wallet:BaseToken:ETH"
        if asset in LST_PROTOCOL:
            return f"{LST_PROTOCOL[asset]}:BaseToken:{SYMBOL[asset]}"
        return f"wallet:BaseToken:{SYMBOL.get(asset, asset.upper())}"
    if venue == "aave_v3":
        return f"aave_v3:{kind}:{'a' if kind == 'aToken' else 'debt'}{SYMBOL[asset]}"
    if kind == "perp":
        return f"{venue}:Perp:{asset}USDT"
    if kind == "cash":
        return f"{venue}:BaseToken:{asset}"
    return None


class _AtBlock(LiveFeed):
    """The live feed reading the chain at the tick's own block (the one the book was read at)."""

    block: int = 0

    def _block(self, t: int) -> int:
        return self.block


class Planner:
    """Builds, each hour, the engine over that hour and runs the strategy's tick on the book read."""

    def __init__(self, cfg: RunConfig, dataset: Dataset, chain, exchange_sessions: dict | None = None):
        self.cfg, self.dataset, self.chain = cfg, dataset, chain
        self.fees = FeeHistory(chain) if chain is not None else None  # the gas reserve's price
        needs = _components(cfg, dataset)[4]
        self.standins = self._standins(needs)
        self.needs = [n for n in needs if n.series not in self.standins]
        self.exchange_sessions = exchange_sessions or {}
        problems = unserved_problems(self.needs)  # refused at start: what neither a live source nor a stand-in serves
        on_chain = sorted(s for s in reads(self.needs) if reserve_of(s) or s == GAS)
        if chain is None and on_chain:
            problems.append(("--rpc-url", None, f"the {cfg.mode} plan reads {', '.join(on_chain)} from the chain: "
                             "pass --rpc-url URL"))
        if problems:
            raise ConfigError(problems)

    def _standins(self, needs: list[Need]) -> dict[str, str]:
        eth = self.cfg.prices.eth_usdt
        if eth in reads(needs) and not served(eth) and self.chain is not None \
                and {"weth", "usdt"} <= set(self.chain.market.assets):
            return {eth: "aave oracle WETH/USDT at the block (stand-in: no live source serves " + eth + ")"}
        return {}

    def _public(self) -> dict:
        from ..connectors.exchanges import ExchangeClient, instrument_of

        by_venue: dict[str, set[str]] = {}
        for s in reads(self.needs):
            if (inst := instrument_of(s)) is not None:
                by_venue.setdefault(inst.venue, set()).add(inst.asset)
        return {v: ExchangeClient(v, sorted(a), session=self.exchange_sessions.get(v)) for v, a in by_venue.items()}

    def plan(self, k: int, obs: Observation, unwind: bool = False) -> Plan:
        """The strategy's tick at the hour of `obs` on its holdings (`unwind`: its exit instead, every position
        freed into the wallet, as for a withdrawal of the whole NAV); RunError when the hour's market is
        incomplete."""
        t = obs.t // HOUR * HOUR
        cfg = self.cfg.model_copy(update={"start": iso(t), "end": iso(t)})
        market: dict = {}

        def build(needs, start, end):
            market["m"] = self._market(needs, t, obs, cfg)
            return market["m"]

        nav_usd = obs.nav_usd()
        eth_usd = obs.eth_usd or 0.0
        capital = nav_usd / eth_usd if cfg.share_class == "ETH" and eth_usd else nav_usd
        try:
            # the book exists: no capital floor (a de-lever near liquidation manages a sliver of equity)
            bt = Backtest(cfg.model_copy(update={"initial_capital": max(capital, 1e-9)}), self.dataset,
                          market_factory=build, check_capital=False, footprint=False)
        except ConfigError as exc:
            raise RunError(f"no plan at {iso(t)}: {exc}") from None
        events = EventLog()
        book = bt.prepare(events)
        positions, unmodelled = self._sync(bt, book, obs)
        m = market["m"]
        engine_nav = book.nav(0) * bt.executor.unit_usd[0]
        start = len(events.events)
        if unwind:  # the exit: every order a safety action (live.safety_*), whatever the strategy's own trigger
            bt.executor.reason_override = "exit"
            bt.strategy.raise_cash(0, book.nav(0))
        else:
            run_loop(BacktestClock(m.grid), book, bt.strategy, bt.strategy.hooks(), bt.executor, [0.0], 0, events)
        new = events.events[start:]
        sources = {s: "chain at the block" if (reserve_of(s) or s == GAS) else "exchange (public)"
                   for s in reads(self.needs) if s in m.required}
        if GAS in sources:
            sources[GAS] = "chain at the block: base fee + the larger of the median tip and the node's suggested tip"
        sources |= self.standins
        # in units (an Aave balance: scaled x index), what the book holds once the intents are carried out
        after = {s.instrument.key: book.qty[j] * (s.index[0] if s.instrument.kind in ("aToken", "debtToken") else 1.0)
                 for j, s in enumerate(book.specs) if book.qty[j]}
        intents = order_intents(new, 0)
        reserve = bt.strategy.gas_reserve(0) if hasattr(bt.strategy, "gas_reserve") else None
        if reserve is not None and bt.gas.enabled:
            served = self.fees.first_served if self.fees is not None else None
            window = "30 days" if served is None else f"the blocks the node serves (from block {served}; 30 days asked)"
            sources["gas reserve"] = (f"{reserve:.6f} ETH: a full de-lever at {bt.gas.reserve_gwei[0]:.4g} gwei, the "
                                      f"99th percentile of eth_feeHistory over {window} and at least the price now, "
                                      "at least live.gas_reserve_eth")
        return Plan(k, t, intents, positions, unmodelled, sources, engine_nav,
                    [{"type": e.type, "message": e.message, "details": e.details} for e in new], after, reserve)

    def _market(self, needs: list[Need], t: int, obs: Observation, cfg: RunConfig) -> LiveMarket:
        grid = _grid(t)
        feed = _AtBlock(self.dataset, [n for n in needs if n.series not in self.standins], grid,
                        exchanges=self._public(), chain=self.chain)
        feed.block = obs.block if obs.block is not None else 0
        market = LiveMarket(self.dataset, cfg.data, needs, t, t, feed.coverage(cfg.data))
        feed.attach(market)
        delivery = feed.hour(0, t)
        if feed.errors:
            raise RunError(f"no plan at {iso(t)}: the market could not be read ({'; '.join(feed.errors)[:300]})")
        gas_now = 0.0
        for series, rows in delivery.rows.items():
            for ts, values in rows:
                if series == GAS:  # what the session's own transactions pay: at least the node's suggested tip
                    tip = self.chain.w3.eth.max_priority_fee / 1e9
                    values = {**values, "gas_price_gwei": max(values["gas_price_gwei"], values["base_fee_gwei"] + tip)}
                    gas_now = values["gas_price_gwei"]
                market.take(series, ts, values, t)
        for need in needs:  # the gas reserve's price: the 30-day 99th percentile of the chain's own fee history
            if need.how == "quantile" and need.series == GAS:
                # never under the price now (a node that serves little or no history, or a quiet month)
                market.fixed[need] = max(self.fees.quantile(obs.block, need.window * HOUR), gas_now)
        for series in self.standins:
            reserves = {name: self.chain.reserve(name, obs.block) for name in ("weth", "usdt")}
            price = reserves["weth"]["oracle_price_usd"] / reserves["usdt"]["oracle_price_usd"]
            market.take(series, t, {"open": price}, t)
        if stale := market.stale(0):
            raise RunError(f"no plan at {iso(t)}: " + "; ".join(s.message() for s in stale))
        market.fill(0)
        return market

    def _sync(self, bt: Backtest, book, obs: Observation) -> tuple[dict[str, float], dict[str, float]]:
        """Set the book's quantities to the holdings read; returns them by engine key, and what is unmodelled."""
        qty, unmodelled = book.qty, {}
        entries: dict[str, tuple[float, float]] = {}  # perp key -> (size, entry price)
        for key, h in sorted(obs.holdings.items()):
            if h.units == 0.0:
                continue
            ek = engine_key(key)
            if ek is None or ek not in book.position:
                unmodelled[key] = h.units * h.price
                continue
            j = book.position[ek]
            spec = book.specs[j]
            if spec.instrument.kind in ("aToken", "debtToken"):
                qty[j] += abs(h.units) / spec.index[0]  # the scaled balance (Aave: balance = scaled x index)
            else:
                qty[j] += h.units
            if spec.instrument.kind == "Perp":
                size, entry = entries.get(ek, (0.0, 0.0))
                entries[ek] = (size + h.units, h.details["entry_price"])
        for ek, (size, entry) in entries.items():
            venue = ek.split(":")[0]
            qty[book.position[f"{venue}:BaseToken:USDT"]] -= size * entry
            for p in bt.executor.perps:
                if p.instrument.key == ek:
                    p.entry_price = entry
        return {s.instrument.key: qty[j] for j, s in enumerate(book.specs) if qty[j]}, unmodelled


def _grid(t: int):
    import numpy as np

    return np.array([t], dtype=np.int64)
