"""Order intents: each simulated execution of a paper session as an order an operator could place by hand."""

from __future__ import annotations

from dataclasses import dataclass

from ..engine.events import Event

SIDES = {  # operation prefix -> (venue, side)
    "aave_supply": ("aave_v3", "supply"), "aave_withdraw": ("aave_v3", "withdraw"),
    "aave_borrow": ("aave_v3", "borrow"), "aave_repay": ("aave_v3", "repay"),
    "stake": ("ethereum", "stake"), "redeem": ("ethereum", "redeem"), "claim": ("ethereum", "claim"),
    "swap": ("ethereum", "swap"),
    "sell": ("ethereum", "sell"), "flash_loan": ("aave_v3", "flash_loan"),
}
REASON_EVENTS = ("rebalance", "risk_alert", "liquidation")


@dataclass(frozen=True)
class OrderIntent:
    venue: str
    instrument: str
    side: str
    size: float
    price: float | None
    reason: str

    def row(self) -> tuple:
        return (self.venue, self.instrument, self.side, self.size, self.price, self.reason)


def order_intents(events: list[Event], k: int, reason: str | None = None) -> list[OrderIntent]:
    """The orders behind tick k's execution and transfer events (in order); the reason is the last
    rebalance, risk or liquidation event of the tick before the order, else `reason` (the entry at tick 0,
    else the strategy's tick)."""
    reason = reason or ("entry" if k == 0 else "strategy")
    out = []
    for e in events:
        if e.k != k:
            continue
        if e.type in REASON_EVENTS:
            reason = e.message
        elif e.type == "transfer":
            out.append(OrderIntent("wallet", "USDT", "transfer", abs(e.details.get("amount", 0.0)), None,
                                   f"{reason}: {e.message}"))
        elif e.type == "execution":
            out.append(_intent(e, reason))
    return out


def _intent(e: Event, reason: str) -> OrderIntent:
    d = e.details
    op = d.get("operation", "")
    if op == "perp_trade":
        size = d["size"]
        symbol = e.message.split()[3] if len(e.message.split()) > 3 else ""
        return OrderIntent(d["venue"], f"{d['venue']}:Perp:{symbol}", "buy" if size > 0 else "sell", abs(size),
                           d["price"], reason)
    if op == "spot_trade":
        units = d["units"]
        asset = e.message.split()[3] if len(e.message.split()) > 3 else ""
        return OrderIntent(d["venue"], f"{d['venue']}:Spot:{asset}USDT", "buy" if units > 0 else "sell", abs(units),
                           d["price"], reason)
    venue, side = next(((v, s) for prefix, (v, s) in SIDES.items() if op.startswith(prefix)), ("ethereum", op))
    return OrderIntent(venue, op, side, abs(float(d.get("amount", 0.0))), None,
                       reason + (" (in one flash-loan bundle)" if "(in bundle)" in e.message else ""))
