"""The pydantic model of a run. Unknown keys are errors; components receive it already valid."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError


class Strict(BaseModel):
    """Unknown keys are errors; NaN and infinities are refused everywhere."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


BLOCK_GAS_LIMIT = 30_000_000  # Ethereum mainnet block gas limit: no operation uses more
GasAmount = Annotated[int, Field(ge=0, le=BLOCK_GAS_LIMIT)]
Bps = Annotated[float, Field(ge=0, le=10_000)]
Hours = Annotated[float, Field(gt=0, le=24 * 366)]


def utc_hour(value: object) -> object:
    """Dates become midnight UTC; naive datetimes are UTC; the result must be a whole hour."""
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError("expected an ISO 8601 date or time, e.g. 2024-02-01 or 2024-02-01T08:00:00Z") from exc
    if isinstance(value, datetime):
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if value.minute or value.second or value.microsecond:
            raise ValueError("must be on a whole UTC hour (the engine runs on an hourly grid)")
    return value


class Flow(Strict):
    """An external deposit (amount > 0) or withdrawal (amount < 0), in share-class units."""

    at: datetime
    amount: float = Field(ge=-1e15, le=1e15)

    _at = field_validator("at", mode="before")(utc_hour)

    @field_validator("amount")
    @classmethod
    def _nonzero(cls, v: float) -> float:
        if v == 0:
            raise ValueError("must not be 0: a deposit is > 0, a withdrawal < 0")
        return v


class GasUnits(Strict):
    """Gas used per on-chain operation (typical Aave v3 Pool calls on Ethereum mainnet)."""

    supply: GasAmount = 200_000
    withdraw: GasAmount = 220_000
    borrow: GasAmount = 260_000
    repay: GasAmount = 200_000
    stake: GasAmount = 150_000
    unstake: GasAmount = 120_000  # a withdrawal request to the protocol's queue
    claim: GasAmount = 90_000  # claiming the ETH of a finalized withdrawal request
    swap: GasAmount = 180_000
    flash_loan_bundle: GasAmount = 1_000_000


class ImpactConfig(Strict):
    """Market impact by the square-root law (Tóth et al. 2011, "Anomalous price impact and the critical nature
    of liquidity in financial markets"; Almgren et al. 2005): an order of Q USD in a market trading V USD an
    hour with hourly volatility sigma costs coefficient x sigma x sqrt(Q / V) of its notional; a trade pays
    the larger of that and the size-bucket slippage, so small orders pay what the buckets say."""

    enabled: bool = True
    coefficient: float = Field(1.0, ge=0, le=10, description="Y in cost = Y x sigma x sqrt(Q / V); of order 1 "
                               "in the empirical literature")
    window_hours: int = Field(24, ge=2, le=24 * 30, description="closed hourly bars before t that estimate "
                              "sigma (root mean square of hourly log returns) and V (mean hourly USD volume)")


class CostsConfig(Strict):
    enabled: bool = True
    impact: ImpactConfig = ImpactConfig()
    gas_series: str = Field("gas/ethereum_gas_1h", max_length=200)
    gas_column: str = Field("gas_price_gwei", max_length=200)
    gas_units: GasUnits = GasUnits()
    # Slippage in bps by pair (e.g. BTC_USDT, ETHUSDT-PERP); pairs not listed use the dataset's
    # params/execution_costs_bps.json table by trade size.
    slippage_bps: dict[str, Bps] = Field(default_factory=dict)


VENUES = ("binance", "bybit", "okx")


class VenueConfig(Strict):
    """Overrides of a CEX venue's dataset parameters (params/cex_venues.json); None keeps the dataset's."""

    perp_taker_fee: float | None = Field(None, ge=0, lt=0.05)
    spot_taker_fee: float | None = Field(None, ge=0, lt=0.05)
    maintenance_margin_rate: float | None = Field(None, gt=0, lt=1)
    initial_margin_rate: float = Field(0.1, gt=0, le=1)
    liquidation_fee_rate: float = Field(0.01, ge=0, lt=0.5)
    transfer_fee_usdt: float = Field(1.0, ge=0, le=1e6)
    # Venue minimums (public trading rules; the dataset has none): smaller orders and transfers are
    # not placed. Binance USDⓈ-M and Bybit linear perps: 5 USDT notional; spot: 5 USDT.
    min_order_usdt: float = Field(5.0, ge=0, le=1e6, description="smallest perp order notional")
    min_spot_order_usdt: float = Field(5.0, ge=0, le=1e6, description="smallest spot order notional")
    min_transfer_usdt: float = Field(10.0, ge=0, le=1e6, description="smallest wallet/venue transfer")
    # Where liquidation is checked each hour: at the open (the mark the strategy sees), or at the adverse
    # extreme of the bar that just closed (its high for a short, low for a long), as a venue watching its
    # price all hour would. The dataset's bars are trade prices, not marks, so this is the cautious choice.
    liquidation_check: Literal["open", "adverse_extreme"] = "adverse_extreme"


