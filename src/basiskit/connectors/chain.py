"""Ethereum reads through web3.py: the Aave v3 reserves (indexes, rates, totals, oracle price) and gas,
as rows of the dataset's aave/*_reserve_1d and gas/ethereum_gas_1h series.

Indexes are read as the Pool's getReserveNormalizedIncome / getReserveNormalizedVariableDebt: the index
balances are worth at that block (the stored liquidityIndex is the one of the reserve's last update;
Aave v3 docs, ReserveLogic). Rates are currentLiquidityRate / currentVariableBorrowRate (ray, APR). The
oracle's prices are USD with 8 decimals (Aave v3 AaveOracle, BASE_CURRENCY_UNIT = 1e8). The LST rate to
ETH is derived as in the dataset: the LST's oracle price / WETH's, on the same block.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..errors import require_live_extra

RAY = 10**27
ORACLE_UNIT = 10**8
GWEI = 10**9
# Aave v3 Ethereum market (Aave address book, AaveV3Ethereum).
POOL = "0x87870Bca3F3fD6335C3F4ce8392D69350B4fA4E2"
ORACLE = "0x54586bE62E3c3580375aE3723C145253060Ca0C2"
ASSETS = {  # dataset reserve name -> (token address, decimals)
    "usdt": ("0xdAC17F958D2ee523a2206206994597C13D831ec7", 6),
    "weth": ("0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2", 18),
    "weeth": ("0xCd5fE23C85820F7B72D0926FC9b05b43E359b7ee", 18),
    "wsteth": ("0x7f39C581F595B53c5cb19bD0b3f8dA6c935E2Ca0", 18),
}


@dataclass(frozen=True)
class AaveMarket:
    """Where an Aave v3 market lives: its Pool, its oracle, and each reserve's token (dataset name -> address,
    decimals). Mainnet by default; a local chain's deploy gives its own."""

    pool: str = POOL
    oracle: str = ORACLE
    assets: dict[str, tuple[str, int]] = field(default_factory=lambda: dict(ASSETS))


MAINNET = AaveMarket()
RESERVE = re.compile(r"^aave/([a-z]+)_reserve_1d$")
GAS = "gas/ethereum_gas_1h"

_RESERVE_DATA = [  # IPool.getReserveData -> DataTypes.ReserveDataLegacy
    ("configuration", "tuple", [("data", "uint256")]), ("liquidityIndex", "uint128", None),
    ("currentLiquidityRate", "uint128", None), ("variableBorrowIndex", "uint128", None),
    ("currentVariableBorrowRate", "uint128", None), ("currentStableBorrowRate", "uint128", None),
    ("lastUpdateTimestamp", "uint40", None), ("id", "uint16", None), ("aTokenAddress", "address", None),
    ("stableDebtTokenAddress", "address", None), ("variableDebtTokenAddress", "address", None),
    ("interestRateStrategyAddress", "address", None), ("accruedToTreasury", "uint128", None),
    ("unbacked", "uint128", None), ("isolationModeTotalDebt", "uint128", None),
]


def _out(name: str, typ: str, components) -> dict:
    out = {"name": name, "type": typ}
    if components:
        out["components"] = [_out(n, t, None) for n, t in components]
    return out


def _fn(name: str, inputs: list[tuple[str, str]], outputs: list[dict]) -> dict:
    return {"type": "function", "name": name, "stateMutability": "view",
            "inputs": [{"name": n, "type": t} for n, t in inputs], "outputs": outputs}


POOL_ABI = [
    _fn("getReserveData", [("asset", "address")],
        [{"name": "", "type": "tuple", "components": [_out(*f) for f in _RESERVE_DATA]}]),
    _fn("getReserveNormalizedIncome", [("asset", "address")], [{"name": "", "type": "uint256"}]),
    _fn("getReserveNormalizedVariableDebt", [("asset", "address")], [{"name": "", "type": "uint256"}]),
    _fn("getUserAccountData", [("user", "address")], [{"name": n, "type": "uint256"} for n in (
        "totalCollateralBase", "totalDebtBase", "availableBorrowsBase", "currentLiquidationThreshold", "ltv",
        "healthFactor")]),
    _fn("getUserEMode", [("user", "address")], [{"name": "", "type": "uint256"}]),
]
ORACLE_ABI = [_fn("getAssetPrice", [("asset", "address")], [{"name": "", "type": "uint256"}])]
ERC20_ABI = [_fn("totalSupply", [], [{"name": "", "type": "uint256"}]),
             _fn("balanceOf", [("account", "address")], [{"name": "", "type": "uint256"}])]
WAD = 10**18
BPS = 10**4
NO_DEBT_HF = 2**256 - 1  # getUserAccountData's health factor when the account has no debt
# keccak256("Transfer(address,address,uint256)"), the ERC20 Transfer event's topic (EIP-20)
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"


