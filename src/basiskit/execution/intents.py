"""Order intents: what each executor action asks of a venue, typed, recorded on its event.

Every balance change the executor makes for a strategy is also an order an operator could place: its venue, the
instrument shown to people, the side, the size in units of `asset`, the price (perps and spot), the `action` that
routes it (never the text of a message), the flash-loan `bundle` it is a step of, the `trigger` it answers and
whether that is a safety action. Paper sessions store them as their orders; live sessions admit and send them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

# what an action does, as the live executors route it (live/chain_executor.py, live/execution.py)
ACTIONS = ("aave_supply", "aave_withdraw", "aave_borrow", "aave_repay", "stake", "redeem", "redeem_request", "claim",
           "swap", "sell", "flash_loan", "perp", "spot", "transfer")
# triggers whose actions make the book safe: never blocked by the order and day limits (live.safety_*)
SAFETY_TRIGGERS = frozenset({"health_factor", "margin_ratio", "risk_override", "exit"})
ON_CHAIN = ("aave_v3", "ethereum")  # venues whose orders are steps of one plan, each building on the last


class BundleMember:
    """Where an order stands in a flash-loan bundle (by its `action` and `bundle`): its head, a step, or neither."""

    __slots__ = ()
    action: str
    bundle: str | None

    @property
    def is_bundle_head(self) -> bool:
        """The flash-loan order that carries its bundle's steps in one transaction."""
        return self.action == "flash_loan"

    @property
    def in_bundle(self) -> bool:
        """A step of a flash-loan bundle (sent with, and as, its head)."""
        return self.bundle is not None and self.action != "flash_loan"


@dataclass(frozen=True, slots=True)
class OrderIntent(BundleMember):
    venue: str  # aave_v3 | ethereum | binance | bybit | okx | wallet
    instrument: str  # as people read it: aave_supply_weETH, binance:Perp:ETHUSDT, bybit:Spot:ETHUSDT, USDT
    side: str  # supply, withdraw, borrow, repay, stake, redeem, swap, claim, sell, flash_loan, buy, transfer
    size: float  # > 0, in units of `asset`
    price: float | None  # perps and spot: the price planned at (USDT); on-chain: None (the oracle values it)
    reason: str  # the trigger as people read it (value against threshold), or entry / strategy / exit
    action: str = ""  # one of ACTIONS: what the order does, for routing
    asset: str = ""  # the token `size` counts: weETH, WETH, ETH, USDT, BTC ...
    to_asset: str | None = None  # what a stake, swap, redeem or sale turns it into
    bundle: str | None = None  # the flash-loan bundle it is a step of (the bundle's own order carries it too)
    trigger: str = "strategy"  # the trigger's name: health_factor, idle_cash, releverage, withdrawal, exit ...
    safety: bool = False  # a safety action (SAFETY_TRIGGERS)

    def row(self) -> tuple:
        return (self.venue, self.instrument, self.side, self.size, self.price, self.reason)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> OrderIntent:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def order_intents(events: list, k: int) -> list[OrderIntent]:
    """The order intents of tick k's events, in order (each execution and transfer records its own)."""
    return [e.intent for e in events if e.k == k and e.intent is not None]
