"""The fund's accounts: accounts.yaml refused at start naming the entry; wallets read from the chain (through a
JSON-RPC server on 127.0.0.1 answering like an Ethereum node) in token units, with Aave's own view."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("web3")

from eth_abi import encode  # noqa: E402
from web3 import Web3  # noqa: E402

from basiskit.connectors.chain import ASSETS, POOL, ChainClient  # noqa: E402
from recorded import RecordedChain  # noqa: E402

USER = "0x" + "ab" * 20
RD = ("((uint256),uint128,uint128,uint128,uint128,uint128,uint40,uint16,address,address,address,address,"
      "uint128,uint128,uint128)")


def sel(signature: str) -> str:
    return "0x" + Web3.keccak(text=signature).hex().removeprefix("0x")[:8]


def token(kind: int, i: int) -> str:
    return "0x" + f"{kind:02x}{i:02x}" * 10


# what the account holds, in each token's smallest unit: wallet, aToken, variable debt
HOLDINGS = {"usdt": (1_234_560_000, 0, 0), "weth": (2 * 10**18, 0, 100 * 10**18),
            "weeth": (0, 150_500_000_000_000_000_000, 0), "wsteth": (0, 0, 0)}


def calls(hf_wad: int) -> dict:
    out = {}
    for i, (name, (asset, _)) in enumerate(ASSETS.items()):
        a_token, debt_token = token(1, i), token(2, i)
        wallet, supplied, borrowed = HOLDINGS[name]
        for address, amount in ((asset.lower(), wallet), (a_token, supplied), (debt_token, borrowed)):
            out[(address, sel("balanceOf(address)"))] = (lambda amt: lambda a, ts: (
                encode(["uint256"], [amt if a[-20:].hex() == USER[2:] else 0])))(amount)

    def reserve_data(args: bytes, ts: int) -> bytes:
        asset = "0x" + args[-20:].hex()
        i = [a.lower() for a, _ in ASSETS.values()].index(asset)
        return encode([RD], [((0,), 10**27, 0, 10**27, 0, 0, ts, i, token(1, i), token(3, i), token(2, i),
                              token(3, i), 0, 0, 0)])

    out[(POOL.lower(), sel("getReserveData(address)"))] = reserve_data
    out[(POOL.lower(), sel("getUserAccountData(address)"))] = lambda a, ts: encode(
        ["uint256"] * 6, [55_000_000_000_000, 33_000_000_000_000, 1_000_000_000, 9500, 9300, hf_wad])
    out[(POOL.lower(), sel("getUserEMode(address)"))] = lambda a, ts: encode(["uint256"], [1])
    return out


def chain(hf_wad: int = 1_117_647_058_823_529_411, chain_id: int = 1) -> RecordedChain:
    return RecordedChain(20_000_000, 1_719_792_000, 20_000_100, calls(hf_wad), chain_id=chain_id,
                         balances={USER: 3 * 10**18 + 5})


def test_a_wallet_is_read_in_token_units_with_aaves_own_view():
    client = ChainClient(chain().provider)
    got = client.account(USER, 20_000_100)
    assert got["eth"] == (3 * 10**18 + 5) / 1e18
    assert got["wallet"] == {"usdt": 1234.56, "weth": 2.0, "weeth": 0.0, "wsteth": 0.0}  # USDT has 6 decimals
    assert got["supplied"]["weeth"] == 150.5 and got["borrowed"]["weth"] == 100.0
    aave = got["aave"]
    assert aave["collateral_usd"] == 550_000.0 and aave["debt_usd"] == 330_000.0  # base currency: 8 decimals
    assert aave["liquidation_threshold"] == 0.95 and aave["ltv"] == 0.93 and aave["emode"] == 1
    assert aave["health_factor"] == 1_117_647_058_823_529_411 / 1e18
    assert ChainClient(chain(hf_wad=2**256 - 1).provider).account(USER, 20_000_100)["aave"]["health_factor"] \
        == float("inf")  # no debt: the contract's max uint


def cli(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASISKIT_")} | (env_extra or {})
    return subprocess.run([sys.executable, "-m", "basiskit.cli", "live", "accounts", *args], capture_output=True,
                          text=True, timeout=120, env=env)


def write(tmp_path, text: str):
    path = tmp_path / "accounts.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(("text", "env", "named"), [
    ("exchanges:\n  - {venue: binance, api_key_env: BK_KEY, secret_env: BK_SECRET}\n", {"BK_KEY": "k"},
     "exchanges.0.secret_env: 'BK_SECRET' -> this environment variable is not set"),
    ("wallets:\n  - {name: treasury, address: '0x12'}\n", {}, "wallets.0.address"),
    ("exchanges:\n  - {venue: kraken, api_key_env: K, secret_env: S}\n", {}, "exchanges.0.venue"),
    ("exchanges:\n  - {venue: okx, api_key_env: OK_KEY, secret_env: OK_SECRET}\n", {"OK_KEY": "k", "OK_SECRET": "s"},
     "exchanges.0.password_env"),
    ("exchanges:\n  - {venue: bybit, api_key_env: 'my secret value', secret_env: S}\n", {}, "exchanges.0.api_key_env"),
    (f"chain_id: 31337\nwallets:\n  - {{name: t, address: '{USER}'}}\n", {},
     "aave: None -> chain 31337 is not Ethereum mainnet"),
    (f"chain_id: 31337\naave: {{pool: '{USER}', oracle: '0x1', assets: {{weth: '{USER}'}}}}\n", {}, "aave.oracle"),
])
def test_a_bad_accounts_file_is_refused_naming_the_entry(tmp_path, text, env, named):
    r = cli("--accounts", write(tmp_path, text), env_extra=env)
    assert r.returncode == 2 and named in r.stderr, r.stderr
    assert "my secret value" not in r.stderr  # a secret pasted as a variable's name is never echoed


def test_the_rpc_must_serve_the_chain_the_file_names(tmp_path):
    rpc = chain(chain_id=5)
    url, server = rpc.serve()
    try:
        path = write(tmp_path, f"chain_id: 1\nwallets:\n  - {{name: treasury, address: '{USER}'}}\n")
        r = cli("--accounts", path, "--rpc-url", url)
        assert r.returncode == 2 and "chain_id: 1 -> the RPC serves chain 5" in r.stderr, r.stderr
    finally:
        server.shutdown()


def test_live_accounts_prints_what_the_chain_says(tmp_path):
    url, server = chain().serve()
    try:
        secret = "s3cr3t-never-printed"
        path = write(tmp_path, f"wallets:\n  - {{name: treasury, address: '{USER}'}}\nexchanges:\n"
                               "  - {venue: binance, api_key_env: BK_KEY, secret_env: BK_SECRET}\n")
        r = cli("--accounts", path, "--rpc-url", url, "--json", env_extra={"BK_KEY": secret, "BK_SECRET": secret})
        assert r.returncode == 0, r.stderr
        got = json.loads(r.stdout)["treasury"]
        assert got["supplied"]["weeth"] == 150.5 and got["borrowed"]["weth"] == 100.0 and got["aave"]["emode"] == 1
        assert secret not in r.stdout + r.stderr
    finally:
        server.shutdown()
