"""A plan's Aave v3 and LST operations sent as transactions from one keystore wallet (live step 2).

An order becomes a few calls (wrap or unwrap WETH for what the engine counts as one ETH balance, an ERC20 approval
of exactly the amount, the Pool call or the LST's deposit or redeem, eMode before the first borrow), each signed
with the wallet's key, EIP-1559 fees capped by live.max_gas_gwei, nonces from one manager per wallet. Each signed
transaction (nonce, hash, what it moves) is journaled before it is broadcast; its receipt is awaited with a timeout.
After a crash or a timeout, the journal's hashes are looked up on the chain: nothing is signed again. A reverted
transaction stops the order (an alert); the next reading re-reads the book before anything else is decided.

What each call moves (wallet holdings, in token units) is stored with the order so that the next reading explains
the wallet's change as the session's own trades; gas is explained by the receipts (live/book.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..connectors.exchanges import OrderRefused, OrderUnknown, VenueOrder

SENT_HERE = ("aave_supply", "aave_withdraw", "aave_borrow", "aave_repay", "stake", "redeem", "swap")
ETH_EMODE = 1  # Aave v3's ETH-correlated eMode category (Ethereum market; the local deploy's)
VARIABLE = 2  # interestRateMode: variable (Aave v3 IPool)
QUICK_RECEIPT_S = 1.0  # a receipt waited for this long with the store held, then with the store let go of
GAS_MARGIN = 1.25  # gas limit over eth_estimateGas
# keccak256("Repay(address,address,address,uint256,bool)"): Aave v3 IPool's Repay event (reserve, user, repayer)
REPAY_TOPIC = bytes.fromhex("a534c8dbe71f871f9f3530e97a74601fea17b426cae02e1c5aee42c96c784051")


def _w(name: str, inputs: list[tuple[str, str]], payable: bool = False, outputs=()) -> dict:
    return {"type": "function", "name": name, "stateMutability": "payable" if payable else "nonpayable",
            "inputs": [{"name": n, "type": t} for n, t in inputs], "outputs": [{"name": "", "type": t}
                                                                                for t in outputs]}


POOL_WRITE = [
    _w("supply", [("asset", "address"), ("amount", "uint256"), ("onBehalfOf", "address"), ("referralCode", "uint16")]),
    _w("withdraw", [("asset", "address"), ("amount", "uint256"), ("to", "address")], outputs=["uint256"]),
    _w("borrow", [("asset", "address"), ("amount", "uint256"), ("interestRateMode", "uint256"),
                  ("referralCode", "uint16"), ("onBehalfOf", "address")]),
    _w("repay", [("asset", "address"), ("amount", "uint256"), ("interestRateMode", "uint256"),
                 ("onBehalfOf", "address")], outputs=["uint256"]),
    _w("setUserEMode", [("categoryId", "uint8")]),
]
TOKEN_WRITE = [_w("approve", [("spender", "address"), ("amount", "uint256")], outputs=["bool"]),
               _w("deposit", [], payable=True), _w("withdraw", [("wad", "uint256")]),
               _w("redeem", [("shares", "uint256")], outputs=["uint256"]),
               {"type": "function", "name": "rate", "stateMutability": "view", "inputs": [],
                "outputs": [{"name": "", "type": "uint256"}]},
               _w("approveDelegation", [("delegatee", "address"), ("amount", "uint256")]),
               _w("lever", [("lst", "address"), ("amount", "uint256"), ("stake", "uint256")], payable=True),
               _w("delever", [("lst", "address"), ("aLst", "address"), ("amount", "uint256"), ("shares", "uint256")],
                  payable=True)]
POOL_WRITE.append({"type": "function", "name": "FLASHLOAN_PREMIUM_TOTAL", "stateMutability": "view", "inputs": [],
                   "outputs": [{"name": "", "type": "uint128"}]})


class LimitExceeded(Exception):
    """An order a limit stops before anything is signed (e.g. the base fee above live.max_gas_gwei)."""


@dataclass
class Call:
    what: str
    contract: str
    fn: str
    args: list
    value: int
    moves: dict[str, float]  # holding key -> units this call moves
    from_receipt: bool = False  # its debt and ETH moves are read from its receipt (an exit repays what accrued)


class NonceManager:
    """The next nonce of one wallet: past the chain's pending count (read at each order's start: another sender's
    transactions are seen) and past what this process already signed."""

    def __init__(self, w3, address: str):
        self.w3, self.address, self.last, self.fresh = w3, address, -1, False

    def refresh(self) -> None:
        self.last = max(self.w3.eth.get_transaction_count(self.address, "pending") - 1, self.last)

    def next(self) -> int:
        self.last += 1
        return self.last


class ChainExecutor:
    """Sends the plan's on-chain orders from `signer` (an eth-account LocalAccount) on `chain` (a ChainClient)."""

    def __init__(self, chain, signer, wallet: str, max_gas_gwei: float, lst_contracts: str | None,
                 receipt_timeout: float = 120.0, flash_receiver: str | None = None,
                 safety_gas_gwei: float | None = None):
        self.chain, self.signer, self.wallet = chain, signer, wallet
        self.flash_receiver = flash_receiver
        self.bundle: list = []  # the steps of the flash-loan bundle being sent (set by the Dispatcher)
        self.w3 = chain.w3
        self.cap = int(max_gas_gwei * 10**9)
        # a safety order (de-lever, exit) may pay more for its gas: live.safety_max_gas_gwei, 3 x the cap by default
        self.safety_cap = int((safety_gas_gwei if safety_gas_gwei is not None else 3.0 * max_gas_gwei) * 10**9)
        self.lst_contracts, self.receipt_timeout = lst_contracts, receipt_timeout
        self.nonces = NonceManager(self.w3, signer.address)
        self.chain_id: int | None = None
        self.pool = self.w3.eth.contract(address=chain.market.pool, abi=POOL_WRITE + _read_abi())
        self.journal = None  # set by the Dispatcher: (client_id, step, details) -> None, committed at once
        self.history = None  # set by the Dispatcher: client_id -> its journal

    # --- what it sends ------------------------------------------------------------------------------------------
    def handles(self, order) -> bool:
        if order.venue not in ("aave_v3", "ethereum"):
            return False
        if order.is_bundle_head or order.in_bundle:
            return self.flash_receiver is not None and self.lst_contracts == "stand-in"
        parsed = self._parse(order)
        return parsed is not None and (not parsed[2] or self.lst_contracts == "stand-in")

    def _parse(self, order) -> tuple[str, str, bool] | None:
        """(action, reserve, an LST mint or redeem) of an order, from its typed action and assets; None when it is
        not sent here (a queued redeem, a claim, a sale: the operator's)."""
        action = order.action
        if action not in SENT_HERE:
            return None
        if action == "swap":  # the stand-in mints and redeems at its rate: a swap into the LST mints, out redeems
            action, symbol = ("stake", order.to_asset) if order.asset == "ETH" else ("redeem", order.asset)
        elif action == "stake":
            symbol = order.to_asset
        else:
            symbol = order.asset
        reserve = (symbol or "").lower()
        if reserve not in self.chain.market.assets:
            return None
        return action, reserve, action in ("stake", "redeem")

    def _cap(self, order) -> int:
        return self.safety_cap if order.safety else self.cap

    def request(self, order) -> dict:
        cap = self._cap(order)
        base = self.w3.eth.get_block("latest")["baseFeePerGas"]
        if base > cap:
            which = "live.safety_max_gas_gwei" if order.safety else "live.max_gas_gwei"
            raise LimitExceeded(f"base fee {base / 1e9:.2f} gwei > {which} {cap / 1e9:g}")
        if order.is_bundle_head:
            return self._flash_request(order) | {"usd": self._usd("weth", order.size), "max_fee_gwei": cap / 1e9}
        action, reserve, _ = self._parse(order)
        decimals = self.chain.market.assets[reserve][1]
        # a stake's size is ETH; everything else counts the reserve's own token
        usd = self._usd("weth" if action == "stake" else reserve, order.size)
        return {"action": action, "reserve": reserve, "amount": int(order.size * 10**decimals),
                "from": self.signer.address, "max_fee_gwei": cap / 1e9, "usd": usd}

    def _usd(self, reserve: str, units: float) -> float:
        """`units` of a reserve's token at Aave's oracle now (the latest block): the limits are checked at it."""
        asset = self.chain.market.assets[reserve][0]
        return abs(units) * self.chain.oracle.functions.getAssetPrice(asset).call() / 1e8

    def _flash_request(self, order) -> dict:
        """A flash-loan bundle as one call of the receiver: its steps (self.bundle) give the sizes."""
        steps: dict[str, float] = {}
        lst = None
        for step in self.bundle:
            action, reserve, _ = self._parse(step) or (None, None, None)
            if action is None or (action in ("stake", "redeem", "aave_supply", "aave_withdraw") and reserve == "weth"):
                raise OrderRefused(f"bundle step {step.instrument} cannot go through the flash receiver", "unsupported")
            if action in ("stake", "redeem", "aave_supply", "aave_withdraw"):
                lst = reserve
            steps[action] = steps.get(action, 0.0) + step.size
        up = order.instrument == "flash_loan_leverage"
        need = {"stake", "aave_supply", "aave_borrow"} if up else {"aave_repay", "aave_withdraw", "redeem"}
        if set(steps) != need or lst is None:
            raise OrderRefused(f"{order.instrument}: its steps {sorted(steps)} are not {sorted(need)}", "unsupported")
        return {"action": "lever" if up else "delever", "reserve": lst, "amount": int(order.size * 10**18),
                "size": int((steps["stake"] if up else steps["aave_withdraw"]) * 10**18),
                "from": self.signer.address}

    def _calls(self, request: dict) -> list[Call]:
        """The transactions of one order, built on the chain's state now."""
        action, reserve, amount = request["action"], request["reserve"], request["amount"]
        me, w = self.signer.address, self.wallet
        asset, decimals = self.chain.market.assets[reserve]
        unit = 10**decimals
        weth = self.chain.market.assets["weth"][0]
        token = self._token(asset)
        calls: list[Call] = []
        key = {"native": f"{w}/ethereum/native/ETH", "token": f"{w}/ethereum/token/{reserve}",
               "weth": f"{w}/ethereum/token/weth", "a": f"{w}/aave_v3/aToken/{reserve}",
               "debt": f"{w}/aave_v3/debtToken/{reserve}"}
        if action in ("lever", "delever"):
            return self._flash_calls(request, key, asset, weth)
        if action in ("aave_supply", "redeem") and asset != weth:
            amount = _within_rounding(amount, token.functions.balanceOf(me).call())
        elif action == "aave_withdraw":
            a_token = self.pool.functions.getReserveData(asset).call()[8]
            amount = _within_rounding(amount, self._token(a_token).functions.balanceOf(me).call())
        if action in ("aave_supply", "aave_repay"):
            if asset == weth:  # the engine's ETH is native ETH and WETH alike: wrap what the WETH balance lacks
                short = amount - token.functions.balanceOf(me).call()
                if short > 0:
                    calls.append(Call("wrap", weth, "deposit", [], short, {key["native"]: -short / unit,
                                                                          key["weth"]: short / unit}))
            calls.append(Call("approve", asset, "approve", [self.pool.address, amount], 0, {}))
            if action == "aave_supply":
                calls.append(Call("supply", self.pool.address, "supply", [asset, amount, me, 0], 0,
                                  {key["token"]: -amount / unit, key["a"]: amount / unit}))
            else:
                calls.append(Call("repay", self.pool.address, "repay", [asset, amount, VARIABLE, me], 0,
                                  {key["token"]: -amount / unit, key["debt"]: amount / unit}))
        elif action == "aave_withdraw":
            calls.append(Call("withdraw", self.pool.address, "withdraw", [asset, amount, me], 0,
                              {key["a"]: -amount / unit, key["token"]: amount / unit}))
        elif action == "aave_borrow":
            if self.pool.functions.getUserEMode(me).call() != ETH_EMODE:
                calls.append(Call("eMode", self.pool.address, "setUserEMode", [ETH_EMODE], 0, {}))
            calls.append(Call("borrow", self.pool.address, "borrow", [asset, amount, VARIABLE, 0, me], 0,
                              {key["debt"]: -amount / unit, key["token"]: amount / unit}))
        elif action == "stake":  # `amount` is ETH (18 decimals) into the LST at its rate (StandInLST.deposit)
            # WETH first (borrowed WETH is the engine's ETH too), native ETH for the rest: the native balance keeps
            # the gas reserve the plan left
            unwrap = min(amount, self._token(weth).functions.balanceOf(me).call())
            if unwrap > 0:
                calls.append(Call("unwrap", weth, "withdraw", [unwrap], 0,
                                  {key["weth"]: -unwrap / 1e18, key["native"]: unwrap / 1e18}))
            shares = amount * 10**18 // token.functions.rate().call()
            calls.append(Call("stake", asset, "deposit", [], amount, {key["native"]: -amount / 1e18,
                                                                    key["token"]: shares / unit}))
        else:  # redeem: LST units back to ETH at the rate (StandInLST.redeem)
            eth = amount * token.functions.rate().call() // 10**18
            calls.append(Call("redeem", asset, "redeem", [amount], 0, {key["token"]: -amount / unit,
                                                                     key["native"]: eth / 1e18}))
        return calls

    def _flash_calls(self, request: dict, key: dict, lst: str, weth: str) -> list[Call]:
        """Credit delegation or the aLST approval (exactly the amount), ETH for the premium, the receiver's call."""
        me, receiver, amount, size = self.signer.address, self.flash_receiver, request["amount"], request["size"]
        w = self.wallet
        data = self.pool.functions.getReserveData(lst).call()
        a_lst, debt_weth = data[8], self.pool.functions.getReserveData(weth).call()[10]
        # Aave v3 FlashLoanLogic: premium = amount.percentMul(FLASHLOAN_PREMIUM_TOTAL), half up
        premium = (amount * self.pool.functions.FLASHLOAN_PREMIUM_TOTAL().call() + 5_000) // 10_000
        rate = self._token(lst).functions.rate().call()
        debt_key, a_key = f"{w}/aave_v3/debtToken/weth", key["a"]
        calls = []
        if request["action"] == "lever":
            net = size - amount + premium  # the wallet's ETH in: its stake beyond the flash loan, and the premium
            value = max(net, 0)  # (a stake under the flash amount pays the premium and returns the rest)
            shares = size * 10**18 // rate
            if self.pool.functions.getUserEMode(me).call() != ETH_EMODE:
                calls.append(Call("eMode", self.pool.address, "setUserEMode", [ETH_EMODE], 0, {}))
            calls.append(Call("delegate", debt_weth, "approveDelegation", [receiver, amount], 0, {}))
            moves = {key["native"]: -net / 1e18, a_key: shares / 1e18, debt_key: -amount / 1e18}
            call = Call("flash lever", receiver, "lever", [lst, amount, size], value, moves)
        else:
            debt = self._token(debt_weth).functions.balanceOf(me).call()
            held = self._token(a_lst).functions.balanceOf(me).call()
            # an exit (the plan repays the debt it read, to rounding): all of it, to the wei, whatever accrued since
            exit_ = amount >= debt - max(debt // 10**6, 1000)
            if exit_:
                amount = debt + debt // 10**6 + 10**6  # covers the interest until the block it lands in
                premium = (amount * self.pool.functions.FLASHLOAN_PREMIUM_TOTAL().call() + 5_000) // 10_000
                size = _within_rounding(size, held)
            eth = size * rate // 10**18
            value = max(amount + premium - eth, 0)  # what the redeemed ETH lacks for the flash loan and premium
            calls.append(Call("approve aLST", a_lst, "approve", [receiver, size], 0, {}))
            moves = {key["native"]: (eth - amount - premium) / 1e18, a_key: -size / 1e18, debt_key: amount / 1e18}
            call = Call("flash delever", receiver, "delever", [lst, a_lst, amount, size], value, moves,
                        from_receipt=exit_)
        unwrap = min(max(value + 10**16 - self.w3.eth.get_balance(me), 0),
                     self._token(weth).functions.balanceOf(me).call())
        if unwrap > 0:  # the wallet's WETH is the engine's ETH too
            calls.insert(0, Call("unwrap", weth, "withdraw", [unwrap], 0,
                                 {key["weth"]: -unwrap / 1e18, key["native"]: unwrap / 1e18}))
        return calls + [call]

    def _token(self, address: str):
        return self.w3.eth.contract(address=address, abi=TOKEN_WRITE + _read_abi())

    # --- sending ------------------------------------------------------------------------------------------------
    def send(self, order, request: dict) -> VenueOrder:
        calls = self._calls(request)
        self.nonces.refresh()
        fees = self._fees(self._cap(order))
        moves: list = []  # [block, {holding key: units}] per mined call: an Aave balance grows from its block
        receipts: list = []  # stored with the answer (the hashes were journaled before each went)
        for i, call in enumerate(calls):
            try:
                signed, tx = self._sign(call, fees)
            except OrderRefused as exc:
                exc.moves = moves  # the calls before this one went
                raise
            self.journal(order.client_id, "tx", {"index": i, "calls": len(calls), "what": call.what,
                                                 "nonce": tx["nonce"], "hash": signed.hash.hex(),
                                                 "max_fee_gwei": tx["maxFeePerGas"] / 1e9, "moves": call.moves})
            try:
                self._broadcast(signed, call)
            except OrderRefused as exc:
                exc.moves = moves
                raise
            receipt = self._receipt(signed.hash)
            receipts.append(_receipt_details(receipt, i))
            if receipt["status"] != 1:
                raise OrderRefused(f"{call.what} reverted (tx {signed.hash.hex()}, block {receipt['blockNumber']})",
                                   "reverted", moves)
            if call.from_receipt:
                call.moves = self._receipt_moves(call, receipt)
                self.journal(order.client_id, "moves", {"index": i, "moves": call.moves})
            moves.append([receipt["blockNumber"], call.moves])
        return VenueOrder(order.client_id, order.client_id, "closed", order.size, order.size, None, None, moves,
                          receipts)

    def _fees(self, cap: int) -> tuple[int, int, int]:
        """(max priority fee, max fee, base fee) per gas for an order's transactions: EIP-1559, the max fee twice
        the base fee plus the tip (room for two full blocks), never above `cap` (live.max_gas_gwei, or for a safety
        order live.safety_max_gas_gwei)."""
        prio = min(self.w3.eth.max_priority_fee, cap)
        base = self.w3.eth.get_block("latest")["baseFeePerGas"]
        if base > cap:
            raise OrderRefused(f"base fee {base / 1e9:.2f} gwei rose above the order's gas cap {cap / 1e9:g} gwei "
                               "before the order went", "gas")
        return prio, min(2 * base + prio, cap), base

    def _receipt_moves(self, call: Call, receipt) -> dict[str, float]:
        """An exit's moves as the chain did them: the debt its Repay event repaid (Aave v3 IPool.Repay), the wallet's
        ETH change over the block less the gas it paid; the collateral's as planned (exactly approved)."""
        me, block = self.signer.address, receipt["blockNumber"]
        repaid = sum(int.from_bytes(bytes(log["data"])[:32], "big") for log in receipt["logs"]
                     if log["address"] == self.pool.address and bytes(log["topics"][0]) == REPAY_TOPIC
                     and bytes(log["topics"][2])[-20:] == bytes.fromhex(me[2:]))
        eth = (self.w3.eth.get_balance(me, block) - self.w3.eth.get_balance(me, block - 1)
               + receipt["gasUsed"] * receipt["effectiveGasPrice"])
        native = next(k for k in call.moves if k.endswith("/native/ETH"))
        debt = next(k for k in call.moves if k.endswith("/debtToken/weth"))
        return {**call.moves, native: eth / 1e18, debt: repaid / 1e18}

    def _sign(self, call: Call, fees: tuple[int, int, int]):
        fn = self._contract(call).functions
        if self.chain_id is None:
            self.chain_id = self.w3.eth.chain_id
        tx = getattr(fn, call.fn)(*call.args).build_transaction({
            "from": self.signer.address, "value": call.value, "chainId": self.chain_id,
            "maxPriorityFeePerGas": fees[0], "maxFeePerGas": fees[1], "nonce": self.nonces.next(), "gas": 0})
        from web3.exceptions import Web3Exception

        try:
            tx["gas"] = int(self.w3.eth.estimate_gas({k: tx[k] for k in ("from", "to", "data", "value")})
                            * GAS_MARGIN)
        except Web3Exception as exc:  # it would revert: nothing is signed, the nonce is given back
            self.nonces.last -= 1
            raise OrderRefused(f"{call.what} would revert ({type(exc).__name__}: {str(exc)[:200]}); not sent",
                               "would_revert") from None
        # the node wants gas x max fee + value up front: where the wallet keeps only the plan's gas reserve (the
        # gas at today's price), the max fee comes down towards what it can pay, never under base fee + tip
        native = self.w3.eth.get_balance(self.signer.address)
        affordable = (native - call.value) // tx["gas"]
        if affordable < tx["maxFeePerGas"]:
            if affordable < fees[2] + fees[0]:
                self.nonces.last -= 1
                raise OrderRefused(f"{call.what}: the wallet's {native / 1e18:.6f} ETH cannot pay its gas; top it up",
                                   "gas_funds")
            tx["maxFeePerGas"] = affordable
        return self.signer.sign_transaction(tx), tx

    def _broadcast(self, signed, call: Call) -> None:
        """The node refusing it (funds, nonce, fee) is a refusal; no answer is unknown (it may have been taken)."""
        from web3.exceptions import Web3RPCError

        try:
            self.w3.eth.send_raw_transaction(signed.raw_transaction)
        except Web3RPCError as exc:
            self.nonces.last -= 1
            raise OrderRefused(f"{call.what}: the node refused it ({str(exc)[:200]})", "rejected") from None
        except (OSError, ValueError) as exc:  # requests' and the socket's errors: the answer was lost
            raise OrderUnknown(f"{call.what}: no answer from the node ({type(exc).__name__})") from None

    def _contract(self, call: Call):
        return self.pool if call.contract == self.pool.address else self._token(call.contract)

    def _receipt(self, tx_hash):
        from web3.exceptions import TimeExhausted

        quick = min(QUICK_RECEIPT_S, self.receipt_timeout)
        try:  # a node that mines at once (a local chain) answers within the order's burst
            return self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=quick, poll_latency=0.1)
        except TimeExhausted:
            pass
        try:  # a block away (12 s on mainnet): polled less often
            return self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=self.receipt_timeout - quick,
                                                            poll_latency=0.5)
        except TimeExhausted:
            raise OrderUnknown(f"no receipt for {tx_hash.hex()} within {self.receipt_timeout:g} s") from None

    # --- after a crash or a timeout -----------------------------------------------------------------------------
    def lookup(self, order) -> VenueOrder | None:
        """The order's journaled transactions, looked up by hash: None when none was signed (nothing went);
        OrderUnknown while one is pending; the moves of those mined."""
        from web3.exceptions import TransactionNotFound

        signed = [e["details"] for e in self.history(order.client_id) if e["step"] == "tx"]
        if not signed:
            return None
        moves: list = []
        for tx in signed:
            try:
                receipt = self.w3.eth.get_transaction_receipt(tx["hash"])
            except TransactionNotFound:
                try:
                    self.w3.eth.get_transaction(tx["hash"])
                except TransactionNotFound:
                    if self.w3.eth.get_transaction_count(self.signer.address) > tx["nonce"]:
                        raise OrderRefused(f"{tx['what']} (nonce {tx['nonce']}) was replaced", "replaced",
                                           moves or None) from None  # what its calls mined before it still moved
                    return None if tx is signed[0] else VenueOrder(order.client_id, order.client_id, "closed",
                                                                   order.size, 0.0, None, None, moves)
                raise OrderUnknown(f"{tx['what']} {tx['hash']} is still pending") from None
            if receipt["status"] != 1:
                raise OrderRefused(f"{tx['what']} reverted (tx {tx['hash']})", "reverted", moves or None)
            moves.append([receipt["blockNumber"], tx["moves"]])
        done = signed[-1]["index"] == signed[-1]["calls"] - 1
        return VenueOrder(order.client_id, order.client_id, "closed", order.size, order.size if done else 0.0,
                          None, None, moves)

    def cancel_open(self, assets: list[str]) -> list:
        return []  # nothing rests on the chain

    def scrub(self, text: str) -> str:
        """An error's text without the RPC URL's path, query or credentials (a provider's key)."""
        return self.chain.scrub(text)


def _within_rounding(amount: int, held: int) -> int:
    """The amount, or what is held when the plan asks for a hair more (its float arithmetic against the contracts'
    integer rounding: up to 1e-9 of it, or 1000 wei)."""
    return held if held < amount <= held + max(amount // 10**9, 1000) else amount


def _read_abi() -> list:
    from ..connectors.chain import ERC20_ABI, POOL_ABI

    return POOL_ABI + ERC20_ABI


def _receipt_details(receipt, index: int) -> dict:
    return {"index": index, "status": receipt["status"], "block": receipt["blockNumber"],
            "gas_used": receipt["gasUsed"], "effective_gas_price": receipt["effectiveGasPrice"]}
