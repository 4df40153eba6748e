"""Metrics that stay true at the edges: NAV reaching zero or below, everything withdrawn, a deposit
after that; no runtime warning ever leaks. Expected figures are worked out by hand."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from basiskit.results import metrics

GRID = np.arange(6) * 3600 + 1_717_200_000  # six hourly points from 2024-06-01T00:00Z


def index_of(nav, flows):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any numpy RuntimeWarning fails the test
        return metrics.share_index(np.array(nav, float), np.array(flows, float))


def test_a_total_loss_is_minus_100_percent_with_undefined_volatility():
    nav, flows = [100.0, 50.0, -10.0, -5.0, 0.0, 0.0], [100.0, 0, 0, 0, 0, 0]
    index = index_of(nav, flows)
    # returns 0, -50%, then -120% floored at -100%: the index reaches 0 at point 2 and stays there
    assert index.tolist() == [1.0, 0.5, 0.0, 0.0, 0.0, 0.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert metrics.total_return(index) == -1.0
        assert metrics.apy(index, 5) == -1.0
        assert metrics.max_drawdown(index) == 1.0
        assert metrics.volatility(index) is None and metrics.sharpe(index) is None
        assert "reached zero at 2024-06-01T02:00:00Z" in metrics.metrics_note(index, GRID)


def test_everything_withdrawn_then_a_deposit():
    # +10% in hour 1, all 110 withdrawn at point 2 (nothing invested until the deposit of 50 at point 4),
    # which earns +10% in hour 5
    nav, flows = [100.0, 110.0, 0.0, 0.0, 50.0, 55.0], [100.0, 0, -110.0, 0, 50.0, 0]
    index = index_of(nav, flows)
    assert index == pytest.approx([1.0, 1.1, 1.1, 1.1, 1.1, 1.21], rel=1e-15)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert metrics.total_return(index) == pytest.approx(0.21, rel=1e-12)
        assert metrics.volatility(index) is not None and metrics.metrics_note(index, GRID) is None


def test_flat_nav_has_no_sharpe_and_says_why():
    index = index_of([100.0] * 6, [100.0, 0, 0, 0, 0, 0])
    assert metrics.volatility(index) == 0.0 and metrics.sharpe(index) is None
    assert metrics.metrics_note(index, GRID) == "zero volatility: Sharpe is undefined"
