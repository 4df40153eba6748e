"""Safety first, on the local chain with Aave v3's own contracts: a position at HF 1.01 and at 1.005 is de-levered
by the sequence of transactions the Pool accepts (each withdrawal leaving HF >= 1, then the stand-in's redeem as the
swap, then the WETH repay), past live.max_order_usd (counted and alerted), paying its gas from a wallet that holds
no ETH beyond the gas reserve; for eth_leveraged, for usdt_market_neutral, and once through FlashLever. And nothing
stale: a restart after a 30% price move plans again and checks the limit at the new value."""

from __future__ import annotations

import json
import os

import pytest
import yaml

pytest.importorskip("web3")

from eth_account import Account  # noqa: E402

from basiskit.cli.live import chain_executors  # noqa: E402
from basiskit.connectors.chain import ChainClient  # noqa: E402
from basiskit.data.dataset import SAMPLE_DIR, Dataset  # noqa: E402
from basiskit.engine.runconfig import load_run_config  # noqa: E402
from basiskit.live.accounts import load_accounts  # noqa: E402
from basiskit.live.execution import Dispatcher  # noqa: E402
from basiskit.live.plan import Planner  # noqa: E402
from basiskit.live.session import LiveLimits, LiveSession  # noqa: E402
from basiskit.live.store import LiveStore  # noqa: E402
from recorded import steady_venues  # noqa: E402

E18 = 10**18
PASSWORD = "correct horse battery staple 42"
RESERVE = 0.05  # live.gas_reserve_eth: above a full de-lever at the local chain's fees, so it is the reserve
WIDE = ["live.max_order_usd=1e9", "live.max_day_usd=1e10"]
TIGHT = ["live.max_order_usd=100", "live.max_day_usd=100"]  # far below every de-lever order
# `make test` de-levers eth_leveraged by the loop from HF 1.005 (and flash from 1.005); `make fuzz` adds the loop from
# 1.01 and usdt_market_neutral's loop from 1.005 (each 40-95 s of transactions on two cores)
LONG = bool(os.environ.get("BASISKIT_FUZZ_EXAMPLES"))
COMMON = ["live.max_slippage_bps=50", "live.max_gas_gwei=100", "live.venues=[aave_v3,ethereum]",
          f"live.gas_reserve_eth={RESERVE}"]


def _lender(market):
    w3 = market.deployer.w3
    lender = w3.eth.accounts[6]
    if market.a_tokens["WETH"].functions.balanceOf(lender).call() < 1_000 * E18:
        market.mint("WETH", lender, 5_000 * E18)
        market.deployer.send(market.tokens["WETH"].functions.approve(market.pool.address, 2**256 - 1), "approve",
                             sender=lender)
        market.deployer.send(market.pool.functions.supply(market.tokens["WETH"].address, 5_000 * E18, lender, 0),
                             "supply", sender=lender)
    return lender


def _wallet(local_market, tmp_path_factory, name: str, eth: float):
    """A fresh keystore wallet holding `eth` ETH and an accounts.yaml naming it (other accounts lend WETH)."""
    node, market, _ = local_market
    _lender(market)
    key = Account.create()
    tmp = tmp_path_factory.mktemp(name)
    (tmp / "fund.json").write_text(json.dumps(Account.encrypt(key.key, PASSWORD, kdf="pbkdf2", iterations=1000)))
    market.deployer.w3.provider.make_request("anvil_setBalance", [key.address, hex(int(eth * E18))])
    path = tmp / "accounts.yaml"
    path.write_text(yaml.safe_dump({
        "chain_id": node.chain_id,
        "wallets": [{"name": "fund", "address": key.address, "keystore": "fund.json", "password_env": "FUND_PW"}],
        "aave": market.aave_spec()}))
    return key, path


def _session(node, path, db, mode, sets, name="safe", execute="auto", exchanges=None):
    found = load_accounts(path)
    dataset = Dataset(SAMPLE_DIR)
    cfg = load_run_config(mode, sets=[*COMMON, *sets], dataset=dataset)
    chain = ChainClient.from_url(node.url, found.market())
    store = LiveStore(db)
    d = Dispatcher(store, name, execute, cfg.live, chain_executors(found, chain, cfg.live))
    planner = Planner(cfg, dataset, chain, exchange_sessions=exchanges)
    return LiveSession(store, name, cfg, found, chain, {}, LiveLimits.for_config(cfg, 0.01), quiet=True,
                       planner=planner, dispatcher=d), store, cfg


