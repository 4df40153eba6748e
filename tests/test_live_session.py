"""`live run` on real accounts: a wallet with an Aave v3 position on a local anvil chain (Aave's own contracts),
opened by the test as an operator would, read each hour; and a Binance account through ccxt's transport with
recorded responses. The book must equal what the contracts and the venue say; every hour's change must be
explained (interest, gas, funding, transfers) or shown as unexplained with an alert; attribution reconciles."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytest.importorskip("web3")

from basiskit.connectors.chain import ChainClient  # noqa: E402
from basiskit.connectors.exchanges import ExchangeAccount  # noqa: E402
from basiskit.data.dataset import SAMPLE_DIR, Dataset  # noqa: E402
from basiskit.engine.runconfig import load_run_config  # noqa: E402
from basiskit.errors import ConfigError, RunError  # noqa: E402
from basiskit.live.accounts import load_accounts  # noqa: E402
from basiskit.live.session import LiveLimits, LiveSession  # noqa: E402
from basiskit.live.store import LiveStore  # noqa: E402
from recorded import session_with  # noqa: E402
from server import free_port  # noqa: E402
from test_dashboard import open_page, ready  # noqa: E402
from test_webhook_outbox import Receiver  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
E18 = 10**18
HOUR, DAY = 3600, 86_400


def _send(market, call, sender):
    return market.deployer.send(call, "operator action", sender=sender)


def _warp(w3, seconds):
    w3.provider.make_request("evm_increaseTime", [seconds])
    w3.provider.make_request("evm_mine", [])


@pytest.fixture(scope="module")
def position(local_market, tmp_path_factory):
    """The fund's wallet supplies 100 weETH and 10 WETH, enters eMode and borrows 80 WETH (another account lends)."""
    node, market, _ = local_market
    w3 = market.deployer.w3
    lender, fund = w3.eth.accounts[6], w3.eth.accounts[5]
    pool = market.pool.functions
    for who, sym, amount in ((lender, "WETH", 1_000), (fund, "weETH", 100), (fund, "WETH", 10)):
        market.mint(sym, who, amount * E18)
        _send(market, market.tokens[sym].functions.approve(market.pool.address, 2**256 - 1), who)
        _send(market, pool.supply(market.tokens[sym].address, amount * E18, who, 0), who)
    _send(market, pool.setUserEMode(1), fund)
    _send(market, pool.borrow(market.tokens["WETH"].address, 80 * E18, 2, 0, fund), fund)
    path = tmp_path_factory.mktemp("live") / "accounts.yaml"
    path.write_text(yaml.safe_dump({
        "chain_id": node.chain_id, "wallets": [{"name": "fund", "address": fund}],
        "aave": market.aave_spec()}))
    return node, market, fund, path


def _on_chain(market, fund, block):
    """What the contracts say the wallet holds at `block`, in tokens (debts > 0), and Aave's health factor."""
    f = {s: (market.a_tokens[s].functions, market.debt_tokens[s].functions) for s in market.tokens}
    held = {s: (a.balanceOf(fund).call(block_identifier=block) / 10**market.decimals[s],
                d.balanceOf(fund).call(block_identifier=block) / 10**market.decimals[s]) for s, (a, d) in f.items()}
    hf = market.pool.functions.getUserAccountData(fund).call(block_identifier=block)[5] / E18
    return held, hf


def _book_is_the_chains(live, market, fund, block):
    """Every holding of the wallet in the session's book equals what the contracts say at the tick's block."""
    w3 = market.deployer.w3
    book = live.previous.holdings
    held, hf = _on_chain(market, fund, block)
    for sym, (supplied, borrowed) in held.items():
        r = sym.lower()
        assert book[f"fund/aave_v3/aToken/{r}"].units == supplied
        assert book[f"fund/aave_v3/debtToken/{r}"].units == -borrowed
        wallet = market.tokens[sym].functions.balanceOf(fund).call(block_identifier=block)
        assert book[f"fund/ethereum/token/{r}"].units == wallet / 10**market.decimals[sym]
    assert book["fund/ethereum/native/ETH"].units == w3.eth.get_balance(fund, block) / E18
    assert live.previous.risk["fund"]["health_factor"] == hf


