"""Sweeps: params and windows as stated, every run equal to `basiskit backtest` with the same --set to
the last bit, ranking by hand, refused configs as runs with errors, local processes and Ray giving
identical rows, the store and the CLI."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from basiskit.data.dataset import SAMPLE_DIR, Dataset
from basiskit.engine.run import run_backtest
from basiskit.engine.runconfig import load_run_config
from basiskit.errors import ConfigError
from basiskit.results.summary import summarize
from basiskit.results.sweep_store import SweepStore
from basiskit.sweeps.plan import prepare
from basiskit.sweeps.service import sweep as run_sweep
from basiskit.sweeps.spec import SweepRequest, parse_param, parse_windows

GRID = ["target_ltv=0.80:0.85:0.05", "stake_allocation=0.5,0.75"]
WINDOWS = ["2024-10-10..2024-11-10", "2024-11-10..2024-12-10"]


def sweep(tmp_path, dataset=SAMPLE_DIR, **fields) -> dict:
    req = SweepRequest(**({"mode": "usdt_market_neutral", "capital": 100_000, "workers": 1} | fields))
    return run_sweep(req, dataset, Dataset(dataset), SweepStore(tmp_path / "sweeps.db"), "test")


def test_params_as_stated():
    p = parse_param("target_ltv=0.60:0.85:0.05")
    assert p.values == (0.6, 0.65, 0.7, 0.75, 0.8, 0.85)  # LO + i x STEP rounded to STEP's decimals, HI included
    assert parse_param("leverage.loop_max_steps=10:40:10").values == (10, 20, 30, 40)
    assert parse_param("leverage.entry=flash_loan,loop").values == ("flash_loan", "loop")
    assert parse_param("rewards.enabled=true,false").values == (True, False)  # parsed like --set
    for bad, needle in [("target_ltv", "KEY=V1,V2"), ("x=1:0:0.1", "LO <= HI"), ("x=a:b:c", "must be numbers"),
                        ("start=2024-01-01T00:00:00Z", "--config file"), ("x=1,1", "twice"), ("x=1,,2", "empty")]:
        with pytest.raises(ValueError, match=needle):
            parse_param(bad)


def test_rolling_windows():
    first, last = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 4, 1, tzinfo=UTC)
    windows = parse_windows(["rolling:30d:15d"], first, last)
    # 91 days: windows start on days 0, 15, 30, 45, 60 (day 75 + 30 would pass the end)
    assert [(w.start, w.end) for w in windows][:2] == [("2024-01-01T00:00:00Z", "2024-01-31T00:00:00Z"),
                                                       ("2024-01-16T00:00:00Z", "2024-02-15T00:00:00Z")]
    assert len(windows) == 5 and windows[-1].end == "2024-03-31T00:00:00Z"


def test_every_problem_of_a_sweep_at_once():
    req = SweepRequest(mode="usdt_market_neutral", params=["target_lvt=0.8,0.85", "stake_allocation=0.5:0.4:0.1",
                                                           "mode=eth_basis"],
                       search="tpe", random=5, objective="happiness", constraints=["min_health_factor>>1"],
                       windows=["rolling:0d:1d"])
    with pytest.raises(ConfigError) as exc:
        prepare(req, Dataset(SAMPLE_DIR))
    fields = {f for f, _, _ in exc.value.problems}
    assert {"params.0", "params.1", "params.2", "random", "trials", "objective", "constraints.0", "windows"} <= fields


def test_a_sweep_equals_backtests_and_ranks_by_hand(tmp_path):
    result = sweep(tmp_path, params=GRID, windows=WINDOWS, constraints=["min_health_factor>=1.1"])
    assert result["n_runs"] == 8 and result["n_failed"] == 0
    dataset = Dataset(SAMPLE_DIR)
    means = {}
    for run in result["runs"]:
        start, end = run["window"]
        sets = [f"{k}={v}" for k, v in run["params"].items()]
        cfg = load_run_config("usdt_market_neutral", sets=sets, dataset=dataset,
                              extra={"initial_capital": 100_000, "start": start, "end": end})
        s = summarize(run_backtest(cfg, dataset))
        assert run["final_nav"] == s["final_nav"] and run["apy"] == s["apy"]  # to the last bit
        assert run["min_health_factor"] == s["min_health_factor"]
        means.setdefault(run["config_index"], []).append(s["apy"])
    best_index = max(means, key=lambda i: sum(means[i]) / 2)
    assert result["best"]["config_index"] == best_index
    assert result["best"]["objective"] == sum(means[best_index]) / 2
    assert "--set target_ltv=0.85" in result["best"]["command"] or "--set target_ltv=0.8" in result["best"]["command"]


def test_a_refused_value_is_a_run_with_its_error(tmp_path):
    result = sweep(tmp_path, params=["target_ltv=0.85,0.95"], start="2024-11-01", end="2024-11-15")
    ok, refused = result["runs"]
    assert ok["error"] is None and ok["final_nav"] > 0
    assert refused["final_nav"] is None and "target_ltv: 0.95" in refused["error"]
    assert result["n_failed"] == 1 and result["best"]["params"] == {"target_ltv": 0.85}


def test_keep_ticks_stores_every_run_in_full(tmp_path):
    result = sweep(tmp_path, params=["stake_allocation=0.5,0.75"], start="2024-11-01", end="2024-11-03",
                   keep_ticks=True)
    store = SweepStore(tmp_path / "sweeps.db")
    run_ids = store.sweep_runs(result["sweep_id"])["run_id"].tolist()
    assert len(run_ids) == 2 and all(run_ids)
    for run_id, run in zip(run_ids, result["runs"], strict=True):
        ticks = store.ticks(run_id)
        assert len(ticks) == 2 * 24 + 1 and ticks["nav"].iloc[-1] == run["final_nav"]
        assert store.get(run_id)["config"]["stake_allocation"] == run["params"]["stake_allocation"]


def test_random_draws_are_reproducible_and_in_range(tmp_path):
    req = dict(params=["target_ltv=0.60:0.85:0.05", "leverage.entry=flash_loan,loop"], random=4, seed=7,
               start="2024-11-01", end="2024-11-08")
    a, b = sweep(tmp_path, **req), sweep(tmp_path, **req)
    assert [r["params"] for r in a["runs"]] == [r["params"] for r in b["runs"]]
    for r in a["runs"]:
        ltv = r["params"]["target_ltv"]
        assert 0.6 <= ltv <= 0.85 and round(ltv, 2) == ltv and r["params"]["leverage.entry"] in ("flash_loan", "loop")
        assert r["final_nav"] == b["runs"][r["index"]]["final_nav"]


def test_tpe_search_maximises_the_objective(tmp_path):
    """30 trials, fixed seed: the search's sampler is TPE, its best feasible objective is at least what random
    sampling finds with the same seed and budget, and configs that break a constraint reach optuna as
    infeasible (constraint value > 0), the others as feasible."""
    import optuna

    from basiskit.sweeps.backends import InProcess
    from basiskit.sweeps.rank import rank
    from basiskit.sweeps.search import run_trials, tpe_study

    req = SweepRequest(mode="usdt_market_neutral", capital=100_000, workers=1, search="tpe", trials=30, seed=7,
                       params=["target_ltv=0.50:0.85:0.05", "stake_allocation=0.4:0.8:0.1"],
                       constraints=["min_health_factor>=1.12"], start="2024-11-01", end="2024-11-15")
    ds = Dataset(SAMPLE_DIR)
    plan = prepare(req, ds)
    backend = InProcess(ds)
    tpe = tpe_study(req.seed)
    assert isinstance(tpe.sampler, optuna.samplers.TPESampler)
    random = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=req.seed))
    best = {}
    for name, study in (("tpe", tpe), ("random", random)):
        rows = run_trials(study, plan, backend, False, lambda row: None, lambda: False)
        assert len(study.trials) == 30
        ranked = rank(rows, plan.objective, plan.constraints)
        feasible = [r.objective for r in ranked if r.feasible and r.objective is not None]
        best[name] = max(feasible)
        infeasible = [t for t in study.trials if t.constraints and t.constraints["constraints"] > 0]
        # by hand: HF = eMode LT 0.95 / LTV (oracle prices), under 1.12 above LTV 0.848: target_ltv 0.85
        assert infeasible and all(t.params["target_ltv"] >= 0.85 for t in infeasible)
        assert all(t.constraints["constraints"] == 0 for t in study.trials if t.params["target_ltv"] < 0.85)
    assert best["tpe"] >= best["random"]
    result = sweep(tmp_path, params=req.params, search="tpe", trials=30, seed=7, constraints=req.constraints,
                   start="2024-11-01", end="2024-11-15")
    assert result["best"]["objective"] == best["tpe"]  # the service runs the same study


def test_process_pool_equals_in_process(tmp_path):
    fields = dict(params=GRID, start="2024-11-01", end="2024-12-01")
    one, two = sweep(tmp_path, **fields), sweep(tmp_path, workers=2, **fields)
    assert one["runs"] == two["runs"] and one["best"] == two["best"]


def test_ray_backend_equals_local(tmp_path):
    pytest.importorskip("ray")
    fields = dict(params=["target_ltv=0.75:0.85:0.05", "stake_allocation=0.5,0.6,0.75,0.8"],
                  start="2024-11-01", end="2024-12-01")
    local = sweep(tmp_path, workers=2, **fields)
    ray_run = sweep(tmp_path, workers=2, backend="ray", **fields)
    assert local["n_runs"] == ray_run["n_runs"] == 12
    assert local["runs"] == ray_run["runs"] and local["best"] == ray_run["best"]


def basiskit(*args):
    env = {k: v for k, v in os.environ.items() if k != "BASISKIT_DATA"}
    return subprocess.run([sys.executable, "-m", "basiskit.cli", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def test_cli_store_and_sql(tmp_path):
    db = str(tmp_path / "cli.db")
    p = basiskit("sweep", "eth_basis", "--param", "basis.margin_buffer=0.3,0.5", "--start", "2024-11-01", "--end",
                 "2024-11-15", "--workers", "1", "--json", "--db", db, "--data", str(SAMPLE_DIR))
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout)
    assert set(result) >= {"sweep_id", "mode", "n_runs", "n_failed", "wall_seconds", "runs", "best"}
    assert set(result["runs"][0]) >= {"params", "window", "final_nav", "total_return", "apy", "max_drawdown", "sharpe",
                                      "min_health_factor", "liquidations", "transaction_costs", "rebalances",
                                      "reconciliation_max_residual", "error"}
    sid = result["sweep_id"]
    shown = json.loads(basiskit("sweeps", "show", sid, "--json", "--db", db).stdout)
    assert shown["runs"] == [{k: r[k] for k in shown["runs"][0]} for r in result["runs"]]
    assert sid in basiskit("sweeps", "list", "--db", db).stdout
    out = tmp_path / "runs.csv"
    assert basiskit("sweeps", "export", sid, "-o", str(out), "--db", db).returncode == 0
    assert "param:basis.margin_buffer" in out.read_text().splitlines()[0]
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
        apy = con.execute("SELECT apy FROM sweep_runs WHERE sweep_id = ? ORDER BY run_index", [sid]).fetchall()
        funding = con.execute("SELECT summary->>'$.pnl_attribution.funding' FROM sweep_runs WHERE sweep_id = ?",
                              [sid]).fetchall()
    assert [a for (a,) in apy] == [r["apy"] for r in result["runs"]] and all(f for (f,) in funding)
    bad = basiskit("sweep", "eth_basis", "--param", "basis.margin_bufer=0.3", "--db", db)
    assert bad.returncode == 2 and "params.0" in bad.stderr and "Traceback" not in bad.stderr


ACCEPTANCE = ["--capital", "100000", "--param", "target_ltv=0.60:0.85:0.05", "--param",
              "stake_allocation=0.5,0.6,0.7,0.75,0.8", "--param", "position_deviation_threshold=0.005,0.01,0.02,0.05",
              "--param", "leverage.entry=flash_loan,loop", "--workers", "2", "--json"]


def test_acceptance_sweep_of_240_configs(full_data, tmp_path):
    db = str(tmp_path / "acc.db")
    p = basiskit("sweep", "usdt_market_neutral", *ACCEPTANCE, "--db", db, "--data", str(full_data))
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout)
    assert result["n_runs"] == 240 and result["n_failed"] == 0
    run = result["runs"][137]
    sets = [x for k, v in run["params"].items() for x in ("--set", f"{k}={v}")]
    q = basiskit("backtest", "usdt_market_neutral", "--capital", "100000", *sets, "--json", "--db", db,
                 "--data", str(full_data), "--out", str(tmp_path / "runs"))
    assert json.loads(q.stdout)["final_nav"] == run["final_nav"]
    # Ray gives the same rows to the last bit: test_ray_backend_equals_local (its own grid, a month)
