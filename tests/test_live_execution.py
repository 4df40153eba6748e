"""Sending order intents (live step 2) to an exchange through ccxt and a recorded Binance USDT-M futures venue (its
documented answers: POST/GET/DELETE /fapi/v1/order, openOrders, premiumIndex, and its error codes), with the real
results database: client ids, limits, approval and expiry, a lost answer looked up and never resent, partial fills,
rejects, and a kill."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("ccxt")

import requests  # noqa: E402

from basiskit.config.models import LiveConfig  # noqa: E402
from basiskit.connectors.exchanges import ExchangeAccount, OrderUnknown  # noqa: E402
from basiskit.errors import BasiskitError, ConfigError  # noqa: E402
from basiskit.execution.intents import OrderIntent  # noqa: E402
from basiskit.live.book import Holding, Observation  # noqa: E402
from basiskit.live.execution import Dispatcher, PerpExecutor, check_execute, client_id  # noqa: E402
from basiskit.live.store import LiveStore  # noqa: E402
from recorded import database_text, session_with  # noqa: E402

KEY, SECRET = "key-abcdef-123456", "secret-zyxwvu-987654"
FAPI = "fapi.binance.com"
LIMITS = LiveConfig(max_order_usd=50_000, max_day_usd=120_000, max_slippage_bps=20, max_gas_gwei=50,
                    venues=["binance"], approval_minutes=30)


class Binance:
    """A USDT-M futures venue: orders fill up to `liquidity` base units at the limit; answers as Binance documents."""

    def __init__(self, mark=3450.0, liquidity=1e9):
        self.mark, self.liquidity = mark, liquidity
        self.orders: dict[str, dict] = {}  # clientOrderId -> order
        self.placed: list[dict] = []  # every POST that reached the venue
        self.reject: tuple[int, str] | None = None  # the next POST's error (code, msg)
        self.lose_next = False  # the next POST reaches the venue, its answer is lost (a read timeout)
        self.rest = False  # orders rest on the book (NEW) instead of IOC

    def routes(self):
        return {(FAPI, "/fapi/v1/order"): self.order, (FAPI, "/fapi/v1/openOrders"): self.open_orders,
                (FAPI, "/fapi/v1/premiumIndex"): lambda q: {
                    "symbol": "ETHUSDT", "markPrice": f"{self.mark}", "indexPrice": f"{self.mark}",
                    "lastFundingRate": "0.0001", "nextFundingTime": 0, "time": 0}}

    def order(self, q):
        if q["_method"] == "POST":
            return self.post(q)
        found = self.orders.get(q.get("origClientOrderId")) or next(
            (o for o in self.orders.values() if str(o["orderId"]) == q.get("orderId")), None)
        if found is None:
            return 400, {"code": -2013, "msg": "Order does not exist."}
        if q["_method"] == "DELETE":
            found["status"] = "CANCELED"
        return found

    def post(self, q):
        if self.reject is not None:
            (code, msg), self.reject = self.reject, None
            return 400, {"code": code, "msg": msg}
        qty, price = float(q["quantity"]), float(q["price"])
        filled = 0.0 if self.rest else min(qty, self.liquidity)
        status = "NEW" if self.rest else "FILLED" if filled == qty else "EXPIRED"  # IOC: the rest expires
        order = {"orderId": 1000 + len(self.placed), "symbol": "ETHUSDT", "status": status,
                 "clientOrderId": q["newClientOrderId"], "price": q["price"], "avgPrice": f"{price if filled else 0}",
                 "origQty": q["quantity"], "executedQty": f"{filled}", "cumQuote": f"{filled * price}",
                 "timeInForce": q["timeInForce"], "type": "LIMIT", "reduceOnly": False, "side": q["side"],
                 "positionSide": "BOTH", "updateTime": 1_700_000_000_000}
        self.placed.append(dict(q))
        self.orders[q["newClientOrderId"]] = order
        if self.lose_next:
            self.lose_next = False
            raise requests.exceptions.ReadTimeout("read timed out")
        return order

    def open_orders(self, q):
        return [o for o in self.orders.values() if o["status"] == "NEW"]


def _obs(eth_usd=3450.0):
    return Observation(1_700_000_000, None, {"binance/binance/cash/USDT": Holding(100_000.0, 1.0)}, {}, {}, eth_usd)


def _setup(tmp_path, venue, execute="auto", limits=LIMITS, clock=None):
    store = LiveStore(tmp_path / "runs.db")
    store.open_session("s", "eth_basis", "accounts.yaml", {})
    session, transport = session_with(venue.routes())
    account = ExchangeAccount("binance", KEY, SECRET, None, ["ETH"], session)
    kwargs = {"clock": clock} if clock else {}
    d = Dispatcher(store, "s", execute, limits, {"binance": PerpExecutor(account, limits.max_slippage_bps)}, **kwargs)
    return store, d, transport


def _commit(store, d, k, intents, t=1_700_000_000):
    orders, alerts = d.admit(k, t, intents, _obs())
    store.commit_tick("s", k, t, None, 1.0, 1.0, {}, None, alerts, None, orders)
    return orders, alerts


def _dead_chain(tmp_path, lst_contracts: str | None, url: str = "http://127.0.0.1:9", **kwargs):
    """A session's store and a chain executor whose node is down: admitting needs no node, pricing fails."""
    from eth_account import Account

    from basiskit.connectors.chain import ChainClient
    from basiskit.live.chain_executor import ChainExecutor

    store = LiveStore(tmp_path / "runs.db")
    store.open_session("s", "eth_leveraged", "accounts.yaml", {})
    return store, ChainExecutor(ChainClient.from_url(url), Account.create(), "fund", 50.0, lst_contracts, **kwargs)


def _loop_delever(middle: str) -> list[OrderIntent]:
    """One loop de-lever step as the engine plans it: withdraw weETH, turn it into ETH (`middle`: swap or redeem),
    repay WETH; safety orders of the health_factor trigger."""
    return [OrderIntent("aave_v3", "aave_withdraw_weETH", "withdraw", 1.0, None, "hf", "aave_withdraw", "weETH",
                        trigger="health_factor", safety=True),
            OrderIntent("ethereum", f"{middle}_weETH", middle, 1.0, None, "hf", middle, "weETH", "ETH",
                        trigger="health_factor", safety=True),
            OrderIntent("aave_v3", "aave_repay_WETH", "repay", 1.0, None, "hf", "aave_repay", "WETH",
                        trigger="health_factor", safety=True)]