class VenuesConfig(Strict):
    binance: VenueConfig = VenueConfig()
    bybit: VenueConfig = VenueConfig()
    okx: VenueConfig = VenueConfig()


class BasisConfig(Strict):
    """Long spot, short perps: what, where, and how much margin beside the hedge."""

    asset: Literal["BTC", "ETH"]
    spot_venue: Literal["binance", "bybit", "okx"] = "bybit"
    margin_buffer: float = Field(0.3, gt=0, le=2, description="perp margin per unit of hedge notional")
    margin_ratio_limit: float = Field(0.1, gt=0, lt=1, description="rebalance when a venue's MM/equity reaches it")
    fixed_units: float | None = Field(None, gt=0, le=1e9, description="hold this hedge size instead of sizing from NAV")


class ExecutionConfig(Strict):
    """How voluntary orders meet the market's liquidity."""

    max_participation: float = Field(0.1, gt=0, le=1, description=(
        "largest share of its market's last closed hourly volume a voluntary order may take in one hour; a "
        "larger one is split over the following hours, hedging legs in step (safety actions and withdrawals "
        "are never split)"))


QueueHours = Annotated[float, Field(ge=0, le=24 * 60)]


class RedeemQueueHours(Strict):
    """Hours from a withdrawal request to the protocol's queue until its ETH can be claimed, per LST."""

    weETH: QueueHours = 168.0  # ether.fi docs: unstaking through the withdrawal queue takes up to 7 days
    wstETH: QueueHours = 120.0  # Lido docs (withdrawals FAQ): requests are finalized in 1-5 days


class StakingConfig(Strict):
    """How ETH becomes the LST and back: protocol mint at the rate (gas) or a DEX swap (slippage); back
    through the protocol's withdrawal queue (the ETH arrives after `redeem_queue_hours`, the fund holds the
    claim meanwhile) or a DEX swap. Withdrawals and safety actions that need ETH now always swap."""

    entry: Literal["mint", "swap"] = "mint"
    exit: Literal["redeem", "swap"] = "redeem"
    redeem_queue_hours: RedeemQueueHours = RedeemQueueHours()
    use_aave: bool = False  # supply the LST to Aave even without borrowing (earns its supply rate)


class LeverageConfig(Strict):
    """Aave eMode leverage: how the target LTV is reached and kept."""

    entry: Literal["loop", "flash_loan"] = "flash_loan"
    loop_max_steps: int = Field(40, ge=1, le=200)
    ltv_tolerance: float = Field(0.005, gt=0, lt=0.1)
    hf_floor: float = Field(1.02, gt=1, le=5)
    releverage_threshold: float = Field(0.02, gt=0, lt=0.5)
    flash_loan_premium: float = Field(0.0005, ge=0, lt=0.01)  # Aave v3 FLASHLOAN_PREMIUM_TOTAL 0.05%


class RewardsConfig(Strict):
    """EtherFi rewards (EIGEN, ETHFI) credited on their distribution dates."""

    enabled: bool = True
    sell_dust: bool = True
    min_sell_value_usd: float = Field(100.0, ge=0, le=1e9, description=(
        "a sale starts when the tokens held are worth this, and each hour's slice must be worth it too"))
    max_gas_share: float = Field(0.05, gt=0, le=1, description=(
        "a slice of a sale is made when its gas is at most this share of what it sells"))
    max_participation: float | None = Field(None, gt=0, le=1e6, description=(
        "largest share of the pool's last closed hourly volume one hour's sale may take (default: "
        "execution.max_participation); above 1 sells more than the pool traded, e.g. where the fund sells elsewhere"))


class MarketNeutralConfig(Strict):
    spot_venue: Literal["binance", "bybit", "okx"] = "bybit"
    margin_ratio_limit: float = Field(0.1, gt=0, lt=1)


class RiskConfig(Strict):
    margin_ratio_alert: float = Field(0.2, gt=0, le=1)
    max_net_delta_pct: float = Field(0.05, gt=0, le=1)
    # Override: above this margin ratio the target exposure is scaled down by reduce_fraction.
    margin_ratio_override: float = Field(0.5, gt=0, le=1)
    reduce_fraction: float = Field(0.5, gt=0, lt=1)


