"""The tearsheet's tables for every preset, against the book: costs by kind (from the events) add up to the
transaction costs the book attributed, the attribution totals are the per-tick PnL summed, and the headline
metrics are the summary's."""

from __future__ import annotations

import pytest

from basiskit.config import preset_names
from basiskit.config.loading import run_overrides
from basiskit.data.dataset import SAMPLE_DIR, Dataset
from basiskit.engine.run import Backtest
from basiskit.engine.runconfig import load_run_config
from basiskit.results.panels import COST_KINDS, attribution, costs_by_kind, headline, panels
from basiskit.results.summary import summarize
from basiskit.results.tables import events_table, ticks_table
from basiskit.results.tearsheet import tearsheet
from basiskit.strategies.registry import load_builtins


@pytest.fixture(scope="module")
def dataset():
    load_builtins()
    return Dataset(SAMPLE_DIR)


@pytest.mark.parametrize("mode", preset_names())
def test_costs_by_kind_add_up_to_the_books_transaction_costs(mode, dataset):
    cfg = load_run_config(mode, extra=run_overrides("2024-11-01", "2024-11-15", None, {}), dataset=dataset)
    result = Backtest(cfg, dataset).run()
    ticks, events = ticks_table(result), events_table(result)
    costs = costs_by_kind(events)
    assert list(costs) == list(COST_KINDS) and all(v >= 0.0 for v in costs.values())
    booked = -ticks["pnl_transaction_costs"].sum() if "pnl_transaction_costs" in ticks else 0.0
    assert sum(costs.values()) == pytest.approx(booked, rel=1e-9, abs=1e-12), costs
    totals = attribution(ticks)
    summary = {**summarize(result), "run_id": "t"}
    for name, value in summary["pnl_attribution"].items():
        assert totals["share_class"][name] == pytest.approx(value, rel=1e-12, abs=1e-12)
        assert totals["usd"][name] == pytest.approx(summary["pnl_attribution_usd"][name], rel=1e-12, abs=1e-12)
    # the PnL by source and the residual make the change of NAV less the flows (money counted twice)
    nav_change = ticks["nav"].iloc[-1] - cfg.initial_capital - ticks["flow"].iloc[1:].sum()
    assert sum(totals["share_class"].values()) == pytest.approx(nav_change, rel=1e-9, abs=1e-9)
    shown = {m["key"]: m["value"] for m in headline(summary)}
    assert shown["apy"] == summary["apy"] and shown["final_nav"] == summary["final_nav"]
    assert all(len(m["definition"]) > 20 for m in headline(summary))
    ids = [p.id for p in panels(summary, ticks, events, cfg.model_dump(mode="json"), tearsheet(ticks))]
    assert ids[:3] == ["nav", "underwater", "rolling"] and "costs" in ids and "exposure" in ids
    assert ("funding" in ids) == any(c.startswith("funding:") for c in ticks.columns)


def test_returns_after_a_total_loss_are_undefined_not_numbers(dataset):
    """A share index that reached 0 (everything lost) has no return in the months after: null in the API's schema,
    "n/a" in the report, never NaN or a division by zero."""
    from basiskit.api.models import Tearsheet
    from basiskit.results.db import json_safe
    from basiskit.results.panels import tearsheet_document
    from basiskit.results.report import tearsheet_html

    cfg = load_run_config("eth_basis", extra=run_overrides("2024-11-01", "2024-12-15", None, {}), dataset=dataset)
    result = Backtest(cfg, dataset).run()
    ticks, events = ticks_table(result), events_table(result)
    lost = ticks.index[ticks["timestamp"] >= "2024-11-20"]  # as a wiped-out run's index: 0 from that hour on
    ticks.loc[lost, ["share_index", "nav"]] = 0.0
    ticks["drawdown"] = 1.0 - ticks["share_index"] / ticks["share_index"].clip(lower=1.0).cummax()
    sheet = json_safe(tearsheet_document({**summarize(result), "run_id": "t"}, ticks, events,
                                         cfg.model_dump(mode="json")))
    assert [(m["month"], m["return"]) for m in sheet["monthly_returns"]] == [("2024-11", -1.0), ("2024-12", None)]
    assert sheet["drawdowns"][0]["depth"] == 1.0
    Tearsheet.model_validate(sheet)
    raw = tearsheet(ticks)  # as the report reads it, before any JSON clean-up
    assert raw["monthly_returns"][1]["return"] is None and raw["yearly_returns"][0]["return"] == -1.0
    html = tearsheet_html(raw)
    assert '<td data-month="2024-12">n/a</td>' in html and '<td data-month="2024-11">-100.00%</td>' in html
