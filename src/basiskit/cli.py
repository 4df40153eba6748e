"""The basiskit command line: a thin shell over the same run function the API uses."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from .cli_runs import report as report_command
from .cli_runs import runs_app
from .cli_runs import serve as serve_command
from .config import config_hash, preset_names, read_preset
from .data.dataset import Dataset, resolve_data_dir
from .engine.service import execute
from .errors import BasiskitError, ConfigError
from .results.db import RunStore, json_safe
from .results.report import render as render_report
from .results.store import new_run_id, write_run
from .runconfig import load_run_config

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Backtest the fund's basis strategies.")
data_app = typer.Typer(no_args_is_help=True, help="Check datasets and build the embedded sample.")
app.add_typer(data_app, name="data")
app.add_typer(runs_app, name="runs")
# Off a terminal (pipes, CI logs) rich would cut tables at 80 columns: give them room instead.
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
out = Console(width=None if sys.stdout.isatty() else 160)


def _fail(exc: BasiskitError) -> None:
    err.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, highlight=False, soft_wrap=True)
    raise typer.Exit(2 if isinstance(exc, ConfigError) else 1)


@app.command()
def backtest(
    mode: Annotated[str, typer.Argument(help="A preset name (see `basiskit modes`).")],
    start: Annotated[str | None, typer.Option(help="Window start, ISO 8601 UTC (default: data start).")] = None,
    end: Annotated[str | None, typer.Option(help="Window end, exclusive, ISO 8601 UTC.")] = None,
    capital: Annotated[float | None, typer.Option(help="Initial capital in share-class units.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="dotted.key=value override (repeatable).")] = None,
    config: Annotated[list[Path] | None, typer.Option(help="YAML deep-merged over the preset.")] = None,
    data: Annotated[Path | None, typer.Option(help="Dataset folder (else $BASISKIT_DATA, else the sample).")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for run results.")] = Path("runs"),
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object and nothing else.")] = False,
    report: Annotated[Path | None, typer.Option(help="Also write the HTML report to this file.")] = None,
    db: Annotated[Path | None, typer.Option(help="Results database (default: $BASISKIT_DB or user data dir).")] = None,
) -> None:
    """Run a backtest of MODE, store it, and print its summary."""
    t0 = time.perf_counter()
    extra = {k: v for k, v in (("start", start), ("end", end), ("initial_capital", capital)) if v is not None}
    try:
        root, source = resolve_data_dir(data)
        cfg = load_run_config(mode, config or [], set_ or [], extra, Dataset(root))
        run_id = new_run_id(cfg.mode, config_hash(cfg))
        with _progress(enabled=not as_json and sys.stderr.isatty()) as advance:
            output = execute(cfg, root, f"{root} ({source})", run_id, advance)
        summary = output.summary
        folder = write_run(output.result, summary, out_dir, run_id)
        config_dict = cfg.model_dump(mode="json")
        store = RunStore(db)
        store.create(run_id, cfg.mode, "running", "cli", config=config_dict)
        store.save_result(run_id, summary, output.ticks, output.events, config_dict)
        if report:
            report.write_text(render_report(summary, output.ticks, output.events, config_dict))
        summary["wall_seconds"] = time.perf_counter() - t0
        summary["results_dir"] = str(folder)
        (folder / "summary.json").write_text(json.dumps(json_safe(summary), indent=2))
    except BasiskitError as exc:
        _fail(exc)
    if as_json:
        sys.stdout.write(json.dumps(json_safe(summary)) + "\n")
    else:
        _print_summary(summary)


class _progress:
    """A rich progress bar on stderr, or nothing when not on a terminal."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __enter__(self):
        if not self.enabled:
            return None
        self.bar = Progress(TextColumn("backtest"), BarColumn(), TextColumn("{task.completed}/{task.total} h"),
                            TimeRemainingColumn(), console=err, transient=True)
        self.bar.start()
        task = self.bar.add_task("run", total=None)
        return lambda k, total: self.bar.update(task, completed=k, total=total)

    def __exit__(self, *exc):
        if self.enabled:
            self.bar.stop()


def _print_summary(s: dict) -> None:
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


@app.command()
def modes() -> None:
    """List every preset with its strategy, share class and description."""
    t = Table(title="basiskit modes")
    for col in ("mode", "strategy", "share class", "description"):
        t.add_column(col)
    for name in preset_names():
        p = read_preset(name)
        t.add_row(name, p.get("strategy", ""), p.get("share_class", ""), p.get("description", ""))
    out.print(t)


@data_app.command("check")
def data_check(directory: Annotated[Path, typer.Argument(help="A dataset folder with MANIFEST.json.")]) -> None:
    """Validate every series of a dataset and print its coverage."""
    from .data.check import check_dataset

    try:
        rows = check_dataset(Dataset(directory))
    except BasiskitError as exc:
        _fail(exc)
    t = Table(title=f"dataset {directory}")
    for col in ("series", "kind", "start", "end", "rows", "gaps", "largest gap (h)"):
        t.add_column(col, justify="right" if col in ("rows", "gaps", "largest gap (h)") else "left")
    for r in rows:
        t.add_row(r.series, r.kind, r.start, r.end, str(r.rows), str(r.gaps), f"{r.largest_gap_hours:g}")
    out.print(t)
    out.print(f"{len(rows)} series valid")


@data_app.command("sample")
def data_sample(
    source: Annotated[Path | None, typer.Option(help="Full dataset (default: $BASISKIT_DATA).")] = None,
    start: Annotated[str, typer.Option(help="Sample window start.")] = "2024-10-06",
    end: Annotated[str, typer.Option(help="Sample window end.")] = "2025-01-06",
    dest: Annotated[Path | None, typer.Option("--out", help="Where to write (default: the package).")] = None,
) -> None:
    """Build the embedded sample: a small real slice of the full dataset."""
    import os

    from .data.dataset import ENV_VAR, SAMPLE_DIR
    from .data.sample import build_sample

    src = source or (Path(os.environ[ENV_VAR]) if os.environ.get(ENV_VAR) else None)
    if src is None:
        err.print(f"error: pass --source DIR (the full dataset) or set {ENV_VAR}.")
        raise typer.Exit(2)
    try:
        written = build_sample(Dataset(src), dest or SAMPLE_DIR, start, end)
    except BasiskitError as exc:
        _fail(exc)
    out.print(f"sample written to {dest or SAMPLE_DIR}: {written['files']} files, {written['bytes']:,} bytes")


app.command()(report_command)
app.command()(serve_command)

if __name__ == "__main__":
    app()
