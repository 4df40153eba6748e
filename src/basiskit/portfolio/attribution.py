"""PnL attribution types (ARCHITECTURE.md §6): each is a slot in the per-tick attribution arrays."""

ATTRIBUTION_TYPES = (
    "supply_yield",
    "borrow_cost",
    "staking_yield",
    "staking_rewards",
    "funding",
    "spot_price",
    "perp_price",
    "lst_price",
    "transaction_costs",
    "liquidation_loss",  # liquidation fees and bonuses paid to liquidators: a loss, not a cost of trading
)
SLOT = {name: i for i, name in enumerate(ATTRIBUTION_TYPES)}
SUPPLY_YIELD = SLOT["supply_yield"]
SPOT_PRICE = SLOT["spot_price"]
TRANSACTION_COSTS = SLOT["transaction_costs"]
LIQUIDATION_LOSS = SLOT["liquidation_loss"]
# Slot for factors that are constant (a plain token's index, USDT priced in USDT): always 0, never reported.
VOID = len(ATTRIBUTION_TYPES)
N_SLOTS = VOID + 1
