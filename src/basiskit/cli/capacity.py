"""`basiskit capacity MODE --capitals ...`: the capacity curve, as a sweep over initial_capital."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated

import typer
from rich.table import Table

from ..data.dataset import Dataset, resolve_data_dir
from ..errors import BasiskitError
from ..results.capacity import curve
from ..results.db import json_safe
from ..results.sweep_report import CAPITAL, _figures
from ..results.sweep_store import SweepStore
from ..sweeps.service import sweep as run_sweep
from ..sweeps.spec import SweepRequest
from .output import (
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
)


def capacity(
    mode: Annotated[str, typer.Argument(help="A preset name (see `basiskit modes`).")],
    capitals: Annotated[str, typer.Option(help="Initial capitals, comma-separated (share-class units).")] =
    "100000,1000000,10000000,100000000",
    start: StartOption = None,
    end: EndOption = None,
    set_: SetOption = None,
    config: ConfigOption = None,
    data: DataOption = None,
    workers: Annotated[int | None, typer.Option(help="Processes (default: the machine's cores).")] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """What MODE earns by capital once its own size is paid for: gross APY, APY net of the exit, rate impact,
    impact costs and liquidity-constrained hours; capitals the Aave reserves could not take are refused, and the
    first capital under the share class's benchmark is marked. Stored as a sweep."""
    t0 = time.perf_counter()
    try:
        values = [float(c) for c in capitals.split(",") if c.strip()]
    except ValueError:
        err.print(f"error: --capitals {capitals!r}: give numbers separated by commas, e.g. 100000,1000000")
        raise typer.Exit(2) from None
    if not values or any(v <= 0 for v in values):
        err.print(f"error: --capitals {capitals!r}: give one or more positive capitals")
        raise typer.Exit(2)
    try:
        req = SweepRequest(mode=mode, params=[f"{CAPITAL}={','.join(repr(v) for v in values)}"], start=start,
                           end=end, sets=set_ or [], workers=workers)
        root, _ = resolve_data_dir(data)
        with progress(enabled=not as_json and sys.stderr.isatty(), label="capacity", unit="runs") as advance:
            result = run_sweep(req, root, Dataset(root), SweepStore(db), "cli", config or [], on_progress=advance)
    except ValueError as exc:
        err.print(f"error: {exc}")
        raise typer.Exit(2) from None
    except BasiskitError as exc:
        fail(exc)
    found = curve([(float(r["params"][CAPITAL]), _figures(r)) for r in result["runs"]])
    doc = {"sweep_id": result["sweep_id"], "mode": mode, **found, "wall_seconds": time.perf_counter() - t0}
    if as_json:
        sys.stdout.write(json.dumps(json_safe(doc)) + "\n")
        return
    out.print(_table(doc))
    below = doc["below_benchmark_from"]
    if below is not None:
        out.print(f"from {_capital(below)} the APY net of exit falls under the benchmark (or the reserves refuse it)")
    out.print(f"stored as sweep {doc['sweep_id']} (`basiskit sweeps show {doc['sweep_id']}`)")


def _capital(c: float) -> str:
    return f"{c:,.0f}" if c == round(c) else f"{c:,.2f}"


def _pct(v) -> str:
    return "" if v is None else f"{v:.2%}"


def _table(doc: dict) -> Table:
    bench = next((p["benchmark"] for p in doc["points"] if p.get("benchmark")), None)
    t = Table(title=f"capacity of {doc['mode']} (benchmark: {bench or 'none'})")
    for col in ("capital", "APY", "APY net of exit", "benchmark", "rate impact", "impact costs", "exit cost",
                "constrained h", ""):
        t.add_column(col, justify="right")
    for p in doc["points"]:
        if p["refused"]:
            t.add_row(_capital(p["capital"]), "refused: the Aave reserve could not lend it", "", "", "", "", "", "",
                      "below")
            continue
        t.add_row(_capital(p["capital"]), _pct(p["apy"]), _pct(p["apy_net_of_exit"]), _pct(p["benchmark_apy"]),
                  _pct(p["rate_impact_share"]), _pct(p["cost_share"]), _pct(p["exit_cost_share"]),
                  "" if p["constrained_hours"] is None else f"{p['constrained_hours']:.0f}",
                  "below" if p["below_benchmark"] else "")
    return t
