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
LOG_CHUNK = 2_000  # blocks per eth_getLogs request (live.log_chunk_blocks)
# Aave v3 IPool events (keccak256 of their signatures) -> the indexed places (1-3) the account can stand in
# (Supply(address,address,address,uint256,uint16), Withdraw(address,address,address,uint256),
# Borrow(address,address,address,uint256,uint8,uint256,uint16), Repay(address,address,address,uint256,bool))
POOL_EVENT_NAMES = {
    "2b627736bca15cd5381dcf80b0bf11fd197d01a037c52b927a881a10fb73ba61": "Supply",
    "3115d1449a7b732c986cba18244e897a450f61e1bb8d589cd2e69e6c8924f9f7": "Withdraw",
    "b3d084820fb1a9decffb176436bd02558d15fac9b0ddfed8c465bc7359d7dce0": "Borrow",
    "a534c8dbe71f871f9f3530e97a74601fea17b426cae02e1c5aee42c96c784051": "Repay",
}
_PLACES = {"Supply": (2,), "Withdraw": (2, 3), "Borrow": (2,), "Repay": (2, 3)}
POOL_EVENTS = {"0x" + h: _PLACES[n] for h, n in POOL_EVENT_NAMES.items()}
# WETH9's Deposit(address,uint256) and Withdrawal(address,uint256)
WETH_DEPOSIT = "0xe1fffcc4923d04b559f4d29a8bfc6cda04eb5b0d3c460751c2402c5c5cc9109c"
WETH_WITHDRAWAL = "0x7fcf532c15f0a6db0bd6d0e038bea71d30d808c7d98cb3bf7268a95bf5081b65"


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
        # the chain id cached (web3's request cache, that request only): web3's validation asks for it before every
        # eth_call and eth_estimateGas, doubling a de-lever's requests; a node's chain never changes under its URL
        provider = web3.Web3.HTTPProvider(url, request_kwargs={"timeout": 20}, cache_allowed_requests=True,
                                          cacheable_requests={"eth_chainId"})
        client = cls(provider, market)
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

    def logs(self, query: dict, after: int, until: int, chunk: int = LOG_CHUNK) -> list:
        """eth_getLogs over blocks (after, until] in requests of at most `chunk` blocks (providers cap the range):
        any gap is read, however long."""
        out: list = []
        lo = after + 1
        while lo <= until:
            hi = min(lo + chunk - 1, until)
            out += self.w3.eth.get_logs({**query, "fromBlock": lo, "toBlock": hi})
            lo = hi + 1
        return out

    def transfers(self, address: str, tokens: dict[tuple[str, str], tuple[str, int]], after: int, until: int,
                  ignore: set[str], chunk: int = LOG_CHUNK) -> list[dict]:
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
            logs = self.logs({"address": list(by_address), "topics": topics}, after, until, chunk)
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

    def nonce(self, address: str, block: int) -> int:
        return self.w3.eth.get_transaction_count(self.w3.to_checksum_address(address), block)

    def balance(self, address: str, block: int) -> int:
        return self.w3.eth.get_balance(self.w3.to_checksum_address(address), block)

    def change_blocks(self, address: str, after: int, until: int, nonce_only: bool = False) -> list[int]:
        """The blocks in (after, until] where the account's nonce (and, unless `nonce_only`, its ETH balance) changed,
        by bisection: a stretch whose ends agree is quiet (the balance falls only by the account's own transactions,
        which move its nonce; a deposit only raises it), so the reads grow with the changes found, by log2 of the
        gap, not with the gap."""
        def state(n: int) -> tuple:
            return (self.nonce(address, n),) if nonce_only else (self.nonce(address, n), self.balance(address, n))

        out: list[int] = []
        stack = [(after, until, state(after), state(until))] if until > after else []
        while stack:
            lo, hi, s_lo, s_hi = stack.pop()
            if s_lo == s_hi:
                continue
            if hi == lo + 1:
                out.append(hi)
                continue
            mid = (lo + hi) // 2
            s_mid = state(mid)
            stack += [(mid, hi, s_mid, s_hi), (lo, mid, s_lo, s_mid)]
        return sorted(out)

    def transactions_of(self, address: str, block: int) -> list[dict]:
        """The block's transactions from or to `address`: hash, from, to, value (wei), and for those it sent the gas
        it paid (gasUsed x effectiveGasPrice, wei)."""
        user = self.w3.to_checksum_address(address)
        out = []
        for tx in self.w3.eth.get_block(block, full_transactions=True)["transactions"]:
            if tx["from"] != user and tx.get("to") != user:
                continue
            row = {"hash": bytes(tx["hash"]).hex().removeprefix("0x"), "from": tx["from"], "to": tx.get("to"),
                   "value": int(tx["value"]), "gas": 0, "block": block}
            if tx["from"] == user:
                receipt = self.w3.eth.get_transaction_receipt(tx["hash"])
                row["gas"] = receipt["gasUsed"] * receipt["effectiveGasPrice"]
            out.append(row)
        return out

    def receipt_of(self, tx_hash: str) -> dict | None:
        """A transaction's block, sender and gas paid (wei), or None when it was never mined."""
        from web3.exceptions import TransactionNotFound

        try:
            r = self.w3.eth.get_transaction_receipt("0x" + tx_hash.removeprefix("0x"))
        except TransactionNotFound:
            return None
        return {"block": int(r["blockNumber"]), "from": r["from"], "gas": r["gasUsed"] * r["effectiveGasPrice"],
                "hash": tx_hash.removeprefix("0x")}

    def pool_events(self, address: str, after: int, until: int, chunk: int = LOG_CHUNK) -> list[dict]:
        """Aave v3 Pool Supply, Withdraw, Borrow and Repay events in (after, until] that move `address`'s balances
        (IPool events: Supply(reserve, user, onBehalfOf, amount, referral), Withdraw(reserve, user, to, amount),
        Borrow(reserve, user, onBehalfOf, amount, mode, rate, referral), Repay(reserve, user, repayer, amount,
        useATokens)), each with the parties, the reserve's dataset name and the amount in token units."""
        me = address.lower()
        by_address = {a.lower(): (name, dec) for name, (a, dec) in self.market.assets.items()}
        topic = "0x" + "00" * 12 + me[2:]
        logs = []
        for event, places in POOL_EVENTS.items():  # each event once per indexed place the account can stand in
            for place in places:
                topics = [event, None, None, None][: place + 1]
                topics[place] = topic
                logs += self.logs({"address": self.market.pool, "topics": topics}, after, until, chunk)
        out, seen = [], set()
        for log in logs:
            key = (bytes(log["transactionHash"]).hex(), int(log["logIndex"]))
            if key in seen:
                continue
            seen.add(key)
            name = POOL_EVENT_NAMES[bytes(log["topics"][0]).hex().removeprefix("0x")]
            t = [("0x" + bytes(x)[-20:].hex()) for x in log["topics"][1:]]
            data = bytes(log["data"])
            words = [data[i:i + 32] for i in range(0, len(data), 32)]
            reserve, decimals = by_address.get(t[0], (None, 18))
            if reserve is None:
                continue
            if name == "Supply":
                parties = {"user": "0x" + words[0][-20:].hex(), "on_behalf_of": t[1]}
                amount = int.from_bytes(words[1], "big")
            elif name == "Withdraw":
                parties, amount = {"user": t[1], "to": t[2]}, int.from_bytes(words[0], "big")
            elif name == "Borrow":
                parties = {"user": "0x" + words[0][-20:].hex(), "on_behalf_of": t[1]}
                amount = int.from_bytes(words[1], "big")
            else:
                parties = {"user": t[1], "repayer": t[2], "use_a_tokens": bool(int.from_bytes(words[1], "big"))}
                amount = int.from_bytes(words[0], "big")
            out.append({"event": name, "reserve": reserve, "units": amount / 10**decimals,
                        "block": int(log["blockNumber"]), "tx": key[0].removeprefix("0x"), **parties})
        return sorted(out, key=lambda e: e["block"])

    def weth_events(self, address: str, after: int, until: int, chunk: int = LOG_CHUNK) -> list[dict]:
        """WETH9 Deposit(dst, wad) and Withdrawal(src, wad) of `address` in (after, until]: native ETH wrapped and
        unwrapped (WETH9 emits no Transfer for them)."""
        if "weth" not in self.market.assets:
            return []
        weth = self.market.assets["weth"][0]
        topic = "0x" + "00" * 12 + address.lower()[2:]
        out = []
        for event, sign in ((WETH_DEPOSIT, 1.0), (WETH_WITHDRAWAL, -1.0)):
            for log in self.logs({"address": weth, "topics": [event, topic]}, after, until, chunk):
                out.append({"units": sign * int.from_bytes(bytes(log["data"])[:32], "big") / WAD,
                            "block": int(log["blockNumber"]),
                            "tx": bytes(log["transactionHash"]).hex().removeprefix("0x")})
        return sorted(out, key=lambda e: e["block"])

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