def sell(size, price=3450.0):
    return OrderIntent("binance", "binance:Perp:ETHUSDT", "sell", size, price, "hedge", "perp", "ETH")


def test_a_client_id_is_the_same_for_the_same_intent_and_fits_every_venue():
    ids = {client_id("s", k, i) for k in range(50) for i in range(20)}
    assert len(ids) == 1000 and client_id("s", 3, 1) == client_id("s", 3, 1) != client_id("t", 3, 1)
    assert all(len(i) == 32 and i.isalnum() and i.isascii() for i in ids)


def test_auto_sends_an_ioc_limit_at_the_mark_within_the_slippage_and_reads_the_fill(tmp_path):
    venue = Binance(mark=3450.0)
    store, d, _ = _setup(tmp_path, venue)
    _commit(store, d, 0, [sell(2.5)])
    assert d.poll() == []
    [placed] = venue.placed
    # a sell's worst price: the mark less 20 bps, on Binance's 0.01 tick
    assert (placed["side"], placed["type"], placed["timeInForce"]) == ("SELL", "LIMIT", "IOC")
    assert float(placed["quantity"]) == 2.5 and float(placed["price"]) == pytest.approx(3450.0 * 0.998, abs=0.01)
    assert placed["newClientOrderId"] == client_id("s", 0, 0)
    [o] = store.orders("s")
    assert (o["status"], o["filled"], o["notional_usd"]) == ("filled", 2.5, 2.5 * 3450.0)
    steps = [(e["step"], e["status"]) for e in store.order_log("s")]
    # re-checked at the mark of the moment it goes (the limits at that price), then sent
    assert steps == [("recheck", "approved"), ("request", "sending"), ("answer", "filled")]
    assert d.poll() == [] and len(venue.placed) == 1  # sent once


def test_a_lost_answer_is_looked_up_by_client_id_and_never_resent(tmp_path):
    venue = Binance()
    venue.lose_next = True
    store, d, transport = _setup(tmp_path, venue)
    _commit(store, d, 0, [sell(1.0)])
    assert d.poll() == []
    assert len(venue.placed) == 1  # it reached the venue once; the lookup found it filled
    lookups = [u for u in transport.seen if "origClientOrderId=" + client_id("s", 0, 0) in u]
    assert len(lookups) == 1 and store.orders("s")[0]["status"] == "filled"
    assert [e["step"] for e in store.order_log("s")] == ["recheck", "request", "no_answer", "lookup"]
    # a session that died between the request and its answer finds the order `sending` on restart: looked up first
    venue.lose_next = True
    _commit(store, d, 1, [sell(0.5)])
    # the dispatcher's own steps up to the request, then the process dies with the answer in flight
    o = store.orders_in("s", ("approved",))[0]
    ex = d.executors["binance"]
    request = ex.request(o)
    store.order_step("s", o.client_id, "sending", "request", request)
    with pytest.raises(OrderUnknown):
        ex.send(o, request)
    store2, d2, _ = _setup(tmp_path, venue)  # the restart
    assert d2.poll() == [] and len(venue.placed) == 2
    assert store2.orders("s")[1]["status"] == "filled"


def test_an_order_the_venue_never_got_is_lost_not_resent(tmp_path):
    venue = Binance()
    store, d, _ = _setup(tmp_path, venue)
    _commit(store, d, 0, [sell(1.0)])
    store.order_step("s", client_id("s", 0, 0), "sending", "request", {})  # died before the request left
    alerts = d.poll()
    assert [a.kind for a in alerts] == ["order_lost"] and venue.placed == []
    assert store.orders("s")[0]["status"] == "lost"


def test_partial_fills_and_rejects_are_events_and_alerts(tmp_path):
    venue = Binance(liquidity=0.4)
    store, d, _ = _setup(tmp_path, venue)
    _commit(store, d, 0, [sell(1.0)])
    assert d.poll() == []  # a partial fill is an event (its remainder is the next plan's), not an alert
    o = store.orders("s")[0]
    assert (o["status"], o["filled"]) == ("partial", 0.4)
    venue.reject = (-4164, "Order's notional must be no smaller than 20 (unless you choose reduce only).")
    _commit(store, d, 1, [sell(0.001)])
    [alert] = d.poll()
    assert alert.kind == "order_refused" and "InvalidOrder" in alert.message and "notional" in alert.message
    venue.reject = (-2019, "Margin is insufficient.")
    _commit(store, d, 2, [sell(10.0)])
    [alert] = d.poll()
    assert alert.kind == "order_refused" and "InsufficientFunds" in alert.message
    assert [o["status"] for o in store.orders("s")] == ["partial", "refused", "refused"]
    logged = database_text(tmp_path / "runs.db") + "".join(a.message for a in [alert])
    assert KEY not in logged and SECRET not in logged and "InsufficientFunds" in logged


def test_limits_block_an_order_before_it_is_sent(tmp_path):
    venue = Binance()
    store, d, _ = _setup(tmp_path, venue)
    # 20 ETH = 69,000 USD > max_order_usd; 3 orders of 14 ETH (48,300 USD) pass one by one until the day's 120,000
    _, alerts = _commit(store, d, 0, [sell(20.0), sell(14.0), sell(14.0), sell(14.0),
                                      OrderIntent("bybit", "bybit:Perp:ETHUSDT", "sell", 1.0, 3450.0, "hedge", "perp",
                                                  "ETH")])
    assert [a.kind for a in alerts] == ["limit", "limit"]
    assert "max_order_usd" in alerts[0].message and "max_day_usd" in alerts[1].message
    d.poll()  # no executor for bybit here: that one is the operator's
    assert [o["status"] for o in store.orders("s")] == ["blocked", "filled", "filled", "blocked", "manual"]
    assert len(venue.placed) == 2
    d.limits = LIMITS.model_copy(update={"venues": ["okx"], "max_day_usd": 1e9})
    _, alerts = _commit(store, d, 1, [sell(1.0)])
    assert [a.message.split(": ", 1)[1] for a in alerts] == ["venue binance is not in live.venues (okx)"]


