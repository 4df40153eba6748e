"""`basiskit sweep MODE` and `basiskit sweeps list|show|export`."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..data.dataset import Dataset, resolve_data_dir
from ..errors import BasiskitError
from ..results.db import json_safe
from ..results.sweep_store import SweepStore
from ..sweeps.service import sweep as run_sweep
from ..sweeps.spec import SweepRequest
from .output import (
    CapitalOption,
    ConfigOption,
    DataOption,
    DbOption,
    EndOption,
    JsonOption,
    SetOption,
    StartOption,
    err,
    fail,
    out,
    progress,
    run_or_fail,
)

sweeps_app = typer.Typer(no_args_is_help=True, help="Stored sweeps: list, show, export.")


def sweep(
    mode: Annotated[str, typer.Argument(help="A preset name (see `basiskit modes`).")],
    param: Annotated[list[str] | None, typer.Option(
        "--param", help="KEY=V1,V2,... or KEY=LO:HI:STEP (HI included); the grid is their product.")] = None,
    random: Annotated[int | None, typer.Option(help="Draw N configs uniformly from the params instead.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of --random and --search.")] = 0,
    search: Annotated[str | None, typer.Option(help="'tpe': search the params with optuna.")] = None,
    trials: Annotated[int | None, typer.Option(help="Configs a --search tries.")] = None,
    windows: Annotated[list[str] | None, typer.Option(
        "--windows", help="rolling:LEN:STEP (e.g. rolling:90d:30d) or START..END (repeatable).")] = None,
    start: StartOption = None,
    end: EndOption = None,
    capital: CapitalOption = None,
    set_: SetOption = None,
    config: ConfigOption = None,
    data: DataOption = None,
    objective: Annotated[str, typer.Option(help="Numeric summary key to maximise.")] = "apy",
    constraint: Annotated[list[str] | None, typer.Option(
        "--constraint", help="e.g. 'min_health_factor>=1.1' (repeatable).")] = None,
    workers: Annotated[int | None, typer.Option(help="Processes (default: the machine's cores).")] = None,
    backend: Annotated[str, typer.Option(help="local or ray.")] = "local",
    ray_address: Annotated[str | None, typer.Option(help="A running Ray cluster (default: start one).")] = None,
    keep_ticks: Annotated[bool, typer.Option(help="Keep every run's ticks in the store (slower).")] = False,
    as_json: JsonOption = False,
    top: Annotated[int, typer.Option(help="Rows of the ranked table.")] = 15,
    db: DbOption = None,
) -> None:
    """Run MODE over a grid, random draws or a search of its parameters, over one or several windows;
    rank the configs and store the sweep."""
    t0 = time.perf_counter()
    try:
        req = SweepRequest(mode=mode, params=param or [], random=random, seed=seed, search=search, trials=trials,
                           windows=windows or [], start=start, end=end, capital=capital, sets=set_ or [],
                           objective=objective, constraints=constraint or [], workers=workers, backend=backend,
                           ray_address=ray_address, keep_ticks=keep_ticks)
    except ValueError as exc:  # pydantic: the option's value is out of range
        err.print(f"error: {exc}")
        raise typer.Exit(2) from None
    try:
        root, _ = resolve_data_dir(data)
        store = SweepStore(db)
        with progress(enabled=not as_json and sys.stderr.isatty(), label="sweep", unit="runs") as advance:
            result = run_sweep(req, root, Dataset(root), store, "cli", config or [], on_progress=advance)
    except BasiskitError as exc:
        fail(exc)
    result["wall_seconds"] = time.perf_counter() - t0
    if as_json:
        sys.stdout.write(json.dumps(json_safe(result)) + "\n")
    else:
        print_ranking(result, top)


def print_ranking(result: dict, top: int) -> None:
    objective = result["objective"]
    t = Table(title=f"sweep {result['sweep_id']}: {result['n_runs']} runs, {result['n_failed']} failed, "
                    f"{result['wall_seconds']:.1f} s; ranked by mean {objective}")
    for col in ("rank", *result["params"], f"mean {objective}", "windows", "min HF", "ok"):
        t.add_column(col, justify="right")
    by_config: dict[int, list[dict]] = {}
    for run in result["runs"]:
        by_config.setdefault(run["config_index"], []).append(run)
    ranked = sorted(by_config.values(), key=_rank_key)
    for i, runs in enumerate(ranked[:top], start=1):
        mean = _mean([r["objective"] for r in runs])
        hf = [r["min_health_factor"] for r in runs if r["min_health_factor"] is not None]
        ok = "error" if any(r["error"] for r in runs) else ("yes" if all(r["constraints_met"] for r in runs) else "no")
        t.add_row(str(i), *[str(runs[0]["params"].get(k)) for k in result["params"]],
                  "" if mean is None else f"{mean:.6g}", str(len(runs)), f"{min(hf):.4f}" if hf else "", ok)
    out.print(t)
    if result["best"]:
        out.print(f"best: {result['best']['command']}")
    else:
        out.print("no config met every constraint in every window")
    errors = [r for r in result["runs"] if r["error"]]
    if errors:
        out.print(f"{len(errors)} runs failed; the first: {errors[0]['error'].splitlines()[0]}")


def _mean(values: list[float | None]) -> float | None:
    return None if not values or any(v is None for v in values) else sum(values) / len(values)


def _rank_key(runs: list[dict]):
    mean = _mean([r["objective"] for r in runs])
    feasible = all(r["constraints_met"] for r in runs)
    return (not feasible, mean is None, -(mean or 0.0), runs[0]["config_index"])


@sweeps_app.command("list")
def sweeps_list(limit: Annotated[int, typer.Option(help="At most this many rows.")] = 50, db: DbOption = None) -> None:
    """Stored sweeps, newest first."""
    sweeps, total = run_or_fail(lambda: SweepStore(db).list_sweeps(limit=limit))
    t = Table(title=f"{len(sweeps)} of {total} sweeps")
    for col in ("sweep_id", "mode", "status", "created", "runs", "failed", "objective"):
        t.add_column(col)
    for s in sweeps:
        t.add_row(s["sweep_id"], s["mode"], s["status"], f"{s['created_at']:%Y-%m-%d %H:%M:%S}",
                  f"{s['n_done']}/{s['n_runs']}", str(s["n_failed"]), s["objective"])
    out.print(t)


@sweeps_app.command("show")
def sweeps_show(sweep_id: str, top: Annotated[int, typer.Option(help="Rows of the ranked table.")] = 15,
                as_json: Annotated[bool, typer.Option("--json", help="The whole result as JSON.")] = False,
                db: DbOption = None) -> None:
    """A sweep's top configs (or its whole result as JSON)."""
    result = run_or_fail(lambda: SweepStore(db).sweep_result(sweep_id))
    if as_json:
        sys.stdout.write(json.dumps(json_safe(result)) + "\n")
    else:
        print_ranking(result | {"wall_seconds": result["wall_seconds"] or 0.0}, top)


@sweeps_app.command("export")
def sweeps_export(sweep_id: str,
                  output: Annotated[Path, typer.Option("-o", "--output", help="A .csv or .parquet file.")],
                  db: DbOption = None) -> None:
    """A sweep's runs (params flattened into columns, the figures, errors) as CSV or Parquet."""
    import pandas as pd

    result = run_or_fail(lambda: SweepStore(db).sweep_result(sweep_id))
    rows = [{**{f"param:{k}": v for k, v in r["params"].items()}, "window_start": r["window"][0],
             "window_end": r["window"][1], **{k: v for k, v in r.items() if k not in ("params", "window")}}
            for r in result["runs"]]
    df = pd.DataFrame(rows)
    if output.suffix == ".parquet":
        df.to_parquet(output, index=False)
    elif output.suffix == ".csv":
        df.to_csv(output, index=False)
    else:
        err.print(f"error: --output {output}: the name must end in .csv or .parquet")
        raise typer.Exit(2)
    typer.echo(str(output))
