"""The fund's book as the venues state it at one moment: every holding of every account, in units, with the USD
price it is valued at and the index one scaled unit is worth (Aave's), and what the venues say moved the
accounts since the previous reading (transfers in and out, gas, funding, fees, realized PnL).

A holding's key is account/venue/kind/asset: treasury/ethereum/native/ETH, treasury/ethereum/token/weth,
treasury/aave_v3/aToken/weeth, treasury/aave_v3/debtToken/weth (units < 0: a debt), binance/binance/cash/USDT
(the wallet balance), binance/binance/perp/ETH (units: signed size; price: mark - entry, so its value is the
unrealized PnL).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

ZERO = "0x" + "00" * 20
KINDS = ("flows", "fees", "funding", "trades")  # what the venues report as moving an account


@dataclass
class Holding:
    units: float
    price: float
    index: float = 1.0
    details: dict = field(default_factory=dict)


@dataclass
class Observation:
    """One reading of every account: the chain at `block` (time `t`), the exchanges just after."""

    t: int
    block: int | None
    holdings: dict[str, Holding]
    moved: dict[str, dict[str, float]]  # key -> kind -> units since the previous reading (as of now)
    risk: dict[str, dict]  # account -> Aave's own view, or a venue's margin reading
    eth_usd: float | None = None
    venue_ms: int | None = None  # wall clock (ms) when the exchanges were read: their ledgers' windows end there

    def nav_usd(self) -> float:
        return sum(h.units * h.price for h in self.holdings.values())

    def to_json(self) -> dict:
        return {"t": self.t, "block": self.block, "eth_usd": self.eth_usd, "risk": self.risk, "moved": self.moved,
                "venue_ms": self.venue_ms, "holdings": {k: asdict(h) for k, h in self.holdings.items()}}

    @classmethod
    def from_json(cls, d: dict) -> Observation:
        return cls(d["t"], d["block"], {k: Holding(**h) for k, h in d["holdings"].items()}, d["moved"], d["risk"],
                   d.get("eth_usd"), d.get("venue_ms"))


def move(moved: dict, key: str, kind: str, units: float) -> None:
    moved.setdefault(key, dict.fromkeys(KINDS, 0.0))[kind] += units


def observe(accounts, chain, exchanges: dict, previous: Observation | None, own: set[str] = frozenset()) -> Observation:
    """Read every account of accounts.yaml now. `chain` is a ChainClient (None without wallets), `exchanges` maps
    venue -> ExchangeAccount, `own` the hashes of the session's own transactions (their transfers are its trades,
    booked from its orders, not flows). Nothing is guessed: a read that fails raises, and the caller keeps no book."""
    holdings: dict[str, Holding] = {}
    moved: dict[str, dict[str, float]] = {}
    risk: dict[str, dict] = {}
    eth_usd = None
    block, t = None, int(time.time())
    if chain is not None and accounts.wallets:
        block = chain.w3.eth.block_number
        t = int(chain.w3.eth.get_block(block)["timestamp"])
        indexes = chain.indexes(block)
        eth_usd = indexes["weth"][2] if "weth" in indexes else None
        tokens = chain.tokens(block)
        ignore = {ZERO, chain.market.pool} | {a for (kind, _), (a, _) in tokens.items() if kind != "token"}
        for w in accounts.wallets:
            _read_wallet(chain, w, block, indexes, tokens, ignore, previous, holdings, moved, risk, own)
    venue_ms = None
    for venue, account in exchanges.items():
        read = account.read()
        # the venues' clock, not the chain's: a ledger entry is in this reading's window iff it is in the balance
        venue_ms = int(time.time() * 1000)
        for coin, units in read["balances"].items():
            holdings[f"{venue}/{venue}/cash/{coin}"] = Holding(units, 1.0)  # USDT counted at $1 on a venue
        for asset, p in read["positions"].items():
            holdings[f"{venue}/{venue}/perp/{asset}"] = Holding(p.size, p.mark_price - p.entry_price, 1.0, {
                "entry_price": p.entry_price, "mark_price": p.mark_price, "margin": p.margin,
                "leverage": p.leverage, "liquidation_price": p.liquidation_price})
        margin = sum(p.margin for p in read["positions"].values())
        risk[venue] = {"margin_usd": margin, "equity_usd": sum(read["balances"].values())
                       + sum(p.unrealized_pnl for p in read["positions"].values())}
        if previous is not None and previous.venue_ms is not None:
            for entry in account.ledger(previous.venue_ms, venue_ms):
                move(moved, f"{venue}/{venue}/cash/USDT", entry["kind"], entry["amount"])
    return Observation(t, block, holdings, moved, risk, eth_usd, venue_ms)


def _read_wallet(chain, wallet, block, indexes, tokens, ignore, previous, holdings, moved, risk, own) -> None:
    held = chain.account(wallet.address, block)
    name = wallet.name
    eth_price = indexes["weth"][2]
    holdings[f"{name}/ethereum/native/ETH"] = Holding(held["eth"], eth_price)
    for reserve, (income, debt_index, price) in indexes.items():
        holdings[f"{name}/ethereum/token/{reserve}"] = Holding(held["wallet"][reserve], price)
        holdings[f"{name}/aave_v3/aToken/{reserve}"] = Holding(held["supplied"][reserve], price, income)
        holdings[f"{name}/aave_v3/debtToken/{reserve}"] = Holding(-held["borrowed"][reserve], price, debt_index)
    risk[name] = held["aave"]
    if previous is None or previous.block is None:
        return
    for f in chain.transfers(wallet.address, tokens, previous.block, block, ignore):
        if f["tx"] in own:
            continue
        key = f"{name}/{'ethereum' if f['kind'] == 'token' else 'aave_v3'}/{f['kind']}/{f['reserve']}"
        units = f["units"] if f["kind"] != "debtToken" else -f["units"]
        if f["kind"] != "token":  # an Aave balance moved at f's block has grown with the index since
            income, debt_index, _ = chain.indexes(f["block"])[f["reserve"]]
            units *= holdings[key].index / (income if f["kind"] == "aToken" else debt_index)
        move(moved, key, "flows", units)
    gas = chain.gas_spent(wallet.address, previous.block, block)
    if gas:
        move(moved, f"{name}/ethereum/native/ETH", "fees", -gas)
