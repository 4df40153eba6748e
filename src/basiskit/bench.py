"""Benchmark: dataset load time and engine steps/s per mode over the whole dataset.

python -m basiskit.bench [--data DIR] [--repeat N]   (make bench uses ../shared/market-data when present)
"""

from __future__ import annotations

import argparse
import time

from rich.console import Console
from rich.table import Table

from .config import preset_names, read_preset
from .data.dataset import Dataset, resolve_data_dir
from .engine.run import Backtest
from .engine.runconfig import load_run_config
from .strategies.registry import strategy_names

# Engine-loop targets (steps/s) from the issues, by strategy.
TARGETS = {"pure_lending": 200_000, "basis": 100_000, "market_neutral": 50_000, "staking": 50_000}
MEMORY_TARGET_MB = 300
LOAD_TARGET_SECONDS = 2.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=None, help="dataset folder (default: $BASISKIT_DATA, else the sample)")
    ap.add_argument("--repeat", type=int, default=5, help="runs per mode; the best is reported")
    ap.add_argument("--workers", type=int, default=2, help="sweep worker processes")
    args = ap.parse_args()
    root, source = resolve_data_dir(args.data)
    console = Console(width=120)
    console.print(f"dataset: {root} ({source})")

    t0 = time.perf_counter()
    dataset = Dataset(root)
    dataset.load_all()
    load_s = time.perf_counter() - t0
    console.print(f"load + validate all {len(dataset.names())} series: {load_s:.3f} s "
                  f"(target < {LOAD_TARGET_SECONDS:g} s) {'OK' if load_s < LOAD_TARGET_SECONDS else 'SLOW'}")

    table = Table(title="engine loop, whole dataset window")
    for col in ("mode", "steps", "align s", "engine s (best)", "steps/s", "target", ""):
        table.add_column(col, justify="left" if col == "mode" else "right")
    engine_s = {}
    for mode in preset_names():
        strategy = read_preset(mode).get("strategy")
        if strategy not in strategy_names():
            continue
        cfg = load_run_config(mode)
        t1 = time.perf_counter()
        bt = Backtest(cfg, dataset)
        align_s = time.perf_counter() - t1
        best = min(bt.run().engine_seconds for _ in range(args.repeat))
        engine_s[mode] = best
        steps = bt.market.n_points - 1
        rate = steps / best
        target = TARGETS.get(strategy)
        verdict = "" if target is None else ("OK" if rate >= target else "SLOW")
        table.add_row(mode, f"{steps:,}", f"{align_s:.3f}", f"{best:.4f}", f"{rate:,.0f}",
                      f"{target:,}" if target else "-", verdict)
    table.add_row(*_three_venue_btc_basis(args.repeat))
    console.print(table)
    mb = _peak_memory_mb(root)  # before the sweeps: it reads the largest child process so far
    console.print(f"peak memory of one full usdt_market_neutral backtest (load, run, tables): {mb:.0f} MB "
                  f"(target < {MEMORY_TARGET_MB} MB) {'OK' if mb < MEMORY_TARGET_MB else 'HIGH'}")
    _sweeps(console, root, engine_s["usdt_market_neutral"], args.workers)


SWEEP_PARAMS = ["target_ltv=0.60:0.85:0.05", "stake_allocation=0.5,0.6,0.7,0.75,0.8",
                "position_deviation_threshold=0.005,0.01,0.02,0.05", "leverage.entry=flash_loan,loop"]


def _sweeps(console: Console, root, engine_s: float, workers: int) -> None:
    """The issue's 240-config sweep of usdt_market_neutral over the whole common window against its bound,
    1.5 x (240 x one run's engine seconds / workers) + 8 s; and 1,000 random configs of the same ranges."""
    import tempfile
    from pathlib import Path

    from .results.sweep_store import SweepStore
    from .sweeps.service import sweep
    from .sweeps.spec import SweepRequest

    dataset = Dataset(root)
    with tempfile.TemporaryDirectory() as tmp:
        store = SweepStore(Path(tmp) / "bench.db")
        for label, extra, n in (("grid", {}, 240), ("random", {"random": 1000}, 1000)):
            req = SweepRequest(mode="usdt_market_neutral", capital=100_000, params=SWEEP_PARAMS, workers=workers,
                               **extra)
            t0 = time.perf_counter()
            result = sweep(req, root, dataset, store, "bench")
            wall = time.perf_counter() - t0
            bound = 1.5 * (n * engine_s / workers) + 8.0
            verdict = ("OK" if wall <= bound else "SLOW") if n == 240 else ""
            console.print(f"sweep {label}: {result['n_runs']:,} runs ({result['n_failed']} failed) in {wall:.1f} s "
                          f"with {workers} workers; bound 1.5 x ({n} x {engine_s:.4f} s / {workers}) + 8 s = "
                          f"{bound:.1f} s {verdict}".rstrip())


def _peak_memory_mb(root) -> float:
    """Max RSS of a fresh process that loads the data, runs the mode and builds its tables."""
    import resource
    import subprocess
    import sys

    code = ("from basiskit.engine.runconfig import load_run_config; from basiskit.data.dataset import Dataset; "
            "from basiskit.engine.run import run_backtest; from basiskit.results.tables import ticks_table; "
            f"r = run_backtest(load_run_config('usdt_market_neutral'), Dataset({str(root)!r})); ticks_table(r)")
    subprocess.run([sys.executable, "-c", code], check=True)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def _three_venue_btc_basis(repeat: int) -> list[str]:
    """btc_basis on Binance, Bybit and OKX over a synthetic window as long as the real history
    (the real data has no OKX BTC perp bars)."""
    import tempfile
    from pathlib import Path

    from .data.synthetic import SyntheticMarket

    with tempfile.TemporaryDirectory() as tmp:
        root = SyntheticMarket("2024-01-01", "2025-09-29").write(Path(tmp) / "synthetic")
        cfg = load_run_config("btc_basis", sets=["hedge_allocation.binance=0.34", "hedge_allocation.bybit=0.33",
                                                 "hedge_allocation.okx=0.33"])
        t1 = time.perf_counter()
        bt = Backtest(cfg, Dataset(root))
        align_s = time.perf_counter() - t1
        best = min(bt.run().engine_seconds for _ in range(repeat))
    steps = bt.market.n_points - 1
    rate = steps / best
    target = TARGETS["basis"]
    return ["btc_basis, 3 venues (synthetic)", f"{steps:,}", f"{align_s:.3f}", f"{best:.4f}", f"{rate:,.0f}",
            f"{target:,}", "OK" if rate >= target else "SLOW"]


if __name__ == "__main__":
    main()
