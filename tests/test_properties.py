"""Property tests on the real dataset: random configs of the staking, leveraged, basis and
market-neutral presets over random windows. Every accepted config reconciles, does not churn,
never overdraws a balance, has no look-ahead and is deterministic; every refused one says why.

CI runs a fixed, derandomized set; `make fuzz` runs many more (BASISKIT_FUZZ_EXAMPLES, default 600).
"""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings

from basiskit.data.dataset import Dataset
from fuzzing import MODES, Stats, build_and_run, check_accepted, check_stressed, run_draws, stressed_draws

FUZZ = int(os.environ.get("BASISKIT_FUZZ_EXAMPLES", "0"))
EXAMPLES = FUZZ or 8  # per mode
STATS = Stats()
STRESSED = Stats()


@pytest.fixture(scope="module")
def dataset(full_data) -> Dataset:
    return Dataset(full_data)


def _most_ran(mode: str, statuses: list[str]) -> None:
    """At least half of a mode's draws ran (a property that held only on refused configs proves nothing)."""
    ran = statuses.count("ran") + statuses.count("stopped")
    assert ran >= len(statuses) / 2, f"{mode}: only {ran} of {len(statuses)} draws ran: {statuses}"


@pytest.mark.parametrize("mode", sorted(MODES))
def test_random_configs_behave(dataset, mode):
    statuses: list[str] = []

    @given(d=run_draws(mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=not FUZZ,
              suppress_health_check=list(HealthCheck))
    def check(d):
        out = build_and_run(d, dataset)
        STATS.add(out.status)
        statuses.append(out.status)
        if out.status in ("refused", "refused_data"):
            assert out.message and "Traceback" not in out.message
            return
        if out.status == "stopped":  # only a withdrawal that cannot be met stops a run
            assert "withdrawal flows." in out.message and any(f["amount"] < 0 for f in d.flows), out.message
            return
        check_accepted(d, out, dataset, STATS)

    check()
    _most_ran(mode, statuses)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_random_configs_under_random_shocks_behave(dataset, mode):
    """The same random configs with one or two random shocks (any type, size, start, length and path)."""
    statuses: list[str] = []

    @given(d=stressed_draws(mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=not FUZZ,
              suppress_health_check=list(HealthCheck))
    def check(d):
        out = build_and_run(d, dataset)
        STRESSED.add(out.status)
        statuses.append(out.status)
        if out.status in ("refused", "refused_data"):
            assert out.message and "Traceback" not in out.message
            return
        if out.status == "stopped":
            assert "withdrawal flows." in out.message and any(f["amount"] < 0 for f in d.flows), out.message
            return
        check_stressed(d, out, dataset, STRESSED)

    check()
    _most_ran(mode, statuses)


def teardown_module(module) -> None:
    """Counts and the worst rates seen, for `make fuzz` and the closing note."""
    if not STATS.counts and not STRESSED.counts:
        return
    report = {"counts": STATS.counts, "counts_under_shocks": STRESSED.counts, "worst_cost_rate": STATS.worst_cost_rate,
              "worst_rebalances_per_day": STATS.worst_rebalance_rate,
              "worst_safety_and_withdrawal_cost_rate": STATS.worst_forced_cost_rate}
    os.makedirs("test-artifacts", exist_ok=True)
    with open("test-artifacts/properties.json", "w") as f:
        json.dump(report, f, indent=2)
    print("\nproperty runs:", json.dumps(report, indent=2))