SECONDS_PER_BLOCK = 12  # Ethereum's slot time since the merge


class FeeHistory:
    """The gas price (base fee + the median priority fee, gwei: the dataset's definition) of every block of the last
    window, from eth_feeHistory (at most 1024 blocks a request); kept between calls, so each hour reads only the
    blocks since."""

    CHUNK = 1024

    def __init__(self, chain: ChainClient):
        self.chain = chain
        self.prices: dict[int, float] = {}  # block -> gwei
        self.first_served: int | None = None  # the oldest block the node gave a fee for, when it keeps fewer

    def quantile(self, block: int, window_seconds: int, q: float = 0.99) -> float:
        """The q-quantile of the prices of the window's blocks up to `block` (numpy's linear interpolation)."""
        import numpy as np

        first = max(block - window_seconds // SECONDS_PER_BLOCK + 1, 1)
        self.prices = {n: p for n, p in self.prices.items() if first <= n <= block}
        hi = block
        while hi >= first:
            while hi >= first and hi in self.prices:
                hi -= 1
            if hi < first:
                break
            n = min(self.CHUNK, hi - first + 1)
            got = self._history(n, hi)
            if got is None:  # the node keeps no fee history that far back: the window is what it serves
                self.first_served = hi + 1
                break
            base = got["baseFeePerGas"][:n]
            rewards = got.get("reward") or [[0]] * n
            oldest = int(got["oldestBlock"])
            if oldest > hi or not base:
                break
            for i, (b, r) in enumerate(zip(base, rewards, strict=False)):
                self.prices[oldest + i] = (b + (r[0] if r else 0)) / GWEI
            hi = oldest - 1
        values = [p for n, p in self.prices.items() if first <= n <= block]
        return float(np.quantile(values, q)) if values else 0.0

    def _history(self, n: int, newest: int):
        """eth_feeHistory of n blocks up to `newest`, fewer when the node refuses the range (nodes cap both the
        count and how far back they keep it); None when it serves none of them."""
        from web3.exceptions import Web3Exception

        while n >= 1:
            try:
                return self.chain.w3.eth.fee_history(n, newest, [50])
            except (Web3Exception, ValueError):
                n //= 2
        return None