class PricesConfig(Strict):
    """Where hourly prices of assets no venue of the run prices come from: dataset series names."""

    eth_usdt: str = Field("spot/uniswapv3_wethusdt_1h", max_length=200)
    btc_usdt: str = Field("spot/bybit_btcusdt_1h", max_length=200)
    usdt_usd: str = Field("aave/usdt_reserve_1d", max_length=200)


class StalenessHours(Strict):
    """Longest hole (hours between consecutive observations) a run may use, per series kind."""

    bar: Hours = 24.0
    point: Hours = 24.0
    snapshot: Hours = 48.0
    event: Hours = 8.0


class DataConfig(Strict):
    staleness_hours: StalenessHours = StalenessHours()
    staleness_hours_by_series: dict[str, Hours] = Field(default_factory=dict)
    mark_fallback: bool = Field(True, description=(
        "mark a perp whose own bars are missing from the same contract on another venue, else from spot "
        "times the last basis (flagged per hour); false keeps the last own price through a hole"))


SHOCKS = ("eth_price_shock", "btc_price_shock", "lst_rate_shock", "lst_market_depeg", "borrow_rate_spike",
          "funding_flip", "gas_spike", "venue_outage")
# The parameter each shock takes, and its valid range (low, high; None: open).
SHOCK_PARAMS = {
    "eth_price_shock": ("magnitude", -0.95, 10.0), "btc_price_shock": ("magnitude", -0.95, 10.0),
    "lst_rate_shock": ("magnitude", 0.0, 0.95), "lst_market_depeg": ("magnitude", 0.0, 0.95),
    "borrow_rate_spike": ("apr", 0.0, 100.0), "funding_flip": ("factor", -1000.0, 1000.0),
    "gas_spike": ("factor", 0.0, 10_000.0), "venue_outage": (None, None, None),
}


def raise_field_problems(title: str, problems: list[tuple[str, object, str]]) -> None:
    """A model validator's problems, each on its own field (so a nested model's path names it)."""
    raise ValidationError.from_exception_data(title, [
        InitErrorDetails(type=PydanticCustomError("value_error", "{msg}", {"msg": msg}), loc=(field,), input=value)
        for field, value, msg in problems])


class Shock(Strict):
    """A stress scenario's overlay on the aligned market data (data/overlays.py): from `at`, a step (or a
    linear ramp over ramp_hours) to full strength, lasting `hours` from `at` (ramp included; default: to
    the end of the window), then back, at once or linearly over recovery_hours."""

    type: Literal[SHOCKS]
    name: str | None = Field(None, max_length=100, description="a label (default: the type)")
    at: datetime | None = Field(None, description="when it starts (basiskit stress --at)")
    hours: float | None = Field(None, gt=0, le=24 * 3660,
                                description="hours from `at` to the start of the recovery (default: never)")
    path: Literal["step", "linear"] = "step"
    ramp_hours: float = Field(0.0, ge=0, le=24 * 3660)
    recovery_hours: float | None = Field(None, ge=0, le=24 * 3660)
    magnitude: float | None = Field(None, description="price shocks: signed fractional move; LST shocks: the fall")
    apr: float | None = Field(None, description="borrow_rate_spike: the variable borrow APR held")
    factor: float | None = Field(None, description="funding_flip, gas_spike: the multiplier")
    venues: list[Literal["binance", "bybit", "okx"]] | None = Field(None, description="funding_flip, venue_outage")
    reserve: Literal["WETH", "USDT"] = Field("WETH", description="borrow_rate_spike: the borrowed reserve")

    _at = field_validator("at", mode="before")(utc_hour)

    @model_validator(mode="after")
    def _params(self) -> Shock:
        param, low, high = SHOCK_PARAMS[self.type]
        given = {k for k in ("magnitude", "apr", "factor") if getattr(self, k) is not None}
        problems = [(k, getattr(self, k), f"{k} does not apply to {self.type}") for k in sorted(given - {param})]
        if param is not None:
            value = getattr(self, param)
            if value is None:
                problems.append((param, None, f"{self.type} needs {param}"))
            elif not low <= value <= high:
                problems.append((param, value, f"{param} {value:g} is outside [{low:g}, {high:g}]"))
        if self.venues is not None and self.type not in ("funding_flip", "venue_outage"):
            problems.append(("venues", self.venues, f"venues does not apply to {self.type} (it moves every venue)"))
        if self.type == "venue_outage" and not self.venues:
            problems.append(("venues", self.venues, "venue_outage needs venues, e.g. [binance]"))
        if self.path == "linear" and self.ramp_hours <= 0:
            problems.append(("ramp_hours", self.ramp_hours, "path linear needs ramp_hours > 0"))
        if problems:
            raise_field_problems("Shock", problems)
        return self


