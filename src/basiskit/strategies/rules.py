"""The rules a run config must meet beyond its fields, checked when a run config is built: the
dataset names it sets, and the rules of its strategy (which live with the strategy)."""

from __future__ import annotations

from ..config.models import CostsConfig, PricesConfig, RunConfig
from ..data.dataset import Dataset
from ..venues.rewards import TOKENS
from ..venues.staking import LSTS
from .base import Problem
from .registry import get_strategy, strategy_names

ASSETS = ("BTC", "ETH")
PRICE_COLUMN = {"usdt_usd": "oracle_price_usd"}  # prices.* series are read from `open` unless named here


def known_pairs(dataset: Dataset) -> set[str]:
    """Every slippage pair a run can trade: the dataset's table and the pairs of the venues' products."""
    pairs = {f"{a}_USDT" for a in ASSETS} | {f"{a}USDT-PERP" for a in ASSETS}
    pairs |= {pair for _, _, _, pair in LSTS.values()}
    pairs |= {f"{t}_{ccy}" for t in TOKENS for ccy in ("ETH", "USDT")}
    name = "params/execution_costs_bps"
    if name in dataset.params_files:
        pairs |= set(dataset.params(name).get("slippage_bps", {}))
    return pairs


def data_problems(cfg: RunConfig, dataset: Dataset) -> list[Problem]:
    """Series and pairs the config names that the dataset does not have.

    A series left at its default may be absent from a dataset whose runs do not need it; a run that
    does need it stops naming the series when its market data is built."""
    problems: list[Problem] = []
    names = set(dataset.names())
    where = f"{dataset.root}/MANIFEST.json"
    named = [(f"prices.{k}", v, PricesConfig.model_fields[k].default, PRICE_COLUMN.get(k, "open"))
             for k, v in cfg.prices.model_dump().items()]
    named.append(("costs.gas_series", cfg.costs.gas_series, CostsConfig.model_fields["gas_series"].default, None))
    for field, series, default, column in named:
        if series == default and series not in names:
            continue
        if series not in names:
            problems.append((field, series, f"no such series in {where}; series look like 'gas/ethereum_gas_1h'"))
        elif column and column not in dataset.series_meta(series).columns:
            problems.append((field, series, f"has no column {column!r}, which a price is read from"))
    gas = cfg.costs.gas_series
    if gas in names and cfg.costs.gas_column not in dataset.series_meta(gas).columns:
        columns = ", ".join(c for c in dataset.series_meta(gas).columns if c != "timestamp")
        problems.append(("costs.gas_column", cfg.costs.gas_column, f"not a column of {gas} (columns: {columns})"))
    for series in cfg.data.staleness_hours_by_series:
        if series not in names:
            problems.append((f"data.staleness_hours_by_series.{series}", series, f"no such series in {where}"))
    pairs = known_pairs(dataset)
    for pair in cfg.costs.slippage_bps:
        if pair not in pairs:
            problems.append((f"costs.slippage_bps.{pair}", pair, f"unknown pair; pairs: {', '.join(sorted(pairs))}"))
    return problems


def run_config_problems(cfg: RunConfig, dataset: Dataset) -> list[Problem]:
    """Every problem between the fields of a well-formed config: data names, then its strategy's rules."""
    problems = data_problems(cfg, dataset)
    if cfg.strategy not in strategy_names():
        return problems + [("strategy", cfg.strategy, f"unknown strategy; registered: {', '.join(strategy_names())}")]
    return problems + get_strategy(cfg.strategy).validate_config(cfg, dataset)
