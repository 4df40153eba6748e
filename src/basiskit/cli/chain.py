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

from .output import DataOption, err, run_or_fail

chain_app = typer.Typer(no_args_is_help=True, help="Aave v3 on a local chain (anvil), for tests and for anyone.")


@chain_app.command("up")
def up(
    port: Annotated[int, typer.Option(help="Port of the anvil node on 127.0.0.1.")] = 8545,
    data: DataOption = None,
) -> None:
    """Start anvil on 127.0.0.1, deploy an Aave v3 market (WETH, USDT, weETH, wstETH) and serve it until Ctrl-C;
    prints the RPC URL and the market's addresses as JSON."""
    from web3 import Web3

    from ..data.dataset import Dataset, resolve_data_dir
    from ..localchain.deploy import Artifacts, deploy_market
    from ..localchain.tools import Anvil, ChainTools

    tools = run_or_fail(ChainTools.locate)
    risk = run_or_fail(lambda: Dataset(resolve_data_dir(data)[0]).params("params/aave_v3_risk"))
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a stop ends anvil too
    with Anvil(tools, port=port) as node:
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