def _account(market, address, block="latest"):
    """(aweETH, WETH debt, HF) of the account at `block`, from the contracts."""
    a = market.a_tokens["weETH"].functions.balanceOf(address).call(block_identifier=block) / E18
    d = market.debt_tokens["WETH"].functions.balanceOf(address).call(block_identifier=block) / E18
    hf = market.pool.functions.getUserAccountData(address).call(block_identifier=block)[5] / E18
    return a, d, hf


def _price_for_hf(market, address, hf: float) -> None:
    """Move weETH's oracle price (and the stand-in's rate) so that the account's HF is `hf`."""
    weeth = market.oracle.functions.getAssetPrice(market.tokens["weETH"].address).call() / 1e8
    market.set_price("weETH", weeth * hf / _account(market, address)[2])
    assert _account(market, address)[2] == pytest.approx(hf, abs=1e-6)


def _only_reserve_left(market, address, store) -> None:
    """The wallet keeps nothing beyond the gas reserve: its ETH (native and WETH) is exactly live.gas_reserve_eth."""
    w3 = market.deployer.w3
    weth = market.tokens["WETH"].functions.balanceOf(address).call()
    w3.provider.make_request("anvil_setBalance", [address, hex(int(RESERVE * E18) - weth)])


def _delever_checks(market, key, store, cfg, new_orders, floor_block):
    """Every order of the de-lever filled, each transaction accepted (status 1), HF >= 1 after each withdrawal, the
    safety orders alerted past the tight limits; returns the tx receipts."""
    w3 = market.deployer.w3
    assert new_orders and {o["status"] for o in new_orders} == {"filled"}, new_orders
    assert all(o["safety"] and o["trigger"] == "health_factor" for o in new_orders)
    assert max(o["notional_usd"] for o in new_orders) > 10 * 100  # far above live.max_order_usd (100)
    ids = {o["client_id"] for o in new_orders}
    txs = [e for e in store.order_log("safe") if e["step"] == "tx" and e["client_id"] in ids]
    receipts = [w3.eth.get_transaction_receipt(t["details"]["hash"]) for t in txs]
    assert receipts and all(r["status"] == 1 for r in receipts)
    for t, r in zip(txs, receipts, strict=True):  # Aave accepted each withdrawal: HF >= 1 right after it
        if t["details"]["what"] == "withdraw":
            assert _account(market, key.address, r["blockNumber"])[2] >= 1.0
    alerts = [a for a in store.alerts("safe") if a["kind"] == "safety_order" and a["details"]["client_id"] in ids]
    heads = [o for o in new_orders if o["bundle"] is None or o["action"] == "flash_loan"]
    assert len(alerts) == len(heads) and all("live.max_order_usd" in a["message"] for a in alerts)
    return receipts


@pytest.mark.parametrize("hf", [1.01, 1.005] if LONG else [1.005])
def test_eth_leveraged_delevers_step_by_step_from_near_liquidation(hf, local_market, tmp_path_factory, tmp_path,
                                                                   monkeypatch):
    monkeypatch.setenv("FUND_PW", PASSWORD)
    node, market, _ = local_market
    key, path = _wallet(local_market, tmp_path_factory, f"loop{hf}", 20)
    db = tmp_path / "runs.db"
    live, store, cfg = _session(node, path, db, "eth_leveraged", WIDE)  # the entry: one flash-loan bundle
    live.tick()
    assert {o["status"] for o in store.orders("safe")} == {"filled"}
    # the entry kept the gas reserve and nothing more in the wallet (its ETH is never staked)
    plan = store.status("safe")["last"]["plan"]
    assert plan["gas_reserve_eth"] == RESERVE
    w3 = market.deployer.w3
    held = (w3.eth.get_balance(key.address) + market.tokens["WETH"].functions.balanceOf(key.address).call()) / E18
    assert RESERVE <= held < RESERVE * 1.5

    _price_for_hf(market, key.address, hf)
    _only_reserve_left(market, key.address, store)
    sent = len(store.orders("safe"))
    # de-levered by the loop (withdraw, redeem, repay), the order limits far below each order
    live, store, cfg = _session(node, path, db, "eth_leveraged", [*TIGHT, "leverage.entry=loop"])
    second = live.tick()
    assert "health_factor" in second["alerts"]
    new = store.orders("safe")[sent:]
    assert [o["side"] for o in new[:3]] == ["withdraw", "swap", "repay"] and len(new) > 30
    _delever_checks(market, key, store, cfg, new, None)
    third = live.tick()
    a, d, hf_now = _account(market, key.address, third["block"])
    assert hf_now >= cfg.leverage.hf_floor
    plan = store.status("safe")["last"]["plan"]
    assert d / (a * market.oracle.functions.getAssetPrice(market.tokens["weETH"].address).call()
                / market.oracle.functions.getAssetPrice(market.tokens["WETH"].address).call()) == pytest.approx(
        cfg.target_ltv, abs=cfg.leverage.ltv_tolerance)
    # the wallet paid every transaction's gas and still holds ETH (the de-lever refilled what it spent)
    assert w3.eth.get_balance(key.address) / E18 > RESERVE * 0.5
    assert abs(third["reconciliation"]["attribution"]["unexplained"]) < 1e-6
    # what the swaps brought beyond the plan (the stand-in redeems at the rate, the plan priced slippage) is staked
    # again, never the reserve
    assert plan["after"]["wallet:BaseToken:ETH"] >= RESERVE


