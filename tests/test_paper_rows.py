"""What the paper market takes from a feed and what it refuses, row by row (the sample's series formats)."""

from __future__ import annotations

import math

import pytest

from basiskit.config.models import DataConfig
from basiskit.data.dataset import SAMPLE_DIR, Dataset
from basiskit.data.live import LiveMarket
from basiskit.data.market import Need
from basiskit.data.timeutil import to_epoch

PERP, FUNDING = "perp/binance_btcusdt_1h", "funding/binance_btcusdt_8h"
T0 = to_epoch("2024-11-01T00:00:00Z")
H = 3600


def market() -> LiveMarket:
    needs = [Need(PERP, "open", "bar_price"), Need(FUNDING, "funding_rate", "events")]
    return LiveMarket(Dataset(SAMPLE_DIR), DataConfig(), needs, T0, T0 + 24 * H)


BAR = {"open": 100.0, "high": 110.0, "low": 95.0, "close": 105.0, "volume": 3.0}


@pytest.mark.parametrize(("row", "now", "reason"), [
    ({"open": math.nan}, T0, "open is nan, not a number"),
    ({"open": 0.0}, T0, "open is 0.0; a price, index or rate must be > 0"),
    ({"open": -5.0}, T0, "open is -5.0; a price, index or rate must be > 0"),
    ({"open": 100.0, "volume": -1.0}, T0, "volume is -1.0; it cannot be negative"),
    ({"open": 100.0}, T0 - H, "after the hour being delivered"),
    ({"price": 100.0}, T0, "unknown column 'price'"),
])
def test_a_bad_row_is_refused_and_never_stored(row, now, reason):
    m = market()
    assert m.take(PERP, T0, row, now) is False
    assert m.buffers[PERP].n == 0 and len(m.refusals) == 1
    assert m.refusals[0].series == PERP and reason in m.refusals[0].reason


def test_time_going_backwards_a_duplicate_settlement_and_a_revision_are_refused():
    m = market()
    assert m.take(PERP, T0, {"open": 100.0}, T0)
    assert not m.take(PERP, T0 - H, dict(BAR), T0)
    assert "time goes backwards (the last row is at 2024-11-01T00:00:00Z)" in m.refusals[-1].reason
    assert m.take(PERP, T0, {"open": 100.0}, T0) and len(m.refusals) == 1  # the same row again: ignored, no alert
    assert not m.take(PERP, T0, {"open": 101.0}, T0)
    assert m.refusals[-1].reason == "it revises a row already delivered"
    assert m.buffers[PERP].last_row()["open"] == 100.0
    assert m.take(PERP, T0, dict(BAR), T0 + H)  # the bar's close completes the row its open started
    assert m.buffers[PERP].n == 1
    assert m.buffers[PERP].last_row() == BAR
    assert m.take(FUNDING, T0, {"funding_rate": 0.0001}, T0)
    assert not m.take(FUNDING, T0, {"funding_rate": 0.0001}, T0)
    assert m.refusals[-1].reason == "a second settlement at the same time (duplicate)"
    assert m.buffers[FUNDING].n == 1


def test_a_refused_close_forgets_the_bars_open_and_the_price_falls_back_to_the_last_close():
    m = market()
    assert m.take(PERP, T0 - H, {**BAR, "close": 99.0}, T0)  # the last closed bar before the window
    assert m.take(PERP, T0, {"open": 100.0}, T0)
    m.fill(0)
    assert m.array(Need(PERP, "open", "bar_price"))[0] == 100.0  # the open of the bar labelled t
    assert not m.take(PERP, T0, {**BAR, "close": 0.0}, T0 + H)
    assert m.buffers[PERP].n == 1  # the bar is gone, open and all
    m.take(FUNDING, T0 + H, {"funding_rate": 0.0002}, T0 + H)
    m.fill(1)
    assert m.array(Need(PERP, "open", "bar_price"))[1] == 99.0  # the previous bar's close, as with a hole
    assert m.array(Need(FUNDING, "funding_rate", "events"))[1] == 0.0002  # settled in (t0, t1]
    assert math.isnan(m.array(Need(PERP, "open", "bar_price"))[2])  # hour 2 does not exist yet


def test_a_series_staler_than_its_limit_is_reported():
    m = market()
    m.take(PERP, T0, {"open": 100.0}, T0)
    m.take(FUNDING, T0, {"funding_rate": 0.0001}, T0)
    assert m.stale(0) == []
    stale = m.stale(9)  # 9 h after the last settlement (limit 8 h), 9 h after the last bar (limit 24 h)
    assert [(s.series, s.hours, s.limit_key) for s in stale] == [(FUNDING, 9.0, "data.staleness_hours.event")]