class AaveConfig(Strict):
    """The fund's own footprint on the Aave v3 reserves it uses (backtest, replay and paper; a live session's
    observed reserve already holds the fund)."""

    rate_impact: bool = Field(True, description=(
        "accrue supply and debt at the reserve's rate strategy with the fund's own supply and debt added to the "
        "observed reserve, less the same strategy without them (the spread over the observed indexes)"))
    liquidity_policy: Literal["refuse", "partial"] = Field("refuse", description=(
        "when the fund's borrowing needs more than the reserve's available liquidity (supply - debt of the "
        "others) at some hour: refuse the run naming the reserve, the hour and the capital that fits, or take "
        "what is available and wait for the rest (borrows only: safety actions are never limited)"))


class LendingConfig(Strict):
    """Aave v3 supply: which reserve holds the capital."""

    reserve: Literal["USDT", "WETH"]



class LiveAlertLevels(Strict):
    """Where a live session alerts (once per crossing, again once it is back): None takes the mode's own limit."""

    health_factor: float | None = Field(None, gt=1, le=10, description="an Aave account's HF under it (default: "
                                        "leverage.hf_floor)")
    margin_ratio: float | None = Field(None, gt=0, le=1, description="a venue's maintenance margin / equity at or "
                                       "above it (default: risk.margin_ratio_alert)")
    liq_distance: float = Field(0.10, gt=0, lt=1, description="a position this close to liquidation (a perp's mark "
                                "to its liquidation price; Aave: 1 - 1/HF)")


class LiveConfig(Strict):
    """A live session's sending limits (`live run --execute confirm|auto`); `auto` requires every limit. Safety
    actions (the triggers health_factor, margin_ratio, risk_override and `live run --exit`) are never blocked by
    max_order_usd or max_day_usd: they are counted and alerted, and capped by safety_max_order_usd when it is set."""

    max_order_usd: float | None = Field(None, gt=0, le=1e12, description="largest notional of one order, USD")
    max_day_usd: float | None = Field(None, gt=0, le=1e13, description="notional sent per UTC day, USD (a "
                                      "flash-loan bundle counts once, at its net exposure change)")
    max_slippage_bps: float | None = Field(None, gt=0, le=1000, description="an order's limit from the mark")
    max_gas_gwei: float | None = Field(None, gt=0, le=10_000, description="the highest max fee per gas sent")
    venues: list[Literal["binance", "bybit", "okx", "aave_v3", "ethereum"]] | None = Field(
        None, max_length=5, description="venues orders may go to")
    approval_minutes: float = Field(30.0, gt=0, le=1440, description="how long a batch waits for approval")
    approved_ttl_minutes: float = Field(10.0, gt=0, le=1440, description="an approved order not sent within this "
                                        "long expires")
    fresh_reading_seconds: float = Field(60.0, gt=0, le=3600, description="a plan whose reading is older when its "
                                         "first order would go is planned again on a fresh reading first "
                                         "(a plan of safety orders only goes on its reading)")
    replan_tolerance: float = Field(0.02, ge=0, le=0.5, description="a fresh plan keeps the approval of the one "
                                    "it replaces when its orders are the same, sizes within this fraction")
    safety_max_order_usd: float | None = Field(None, gt=0, le=1e13, description="largest notional of one safety "
                                               "order, USD (unset: no cap)")
    safety_max_gas_gwei: float | None = Field(None, gt=0, le=100_000, description="the highest max fee per gas a "
                                              "safety order pays (default: 3 x max_gas_gwei)")
    safety_needs_approval: bool = Field(False, description="with --execute confirm, safety orders wait for "
                                        "approval too (default: they go at once, alerted)")
    gas_reserve_eth: float = Field(0.02, ge=0, le=1e6, description="the least ETH the wallet keeps for gas: the "
                                   "reserve is the larger of this and a full de-lever at the 30-day 99th percentile "
                                   "gas price (backtests too)")
    heartbeat_s: float = Field(10.0, gt=0, le=3600, description="how often a session renews its lease; a lease "
                                "3 heartbeats old may be taken over, and a session without one is shown dead")
    outage_alert_s: float = Field(60.0, gt=0, le=86_400, description="a venue or the RPC down this long is an alert")
    outage_alert_every_minutes: float = Field(15.0, gt=0, le=1440, description="and again this often while down")
    log_chunk_blocks: int = Field(2_000, ge=1, le=1_000_000, description="blocks per eth_getLogs request when the "
                                  "chain is read over a gap")
    alerts: LiveAlertLevels = LiveAlertLevels()

    def missing(self) -> list[str]:
        """The limits `auto` needs that are unset."""
        return [k for k in ("max_order_usd", "max_day_usd", "max_slippage_bps", "max_gas_gwei", "venues")
                if getattr(self, k) is None]

    @property
    def safety_gas_gwei(self) -> float | None:
        """The max fee per gas a safety order may pay."""
        if self.safety_max_gas_gwei is not None:
            return self.safety_max_gas_gwei
        return None if self.max_gas_gwei is None else 3.0 * self.max_gas_gwei


