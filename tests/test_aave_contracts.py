"""basiskit's Aave model against Aave v3's own contracts (@aave/core-v3) on a local anvil node."""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from basiskit.localchain.verify import run

REPO = Path(__file__).resolve().parents[1]


def test_make_verify_aave_holds_within_a_billionth(chain_tools):
    """The command's last stdout line is the JSON summary: >= 30 comparisons, every quantity within 1e-9 (or one
    smallest unit), no failure; the versions are the ones chain/package.json pins."""
    done = subprocess.run([sys.executable, "-m", "basiskit.cli", "chain", "verify-aave"], capture_output=True,
                          text=True, cwd=REPO, timeout=300,
                          env={**os.environ, "BASISKIT_CHAIN_TOOLS": str(chain_tools.node_modules)})
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    pins = json.loads((REPO / "chain" / "package.json").read_text())["dependencies"]
    assert summary["aave_core_version"] == pins["@aave/core-v3"]
    assert summary["anvil_version"] == pins["@foundry-rs/anvil-linux-amd64"]
    assert summary["checks"] >= 30 and summary["failures"] == []
    for quantity in ("atoken_balance", "debt_balance", "liquidity_index", "borrow_index", "health_factor", "ltv",
                     "available_borrows_usd", "max_borrow", "repaid_debt", "seized_collateral", "protocol_fee",
                     "bad_debt_left"):
        assert summary["max_rel_diff"][quantity] <= 1e-9, quantity


def test_chain_up_serves_a_market_until_stopped(chain_tools):
    """`make chain`'s command: the first stdout line names the RPC and the market; the pool answers for each
    reserve with the token it was deployed with; a stop (SIGTERM) ends anvil with it."""
    from web3 import Web3

    from basiskit.connectors.chain import AaveMarket, ChainClient
    from basiskit.localchain.tools import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "basiskit.cli", "chain", "up", "--port", str(port)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "BASISKIT_CHAIN_TOOLS": str(chain_tools.node_modules)})
    try:
        info = json.loads(proc.stdout.readline())
        assert info["rpc_url"] == f"http://127.0.0.1:{port}" and info["chain_id"] == 31337
        market = AaveMarket(info["pool"], info["oracle"], {k: (v, 6 if k == "usdt" else 18)
                                                           for k, v in info["assets"].items()})
        client = ChainClient(Web3.HTTPProvider(info["rpc_url"]), market)
        prices = {name: price for name, (_, _, price) in client.indexes("latest").items()}
        assert prices == {"weth": 3000.0, "usdt": 1.0, "weeth": 3150.0, "wsteth": 3540.0}
    finally:
        proc.terminate()
        assert proc.wait(20) is not None
    with pytest.raises(ConnectionRefusedError):  # anvil went with it
        socket.create_connection(("127.0.0.1", port), timeout=2)


def test_a_model_off_by_a_parameter_is_caught(local_market):
    """The same scenario with a model whose eMode bonus and LTV differ from the deployed ones (1% -> 2%,
    93% -> 92%): the comparisons fail on exactly what those change."""
    _, market, risk = local_market
    wrong = copy.deepcopy(risk)
    for pair in wrong["emode"]["liquidation_bonus"]:
        wrong["emode"]["liquidation_bonus"][pair] = 0.02
        wrong["emode"]["ltv_limits"][pair] = 0.92
    cmp = run(market, wrong)
    failed = {f.split(": ")[1].split(" ")[0] for f in cmp.failures}
    assert {"ltv", "available_borrows_usd", "seized_collateral", "protocol_fee"} <= failed
    assert not failed & {"liquidity_index", "borrow_index", "liquidation_threshold"}
