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
    read_at: float | None = None  # wall clock (epoch s) when the reading was taken: how fresh its plan is

    def nav_usd(self) -> float:
        return sum(h.units * h.price for h in self.holdings.values())

    def to_json(self) -> dict:
        return {"t": self.t, "block": self.block, "eth_usd": self.eth_usd, "risk": self.risk, "moved": self.moved,
                "venue_ms": self.venue_ms, "read_at": self.read_at,
                "holdings": {k: asdict(h) for k, h in self.holdings.items()}}

    @classmethod
    def from_json(cls, d: dict) -> Observation:
        return cls(d["t"], d["block"], {k: Holding(**h) for k, h in d["holdings"].items()}, d["moved"], d["risk"],
                   d.get("eth_usd"), d.get("venue_ms"), d.get("read_at"))


def move(moved: dict, key: str, kind: str, units: float) -> None:
    moved.setdefault(key, dict.fromkeys(KINDS, 0.0))[kind] += units


def observe(accounts, chain, exchanges: dict, previous: Observation | None, own: set[str] = frozenset(),
            expected: dict[str, float] | None = None, chunk: int = 2_000) -> Observation:
    """Read every account of accounts.yaml now. `chain` is a ChainClient (None without wallets), `exchanges` maps
    venue -> ExchangeAccount, `own` the hashes of the session's own transactions (their transfers are its trades,
    booked from its orders, not flows), `expected` what those orders moved (holding key -> units: a wallet's native
    ETH beyond them is looked for), `chunk` the blocks of one log request over a gap. Nothing is guessed: a read
    that fails raises, and the caller keeps no book."""
    holdings: dict[str, Holding] = {}
    moved: dict[str, dict[str, float]] = {}
    risk: dict[str, dict] = {}
    eth_usd = None
    read_at = time.time()
    block, t = None, int(read_at)
    if chain is not None and accounts.wallets:
        block = chain.w3.eth.block_number
        t = int(chain.w3.eth.get_block(block)["timestamp"])
        indexes = chain.indexes(block)
        eth_usd = indexes["weth"][2] if "weth" in indexes else None
        tokens = chain.tokens(block)
        ignore = {ZERO, chain.market.pool} | {a for (kind, _), (a, _) in tokens.items() if kind != "token"}
        for w in accounts.wallets:
            _read_wallet(chain, w, block, indexes, tokens, ignore, previous, holdings, moved, risk, own,
                         expected or {}, chunk)
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
                "maintenance_margin": p.maintenance_margin, "leverage": p.leverage,
                "liquidation_price": p.liquidation_price})
        margin = sum(p.margin for p in read["positions"].values())
        risk[venue] = {"margin_usd": margin, "maintenance_usd": sum(p.maintenance_margin
                                                                    for p in read["positions"].values()),
                       "equity_usd": sum(read["balances"].values())
                       + sum(p.unrealized_pnl for p in read["positions"].values())}
        if previous is not None and previous.venue_ms is not None:
            for entry in account.ledger(previous.venue_ms, venue_ms):
                move(moved, f"{venue}/{venue}/cash/USDT", entry["kind"], entry["amount"])
    # the reading's time is when it was complete: its plan is as fresh as its last answer (the chain's block is
    # read first, the exchanges last)
    return Observation(t, block, holdings, moved, risk, eth_usd, venue_ms, max(read_at, time.time()))


NATIVE_DUST = 10**12  # wei (1e-6 ETH): a native balance change this close to what is known needs no search


def _read_wallet(chain, wallet, block, indexes, tokens, ignore, previous, holdings, moved, risk, own, expected,
                 chunk) -> None:
    held = chain.account(wallet.address, block)
    name = wallet.name
    eth_price = indexes["weth"][2]
    native = f"{name}/ethereum/native/ETH"
    holdings[native] = Holding(held["eth"], eth_price)
    for reserve, (income, debt_index, price) in indexes.items():
        holdings[f"{name}/ethereum/token/{reserve}"] = Holding(held["wallet"][reserve], price)
        holdings[f"{name}/aave_v3/aToken/{reserve}"] = Holding(held["supplied"][reserve], price, income)
        holdings[f"{name}/aave_v3/debtToken/{reserve}"] = Holding(-held["borrowed"][reserve], price, debt_index)
    risk[name] = held["aave"]
    if previous is None or previous.block is None:
        return
    after, me = previous.block, wallet.address.lower()
    index_at: dict[int, dict] = {}

    def grown(kind: str, reserve: str, units: float, at: int) -> float:
        """An Aave balance moved at block `at` has grown with its index since (token balances do not)."""
        if kind not in ("aToken", "debtToken"):
            return units
        if at not in index_at:
            index_at[at] = chain.indexes(at)
        income, debt_index, _ = index_at[at][reserve]
        return units * holdings[f"{name}/aave_v3/{kind}/{reserve}"].index / (income if kind == "aToken" else debt_index)

    def moves(kind: str, reserve: str, units: float, at: int, how: str) -> None:
        venue = "ethereum" if kind == "token" else "aave_v3"
        move(moved, f"{name}/{venue}/{kind}/{reserve}", how, grown(kind, reserve, units, at))

    for f in chain.transfers(wallet.address, tokens, after, block, ignore, chunk):
        if f["tx"] in own:
            continue
        moves(f["kind"], f["reserve"], f["units"] if f["kind"] != "debtToken" else -f["units"], f["block"], "flows")
    for e in chain.pool_events(wallet.address, after, block, chunk):
        if e["tx"] not in own:  # the account's Aave operations done outside the session (an operator's)
            _pool_moves(e, me, moves)
    for e in chain.weth_events(wallet.address, after, block, chunk):
        if e["tx"] not in own:  # wrapped or unwrapped outside the session: native ETH <-> WETH
            moves("token", "weth", e["units"], e["block"], "trades")
            move(moved, native, "trades", -e["units"])
    _native(chain, wallet.address, me, after, block, own, expected.get(native, 0.0), tokens, moved, native)


