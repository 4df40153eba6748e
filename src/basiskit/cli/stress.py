"""`basiskit stress MODE --scenario NAME|FILE --at TIME|worst ...` and `basiskit stress --list`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..data.dataset import Dataset, resolve_data_dir
from ..errors import BasiskitError, ConfigError
from ..results.db import json_safe
from ..results.stress_store import StressStore
from ..stress.scenarios import library
from ..stress.service import StressRequest, check, stress_test
from .output import (
    CapitalOption,
    ConfigOption,
    DataOption,
    DbOption,
    EndOption,
    JsonOption,
    OutOption,
    SetOption,
    StartOption,
    err,
    fail,
    out,
)


def stress(
    mode: Annotated[str | None, typer.Argument(help="A preset name (see `basiskit modes`).")] = None,
    scenario: Annotated[list[str] | None, typer.Option(
        "--scenario", help="A library scenario (see --list) or a YAML file (repeatable).")] = None,
    shock: Annotated[list[str] | None, typer.Option(
        "--shock", help="KEY=VALUE (one shock) or NAME.KEY=VALUE (repeatable), e.g. magnitude=-0.25.")] = None,
    at: Annotated[str | None, typer.Option(help="When the shocks start: ISO 8601 UTC, or 'worst'.")] = None,
    grid: Annotated[list[str] | None, typer.Option(
        "--grid", help="KEY=V1,V2,... over a shock or config key (once or twice): the liquidation map.")] = None,
    start: StartOption = None,
    end: EndOption = None,
    capital: CapitalOption = None,
    set_: SetOption = None,
    config: ConfigOption = None,
    data: DataOption = None,
    out_dir: OutOption = Path("runs"),
    as_json: JsonOption = False,
    list_: Annotated[bool, typer.Option("--list", help="List the library's scenarios.")] = False,
    db: DbOption = None,
) -> None:
    """Run MODE as it was and under stress scenarios overlaid on the history, side by side."""
    if list_:
        t = Table(title="stress scenarios")
        for col in ("scenario", "description", "shocks"):
            t.add_column(col)
        for name, sc in library().items():
            t.add_row(name, sc.description, "; ".join(", ".join(f"{k}={v}" for k, v in s.items()) for s in sc.shocks))
        out.print(t)
        return
    if mode is None or not scenario or at is None:
        err.print("error: give MODE, --scenario and --at (or --list)")
        raise typer.Exit(2)
    try:
        req = StressRequest(mode=mode, scenarios=scenario, shocks=shock or [], at=at, grid=grid or [], start=start,
                            end=end, capital=capital, sets=set_ or [])
    except ValueError as exc:
        fail(ConfigError([("stress", None, str(exc))]))
    try:
        root, _ = resolve_data_dir(data)
        dataset = Dataset(root)
        check(req, dataset, config or [])
        result = stress_test(req, root, dataset, StressStore(db), "cli", out_dir, config or [])
    except BasiskitError as exc:
        fail(exc)
    if as_json:
        sys.stdout.write(json.dumps(json_safe(result)) + "\n")
    else:
        print_comparison(result)


def print_comparison(r: dict) -> None:
    b, s = r["baseline"], r["scenario"]
    ccy = b["share_class"]
    t = Table(title=f"stress {r['stress_id']}: {r['mode']}, shocks from {r['at']}")
    for col in ("", "baseline", "scenario"):
        t.add_column(col, justify="right")
    def hf(x: dict) -> str:
        return "" if x.get("min_health_factor") is None else f"{x['min_health_factor']:.4f}"

    rows = [("final NAV", lambda x: f"{x['final_nav']:,.4f} {ccy}"),
            ("total return", lambda x: f"{x['total_return']:.4%}"), ("APY", lambda x: f"{x['apy']:.4%}"),
            ("max drawdown", lambda x: f"{x['max_drawdown']:.4%}"), ("min health factor", hf),
            ("liquidations", lambda x: str(x["liquidations"]["count"])),
            ("rebalances", lambda x: str(x.get("rebalances", "")))]
    for label, f in rows:
        t.add_row(label, f(b), f(s))
    for venue in sorted(s.get("min_liquidation_distance", {})):
        t.add_row(f"min liquidation distance {venue}",
                  *[f"{x['min_liquidation_distance'][venue]:.4%}" if venue in x.get("min_liquidation_distance", {})
                    else "" for x in (b, s)])
    t.add_row("loss vs baseline (end)", "", f"{r['loss_vs_baseline']:,.4f} {ccy}")
    t.add_row("time to recover", "", "not in the window" if r["time_to_recover_hours"] is None
              else f"{r['time_to_recover_hours']} h")
    out.print(t)
    for liq in r["liquidations"]:
        out.print(f"liquidation {liq['at']}: {liq['message']}")
    out.print(f"{len(r['triggered_actions'])} actions the shock triggered; results: {b['results_dir']} (baseline), "
              f"{s['results_dir']} (scenario)")
    if r.get("grid"):
        g = Table(title=f"liquidation map over {', '.join(r['grid']['axes'])}")
        for col in (*r["grid"]["axes"], "liquidated", "min HF", "loss"):
            g.add_column(col, justify="right")
        for row in r["grid"]["runs"]:
            g.add_row(*[str(row["params"][a]) for a in r["grid"]["axes"]], "yes" if row["liquidated"] else "no",
                      "" if row["min_health_factor"] is None else f"{row['min_health_factor']:.4f}",
                      row["error"][:60] if row["error"] else f"{row['loss']:,.4f}")
        out.print(g)