def test_a_live_session_on_the_chain_explains_every_hour(position, tmp_path):
    node, market, fund, path = position
    w3 = market.deployer.w3
    found = load_accounts(path)
    cfg = load_run_config("eth_leveraged", dataset=Dataset(SAMPLE_DIR))
    store = LiveStore(tmp_path / "runs.db")

    def session():
        return LiveSession(store, "chain", cfg, found, ChainClient.from_url(node.url, found.market()), {},
                           LiveLimits.for_config(cfg, 0.01), quiet=True)

    live = session()
    first = live.tick()
    held, hf = _on_chain(market, fund, first["block"])
    book = live.previous.holdings
    assert book["fund/aave_v3/aToken/weeth"].units == held["weETH"][0] == 100.0
    assert book["fund/aave_v3/debtToken/weth"].units == -held["WETH"][1]
    assert book["fund/aave_v3/aToken/weth"].units == held["WETH"][0]
    assert book["fund/ethereum/native/ETH"].units == w3.eth.get_balance(fund, first["block"]) / E18
    assert live.previous.risk["fund"]["health_factor"] == hf
    assert first["reconciliation"] is None and first["alerts"] == []
    _book_is_the_chains(live, market, fund, first["block"])

    # a day passes: the only changes are Aave's interest, explained by the indexes
    _warp(w3, DAY)
    second = live.tick()
    after, hf2 = _on_chain(market, fund, second["block"])
    weth_usd = market.oracle.functions.getAssetPrice(market.tokens["WETH"].address).call() / 1e8
    attr = second["reconciliation"]["attribution"]
    assert attr["borrow_cost"] == pytest.approx(-(after["WETH"][1] - held["WETH"][1]) * weth_usd, rel=1e-9)
    assert attr["supply_yield"] == pytest.approx((after["WETH"][0] - held["WETH"][0]) * weth_usd, rel=1e-9)
    assert attr["borrow_cost"] < 0 < attr["supply_yield"]
    assert abs(attr["unexplained"]) < 1e-6 and second["alerts"] == []
    assert abs(second["reconciliation"]["residual"]) <= 1e-9 * second["nav_usd"]
    assert live.previous.risk["fund"]["health_factor"] == hf2
    _book_is_the_chains(live, market, fund, second["block"])

    # behind the engine's back: 5 aweETH and 2 aWETH sent to another address (aWETH earns: what was sent would
    # have grown with the index until the reading); ETH appears from nowhere (anvil_setBalance)
    other = w3.eth.accounts[7]
    sent = [_send(market, market.a_tokens[sym].functions.transfer(other, n * E18), fund)
            for sym, n in (("weETH", 5), ("WETH", 2))]
    eth_now = w3.eth.get_balance(fund)
    w3.provider.make_request("anvil_setBalance", [fund, hex(eth_now + 3 * E18)])
    _warp(w3, DAY)
    live = session()  # a restart resumes from the committed book
    third = live.tick()
    assert third["tick"] == 2
    lines = {line["key"]: line for line in third["reconciliation"]["lines"]}
    weeth = lines["fund/aave_v3/aToken/weeth"]
    assert weeth["moved"]["flows"] == pytest.approx(-5.0, abs=1e-12) and abs(weeth["unexplained"]) < 1e-12
    assert weeth["observed"] == _on_chain(market, fund, third["block"])[0]["weETH"][0] == 95.0
    income = market.pool.functions.getReserveNormalizedIncome(market.tokens["WETH"].address).call
    grown = income(block_identifier=third["block"]) / income(block_identifier=sent[1]["blockNumber"])
    assert grown > 1 + 1e-7  # a day at WETH's supply rate: a flow taken at face value would leave 2 x this
    aweth = lines["fund/aave_v3/aToken/weth"]
    assert aweth["moved"]["flows"] == pytest.approx(-2.0 * grown, rel=1e-12) and abs(aweth["unexplained"]) < 1e-12
    eth = lines["fund/ethereum/native/ETH"]
    gas = sum(r["gasUsed"] * r["effectiveGasPrice"] for r in sent) / E18  # the transfers' receipts
    assert eth["moved"]["fees"] == pytest.approx(-gas, rel=1e-12)
    assert eth["unexplained"] == pytest.approx(3.0, rel=1e-12, abs=1e-15 * eth["observed"])  # ~10,000 ETH held
    assert sorted(third["alerts"]) == ["flow", "flow", "unexplained"]
    _book_is_the_chains(live, market, fund, third["block"])
    alerts = store.alerts("chain")
    assert any(a["kind"] == "unexplained" and a["details"]["key"] == "fund/ethereum/native/ETH" for a in alerts)

    # the LST's oracle falls: the position's HF goes under eth_leveraged's floor (1.05); the loss is price
    weeth_usd = market.oracle.functions.getAssetPrice(market.tokens["weETH"].address).call() / 1e8
    market.set_price("weETH", weeth_usd * 0.75)
    fourth = live.tick()
    assert fourth["alerts"] == ["health_factor"]
    assert fourth["reconciliation"]["attribution"]["price"] == pytest.approx(-95.0 * weeth_usd * 0.25, rel=1e-6)
    assert live.previous.risk["fund"]["health_factor"] == _on_chain(market, fund, fourth["block"])[1] < 1.05
    _book_is_the_chains(live, market, fund, fourth["block"])