def _opened_by_hand(market, address, weeth_units: float, ltv: float) -> None:
    """The operator opens the position the session then manages: weETH supplied in eMode, WETH borrowed at `ltv`
    and sent on (the wallet keeps none of it)."""
    w3, d = market.deployer.w3, market.deployer
    w3.provider.make_request("anvil_impersonateAccount", [address])
    try:
        pool, weeth, weth = market.pool.functions, market.tokens["weETH"], market.tokens["WETH"]
        d.send(weeth.functions.mint(address, int(weeth_units * E18)), "mint weETH", sender=address)
        d.send(weeth.functions.approve(market.pool.address, int(weeth_units * E18)), "approve", sender=address)
        d.send(pool.supply(weeth.address, int(weeth_units * E18), address, 0), "supply", sender=address)
        d.send(pool.setUserEMode(1), "eMode", sender=address)
        rate = (market.oracle.functions.getAssetPrice(weeth.address).call()
                / market.oracle.functions.getAssetPrice(weth.address).call())
        debt = int(weeth_units * rate * ltv * E18)
        d.send(pool.borrow(weth.address, debt, 2, 0, address), "borrow", sender=address)
        d.send(weth.functions.transfer(w3.eth.accounts[6], debt), "send the WETH on", sender=address)
    finally:
        w3.provider.make_request("anvil_stopImpersonatingAccount", [address])


@pytest.mark.skipif(not LONG, reason="usdt_market_neutral's loop de-lever runs under `make fuzz` (95 s on chain)")
@pytest.mark.parametrize("hf", [1.005])  # the nearer of the two (eth_leveraged de-levers from both)
def test_usdt_market_neutral_redeems_the_lst_then_repays_the_weth(hf, local_market, tmp_path_factory, tmp_path,
                                                                  monkeypatch):
    monkeypatch.setenv("FUND_PW", PASSWORD)
    node, market, _ = local_market
    key, path = _wallet(local_market, tmp_path_factory, f"mn{hf}", 1)
    _opened_by_hand(market, key.address, 30.0, 0.85)
    _price_for_hf(market, key.address, hf)
    _only_reserve_left(market, key.address, None)
    weth_usd = market.oracle.functions.getAssetPrice(market.tokens["WETH"].address).call() / 1e8
    venues = steady_venues(lambda: weth_usd)  # the perps' and spot's public data, for the plan's market
    live, store, cfg = _session(node, path, tmp_path / "runs.db", "usdt_market_neutral",
                                [*TIGHT, "leverage.entry=loop"],
                                exchanges={"binance": venues, "bybit": venues, "okx": venues})
    first = live.tick()
    assert "health_factor" in first["alerts"], (first, store.alerts("safe"))
    orders = store.orders("safe")
    assert orders, (store.alerts("safe"), store.status("safe")["last"]["plan"])
    chain = [o for o in orders if o["venue"] in ("aave_v3", "ethereum")]
    assert [o["side"] for o in chain[:3]] == ["withdraw", "swap", "repay"]
    assert [o["instrument"] for o in chain[:3]] == ["aave_withdraw_weETH", "swap_weETH_to_ETH", "aave_repay_WETH"]
    _delever_checks(market, key, store, cfg, chain, None)
    # the hedge is the operator's here (no exchange account): its orders are shown, not sent, and block nothing
    hedge = [o for o in orders if ":Perp:" in o["instrument"]]
    assert hedge and {o["status"] for o in hedge} == {"manual"}
    second = live.tick()
    a, d, hf_now = _account(market, key.address, second["block"])
    assert hf_now >= cfg.leverage.hf_floor
    assert abs(second["reconciliation"]["attribution"]["unexplained"]) < 1e-6


