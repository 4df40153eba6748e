"""What an operator lives through, on the local chain with Aave v3's contracts: a 10,000-block gap with a deposit
and an Aave supply in it, an RPC outage, a second session on the same wallet, a session killed with -9, and
`chain up` on a port another node serves."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytest.importorskip("web3")

from basiskit.connectors.chain import ChainClient  # noqa: E402
from basiskit.data.dataset import SAMPLE_DIR, Dataset  # noqa: E402
from basiskit.engine.runconfig import load_run_config  # noqa: E402
from basiskit.live.accounts import load_accounts  # noqa: E402
from basiskit.live.session import LiveLimits, LiveSession  # noqa: E402
from basiskit.live.store import LiveStore  # noqa: E402
from server import free_port  # noqa: E402
from test_live_safety import COMMON, PASSWORD, WIDE, _session, _wallet  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
E18 = 10**18


def _as(market, address, call, what):
    """A transaction the operator sends from the fund's wallet outside any session (anvil impersonation)."""
    w3 = market.deployer.w3
    w3.provider.make_request("anvil_impersonateAccount", [address])
    try:
        return market.deployer.send(call, what, sender=address)
    finally:
        w3.provider.make_request("anvil_stopImpersonatingAccount", [address])


class RpcProxy:
    """A JSON-RPC proxy on 127.0.0.1 in front of a node; while `down` it answers 503 (the provider is out)."""

    def __init__(self, upstream: str):
        self.down = False
        self.calls: list[dict] = []  # every JSON-RPC call that went through
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                got = json.loads(body)
                outer.calls += got if isinstance(got, list) else [got]
                if outer.down:
                    self.send_response(503)
                    self.end_headers()
                    return
                req = urllib.request.Request(upstream, body, {"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=30) as got:
                    answer = got.read()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()


def _mine(w3, blocks: int) -> None:
    w3.provider.make_request("anvil_mine", [hex(blocks)])


GAP = int(os.environ.get("BASISKIT_GAP_BLOCKS", "2500"))  # anvil mines 10,000 blocks in ~70 s here (make fuzz: 10k)
CHUNK = 500  # live.log_chunk_blocks in this test: the gap is read in GAP / CHUNK requests per query


def test_a_long_gap_with_a_deposit_and_an_aave_supply_resumes_and_explains_both(local_market, tmp_path_factory,
                                                                                tmp_path, monkeypatch):
    """A session down over GAP blocks (longer than the 2,000-block wall there was) in which ETH was sent to the
    wallet and the operator supplied weETH to Aave from it: the next reading reads the gap in chunks of
    live.log_chunk_blocks and explains both (a deposit; a trade between the wallet and Aave, its gas as fees)."""
    monkeypatch.setenv("FUND_PW", PASSWORD)
    node, market, _ = local_market
    w3 = market.deployer.w3
    key, path = _wallet(local_market, tmp_path_factory, "gap", 2)
    weeth = market.tokens["weETH"]
    _as(market, key.address, weeth.functions.mint(key.address, 10 * E18), "mint weETH")
    found = load_accounts(path)
    cfg = load_run_config("eth_leveraged", sets=[f"live.log_chunk_blocks={CHUNK}"], dataset=Dataset(SAMPLE_DIR))
    store = LiveStore(tmp_path / "runs.db")
    proxy = RpcProxy(node.url)  # counts what the session asks of the node

    def session():
        return LiveSession(store, "gap", cfg, found, ChainClient.from_url(proxy.url, found.market()), {},
                           LiveLimits.for_config(cfg, 0.01), quiet=True)

    first = session().tick()
    _mine(w3, GAP // 3)
    donor = w3.eth.accounts[3]
    deposit = w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(
        {"from": donor, "to": key.address, "value": E18 // 2}))
    _mine(w3, GAP // 3)
    approve = _as(market, key.address, weeth.functions.approve(market.pool.address, 4 * E18), "approve")
    supply = _as(market, key.address, market.pool.functions.supply(weeth.address, 4 * E18, key.address, 0), "supply")
    _mine(w3, GAP - 2 * (GAP // 3))
    proxy.calls.clear()
    try:
        second = session().tick()  # a restart after the gap: it reads the chain's history since its last reading
    finally:
        proxy.stop()
    assert second["block"] - first["block"] > GAP and deposit["blockNumber"] < supply["blockNumber"]
    logs = [c["params"][0] for c in proxy.calls if c["method"] == "eth_getLogs"]
    spans = [int(q["toBlock"], 16) - int(q["fromBlock"], 16) + 1 for q in logs]
    assert max(spans) == CHUNK and len(logs) >= GAP // CHUNK  # bounded requests cover the gap
    lines = {line["key"]: line for line in second["reconciliation"]["lines"]}
    native, token, a_token = (lines[f"fund/{k}"] for k in ("ethereum/native/ETH", "ethereum/token/weeth",
                                                           "aave_v3/aToken/weeth"))
    assert native["moved"]["flows"] == 0.5  # the deposit: a transaction to the wallet, found in the gap
    gas = sum(r["gasUsed"] * r["effectiveGasPrice"] for r in (approve, supply)) / E18
    assert native["moved"]["fees"] == pytest.approx(-gas, rel=1e-12)  # the operator's transactions' gas
    assert token["moved"]["trades"] == -4.0 and a_token["moved"]["trades"] == pytest.approx(4.0, rel=1e-12)
    assert all(abs(line["unexplained"]) < 1e-12 for line in lines.values()), lines
    assert "unexplained" not in second["alerts"] and "flow" in second["alerts"]


def test_an_rpc_outage_is_alerted_the_session_resumes_by_itself_and_sends_only_on_a_fresh_reading(
        local_market, tmp_path_factory, tmp_path, monkeypatch):
    """The outage lasts 6 s against an alert level of 2 s (a 60 s outage with live.outage_alert_s=20, in scale). An
    entry planned before it and approved during it goes only once a reading after it re-planned it."""
    monkeypatch.setenv("FUND_PW", PASSWORD)
    node, market, _ = local_market
    proxy = RpcProxy(node.url)
    key, path = _wallet(local_market, tmp_path_factory, "outage", 20)
    sets = [*WIDE, "live.outage_alert_s=2", "live.outage_alert_every_minutes=0.05", "live.fresh_reading_seconds=4"]

    class Proxied:  # the node behind the proxy
        url = proxy.url

    try:
        live, store, cfg = _session(Proxied, path, tmp_path / "runs.db", "eth_leveraged", sets, execute="confirm")
        live.retry_wait = 0.2
        live.tick()  # plan 0: the entry, awaiting approval
        assert [o["status"] for o in store.orders("safe")][-1:] == ["awaiting"], store.alerts("safe")
        went_down = time.time()
        proxy.down = True
        store.decide("safe", 0, None, True, "operator")  # approved while the RPC is out
        runner = threading.Thread(target=live.run, args=(1, 0.0))
        runner.start()
        time.sleep(6)
        assert runner.is_alive()  # it waits for the node, it does not exit
        nonce = market.deployer.w3.eth.get_transaction_count(key.address)
        assert nonce == 0  # nothing went while it could not read
        back = time.time()
        proxy.down = False
        runner.join(120)
        assert not runner.is_alive()
    finally:
        proxy.stop()
    kinds = [a["kind"] for a in store.alerts("safe")]
    assert "outage" in kinds and kinds.index("outage") < kinds.index("recovered")
    orders = store.orders("safe")
    assert {o["status"] for o in orders if o["tick"] == 0} == {"expired"}  # planned before: never sent
    sent = [o for o in orders if o["status"] == "filled"]
    assert sent and {o["tick"] for o in sent} == {1}
    with store._conn() as con:
        read = con.execute("SELECT read_epoch FROM live_ticks WHERE session = 'safe' AND tick = 1").fetchone()[0]
    assert read > went_down + 2  # the reading they were planned on was taken late in the outage or after it
    assert back - went_down >= 6
    assert "approval_carried" in kinds  # the fresh plan was the same entry: the approval stood


def _cli(*args, env, timeout=120, **kwargs):
    return subprocess.run([sys.executable, "-m", "basiskit.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def test_one_session_per_wallet_whatever_its_store_and_a_killed_one_is_shown_dead(local_market, tmp_path_factory,
                                                                                 tmp_path):
    node, market, _ = local_market
    key, path = _wallet(local_market, tmp_path_factory, "lease", 1)
    env = {**os.environ, "FUND_PW": PASSWORD}
    run = ["live", "run", "eth_leveraged", "--accounts", str(path), "--rpc-url", node.url, "--no-plan", "--every",
           "1", "--set", "live.heartbeat_s=1", *[x for s in COMMON for x in ("--set", s)]]
    a_db, b_db = tmp_path / "a.db", tmp_path / "b.db"
    first = subprocess.Popen([sys.executable, "-m", "basiskit.cli", *run, "--session", "A", "--db", str(a_db)],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            if a_db.exists():
                got = json.loads(_cli("live", "status", "A", "--json", "--db", str(a_db), env=env).stdout or "{}")
                if got.get("last") and got.get("heartbeat_age_s") is not None:
                    break
            assert first.poll() is None, first.stderr.read()
            time.sleep(0.5)
        assert got["status"] == "running"
        second = _cli(*run, "--session", "B", "--db", str(b_db), "--ticks", "1", env=env)
        assert second.returncode == 2, second.stderr
        assert "is held by live session 'A'" in second.stderr and f"pid {first.pid}" in second.stderr
        assert key.address.lower() in second.stderr and "Traceback" not in second.stderr
        # a kill lifted while it runs: it runs on (and is shown dead when it dies, whatever its status said)
        assert _cli("live", "kill", "A", "--db", str(a_db), env=env).returncode == 0
        assert _cli("live", "resume", "A", "--db", str(a_db), env=env).returncode == 0
        assert json.loads(_cli("live", "status", "A", "--json", "--db", str(a_db), env=env).stdout)["status"] == \
            "running"
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        killed = time.time()
        while True:
            got = json.loads(_cli("live", "status", "A", "--json", "--db", str(a_db), env=env).stdout)
            if got["status"] == "dead":
                break
            assert time.time() - killed < 2 * 1.0, got  # within two heartbeats
            time.sleep(0.1)
        listed = json.loads(_cli("live", "list", "--json", "--db", str(a_db), env=env).stdout)
        assert [s["status"] for s in listed if s["name"] == "A"] == ["dead"]
        # a dead session cannot alert: `basiskit serve` does, once
        from basiskit.data.dataset import SAMPLE_DIR
        from server import Server

        api = Server(a_db, SAMPLE_DIR, tmp_path / "server.log").start()
        try:
            deadline = time.time() + 30
            while not [a for a in api.get("/live/A/alerts").json() if a["kind"] == "heartbeat_lost"]:
                assert time.time() < deadline
                time.sleep(0.5)
            time.sleep(6)  # another look of the watch: no second alert for the same death
            lost = [a for a in api.get("/live/A/alerts").json() if a["kind"] == "heartbeat_lost"]
            assert len(lost) == 1 and f"pid {first.pid}" in lost[0]["message"]
            assert api.get("/live/A").json()["status"] == "dead"
        finally:
            api.stop()
        # the dead session's lease is free: the second one starts now
        again = _cli(*run, "--session", "B", "--db", str(b_db), "--ticks", "1", env=env)
        assert again.returncode == 0, again.stderr
    finally:
        if first.poll() is None:
            first.kill()


def test_chain_up_refuses_a_port_another_node_serves(local_market, tmp_path):
    node, market, _ = local_market
    w3 = market.deployer.w3
    before = w3.eth.block_number
    done = _cli("chain", "up", "--port", str(node.port), env=dict(os.environ), cwd=REPO, timeout=120)
    assert done.returncode == 2, done.stderr
    assert f"--port: {node.port}" in done.stderr and "already answers" in done.stderr
    assert w3.eth.block_number == before  # nothing was deployed onto the other node


def test_a_safety_order_may_pay_more_gas_than_the_voluntary_cap(local_market, tmp_path_factory, monkeypatch):
    """With the base fee at 150 gwei and live.max_gas_gwei 100, a voluntary order is not signed; a safety order may
    pay up to live.safety_max_gas_gwei (by default 3 x 100)."""
    from basiskit.cli.live import chain_executors
    from basiskit.execution.intents import OrderIntent
    from basiskit.live.chain_executor import LimitExceeded
    from basiskit.live.execution import Order

    monkeypatch.setenv("FUND_PW", PASSWORD)
    node, market, _ = local_market
    w3 = market.deployer.w3
    key, path = _wallet(local_market, tmp_path_factory, "gas", 1)
    found = load_accounts(path)
    cfg = load_run_config("eth_leveraged", sets=COMMON, dataset=Dataset(SAMPLE_DIR))
    assert cfg.live.max_gas_gwei == 100 and cfg.live.safety_gas_gwei == 300
    ex = chain_executors(found, ChainClient.from_url(node.url, found.market()), cfg.live)["aave_v3"]

    def order(trigger):
        i = OrderIntent("aave_v3", "aave_repay_WETH", "repay", 0.1, None, trigger, "aave_repay", "WETH",
                        trigger=trigger, safety=trigger == "health_factor")
        return Order.of("bk" + "0" * 30, 0, 0, i, 300.0, 0.0, 0.0)

    w3.provider.make_request("anvil_setNextBlockBaseFeePerGas", [hex(150 * 10**9)])
    w3.provider.make_request("evm_mine", [])
    try:
        assert w3.eth.get_block("latest")["baseFeePerGas"] == 150 * 10**9
        with pytest.raises(LimitExceeded, match="base fee 150.00 gwei > live.max_gas_gwei 100"):
            ex.request(order("releverage"))
        request = ex.request(order("health_factor"))
        assert request["max_fee_gwei"] == 300 and request["action"] == "aave_repay"
    finally:
        w3.provider.make_request("anvil_setNextBlockBaseFeePerGas", [hex(10**9)])
        w3.provider.make_request("evm_mine", [])