@pytest.fixture(scope="module")
def levered(local_market, tmp_path_factory):
    """A second wallet as eth_leveraged holds it: 50 weETH supplied in eMode against 40 WETH of debt (LTV 0.76,
    under the mode's re-lever threshold), the borrowed WETH sent on and no ETH left: nothing idle."""
    from basiskit.localchain.deploy import RESERVES

    node, market, _ = local_market
    w3 = market.deployer.w3
    lender, fund = w3.eth.accounts[6], w3.eth.accounts[8]
    pool = market.pool.functions
    market.set_price("weETH", next(r.price_usd for r in RESERVES if r.symbol == "weETH"))  # another test moved it
    for who, sym, amount in ((lender, "WETH", 1_000), (fund, "weETH", 50)):
        market.mint(sym, who, amount * E18)
        _send(market, market.tokens[sym].functions.approve(market.pool.address, 2**256 - 1), who)
        _send(market, pool.supply(market.tokens[sym].address, amount * E18, who, 0), who)
    _send(market, pool.setUserEMode(1), fund)
    _send(market, pool.borrow(market.tokens["WETH"].address, 40 * E18, 2, 0, fund), fund)
    _send(market, market.tokens["WETH"].functions.transfer(lender, 40 * E18), fund)
    w3.provider.make_request("anvil_setBalance", [fund, "0x0"])
    _warp(w3, DAY)  # the indexes leave 1
    path = tmp_path_factory.mktemp("plan") / "accounts.yaml"
    path.write_text(yaml.safe_dump({
        "chain_id": node.chain_id, "wallets": [{"name": "levered", "address": fund}],
        "aave": market.aave_spec()}))
    return node, market, fund, path


def _equity_and_debt(market, fund, block):
    """The wallet's Aave collateral and debt in ETH, at Aave's oracle prices, from the contracts."""
    held, _ = _on_chain(market, fund, block)
    price = {s: market.oracle.functions.getAssetPrice(market.tokens[s].address).call(block_identifier=block)
             for s in ("weETH", "WETH")}
    collateral = held["weETH"][0] * price["weETH"] / price["WETH"]
    return collateral - held["WETH"][1], held["WETH"][1]