def test_a_339k_flash_entry_counts_once_and_a_flash_delever_from_hf_1005_goes_past_the_limits(
        local_market, tmp_path_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("FUND_PW", PASSWORD)
    node, market, _ = local_market
    weth_usd = market.oracle.functions.getAssetPrice(market.tokens["WETH"].address).call() / 1e8
    key, path = _wallet(local_market, tmp_path_factory, "flash", 339_000 / weth_usd + RESERVE)
    db = tmp_path / "runs.db"
    # the steps of a 339k USD entry at LTV 0.85 add to several million; the bundle counts its net change once
    # (the order limit holds the bundle to its largest step, the 2.26M USD supply)
    live, store, cfg = _session(node, path, db, "eth_leveraged", ["live.max_order_usd=3e6", "live.max_day_usd=1e6"])
    live.tick()
    orders = store.orders("safe")
    assert sum(o["notional_usd"] for o in orders) > 3e6
    assert {o["status"] for o in orders} == {"filled"}, orders
    [head] = [o for o in orders if o["action"] == "flash_loan"]
    assert head["counted_usd"] == pytest.approx(339_000, rel=0.01) and head["counted_usd"] < 1e6
    assert sum(o["counted_usd"] for o in orders) == head["counted_usd"]
    assert [e["details"]["what"] for e in store.order_log("safe") if e["step"] == "tx"] == ["eMode", "delegate",
                                                                                           "flash lever"]
    _price_for_hf(market, key.address, 1.005)
    _only_reserve_left(market, key.address, store)
    sent = len(store.orders("safe"))
    live, store, cfg = _session(node, path, db, "eth_leveraged", TIGHT)
    live.tick()
    new = store.orders("safe")[sent:]
    assert new[-1]["instrument"] == "flash_loan_deleverage"
    _delever_checks(market, key, store, cfg, new, None)
    last = live.tick()
    assert _account(market, key.address, last["block"])[2] >= cfg.leverage.hf_floor
    assert abs(last["reconciliation"]["attribution"]["unexplained"]) < 1e-6


def test_a_restart_after_a_30pct_move_plans_again_and_checks_the_limit_at_the_new_value(
        local_market, tmp_path_factory, tmp_path, monkeypatch):
    """Planned at ETH 3,000 (the entry's net 60,000 USD; its largest step, the ~400,000 USD stake, under
    live.max_order_usd 450,000), approved, and the session stops before sending. It restarts after ETH rose 30%:
    nothing planned before goes; the fresh plan is the same orders, the stake now ~520,000 USD: refused at that
    value."""
    monkeypatch.setenv("FUND_PW", PASSWORD)
    node, market, _ = local_market
    w3 = market.deployer.w3
    weth, weeth = (market.oracle.functions.getAssetPrice(market.tokens[s].address).call() / 1e8
                   for s in ("WETH", "weETH"))
    key, path = _wallet(local_market, tmp_path_factory, "restart", 60_000 / weth + RESERVE)
    db = tmp_path / "runs.db"
    sets = ["live.max_order_usd=450000", "live.max_day_usd=1e6"]
    live, store, cfg = _session(node, path, db, "eth_leveraged", sets, execute="confirm")
    first = live.tick()
    assert "approval_needed" in first["alerts"]
    [head] = [o for o in store.orders("safe") if o["action"] == "flash_loan"]
    assert head["status"] == "awaiting" and head["counted_usd"] == pytest.approx(60_000, rel=0.01)
    largest = max(o["notional_usd"] for o in store.orders("safe") if o["bundle"] == head["bundle"])
    assert 350_000 < largest < 450_000 < largest * 1.3
    store.decide("safe", 0, None, True, "operator")  # approved; the session is stopped before it sends
    nonce = w3.eth.get_transaction_count(key.address)

    market.set_price("WETH", weth * 1.3)
    market.set_price("weETH", weeth * 1.3)
    live, store, cfg = _session(node, path, db, "eth_leveraged", sets, execute="confirm")
    live.run(ticks=1, every=0)  # the restart: lost answers looked up, then a fresh reading and plan
    assert w3.eth.get_transaction_count(key.address) == nonce  # nothing was sent
    orders = store.orders("safe")
    assert {o["status"] for o in orders if o["tick"] == 0} == {"expired"}
    assert {e["step"] for e in store.order_log("safe") if e["client_id"] == head["client_id"]} >= {"superseded"}
    [fresh] = [o for o in orders if o["tick"] == 1 and o["action"] == "flash_loan"]
    assert fresh["counted_usd"] == pytest.approx(head["counted_usd"] * 1.3, rel=0.01)
    now = max(o["notional_usd"] for o in orders if o["tick"] == 1 and o["bundle"] == fresh["bundle"])
    assert now == pytest.approx(largest * 1.3, rel=0.01)
    assert fresh["status"] == "blocked" and f"largest step {now:,.2f} USD > live.max_order_usd 450,000.00" in \
        fresh["note"]
    assert any(a["kind"] == "limit" and a["details"]["client_id"] == fresh["client_id"] for a in store.alerts("safe"))
