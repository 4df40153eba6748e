"""The fund's own footprint on Aave: rate strategies that reproduce the observed rates, debt that pays the rate
its own size pushes the reserve to, borrowing no more than the reserve has available (refused, or limited),
and reward sells within their share of the pool's volume. Expected figures come from the raw CSV files, the
parameter file and the formulas written out here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import basiskit
from basiskit.data.dataset import Dataset
from basiskit.engine.run import Backtest
from basiskit.engine.runconfig import load_run_config
from basiskit.errors import ConfigError
from basiskit.portfolio.attribution import SLOT
from conftest import raw_csv

YEAR = {"start": "2024-06-01T00:00:00Z", "end": "2025-06-01T00:00:00Z"}
SHIPPED = json.loads((Path(basiskit.__file__).parent / "params" / "aave_v3_rate_strategies.json").read_text())
HOUR_YEARS = 3600 / (365 * 86400)


def run(root, mode: str, capital: float, sets=(), window=YEAR, bt_out: list | None = None):
    ds = Dataset(root)
    bt = Backtest(load_run_config(mode, sets=list(sets), extra=window | {"initial_capital": capital}, dataset=ds), ds)
    if bt_out is not None:
        bt_out.append(bt)
    return bt.run()


def in_force(entries: list[dict], t: pd.Timestamp) -> dict:
    """The dated entry in force at t (the first one before the first date)."""
    found = entries[0]
    for e in entries:
        if pd.Timestamp(e["from"]) <= t:
            found = e
    return found


def borrow_rate(s: dict, u: float) -> float:
    """Aave v3 DefaultReserveInterestRateStrategy: base + slope1 u/U* below the kink, + slope2 (u-U*)/(1-U*) above."""
    opt = s["optimal_utilisation"]
    if u <= opt:
        return s["base"] + s["slope1"] * u / opt
    return s["base"] + s["slope1"] + s["slope2"] * (u - opt) / (1 - opt)


@pytest.mark.parametrize("reserve", ["USDT", "WETH", "weETH", "wstETH"])
def test_the_rate_strategies_reproduce_the_observed_rates(full_data, reserve):
    entry = SHIPPED["reserves"][reserve]
    snaps = raw_csv(full_data, entry["series"])
    changes = [pd.Timestamp(s["from"]) for s in entry["strategies"][1:]]
    changes += [pd.Timestamp(r["from"]) for r in entry["reserve_factors"][1:]]
    gaps = [(pd.Timestamp(a["last_day"]), pd.Timestamp(b["from"]))
            for a, b in zip(entry["strategies"][:-1], entry["strategies"][1:], strict=True)]
    b_err, s_err = [], []
    for ts, row in snaps.iterrows():
        t = pd.Timestamp(ts)
        if any(abs(t - c) <= pd.Timedelta(days=1) for c in changes) or any(a < t < b for a, b in gaps):
            continue  # a parameter change: its day is known only to the snapshot
        u = row["total_variable_debt"] / row["total_supply"]
        rb = borrow_rate(in_force(entry["strategies"], t), u)
        rf = in_force(entry["reserve_factors"], t)["reserve_factor"]
        b_err.append(abs(rb - row["variable_borrow_rate"]))
        s_err.append(abs(rb * u * (1 - rf) - row["liquidity_rate"]))  # supply = borrow x U x (1 - RF)
    assert len(b_err) >= 0.85 * len(snaps)  # the changes leave out little
    for err in (np.array(b_err), np.array(s_err)):
        assert np.median(err) <= 5e-4 and np.quantile(err, 0.95) <= 25e-4  # 5 bp, 25 bp APR
    assert all(s["source"] == "fitted" for s in entry["strategies"])


def test_the_shipped_rate_strategies_are_what_fit_rates_builds(full_data):
    from basiskit.venues.rate_fit import fit_all

    fitted = fit_all(Dataset(full_data))["reserves"]
    shipped = {sym: {k: v for k, v in e.items() if k != "check"} for sym, e in SHIPPED["reserves"].items()}
    assert json.loads(json.dumps(fitted)) == shipped


def test_borrow_cost_at_10m_pays_the_rate_its_own_debt_pushes_weth_to(full_data):
    per_dollar = {}
    for capital in (100_000.0, 10_000_000.0):
        holder = []
        r = run(full_data, "usdt_market_neutral", capital, bt_out=holder)
        per_dollar[capital] = -float(r.attribution[SLOT["borrow_cost"]].sum()) / capital
    (bt,) = holder
    # by hand: each hour the fund's WETH debt accrues the strategy's rate at the utilisation with the fund's debt
    # added to the snapshot in force at the hour's start, priced in USDT at the hour's end
    j = r.position_keys.index("aave_v3:debtToken:debtWETH")
    price = np.asarray(bt.specs[j].price)
    debt = -r.values[j] / price  # WETH owed after each hour
    snaps = raw_csv(full_data, "aave/weth_reserve_1d")
    snap_t = np.array([pd.Timestamp(t).timestamp() for t in snaps.index])
    entry = SHIPPED["reserves"]["WETH"]
    cost = 0.0
    for h in range(1, len(r.grid)):
        i = int(np.searchsorted(snap_t, r.grid[h - 1], side="right")) - 1
        row = snaps.iloc[i]
        u = min((row["total_variable_debt"] + debt[h - 1]) / row["total_supply"], 1.0)
        rate = borrow_rate(in_force(entry["strategies"], pd.Timestamp(r.grid[h - 1], unit="s", tz="UTC")), u)
        cost += debt[h - 1] * rate * HOUR_YEARS * price[h]
    assert per_dollar[10_000_000.0] == pytest.approx(cost / 10_000_000.0, rel=0.02)
    assert per_dollar[10_000_000.0] >= 1.3 * per_dollar[100_000.0]
    assert r.extra_summary["rate_impact"] < 0


@pytest.mark.parametrize(("mode", "capital", "rate_bound", "total_bound"),
                         [("usdt_market_neutral", 100_000.0, 0.001, 0.001), ("eth_leveraged", 26.6, 0.001, 0.002)])
def test_small_size_stays_cheap(full_data, mode, capital, rate_bound, total_bound):
    """The fund's rate impact and reward sales within participation, against neither (rewards sold whatever the
    pool's volume): at small size the rate impact moves the APY by less than 0.1%. At 26.6 ETH, selling rewards
    within 10% of the pool's volume costs about 0.12% more: a few more swaps' gas, and EIGEN's fall while the sale
    waits for the pool to trade (the issue's 0.1% target is not met there; the note says why)."""
    apy = {}
    for name, sets in (("both", []), ("no_impact", ["aave.rate_impact=false"]),
                       ("neither", ["aave.rate_impact=false", "rewards.max_participation=1000000"])):
        r = run(full_data, mode, capital, sets=sets)
        days = (r.grid[-1] - r.grid[0]) / 86400
        apy[name] = (r.nav[-1] / capital) ** (365 / days) - 1
    assert 0 < apy["no_impact"] - apy["both"] < rate_bound
    assert abs(apy["neither"] - apy["both"]) < total_bound


@pytest.mark.parametrize(("mode", "capital"), [("usdt_market_neutral", 1e8), ("eth_leveraged", 26_600.0)])
def test_borrowing_more_than_the_reserve_has_is_refused_naming_the_reserve_hour_and_liquidity(full_data, mode,
                                                                                               capital):
    with pytest.raises(ConfigError) as info:
        run(full_data, mode, capital)
    text = str(info.value)
    assert "initial_capital" in text and "WETH" in text and "aave.liquidity_policy: partial" in text
    first = text.split("first at ")[1].split(" ")[0]
    snaps = raw_csv(full_data, "aave/weth_reserve_1d")
    snap_t = np.array([pd.Timestamp(t).timestamp() for t in snaps.index])
    row = snaps.iloc[int(np.searchsorted(snap_t, pd.Timestamp(first).timestamp(), side="right")) - 1]
    available = row["total_supply"] - row["total_variable_debt"]  # what the other users left
    assert f"available {available:,.2f}" in text
    fits = float(text.split("About ")[1].split(" ")[0].replace(",", ""))
    kink = float(text.split("about ")[1].split(" ")[0].replace(",", ""))
    assert 0 < kink < fits < capital
    r = run(full_data, mode, 0.95 * fits)  # the capital it names runs
    assert r.extra_summary["liquidity_constrained_hours"] == 0
    r = run(full_data, mode, 0.99 * kink)  # and at the other the fund never pushes WETH over its kink itself
    u, seen = r.extra_columns["utilisation_with_fund:WETH"], r.extra_columns["utilisation:WETH"]
    opt = np.array([in_force(SHIPPED["reserves"]["WETH"]["strategies"], pd.Timestamp(t, unit="s", tz="UTC"))
                    ["optimal_utilisation"] for t in r.grid])
    under = seen <= opt  # (the run is not exactly linear in its capital: "about")
    assert (u[under] <= opt[under] + 1e-3).all() and (u[under] > opt[under]).mean() < 0.02


def test_the_partial_policy_borrows_what_is_available_and_says_so(full_data):
    window = {"start": "2024-07-05T00:00:00Z", "end": "2024-07-20T00:00:00Z"}
    r = run(full_data, "eth_leveraged", 26_600.0, sets=["aave.liquidity_policy=partial"], window=window)
    limited = r.events.of_type("liquidity_constrained")
    assert limited and limited[0].k == 0
    snaps = raw_csv(full_data, "aave/weth_reserve_1d")
    day = snaps.loc["2024-07-05T00:00:00Z"]
    assert limited[0].details["taken"] == pytest.approx(day["total_supply"] - day["total_variable_debt"], rel=1e-9)
    assert limited[0].details["asked"] > limited[0].details["taken"]
    s = r.extra_summary
    assert s["liquidity_policy"] == "partial" and s["limited_borrows"] >= 1
    assert s["liquidity_constrained_hours"] >= 1
    assert s["largest_liquidity_shortfall"] is None or s["largest_liquidity_shortfall"]["reserve"] == "WETH"
    u = r.extra_columns["utilisation_with_fund:WETH"]
    assert u.max() <= 1.0 and u[0] == pytest.approx(1.0, abs=1e-9)  # the fund took every WETH there was
    full = int((u >= 1.0 - 1e-12).sum())
    assert s["full_utilisation_hours"] == {"WETH": full} and full >= 1  # and the run says so, with an alert
    (alert,) = [e for e in r.events.of_type("risk_alert") if e.details.get("reserve") == "WETH"]
    assert alert.k == 0 and alert.details["hours"] == full
    assert np.abs(r.residual).max() <= 1e-9 * r.nav.max()


def test_reward_sales_stay_within_their_share_of_the_pools_volume(full_data):
    r = run(full_data, "eth_leveraged", 2660.0, sets=["aave.liquidity_policy=partial"])
    grid = pd.to_datetime(r.grid, unit="s", utc=True)
    for token in ("EIGEN", "ETHFI"):
        sells = [e for e in r.events.events if e.details.get("operation") == f"sell_{token}"]
        assert len(sells) >= 10
        bars = raw_csv(full_data, f"spot/uniswapv3_{token.lower()}weth_1h")["volume"]  # USD (MANIFEST)
        bars.index = pd.to_datetime(bars.index, utc=True)
        # the volume of the bar that closed before each hour (none where no trade happened)
        closed = bars.reindex(grid - pd.Timedelta(hours=1)).fillna(0.0).to_numpy()
        first = int(np.nonzero(r.quantities[r.position_keys.index(f"wallet:BaseToken:{token}")] > 0)[0][0])
        sold = 0.0
        for e in sells:  # percentage of volume: what was sold stays within 10% of what the pool traded
            sold += e.details["notional_usd"]
            assert sold <= 0.1 * closed[first: e.k + 1].sum() * (1 + 1e-9)
        credited = r.extra_summary["rewards_by_token"][token]["units"]
        assert r.extra_summary["rewards_held"][token]["units"] < credited  # sold, not only held


def bucket(full_data, pair: str, usd: float) -> float:
    """Size-bucket slippage (params/execution_costs_bps.json): the smallest bucket >= the notional, else the largest."""
    table = json.loads((full_data / "params" / "execution_costs_bps.json").read_text())
    sizes = sorted(table["size_buckets_usd"].items(), key=lambda kv: kv[1])
    name = next((n for n, size in sizes if usd <= size), sizes[-1][0])
    return table["slippage_bps"][pair][name] * 1e-4


def impact(full_data, series: str, t: pd.Timestamp, usd: float, usd_volume: bool) -> float:
    """Square-root impact Y sigma sqrt(Q / V), Y = 1, over the 24 bars closed by t (volume in USD, or in the base
    asset times the close)."""
    bars = raw_csv(full_data, series)
    labels = [(t - pd.Timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ") for h in range(25, 0, -1)]
    close = bars.loc[labels, "close"].to_numpy()
    vol = bars.loc[labels[1:], "volume"].to_numpy() * (1.0 if usd_volume else close[1:])
    sigma = float(np.sqrt(np.mean(np.log(close[1:] / close[:-1]) ** 2)))
    return sigma * np.sqrt(usd / vol.mean())


def test_the_exit_cost_is_the_sum_of_what_unwinding_the_book_costs(full_data):
    capital = 1_000_000.0
    r = run(full_data, "usdt_market_neutral_no_leverage", capital)
    t = pd.Timestamp(r.grid[-1], unit="s", tz="UTC")
    day = t.strftime("%Y-%m-%dT00:00:00Z")
    usd = raw_csv(full_data, "aave/usdt_reserve_1d").loc[day, "oracle_price_usd"]  # USD per USDT
    value = dict(zip(r.position_keys, r.values[:, -1], strict=True))
    fees = json.loads((full_data / "params" / "cex_venues.json").read_text())
    lst = value["etherfi:BaseToken:weETH"]  # USDT: swapped to ETH at the DEX, the ETH sold on bybit spot
    cost = lst * bucket(full_data, "ETH_weETH", lst * usd)
    cost += lst * (max(bucket(full_data, "ETH_USDT", lst * usd),
                       impact(full_data, "spot/bybit_ethusdt_1h", t, lst * usd, False))
                   + fees["bybit"]["spot_taker_fee"])
    for venue in ("binance", "bybit"):  # each short closed at its venue
        notional = -value[f"{venue}:Perp:ETHUSDT"]
        rate = max(bucket(full_data, "ETHUSDT-PERP", notional * usd),
                   impact(full_data, f"perp/{venue}_ethusdt_1h", t, notional * usd, False))
        cost += notional * (rate + fees[venue]["perp_taker_fee"])
    for token in ("EIGEN", "ETHFI"):  # the rewards held, sold in the hour into their pools
        held = value[f"wallet:BaseToken:{token}"]
        rate = max(bucket(full_data, f"{token}_USDT", held * usd),
                   impact(full_data, f"spot/uniswapv3_{token.lower()}weth_1h", t, held * usd, True))
        cost += held * rate
    exit_ = r.extra_summary["exit"]
    assert exit_["cost"] == pytest.approx(cost, rel=0.10)
    assert exit_["liquidation_nav"] == pytest.approx(r.nav[-1] - exit_["cost"], rel=1e-12)
    assert exit_["via_redeem_queue"]["wait_hours"] == 168.0  # ether.fi's queue instead of the swap
    assert exit_["via_redeem_queue"]["cost"] < exit_["cost"]


def test_the_capacity_command_shows_the_curve_with_refused_capitals_and_the_benchmark(full_data, tmp_path):
    import subprocess
    import sys

    args = ["capacity", "usdt_market_neutral", "--capitals", "100000,10000000,100000000", "--start", "2024-06-01",
            "--end", "2025-06-01", "--data", str(full_data), "--db", str(tmp_path / "c.db"), "--workers", "1"]
    p = subprocess.run([sys.executable, "-m", "basiskit.cli", *args, "--json"], capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    small, mid, big = doc["points"]
    assert [small["capital"], mid["capital"], big["capital"]] == [1e5, 1e7, 1e8]
    assert big["refused"] and not small["refused"] and not mid["refused"]
    # the benchmark: USDT supplied to Aave over the window, from its liquidity index (snapshots at both ends)
    usdt = raw_csv(full_data, "aave/usdt_reserve_1d")
    growth = usdt.loc["2025-06-01T00:00:00Z", "liquidity_index"] / usdt.loc["2024-06-01T00:00:00Z", "liquidity_index"]
    assert small["benchmark"] == "aave_usdt_supply"
    assert small["benchmark_apy"] == pytest.approx(growth ** (365 / 365) - 1, rel=1e-6)
    assert small["apy_net_of_exit"] < small["apy"] and small["rate_impact_share"] > mid["rate_impact_share"]
    assert mid["apy_net_of_exit"] < mid["benchmark_apy"]  # 10M pays its own WETH rate: under plain lending
    assert doc["below_benchmark_from"] == 1e7 and mid["below_benchmark"] and not small["below_benchmark"]
    shown = subprocess.run([sys.executable, "-m", "basiskit.cli", *args], capture_output=True, text=True, timeout=600)
    assert "refused: the Aave reserve could not lend it" in shown.stdout


def test_a_large_supply_dilutes_the_reserves_supply_rate_as_the_strategy_says(full_data):
    capital = 50_000_000.0
    holder = []
    r = run(full_data, "pure_lending_usdt", capital, bt_out=holder)
    (bt,) = holder
    j = r.position_keys.index("aave_v3:aToken:aUSDT")
    supplied = r.values[j] / np.asarray(bt.specs[j].price)  # USDT supplied after each hour
    snaps = raw_csv(full_data, "aave/usdt_reserve_1d")
    snap_t = np.array([pd.Timestamp(t).timestamp() for t in snaps.index])
    entry = SHIPPED["reserves"]["USDT"]
    impact = 0.0
    for h in range(1, len(r.grid)):
        row = snaps.iloc[int(np.searchsorted(snap_t, r.grid[h - 1], side="right")) - 1]
        t = pd.Timestamp(r.grid[h - 1], unit="s", tz="UTC")
        s, rf = in_force(entry["strategies"], t), in_force(entry["reserve_factors"], t)["reserve_factor"]
        u0 = row["total_variable_debt"] / row["total_supply"]
        u1 = row["total_variable_debt"] / (row["total_supply"] + supplied[h - 1])
        # supply rate = borrow rate x U x (1 - reserve factor), with the fund's supply in the reserve and without
        impact += supplied[h - 1] * (borrow_rate(s, u1) * u1 - borrow_rate(s, u0) * u0) * (1 - rf) * HOUR_YEARS
    assert impact < 0
    # (the engine measures the fund's tokens in the utilisation at the observed index growth since its last
    # action, leaving the spread's own compounding out of U: a second-order difference)
    assert r.extra_summary["rate_impact"] == pytest.approx(impact, rel=2e-3)
    off = run(full_data, "pure_lending_usdt", capital, sets=["aave.rate_impact=false"])
    got = r.attribution[SLOT["supply_yield"]].sum() - off.attribution[SLOT["supply_yield"]].sum()
    # the spread is in the supply yield and the balances: the run without it also earns the observed rate on what
    # the spread took (about half a year's 5% on it), so the gap is the spread and a few % more
    assert impact * 1.05 < got < impact and impact * 1.05 < r.nav[-1] - off.nav[-1] < impact


def test_a_safety_de_lever_is_never_limited_by_the_reserves_liquidity(full_data):
    # borrowing stopped by liquidity (partial) and an LST rate fall that breaks the HF floor: the de-lever repays
    # in full, whatever the reserve has available (repayments add liquidity; nothing limits them)
    window = {"start": "2024-07-05T00:00:00Z", "end": "2024-07-12T00:00:00Z"}
    shock = {"stress": [{"type": "lst_rate_shock", "magnitude": 0.15, "at": "2024-07-08T00:00:00Z"}]}
    ds = Dataset(full_data)
    cfg = load_run_config("eth_leveraged", sets=["aave.liquidity_policy=partial"],
                          extra=window | shock | {"initial_capital": 26_600.0}, dataset=ds)
    r = Backtest(cfg, ds).run()
    assert r.events.of_type("liquidity_constrained")  # the reserve limited the borrowing
    delevers = [e for e in r.events.of_type("rebalance") if e.details["trigger"] == "health_factor"]
    assert delevers, [e.message for e in r.events.of_type("rebalance")]
    k = delevers[0].k
    hf = r.extra_columns["health_factor"]
    assert hf[k] >= cfg.leverage.hf_floor * (1 - 1e-9) and not r.events.of_type("liquidation")


def test_a_paper_session_refuses_at_the_hour_the_reserve_runs_short_not_at_its_end(full_data, tmp_path):
    from basiskit.paper.session import PaperOptions, PaperSession
    from basiskit.paper.store import PaperStore

    window = {"start": "2024-06-01T00:00:00Z", "end": "2024-08-01T00:00:00Z"}
    ds = Dataset(full_data)
    cfg = load_run_config("usdt_market_neutral", extra=window | {"initial_capital": 1e8}, dataset=ds)
    store = PaperStore(tmp_path / "paper.db")
    session = PaperSession(store, "big", cfg, PaperOptions(data=str(full_data), out=str(tmp_path / "runs")),
                           quiet=True)
    with pytest.raises(ConfigError) as info:
        session.run()
    text = str(info.value)
    assert "on 1 hour(s)" in text  # stopped at that hour: the month after it never ran
    first = text.split("first at ")[1].split(" ")[0]
    assert first == "2024-06-27T00:00:00Z"  # the hour the other users' WETH fell under the fund's debt (above)
    snaps = raw_csv(full_data, "aave/weth_reserve_1d").loc[first]
    assert f"available {snaps['total_supply'] - snaps['total_variable_debt']:,.2f}" in text


def test_a_paper_replay_equals_the_backtest_with_the_footprint_and_reward_sales(full_data, tmp_path):
    """Hour by hour (paper) the fund's own indexes and the reward sales' waits are computed an hour at a time;
    in a backtest they are written and looked up ahead: the same numbers, bit for bit."""
    from basiskit.paper.session import PaperOptions, PaperSession
    from basiskit.paper.store import PaperStore

    window = {"start": "2024-10-05T00:00:00Z", "end": "2024-11-20T00:00:00Z"}
    ds = Dataset(full_data)
    cfg = load_run_config("eth_leveraged", extra=window | {"initial_capital": 5000.0}, dataset=ds)
    expected = Backtest(cfg, ds).run()
    assert expected.extra_summary["rate_impact"] < 0
    assert sum(1 for e in expected.events.events if str(e.details.get("operation", "")).startswith("sell_")) >= 3
    session = PaperSession(PaperStore(tmp_path / "paper.db"), "p", cfg,
                           PaperOptions(data=str(full_data), out=str(tmp_path / "runs")), quiet=True)
    got = session.run().result
    assert np.array_equal(got.nav, expected.nav) and np.array_equal(got.quantities, expected.quantities)
    assert np.array_equal(got.attribution, expected.attribution)
