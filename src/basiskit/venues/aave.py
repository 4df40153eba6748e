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


@dataclass(frozen=True)
class EModeParams:
    """eMode (or standard) risk parameters of a collateral/debt pair (params/aave_v3_risk.json)."""

    ltv: float
    liquidation_threshold: float
    liquidation_bonus: float
    close_factor: float = 0.5  # Aave v3.0-3.2: 50% of the debt ...
    close_factor_hf: float = 0.95  # ... 100% when HF < 0.95


def emode_params(dataset: Dataset, collateral: str, debt: str, emode: bool) -> EModeParams:
    risk = dataset.params("params/aave_v3_risk")
    table = risk["emode" if emode else "standard"]
    pair = f"{collateral}_{debt}"
    if pair not in table["ltv_limits"]:
        raise DataError(f"params/aave_v3_risk.json has no {'emode' if emode else 'standard'} pair {pair}.")
    return EModeParams(table["ltv_limits"][pair], table["liquidation_thresholds"][pair],
                       table["liquidation_bonus"][pair])


def health_factor(collateral_eth: float, debt_eth: float, lt: float) -> float:
    """HF = Σ collateral x liquidation threshold / debt, both in the oracle's base (Aave v3 GenericLogic)."""
    return collateral_eth * lt / debt_eth if debt_eth > 0.0 else float("inf")