# Aave v3 Pool events: the two parties that make it the account's own operation (a trade between its holdings),
# and each side it moves: (the party whose holding it is, the holding's kind, the sign of the amount)
POOL_SIDES = {
    "Supply": (("user", "on_behalf_of"), (("on_behalf_of", "aToken", 1.0), ("user", "token", -1.0))),
    "Withdraw": (("user", "to"), (("user", "aToken", -1.0), ("to", "token", 1.0))),
    "Borrow": (("user", "on_behalf_of"), (("on_behalf_of", "debtToken", -1.0), ("user", "token", 1.0))),
    "Repay": (("user", "repayer"), (("user", "debtToken", 1.0), ("repayer", "token", -1.0))),
}


def _pool_moves(e: dict, me: str, moves) -> None:
    """What an Aave event moved of the account: its own operation (both parties the account) is a trade between
    its holdings; a side someone else took (on its behalf, or to elsewhere) is a flow."""
    parties, sides = POOL_SIDES[e["event"]]
    how = "trades" if all(e[p] == me for p in parties) else "flows"
    for party, kind, sign in sides:
        if e[party] == me:
            if kind == "token" and e.get("use_a_tokens"):
                kind = "aToken"  # Repay with aTokens: they are burned instead of the token leaving
            moves(kind, e["reserve"], sign * e["units"], e["block"], how)


def _native(chain, address: str, me: str, after: int, block: int, own: set[str], expected_units: float, tokens,
            moved: dict, native: str) -> None:
    """The wallet's native ETH over (after, block]: the gas of every transaction it sent (the session's from their
    receipts; others found where its nonce moved), ETH it sent outside the session (a withdrawal, unless to a
    market contract, whose events explain it), and ETH sent to it (a deposit) when the balance moved beyond all of
    that: found by bisection where the balance changed, each block's transactions read. Nothing bounds the gap."""
    WEI = 10**18  # noqa: N806
    gas = 0
    own_mined = [r for h in own if (r := chain.receipt_of(h)) is not None and after < r["block"] <= block
                 and r["from"].lower() == me]
    gas += sum(r["gas"] for r in own_mined)
    markets = {a.lower() for a, _ in tokens.values()} | {chain.market.pool.lower()}
    seen: set[str] = {r["hash"] for r in own_mined}
    flows = 0
    nonce_moved = chain.nonce(address, block) - chain.nonce(address, after)
    searched: set[int] = set()
    txs: list[dict] = []
    if nonce_moved > len(own_mined):  # transactions the session did not send: their gas and what they sent
        for b in chain.change_blocks(address, after, block, nonce_only=True):
            searched.add(b)
            txs += chain.transactions_of(address, b)
    weth_native = sum(v.get("trades", 0.0) for k, v in moved.items() if k == native)  # wraps outside the session
    change = chain.balance(address, block) - chain.balance(address, after)

    def explained() -> int:
        return -gas + flows + round((expected_units + weth_native) * WEI)

    def take(tx: dict) -> None:
        nonlocal gas, flows
        if tx["hash"] in seen:
            return
        seen.add(tx["hash"])
        if tx["from"].lower() == me:
            gas += tx["gas"]
            if tx["value"] and (tx["to"] or "").lower() not in markets:
                flows -= tx["value"]
                move(moved, native, "flows", -tx["value"] / WEI)
        elif tx["value"]:
            flows += tx["value"]
            move(moved, native, "flows", tx["value"] / WEI)

    for tx in txs:
        take(tx)
    if abs(change - explained()) > NATIVE_DUST:  # ETH came (or went) that no transaction above explains: find it
        for b in chain.change_blocks(address, after, block):
            if b not in searched:
                for tx in chain.transactions_of(address, b):
                    take(tx)
    if gas:
        move(moved, native, "fees", -gas / WEI)
