"""`basiskit chain ...`: Aave v3 on a local anvil node, from the npm registry's anvil and @aave/core-v3
(installed by `make chain-tools`). `chain up` deploys a market and serves it until stopped; `chain verify-aave`
checks basiskit's Aave model against the contracts and prints one JSON line last."""

from __future__ import annotations

import json
import signal
import sys
import time
from typing import Annotated

import typer

from .output import DataOption, err, fail, run_or_fail

chain_app = typer.Typer(no_args_is_help=True, help="Aave v3 on a local chain (anvil), for tests and for anyone.")


@chain_app.command("up")
def up(
    port: Annotated[int, typer.Option(help="Port of the anvil node on 127.0.0.1.")] = 8545,
    rpc: Annotated[str | None, typer.Option("--rpc", help="Deploy onto this running node instead of starting one "
                                            "(a development chain whose first accounts are unlocked).")] = None,
    data: DataOption = None,
) -> None:
    """Start anvil on 127.0.0.1, deploy an Aave v3 market (WETH, USDT, weETH, wstETH) and serve it until Ctrl-C;
    prints the RPC URL and the market's addresses as JSON. A port something already answers on is refused (exit 2):
    it never deploys onto a node it did not start, unless --rpc names it."""
    from web3 import Web3

    from ..data.dataset import Dataset, resolve_data_dir
    from ..errors import ConfigError
    from ..localchain.deploy import Artifacts, deploy_market
    from ..localchain.tools import Anvil, ChainTools, port_answers

    tools = run_or_fail(ChainTools.locate)
    risk = run_or_fail(lambda: Dataset(resolve_data_dir(data)[0]).params("params/aave_v3_risk"))
    if rpc is not None:
        w3 = Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": 20}))
        chain_id = run_or_fail(lambda: _chain_id(w3, rpc))
        market = run_or_fail(lambda: deploy_market(w3, Artifacts.of(tools), risk))
        sys.stdout.write(json.dumps({"rpc_url": rpc, "chain_id": chain_id, **market.aave_spec(),
                                     "treasury": market.treasury}) + "\n")
        return
    if port_answers(port):
        fail(ConfigError([("--port", port, f"something already answers on 127.0.0.1:{port}: choose a free port, or "
                           f"deploy onto that node with --rpc http://127.0.0.1:{port}")]))
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a stop ends anvil too
    node = run_or_fail(lambda: Anvil(tools, port=port).start())
    try:
        market = run_or_fail(lambda: deploy_market(Web3(Web3.HTTPProvider(node.url)), Artifacts.of(tools),
                                                   risk))
        sys.stdout.write(json.dumps({"rpc_url": node.url, "chain_id": node.chain_id, **market.aave_spec(),
                                     "treasury": market.treasury}) + "\n")
        sys.stdout.flush()
        err.print(f"[green]Aave v3 market on {node.url}[/green]; Ctrl-C stops the node.", highlight=False)
        try:
            while node.proc.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    finally:
        node.stop()


def _chain_id(w3, rpc: str) -> int:
    from ..errors import ConfigError

    try:
        return int(w3.eth.chain_id)
    except Exception as exc:  # noqa: BLE001 (any transport or RPC error: the URL cannot be read)
        raise ConfigError([("--rpc", rpc, f"cannot be read ({type(exc).__name__}): is the node up?")]) from None


@chain_app.command("verify-aave")
def verify_aave(data: DataOption = None) -> None:
    """basiskit's Aave model against Aave's own contracts: balances, indexes, HF, LTV, max borrow, liquidations.
    The last line of stdout is one JSON object (checks, max_rel_diff per quantity, failures); exit 1 on a failure."""
    from ..localchain.verify import verify

    cmp, summary = run_or_fail(lambda: verify(data))
    for failure in cmp.failures:
        print(f"FAIL {failure}", file=sys.stderr)
    sys.stdout.write(summary + "\n")
    raise typer.Exit(0 if not cmp.failures and cmp.checks >= 30 else 1)
