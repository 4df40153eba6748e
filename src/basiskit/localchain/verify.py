"""basiskit's Aave model against Aave's own contracts on a local chain.

Accounts act as an operator would (supply, eMode, borrow, time passes, the oracle moves, a second account
liquidates) while the model follows with its own arithmetic, fed only what the engine gets from the data: each
reserve's stored indexes and current rates (getReserveData) and the oracle's prices. Each step compares token
balances, indexes, Aave's account view (getUserAccountData), the maximum borrow and each liquidation's amounts.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
from web3.logs import DISCARD

from ..data.align import compounded_interest, linear_interest
from ..venues.aave import EModeParams, available_borrows, health_factor, liquidation, risk_params
from .deploy import ETH_EMODE, ORACLE_UNIT, LocalMarket

RAY = 10**27
WAD = 10**18
MAX_UINT = 2**256 - 1
TOLERANCE = 1e-9
DAY = 86_400


@dataclass
class Comparison:
    """Model vs contract, quantity by quantity: a difference within one smallest unit counts as 0."""

    tolerance: float = TOLERANCE
    checks: int = 0
    max_rel_diff: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def check(self, quantity: str, where: str, model: float, chain: float, unit: float = 0.0) -> None:
        diff = abs(model - chain)
        rel = 0.0 if diff <= unit * (1 + 1e-9) else diff / max(abs(chain), abs(model), 1e-300)
        self.checks += 1
        self.max_rel_diff[quantity] = max(self.max_rel_diff.get(quantity, 0.0), rel)
        if not rel <= self.tolerance:
            self.failures.append(f"{where}: {quantity} model {model!r} != contract {chain!r} (rel {rel:.3g})")

    def holds(self, quantity: str, where: str, ok: bool, what: str) -> None:
        """A yes/no comparison (the contract accepts what the model says it may, refuses what it says it may not)."""
        self.checks += 1
        self.max_rel_diff.setdefault(quantity, 0.0)
        if not ok:
            self.max_rel_diff[quantity] = math.inf
            self.failures.append(f"{where}: {what}")


@dataclass
class Anchor:
    """A reserve as the model knows it: the indexes stored at its last update and the rates since (ray -> float)."""

    liquidity_index: float
    borrow_index: float
    liquidity_rate: float
    borrow_rate: float
    updated: int

    def income(self, t: int) -> float:
        """Aave v3 ReserveLogic.getNormalizedIncome: index x calculateLinearInterest(rate, t - last update)."""
        growth = linear_interest(np.float64(self.liquidity_rate), np.float64(t - self.updated))
        return self.liquidity_index * float(growth)

    def debt(self, t: int) -> float:
        """Aave v3 ReserveLogic.getNormalizedDebt: index x calculateCompoundedInterest(rate, t - last update)."""
        return self.borrow_index * float(compounded_interest(np.float64(self.borrow_rate),
                                                             np.array(t - self.updated, dtype=np.int64)))


class Scenario:
    """The model's book of every account next to the chain's, and the comparisons between them."""

    def __init__(self, market: LocalMarket, params: dict[str, EModeParams]):
        self.m = market
        self.params = params  # account -> the risk parameters the model applies to it
        self.w3 = market.deployer.w3
        self.cmp = Comparison()
        self.anchors: dict[str, Anchor] = {}
        self.scaled: dict[tuple[str, str, str], float] = {}  # (account, symbol, "a" | "debt") -> scaled balance
        # a balance's rounding carried from another token's integer amounts (a liquidation's debt, in collateral)
        self.carried: dict[tuple[str, str, str], float] = {}
        self.block = self.w3.eth.block_number
        self._read: dict[tuple, float] = {}  # (what, block) -> value: a block's reads never change
        self.sync()

    # --- the chain ---------------------------------------------------------------------------------------------
    def unit(self, symbol: str) -> int:
        return 10 ** self.m.decimals[symbol]

    def now(self) -> int:
        key = ("time", self.block)
        if key not in self._read:
            self._read[key] = int(self.w3.eth.get_block(self.block)["timestamp"])
        return self._read[key]

    def sync(self) -> None:
        """Read each reserve's stored indexes and current rates: what the model is fed, as the engine is by the data."""
        for sym, token in self.m.tokens.items():
            d = self.m.pool.functions.getReserveData(token.address).call(block_identifier=self.block)
            self.anchors[sym] = Anchor(d[1] / RAY, d[3] / RAY, d[2] / RAY, d[4] / RAY, int(d[6]))

    def tx(self, call, sender: str, what: str) -> dict:
        receipt = self.m.deployer.send(call, what, sender=sender)
        self.block = receipt["blockNumber"]
        return receipt

    def model_at(self, fn) -> None:
        """Run a model update at the block the last transaction was mined in (its timestamp), then re-anchor."""
        fn(self.now())
        self.sync()

    def price(self, symbol: str) -> float:
        key = (symbol, self.block)
        if key not in self._read:
            self._read[key] = self.m.oracle.functions.getAssetPrice(self.m.tokens[symbol].address).call(
                block_identifier=self.block) / ORACLE_UNIT
        return self._read[key]

    def warp(self, seconds: int) -> None:
        self.w3.provider.make_request("evm_increaseTime", [seconds])
        self.w3.provider.make_request("evm_mine", [])
        self.block = self.w3.eth.block_number

    # --- the model ---------------------------------------------------------------------------------------------
    def balance(self, account: str, symbol: str, side: str, t: int) -> float:
        a = self.anchors[symbol]
        return self.scaled.get((account, symbol, side), 0.0) * (a.income(t) if side == "a" else a.debt(t))

    def add(self, account: str, symbol: str, side: str, amount: float, t: int) -> None:
        """Mint or burn the scaled balance for `amount` tokens at t (Aave v3: scaled = amount / index)."""
        a = self.anchors[symbol]
        index = a.income(t) if side == "a" else a.debt(t)
        key = (account, symbol, side)
        self.scaled[key] = self.scaled.get(key, 0.0) + amount / index

    def account(self, account: str, t: int) -> tuple[float, float]:
        """(collateral, debt) in the oracle's USD."""
        coll = sum(self.balance(account, s, "a", t) * self.price(s) for s in self.m.tokens if self.is_collateral(s))
        debt = sum(self.balance(account, s, "debt", t) * self.price(s) for s in self.m.tokens)
        return coll, debt

    def is_collateral(self, symbol: str) -> bool:
        return symbol != "USDT"

    # --- the comparisons ---------------------------------------------------------------------------------------
    def compare_indexes(self, where: str) -> None:
        t = self.now()
        for sym, token in self.m.tokens.items():
            f = self.m.pool.functions
            income = f.getReserveNormalizedIncome(token.address).call(block_identifier=self.block) / RAY
            debt = f.getReserveNormalizedVariableDebt(token.address).call(block_identifier=self.block) / RAY
            self.cmp.check("liquidity_index", f"{where} {sym}", self.anchors[sym].income(t), income, 1 / RAY)
            self.cmp.check("borrow_index", f"{where} {sym}", self.anchors[sym].debt(t), debt, 1 / RAY)

    def compare_balances(self, account: str, where: str) -> None:
        t = self.now()
        for (acct, sym, side), _ in list(self.scaled.items()):
            if acct != account:
                continue
            token = (self.m.a_tokens if side == "a" else self.m.debt_tokens)[sym]
            chain = token.functions.balanceOf(account).call(block_identifier=self.block) / self.unit(sym)
            quantity = "atoken_balance" if side == "a" else "debt_balance"
            unit = 1 / self.unit(sym) + self.carried.get((acct, sym, side), 0.0)
            self.cmp.check(quantity, f"{where} {sym}", self.balance(account, sym, side, t), chain, unit)

    def compare_account(self, account: str, params: EModeParams, where: str) -> None:
        coll, debt, avail, lt, ltv, hf = self.m.pool.functions.getUserAccountData(account).call(
            block_identifier=self.block)
        m_coll, m_debt = self.account(account, self.now())
        # the contract values integer token balances: one smallest unit of each token held, in USD, plus the oracle's
        held = [sym for (acct, sym, _) in self.scaled if acct == account]
        usd = 1 / ORACLE_UNIT + sum(self.price(sym) / self.unit(sym) for sym in held)
        self.cmp.check("collateral_usd", where, m_coll, coll / ORACLE_UNIT, usd)
        self.cmp.check("debt_usd", where, m_debt, debt / ORACLE_UNIT, usd)
        self.cmp.check("ltv", where, params.ltv, ltv / 1e4)
        self.cmp.check("liquidation_threshold", where, params.liquidation_threshold, lt / 1e4)
        self.cmp.check("available_borrows_usd", where, available_borrows(m_coll, m_debt, params.ltv),
                       avail / ORACLE_UNIT, usd)
        if debt:
            self.cmp.check("health_factor", where, health_factor(m_coll, m_debt, params.liquidation_threshold),
                           hf / WAD, 1 / WAD)

    # --- what the accounts do ----------------------------------------------------------------------------------
    def supply(self, account: str, symbol: str, amount: float) -> None:
        raw = round(amount * self.unit(symbol))
        self.m.mint(symbol, account, raw)
        self.tx(self.m.tokens[symbol].functions.approve(self.m.pool.address, MAX_UINT), account, f"approve {symbol}")
        self.tx(self.m.pool.functions.supply(self.m.tokens[symbol].address, raw, account, 0), account,
                f"supply {symbol}")
        self.model_at(lambda t: self.add(account, symbol, "a", raw / self.unit(symbol), t))

    def borrow_max(self, account: str, symbol: str, share: float, where: str) -> None:
        """Borrow `share` of what the model says is available, after showing that the contract refuses a hair
        more than the whole of it and would accept a hair less."""
        m_coll, m_debt = self.account(account, self.now())
        params = self.params[account]
        most = available_borrows(m_coll, m_debt, params.ltv) / self.price(symbol)
        pool, asset = self.m.pool.functions, self.m.tokens[symbol].address
        over, under = round(most * (1 + 1e-6) * self.unit(symbol)), round(most * (1 - 1e-6) * self.unit(symbol))
        self.cmp.holds("max_borrow", where, _reverts(pool.borrow(asset, over, 2, 0, account), account),
                       f"the contract lends {symbol} past the model's maximum {most}")
        self.cmp.holds("max_borrow", where, not _reverts(pool.borrow(asset, under, 2, 0, account), account),
                       f"the contract refuses {symbol} within the model's maximum {most}")
        raw = round(most * share * self.unit(symbol))
        self.tx(pool.borrow(asset, raw, 2, 0, account), account, f"borrow {symbol}")
        self.model_at(lambda t: self.add(account, symbol, "debt", raw / self.unit(symbol), t))

    def liquidate(self, liquidator: str, user: str, collateral: str, debt: str, where: str) -> dict:
        """A second account covers as much of `user`'s debt as it may; the model's call is compared part by part."""
        self.m.mint(debt, liquidator, 10**9 * self.unit(debt))
        self.tx(self.m.tokens[debt].functions.approve(self.m.pool.address, MAX_UINT), liquidator, f"approve {debt}")
        a_coll = self.m.a_tokens[collateral].functions
        wallet = self.m.tokens[collateral].functions
        fee_before = a_coll.balanceOf(self.m.treasury).call(block_identifier=self.block)
        got_before = wallet.balanceOf(liquidator).call(block_identifier=self.block)
        receipt = self.tx(self.m.pool.functions.liquidationCall(
            self.m.tokens[collateral].address, self.m.tokens[debt].address, user, MAX_UINT, False), liquidator,
            f"liquidate {user}")
        event = self.m.pool.events.LiquidationCall().process_receipt(receipt, errors=DISCARD)[0]["args"]
        t = self.now()
        params = self.params[user]
        m_coll, m_debt = self.account(user, t)
        coll_units, debt_units = self.balance(user, collateral, "a", t), self.balance(user, debt, "debt", t)
        call = liquidation(params, health_factor(m_coll, m_debt, params.liquidation_threshold), debt_units,
                           coll_units, self.price(collateral) / self.price(debt))
        cu, du = self.unit(collateral), self.unit(debt)
        # the contract prices collateral from an integer debt amount: one smallest unit of the debt, in collateral
        cunit = 1 / cu + (1 + params.liquidation_bonus) / du * self.price(debt) / self.price(collateral)
        fee = (a_coll.balanceOf(self.m.treasury).call(block_identifier=self.block) - fee_before) / cu
        got = (wallet.balanceOf(liquidator).call(block_identifier=self.block) - got_before) / cu
        self.cmp.check("repaid_debt", where, call.repaid, event["debtToCover"] / du, 1 / du)
        self.cmp.check("liquidator_collateral", where, call.collateral - call.protocol_fee,
                       event["liquidatedCollateralAmount"] / cu, cunit)
        self.cmp.check("liquidator_collateral", f"{where} (wallet)", call.collateral - call.protocol_fee, got, cunit)
        self.cmp.check("protocol_fee", where, call.protocol_fee, fee, cunit)
        self.cmp.check("seized_collateral", where, call.collateral, event["liquidatedCollateralAmount"] / cu + fee,
                       cunit + 1 / cu)
        key = (user, collateral, "a")
        self.carried[key] = self.carried.get(key, 0.0) + cunit
        self.add(user, debt, "debt", -call.repaid, t)
        self.add(user, collateral, "a", -call.collateral, t)
        self.sync()
        return {"close_factor": call.close_factor, "all_seized": call.all_seized,
                "debt_left": self.balance(user, debt, "debt", t)}


