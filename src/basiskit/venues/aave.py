"""Aave v3: supply and variable debt held scaled by the reserve's indexes, exactly as aTokens and
variableDebtTokens are; eMode risk parameters; health factor and LTV on the Aave oracle."""

from __future__ import annotations

from dataclasses import dataclass

from ..data.dataset import Dataset
from ..data.market import MarketData, Need
from ..errors import DataError
from ..portfolio.instruments import Instrument

# Reserve symbol -> (dataset series, asset that prices one token).
RESERVES = {
    "USDT": ("aave/usdt_reserve_1d", "USDT"),
    "WETH": ("aave/weth_reserve_1d", "ETH"),
    "weETH": ("aave/weeth_reserve_1d", "weETH"),
    "wstETH": ("aave/wsteth_reserve_1d", "wstETH"),
}


@dataclass
class AaveReserve:
    """One Aave v3 reserve as seen by a run: its token instruments and hourly indexes."""

    symbol: str
    borrowed: bool = False

    def __post_init__(self) -> None:
        self.series, self.asset = RESERVES[self.symbol]
        self.atoken = Instrument("aave_v3", "aToken", f"a{self.symbol}", self.asset)
        self.debt_token = Instrument("aave_v3", "debtToken", f"debt{self.symbol}", self.asset)
        # indexes accrue from the last snapshot at its rates (Aave v3 ReserveLogic.getNormalizedIncome/Debt)
        self.liquidity_index_need = Need(self.series, "liquidity_index", "linear_accrual",
                                         rate_column="liquidity_rate")
        self.borrow_index_need = Need(self.series, "variable_borrow_index", "compound_accrual",
                                      rate_column="variable_borrow_rate")
        self.liquidity_index: list[float] = []
        self.borrow_index: list[float] = []

    def needs(self) -> list[Need]:
        return [self.liquidity_index_need] + ([self.borrow_index_need] if self.borrowed else [])

    def bind(self, market: MarketData) -> None:
        self.liquidity_index = market.values(self.liquidity_index_need)
        if self.borrowed:
            self.borrow_index = market.values(self.borrow_index_need)

    def scaled_amount(self, amount: float, k: int) -> float:
        """Scaled balance minted or burned for `amount` tokens at point k.

        scaled = amount / liquidityIndex (Aave v3 docs, AToken: balanceOf = scaledBalance * index).
        """
        return amount / self.liquidity_index[k]

    def balance(self, scaled: float, k: int) -> float:
        """Token balance of a scaled balance at point k: scaled * liquidityIndex (Aave v3 AToken)."""
        return scaled * self.liquidity_index[k]

    def scaled_debt(self, amount: float, k: int) -> float:
        """scaled debt = amount / variableBorrowIndex (Aave v3 VariableDebtToken)."""
        return amount / self.borrow_index[k]

    def debt(self, scaled: float, k: int) -> float:
        return scaled * self.borrow_index[k]


# Aave v3 Ethereum's liquidation protocol fee: 10% of the liquidation bonus goes to the treasury (Aave risk params).
LIQUIDATION_PROTOCOL_FEE = 0.10


@dataclass(frozen=True)
class EModeParams:
    """eMode (or standard) risk parameters of a collateral/debt pair (params/aave_v3_risk.json)."""

    ltv: float
    liquidation_threshold: float
    liquidation_bonus: float
    close_factor: float = 0.5  # Aave v3.0-3.2: 50% of the debt ...
    close_factor_hf: float = 0.95  # ... 100% when HF <= 0.95 (LiquidationLogic.CLOSE_FACTOR_HF_THRESHOLD)
    protocol_fee: float = LIQUIDATION_PROTOCOL_FEE


def emode_params(dataset: Dataset, collateral: str, debt: str, emode: bool) -> EModeParams:
    return risk_params(dataset.params("params/aave_v3_risk"), collateral, debt, emode)


def risk_params(risk: dict, collateral: str, debt: str, emode: bool) -> EModeParams:
    """The pair's parameters from params/aave_v3_risk.json's eMode or standard table."""
    table = risk["emode" if emode else "standard"]
    pair = f"{collateral}_{debt}"
    if pair not in table["ltv_limits"]:
        raise DataError(f"params/aave_v3_risk.json has no {'emode' if emode else 'standard'} pair {pair}.")
    return EModeParams(table["ltv_limits"][pair], table["liquidation_thresholds"][pair],
                       table["liquidation_bonus"][pair])


def available_borrows(collateral: float, debt: float, ltv: float) -> float:
    """What more can be borrowed, in the oracle's base: collateral x LTV - debt, at least 0
    (Aave v3 GenericLogic.calculateAvailableBorrows)."""
    return max(collateral * ltv - debt, 0.0)


@dataclass(frozen=True)
class Liquidation:
    """One liquidation call: debt repaid, collateral taken from the borrower (the liquidator's part plus the
    protocol's fee), in token units."""

    close_factor: float
    repaid: float
    collateral: float
    protocol_fee: float
    all_seized: bool


def liquidation(params: EModeParams, health: float, debt: float, collateral: float, price_ratio: float) -> Liquidation:
    """A liquidator covering as much debt as it may (Aave v3 LiquidationLogic): close factor 50%, 100% at HF <= 0.95;
    collateral = repaid x debt price / collateral price x (1 + bonus), capped at the balance (then the debt repaid
    is what that covers); the protocol fee = fee x (collateral - collateral / (1 + bonus)).
    `price_ratio` = collateral price / debt price on the oracle."""
    close_factor = params.close_factor if health > params.close_factor_hf else 1.0
    repaid = close_factor * debt
    bonus = 1.0 + params.liquidation_bonus
    taken = repaid * bonus / price_ratio
    all_seized = taken > collateral
    if all_seized:
        taken = collateral
        repaid = collateral * price_ratio / bonus
    return Liquidation(close_factor, repaid, taken, (taken - taken / bonus) * params.protocol_fee, all_seized)


def health_factor(collateral_eth: float, debt_eth: float, lt: float) -> float:
    """HF = Σ collateral x liquidation threshold / debt, both in the oracle's base (Aave v3 GenericLogic)."""
    return collateral_eth * lt / debt_eth if debt_eth > 0.0 else float("inf")