class RunConfig(Strict):
    mode: str = Field(max_length=100)
    description: str = Field("", max_length=2000)
    strategy: str = Field(max_length=100, description="a registered strategy (checked when the run is built)")
    share_class: Literal["USDT", "ETH"]
    start: datetime | None = None
    end: datetime | None = None
    initial_capital: float = Field(gt=0, le=1e15)
    flows: list[Flow] = Field(default_factory=list, max_length=100_000)
    position_deviation_threshold: float = Field(0.001, ge=0, lt=1)
    reconciliation_tolerance: float = Field(1e-9, gt=0, le=1)
    lending: LendingConfig | None = None
    basis: BasisConfig | None = None
    hedge_allocation: dict[str, float] | None = None
    lst: Literal["weETH", "wstETH"] | None = None
    target_ltv: float | None = Field(None, ge=0, lt=1)
    stake_allocation: float | None = Field(None, gt=0, lt=1)
    staking: StakingConfig = StakingConfig()
    leverage: LeverageConfig = LeverageConfig()
    rewards: RewardsConfig = RewardsConfig()
    market_neutral: MarketNeutralConfig = MarketNeutralConfig()
    venues: VenuesConfig = VenuesConfig()
    risk: RiskConfig = RiskConfig()
    costs: CostsConfig = CostsConfig()
    execution: ExecutionConfig = ExecutionConfig()
    aave: AaveConfig = AaveConfig()
    prices: PricesConfig = PricesConfig()
    data: DataConfig = DataConfig()
    live: LiveConfig = LiveConfig()
    benchmark: Literal["aave_usdt_supply", "etherfi_eeth_staking", "ethena_susde", "aave_weth_supply"] | None = Field(
        None, description="the yield the run is judged against (capacity, tearsheet); default by share class: "
        "aave_usdt_supply for USDT, etherfi_eeth_staking for ETH")
    stress: list[Shock] = Field(default_factory=list, max_length=20,
                                description="stress scenario overlays (basiskit stress); empty: the history as it was")

    _hours = field_validator("start", "end", mode="before")(utc_hour)

    @field_validator("hedge_allocation")
    @classmethod
    def _allocation(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        if v is None:
            return v
        problems = [f"unknown venue {k!r} (venues: {', '.join(VENUES)})" for k in v if k not in VENUES]
        problems += [f"weight of {k} is {w}; weights must be >= 0" for k, w in v.items() if w < 0]
        if not problems and abs(sum(v.values()) - 1.0) > 1e-9:
            problems.append(f"weights sum to {sum(v.values()):g}; they must sum to 1")
        if problems:
            raise ValueError("; ".join(problems))
        return v


def cross_problems(cfg: RunConfig) -> list[tuple[str, object, str]]:
    """Problems between general fields of an otherwise valid config, each with its own field path.
    The rules of a strategy live with the strategy (strategies/) and run when a run config is built."""
    problems: list[tuple[str, object, str]] = []
    if cfg.start and cfg.end and cfg.start >= cfg.end:
        problems.append(("start", cfg.start.isoformat(), f"must be before end {cfg.end.isoformat()}"))
    for i, flow in enumerate(cfg.flows):
        if (cfg.start and flow.at <= cfg.start) or (cfg.end and flow.at >= cfg.end):
            problems.append((f"flows.{i}.at", flow.at.isoformat(), "must lie strictly inside the window"))
    for i, shock in enumerate(cfg.stress):
        if shock.at is None:
            problems.append((f"stress.{i}.at", None, "required: when the shock starts (basiskit stress --at)"))
        elif (cfg.start and shock.at < cfg.start) or (cfg.end and shock.at > cfg.end):
            problems.append((f"stress.{i}.at", shock.at.isoformat(),
                             f"outside the window {cfg.start} .. {cfg.end} (both hours included)"))
    return problems
