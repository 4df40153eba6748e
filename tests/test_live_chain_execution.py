"""`live run --execute auto` on the local Aave v3 chain: a keystore wallet's eth_leveraged position entered by the
leverage loop, de-levered when the LST's price falls, every order sent as transactions (Aave's own contracts, the
stand-in LST minting and redeeming at its rate), the next reading equal to what the plan said the book would be,
and every change explained as the session's own trades. And a session SIGKILLed with a transaction in flight
sends nothing twice when it resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

pytest.importorskip("web3")

from eth_account import Account  # noqa: E402

from basiskit.cli.live import chain_executors  # noqa: E402
from basiskit.connectors.chain import ChainClient  # noqa: E402
from basiskit.data.dataset import SAMPLE_DIR, Dataset  # noqa: E402
from basiskit.engine.runconfig import load_run_config  # noqa: E402
from basiskit.errors import ConfigError  # noqa: E402
from basiskit.live.accounts import load_accounts  # noqa: E402
from basiskit.live.execution import Dispatcher  # noqa: E402
from basiskit.live.plan import Planner  # noqa: E402
from basiskit.live.session import LiveLimits, LiveSession  # noqa: E402
from basiskit.live.store import LiveStore  # noqa: E402
from recorded import database_text  # noqa: E402

E18 = 10**18
PASSWORD = "correct horse battery staple 42"
LIMITS = ["live.max_order_usd=1e9", "live.max_day_usd=1e10", "live.max_slippage_bps=50", "live.max_gas_gwei=100",
          "live.venues=[aave_v3,ethereum]"]


def _wallet(local_market, tmp_path_factory, name: str, eth: int):
    """A fresh key in an encrypted keystore, `eth` ETH on it, an accounts.yaml naming both (lenders supply WETH)."""
    node, market, _ = local_market
    w3 = market.deployer.w3
    lender = w3.eth.accounts[6]
    if market.a_tokens["WETH"].functions.balanceOf(lender).call() == 0:
        market.mint("WETH", lender, 5_000 * E18)
        market.deployer.send(market.tokens["WETH"].functions.approve(market.pool.address, 2**256 - 1), "approve",
                             sender=lender)
        market.deployer.send(market.pool.functions.supply(market.tokens["WETH"].address, 5_000 * E18, lender, 0),
                             "supply", sender=lender)
    key = Account.create()
    tmp = tmp_path_factory.mktemp(name)
    (tmp / "fund.json").write_text(json.dumps(Account.encrypt(key.key, PASSWORD, kdf="pbkdf2", iterations=1000)))
    w3.provider.make_request("anvil_setBalance", [key.address, hex(eth * E18)])
    path = tmp / "accounts.yaml"
    path.write_text(yaml.safe_dump({
        "chain_id": node.chain_id,
        "wallets": [{"name": "fund", "address": key.address, "keystore": "fund.json", "password_env": "FUND_PW"}],
        "aave": market.aave_spec()}))
    return node, market, key, path


def _session(path, node, db, name="exec", sets=("leverage.entry=loop",)):
    found = load_accounts(path)
    cfg = load_run_config("eth_leveraged", sets=[*LIMITS, *sets], dataset=Dataset(SAMPLE_DIR))
    chain = ChainClient.from_url(node.url, found.market())
    store = LiveStore(db)
    d = Dispatcher(store, name, "auto", cfg.live, chain_executors(found, chain, cfg.live))
    return LiveSession(store, name, cfg, found, chain, {}, LiveLimits.for_config(cfg, 0.01), quiet=True,
                       planner=Planner(cfg, Dataset(SAMPLE_DIR), chain), dispatcher=d), store, cfg


def _held(market, address, block):
    a = market.a_tokens["weETH"].functions.balanceOf(address).call(block_identifier=block) / E18
    d = market.debt_tokens["WETH"].functions.balanceOf(address).call(block_identifier=block) / E18
    hf = market.pool.functions.getUserAccountData(address).call(block_identifier=block)[5] / E18
    return a, d, hf


def test_auto_enters_by_the_loop_and_delevers_on_the_chain(local_market, tmp_path_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("FUND_PW", PASSWORD)
    node, market, key, path = _wallet(local_market, tmp_path_factory, "loop", 20)
    live, store, cfg = _session(path, node, tmp_path / "runs.db", sets=["leverage.entry=loop", "target_ltv=0.6"])

    live.tick()  # 20 ETH idle: staked, supplied and levered to the target LTV (0.6) by the loop
    plan = store.status("exec")["last"]["plan"]
    sides = [o["side"] for o in store.orders("exec")]
    assert sides[:3] == ["stake", "supply", "borrow"] and sides.count("borrow") >= 2
    assert {o["status"] for o in store.orders("exec")} == {"filled"}, (store.orders("exec"), store.order_log("exec"))
    second = live.tick()
    a, d, hf = _held(market, key.address, second["block"])
    # the chain holds what the plan said the book would hold once its orders were done
    assert a == pytest.approx(plan["after"]["aave_v3:aToken:aweETH"], rel=1e-9)
    assert d == pytest.approx(plan["after"]["aave_v3:debtToken:debtWETH"], rel=1e-9)
    weeth, weth = (market.oracle.functions.getAssetPrice(market.tokens[s].address).call() for s in ("weETH", "WETH"))
    assert d / (a * weeth / weth) == pytest.approx(cfg.target_ltv, abs=cfg.leverage.ltv_tolerance)
    # every change of the hour is the session's own trades, gas and interest: nothing unexplained
    rec = second["reconciliation"]
    assert abs(rec["attribution"]["unexplained"]) < 1e-6 and abs(rec["residual"]) <= 1e-9 * second["nav_usd"]
    assert rec["attribution"]["trades"] != 0 and "unexplained" not in second["alerts"]

    # the LST's price falls 35%: HF 1.03, under the floor; the plan de-levers to the target, and it is done
    sent = len(store.orders("exec"))
    w3 = market.deployer.w3  # an operator tops the wallet up for gas (the entry left the plan's reserve only)
    w3.provider.make_request("anvil_setBalance", [key.address, hex(w3.eth.get_balance(key.address) + E18 // 2)])
    market.set_price("weETH", weeth / 1e8 * 0.65)
    assert _held(market, key.address, "latest")[2] < cfg.leverage.hf_floor
    third = live.tick()
    plan = store.status("exec")["last"]["plan"]
    new = store.orders("exec")[sent:]
    assert "repay" in [o["side"] for o in new] and {o["status"] for o in new} == {"filled"}, new
    fourth = live.tick()
    a, d, hf = _held(market, key.address, fourth["block"])
    assert hf > cfg.leverage.hf_floor and d == pytest.approx(plan["after"]["aave_v3:debtToken:debtWETH"], rel=1e-9)
    assert a == pytest.approx(plan["after"]["aave_v3:aToken:aweETH"], rel=1e-9)
    assert abs(fourth["reconciliation"]["attribution"]["unexplained"]) < 1e-6
    log = json.dumps([e["details"] for e in store.order_log("exec")], default=str)
    assert key.key.hex().removeprefix("0x") not in log and PASSWORD not in log
    hashes = [e["details"]["hash"] for e in store.order_log("exec") if e["step"] == "tx"]
    assert len(hashes) == len(set(hashes)) and third["tick"] == 2


def test_the_presets_flash_loan_enters_and_delevers_through_the_projects_receiver(local_market, tmp_path_factory,
                                                                                   tmp_path, monkeypatch):
    monkeypatch.setenv("FUND_PW", PASSWORD)
    node, market, key, path = _wallet(local_market, tmp_path_factory, "flash", 20)
    live, store, cfg = _session(path, node, tmp_path / "runs.db", name="flash", sets=())
    assert cfg.leverage.entry == "flash_loan"
    live.tick()  # one bundle: flash WETH, stake it with the wallet's ETH, supply, borrow to repay
    plan = store.status("flash")["last"]["plan"]
    orders = store.orders("flash")
    assert [o["instrument"] for o in orders][-1] == "flash_loan_leverage"
    assert {o["status"] for o in orders} == {"filled"}, store.order_log("flash")
    txs = [e["details"]["what"] for e in store.order_log("flash") if e["step"] == "tx"]
    assert txs == ["eMode", "delegate", "flash lever"]  # eMode, credit delegation of exactly the amount, the bundle
    second = live.tick()
    a, d, hf = _held(market, key.address, second["block"])
    assert a == pytest.approx(plan["after"]["aave_v3:aToken:aweETH"], rel=1e-9)
    assert d == pytest.approx(plan["after"]["aave_v3:debtToken:debtWETH"], rel=1e-9)
    assert abs(second["reconciliation"]["attribution"]["unexplained"]) < 1e-6
    assert market.tokens["WETH"].functions.balanceOf(market.flash_lever.address).call() == 0  # it keeps nothing

    sent = len(orders)
    w3 = market.deployer.w3
    w3.provider.make_request("anvil_setBalance", [key.address, hex(w3.eth.get_balance(key.address) + E18 // 2)])
    weeth = market.oracle.functions.getAssetPrice(market.tokens["weETH"].address).call()
    market.set_price("weETH", weeth / 1e8 * 0.93)  # HF 1.04 < 1.05
    live.tick()
    plan = store.status("flash")["last"]["plan"]
    new = store.orders("flash")[sent:]
    assert new[-1]["instrument"] == "flash_loan_deleverage" and {o["status"] for o in new} == {"filled"}, new
    fourth = live.tick()
    a, d, hf = _held(market, key.address, fourth["block"])
    assert hf > cfg.leverage.hf_floor and d == pytest.approx(plan["after"]["aave_v3:debtToken:debtWETH"], rel=1e-9)
    assert a == pytest.approx(plan["after"]["aave_v3:aToken:aweETH"], rel=1e-9)
    assert abs(fourth["reconciliation"]["attribution"]["unexplained"]) < 1e-6

    # the price recovers and a day passes: the LTV drifts under the target; the plan re-levers by flash loan
    sent = len(store.orders("flash"))
    market.set_price("weETH", weeth / 1e8 * 1.02)
    w3.provider.make_request("evm_increaseTime", [86_400])
    w3.provider.make_request("evm_mine", [])
    live.tick()
    new = store.orders("flash")[sent:]
    assert new[-1]["instrument"] == "flash_loan_leverage" and {o["status"] for o in new} == {"filled"}, new
    sixth = live.tick()
    a, d, _ = _held(market, key.address, sixth["block"])
    weeth, weth = (market.oracle.functions.getAssetPrice(market.tokens[s].address).call() for s in ("weETH", "WETH"))
    assert d / (a * weeth / weth) == pytest.approx(cfg.target_ltv, abs=cfg.leverage.ltv_tolerance)
    assert abs(sixth["reconciliation"]["attribution"]["unexplained"]) < 1e-6

    # and the exit (live run --exit): one flash-loan bundle repays the debt and redeems the collateral to ETH
    live, store, cfg = _session(path, node, tmp_path / "runs.db", name="flash", sets=())
    live.unwind = True
    live.tick()
    exit_orders = [o for o in store.orders("flash") if o["reason"].startswith("exit")]
    assert exit_orders and {o["status"] for o in exit_orders} == {"filled"}, exit_orders
    last = live.tick()
    a, d, _ = _held(market, key.address, last["block"])
    assert a < 1e-6 and d < 1e-6  # dust the seconds of interest since the reading left, at most
    eth = last["nav_usd"] / (weth / 1e8)
    assert w3.eth.get_balance(key.address) / E18 == pytest.approx(eth, rel=1e-3)  # the NAV is ETH in the wallet
    assert abs(last["reconciliation"]["attribution"]["unexplained"]) < 1e-6


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_session_killed_with_a_transaction_in_flight_sends_nothing_twice(local_market, tmp_path_factory,
                                                                           tmp_path, backend, request, monkeypatch):
    node, market, key, path = _wallet(local_market, tmp_path_factory, f"crash-{backend}", 10)
    w3 = market.deployer.w3
    db = tmp_path / "runs.db" if backend == "sqlite" else request.getfixturevalue("pg_database")
    monkeypatch.setenv("BASISKIT_ANALYTICS", str(tmp_path / "analytics"))
    env = {**os.environ, "FUND_PW": PASSWORD, "BASISKIT_DB": str(db)}
    cmd = [sys.executable, "-m", "basiskit.cli", "live", "run", "eth_leveraged", "--accounts", str(path),
           "--rpc-url", node.url, "--session", "crash", "--execute", "auto", "--every", "0", "--ticks", "1",
           "--json", "--set", "leverage.entry=loop", *[x for s in LIMITS for x in ("--set", s)]]
    w3.provider.make_request("evm_setAutomine", [False])  # transactions wait in the mempool until mined
    try:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 120
        while time.time() < deadline:  # the first transaction is journaled and broadcast, its receipt not stored
            pending = w3.provider.make_request("txpool_content", [])["result"]["pending"]
            if any(a.lower() == key.address.lower() for a in pending):
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        w3.provider.make_request("evm_mine", [])
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
    store = LiveStore(db)
    [tx] = [e["details"] for e in store.order_log("crash") if e["step"] == "tx"]
    assert w3.eth.get_transaction_receipt(tx["hash"])["status"] == 1
    nonce = w3.eth.get_transaction_count(key.address)
    # resumed: the order in flight is looked up by its hash (mined), nothing signed again, then the next reading
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    log = store.order_log("crash")
    steps = [(e["client_id"], e["step"]) for e in log]
    first = log[0]["client_id"]
    assert steps.count((first, "tx")) == 1 and (first, "lookup") in steps
    hashes = [e["details"]["hash"] for e in log if e["step"] == "tx"]
    assert len(hashes) == len(set(hashes))
    nonces = [e["details"]["nonce"] for e in log if e["step"] == "tx"]
    assert nonces == list(range(tx["nonce"], tx["nonce"] + len(nonces))) and nonces[1] >= nonce
    tick = json.loads(done.stdout.splitlines()[-1])
    everything = database_text(db) + done.stdout + done.stderr  # every table, and what the session printed
    assert key.key.hex().removeprefix("0x") not in everything and PASSWORD not in everything
    book = store.status("crash")["last"]["book"]["holdings"]
    a, d, _ = _held(market, key.address, tick["block"])
    assert book["fund/aave_v3/aToken/weeth"]["units"] == a and book["fund/aave_v3/debtToken/weth"]["units"] == -d


def test_a_keystore_without_its_password_is_refused_at_start(local_market, tmp_path_factory, monkeypatch):
    node, _, _, path = _wallet(local_market, tmp_path_factory, "nopw", 1)
    monkeypatch.delenv("FUND_PW", raising=False)
    with pytest.raises(ConfigError, match="wallets.0.password_env: 'FUND_PW' -> this environment variable is not set"):
        load_accounts(path)
    monkeypatch.setenv("FUND_PW", "not the password")
    found = load_accounts(path)
    with pytest.raises(ConfigError, match="cannot be decrypted with \\$FUND_PW") as refused:
        found.signer(found.wallets[0])
    assert "not the password" not in str(refused.value)


def test_an_order_whose_transaction_was_replaced_is_refused_and_sending_goes_on(local_market, tmp_path_factory,
                                                                               tmp_path, monkeypatch):
    """A crash left an order `sending` with a journaled transaction that never mined and whose nonce another
    transaction took: the lookup answers `replaced` (a refusal, not a doubt), so the session is not wedged: the
    next plan's order is sent."""
    from basiskit.execution.intents import OrderIntent
    from basiskit.live.book import Holding, Observation

    node, market, key, path = _wallet(local_market, tmp_path_factory, "replaced", 5)
    w3 = market.deployer.w3
    w3.provider.make_request("anvil_setNonce", [key.address, hex(3)])  # three transactions since the one journaled
    monkeypatch.setenv("FUND_PW", PASSWORD)
    found = load_accounts(path)
    cfg = load_run_config("eth_leveraged", sets=LIMITS, dataset=Dataset(SAMPLE_DIR))
    chain = ChainClient.from_url(node.url, found.market())
    store = LiveStore(tmp_path / "runs.db")
    store.open_session("r", "eth_leveraged", str(path), {})
    d = Dispatcher(store, "r", "auto", cfg.live, chain_executors(found, chain, cfg.live))
    obs = Observation(int(time.time()), w3.eth.block_number, {"fund/ethereum/native/eth": Holding(5.0, 3000.0)}, {},
                      {}, 3000.0, None, time.time())
    wrap = OrderIntent("ethereum", "stake_weETH", "stake", 0.1, None, "idle_cash", "stake", "ETH", "weETH")
    orders, alerts = d.admit(0, obs.t, [wrap], obs)
    store.commit_tick("r", 0, obs.t, obs.block, 1.0, 1.0, {}, None, alerts, None, orders)
    cid = orders[0].client_id
    store.order_step("r", cid, "sending", "request", {})
    store.order_step("r", cid, "sending", "tx", {"hash": "0x" + "ab" * 32, "nonce": 1, "what": "stake", "index": 0,
                                                 "calls": 1, "moves": {}})
    [alert] = d.poll()
    assert alert.kind == "order_refused" and "was replaced" in alert.message
    assert store.orders("r")[0]["status"] == "refused"
    orders, alerts = d.admit(1, obs.t + 3600, [wrap], obs)  # the next plan: sent, not held behind a doubt
    store.commit_tick("r", 1, obs.t + 3600, obs.block, 1.0, 1.0, {}, None, alerts, None, orders)
    d.poll()
    assert store.orders("r")[1]["status"] == "filled"
