"""The only place balances change during a run: each action moves quantities at point-k prices
(value-neutral) and books its costs to transaction_costs."""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import contextmanager

from ..portfolio.attribution import SLOT, TRANSACTION_COSTS
from ..portfolio.book import Book
from ..venues.aave import AaveReserve
from ..venues.costs import GasModel, Liquidity, SlippageModel
from ..venues.perp import PerpMarket
from ..venues.spot import SpotMarket
from ..venues.staking import LiquidStaking
from .events import EventLog
from .intents import OrderIntent
from .transaction import Transaction

LST_PRICE = SLOT["lst_price"]


class Executor:
    def __init__(self, book: Book, gas: GasModel, events: EventLog, wallet: int, slippage: SlippageModel):
        self.book = book
        self.gas = gas
        self.slippage = slippage
        self.events = events
        self.wallet = wallet
        self._bundle: list[str] | None = None
        self._bundle_id: str | None = None
        self._bundles = 0  # bundles started: each gets its own id
        self.trigger = None  # the Trigger the running action answers (set by the strategy's ActionGate)
        self.reason_override: str | None = None  # every order answers this instead (a live plan's exit)
        self.footprints: dict = {}  # reserve -> its ReserveFootprint (venues/aave_footprint.py), told of every change
        self.aave_room: dict[str, Callable[[int], float]] = {}  # reserve -> available to borrow (partial policy)
        self.constrained: list[tuple[int, str, float, float]] = []  # (k, reserve, asked, taken) of limited borrows
        self.unit_usd: list[float] = []  # USD per share-class unit at each point (slippage buckets)
        self.actions = 0  # how many actions ran: the loop re-runs the monitors when it moves
        self.perps: list[PerpMarket] = []  # perp markets whose fill state a transaction restores
        self._last_outage: tuple[int, str] | None = None
        self._no_volume: tuple[int, str] | None = None
        self._no_dex = -1  # the last hour a swap found no DEX price (flagged once an hour)
        self.claims: list[tuple[int, int, float]] = []  # queued withdrawals: (payable at tick, claim slot, ETH)
        self.usdt_usd: list[float] = []  # USD per USDT at each point (order sizes against USD volumes)
        self.gas_pos = wallet  # the position gas is paid from: the wallet, or an ETH position (pay_gas_from)
        self.gas_value: list[float] | None = None  # that position's unit value (share-class units) at each point

    def pay_gas_from(self, position: int, value: list[float]) -> None:
        """Gas is paid in ETH from `position` (worth `value` share-class units per ETH), not from the wallet: a USDT
        share class holds its gas reserve as the ETH the chain charges."""
        self.gas_pos, self.gas_value = position, value

    def transaction(self, k: int) -> Transaction:
        """Start a transaction of the actions that follow at point k (see execution/transaction.py)."""
        return Transaction(self, k)

    @contextmanager
    def bundle(self, k: int, name: str, flash_amount: float, premium: float, unit_value: float):
        """An atomic flash-loan bundle: its operations pay no gas of their own; the bundle pays one
        bundle of gas plus the flash-loan premium (premium x flash amount, Aave v3 flashLoanSimple)."""
        self._bundles += 1
        self._bundle, self._bundle_id = [], f"{name}#{self._bundles}"
        try:
            yield
        finally:
            ops, self._bundle = self._bundle, None
        fee = premium * flash_amount * unit_value
        self._cost(k, self.wallet, fee, 1.0)
        head = self.intent(k, "aave_v3", name, "flash_loan", flash_amount, None, "flash_loan", "WETH")
        self._bundle_id = None
        self.pay_gas(k, self.gas.units.flash_loan_bundle, name, flash_amount, head, steps=",".join(ops), flash_fee=fee)

    def intent(self, k: int, venue: str, instrument: str, side: str, size: float, price: float | None, action: str,
               asset: str, to_asset: str | None = None) -> OrderIntent:
        """The order behind an action: what it answers comes from the trigger running it (ActionGate), the bundle
        from the flash loan it is inside."""
        trigger = self.trigger
        if self.reason_override is not None:
            name, reason, safety = self.reason_override, self.reason_override, True
        elif trigger is None:
            name, reason, safety = ("entry" if k == 0 else "strategy"), ("entry" if k == 0 else "strategy"), False
        else:
            name, reason, safety = trigger.reason, trigger.describe(), trigger.safety
        return OrderIntent(venue, instrument, side, abs(size), price, reason, action, asset, to_asset,
                           self._bundle_id, name, safety)

    def pay_gas(self, k: int, units: int, operation: str, amount: float, intent: OrderIntent | None = None,
                **details) -> float:
        """Pay an operation's gas from the wallet; returns the cost in share-class units."""
        self.actions += 1
        if self._bundle is not None:
            self._bundle.append(operation)
            self.events.add(k, "execution", f"{operation} {amount:.6f} (in bundle)", intent, operation=operation,
                            amount=amount, gas_units=0, cost=0.0, **details)
            return 0.0
        cost = self.gas.cost(units, k)
        if self.gas_value is None:
            self.book.qty[self.wallet] -= cost
        else:
            self.book.qty[self.gas_pos] -= cost / self.gas_value[k]
        self.book.book_cost(k, TRANSACTION_COSTS, -cost)
        self.events.add(k, "execution", f"{operation} {amount:.6f}", intent, operation=operation, amount=amount,
                        gas_units=units, cost=cost, **details)
        return cost

    # --- Aave v3 -------------------------------------------------------------------------------
    def aave_supply(self, k: int, reserve: AaveReserve, position: int, amount: float, source: int | None = None):
        """Supply `amount` tokens (from the wallet, or `source`) to an Aave reserve."""
        qty = self.book.qty
        qty[self.wallet if source is None else source] -= amount
        qty[position] += reserve.scaled_amount(amount, k)
        self.aave_changed(k, reserve.symbol)
        op = f"aave_supply_{reserve.symbol}"
        self.pay_gas(k, self.gas.units.supply, op, amount,
                     self.intent(k, "aave_v3", op, "supply", amount, None, "aave_supply", reserve.symbol))

    def aave_withdraw(self, k: int, reserve: AaveReserve, position: int, amount: float,
                      dest: int | None = None) -> float:
        """Withdraw up to `amount` tokens (to the wallet, or `dest`); returns the amount withdrawn."""
        qty = self.book.qty
        scaled = min(reserve.scaled_amount(amount, k), qty[position])
        amount = reserve.balance(scaled, k)
        qty[position] -= scaled
        qty[self.wallet if dest is None else dest] += amount
        self.aave_changed(k, reserve.symbol)
        op = f"aave_withdraw_{reserve.symbol}"
        self.pay_gas(k, self.gas.units.withdraw, op, amount,
                     self.intent(k, "aave_v3", op, "withdraw", amount, None, "aave_withdraw", reserve.symbol))
        return amount

    def aave_changed(self, k: int, symbol: str) -> None:
        """The fund's balance in a reserve changed at k (its own indexes follow it)."""
        fp = self.footprints.get(symbol)
        if fp is not None:
            fp.moved(k)

    def borrow_room(self, k: int, reserve: AaveReserve) -> float:
        """What may be borrowed from the reserve at point k: unlimited unless aave.liquidity_policy is partial,
        then what its other users left available (venues/aave_footprint.py)."""
        room = self.aave_room.get(reserve.symbol)
        return math.inf if room is None else max(room(k), 0.0)

    def limit_borrow(self, k: int, reserve: AaveReserve, amount: float) -> float:
        """`amount`, or what the reserve has available when that is less (aave.liquidity_policy partial: the rest
        waits for a later hour); a limited borrow is an event and counts in the summary."""
        room = self.borrow_room(k, reserve)
        if amount <= room:
            return amount
        self.events.add(k, "liquidity_constrained", f"borrow of {amount:.6f} {reserve.symbol} limited to the "
                        f"{room:.6f} the reserve has available", reserve=reserve.symbol, asked=amount, taken=room)
        self.constrained.append((k, reserve.symbol, amount, room))
        return room

    def aave_borrow(self, k: int, reserve: AaveReserve, debt_pos: int, dest: int, amount: float) -> None:
        """Borrow `amount` at the variable rate: scaled debt += amount / variableBorrowIndex; under
        aave.liquidity_policy partial, no more than the reserve has available (the rest waits)."""
        amount = self.limit_borrow(k, reserve, amount)
        if amount <= 0.0:
            return
        self.book.qty[debt_pos] += reserve.scaled_debt(amount, k)
        self.book.qty[dest] += amount
        self.aave_changed(k, reserve.symbol)
        op = f"aave_borrow_{reserve.symbol}"
        self.pay_gas(k, self.gas.units.borrow, op, amount,
                     self.intent(k, "aave_v3", op, "borrow", amount, None, "aave_borrow", reserve.symbol))

    def aave_repay(self, k: int, reserve: AaveReserve, debt_pos: int, source: int, amount: float) -> float:
        """Repay up to `amount` of debt from `source`; returns the amount repaid."""
        qty = self.book.qty
        scaled = min(reserve.scaled_debt(amount, k), qty[debt_pos])
        amount = reserve.debt(scaled, k)
        qty[debt_pos] -= scaled
        qty[source] -= amount
        self.aave_changed(k, reserve.symbol)
        op = f"aave_repay_{reserve.symbol}"
        self.pay_gas(k, self.gas.units.repay, op, amount,
                     self.intent(k, "aave_v3", op, "repay", amount, None, "aave_repay", reserve.symbol))
        return amount

    # --- liquid staking ------------------------------------------------------------------------
    def stake(self, k: int, lst: LiquidStaking, eth_pos: int, lst_pos: int, eth: float, eth_value: float,
              via_swap: bool) -> float:
        """ETH -> LST: minted at the rate (gas), or swapped at the DEX rate less slippage. Returns units."""
        qty = self.book.qty
        rate = lst.rate[k]
        qty[eth_pos] -= eth
        if not via_swap:
            units = eth / rate  # EtherFi deposit + wrap / Lido submit + wrap: weETH = ETH / rate
            qty[lst_pos] += units
            op = f"stake_{lst.symbol}"
            self.pay_gas(k, self.gas.units.stake, op, eth,
                         self.intent(k, "ethereum", op, "stake", eth, None, "stake", "ETH", lst.symbol))
            return units
        market = lst.market_rate[k]
        slip = self.slippage.rate(lst.pair, eth * eth_value * self.unit_usd[k])
        units = eth / market * (1.0 - slip)
        qty[lst_pos] += units
        # valued at the oracle rate: the DEX/oracle gap is LST price PnL, the slippage a cost
        slippage = eth * slip * rate / market * eth_value
        self.book.book_cost(k, LST_PRICE, eth * (rate / market - 1.0) * eth_value)
        self.book.book_cost(k, TRANSACTION_COSTS, -slippage)
        op = f"swap_ETH_to_{lst.symbol}"
        self.pay_gas(k, self.gas.units.swap, op, eth,
                     self.intent(k, "ethereum", op, "swap", eth, None, "swap", "ETH", lst.symbol),
                     slippage_cost=slippage)
        return units

    def unstake(self, k: int, lst: LiquidStaking, lst_pos: int, eth_pos: int, units: float, eth_value: float,
                via_swap: bool) -> float:
        """LST -> ETH at once: redeemed at the rate (gas), or swapped at the DEX rate less slippage. Returns ETH."""
        qty = self.book.qty
        rate = lst.rate[k]
        if not via_swap:
            qty[lst_pos] -= units
            eth = units * rate
            qty[eth_pos] += eth
            op = f"redeem_{lst.symbol}"
            self.pay_gas(k, self.gas.units.unstake, op, units,
                         self.intent(k, "ethereum", op, "redeem", units, None, "redeem", lst.symbol, "ETH"))
            return eth
        return self.swap_lst(k, lst, lst_pos, eth_pos, units, eth_value)

    def dex_quote(self, k: int, lst: LiquidStaking) -> float:
        """The price a swap of the LST gets at k: the DEX rate, or (flagged once an hour) the oracle rate
        where the data has no DEX price."""
        market = lst.dex_rate(k)
        if market is not None:
            return market
        if self._no_dex != k:
            self._no_dex = k
            self.events.add(k, "data_warning", f"no DEX price for {lst.symbol} at this hour: its swap is priced at "
                            "the oracle rate with the size-bucket slippage", series=lst.market_need.series)
        return lst.rate[k]

    def units_for_eth(self, k: int, lst: LiquidStaking, eth: float, eth_value: float) -> float:
        """LST units a swap must sell for `eth` ETH to arrive (DEX rate less slippage at that size)."""
        market = self.dex_quote(k, lst)
        slip = self.slippage.rate(lst.pair, eth * eth_value * self.unit_usd[k])
        return eth / (market * (1.0 - slip))

    def swap_lst(self, k: int, lst: LiquidStaking, lst_pos: int, eth_pos: int, units: float,
                 eth_value: float) -> float:
        """Swap LST units for ETH at the DEX rate less slippage (valued at the oracle rate: the gap is LST
        price PnL, the slippage a cost). Returns ETH."""
        qty = self.book.qty
        rate = lst.rate[k]
        market = self.dex_quote(k, lst)
        slip = self.slippage.rate(lst.pair, units * market * eth_value * self.unit_usd[k])
        qty[lst_pos] -= units
        eth = units * market * (1.0 - slip)
        qty[eth_pos] += eth
        slippage = units * market * slip * eth_value
        self.book.book_cost(k, LST_PRICE, units * (market - rate) * eth_value)
        self.book.book_cost(k, TRANSACTION_COSTS, -slippage)
        op = f"swap_{lst.symbol}_to_ETH"
        self.pay_gas(k, self.gas.units.swap, op, units,
                     self.intent(k, "ethereum", op, "swap", units, None, "swap", lst.symbol, "ETH"),
                     slippage_cost=slippage)
        return eth

    def request_redeem(self, k: int, lst: LiquidStaking, lst_pos: int, claim_pos: int, units: float,
                       matures: int) -> float:
        """Hand LST units to the protocol's withdrawal queue: the fund holds a claim on units x rate ETH
        (fixed at the request; Lido WithdrawalQueueERC721, ether.fi WithdrawRequestNFT), payable at `matures`.
        Returns the ETH claimed."""
        qty = self.book.qty
        eth = units * lst.rate[k]
        qty[lst_pos] -= units
        qty[claim_pos] += eth
        self.claims.append((matures, claim_pos, eth))
        op = f"redeem_{lst.symbol}"
        self.pay_gas(k, self.gas.units.unstake, op, units,
                     self.intent(k, "ethereum", op, "redeem", units, None, "redeem_request", lst.symbol, "ETH"),
                     eth=eth, payable_at=matures)
        return eth

    def claim_matured(self, k: int, lst: LiquidStaking, claim_pos: int, eth_pos: int) -> float:
        """Claim the ETH of every request payable by k into the wallet (one claim call); returns the ETH."""
        due = [c for c in self.claims if c[0] <= k and c[1] == claim_pos]
        if not due:
            return 0.0
        self.claims = [c for c in self.claims if not (c[0] <= k and c[1] == claim_pos)]
        eth = sum(c[2] for c in due)
        qty = self.book.qty
        qty[claim_pos] -= eth
        qty[eth_pos] += eth
        op = f"claim_{lst.symbol}"
        self.pay_gas(k, self.gas.units.claim, op, eth,
                     self.intent(k, "ethereum", op, "claim", eth, None, "claim", "ETH", lst.symbol), requests=len(due))
        return eth

    def sell_to_wallet(self, k: int, position: int, units: float, price: float, pair: str, label: str,
                       liquidity: Liquidity | None = None) -> None:
        """Swap a token for the share-class asset at `price` (share-class units) less slippage (at least the
        pool's market impact when `liquidity` is known)."""
        slip, sized = self._slippage(k, pair, liquidity, units * price * self.unit_usd[k])
        qty = self.book.qty
        qty[position] -= units
        qty[self.wallet] += units * price
        self._cost(k, self.wallet, units * price * slip, 1.0)
        op = f"sell_{label}"
        self.pay_gas(k, self.gas.units.swap, op, units,
                     self.intent(k, "ethereum", op, "sell", units, None, "sell", label, self.book.specs[self.wallet]
                                 .instrument.symbol), slippage_cost=units * price * slip, **sized)

    # --- centralised exchanges -------------------------------------------------------------
    def _cost(self, k: int, position: int, amount: float, fx: float) -> None:
        """Pay `amount` (in the position's units) from `position`; fx converts it to share-class units."""
        self.book.qty[position] -= amount
        self.book.book_cost(k, TRANSACTION_COSTS, -amount * fx)

    def _unreachable(self, k: int, market, what: str) -> bool:
        """True (and an event, once an hour per venue) when a stress scenario has the venue down at k."""
        if not market.is_down(k):
            return False
        key = (k, market.venue.name)
        if key != self._last_outage:
            self._last_outage = key
            self.events.add(k, "outage", f"{market.venue.name} unreachable: {what} not placed", venue=market.venue.name)
        return True

    def spot_trade(self, k: int, spot: SpotMarket, position: int, units: float, price: float, fx: float) -> None:
        """Buy (units > 0) or sell spot for wallet USDT at `price` (USDT); slippage and taker fee are costs."""
        if self._unreachable(k, spot, "spot trade"):
            return
        self.actions += 1
        notional = abs(units) * price
        slip, sized = self._slippage(k, spot.pair, spot.liquidity, notional * self.usdt_usd[k])
        qty = self.book.qty
        qty[position] += units
        qty[self.wallet] -= units * price
        # cost = notional x (slippage + taker fee) (venue fee schedule: fee = notional x rate)
        cost = notional * (slip + spot.venue.spot_taker_fee)
        self._cost(k, self.wallet, cost, fx)
        venue = spot.venue.name
        intent = self.intent(k, venue, f"{venue}:Spot:{spot.asset}USDT", "buy" if units > 0 else "sell", units, price,
                             "spot", spot.asset)
        self.events.add(k, "execution", f"spot {spot.venue.name} {units:+.6f} {spot.asset} at {price:.2f}", intent,
                        operation="spot_trade", venue=spot.venue.name, units=units, price=price, cost=cost * fx,
                        **sized)

    def _slippage(self, k: int, pair: str, liquidity: Liquidity | None, usd: float) -> tuple[float, dict]:
        """An order's slippage rate (bucket, or the whole order's market impact when larger) and what the
        event records of its size against the market: notional_usd and participation (of the last closed
        hour's volume). A market without volume at k pays the bucket rate and says so, once an hour."""
        slip = self.slippage.trade_rate(pair, usd, liquidity, k)
        if liquidity is None:
            return slip, {"notional_usd": usd}
        share = liquidity.participation(usd, k)
        if share != share and self._no_volume != (k, liquidity.series):  # NaN: no volume seen
            self._no_volume = (k, liquidity.series)
            self.events.add(k, "volume_warning", f"{liquidity.series}: no traded volume in the last closed hour; "
                            "the order pays the size-bucket slippage and is not split", series=liquidity.series)
        return slip, {"notional_usd": usd, "participation": share}

    def perp_trade(self, k: int, perp: PerpMarket, size_pos: int, cash_pos: int, delta: float, fx: float) -> None:
        """Change a perp position by `delta` contracts at mark; slippage and taker fee from its margin."""
        if self._unreachable(k, perp, "perp trade"):
            return
        self.actions += 1
        mark = perp.mark[k]
        notional = abs(delta) * mark
        slip, sized = self._slippage(k, perp.pair, perp.liquidity, notional * self.usdt_usd[k])
        qty = self.book.qty
        perp.on_fill(qty[size_pos], delta, mark * (1.0 + slip if delta > 0 else 1.0 - slip))
        qty[size_pos] += delta
        qty[cash_pos] -= delta * mark
        cost = notional * (slip + perp.venue.perp_taker_fee)
        self._cost(k, cash_pos, cost, fx)
        intent = self.intent(k, perp.venue.name, perp.instrument.key, "buy" if delta > 0 else "sell", delta, mark,
                             "perp", perp.asset)
        self.events.add(k, "execution", f"perp {perp.venue.name} {delta:+.6f} {perp.symbol} at {mark:.2f}", intent,
                        operation="perp_trade", venue=perp.venue.name, size=delta, price=mark, cost=cost * fx,
                        **sized)

    def transfer(self, k: int, source: int, dest: int, amount: float, fee: float, fx: float, label: str,
                 venue: PerpMarket) -> None:
        """Move USDT between the wallet and `venue`'s account; the fee is paid by the source."""
        if self._unreachable(k, venue, "transfer"):
            return
        self.actions += 1
        qty = self.book.qty
        qty[source] -= amount
        qty[dest] += amount
        self._cost(k, source, fee, fx)
        name = venue.venue.name  # into the venue's margin account (deposit) or out of it to the wallet (withdraw)
        side = "withdraw" if source != self.wallet else "deposit"
        intent = self.intent(k, name, venue.margin.key, side, amount, None, "transfer", "USDT")
        self.events.add(k, "transfer", f"transfer {amount:.2f} USDT {label}", intent, amount=amount, cost=fee * fx)