def where_of(url: str) -> str:
    """An RPC URL as it may be shown: scheme, host and port only."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def reserve_of(series: str) -> str | None:
    m = RESERVE.match(series)
    return m.group(1) if m and m.group(1) in ASSETS else None


class ChainClient:
    """Reads at one block; `provider` is a web3 provider (an HTTPProvider for --rpc-url, or any other)."""

    def __init__(self, provider, market: AaveMarket = MAINNET):
        Web3 = require_live_extra("web3").Web3  # noqa: N806 (the library's class name)

        self.w3 = Web3(provider)
        self.url: str | None = None  # set by from_url: errors show only where_of(url)
        self.market = market
        self.pool = self.w3.eth.contract(address=market.pool, abi=POOL_ABI)
        self.oracle = self.w3.eth.contract(address=market.oracle, abi=ORACLE_ABI)

    @classmethod
    def from_url(cls, url: str, market: AaveMarket = MAINNET) -> ChainClient:
        web3 = require_live_extra("web3")
        client = cls(web3.Web3.HTTPProvider(url, request_kwargs={"timeout": 20}), market)
        client.url = url
        return client

    def scrub(self, text: str) -> str:
        """`text` (an error's message) without the RPC URL's path, query or credentials: a provider's URL often
        carries its API key there."""
        if not self.url:
            return text
        parts = urlsplit(self.url)
        text = text.replace(self.url, where_of(self.url))
        for secret in (parts.path.strip("/"), parts.query, parts.username, parts.password):
            if secret:
                text = text.replace(secret, "***")
        return text

    def block_at(self, t: int) -> int:
        """The first block at or after time t (binary search on block timestamps)."""
        eth = self.w3.eth
        hi = eth.block_number
        if eth.get_block(hi)["timestamp"] < t:
            return hi
        lo = 0  # any time since genesis: ~25 reads of block headers
        while lo < hi:
            mid = (lo + hi) // 2
            if eth.get_block(mid)["timestamp"] < t:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def reserve(self, name: str, block: int) -> dict[str, float]:
        """One aave/{name}_reserve_1d row at `block`."""
        asset, decimals = self.market.assets[name]
        pool = self.pool.functions
        data = pool.getReserveData(asset).call(block_identifier=block)
        income = pool.getReserveNormalizedIncome(asset).call(block_identifier=block)
        debt = pool.getReserveNormalizedVariableDebt(asset).call(block_identifier=block)
        price = self.oracle.functions.getAssetPrice(asset).call(block_identifier=block)
        a_token = self.w3.eth.contract(address=data[8], abi=ERC20_ABI).functions.totalSupply().call(
            block_identifier=block)
        v_debt = self.w3.eth.contract(address=data[10], abi=ERC20_ABI).functions.totalSupply().call(
            block_identifier=block)
        unit = 10**decimals
        return {"block_number": float(block), "liquidity_index": income / RAY, "liquidity_rate": data[2] / RAY,
                "variable_borrow_index": debt / RAY, "variable_borrow_rate": data[4] / RAY,
                "total_supply": a_token / unit, "total_variable_debt": v_debt / unit,
                "oracle_price_usd": price / ORACLE_UNIT}

    def gas_at(self, block: int) -> dict[str, float]:
        """A past hour's gas/ethereum_gas_1h row from its block: the block's base fee, the median priority fee
        its transactions paid (eth_feeHistory's 50th reward percentile at that block) and the price of a
        transaction paying them (base + median, the dataset's definition), gwei."""
        eth = self.w3.eth
        base = eth.get_block(block)["baseFeePerGas"]
        history = eth.fee_history(1, block, [50])
        median = history["reward"][0][0]
        return {"gas_price_gwei": (base + median) / GWEI, "base_fee_gwei": base / GWEI,
                "priority_fee_p50_gwei": median / GWEI, "block_number": float(block)}

    def indexes(self, block: int) -> dict[str, tuple[float, float, float]]:
        """Each reserve's (normalized income, normalized variable debt, oracle price in USD) at `block`: what one
        scaled unit of aToken and of debt is worth then, and the price Aave values it at."""
        pool, out = self.pool.functions, {}
        for name, (asset, _) in self.market.assets.items():
            out[name] = (pool.getReserveNormalizedIncome(asset).call(block_identifier=block) / RAY,
                         pool.getReserveNormalizedVariableDebt(asset).call(block_identifier=block) / RAY,
                         self.oracle.functions.getAssetPrice(asset).call(block_identifier=block) / ORACLE_UNIT)
        return out

    def index(self, reserve: str, kind: str, block: int) -> float:
        """One reserve's normalized income (kind aToken) or variable debt (debtToken) at `block`."""
        asset = self.market.assets[reserve][0]
        fn = (self.pool.functions.getReserveNormalizedIncome if kind == "aToken"
              else self.pool.functions.getReserveNormalizedVariableDebt)
        return fn(asset).call(block_identifier=block) / RAY

    def tokens(self, block: int) -> dict[tuple[str, str], tuple[str, int]]:
        """Every token a wallet can hold in this market: (kind, reserve) -> (address, decimals), kind "token"
        (the underlying), "aToken" or "debtToken"."""
        out = {}
        for name, (asset, decimals) in self.market.assets.items():
            data = self.pool.functions.getReserveData(asset).call(block_identifier=block)
            out[("token", name)] = (asset, decimals)
            out[("aToken", name)] = (data[8], decimals)
            out[("debtToken", name)] = (data[10], decimals)
        return out

    def transfers(self, address: str, tokens: dict[tuple[str, str], tuple[str, int]], after: int, until: int,
                  ignore: set[str]) -> list[dict]:
        """ERC20 Transfer logs into or out of `address` in blocks (after, until], in token units (in > 0), with
        the counterparty; transfers with an address of `ignore` (the zero address, the pool, the market's
        tokens: mints, burns and the pool's own moves) are left out."""
        w3 = self.w3
        if until <= after:
            return []
        by_address = {w3.to_checksum_address(a): (key, dec) for key, (a, dec) in tokens.items()}
        me = "0x" + "00" * 12 + address[2:].lower()
        skip = {a.lower() for a in ignore}
        out = []
        for topics, sign in (([TRANSFER_TOPIC, me], -1.0), ([TRANSFER_TOPIC, None, me], 1.0)):
            logs = w3.eth.get_logs({"fromBlock": after + 1, "toBlock": until, "address": list(by_address),
                                    "topics": topics})
            for log in logs:
                key, decimals = by_address[w3.to_checksum_address(log["address"])]
                other_topic = log["topics"][2 if sign < 0 else 1]
                other = "0x" + bytes(other_topic)[-20:].hex()
                if other.lower() in skip:
                    continue
                amount = int.from_bytes(bytes(log["data"]), "big") / 10**decimals
                out.append({"block": int(log["blockNumber"]), "kind": key[0], "reserve": key[1],
                            "units": sign * amount, "counterparty": w3.to_checksum_address(other),
                            "tx": bytes(log["transactionHash"]).hex().removeprefix("0x")})
        return sorted(out, key=lambda f: f["block"])

    def gas_spent(self, address: str, after: int, until: int, max_blocks: int = 2_000) -> float:
        """ETH the account paid for its own transactions in blocks (after, until]: gasUsed x effectiveGasPrice of
        each (none when its nonce did not move)."""
        eth = self.w3.eth
        user = self.w3.to_checksum_address(address)
        if until <= after or eth.get_transaction_count(user, after) == eth.get_transaction_count(user, until):
            return 0.0
        if until - after > max_blocks:
            raise ValueError(f"{until - after} blocks to scan for {address}'s gas (more than {max_blocks})")
        paid = 0
        for n in range(after + 1, until + 1):
            for tx in eth.get_block(n, full_transactions=True)["transactions"]:
                if tx["from"] == user:
                    receipt = eth.get_transaction_receipt(tx["hash"])
                    paid += receipt["gasUsed"] * receipt["effectiveGasPrice"]
        return paid / WAD

    def chain_id(self) -> int:
        return int(self.w3.eth.chain_id)

    def account(self, address: str, block: int) -> dict:
        """What the chain says `address` holds at `block`: ETH; each asset in the wallet, supplied to Aave (its
        aToken balance) and borrowed (its variable debt token balance), in token units; and Aave's own view
        of the account (IPool.getUserAccountData: collateral, debt and available borrows in the oracle's USD,
        8 decimals; liquidation threshold and LTV in bps; health factor in wad; getUserEMode's category)."""
        w3 = self.w3
        user = w3.to_checksum_address(address)
        out: dict = {"block": block, "eth": w3.eth.get_balance(user, block_identifier=block) / WAD,
                     "wallet": {}, "supplied": {}, "borrowed": {}}
        for name, (asset, decimals) in self.market.assets.items():
            unit = 10**decimals
            data = self.pool.functions.getReserveData(asset).call(block_identifier=block)
            for key, token in (("wallet", asset), ("supplied", data[8]), ("borrowed", data[10])):
                contract = w3.eth.contract(address=w3.to_checksum_address(token), abi=ERC20_ABI)
                out[key][name] = contract.functions.balanceOf(user).call(block_identifier=block) / unit
        coll, debt, avail, threshold, ltv, hf = self.pool.functions.getUserAccountData(user).call(
            block_identifier=block)
        out["aave"] = {"collateral_usd": coll / ORACLE_UNIT, "debt_usd": debt / ORACLE_UNIT,
                       "available_borrows_usd": avail / ORACLE_UNIT, "liquidation_threshold": threshold / BPS,
                       "ltv": ltv / BPS, "health_factor": float("inf") if hf == NO_DEBT_HF else hf / WAD,
                       "emode": int(self.pool.functions.getUserEMode(user).call(block_identifier=block))}
        return out
