"""The live feed: exchanges (ccxt) and the chain (web3) read once an hour, as the dataset's rows.

Hour t is observed from t + DELAY_SECONDS on (bars close and settlements post on the hour). Bars: every
bar closed since the last one delivered, whole, and the bar opening at t by its open only. Funding:
settlements after the last one delivered, up to t. Chain: the reserves and gas read at the first block at
or after t (the latest block when t is the current hour), stamped t. A source that fails this hour simply
delivers nothing: the staleness limits decide whether the session may go on.
"""

from __future__ import annotations

import time

import numpy as np

from ..connectors.chain import GAS, ChainClient, reserve_of
from ..connectors.exchanges import ExchangeClient, Instrument, instrument_of
from ..data.dataset import Dataset
from ..data.market import Need, _required, history_bars, reads
from ..data.timeutil import HOUR
from ..errors import ConfigError
from .replay import Delivery, Row

DELAY_SECONDS = 90
FUNDING_LOOKBACK = 8 * HOUR


def served(series: str) -> bool:
    return instrument_of(series) is not None or reserve_of(series) is not None or series == GAS


def unserved_problems(needs: list[Need]) -> list[tuple[str, object, str]]:
    """Required series no live source serves, each with what to use instead."""
    missing = [s for s in _required(needs) if not served(s)]
    return [("series", s, "no live source serves it (exchanges: perp/spot/funding of binance, bybit, okx; chain: "
             "aave/*_reserve_1d, gas/ethereum_gas_1h); point the config at a served series, e.g. "
             "--set prices.eth_usdt=spot/bybit_ethusdt_1h") for s in missing]


class LiveFeed:
    name = "live"
    final = False

    def __init__(self, dataset: Dataset, needs: list[Need], grid: np.ndarray, options=None, *,
                 exchanges: dict[str, ExchangeClient] | None = None, chain: ChainClient | None = None,
                 delay: float = DELAY_SECONDS, clock=time.time):
        problems = unserved_problems(needs)
        if problems:
            raise ConfigError(problems)
        names = reads(needs)
        self.grid = grid
        self.history = history_bars(needs)  # closed bars fetched on start (the liquidity measures read them)
        self.delay = delay
        self.clock = clock
        self.instruments: dict[str, Instrument] = {s: i for s in names if (i := instrument_of(s)) is not None}
        self.reserves = {s: r for s in names if (r := reserve_of(s)) is not None}
        self.gas = GAS in names
        self.unserved = [s for s in names if not served(s)]  # partial series (rewards, benchmarks): zero live
        if exchanges is None:
            by_venue: dict[str, set[str]] = {}
            for inst in self.instruments.values():
                by_venue.setdefault(inst.venue, set()).add(inst.asset)
            exchanges = {v: ExchangeClient(v, sorted(a)) for v, a in by_venue.items()}
        self.exchanges = exchanges
        if chain is None and (self.reserves or self.gas):
            chain = ChainClient.from_url(options.rpc_url)
        self.chain = chain
        self.last: dict[str, int] = {}
        self.market = None
        self._chain_read: int | None = None
        self.errors: list[str] = []

    def attach(self, market) -> None:
        self.market = market

    def coverage(self, data_cfg) -> dict[str, tuple[int, int]]:
        never = int(self.grid[-1]) + HOUR
        return {s: (never, never) for s in self.unserved}

    def ready_at(self, t: int) -> float:
        return t + self.delay

    def hour(self, k: int, t: int) -> Delivery:
        rows: dict[str, list[Row]] = {}
        for series, inst in self.instruments.items():
            got = self._guarded(series, lambda s=series, i=inst: self._exchange_rows(s, i, t))
            if got:
                rows[series] = got
                self.last[series] = max(ts for ts, _ in got)
        if self.chain is not None and (self.reserves or self.gas) and self._chain_read != t:
            block = self._guarded("chain", lambda: self._block(t))
            if block is not None:
                self._chain_read = t  # one read per hour: a second poll of the hour must not revise it
                for series, name in self.reserves.items():
                    row = self._guarded(series, lambda n=name: self.chain.reserve(n, block))
                    if row is not None:
                        rows[series] = [(t, row)]
                if self.gas and (row := self._guarded(GAS, lambda: self.chain.gas_at(block))) is not None:
                    rows[GAS] = [(t, row)]
        return Delivery(t, rows)

    def _exchange_rows(self, series: str, inst: Instrument, t: int) -> list[Row]:
        client = self.exchanges[inst.venue]
        # Where the feed stands: the last row the market holds (so a resumed session asks for what follows
        # its committed rows), or a later one this feed already delivered and the market refused.
        held = self.market.buffers[series].last_ts if self.market is not None else None
        known = [x for x in (held, self.last.get(series)) if x is not None]
        last = max(known) if known else None
        if inst.kind == "funding":
            return client.funding(inst, last + 1 if last is not None else t - FUNDING_LOOKBACK, t)
        out: list[Row] = []
        for ts, values in client.bars(inst, last if last is not None else t - self.history * HOUR, t):
            out.append((ts, values) if ts + HOUR <= t else (ts, {"open": values["open"]}))
        return out

    def _block(self, t: int) -> int:
        eth = self.chain.w3.eth
        return eth.block_number if self.clock() - t < HOUR else self.chain.block_at(t)

    def _guarded(self, what: str, read):
        """A read that may fail on the network: the error is kept (and the hour goes without it)."""
        import ccxt
        import requests
        from web3.exceptions import Web3Exception

        try:
            return read()
        except (ccxt.BaseError, requests.RequestException, Web3Exception, OSError) as exc:
            self.errors.append(f"{what}: {exc}")
            return None
