"""`basiskit live ...`: the fund's real accounts. `live accounts` reads what the chain says the wallets of
accounts.yaml hold (wallet tokens, Aave supplies and debts, Aave's own health factor)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..errors import ConfigError
from ..live.accounts import accounts_path, load_accounts
from ..results.db import json_safe
from .output import JsonOption, out, run_or_fail

live_app = typer.Typer(no_args_is_help=True, help="The fund's real accounts, read from the venues and the chain.")


@live_app.command("accounts")
def accounts(
    accounts_file: Annotated[Path | None, typer.Option("--accounts", help="accounts.yaml (else $BASISKIT_ACCOUNTS).")]
    = None,
    rpc_url: Annotated[str | None, typer.Option(help="Ethereum RPC URL (the chain accounts.yaml names).")] = None,
    as_json: JsonOption = False,
) -> None:
    """What the chain says each wallet of accounts.yaml holds now: ETH, tokens, Aave supplies, debts and HF."""
    from ..connectors.chain import ChainClient

    found = run_or_fail(lambda: load_accounts(accounts_path(accounts_file)))
    if not found.wallets:
        return
    if not rpc_url:
        run_or_fail(lambda: _raise(ConfigError([("--rpc-url", None, "reading wallets needs an Ethereum RPC URL")])))
    client = run_or_fail(lambda: ChainClient.from_url(rpc_url))
    chain_id = client.chain_id()
    if chain_id != found.chain_id:
        run_or_fail(lambda: _raise(ConfigError([("chain_id", found.chain_id, f"the RPC serves chain {chain_id}; "
                                                 "point --rpc-url at the chain accounts.yaml names")])))
    block = client.w3.eth.block_number
    held = {w.name: client.account(w.address, block) for w in found.wallets}
    if as_json:
        sys.stdout.write(json.dumps(json_safe(held)) + "\n")
        return
    for name, a in held.items():
        t = Table(title=f"wallet {name} at block {a['block']}", show_header=True)
        for col in ("asset", "wallet", "supplied", "borrowed"):
            t.add_column(col, justify="right" if col != "asset" else "left")
        t.add_row("ETH", f"{a['eth']:,.6f}", "", "")
        for asset in a["wallet"]:
            t.add_row(asset, f"{a['wallet'][asset]:,.6f}", f"{a['supplied'][asset]:,.6f}",
                      f"{a['borrowed'][asset]:,.6f}")
        aave = a["aave"]
        t.add_row("Aave HF", f"{aave['health_factor']:.4f}", f"LTV {aave['ltv']:.2%}", f"eMode {aave['emode']}")
        out.print(t)


def _raise(exc: Exception):
    raise exc