def test_the_plan_is_the_strategy_run_on_the_book_read(levered, tmp_path):
    """eth_leveraged (costs off) on the wallet: the engine's book is the chain's, the plan re-levers to the target
    LTV (borrow = L/(1-L) x equity - debt) and, once the LST's price falls under the HF floor, de-levers to it
    (repay = debt - L/(1-L) x equity); every intent is stored, and nothing reaches the chain."""
    from basiskit.live.plan import Planner

    node, market, fund, path = levered
    w3 = market.deployer.w3
    found = load_accounts(path)
    cfg = load_run_config("eth_leveraged", sets=["costs.enabled=false"], dataset=Dataset(SAMPLE_DIR))
    chain = ChainClient.from_url(node.url, found.market())
    store = LiveStore(tmp_path / "runs.db")
    live = LiveSession(store, "plan", cfg, found, chain, {}, LiveLimits.for_config(cfg, 0.01), quiet=True,
                       planner=Planner(cfg, Dataset(SAMPLE_DIR), chain))
    lev = cfg.target_ltv / (1 - cfg.target_ltv)

    def sizes(plan, side):
        return sum(i["size"] for i in plan["intents"] if i["side"] == side)

    first = live.tick()
    block = first["block"]
    plan = store.status("plan")["last"]["plan"]
    weeth, weth = (market.tokens[s].address for s in ("weETH", "WETH"))
    income = market.pool.functions.getReserveNormalizedIncome(weeth).call(block_identifier=block) / 1e27
    debt_index = market.pool.functions.getReserveNormalizedVariableDebt(weth).call(block_identifier=block) / 1e27
    held, _ = _on_chain(market, fund, block)
    assert debt_index > 1  # (no one borrows weETH: its income index stays 1)
    assert plan["positions"] == pytest.approx({"aave_v3:aToken:aweETH": held["weETH"][0] / income,
                                               "aave_v3:debtToken:debtWETH": held["WETH"][1] / debt_index},
                                              rel=1e-12)
    assert plan["unmodelled"] == {} and plan["nav_usd"] == pytest.approx(first["nav_usd"], rel=1e-12)
    equity, debt = _equity_and_debt(market, fund, block)
    assert sizes(plan, "borrow") == pytest.approx(lev * equity - debt, rel=1e-9)
    assert sizes(plan, "stake") == pytest.approx(lev * equity - debt, rel=1e-9)
    assert {i["side"] for i in plan["intents"]} >= {"flash_loan", "stake", "supply", "borrow"}
    assert "spot/uniswapv3_wethusdt_1h" in plan["sources"] and "stand-in" in plan["sources"][
        "spot/uniswapv3_wethusdt_1h"]
    stored = store.orders("plan")
    assert [(o["side"], o["size"]) for o in stored] == [(i["side"], i["size"]) for i in plan["intents"]]
    assert w3.eth.block_number == block  # the plan read the chain; it sent nothing

    # the LST's oracle falls 17%: HF 1.04, under the floor (1.05) and above 1; the plan de-levers to the target
    market.set_price("weETH", market.oracle.functions.getAssetPrice(weeth).call() / 1e8 * 0.83)
    second = live.tick()
    _, hf = _on_chain(market, fund, second["block"])
    assert 1.0 < hf < cfg.leverage.hf_floor and "health_factor" in second["alerts"]
    plan = store.status("plan")["last"]["plan"]
    equity, debt = _equity_and_debt(market, fund, second["block"])
    assert sizes(plan, "borrow") == 0 and sizes(plan, "repay") == pytest.approx(debt - lev * equity, rel=1e-9)
    assert len(store.orders("plan")) == len(stored) + len(plan["intents"])
    assert second["orders"] == len(plan["intents"]) > 0


HOSTILE = "<img src=x onerror=alert(1)>&\"'"  # a wallet name the dashboard must show as text