def test_auto_without_limits_is_refused_naming_each(tmp_path):
    with pytest.raises(ConfigError) as refused:
        check_execute("auto", LiveConfig(max_order_usd=1000))
    text = str(refused.value)
    assert all(f"live.{k}" in text for k in ("max_day_usd", "max_slippage_bps", "max_gas_gwei", "venues"))
    assert "live.max_order_usd" not in text
    check_execute("off", LiveConfig())
    with pytest.raises(ConfigError, match="--execute: 'sometimes'"):
        check_execute("sometimes", LIMITS)


def test_confirm_sends_nothing_until_approved_and_drops_an_expired_batch(tmp_path):
    now = [1_700_000_000.0]
    venue = Binance()
    store, d, _ = _setup(tmp_path, venue, execute="confirm", clock=lambda: now[0])
    _commit(store, d, 0, [sell(1.0), sell(2.0)])
    assert d.poll() == [] and venue.placed == []
    first, second = (o["client_id"] for o in store.orders("s"))
    with pytest.raises(Exception, match="not awaiting approval"):
        store.decide("s", 0, ["bk-nope"], True, "test")
    store.decide("s", 0, [first], True, "operator")
    store.decide("s", 0, [second], False, "operator")
    d.poll()
    assert [p["newClientOrderId"] for p in venue.placed] == [first]
    assert [o["status"] for o in store.orders("s")] == ["filled", "rejected"]
    # a batch no one approves within approval_minutes is dropped
    _commit(store, d, 1, [sell(1.5)])
    now[0] += 29 * 60
    assert d.poll() == []
    now[0] += 2 * 60
    assert [a.kind for a in d.poll()] == ["expired"] and store.orders("s")[2]["status"] == "expired"
    assert len(venue.placed) == 1


def test_a_kill_cancels_the_open_order_and_halts_until_resumed(tmp_path):
    venue = Binance()
    venue.rest = True  # the order rests on the book
    store, d, transport = _setup(tmp_path, venue)
    _commit(store, d, 0, [sell(1.0)])
    d.poll()
    assert store.orders("s")[0]["status"] == "open"
    kill_file = tmp_path / "KILL"
    d.kill_file = kill_file
    kill_file.touch()  # an operator's kill switch
    _commit(store, d, 1, [sell(2.0)])
    alerts = d.poll()
    assert [a.kind for a in alerts] == ["halted"] and "kill file" in alerts[0].message
    assert venue.orders[client_id("s", 0, 0)]["status"] == "CANCELED"
    assert any(u.startswith(f"https://{FAPI}/fapi/v1/order?") for u in transport.seen)
    assert [o["status"] for o in store.orders("s")] == ["cancelled", "halted"] and len(venue.placed) == 1
    assert store.status("s")["status"] == "halted"
    kill_file.unlink()
    _commit(store, d, 2, [sell(0.5)])
    assert store.orders("s")[2]["status"] == "halted"  # nothing is admitted while halted
    store.resume("s")
    _commit(store, d, 3, [sell(0.5)])
    d.poll()
    assert store.orders("s")[3]["status"] == "open" and len(venue.placed) == 2


def test_an_operator_approves_rejects_kills_and_resumes_over_the_api(tmp_path):
    from basiskit.data.dataset import SAMPLE_DIR
    from server import Server

    venue = Binance()
    store, d, _ = _setup(tmp_path, venue, execute="confirm")
    _commit(store, d, 0, [sell(1.0), sell(2.0), sell(3.0)])
    first, second, third = (o["client_id"] for o in store.orders("s"))
    api = Server(tmp_path / "runs.db", SAMPLE_DIR, tmp_path / "server.log").start()
    try:
        with api.client("read") as reader:
            assert reader.post("/live/s/approve", json={"plan": 0, "ids": [first]}).status_code == 403
        with api.client() as operator:
            r = operator.post("/live/s/approve", json={"plan": 0, "ids": [first, "bk" + "0" * 30]})
            assert r.status_code == 409 and "not awaiting approval" in r.json()["detail"]
            assert operator.post("/live/s/approve", json={"plan": 0, "ids": [first]}).json() == {
                "decided": [first], "status": "approved"}
            assert operator.post("/live/s/reject", json={"plan": 0, "ids": [second]}).json()["decided"] == [second]
            assert operator.post("/live/nope/approve", json={"plan": 0}).status_code == 404
            assert operator.post("/live/s/kill").json()["status"] == "halted"
            got = operator.get("/live/s/orders").json()
            assert [o["status"] for o in got] == ["approved", "rejected", "awaiting"]
            assert got[0]["client_id"] == first and got[0]["notional_usd"] == pytest.approx(3450.0)
            assert d.poll()[0].kind == "halted" and venue.placed == []  # killed before anything went
            assert [o["status"] for o in operator.get("/live/s/orders").json()] == ["halted", "rejected", "halted"]
            assert operator.post("/live/s/resume").json()["status"] == "idle"
    finally:
        api.stop()
    assert not store.is_halted("s")


