"""Stress scenarios on real data: liquidation distances by hand, shocks placed just short of and just past
them, every library scenario on every mode it applies to, shocks with no effect, intrabar liquidation
checks, refused scenario files."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from decimal import Decimal, localcontext

import numpy as np
import pandas as pd
import pytest

from basiskit.data.dataset import SAMPLE_DIR, Dataset
from basiskit.data.overlays import drives, intensity
from basiskit.data.synthetic import SyntheticMarket
from basiskit.engine.run import Backtest, run_backtest
from basiskit.engine.runconfig import load_run_config
from basiskit.results.tables import ticks_table
from basiskit.stress.scenarios import LIBRARY, library
from conftest import edit_series, raw_csv

RISK = json.loads((SAMPLE_DIR / "params/aave_v3_risk.json").read_text())["emode"]
LT, BONUS = RISK["liquidation_thresholds"]["weETH_WETH"], RISK["liquidation_bonus"]["weETH_WETH"]
AT = "2024-09-02T00:00:00Z"
YEAR = {"start": "2024-06-01", "end": "2025-06-01", "initial_capital": 50}


def run(mode: str, dataset: Dataset, extra: dict, stress: list | None = None, sets=()):
    return run_backtest(load_run_config(mode, sets=list(sets), extra=extra | {"stress": stress or []},
                                        dataset=dataset), dataset)


OBSERVED = ["aave.rate_impact=false"]  # the observed indexes, as the hand computations read them


def test_lst_shock_just_short_of_and_just_past_the_aave_liquidation_distance(full_data):
    ds = Dataset(full_data)
    base = run("eth_leveraged", ds, YEAR, sets=OBSERVED)
    ticks = ticks_table(base)
    ticks.index = ticks["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    k = ticks.index.get_loc(AT)
    # HF by hand at the snapshot: weETH supplied x liquidity index x oracle rate x LT / (WETH debt x borrow index)
    weeth = raw_csv(full_data, "aave/weeth_reserve_1d").loc[AT]
    weth = raw_csv(full_data, "aave/weth_reserve_1d").loc[AT]
    rate = weeth["oracle_price_usd"] / weth["oracle_price_usd"]
    units = ticks["qty:aave_v3:aToken:aweETH"].iloc[k] * weeth["liquidity_index"]
    debt = ticks["qty:aave_v3:debtToken:debtWETH"].iloc[k] * weth["variable_borrow_index"]
    hf = units * rate * LT / debt
    d = 1 - 1 / hf  # the fall of the rate that brings HF to 1
    assert ticks["liq_distance:aave_v3"].iloc[k] == pytest.approx(d, rel=1e-9)
    short = run("eth_leveraged", ds, YEAR, [{"type": "lst_rate_shock", "magnitude": d - 0.005, "at": AT}],
                sets=OBSERVED)
    assert short.events.of_type("liquidation") == []
    m = d + 0.005
    past = run("eth_leveraged", ds, YEAR, [{"type": "lst_rate_shock", "magnitude": m, "at": AT}], sets=OBSERVED)
    (liq,) = past.events.of_type("liquidation")
    # the debt and collateral held into that hour are the baseline's at the hour before
    held_units = ticks["qty:aave_v3:aToken:aweETH"].iloc[k - 1] * weeth["liquidity_index"]
    held_debt = ticks["qty:aave_v3:debtToken:debtWETH"].iloc[k - 1] * weth["variable_borrow_index"]
    shocked_hf = held_units * rate * (1 - m) * LT / held_debt
    assert liq.k == k and liq.details["health_factor"] == pytest.approx(shocked_hf, rel=1e-9) and shocked_hf < 1
    close = 0.5 if shocked_hf >= 0.95 else 1.0  # Aave v3 close factor
    assert liq.details["repaid"] == pytest.approx(close * held_debt, rel=1e-9)
    assert liq.details["seized_units"] == pytest.approx(close * held_debt * (1 + BONUS) / (rate * (1 - m)), rel=1e-9)
    assert np.all(np.abs(past.residual) <= 1e-9 * np.abs(past.nav))


def test_the_acceptance_command_on_the_full_history(full_data, tmp_path):
    """`basiskit stress eth_leveraged --scenario lst_rate_shock --shock magnitude=M --at 2024-09-02T00:00:00Z`
    with M just past the distance the baseline reports there."""
    common = ("--start", YEAR["start"], "--end", YEAR["end"], "--capital", "50", "--data", str(full_data),
              "--out", str(tmp_path), "--db", str(tmp_path / "s.db"), "--json")
    base = json.loads(basiskit("backtest", "eth_leveraged", *common).stdout)
    ticks = pd.read_parquet(os.path.join(base["results_dir"], "ticks.parquet"))
    k = int(np.flatnonzero(ticks["timestamp"] == pd.Timestamp(AT))[0])
    d = float(ticks["liq_distance:aave_v3"].iloc[k])
    out = {}
    for label, m in (("short", d - 0.005), ("past", d + 0.005)):
        p = basiskit("stress", "eth_leveraged", "--scenario", "lst_rate_shock", "--shock", f"magnitude={m!r}",
                     "--at", AT, *common)
        assert p.returncode == 0, p.stderr
        out[label] = json.loads(p.stdout)
    assert out["short"]["liquidations"] == [] and out["short"]["scenario"]["liquidations"]["count"] == 0
    (liq,) = out["past"]["liquidations"]
    assert liq["venue"] == "aave_v3" and liq["at"] == AT
    assert out["past"]["shocks"] == [{"type": "lst_rate_shock", "name": "lst_rate_shock", "magnitude": d + 0.005,
                                      "at": AT} | {k: v for k, v in out["past"]["shocks"][0].items()
                                                  if k not in ("type", "name", "magnitude", "at")}]
    assert out["past"]["baseline"]["final_nav"] == base["final_nav"]
    assert out["past"]["loss_vs_baseline"] > 0 and out["past"]["scenario"]["min_health_factor"] < 1


def test_an_eth_squeeze_past_a_venues_distance_liquidates_it_within_the_hour(full_data):
    ds = Dataset(full_data)
    extra = {"start": "2024-10-01", "end": "2024-11-01", "initial_capital": 1_000_000}
    base = run("usdt_market_neutral", ds, extra)
    ticks = ticks_table(base)
    h = 24 * 10 + 3  # 2024-10-11T03:00Z, no funding settles at 04:00
    x = ticks["liq_distance:binance"].iloc[h]
    mark = raw_csv(full_data, "perp/binance_ethusdt_1h")["open"]
    ts = ticks["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    # the squeeze at h + 1 puts the mark 0.2% past the price the reported distance allows from hour h's mark
    m = mark.loc[ts.iloc[h]] * (1 + x + 0.002) / mark.loc[ts.iloc[h + 1]] - 1
    r = run("usdt_market_neutral", ds, extra, [{"type": "eth_price_shock", "magnitude": m, "at": ts.iloc[h + 1]}])
    liquidated = [e for e in r.events.of_type("liquidation") if e.details["venue"] == "binance"]
    # the venue checks the price through the hour, before the strategy sees the hour's open: no margin can
    # be moved in time against a move that happens within one hour
    assert liquidated and liquidated[0].k == h + 1
    before = r.events.events[:r.events.events.index(liquidated[0])]  # logged before the liquidation
    assert not [e for e in before if e.type == "rebalance" and e.k == h + 1]
    assert np.all(np.abs(r.residual) <= 1e-9 * np.abs(r.nav))


NO_EFFECT = {"eth_price_shock": {"magnitude": 0.0}, "btc_price_shock": {"magnitude": 0.0},
             "lst_rate_shock": {"magnitude": 0.0}, "lst_market_depeg": {"magnitude": 0.0},
             "funding_flip": {"factor": 1.0}, "gas_spike": {"factor": 1.0}}
MODES = ["eth_staking_only", "eth_leveraged", "btc_basis", "eth_basis", "usdt_market_neutral_no_leverage",
         "usdt_market_neutral", "pure_lending_usdt"]
SAMPLE = {"start": "2024-10-10", "end": "2024-12-10"}
MID = "2024-11-05T00:00:00Z"


def _applies(bt: Backtest, shocks: list[dict]) -> bool:
    from basiskit.config.models import Shock

    venues = {p.venue.name for p in getattr(getattr(bt.strategy, "hedge", None), "perps", [])}
    for raw in shocks:
        shock = Shock.model_validate(raw | {"at": MID})
        if shock.type == "venue_outage":
            if venues & set(shock.venues):
                return True
        elif any(drives(shock, need, bt.cfg) for need in bt.market.needs):
            return True
    return False


def test_a_fall_past_the_collateral_seizes_it_all_and_burns_the_debt_left():
    ds = Dataset(SAMPLE_DIR)
    r = run("eth_leveraged", ds, SAMPLE | {"initial_capital": 100},
            [{"type": "lst_rate_shock", "magnitude": 0.2, "at": MID}], sets=["aave.rate_impact=false"])
    t = ticks_table(r)  # (the observed indexes, as the hand computation below reads them)
    (liq,) = r.events.of_type("liquidation")  # nothing is left to liquidate afterwards
    k = liq.k
    assert t["timestamp"].iloc[k] == pd.Timestamp(MID)
    # by hand at the shock (a midnight, so the daily reserve rows are exact): collateral = scaled aweETH x
    # liquidity index, at the oracle's rate x 0.8; debt = scaled debt x borrow index. HF < 0.95: the
    # liquidator may take all the debt but the collateral covers less, so it seizes all of it and repays
    # collateral x rate / (1 + bonus); Aave v3.3 burns the debt left
    weeth, weth = (raw_csv(SAMPLE_DIR, f"aave/{x}_reserve_1d").loc[MID] for x in ("weeth", "weth"))
    rate = 0.8 * weeth["oracle_price_usd"] / weth["oracle_price_usd"]
    units = t["qty:aave_v3:aToken:aweETH"].iloc[k - 1] * weeth["liquidity_index"]
    debt = t["qty:aave_v3:debtToken:debtWETH"].iloc[k - 1] * weth["variable_borrow_index"]
    assert units * rate * LT / debt < 0.95
    repaid = units * rate / (1 + BONUS)
    assert liq.details["seized_units"] == pytest.approx(units, rel=1e-12)
    assert liq.details["repaid"] == pytest.approx(repaid, rel=1e-12)
    assert liq.details["written_off"] == pytest.approx(debt - repaid, rel=1e-9) and debt > repaid
    assert t["qty:aave_v3:aToken:aweETH"].iloc[k] == 0 and t["qty:aave_v3:debtToken:debtWETH"].iloc[k] == 0
    wallet = t["qty:wallet:BaseToken:ETH"].iloc[k]
    assert wallet <= r.nav[k] < 0.01 * r.nav[k - 1]  # all but the wallet lost, and no more
    assert r.nav.min() >= 0.0
    assert np.all(np.abs(r.residual) <= 1e-9 * np.maximum(np.abs(r.nav), 1.0))


@pytest.mark.parametrize("mode", MODES)
def test_every_library_scenario_on_every_mode_it_applies_to(mode):
    ds = Dataset(SAMPLE_DIR)
    base_cfg = load_run_config(mode, extra=SAMPLE, dataset=ds)
    baseline = run_backtest(base_cfg, ds)
    ran = 0
    for name, scenario in library().items():
        if not (LIBRARY / f"{name}.yaml").is_file():
            continue  # a bare shock type: its parameter comes from --shock
        if not _applies(Backtest(base_cfg, ds), scenario.shocks):
            continue
        shocks = [s | {"at": MID} for s in scenario.shocks]
        first, again = run(mode, ds, SAMPLE, shocks), run(mode, ds, SAMPLE, shocks)
        assert np.all(np.abs(first.residual) <= 1e-9 * np.maximum(np.abs(first.nav), 1.0)), (mode, name)
        assert np.array_equal(first.nav, again.nav) and np.array_equal(first.quantities, again.quantities), name
        k = int((pd.Timestamp(MID).timestamp() - baseline.grid[0]) // 3600)
        assert np.array_equal(first.nav[:k], baseline.nav[:k]), name  # nothing moves before the shock
        assert first.nav.min() >= 0.0, (mode, name)  # a loss stops at what the fund put in (non-recourse)
        ran += 1
    assert ran >= 3, f"{mode}: only {ran} library scenarios apply"
    for kind, params in NO_EFFECT.items():
        none = run(mode, ds, SAMPLE, [{"type": kind, "at": MID, **params}])
        assert np.array_equal(none.nav, baseline.nav) and np.array_equal(none.quantities, baseline.quantities), kind


def test_shock_paths():
    grid = np.arange(0, 20) * 3600 + int(pd.Timestamp("2024-01-01", tz="UTC").timestamp())
    from basiskit.config.models import Shock

    step = Shock(type="gas_spike", factor=2, at="2024-01-01T05:00:00Z", hours=4)
    assert intensity(grid, step).tolist() == [0.0] * 5 + [1.0] * 4 + [0.0] * 11
    ramp = Shock(type="gas_spike", factor=2, at="2024-01-01T05:00:00Z", path="linear", ramp_hours=4,
                 hours=8, recovery_hours=4)
    # t = hours since 05:00: t/4 up to 1 at t=4, full until t=8 (= hours), then 1 - (t-8)/4 down to 0 at t=12
    expected = [0.0] * 5 + [0.0, 0.25, 0.5, 0.75] + [1.0] * 5 + [0.75, 0.5, 0.25] + [0.0] * 3
    assert intensity(grid, ramp).tolist() == expected


def test_eth_shock_moves_spot_perps_and_leaves_the_lst_rate(tmp_path):
    ds = Dataset(SAMPLE_DIR)
    extra = SAMPLE | {"initial_capital": 1_000_000}
    base = Backtest(load_run_config("usdt_market_neutral", extra=extra, dataset=ds), ds)
    shocked = Backtest(load_run_config("usdt_market_neutral", extra=extra | {"stress": [
        {"type": "eth_price_shock", "magnitude": -0.2, "at": MID}]}, dataset=ds), ds)
    k = int((pd.Timestamp(MID).timestamp() - base.market.grid[0]) // 3600)
    for need in base.market.needs:
        a, b = base.market.array(need), shocked.market.array(need)
        if need.how == "bar_extreme":
            # the bar that closed at k opened before the step: its own high and low stand, but the low is
            # never above the (shocked) price at k, the gap; the next bar is all shocked
            mark = next(n for n in base.market.needs if n.series == need.series and n.how == "bar_price")
            at_k = shocked.market.array(mark)[k]
            assert at_k == pytest.approx(0.8 * base.market.array(mark)[k], rel=1e-12)
            assert b[k] == (min(a[k], at_k) if need.column == "low" else max(a[k], at_k)), need
            assert b[k + 1] == pytest.approx(0.8 * a[k + 1], rel=1e-12) and b[k - 1] == a[k - 1], need
        elif need.series.startswith(("perp/", "spot/bybit_eth", "spot/uniswapv3_weth")) and \
                need.how in ("bar_price", "last"):
            assert b[k] == pytest.approx(0.8 * a[k], rel=1e-12) and b[k - 1] == a[k - 1], need
        else:
            assert np.array_equal(a, b, equal_nan=True), need  # LST rate, indexes, funding, gas, volume: untouched


def test_borrow_spike_grows_the_index_at_the_given_apr():
    ds = Dataset(SAMPLE_DIR)
    extra = SAMPLE
    shock = {"type": "borrow_rate_spike", "apr": 0.5, "at": MID, "hours": 24}
    base = Backtest(load_run_config("eth_leveraged", extra=extra, dataset=ds), ds)
    spiked = Backtest(load_run_config("eth_leveraged", extra=extra | {"stress": [shock]}, dataset=ds), ds)
    need = next(n for n in base.market.needs if n.column == "variable_borrow_index")
    a, b = base.market.array(need), spiked.market.array(need)
    k = int((pd.Timestamp(MID).timestamp() - base.market.grid[0]) // 3600)
    # Aave v3: compounded per second, (1 + apr / seconds a year) ** seconds, in exact decimals (1 + 1.6e-8
    # in a float already loses 1e-11 over a day of seconds)
    with localcontext() as ctx:
        ctx.prec = 50
        day = float((1 + Decimal("0.5") / (365 * 24 * 3600)) ** (24 * 3600))
    assert b[k - 1] == a[k - 1] and b[k + 23] == pytest.approx(a[k - 1] * day, rel=1e-13)
    assert b[k + 30] / b[k + 24] == pytest.approx(a[k + 30] / a[k + 24], rel=1e-12)  # own rate again


@pytest.mark.parametrize("check", ["open", "adverse_extreme"])
def test_a_wick_inside_the_hour_liquidates_only_when_checked(tmp_path, check):
    hours = pd.date_range("2024-03-01", "2024-03-05", freq="h", tz="UTC")
    root = SyntheticMarket("2024-03-01", "2024-03-05", paths={"BTC": np.full(len(hours), 60_000.0)},
                           start_price={"BTC": 60_000.0}, funding_rate=0.0).write(
        tmp_path / "d", venues=("binance", "bybit"), spot_venues=("bybit",))
    at = "2024-03-02T10:00:00Z"  # a wick to 79,800 inside the 10:00 bar, back to 60,000 by 11:00
    edit_series(root, "perp/binance_btcusdt_1h",
                lambda df: df.assign(high=np.where(df["timestamp"] == at, 79_800.0, df["high"])))
    cfg = load_run_config("btc_basis", sets=["costs.enabled=false", "hedge_allocation.binance=1",
                                             "hedge_allocation.bybit=0", "basis.fixed_units=1",
                                             f"venues.binance.liquidation_check={check}"],
                          extra={"initial_capital": 80_000}, dataset=Dataset(root))
    r = run_backtest(cfg, Dataset(root))
    liqs = r.events.of_type("liquidation")
    if check == "open":
        assert liqs == []  # every open is 60,000: the wick is never seen
        return
    (liq,) = liqs
    assert liq.k == 35  # the bar of 10:00 closes at 11:00, when the venue's check sees its high
    # by hand: 1 BTC short, cash = 20,000 margin + 60,000 proceeds; liquidation where
    # cash - p = 0.004 p (binance BTCUSDT mmr): p = 80,000 / 1.004
    p = 80_000 / 1.004
    assert liq.details["price"] == pytest.approx(p, rel=1e-12) and liq.details["checked_at"] == 79_800.0
    assert np.all(np.abs(r.residual) <= 1e-9 * r.nav)


def basiskit(*args):
    env = {k: v for k, v in os.environ.items() if k != "BASISKIT_DATA"}
    return subprocess.run([sys.executable, "-m", "basiskit.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_a_bad_scenario_file_is_refused_naming_each_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("description: wrong\nshocks:\n  - type: eth_moon\n"
                   "  - type: gas_spike\n    factor: 2\n    hours: -3\n"
                   "  - type: lst_rate_shock\n    magnitude: 0.1\n    factor: 2\n")
    p = basiskit("stress", "eth_leveraged", "--scenario", str(bad), "--at", "2024-11-01", "--data", str(SAMPLE_DIR))
    assert p.returncode == 2 and "Traceback" not in p.stderr
    for needle in ("shocks.0.type", "eth_moon", "shocks.1.hours", "shocks.2", "factor does not apply"):
        assert needle in p.stderr, needle
    outside = basiskit("stress", "eth_leveraged", "--scenario", "lst_slashing", "--at", "2030-01-01", "--start",
                       "2024-11-01", "--end", "2024-12-01", "--data", str(SAMPLE_DIR))
    assert outside.returncode == 2 and "stress.0.at" in outside.stderr and "outside the window" in outside.stderr


def test_stress_cli_json(tmp_path):
    p = basiskit("stress", "eth_leveraged", "--scenario", "lst_slashing", "--shock", "magnitude=0.2", "--at", "worst",
                 "--start", "2024-11-01", "--end", "2024-12-01", "--grid", "magnitude=0.05,0.2", "--json",
                 "--data", str(SAMPLE_DIR), "--out", str(tmp_path), "--db", str(tmp_path / "s.db"))
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert set(r) >= {"shocks", "baseline", "scenario", "loss_vs_baseline", "time_to_recover_hours", "grid"}
    assert r["shocks"][0]["magnitude"] == 0.2 and r["scenario"]["liquidations"]["count"] == 1
    assert r["loss_vs_baseline"] == pytest.approx(r["baseline"]["final_nav"] - r["scenario"]["final_nav"], rel=1e-12)
    # --at worst: the baseline's hour of smallest Aave liquidation distance
    ticks = pd.read_parquet(io.BytesIO((tmp_path / r["baseline"]["run_id"] / "ticks.parquet").read_bytes()))
    worst = ticks.loc[ticks["liq_distance:aave_v3"].idxmin(), "timestamp"].strftime("%Y-%m-%dT%H:%M:%SZ")
    assert r["at"] == worst
    assert [row["liquidated"] for row in r["grid"]["runs"]] == [False, True]
    html = tmp_path / "stress.html"
    assert basiskit("report", r["stress_id"], "-o", str(html), "--db", str(tmp_path / "s.db")).returncode == 0
    assert "liquidation map over" not in html.read_text() and "loss against the unshocked run" in html.read_text()


def test_intrabar_figures_by_hand_from_the_raw_bars():
    """The report's open-versus-extreme table from the positions held and the raw perp bars: the venue checks,
    at hour t, with what was held through the hour, the worst of the bar that opened at t - 1 (its high for a
    short) and the price at t (a gap between bars counts too)."""
    from basiskit.results.report import render
    from basiskit.results.service import execute

    window = {"start": "2024-10-15", "end": "2024-11-20"}  # the sample's bars have no hole in it
    cfg = load_run_config("usdt_market_neutral", extra=window | {"initial_capital": 1_000_000},
                          dataset=Dataset(SAMPLE_DIR))
    out = execute(cfg, SAMPLE_DIR, "sample", "intrabar-test")
    t = out.ticks
    mmr = json.loads((SAMPLE_DIR / "params/cex_venues.json").read_text())["binance"]["maintenance_margin_rate"]
    bars = raw_csv(SAMPLE_DIR, "perp/binance_ethusdt_1h")
    stamps = t["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    prev = (t["timestamp"] - pd.Timedelta(hours=1)).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    size = t["qty:binance:Perp:ETHUSDT"].shift(1).fillna(0.0).to_numpy()
    cash = t["qty:binance:BaseToken:USDT"].shift(1).fillna(0.0).to_numpy()
    high, low = bars["high"].reindex(prev).to_numpy(), bars["low"].reindex(prev).to_numpy()
    opens = bars["open"].reindex(stamps).to_numpy()
    held = size != 0
    extreme = np.where(size < 0, np.maximum(high, opens), np.minimum(low, opens))
    with np.errstate(invalid="ignore", divide="ignore"):
        at_open = np.where(held, mmr["ETHUSDT"] * np.abs(size) * opens / (cash + size * opens), 0.0)
        at_extreme = np.where(held, mmr["ETHUSDT"] * np.abs(size) * extreme / (cash + size * extreme), 0.0)
    summary = out.summary["intrabar_by_venue"]["binance"]
    assert summary["hours_held"] == held.sum() and not np.isnan(at_extreme).any()
    assert summary["max_margin_ratio_intrabar"] == pytest.approx(at_extreme.max(), rel=1e-9)
    assert summary["max_margin_ratio_at_open"] == pytest.approx(at_open.max(), rel=1e-9)
    assert summary["max_ratio_gap"] == pytest.approx((at_extreme - at_open)[held].max(), rel=1e-9)
    assert summary["mean_ratio_gap"] == pytest.approx((at_extreme - at_open)[held].mean(), rel=1e-9)
    assert summary["max_ratio_gap"] > 0  # real wicks: the extreme is checked, not only the open
    html = render(out.summary, t, out.events, None)
    assert 'id="intrabar"' in html and "Liquidation distance" in html


@pytest.mark.parametrize(("mode", "shock"), [("usdt_market_neutral", "eth_price_shock"),
                                             ("usdt_market_neutral_no_leverage", "eth_price_shock"),
                                             ("eth_basis", "eth_price_shock"), ("btc_basis", "btc_price_shock")])
def test_a_hedge_lost_to_liquidation_is_restored_within_the_hour(mode, shock):
    """A squeeze past every venue's distance liquidates the shorts; the strategy, left long and without margin,
    resizes the book in the same hour (selling what it holds to fund new margin) rather than stay unhedged."""
    ds = Dataset(SAMPLE_DIR)
    r = run(mode, ds, SAMPLE | {"initial_capital": 1_000_000}, [{"type": shock, "magnitude": 0.5, "at": MID}])
    t = ticks_table(r)
    k = int(np.flatnonzero(t["timestamp"] == pd.Timestamp(MID))[0])
    liquidated = {e.details["venue"] for e in r.events.of_type("liquidation") if e.k == k}
    assert liquidated == {c.split(":")[1] for c in t.columns if c.startswith("liq_distance:") and "aave" not in c}
    delta = next(c for c in t.columns if c.startswith("net_delta_usdt:"))
    threshold = load_run_config(mode, dataset=ds).position_deviation_threshold
    assert abs(t[delta].iloc[k]) <= threshold * r.nav[k]  # hedged again at that very hour
    assert np.abs(t[delta].iloc[k:]).max() <= 0.05 * r.nav[k:].min()
    assert np.all(np.abs(r.residual) <= 1e-9 * np.abs(r.nav))


def _stress_in_store(tmp_path, grid, cancelled, interrupted=lambda: None):
    from basiskit.results.stress_store import StressStore
    from basiskit.stress.service import StressCancelled, StressRequest, stress_test

    store = StressStore(tmp_path / "s.db")
    req = StressRequest(mode="eth_leveraged", scenarios=["lst_slashing"], shocks=["magnitude=0.2"],
                        at="2024-11-20T00:00:00Z", start="2024-11-01", end="2024-12-01", grid=grid)
    with contextlib.suppress(StressCancelled):  # (the row tells how it ended)
        stress_test(req, SAMPLE_DIR, Dataset(SAMPLE_DIR), store, "cli", None, stress_id=None, files=False,
                    cancelled=lambda: cancelled(store), interrupted=interrupted)
    [test] = store.list_stress()[0]
    return store, store.get_stress(test["stress_id"])


def test_a_stress_test_links_each_run_and_sweep_as_it_is_stored_and_deleting_it_deletes_them(tmp_path):
    """Cancelled after its baseline: the row links that run (status cancelled); cancelled inside the grid: both runs
    and the shocked sweep, and the unshocked sweep is never started; done: all four. Deleting the test deletes what
    it links; a cancel while the service stops leaves it failed as interrupted."""

    def after_baseline(store):
        return bool(store.list_stress()[0][0]["baseline_run_id"])

    store, test = _stress_in_store(tmp_path / "a", [], after_baseline)
    assert test["status"] == "cancelled" and test["scenario_run_id"] is None
    assert store.get(test["baseline_run_id"])["status"] == "done"
    store.delete_stress(test["stress_id"])
    assert store.list()[1] == 0 and store.list_stress()[1] == 0

    def inside_grid(store):  # once the shocked sweep is registered: it stops between its runs
        return bool(store.list_stress()[0][0]["grid_sweep_id"])

    grid = ["magnitude=0.05,0.2", "target_ltv=0.7,0.8"]  # a config axis: an unshocked sweep is due
    store, test = _stress_in_store(tmp_path / "b", grid, inside_grid)
    assert test["status"] == "cancelled" and test["baseline_run_id"] and test["scenario_run_id"]
    assert store.get_sweep(test["grid_sweep_id"])["status"] == "cancelled" and test["unshocked_sweep_id"] is None
    assert store.list_sweeps()[1] == 1  # no empty unshocked sweep left behind
    store.delete_stress(test["stress_id"])
    assert store.list()[1] == 0 and store.list_sweeps()[1] == 0

    store, test = _stress_in_store(tmp_path / "c", grid, lambda store: False)
    assert test["status"] == "done" and store.get_sweep(test["unshocked_sweep_id"])["status"] == "done"
    assert test["result"]["grid"]["sweep_id"] == test["grid_sweep_id"] and store.list_sweeps()[1] == 2
    store.delete_stress(test["stress_id"])
    assert store.list()[1] == 0 and store.list_sweeps()[1] == 0

    why = "interrupted: the service stopped before the stress test finished"
    store, test = _stress_in_store(tmp_path / "d", [], after_baseline, interrupted=lambda: why)
    assert (test["status"], test["error"]) == ("failed", why) and test["baseline_run_id"]