@pytest.fixture(scope="module")
def cli_run(position, tmp_path_factory):
    """Two hourly readings by `basiskit live run`, on a wallet named with markup; its status, list and a server."""
    node, _, fund, path = position
    tmp = tmp_path_factory.mktemp("live-cli")
    accounts = yaml.safe_load(path.read_text())
    accounts["wallets"] = [{"name": HOSTILE, "address": fund}]
    hostile = tmp / "accounts.yaml"
    hostile.write_text(yaml.safe_dump(accounts))
    db = tmp / "runs.db"
    base = [sys.executable, "-m", "basiskit.cli", "live"]
    env = {**os.environ, "BASISKIT_DB": str(db)}
    done = subprocess.run(base + ["run", "eth_leveraged", "--accounts", str(hostile), "--rpc-url", node.url,
                                  "--session", "cli", "--ticks", "2", "--every", "0", "--json"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    from typer.testing import CliRunner  # the read-only commands, in this process

    from basiskit.cli import app

    runner = CliRunner()
    status = json.loads(runner.invoke(app, ["live", "status", "cli", "--json", "--db", str(db)]).stdout)
    listed = json.loads(runner.invoke(app, ["live", "list", "--json", "--db", str(db)]).stdout)
    orders = json.loads(runner.invoke(app, ["live", "orders", "cli", "--json", "--db", str(db)]).stdout)
    from server import Server  # the HTTP API serves the same session, read-only

    api = Server(db, SAMPLE_DIR, tmp / "server.log").start()
    yield done, status, listed, api, orders
    api.stop()


def test_live_run_status_orders_and_list_from_the_command_line(cli_run):
    done, status, listed, api, orders = cli_run
    ticks = [json.loads(line) for line in done.stdout.splitlines()]
    assert [t["tick"] for t in ticks] == [0, 1] and ticks[1]["reconciliation"]["lines"]
    # the wallet's 10 aWETH are no position of eth_leveraged: left out of the plan, shown, alerted once
    plan = status["last"]["plan"]
    assert plan["unmodelled"] == {f"{HOSTILE}/aave_v3/aToken/weth": pytest.approx(
        status["last"]["book"]["holdings"][f"{HOSTILE}/aave_v3/aToken/weth"]["units"]
        * status["last"]["book"]["holdings"][f"{HOSTILE}/aave_v3/aToken/weth"]["price"], rel=1e-12)}
    assert [a["kind"] for a in api.get("/live/cli/alerts").json()].count("unmodelled") == 1
    # each reading's plan: its intents, in order, from the CLI and the API alike
    assert [t["orders"] for t in ticks] == [sum(o["tick"] == k for o in orders) for k in (0, 1)]
    assert sum(ticks[k]["orders"] for k in (0, 1)) == len(orders) > 0
    served = api.get("/live/cli/orders").json()
    assert [{k: v for k, v in o.items() if k != "timestamp"} for o in served] == \
        [{k: v for k, v in o.items() if k != "timestamp"} for o in orders]
    from datetime import UTC, datetime

    stamp = datetime.fromisoformat(status["last"]["timestamp"]).astimezone(UTC)
    assert {o["timestamp"] for o in served if o["tick"] == 1} == {f"{stamp:%Y-%m-%dT%H:%M:%SZ}"}
    assert [(o["side"], o["size"]) for o in orders if o["tick"] == 1] == \
        [(i["side"], i["size"]) for i in plan["intents"]]
    assert status["last"]["tick"] == 1 and status["status"] == "idle"
    assert status["last"]["book"]["holdings"][f"{HOSTILE}/aave_v3/aToken/weeth"]["units"] > 0
    assert [r["name"] for r in listed] == ["cli"] and listed[0]["last_tick"] == 1
    assert api.get("/live").json()[0]["name"] == "cli"
    got = api.get("/live/cli").json()
    assert got["last"]["book"] == status["last"]["book"] and "accounts" not in got
    assert api.get("/live/nope").status_code == 404
    with api.client(token=None) as anonymous:
        assert anonymous.get("/live/cli").status_code == 401
    from prometheus_client.parser import text_string_to_metric_families

    scraped = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(api.get("/metrics").text) for s in f.samples}
    assert scraped[("basiskit_live_nav_usd", (("session", "cli"),))] == status["last"]["nav_usd"]
    hf = status["last"]["book"]["risk"][HOSTILE]["health_factor"]
    assert scraped[("basiskit_live_health_factor", (("account", HOSTILE), ("session", "cli")))] == hf
    assert scraped[("basiskit_live_unexplained_usd", (("session", "cli"),))] == \
        status["last"]["reconciliation"]["attribution"]["unexplained"]
    assert 0 <= scraped[("basiskit_live_last_reading_age_seconds", (("session", "cli"), ("status", "idle")))] < 600


def test_the_live_page_shows_the_book_as_the_api_does(cli_run, browser):
    from selenium.webdriver.common.by import By

    _, status, _, api, _ = cli_run
    open_page(browser, api, "/ui/sessions/live/cli")
    key = f"{HOSTILE}/aave_v3/aToken/weeth"
    ready(browser, "live")  # every table filled and the chart drawn
    assert browser.find_elements(By.CSS_SELECTOR, "#live-book tbody tr")
    rows = {r.find_element(By.TAG_NAME, "td").text: r for r in browser.find_elements(By.CSS_SELECTOR, "#live-book tr")
            if r.find_elements(By.TAG_NAME, "td")}
    units = status["last"]["book"]["holdings"][key]["units"]
    assert rows[key].find_element(By.CSS_SELECTOR, '[data-col="units"]').text == f"{units:,.6f}".rstrip("0").rstrip(".")
    assert browser.find_elements(By.TAG_NAME, "img") == []  # the name stayed text
    intents = status["last"]["plan"]["intents"]
    shown = [(r.find_element(By.CSS_SELECTOR, '[data-col="side"]').text,
              float(r.find_element(By.CSS_SELECTOR, '[data-col="size"]').text.replace(",", "")))
             for r in browser.find_elements(By.CSS_SELECTOR, "#live-orders tbody tr")]
    assert shown == [(i["side"], pytest.approx(i["size"], abs=1e-6)) for i in intents]
    assert f"{HOSTILE}/aave_v3/aToken/weth" in browser.find_element(By.ID, "live-unmodelled").text
    attribution = status["last"]["reconciliation"]["attribution"]
    shown = browser.find_element(By.CSS_SELECTOR, '[data-source="borrow_cost"]').text
    assert float(shown.replace(",", "")) == pytest.approx(attribution["borrow_cost"], abs=1e-6)
    # the NAV so far: one point per committed reading, the last the status's
    readings = api.get("/live/cli/ticks").json()
    assert [r["tick"] for r in readings] == [0, 1] and readings[-1]["nav_usd"] == status["last"]["nav_usd"]
    chart = browser.execute_script("return document.getElementById('live-nav').data[0].y")
    assert chart == [r["nav_usd"] for r in readings]
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    (REPO / "test-artifacts").mkdir(exist_ok=True)
    browser.save_screenshot(str(REPO / "test-artifacts" / "dashboard-live.png"))


def test_a_dead_rpc_exits_1_for_the_supervisor_and_a_bad_tolerance_is_refused_at_start(position, tmp_path):
    _, _, _, path = position
    base = [sys.executable, "-m", "basiskit.cli", "live", "run", "eth_leveraged", "--accounts", str(path)]
    env = {**os.environ, "BASISKIT_DB": str(tmp_path / "runs.db")}
    r = subprocess.run(base + ["--rpc-url", "http://127.0.0.1:9/v3/key-in-the-path"], capture_output=True,
                       text=True, env=env, timeout=60)
    # exit 1, not 2: a node that is down is not a configuration error (the systemd unit restarts on 1, not on 2)
    assert r.returncode == 1 and "--rpc-url http://127.0.0.1:9 cannot be read" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "key-in-the-path" not in r.stderr
    cfg = load_run_config("eth_leveraged", dataset=Dataset(SAMPLE_DIR))
    with pytest.raises(ConfigError, match="--tolerance-usd: 0.0 -> must be a positive number of USD"):
        LiveLimits.for_config(cfg, 0.0)


def test_an_rpc_that_cannot_be_read_is_alerted_retried_and_never_booked(position, tmp_path):
    _, _, _, path = position
    found = load_accounts(path)
    cfg = load_run_config("eth_leveraged", dataset=Dataset(SAMPLE_DIR))
    store = LiveStore(tmp_path / "runs.db")
    # nothing listens on port 9; the path stands for a provider's API key, which no alert or error may show
    dead = ChainClient.from_url("http://127.0.0.1:9/v3/key-in-the-path", found.market())
    live = LiveSession(store, "down", cfg, found, dead, {}, LiveLimits(), quiet=True, retry_wait=0.0,
                       read_attempts=3)
    with pytest.raises(RunError, match="could not be read after 3 attempts") as failed:
        live.tick()
    assert [a["kind"] for a in store.alerts("down")] == ["venue_error"]
    assert "key-in-the-path" not in str(failed.value) + json.dumps(store.status("down"))
    assert store.last_tick("down") is None


def test_a_store_held_by_another_process_never_stops_the_session(position, tmp_path, capsys):
    """Another process holds the store past the session's wait: the hour is read again until it can be committed,
    alerted at once on stderr and stored once the store is back; the session never exits over it."""
    import threading
    import time

    node, _, _, path = position
    found = load_accounts(path)
    cfg = load_run_config("eth_leveraged", dataset=Dataset(SAMPLE_DIR))
    db = tmp_path / "held.db"
    store = LiveStore(db, lock_timeout=0.3)
    from basiskit.live.lease import Lease, account_keys

    lease = Lease(store, "held", account_keys(found, store, "held"), cfg.live.heartbeat_s)
    lease.acquire()  # as `live run` does, before anything is read
    live = LiveSession(store, "held", cfg, found, ChainClient.from_url(node.url, found.market()), {},
                       LiveLimits.for_config(cfg, 0.01), retry_wait=0.1, lease=lease)
    flag = tmp_path / "holding"
    holder = subprocess.Popen([sys.executable, "-c", "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], "
                               "isolation_level=None); c.execute('BEGIN IMMEDIATE'); "  # the store's write lock
                               "open(sys.argv[2], 'w').close(); time.sleep(3)", str(db), str(flag)])
    try:
        deadline = time.monotonic() + 30
        while not flag.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert flag.exists()
        t0 = time.monotonic()
        done = threading.Event()
        thread = threading.Thread(target=lambda: (live.run(ticks=2, every=0.5), done.set()), daemon=True)
        thread.start()
        thread.join(timeout=60)
        assert done.is_set(), "the session did not finish its two hours"
        assert time.monotonic() - t0 >= 2.5  # it waited out the holder (3 s from its start), never exited
    finally:
        holder.kill()
        holder.wait()
    assert store.last_tick("held")[0] == 1 and [r["tick"] for r in store.readings("held")] == [0, 1]  # once each
    stored = [a for a in store.alerts("held") if a["kind"] == "store_unavailable"]
    assert len(stored) == 1 and stored[0]["details"]["tries"] >= 2 and stored[0]["details"]["down_s"] >= 1.5
    assert "store_unavailable: the store cannot be used" in capsys.readouterr().err  # said at once
    assert store.status("held")["status"] == "idle"


# --- an exchange account: Binance, recorded -----------------------------------------------------------------------
class Venue:
    """A Binance futures account whose state the test moves between readings."""

    def __init__(self):
        self.wallet, self.mark, self.income = 250_000.0, 3450.5, []

    def routes(self):
        return {
            ("fapi.binance.com", "/fapi/v3/account"): lambda q: {"assets": [
                {"asset": "USDT", "walletBalance": f"{self.wallet:.8f}", "unrealizedProfit": "0",
                 "marginBalance": f"{self.wallet:.8f}", "availableBalance": "0", "updateTime": 0}], "positions": []},
            ("fapi.binance.com", "/fapi/v3/positionRisk"): lambda q: [
                {"symbol": "ETHUSDT", "positionSide": "BOTH", "positionAmt": "-40.000", "entryPrice": "3412.5",
                 "markPrice": f"{self.mark}", "unRealizedProfit": f"{-40 * (self.mark - 3412.5):.8f}",
                 "liquidationPrice": "6120.25", "notional": f"{-40 * self.mark}", "initialMargin": "69010",
                 "maintMargin": "552", "updateTime": 0}],
            ("fapi.binance.com", "/fapi/v1/leverageBracket"): lambda q: [],
            ("fapi.binance.com", "/fapi/v1/income"): lambda q: [
                e for e in self.income if int(q.get("startTime", 0)) <= e["time"]],
        }

    def pay(self, kind: str, amount: float, t: int, booked: bool = True):
        self.wallet += amount
        if booked:
            self.income.append({"symbol": "ETHUSDT", "incomeType": kind, "income": f"{amount:.8f}", "asset": "USDT",
                                "info": kind, "time": int(t * 1000), "tranId": str(len(self.income) + 1),
                                "tradeId": ""})


def test_an_exchange_account_explained_hour_by_hour(tmp_path, monkeypatch):
    import time

    monkeypatch.setenv("BN_KEY", "key-123")
    monkeypatch.setenv("BN_SECRET", "secret-456")
    path = tmp_path / "accounts.yaml"
    path.write_text(yaml.safe_dump({"exchanges": [{"venue": "binance", "api_key_env": "BN_KEY",
                                                   "secret_env": "BN_SECRET"}]}))
    found = load_accounts(path)
    venue = Venue()
    session, _ = session_with(venue.routes())
    account = ExchangeAccount("binance", "key-123", "secret-456", None, ["ETH"], session)
    cfg = load_run_config("eth_basis", dataset=Dataset(SAMPLE_DIR))
    store = LiveStore(tmp_path / "runs.db")
    received: list[dict] = []
    port = free_port()
    receiver = Receiver(port, received, refuse=1)  # the webhook's first answer is a 503: the alert waits, then goes
    live = LiveSession(store, "cex", cfg, found, None, {"binance": account}, LiveLimits.for_config(cfg, 1.0),
                       quiet=True, webhook=f"http://127.0.0.1:{port}/hook")
    first = live.tick()
    book = live.previous.holdings
    assert book["binance/binance/cash/USDT"].units == 250_000.0
    perp = book["binance/binance/perp/ETH"]
    assert (perp.units, perp.details["entry_price"], perp.details["mark_price"]) == (-40.0, 3412.5, 3450.5)

    # funding received and a commission paid (both in the ledger); the mark falls 10.5
    time.sleep(0.01)  # the ledger's clock is the venue's, in ms: after the first reading
    now = time.time()
    venue.pay("FUNDING_FEE", 12.5, now)
    venue.pay("COMMISSION", -0.75, now)
    venue.mark = 3440.0
    second = live.tick()
    book = live.previous.holdings
    assert book["binance/binance/cash/USDT"].units == venue.wallet == 250_011.75
    assert book["binance/binance/perp/ETH"].details["mark_price"] == 3440.0
    attr = second["reconciliation"]["attribution"]
    assert attr["funding"] == 12.5 and attr["fees"] == -0.75
    assert attr["price"] == pytest.approx(-40.0 * (3440.0 - 3450.5), abs=1e-9)  # the short gains 420
    assert attr["unexplained"] == 0.0 and second["alerts"] == []
    assert second["nav_usd"] - first["nav_usd"] == pytest.approx(12.5 - 0.75 + 420.0, abs=1e-6)

    # a withdrawal the ledger shows, and 50 USDT gone that it does not
    time.sleep(0.01)
    venue.pay("TRANSFER", -1_000.0, time.time())
    venue.pay("COMMISSION", -50.0, time.time(), booked=False)
    third = live.tick()
    assert live.previous.holdings["binance/binance/cash/USDT"].units == venue.wallet == 248_961.75
    line = next(x for x in third["reconciliation"]["lines"] if x["key"] == "binance/binance/cash/USDT")
    assert line["moved"]["flows"] == -1_000.0 and line["unexplained"] == pytest.approx(-50.0, abs=1e-9)
    assert sorted(third["alerts"]) == ["flow", "unexplained"]
    assert "secret-456" not in json.dumps(store.status("cex")) and "key-123" not in json.dumps(store.status("cex"))
    try:
        assert live.close(wait_seconds=20) == 0
        assert [(a["id"], a["kind"]) for a in received] == [(f"cex:{i}", a["kind"]) for i, a in
                                                            enumerate(store.alerts("cex"))]
        assert sorted(a["kind"] for a in received) == ["flow", "unexplained"]
        assert store.status("cex")["outbox"]["pending"] == 0 and "hook" not in json.dumps(store.status("cex"))
    finally:
        receiver.stop()