def _reverts(call, sender: str) -> bool:
    try:
        call.call({"from": sender})
    except Exception:  # noqa: BLE001 (web3 raises a ContractLogicError subclass per revert shape)
        return True
    return False


def run(market: LocalMarket, risk: dict) -> Comparison:
    """The scenario: a lender, an eMode LST borrower, a standard-mode borrower of USDT, a liquidator."""
    w3 = market.deployer.w3
    accts = w3.eth.accounts
    lender, looper, borrower, liquidator = accts[1], accts[2], accts[3], accts[4]
    s = Scenario(market, {looper: risk_params(risk, "weETH", "WETH", emode=True),
                          borrower: risk_params(risk, "wstETH", "WETH", emode=False)})  # a reserve's own parameters

    s.supply(lender, "WETH", 2_000.0)
    s.supply(lender, "USDT", 5_000_000.0)
    s.supply(looper, "weETH", 100.0)
    s.tx(market.pool.functions.setUserEMode(ETH_EMODE), looper, "enter eMode")
    s.supply(borrower, "wstETH", 10.0)
    for who, where in ((looper, "supplied, eMode"), (borrower, "supplied, standard")):
        s.compare_balances(who, where)
        s.compare_account(who, s.params[who], where)

    s.borrow_max(looper, "WETH", 0.97, "eMode WETH borrow")
    s.borrow_max(borrower, "USDT", 0.90, "standard USDT borrow")
    for who, where in ((lender, "borrowed"), (looper, "borrowed, eMode"), (borrower, "borrowed, standard")):
        s.compare_balances(who, where)
        if who != lender:
            s.compare_account(who, s.params[who], where)
    s.compare_indexes("borrowed")

    for days in (1, 30, 180):
        s.warp(days * DAY)
        where = f"after {days} days"
        s.compare_indexes(where)
        for who in (lender, looper, borrower):
            s.compare_balances(who, where)
        for who in (looper, borrower):
            s.compare_account(who, s.params[who], where)

    # the LST's oracle falls until the eMode account's HF is 0.97: half its debt may be covered
    coll, debt = s.account(looper, s.now())
    s.m.set_price("weETH", s.price("weETH") * 0.97 / health_factor(coll, debt, s.params[looper].liquidation_threshold))
    s.block = w3.eth.block_number
    s.compare_account(looper, s.params[looper], "weETH oracle down")
    half = s.liquidate(liquidator, looper, "weETH", "WETH", "eMode liquidation, HF 0.97")
    s.cmp.holds("close_factor", "eMode liquidation, HF 0.97", half["close_factor"] == 0.5, "close factor not 50%")
    s.compare_balances(looper, "after the eMode liquidation")
    s.compare_account(looper, s.params[looper], "after the eMode liquidation")

    # wstETH falls 22%: the USDT borrower's HF goes under 0.95, all its debt may be covered
    s.m.set_price("wstETH", s.price("wstETH") * 0.78)
    s.block = w3.eth.block_number
    full = s.liquidate(liquidator, borrower, "wstETH", "USDT", "standard liquidation, HF < 0.95")
    s.cmp.holds("close_factor", "standard liquidation", full["close_factor"] == 1.0 and not full["all_seized"],
                "close factor not 100%, or the collateral did not cover it")
    s.compare_balances(borrower, "after the standard liquidation")

    # weETH collapses: the collateral cannot cover the debt. Both sides seize all of it for the debt it covers;
    # then they differ by design: this core release (v3.0) leaves the rest as debt on the account, the model
    # (v3.3) burns it as bad debt. Each side is checked on its own: the chain's debt left equals the model's
    # debt minus what the collateral covered, and the model writes that amount off.
    s.m.set_price("weETH", s.price("weETH") * 0.5)
    s.block = w3.eth.block_number
    bad = s.liquidate(liquidator, looper, "weETH", "WETH", "liquidation past the collateral")
    s.cmp.holds("all_seized", "liquidation past the collateral", bad["all_seized"], "the model left collateral")
    left_chain = market.debt_tokens["WETH"].functions.balanceOf(looper).call(block_identifier=s.block) / 10**18
    s.cmp.check("bad_debt_left", "v3.0 keeps the debt the collateral did not cover", bad["debt_left"], left_chain,
                1e-18)
    left_coll = market.a_tokens["weETH"].functions.balanceOf(looper).call(block_identifier=s.block)
    s.cmp.holds("all_seized", "liquidation past the collateral", left_coll == 0, f"{left_coll} aweETH wei left")
    return s.cmp


def report(cmp: Comparison, anvil_version: str, aave_core_version: str) -> str:
    return json.dumps({"anvil_version": anvil_version, "aave_core_version": aave_core_version, "checks": cmp.checks,
                       "max_rel_diff": cmp.max_rel_diff, "failures": cmp.failures})


def verify(data_dir=None) -> tuple[Comparison, str]:
    """`make verify-aave`: start anvil, deploy, run the scenario; returns the comparison and its JSON summary."""
    from web3 import Web3

    from ..data.dataset import Dataset, resolve_data_dir
    from .deploy import Artifacts, deploy_market
    from .tools import AAVE_PACKAGE, Anvil, ChainTools

    tools = ChainTools.locate()
    risk = Dataset(resolve_data_dir(data_dir)[0]).params("params/aave_v3_risk")
    with Anvil(tools) as node:
        cmp = run(deploy_market(Web3(Web3.HTTPProvider(node.url)), Artifacts.of(tools), risk), risk)
    return cmp, report(cmp, tools.anvil_version(), tools.version(AAVE_PACKAGE))
