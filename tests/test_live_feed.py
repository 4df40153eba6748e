"""The live feed's clients against recorded responses in each venue's documented format, through ccxt's
and web3's own seams (their parsing runs for real), and a live session on them."""

from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("ccxt")
pytest.importorskip("web3")

from eth_abi import encode  # noqa: E402
from web3 import Web3  # noqa: E402

from basiskit.connectors.chain import ORACLE, POOL, ChainClient  # noqa: E402
from basiskit.connectors.exchanges import ExchangeClient, instrument_of  # noqa: E402
from basiskit.data.dataset import Dataset  # noqa: E402
from basiskit.engine.run import Backtest  # noqa: E402
from basiskit.engine.runconfig import load_run_config  # noqa: E402
from basiskit.feeds.live import LiveFeed  # noqa: E402
from basiskit.paper.session import PaperOptions, PaperSession  # noqa: E402
from basiskit.paper.store import PaperStore  # noqa: E402
from recorded import RecordedChain, session_with  # noqa: E402

H = 3_600_000
T0 = 1_719_792_000_000  # 2024-07-01T00:00:00Z in ms


def sel(signature: str) -> str:
    return "0x" + Web3.keccak(text=signature)[:4].hex().removeprefix("0x")


# --- the mapping, against hand-written responses -----------------------------------------------------------
def test_binance_rows_keep_the_bar_label_the_units_and_the_funding_sign():
    routes = {
        ("fapi.binance.com", "/fapi/v1/klines"): lambda q: (
            [
                [T0, "61000.1", "61500.0", "60900.5", "61400.2", "1234.567", T0 + H - 1, "0", 10, "0", "0", "0"],
                [T0 + H, "61400.2", "61450.0", "61000.0", "61100.0", "99.5", T0 + 2 * H - 1, "0", 10, "0", "0", "0"],
            ]
            if int(q["startTime"]) <= T0 + H
            else []
        ),
        # Binance stamps settlements a few ms after the hour; a negative rate means shorts pay longs.
        ("fapi.binance.com", "/fapi/v1/fundingRate"): lambda q: (
            [
                {"symbol": "BTCUSDT", "fundingTime": T0 + 3, "fundingRate": "-0.00012500", "markPrice": "61000.0"},
                {
                    "symbol": "BTCUSDT",
                    "fundingTime": T0 + 8 * H + 1,
                    "fundingRate": "0.00010000",
                    "markPrice": "61100.0",
                },
            ]
            if int(q["startTime"]) <= T0
            else []
        ),
    }
    session, transport = session_with(routes)
    client = ExchangeClient("binance", ["BTC"], session=session)
    bars = client.bars(instrument_of("perp/binance_btcusdt_1h"), T0 // 1000, T0 // 1000 + 3600)
    assert bars == [
        (1_719_792_000, {"open": 61000.1, "high": 61500.0, "low": 60900.5, "close": 61400.2, "volume": 1234.567}),
        (1_719_795_600, {"open": 61400.2, "high": 61450.0, "low": 61000.0, "close": 61100.0, "volume": 99.5}),
    ]
    funding = client.funding(instrument_of("funding/binance_btcusdt_8h"), T0 // 1000, T0 // 1000 + 8 * 3600)
    assert funding == [(1_719_792_000, {"funding_rate": -0.000125}), (1_719_820_800, {"funding_rate": 0.0001})]
    assert (
        transport.seen[0].startswith("https://fapi.binance.com/fapi/v1/klines?")
        and "symbol=BTCUSDT" in transport.seen[0]
    )


def test_bybit_v5_lists_come_newest_first_and_leave_oldest_first():
    def kline(q):
        rows = [
            [str(T0 + i * H), f"{3400 + i}.5", f"{3410 + i}", f"{3390 + i}", f"{3405 + i}.25", "12.5", "42500"]
            for i in range(3)
            if T0 + i * H >= int(q["start"])
        ]
        return {
            "retCode": 0,
            "retMsg": "OK",
            "result": {"category": q["category"], "symbol": q["symbol"], "list": rows[::-1]},
            "retExtInfo": {},
            "time": T0,
        }

    def funding(q):
        rows = [
            {"symbol": "ETHUSDT", "fundingRate": r, "fundingRateTimestamp": str(T0 + i * 8 * H)}
            for i, r in enumerate(["0.0001", "-0.00005"])
            if T0 + i * 8 * H >= int(q["startTime"])
        ]
        return {
            "retCode": 0,
            "retMsg": "OK",
            "result": {"category": "linear", "list": rows[::-1]},
            "retExtInfo": {},
            "time": T0,
        }

    session, transport = session_with(
        {("api.bybit.com", "/v5/market/kline"): kline, ("api.bybit.com", "/v5/market/funding/history"): funding}
    )
    client = ExchangeClient("bybit", ["ETH"], session=session)
    spot = client.bars(instrument_of("spot/bybit_ethusdt_1h"), T0 // 1000, T0 // 1000 + 2 * 3600)
    assert [ts for ts, _ in spot] == [1_719_792_000, 1_719_795_600, 1_719_799_200]
    assert spot[2][1] == {"open": 3402.5, "high": 3412.0, "low": 3392.0, "close": 3407.25, "volume": 12.5}
    assert "category=spot" in transport.seen[0]
    funding_rows = client.funding(instrument_of("funding/bybit_ethusdt_8h"), T0 // 1000, T0 // 1000 + 8 * 3600)
    assert funding_rows == [(1_719_792_000, {"funding_rate": 0.0001}), (1_719_820_800, {"funding_rate": -0.00005})]


def test_okx_funding_keeps_both_its_rate_and_the_realized_one():
    def history(q):
        rows = [
            {
                "fundingRate": "0.0000749",
                "fundingTime": str(T0),
                "instId": "ETH-USDT-SWAP",
                "instType": "SWAP",
                "method": "current_period",
                "realizedRate": "0.0000049",
            }
        ]
        return {"code": "0", "msg": "", "data": rows}

    def candles(q):  # OKX: newest first; for a swap `vol` is contracts, `volCcy` the base currency
        rows = [[str(T0 + i * H), "3400", "3410", "3390", "3405", "125", "12.5", "42500", "1"] for i in range(2)]
        return {"code": "0", "msg": "", "data": rows[::-1]}

    session, _ = session_with(
        {
            ("www.okx.com", "/api/v5/public/funding-rate-history"): history,
            ("www.okx.com", "/api/v5/market/history-candles"): candles,
        }
    )
    client = ExchangeClient("okx", ["ETH"], session=session)
    got = client.funding(instrument_of("funding/okx_ethusdt_8h"), T0 // 1000, T0 // 1000)
    assert got == [(1_719_792_000, {"funding_rate": 0.0000749, "realized_funding_rate": 0.0000049})]
    bars = client.bars(instrument_of("perp/okx_ethusdt_1h"), T0 // 1000, T0 // 1000 + 3600)
    assert bars[0] == (
        1_719_792_000,
        {"open": 3400.0, "high": 3410.0, "low": 3390.0, "close": 3405.0, "volume": 12.5},
    )


RD = (
    "((uint256),uint128,uint128,uint128,uint128,uint128,uint40,uint16,address,address,address,address,"
    "uint128,uint128,uint128)"
)
A_TOKEN, DEBT_TOKEN = "0x" + "11" * 20, "0x" + "22" * 20


def reserve_calls(oracle_price, index=10**27, debt_index=10**27, rate=0, borrow_rate=0, supply=0, debt=0):
    """eth_call answers of the Aave v3 Pool, its oracle and the reserve's tokens (ABI-encoded)."""
    return {
        (POOL.lower(), sel("getReserveData(address)")): lambda a, ts: encode(
            [RD],
            [((0,), index, rate, debt_index, borrow_rate, 0, ts, 1, A_TOKEN, A_TOKEN, DEBT_TOKEN, A_TOKEN, 0, 0, 0)],
        ),
        (POOL.lower(), sel("getReserveNormalizedIncome(address)")): lambda a, ts: encode(["uint256"], [index]),
        (POOL.lower(), sel("getReserveNormalizedVariableDebt(address)")): lambda a, ts: encode(
            ["uint256"], [debt_index]
        ),
        (ORACLE.lower(), sel("getAssetPrice(address)")): lambda a, ts: encode(["uint256"], [oracle_price(ts)]),
        (A_TOKEN, sel("totalSupply()")): lambda a, ts: encode(["uint256"], [supply]),
        (DEBT_TOKEN, sel("totalSupply()")): lambda a, ts: encode(["uint256"], [debt]),
    }


def test_the_chain_client_reads_aave_in_its_units():
    calls = reserve_calls(
        lambda ts: 100_012_000,
        index=1_043_218_700_000_000_000_000_000_000,
        debt_index=1_081_000_000_000_000_000_000_000_000,
        rate=41_200_000_000_000_000_000_000_000,
        borrow_rate=52_000_000_000_000_000_000_000_000,
        supply=1_500_000_000_000_000,
        debt=1_200_000_000_000,
    )
    chain = RecordedChain(
        20_000_000,
        T0 // 1000,
        20_050_000,
        calls,
        gas_price=30_000_000_000,  # today's price: a past hour must not take it
        fees=lambda n: (11_970_000_000 + 1_000 * (n - 20_000_300), 100_000_000 + 7 * (n - 20_000_300)),
    )
    client = ChainClient(chain.provider)
    block = client.block_at(T0 // 1000 + 3600)
    assert block == 20_000_300 and chain.timestamp(block) == T0 // 1000 + 3600  # 12 s blocks
    # ray / 1e27; oracle USD with 8 decimals; USDT has 6 decimals
    assert client.reserve("usdt", block) == {
        "block_number": 20_000_300.0,
        "liquidity_index": 1.0432187,
        "liquidity_rate": 0.0412,
        "variable_borrow_index": 1.081,
        "variable_borrow_rate": 0.052,
        "total_supply": 1_500_000_000.0,
        "total_variable_debt": 1_200_000.0,
        "oracle_price_usd": 1.00012,
    }
    assert client.gas_at(block) == {  # that block's base fee and median priority fee (eth_feeHistory)
        "gas_price_gwei": 12.07,
        "base_fee_gwei": 11.97,
        "priority_fee_p50_gwei": 0.1,
        "block_number": 20_000_300.0,
    }
    later = client.gas_at(block + 300)  # an hour later, its own block's fees
    assert later["base_fee_gwei"] == (11_970_000_000 + 300_000) / 1e9
    assert later["priority_fee_p50_gwei"] == (100_000_000 + 2_100) / 1e9
    assert later["gas_price_gwei"] == (11_970_000_000 + 300_000 + 100_000_000 + 2_100) / 1e9


# --- a live session on recorded responses built from the real data --------------------------------------
def wait_until(condition, timeout: float = 60.0) -> bool:
    """Poll `condition` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _recorded_venues(full_data, cutoff: list[int], crash: list[int] | None = None, asked: list | None = None):
    """Binance and Bybit answering from the dataset's rows (never beyond cutoff[0], epoch s); a request
    for rows from crash[0] on kills the process (an exception no feed catches); `asked` collects the start
    of every request (so a test can wait for the feed to ask again)."""

    def frame(series):
        df = pd.read_csv(full_data / f"{series}.csv.gz")
        df["ms"] = (pd.to_datetime(df["timestamp"]) - pd.Timestamp(0, tz="UTC")) // pd.Timedelta("1ms")
        return df

    perp_b, perp_y = frame("perp/binance_btcusdt_1h"), frame("perp/bybit_btcusdt_1h")
    spot_y = frame("spot/bybit_btcusdt_1h")
    fund_b, fund_y = frame("funding/binance_btcusdt_8h"), frame("funding/bybit_btcusdt_8h")

    def upto(df, start, limit):
        if asked is not None:
            asked.append(start)
        if crash and start >= crash[0] * 1000:
            raise SystemExit("the process dies here")
        return df[(df["ms"] >= start) & (df["ms"] <= cutoff[0] * 1000)].head(limit)

    def binance_klines(q):
        return [
            [
                int(r.ms),
                str(r.open),
                str(r.high),
                str(r.low),
                str(r.close),
                str(r.volume),
                int(r.ms) + H - 1,
                "0",
                1,
                "0",
                "0",
                "0",
            ]
            for r in upto(perp_b, int(q["startTime"]), int(q["limit"])).itertuples()
        ]

    def binance_funding(q):
        return [
            {"symbol": "BTCUSDT", "fundingTime": int(r.ms) + 2, "fundingRate": repr(r.funding_rate), "markPrice": "0"}
            for r in upto(fund_b, int(q["startTime"]), int(q["limit"])).itertuples()
        ]

    def bybit_kline(q):
        df = perp_y if q["category"] == "linear" else spot_y
        rows = [
            [str(int(r.ms)), repr(r.open), repr(r.high), repr(r.low), repr(r.close), repr(r.volume), "0"]
            for r in upto(df, int(q["start"]), int(q["limit"])).itertuples()
        ]
        return {
            "retCode": 0,
            "retMsg": "OK",
            "result": {"category": q["category"], "list": rows[::-1]},
            "retExtInfo": {},
            "time": 0,
        }

    def bybit_funding(q):
        rows = [
            {"symbol": "BTCUSDT", "fundingRate": repr(r.funding_rate), "fundingRateTimestamp": str(int(r.ms))}
            for r in upto(fund_y, int(q["startTime"]), int(q["limit"])).itertuples()
            if r.ms <= int(q.get("endTime", 1 << 62))
        ]
        return {
            "retCode": 0,
            "retMsg": "OK",
            "result": {"category": "linear", "list": rows[::-1]},
            "retExtInfo": {},
            "time": 0,
        }

    session, _ = session_with(
        {
            ("fapi.binance.com", "/fapi/v1/klines"): binance_klines,
            ("fapi.binance.com", "/fapi/v1/fundingRate"): binance_funding,
            ("api.bybit.com", "/v5/market/kline"): bybit_kline,
            ("api.bybit.com", "/v5/market/funding/history"): bybit_funding,
        }
    )
    return {
        "binance": ExchangeClient("binance", ["BTC"], session=session),
        "bybit": ExchangeClient("bybit", ["BTC"], session=session),
    }


def _recorded_chain(full_data):
    usdt = pd.read_csv(full_data / "aave/usdt_reserve_1d.csv.gz")
    ts = ((pd.to_datetime(usdt["timestamp"]) - pd.Timestamp(0, tz="UTC")) // pd.Timedelta("1s")).to_numpy()
    price = usdt["oracle_price_usd"].to_numpy()

    def oracle(t):  # the last daily snapshot's price (the backtest aligns this series by its last value)
        return round(price[np.searchsorted(ts, t, side="right") - 1] * 10**8)

    return ChainClient(RecordedChain(20_000_000, T0 // 1000 - 30 * 86400, 21_000_000, reserve_calls(oracle)).provider)


LIVE_WINDOW = {"start": "2024-07-01T00:00:00Z", "end": "2024-07-04T00:00:00Z"}


def _live_session(full_data, tmp_path, cfg, cutoff, poll=30.0, crash=None, resume=False, asked=None, webhook=None):
    options = PaperOptions(
        feed="live", data=str(full_data), rpc_url="recorded", out=str(tmp_path / "runs"), poll_seconds=poll,
        capture=str(tmp_path / "capture"), webhook=webhook,
    )
    exchanges, chain = _recorded_venues(full_data, cutoff, crash, asked), _recorded_chain(full_data)
    factory = lambda d, n, g: LiveFeed(d, n, g, exchanges=exchanges, chain=chain, delay=0)  # noqa: E731
    store = PaperStore(tmp_path / "paper.db")
    if resume:
        return PaperSession.resume(store, "live", quiet=True, feed_factory=factory, rpc_url="recorded")  # not stored
    return PaperSession(store, "live", cfg, options, quiet=True, feed_factory=factory)


def test_a_live_session_on_recorded_venues_trades_as_the_backtest(full_data, tmp_path):
    cfg = load_run_config("btc_basis", [], [], LIVE_WINDOW, Dataset(full_data))
    got = _live_session(full_data, tmp_path, cfg, [10**10]).run().result
    expected = Backtest(cfg, Dataset(full_data)).run()
    assert np.array_equal(got.nav, expected.nav) and np.array_equal(got.attribution, expected.attribution)
    assert [(e.k, e.type, e.message) for e in got.events.events] == [
        (e.k, e.type, e.message) for e in expected.events.events
    ]
    # What it saw, written as a dataset, backtests to the same hours.
    capture = Dataset(tmp_path / "capture")
    assert capture.names() == ["aave/usdt_reserve_1d", "funding/binance_btcusdt_8h", "funding/bybit_btcusdt_8h",
                               "perp/binance_btcusdt_1h", "perp/bybit_btcusdt_1h", "spot/bybit_btcusdt_1h"]
    assert capture.series_meta("aave/usdt_reserve_1d").rows == 73  # read every hour, 2024-07-01 .. 07-04
    assert capture.series_meta("perp/binance_btcusdt_1h").end == pd.Timestamp("2024-07-03T23:00:00Z").timestamp()
    again = Backtest(cfg, capture).run()
    assert np.array_equal(again.nav, expected.nav)


def test_a_feed_that_stops_delivering_makes_the_loop_wait_and_alert_then_go_on(full_data, tmp_path):
    # A bar may be at most half an hour old: the hour after the venues stop, the loop waits (and trades
    # nothing on stale prices), so once they answer again it trades exactly as the backtest.
    cfg = load_run_config("btc_basis", [], ["data.staleness_hours.bar=0.5"], LIVE_WINDOW, Dataset(full_data))
    cutoff = [T0 // 1000 + 30 * 3600]  # the venues answer nothing after 2024-07-02T06:00
    asked: list[int] = []
    session = _live_session(full_data, tmp_path, cfg, cutoff, poll=0.05, asked=asked)
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(out=session.run()), daemon=True)
    worker.start()
    assert wait_until(lambda: session.counts["alerts"] > 0)
    polled = len(asked)
    assert wait_until(lambda: len(asked) >= polled + 10)  # it asked the venues again, several times ...
    stale_k = 30 + 1  # the last bar is labelled 06:00; at 07:00 it is 1 h old, over the 0.5 h limit
    assert session.market.delivered == stale_k - 1 and worker.is_alive()  # ... and traded no stale hour
    alerts = session.store.table("live", "alerts")
    assert [a["kind"] for a in alerts] == ["staleness"] * len(alerts) and len(alerts) >= 1
    messages = [a["message"] for a in alerts]  # one alert per stale series, once while it waits
    assert "spot/bybit_btcusdt_1h: no observation for 1 h after 2024-07-02T06:00:00Z" in " ".join(messages)
    # the perps are marked: at 07:00 each has its own price (the close of its 06:00 bar, delivered whole at
    # 07:00), so they are not stale yet; the spot is (its limit counts from its last bar's label); funding is
    # due at 08:00 only
    assert len(messages) == len(set(messages)) == 1
    cutoff[0] = 10**10  # the venues answer again (the missing bars included): nothing was lost
    worker.join(60)
    expected = Backtest(cfg, Dataset(full_data)).run()
    assert np.array_equal(result["out"].result.nav, expected.nav)
    ticks = session.store.table("live", "ticks")
    assert [t["tick"] for t in ticks] == list(range(len(expected.nav)))  # every hour once


def test_a_feed_stale_at_its_first_hour_alerts_the_webhook_while_the_session_waits_for_it(full_data, tmp_path):
    """The venues answer nothing from the start: the session waits for hour 0 while its market is being built, before
    it has its row in the store; its staleness alert reaches the webhook meanwhile (not once the feed is back)."""
    from server import free_port
    from test_webhook_outbox import Receiver

    cfg = load_run_config("btc_basis", [], ["data.staleness_hours.bar=0.5"], LIVE_WINDOW, Dataset(full_data))
    cutoff = [T0 // 1000 - 3 * 3600]  # nothing at all for the window's first hours
    received: list[dict] = []
    port = free_port()
    receiver = Receiver(port, received)
    try:
        session = _live_session(full_data, tmp_path, cfg, cutoff, poll=0.05, webhook=f"http://127.0.0.1:{port}/h")
        result: dict = {}
        worker = threading.Thread(target=lambda: result.update(out=session.run()), daemon=True)
        worker.start()
        assert wait_until(lambda: received, timeout=60), "no alert reached the webhook while the session waited"
        assert session.store.sessions() == [] and worker.is_alive()  # still waiting for hour 0: no row yet
        assert {a["kind"] for a in received} == {"staleness"} and received[0]["tick"] == 0
        cutoff[0] = 10**10  # the venues answer: the session starts, runs and ends as the backtest
        worker.join(120)
        expected = Backtest(cfg, Dataset(full_data)).run()
        assert np.array_equal(result["out"].result.nav, expected.nav)
        assert [a["seq"] for a in session.store.table("live", "alerts")] == list(range(len(received)))
    finally:
        receiver.stop()


def test_each_venue_gives_its_perps_mark_price():
    ticker = {"symbol": "BTCUSDT", "lastPrice": "61001.5", "indexPrice": "60990.1", "markPrice": "61000.8",
              "prevPrice24h": "60000", "price24hPcnt": "0.01", "highPrice24h": "61500", "lowPrice24h": "59800",
              "turnover24h": "1000", "volume24h": "100", "fundingRate": "0.0001", "nextFundingTime": "1719820800000",
              "bid1Price": "61001", "ask1Price": "61002", "bid1Size": "1", "ask1Size": "1"}
    routes = {
        ("fapi.binance.com", "/fapi/v1/premiumIndex"): lambda q: {
            "symbol": "BTCUSDT", "markPrice": "61000.10000000", "indexPrice": "60990.5", "estimatedSettlePrice": "0",
            "lastFundingRate": "0.0001", "interestRate": "0.0001", "nextFundingTime": T0 + 8 * H, "time": T0},
        ("api.bybit.com", "/v5/market/tickers"): lambda q: {
            "retCode": 0, "retMsg": "OK", "result": {"category": "linear", "list": [ticker]}, "retExtInfo": {},
            "time": T0},
        ("www.okx.com", "/api/v5/public/mark-price"): lambda q: {
            "code": "0", "msg": "", "data": [{"instType": "SWAP", "instId": "ETH-USDT-SWAP", "markPx": "3400.12",
                                              "ts": str(T0)}]},
    }
    session, _ = session_with(routes)
    marks = {v: ExchangeClient(v, [a], session=session).mark(instrument_of(f"perp/{v}_{a.lower()}usdt_1h"))
             for v, a in (("binance", "BTC"), ("bybit", "BTC"), ("okx", "ETH"))}
    assert marks == {"binance": 61000.1, "bybit": 61000.8, "okx": 3400.12}


def test_a_live_session_that_died_resumes_where_its_feed_stood(full_data, tmp_path):
    cfg = load_run_config("btc_basis", [], [], LIVE_WINDOW, Dataset(full_data))
    crash_at = T0 // 1000 + 40 * 3600  # 2024-07-02T16:00, a funding settlement hour
    with pytest.raises(SystemExit):  # at 17:00 the feed asks for bars from 16:00 on, and the process dies
        _live_session(full_data, tmp_path, cfg, [10**10], crash=[crash_at]).run()
    store = PaperStore(tmp_path / "paper.db")
    assert store.session("live")["last_tick"] == 40 and store.session("live")["status"] == "running"
    got = _live_session(full_data, tmp_path, cfg, [10**10], resume=True).run().result
    expected = Backtest(cfg, Dataset(full_data)).run()
    assert np.array_equal(got.nav, expected.nav) and np.array_equal(got.attribution, expected.attribution)
    assert not [e for e in got.events.events if e.type == "feed_refused"]  # no settlement delivered twice
    assert [t["tick"] for t in store.table("live", "ticks")] == list(range(len(expected.nav)))