def test_live_run_auto_without_limits_exits_2_naming_each(tmp_path):
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text("exchanges:\n  - {venue: binance, api_key_env: BN_KEY, secret_env: BN_SECRET}\n")
    env = {**os.environ, "BN_KEY": KEY, "BN_SECRET": SECRET, "BASISKIT_DB": str(tmp_path / "runs.db")}
    r = subprocess.run([sys.executable, "-m", "basiskit.cli", "live", "run", "eth_basis", "--accounts", str(accounts),
                        "--execute", "auto", "--set", "live.max_order_usd=1000"], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 2, r.stderr
    for key in ("live.max_day_usd", "live.max_slippage_bps", "live.max_gas_gwei", "live.venues"):
        assert key in r.stderr
    assert "live.max_order_usd" not in r.stderr and "Traceback" not in r.stderr and SECRET not in r.stderr


def test_the_live_page_approves_and_kills_as_an_operator(tmp_path, browser):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from basiskit.data.dataset import SAMPLE_DIR
    from server import Server
    from test_dashboard import open_page

    venue = Binance()
    store, d, _ = _setup(tmp_path, venue, execute="confirm")
    store.commit_tick("s", 0, 1_700_000_000, None, 1.0, 1.0, {"holdings": {}, "risk": {}}, None, [], None,
                      d.admit(0, 1_700_000_000, [sell(1.0), sell(2.0)], _obs())[0])
    api = Server(tmp_path / "runs.db", SAMPLE_DIR, tmp_path / "server.log").start()
    try:
        open_page(browser, api, "/ui/sessions/live/s")
        wait = WebDriverWait(browser, 30, ignored_exceptions=(StaleElementReferenceException,))  # re-rendered rows

        def statuses(driver):
            return [c.text for c in driver.find_elements(By.CSS_SELECTOR, '#live-orders [data-col="status"]')]

        wait.until(lambda dr: statuses(dr) == ["awaiting", "awaiting"])
        browser.find_element(By.ID, "live-approve").click()
        wait.until(lambda dr: statuses(dr) == ["approved", "approved"])
        assert [o["status"] for o in api.get("/live/s/orders").json()] == ["approved", "approved"]
        browser.find_element(By.ID, "live-kill").click()
        wait.until(lambda dr: "HALTED" in dr.find_element(By.ID, "live-status").text)
        assert store.is_halted("s") and venue.placed == []
        assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        api.stop()


# --- Bybit (v5) and OKX (v5) answer an order with its ids only: the fill is read back by client id ---------------
def _ok_bybit(result):
    return {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": 1_700_000_000_000}


class Bybit:
    def __init__(self):
        self.orders, self.lose_next = {}, False

    def routes(self):
        return {("api.bybit.com", "/v5/order/create"): self.create,
                ("api.bybit.com", "/v5/order/realtime"): lambda q: _ok_bybit(
                    {"category": "linear", "nextPageCursor": "",
                     "list": [o for o in self.orders.values() if o["orderLinkId"] == q.get("orderLinkId")]}),
                ("api.bybit.com", "/v5/order/history"): lambda q: _ok_bybit(
                    {"category": "linear", "nextPageCursor": "", "list": []}),
                ("api.bybit.com", "/v5/market/tickers"): lambda q: _ok_bybit({"category": "linear", "list": [
                    {"symbol": "ETHUSDT", "lastPrice": "3450.0", "markPrice": "3450.0", "indexPrice": "3450.0",
                     "bid1Price": "3449.9", "ask1Price": "3450.1", "volume24h": "1", "turnover24h": "1"}]}),
                ("api.bybit.com", "/v5/user/query-api"): lambda q: _ok_bybit(
                    {"id": "1", "readOnly": 0, "unified": 0, "uta": 1, "permissions": {}, "isMaster": True}),
                ("api.bybit.com", "/v5/account/info"): lambda q: _ok_bybit(
                    {"unifiedMarginStatus": 5, "marginMode": "REGULAR_MARGIN", "updatedTime": "1700000000000"})}

    def create(self, q):
        qty, px = float(q["qty"]), float(q["price"])
        self.orders[q["orderLinkId"]] = {
            "orderId": f"b{len(self.orders) + 1}", "orderLinkId": q["orderLinkId"], "symbol": q["symbol"],
            "price": q["price"], "qty": q["qty"], "side": q["side"], "orderStatus": "Filled", "cumExecQty": q["qty"],
            "cumExecValue": f"{qty * px}", "avgPrice": q["price"], "cumExecFee": f"{qty * px * 0.00055}",
            "timeInForce": q["timeInForce"], "orderType": q["orderType"], "leavesQty": "0", "reduceOnly": False,
            "createdTime": "1700000000000", "updatedTime": "1700000000001", "category": "linear"}
        if self.lose_next:
            self.lose_next = False
            raise requests.exceptions.ReadTimeout("read timed out")
        return _ok_bybit({"orderId": f"b{len(self.orders)}", "orderLinkId": q["orderLinkId"]})


class Okx:
    def __init__(self):
        self.orders, self.lose_next = {}, False

    def routes(self):
        return {("www.okx.com", "/api/v5/trade/order"): self.order,  # ccxt places through batch-orders
                ("www.okx.com", "/api/v5/trade/batch-orders"): self.order,
                ("www.okx.com", "/api/v5/public/mark-price"): lambda q: {"code": "0", "msg": "", "data": [
                    {"instType": "SWAP", "instId": "ETH-USDT-SWAP", "markPx": "3450.0", "ts": "1700000000000"}]}}

    def order(self, q):
        if q["_method"] == "GET":
            found = self.orders.get(q.get("clOrdId"))
            return {"code": "0", "msg": "", "data": [found]} if found else \
                (200, {"code": "51603", "msg": "Order does not exist", "data": []})
        sz, px = float(q["sz"]), float(q["px"])
        self.orders[q["clOrdId"]] = {
            "instType": "SWAP", "instId": q["instId"], "ordId": f"o{len(self.orders) + 1}", "clOrdId": q["clOrdId"],
            "px": q["px"], "sz": q["sz"], "side": q["side"], "ordType": q["ordType"], "state": "filled",
            "accFillSz": q["sz"], "fillSz": q["sz"], "avgPx": q["px"], "fee": f"{-sz * 0.1 * px * 0.0005}",
            "feeCcy": "USDT", "tdMode": q.get("tdMode", "cross"), "cTime": "1700000000000", "uTime": "1700000000001"}
        if self.lose_next:
            self.lose_next = False
            raise requests.exceptions.ReadTimeout("read timed out")
        return {"code": "0", "msg": "", "data": [{"ordId": f"o{len(self.orders)}", "clOrdId": q["clOrdId"],
                                                   "sCode": "0", "sMsg": "", "tag": ""}]}


@pytest.mark.parametrize("name, venue_class", [("bybit", Bybit), ("okx", Okx)])
def test_bybit_and_okx_fills_are_read_back_and_a_lost_answer_is_looked_up(name, venue_class, tmp_path):
    venue = venue_class()
    store = LiveStore(tmp_path / "runs.db")
    store.open_session("s", "eth_basis", "accounts.yaml", {})
    session, transport = session_with(venue.routes())
    account = ExchangeAccount(name, KEY, SECRET, "pass-phrase-1" if name == "okx" else None, ["ETH"], session)
    limits = LIMITS.model_copy(update={"venues": [name]})
    d = Dispatcher(store, "s", "auto", limits, {name: PerpExecutor(account, limits.max_slippage_bps)})
    intent = OrderIntent(name, f"{name}:Perp:ETHUSDT", "sell", 2.5, 3450.0, "hedge", "perp", "ETH")
    orders, _ = d.admit(0, 1_700_000_000, [intent], _obs())
    store.commit_tick("s", 0, 1_700_000_000, None, 1.0, 1.0, {}, None, [], None, orders)
    assert d.poll() == []
    [o] = store.orders("s")
    [placed] = venue.orders.values()
    # OKX sizes in contracts of 0.1 ETH: 25 contracts; the sell's limit is the mark less 20 bps
    assert float(placed["sz" if name == "okx" else "qty"]) == (25.0 if name == "okx" else 2.5)
    assert float(placed["px" if name == "okx" else "price"]) == pytest.approx(3450.0 * 0.998, abs=0.01)
    assert (o["status"], o["filled"], o["average"]) == ("filled", 2.5, pytest.approx(3450.0 * 0.998, abs=0.01))
    assert placed["clOrdId" if name == "okx" else "orderLinkId"] == client_id("s", 0, 0)
    # the answer to the next one is lost: looked up by client id (found, filled), never sent again
    venue.lose_next = True
    orders, _ = d.admit(1, 1_700_003_600, [intent], _obs())
    store.commit_tick("s", 1, 1_700_003_600, None, 1.0, 1.0, {}, None, [], None, orders)
    assert d.poll() == [] and len(venue.orders) == 2
    assert [e["step"] for e in store.order_log("s")][-3:] == ["request", "no_answer", "lookup"]
    assert store.orders("s")[1]["status"] == "filled"
    assert SECRET not in database_text(tmp_path / "runs.db") and "pass-phrase-1" not in "".join(transport.seen)


def test_an_rpc_failure_while_sending_never_stores_the_rpc_urls_key(tmp_path):
    """A provider's key sits in its RPC URL's path; a failure while pricing or sending an on-chain order is stored
    and alerted through the executor's scrubbing, whatever raised it."""
    store, ex = _dead_chain(tmp_path, "stand-in", "http://127.0.0.1:9/v3/key-in-the-path")
    limits = LIMITS.model_copy(update={"venues": ["aave_v3"]})
    d = Dispatcher(store, "s", "auto", limits, {"aave_v3": ex})
    intent = OrderIntent("aave_v3", "aave_supply_weETH", "supply", 1.0, None, "strategy", "aave_supply", "weETH")
    obs = Observation(1_700_000_000, 1, {"fund/ethereum/token/weeth": Holding(1.0, 3150.0)}, {}, {}, 3000.0)
    orders, _ = d.admit(0, 1_700_000_000, [intent], obs)
    store.commit_tick("s", 0, 1_700_000_000, None, 1.0, 1.0, {}, None, [], None, orders)
    alerts = d.poll()
    assert [a.kind for a in alerts] == ["order_error"] and "ConnectionError" in alerts[0].message
    assert "127.0.0.1" in alerts[0].message  # where it failed is shown; the key is not
    assert "key-in-the-path" not in database_text(tmp_path / "runs.db") + "".join(a.message for a in alerts)


# --- safety first, nothing stale (live step 3) ---------------------------------------------------------------------
def safety_sell(size, trigger="margin_ratio", price=3450.0):
    return OrderIntent("binance", "binance:Perp:ETHUSDT", "sell", size, price, f"{trigger} 0.12 >= 0.1", "perp", "ETH",
                       trigger=trigger, safety=True)


def _plan(store, d, k, intents, t=1_700_000_000, obs=None):
    """A tick's plan as the session commits it: admitted, the plans before superseded, committed."""
    orders, alerts = d.admit(k, t, intents, obs or _obs())
    alerts += d.supersede(k, orders)
    store.commit_tick("s", k, t, None, 1.0, 1.0, {}, None, alerts, None, orders)
    return orders, alerts


def test_a_safety_order_is_never_blocked_by_the_order_or_day_limits_but_counted_and_alerted(tmp_path):
    venue = Binance()
    store, d, _ = _setup(tmp_path, venue)
    # 40 ETH = 138,000 USD: over max_order_usd (50,000) and the day's 120,000; a voluntary order of the same size is not
    orders, alerts = _commit(store, d, 0, [sell(40.0), safety_sell(40.0)])
    assert [o.status for o in orders] == ["blocked", "approved"]
    safety = next(a for a in alerts if a.kind == "safety_order")
    assert "live.max_order_usd" in safety.message and "live.max_day_usd" in safety.message
    assert d.poll() == []
    assert [float(p["quantity"]) for p in venue.placed] == [40.0]
    assert store.orders("s")[1]["status"] == "filled"
    # it counts against the day: a small voluntary order after it no longer fits (138,000 + 3,450 > 120,000)
    orders, alerts = _commit(store, d, 1, [sell(1.0)])
    assert orders[0].status == "blocked" and "max_day_usd" in alerts[0].message
    # live.safety_max_order_usd, when set, caps safety orders
    d.limits = LIMITS.model_copy(update={"safety_max_order_usd": 100_000})
    orders, alerts = _commit(store, d, 2, [safety_sell(40.0)])
    assert orders[0].status == "blocked" and "live.safety_max_order_usd" in alerts[0].message
    assert len(venue.placed) == 1


def test_with_confirm_a_safety_order_goes_at_once_unless_the_config_wants_approval(tmp_path):
    venue = Binance()
    store, d, _ = _setup(tmp_path, venue, execute="confirm")
    orders, alerts = _commit(store, d, 0, [safety_sell(1.0), sell(1.0)])
    assert [o.status for o in orders] == ["approved", "awaiting"]
    assert [a.kind for a in alerts] == ["safety_order", "approval_needed"]
    d.poll()
    assert [float(p["quantity"]) for p in venue.placed] == [1.0] and store.orders("s")[1]["status"] == "awaiting"
    d.limits = LIMITS.model_copy(update={"safety_needs_approval": True})
    orders, _ = _commit(store, d, 1, [safety_sell(2.0)])
    assert orders[0].status == "awaiting"


def test_an_approved_order_not_sent_within_its_ttl_expires(tmp_path):
    now = [1_700_000_000.0]
    venue = Binance()
    store, d, _ = _setup(tmp_path, venue, execute="confirm", clock=lambda: now[0])
    _plan(store, d, 0, [sell(1.0), sell(2.0)])
    store.decide("s", 0, None, True, "operator", at=now[0])
    assert {o.approved_at for o in store.orders_in("s")} == {now[0]}
    now[0] += LIMITS.approved_ttl_minutes * 60 + 1  # approved, and nothing sent it since (the session was down)
    alerts = d.poll()
    assert [a.kind for a in alerts] == ["expired"] and "approved_ttl_minutes" in alerts[0].message
    assert venue.placed == [] and {o["status"] for o in store.orders("s")} == {"expired"}


def test_a_plan_whose_reading_went_stale_waits_for_a_fresh_one(tmp_path):
    now = [1_700_000_000.0]
    venue = Binance()
    store, d, _ = _setup(tmp_path, venue, execute="confirm", clock=lambda: now[0])
    _plan(store, d, 0, [sell(1.0)])
    now[0] += LIMITS.fresh_reading_seconds + 1  # the operator approves a minute after the reading
    store.decide("s", 0, None, True, "operator", at=now[0])
    assert d.poll() == [] and venue.placed == [] and d.stale_plan
    # the session reads and plans again: the same order, so the approval stands and it goes
    orders, alerts = _plan(store, d, 1, [sell(1.0 * 1.01)])
    assert orders[0].status == "approved" and [a.kind for a in alerts][-1] == "approval_carried"
    d.poll()
    assert [p["newClientOrderId"] for p in venue.placed] == [client_id("s", 1, 0)]
    assert store.orders("s")[0]["status"] == "expired"
    # a re-plan that differs keeps no approval: the operator decides on the new plan
    _plan(store, d, 2, [sell(3.0)])
    now[0] += LIMITS.fresh_reading_seconds + 1
    store.decide("s", 2, None, True, "operator", at=now[0])
    d.poll()
    orders, alerts = _plan(store, d, 3, [sell(5.0)])
    assert orders[0].status == "awaiting" and "superseded" in [a.kind for a in alerts]
    assert len(venue.placed) == 1


def test_approving_plan_a_never_sends_plan_b(tmp_path):
    venue = Binance()
    store, d, _ = _setup(tmp_path, venue, execute="confirm")
    _plan(store, d, 0, [sell(1.0)])  # plan A, on the operator's screen
    _plan(store, d, 1, [sell(2.0), sell(3.0)])  # plan B arrives meanwhile
    with pytest.raises(Exception, match="not awaiting approval in plan 0|plan 0 has no order awaiting") as refused:
        store.decide("s", 0, None, True, "operator")
    assert "latest plan is 1" in str(refused.value)
    d.poll()
    assert venue.placed == [] and [o["status"] for o in store.orders("s")] == ["expired", "awaiting", "awaiting"]
    # B's orders, by plan and id: exactly those go
    second = store.orders("s")[2]["client_id"]
    with pytest.raises(Exception, match="not awaiting approval in plan 0"):
        store.decide("s", 0, [second], True, "operator")
    store.decide("s", 1, [second], True, "operator")
    d.poll()
    assert [p["newClientOrderId"] for p in venue.placed] == [second]


def test_the_limit_is_checked_at_the_price_an_order_goes_at(tmp_path):
    """Planned at 3,450 (14 ETH = 48,300 USD under the 50,000 limit); by the time it goes the mark is 30% up
    (62,790 USD): refused at that value."""
    venue = Binance(mark=3450.0)
    store, d, _ = _setup(tmp_path, venue, execute="confirm")
    _plan(store, d, 0, [sell(14.0)])
    assert store.orders("s")[0]["notional_usd"] == pytest.approx(48_300.0)
    store.decide("s", 0, None, True, "operator")
    venue.mark = 3450.0 * 1.3
    alerts = d.poll()
    assert [a.kind for a in alerts] == ["limit"] and "62,790.00 USD > live.max_order_usd 50,000.00" in alerts[0].message
    assert venue.placed == [] and store.orders("s")[0]["status"] == "blocked"


def test_a_manual_on_chain_step_holds_the_plans_other_on_chain_steps_and_the_plan_says_so(tmp_path):
    # no LST contracts it can mint with: a stake is the operator's; the supply and borrow after it build on it
    store, ex = _dead_chain(tmp_path, None)
    limits = LIMITS.model_copy(update={"venues": ["aave_v3", "ethereum"]})
    d = Dispatcher(store, "s", "auto", limits, {"aave_v3": ex, "ethereum": ex})
    intents = [OrderIntent("ethereum", "stake_weETH", "stake", 1.0, None, "idle_cash", "stake", "ETH", "weETH"),
               OrderIntent("aave_v3", "aave_supply_weETH", "supply", 0.95, None, "idle_cash", "aave_supply", "weETH"),
               OrderIntent("aave_v3", "aave_borrow_WETH", "borrow", 0.5, None, "idle_cash", "aave_borrow", "WETH")]
    obs = Observation(1_700_000_000, 1, {"fund/ethereum/token/weeth": Holding(0.0, 3150.0)}, {}, {}, 3000.0)
    orders, alerts = d.admit(0, 1_700_000_000, intents, obs)
    assert [o.status for o in orders] == ["manual", "blocked", "blocked"]
    assert all(o.note.startswith(f"waits for {orders[0].client_id}") for o in orders[1:])
    [alert] = alerts
    assert alert.kind == "manual_step" and alert.details["waiting"] == [o.client_id for o in orders[1:]]
    assert "the plan's 2 other on-chain order(s) wait for it" in alert.message
    # a loop de-lever where the swap is the operator's: the withdraw before it is held too (alone it lowers the HF)
    delever = _loop_delever("swap")
    ex.lst_contracts = None
    orders, alerts = d.admit(1, 1_700_003_600, delever, obs)
    assert [o.status for o in orders] == ["blocked", "manual", "blocked"]
    assert orders[0].note.startswith(f"held: {orders[1].client_id}") and orders[0].approved_at is None
    assert [a.kind for a in alerts] == ["manual_step"]
    assert alerts[0].details["waiting"] == [orders[0].client_id, orders[2].client_id]


def test_a_flash_loan_bundle_counts_once_at_its_net_exposure_change(tmp_path):
    """A 339k USD entry levered to LTV 0.85 by one bundle: 2.26M of weETH supplied against 1.92M of WETH borrowed.
    Its steps' notionals add to ~6M; the bundle counts 339k against live.max_day_usd and passes 1e6."""
    store, ex = _dead_chain(tmp_path, "stand-in", flash_receiver="0x" + "11" * 20)
    # the order limit holds a bundle to its largest step (the 2.26M supply), the day limit to its net change
    limits = LIMITS.model_copy(update={"venues": ["aave_v3", "ethereum"], "max_order_usd": 2.5e6,
                                       "max_day_usd": 1e6})
    d = Dispatcher(store, "s", "auto", limits, {"aave_v3": ex, "ethereum": ex})
    eth, weeth = 3000.0, 3150.0
    equity = 339_000 / eth  # ETH
    collateral, debt = equity / (1 - 0.85), equity / (1 - 0.85) * 0.85
    b = "flash_loan_leverage#1"
    intents = [OrderIntent("ethereum", "stake_weETH", "stake", collateral, None, "idle_cash", "stake", "ETH", "weETH",
                           bundle=b),
               OrderIntent("aave_v3", "aave_supply_weETH", "supply", collateral * eth / weeth, None, "idle_cash",
                           "aave_supply", "weETH", bundle=b),
               OrderIntent("aave_v3", "aave_borrow_WETH", "borrow", debt, None, "idle_cash", "aave_borrow", "WETH",
                           bundle=b),
               OrderIntent("aave_v3", "flash_loan_leverage", "flash_loan", debt, None, "idle_cash", "flash_loan",
                           "WETH", bundle=b)]
    obs = Observation(1_700_000_000, 1, {"fund/ethereum/token/weeth": Holding(0.0, weeth)}, {}, {}, eth)
    orders, alerts = d.admit(0, 1_700_000_000, intents, obs)
    assert sum(o.notional_usd for o in orders) > 6e6
    assert [o.status for o in orders] == ["bundled", "bundled", "bundled", "approved"] and alerts == []
    assert [o.counted_usd for o in orders[:3]] == [0.0, 0.0, 0.0]
    assert orders[3].counted_usd == pytest.approx(collateral * eth - debt * eth, rel=1e-12)
    assert orders[3].counted_usd == pytest.approx(339_000, rel=1e-9)
    # the node down when it would go: the bundle is priced again at the next poll, its steps still with it
    store.commit_tick("s", 0, 1_700_000_000, 1, 1.0, 1.0, {}, None, alerts, None, orders)
    d.poll()
    d.poll()
    assert [o["status"] for o in store.orders("s")] == ["bundled", "bundled", "bundled", "approved"]
    assert sum(e["step"] == "not_priced" for e in store.order_log("s")) == 2
    # a re-lever of the same equity changes it by ~0 USD net: the order limit still bounds it (by its largest step)
    d.limits = limits.model_copy(update={"max_order_usd": 1e6})
    orders, alerts = d.admit(1, 1_700_003_600, intents, obs)
    assert [o.status for o in orders] == ["blocked"] * 4
    gross = collateral * eth  # the stake of 2.26M USD of ETH
    assert [a.kind for a in alerts] == ["limit"]
    assert f"largest step {gross:,.2f} USD > live.max_order_usd 1,000,000.00" in alerts[0].message


def test_live_kill_cancels_the_open_orders_of_a_session_that_is_not_running(tmp_path, monkeypatch):
    """The session died with an order resting on the book: `live kill` (carried out by the command itself, the
    session's process being gone) cancels it at the venue and halts the session."""
    from basiskit.cli.live import _kill_here

    venue = Binance()
    venue.rest = True
    store, d, _ = _setup(tmp_path, venue)
    _commit(store, d, 0, [sell(1.0)])
    d.poll()
    assert store.orders("s")[0]["status"] == "open"  # ... and the session's process is gone
    monkeypatch.setenv("BN_KEY", KEY)
    monkeypatch.setenv("BN_SECRET", SECRET)
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text("exchanges:\n  - {venue: binance, api_key_env: BN_KEY, secret_env: BN_SECRET}\n")
    store.kill("s", "basiskit live kill")

    def down(q):
        raise requests.exceptions.ConnectionError("connection refused")

    # the venue down: the command says what it could not cancel, and the kill stays pending (run it again)
    session, _ = session_with({**venue.routes(), (FAPI, "/fapi/v1/openOrders"): down})
    with pytest.raises(BasiskitError, match="open orders NOT cancelled at binance .*run `basiskit live kill s` again"):
        _kill_here(store, "s", accounts, {"binance": session})
    assert store.kill_pending("s") == "basiskit live kill" and store.orders("s")[0]["status"] == "open"
    session, transport = session_with(venue.routes())
    _kill_here(store, "s", accounts, {"binance": session})
    assert venue.orders[client_id("s", 0, 0)]["status"] == "CANCELED"
    assert store.orders("s")[0]["status"] == "cancelled" and store.is_halted("s")
    assert store.kill_pending("s") is None  # carried out: a session resumed later does not cancel again
    assert [a["kind"] for a in store.alerts("s")][-1] == "halted"


def test_the_alert_levels_of_a_reading():
    """HF under its level, a venue's maintenance margin / equity at its level, a perp within its distance of its
    liquidation price, the wallets' ETH under the gas reserve; each computed from the reading by hand."""
    from basiskit.live.session import LiveLimits, breaches

    perp = Holding(-10.0, 3000.0 - 3100.0, 1.0, {"mark_price": 3000.0, "liquidation_price": 3240.0,
                                                 "entry_price": 3100.0})
    obs = Observation(1_700_000_000, 1, {"binance/binance/perp/ETH": perp,
                                         "fund/ethereum/native/ETH": Holding(0.01, 3000.0)}, {},
                      {"fund": {"health_factor": 1.04}, "binance": {"equity_usd": 2_000.0, "maintenance_usd": 450.0}},
                      3000.0)
    limits = LiveLimits(1.0, health_factor=1.05, margin_ratio=0.2, liq_distance=0.10)
    found = breaches(obs, limits, reserve_eth=0.02)
    assert set(found) == {"health_factor:fund", "margin_ratio:binance", "liq_distance:binance/binance/perp/ETH",
                          "gas_reserve"}
    assert found["margin_ratio:binance"][2]["margin_ratio"] == 450.0 / 2_000.0
    assert found["liq_distance:binance/binance/perp/ETH"][2]["liq_distance"] == pytest.approx(240.0 / 3000.0)
    assert found["gas_reserve"][0] == "low_gas" and found["gas_reserve"][2]["eth"] == 0.01
    calm = LiveLimits(1.0, health_factor=1.03, margin_ratio=0.25, liq_distance=0.05)
    assert breaches(obs, calm, reserve_eth=0.005) == {}


def test_an_on_chain_step_goes_only_after_the_ones_before_it_filled(tmp_path):
    """A loop de-lever (withdraw, redeem, repay): the withdraw's pricing fails (the RPC is down) and it stays
    approved: the redeem and the repay wait for it instead of being dropped (so the withdraw never goes alone at the
    next poll); and with confirm, approving only the repay sends nothing before the withdraw, approving only the
    withdraw sends nothing before the rest is approved."""
    store, ex = _dead_chain(tmp_path, "stand-in")
    limits = LIMITS.model_copy(update={"venues": ["aave_v3", "ethereum"], "safety_needs_approval": True})
    steps = _loop_delever("redeem")
    obs = Observation(1_700_000_000, 1, {"fund/ethereum/token/weeth": Holding(0.0, 3150.0)}, {}, {}, 3000.0)
    for execute, tick, chosen in (("auto", 0, None), ("confirm", 1, 2), ("confirm", 2, 0)):
        d = Dispatcher(store, "s", execute, limits, {"aave_v3": ex, "ethereum": ex})
        orders, alerts = d.admit(tick, 1_700_000_000 + tick, steps, obs)
        store.commit_tick("s", tick, 1_700_000_000 + tick, 1, 1.0, 1.0, {}, None, alerts, None, orders)
        if execute == "confirm":
            store.decide("s", tick, [orders[chosen].client_id], True, "operator")
        d.poll()
        got = store.orders_in("s", None, tick=tick)
        tried = {e["client_id"] for e in store.order_log("s") if e["step"] == "not_priced"}
        if execute == "auto":
            assert [o.status for o in got] == ["approved"] * 3  # the withdraw could not be priced: all wait
            assert tried == {orders[0].client_id}
            d.poll()  # priced again at each poll; not a failure that re-plans (nor one that backs off)
            assert d.replan_at is None and [o.status for o in store.orders_in("s", None, tick=0)] == ["approved"] * 3
        elif chosen == 2:
            assert [o.status for o in got] == ["awaiting", "awaiting", "approved"]
            assert orders[2].client_id not in tried  # never priced: the withdraw before it is not approved
        else:  # only the withdraw approved: it waits for the redeem and the repay (alone it lowers the HF)
            assert [o.status for o in got] == ["approved", "awaiting", "awaiting"]
            assert orders[0].client_id not in tried


def test_a_stale_plan_is_planned_again_unless_it_is_safety_orders_only(tmp_path):
    """Two minutes after its reading (live.fresh_reading_seconds 60): a hedge waits for a fresh plan; a de-lever
    (safety orders only) goes on its reading, a re-plan would only delay it."""
    venue = Binance()
    now = [1_700_000_000.0]
    store, d, _ = _setup(tmp_path, venue, clock=lambda: now[0])
    _commit(store, d, 0, [sell(1.0)])
    now[0] += 120
    d.poll()
    assert d.stale_plan and venue.placed == [] and store.orders("s")[0]["status"] == "approved"
    d.stale_plan = False
    safety = OrderIntent("binance", "binance:Perp:ETHUSDT", "buy", 1.0, 3450.0, "margin", "perp", "ETH",
                         trigger="margin_ratio", safety=True)
    _commit(store, d, 1, [safety])
    now[0] += 120
    d.poll()
    assert not d.stale_plan and [p["side"] for p in venue.placed] == ["BUY"]
    assert store.orders("s")[1]["status"] == "filled"


def test_a_failed_safety_order_is_planned_again_within_a_minute_then_backs_off(tmp_path):
    """The venue refuses a margin fix: the session is asked to read and plan again 60 s later (not at the next
    hour), 120 s after a second refusal; a fill ends the back-off."""
    venue = Binance()
    now = [1_700_000_000.0]
    store, d, _ = _setup(tmp_path, venue, clock=lambda: now[0])
    safety = OrderIntent("binance", "binance:Perp:ETHUSDT", "buy", 1.0, 3450.0, "margin", "perp", "ETH",
                         trigger="margin_ratio", safety=True)
    for k, wait in ((0, 60.0), (1, 120.0)):
        venue.reject = (-2019, "Margin is insufficient.")
        _commit(store, d, k, [safety])
        d.poll()
        assert store.orders("s")[k]["status"] == "refused" and d.replan_at == now[0] + wait
    _commit(store, d, 2, [safety])
    d.poll()
    assert store.orders("s")[2]["status"] == "filled"
    venue.reject = (-2019, "Margin is insufficient.")
    _commit(store, d, 3, [safety])
    d.poll()
    assert d.replan_at == now[0] + 60.0  # the back-off starts again


def test_a_safety_step_never_waits_for_the_approval_of_a_later_order_that_is_not_one(tmp_path):
    """Confirm mode: a de-lever (safety, no approval needed) planned with an idle-cash supply after it (awaiting
    approval): the de-lever goes (here: it is priced, the node being down) without waiting for that approval."""
    store, ex = _dead_chain(tmp_path, "stand-in")
    limits = LIMITS.model_copy(update={"venues": ["aave_v3", "ethereum"]})
    d = Dispatcher(store, "s", "confirm", limits, {"aave_v3": ex, "ethereum": ex})
    supply = OrderIntent("aave_v3", "aave_supply_WETH", "supply", 1.0, None, "idle", "aave_supply", "WETH",
                         trigger="idle_cash")
    obs = Observation(1_700_000_000, 1, {"fund/ethereum/token/weeth": Holding(0.0, 3150.0)}, {}, {}, 3000.0)
    orders, alerts = d.admit(0, 1_700_000_000, [*_loop_delever("redeem"), supply], obs)
    store.commit_tick("s", 0, 1_700_000_000, 1, 1.0, 1.0, {}, None, alerts, None, orders)
    assert [o.status for o in orders] == ["approved", "approved", "approved", "awaiting"]
    d.poll()
    tried = {e["client_id"] for e in store.order_log("s") if e["step"] == "not_priced"}
    assert tried == {orders[0].client_id}
