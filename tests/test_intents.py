"""Orders are typed: every executor action records its intent (venue, instrument, side, size, action, asset, bundle,
trigger, safety), and paper and live read those, never the text of an event. Rewording every message (random text
in place of each, inside EventLog) changes no paper order and no live order, in all eight modes."""

from __future__ import annotations

import secrets

import pytest

from basiskit.config import preset_names
from basiskit.data.dataset import SAMPLE_DIR, Dataset
from basiskit.engine.run import Backtest
from basiskit.engine.runconfig import load_run_config
from basiskit.execution.events import EventLog
from basiskit.execution.intents import ACTIONS, SAFETY_TRIGGERS, order_intents
from basiskit.live.book import Holding, Observation
from basiskit.live.execution import Dispatcher, PerpExecutor
from basiskit.live.store import LiveStore
from basiskit.paper.session import PaperOptions, PaperSession
from basiskit.paper.store import PaperStore

WINDOW = {"start": "2024-10-20T00:00:00Z", "end": "2024-10-23T00:00:00Z"}
# a withdrawal inside the window, so that exits are planned too (every mode raises cash for it)
FLOW = {"at": "2024-10-21T12:00:00Z"}
MODES = preset_names()


def _cfg(mode: str):
    cfg = load_run_config(mode, extra=WINDOW, dataset=Dataset(SAMPLE_DIR))
    flows = [{"at": FLOW["at"], "amount": -0.3 * cfg.initial_capital}]
    return load_run_config(mode, extra={**WINDOW, "flows": flows}, dataset=Dataset(SAMPLE_DIR))


def _reworded(monkeypatch) -> None:
    """Every event's message replaced by random text as it is logged."""
    original = EventLog.add

    def add(self, k, type_, message, intent=None, **details):
        original(self, k, type_, f"reworded {secrets.token_hex(12)}", intent, **details)

    monkeypatch.setattr(EventLog, "add", add)


def _intents(cfg):
    result = Backtest(cfg, Dataset(SAMPLE_DIR)).run()
    return [i for k in range(len(result.grid)) for i in order_intents(result.events.events, k)], result


def _live_orders(tmp_path, name, intents):
    """The intents as a sending session admits them: every venue with an executor, one plan per tick."""
    from eth_account import Account

    from basiskit.connectors.chain import ChainClient
    from basiskit.connectors.exchanges import ExchangeAccount
    from basiskit.live.chain_executor import ChainExecutor

    store = LiveStore(tmp_path / f"{name}.db")
    name = "s"  # the same session (client ids are the session's) in two stores
    store.open_session(name, "m", "accounts.yaml", {})
    chain = ChainExecutor(ChainClient.from_url("http://127.0.0.1:9"), Account.create(), "fund", 50.0, "stand-in",
                          flash_receiver="0x" + "11" * 20)
    executors = {v: PerpExecutor(ExchangeAccount(v, "k", "s", "p", ["ETH", "BTC"]), 20) for v in ("binance", "bybit",
                                                                                                 "okx")}
    executors |= {"aave_v3": chain, "ethereum": chain}
    cfg = load_run_config("eth_basis", sets=["live.max_order_usd=1e5", "live.max_day_usd=1e12",
                                             "live.max_slippage_bps=20", "live.max_gas_gwei=50",
                                             "live.venues=[binance,bybit,okx,aave_v3,ethereum]"])
    d = Dispatcher(store, name, "auto", cfg.live, executors, clock=lambda: 1_700_000_000.0)
    prices = {"fund/ethereum/token/weeth": Holding(0.0, 3150.0), "fund/ethereum/token/wsteth": Holding(0.0, 3540.0)}
    obs = Observation(1_700_000_000, 1, prices, {}, {}, 3000.0, read_at=1_700_000_000.0)
    orders, alerts = d.admit(0, 1_700_000_000, intents, obs)
    routed = [(d._executor(o) is not None) for o in orders]
    return [(o.venue, o.instrument, o.side, o.size, o.price, o.status, o.counted_usd, o.bundle, o.trigger, o.safety,
             o.note) for o in orders], [a.kind for a in alerts], routed


@pytest.mark.parametrize("mode", MODES)
def test_orders_never_follow_the_text_of_a_message(mode, monkeypatch, tmp_path):
    cfg = _cfg(mode)
    plain, result = _intents(cfg)
    executions = [e for e in result.events.events if e.type in ("execution", "transfer")]
    assert plain and len(plain) == len(executions)  # every action is an order
    assert all(i.action in ACTIONS and i.size > 0 and i.asset for i in plain)
    assert all(i.safety == (i.trigger in SAFETY_TRIGGERS) for i in plain)
    paper_plain = _paper(tmp_path, "plain", cfg)
    live_plain = _live_orders(tmp_path, "plain", plain)
    _reworded(monkeypatch)
    reworded, again = _intents(cfg)
    assert {e.message for e in again.events.events if e.type == "execution"} != \
        {e.message for e in executions}  # the text did change
    assert reworded == plain
    assert _paper(tmp_path, "reworded", cfg) == paper_plain
    assert _live_orders(tmp_path, "reworded", reworded) == live_plain
    # and a live session routes every on-chain and perp order to an executor (spot and transfers are the operator's)
    orders, _, routed = live_plain
    assert all(r == (o[0] in ("aave_v3", "ethereum") or ":Perp:" in o[1]) for o, r in zip(orders, routed, strict=True)
               if o[1].split("_")[0] not in ("claim", "sell", "redeem")), list(zip(orders, routed, strict=True))


def _paper(tmp_path, label, cfg) -> list[dict]:
    """The orders a paper replay of `cfg` stores."""
    db = tmp_path / f"paper-{label}.db"
    store = PaperStore(db)
    PaperSession(store, label, cfg, PaperOptions(data=str(SAMPLE_DIR), out=str(tmp_path / "runs")), quiet=True).run()
    return [{k: v for k, v in o.items() if k not in ("seq", "timestamp")} for o in store.table(label, "orders")]
