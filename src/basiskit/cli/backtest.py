"""`basiskit backtest` and `basiskit modes`."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..config import preset_names, read_preset
from ..config.loading import run_overrides
from ..data.dataset import Dataset, resolve_data_dir
from ..engine.runconfig import load_run_config
from ..errors import BasiskitError
from ..results.db import RunStore, json_safe
from ..results.report import write_report
from ..results.service import run_and_store
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
    fail,
    out,
    progress,
)


def backtest(
    mode: Annotated[str, typer.Argument(help="A preset name (see `basiskit modes`).")],
    start: StartOption = None,
    end: EndOption = None,
    capital: CapitalOption = None,
    set_: SetOption = None,
    config: ConfigOption = None,
    data: DataOption = None,
    out_dir: OutOption = Path("runs"),
    as_json: JsonOption = False,
    report: Annotated[Path | None, typer.Option(help="Also write the HTML report to this file.")] = None,
    db: DbOption = None,
) -> None:
    """Run a backtest of MODE, store it, and print its summary."""
    t0 = time.perf_counter()
    extra = run_overrides(start, end, capital)
    try:
        root, source = resolve_data_dir(data)
        cfg = load_run_config(mode, config or [], set_ or [], extra, Dataset(root))
        with progress(enabled=not as_json and sys.stderr.isatty()) as advance:
            output = run_and_store(cfg, root, f"{root} ({source})", RunStore(db), "cli", out_dir, advance)
        summary = output.summary
        config_dict = cfg.model_dump(mode="json")
        if report:
            write_report(report, summary, output.ticks, output.events, config_dict)
        summary["wall_seconds"] = time.perf_counter() - t0
        (Path(summary["results_dir"]) / "summary.json").write_text(json.dumps(json_safe(summary), indent=2))
    except BasiskitError as exc:
        fail(exc)
    if as_json:
        sys.stdout.write(json.dumps(json_safe(summary)) + "\n")
    else:
        print_summary(summary)


def print_summary(s: dict) -> None:
    ccy = s["share_class"]
    t = Table(title=f"{s['mode']}  {s['start']} .. {s['end']}  ({s['steps']} hourly steps)", show_header=False)
    t.add_column("metric", style="bold")
    t.add_column("value", justify="right")
    t.add_row("initial capital", f"{s['initial_capital']:,.6f} {ccy}")
    t.add_row("final NAV", f"{s['final_nav']:,.6f} {ccy}")
    t.add_row("final NAV (USD)", f"{s['final_nav_usd']:,.2f} USD")
    t.add_row("total return", f"{s['total_return']:.6%}")
    t.add_row("APY", f"{s['apy']:.4%}")
    t.add_row("max drawdown", f"{s['max_drawdown']:.4%}")
    if s.get("metrics_note"):
        t.add_row("note", s["metrics_note"])
    t.add_row("balance PnL", f"{s['balance_pnl']:,.6f} {ccy}")
    for name, amount in s["pnl_attribution"].items():
        t.add_row(f"  {name}", f"{amount:,.6f} {ccy}")
    t.add_row("max |residual|", f"{s['reconciliation_max_residual']:.3e} {ccy}")
    for venue, amount in s.get("funding_by_venue", {}).items():
        t.add_row(f"funding {venue}", f"{amount:,.2f} {ccy}")
    for venue, ratio in s.get("max_margin_ratio", {}).items():
        t.add_row(f"max margin ratio {venue}", f"{ratio:.4f}")
    if s.get("min_health_factor") is not None:
        t.add_row("min health factor", f"{s['min_health_factor']:.4f}")
        t.add_row("max LTV", f"{s['max_ltv']:.4f}")
        t.add_row("leverage mean / max", f"{s['leverage']['mean']:.3f} / {s['leverage']['max']:.3f}")
    for token, r in s.get("rewards_by_token", {}).items():
        t.add_row(f"rewards {token}", f"{r['units']:,.4f} {token} ({r['value']:,.4f} {ccy})")
    if "rebalances" in s:
        t.add_row("rebalances", str(s["rebalances"]))
        t.add_row("liquidations", f"{s['liquidations']['count']} (loss {s['liquidations']['loss']:,.2f} {ccy})")
        if "max_abs_net_delta_pct" in s:
            t.add_row("max |net delta| / NAV", f"{s['max_abs_net_delta_pct']:.4%}")
    t.add_row("data warnings", str(s["data_warnings"]))
    t.add_row("executions", str(s["executions"]))
    t.add_row("engine", f"{s['engine_seconds']:.3f} s ({s['steps_per_second']:,.0f} steps/s)")
    t.add_row("wall", f"{s['wall_seconds']:.3f} s")
    t.add_row("results", s["results_dir"])
    out.print(t)


def modes() -> None:
    """List every preset with its strategy, share class and description."""
    t = Table(title="basiskit modes")
    for col in ("mode", "strategy", "share class", "description"):
        t.add_column(col)
    for name in preset_names():
        p = read_preset(name)
        t.add_row(name, p.get("strategy", ""), p.get("share_class", ""), p.get("description", ""))
    out.print(t)
