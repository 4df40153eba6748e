"""`basiskit runs ...` over stored runs, `basiskit report` (of a run or a sweep) and `basiskit serve`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..api.limits import ServiceLimits
from ..results.db import json_safe
from ..results.report import write_report
from .output import DbOption, err, out, run_or_fail
from .output import store as open_store

runs_app = typer.Typer(no_args_is_help=True, help="Stored runs: list, show, compare, export.")


@runs_app.command("list")
def runs_list(
    mode: Annotated[str | None, typer.Option(help="Only this mode.")] = None,
    status: Annotated[str | None, typer.Option(help="Only this status (queued, running, done, failed).")] = None,
    since: Annotated[str | None, typer.Option(help="Only runs created at or after this ISO date.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many rows.")] = 50,
    db: DbOption = None,
) -> None:
    """Stored runs, newest first."""
    since_dt = datetime.fromisoformat(since).replace(tzinfo=UTC) if since else None
    runs, total = run_or_fail(lambda: open_store(db).list(mode=mode, status=status, since=since_dt, limit=limit))
    t = Table(title=f"{len(runs)} of {total} runs")
    for col in ("run_id", "mode", "status", "created", "window", "return", "APY", "final NAV"):
        t.add_column(col)
    for r in runs:
        s = r["summary"] or {}
        t.add_row(r["run_id"], r["mode"], r["status"], f"{r['created_at']:%Y-%m-%d %H:%M:%S}",
                  f"{s.get('start', '')[:10]} .. {s.get('end', '')[:10]}" if s else "",
                  f"{s['total_return']:.4%}" if s else "", f"{s['apy']:.4%}" if s else "",
                  f"{s['final_nav']:,.4f} {s['share_class']}" if s else (r["error"] or ""))
    out.print(t)


@runs_app.command("show")
def runs_show(run_id: str, db: DbOption = None) -> None:
    """A run's status and summary as JSON."""
    run = run_or_fail(lambda: open_store(db).get(run_id))
    typer.echo(json.dumps(json_safe(run), indent=2))


@runs_app.command("compare")
def runs_compare(run_ids: Annotated[list[str], typer.Argument(help="Two or more run ids.")],
                 db: DbOption = None) -> None:
    """Metrics and attribution of runs side by side."""
    store = open_store(db)
    runs = [run_or_fail(lambda rid=rid: store.get(rid)) for rid in run_ids]
    t = Table(title="comparison")
    t.add_column("metric", style="bold")
    for r in runs:
        t.add_column(f"{r['run_id']}\n{r['mode']}", justify="right")
    for key, label, fmt in compare_rows(runs):
        t.add_row(label, *[fmt(r["summary"], key) for r in runs])
    out.print(t)


def compare_rows(runs: list[dict]):
    def get(s, key):
        return s.get(key) if s else None

    def pct(s, key):
        v = get(s, key)
        return "" if v is None else f"{v:.4%}"

    def num(s, key):
        v = get(s, key)
        return "" if v is None else (f"{v:,.4f}" if isinstance(v, float) else str(v))

    def attr(s, key):
        v = (s or {}).get("pnl_attribution", {}).get(key)
        return "" if v is None else f"{v:,.4f}"

    rows = [("share_class", "share class", num), ("start", "start", num), ("end", "end", num),
            ("total_return", "total return", pct), ("apy", "APY", pct), ("volatility", "volatility", pct),
            ("sharpe", "Sharpe", num), ("max_drawdown", "max drawdown", pct), ("final_nav", "final NAV", num),
            ("reconciliation_max_residual", "max |residual|", num)]
    types = sorted({k for r in runs for k in ((r["summary"] or {}).get("pnl_attribution") or {})})
    return rows + [(t, f"PnL {t}", attr) for t in types]


OutDir = Annotated[Path, typer.Option("-o", "--out", help="Folder to write to.")]


@runs_app.command("sql")
def runs_sql(query: Annotated[str, typer.Argument(help="A DuckDB SELECT over runs, tick_values, events, sweeps, "
                                                       "sweep_runs, stress_tests.")],
             as_json: Annotated[bool, typer.Option("--json", help="Rows as JSON objects.")] = False,
             db: DbOption = None) -> None:
    """One SELECT over the store (DuckDB; it reads no other file and writes none): the operational tables as read
    now, every run's ticks and events through views over their Parquet files."""
    import duckdb

    store = open_store(db)
    con = run_or_fail(lambda: store.sql())
    store.close()  # read: nothing of the store stays open while the query runs
    try:
        statements = con.extract_statements(query)
        if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
            err.print(f"error: QUERY: one SELECT statement, not {len(statements)} statement(s) "
                      f"({', '.join(str(s.type).rsplit('.', 1)[-1] for s in statements) or 'none'})")
            raise typer.Exit(2)
        cur = con.execute(query)
    except duckdb.Error as exc:
        err.print(f"error: {str(exc).splitlines()[0]}")
        raise typer.Exit(2) from None
    cols = [d[0] for d in cur.description or []]
    rows = cur.fetchall()
    if as_json:
        typer.echo(json.dumps([json_safe(dict(zip(cols, r, strict=True))) for r in rows]))
        return
    table = Table(*cols)
    for r in rows:
        table.add_row(*("" if v is None else str(v) for v in r))
    out.print(table)


@runs_app.command("export")
def runs_export(run_id: str, out_dir: OutDir = Path("."), db: DbOption = None) -> None:
    """Write a stored run as Parquet (ticks, events) and its summary as JSON."""
    store = open_store(db)
    run = run_or_fail(lambda: store.get(run_id))
    folder = out_dir / run_id
    folder.mkdir(parents=True, exist_ok=True)
    run_or_fail(lambda: store.ticks(run_id)).to_parquet(folder / "ticks.parquet", index=False)
    store.events(run_id).to_parquet(folder / "events.parquet", index=False)
    (folder / "summary.json").write_text(json.dumps(json_safe(run["summary"]), indent=2))
    typer.echo(str(folder))


def report(run_id: Annotated[str, typer.Argument(help="A run id, a sweep id or a stress test id.")],
           output: Annotated[Path, typer.Option("-o", "--output", help="HTML file to write.")],
           x: Annotated[str | None, typer.Option("--x", help="Sweeps: the heatmap's x param.")] = None,
           y: Annotated[str | None, typer.Option("--y", help="Sweeps: the heatmap's y param.")] = None,
           db: DbOption = None) -> None:
    """Write the self-contained HTML report of a stored run (with its ticks as CSV beside it), sweep or
    stress test."""
    from ..results.stress_report import render_stored
    from ..results.stress_store import StressStore
    from ..results.sweep_report import render as render_sweep

    store = run_or_fail(lambda: StressStore(db))
    if "-stress-" in run_id:
        test = run_or_fail(lambda: store.get_stress(run_id))
        if test["status"] != "done":
            err.print(f"error: stress test {run_id} is {test['status']}; only finished ones have a report.")
            raise typer.Exit(1)
        output.write_text(render_stored(store, test["result"]))
        typer.echo(str(output))
        return
    if store.has_sweep(run_id):
        output.write_text(run_or_fail(lambda: render_sweep(store.sweep_result(run_id), x, y)))
        typer.echo(str(output))
        return
    run = run_or_fail(lambda: store.get(run_id))
    if run["status"] != "done":
        err.print(f"error: run {run_id} is {run['status']}; only finished runs have a report.")
        raise typer.Exit(1)
    write_report(output, run["summary"], store.ticks(run_id), store.events(run_id), run["config"])
    typer.echo(str(output))


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def serve(host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="Port.")] = 8000,
          data: Annotated[Path | None, typer.Option(help="Dataset for API runs (else $BASISKIT_DATA, sample).")] = None,
          workers: Annotated[int, typer.Option(min=1, max=256, help="Jobs of each kind run at once.")] = 2,
          tokens: Annotated[Path | None, typer.Option(help="`ROLE TOKEN` lines (roles: read, run, trade); else "
                                                      "$BASISKIT_TOKENS, else a file beside the database, created "
                                                      "on first start with one run+trade token.")] = None,
          allowed_host: Annotated[list[str] | None, typer.Option(
              help="A Host name the server answers (repeatable; required with a --host other than loopback).")] = None,
          cors_origin: Annotated[list[str] | None, typer.Option(help="A browser origin allowed to call the API "
                                                                "(repeatable; none by default).")] = None,
          ray_address: Annotated[str | None, typer.Option(help="The Ray cluster sweeps with backend ray use.")] = None,
          ray_local: Annotated[bool, typer.Option(help="Without --ray-address, let sweeps with backend ray start a "
                                                  "Ray on this machine (it listens on every interface, guarded by "
                                                  "Ray's token only).")] = False,
          max_workers: Annotated[int, typer.Option(min=1, help="Most worker processes one sweep may ask for.")]
          = ServiceLimits.max_workers,
          max_sweep_runs: Annotated[int, typer.Option(min=1, help="Most runs in one sweep.")]
          = ServiceLimits.max_sweep_runs,
          max_keep_ticks_runs: Annotated[int, typer.Option(min=0, help="Most runs of a sweep that keep their ticks.")]
          = ServiceLimits.max_keep_ticks_runs,
          max_body_bytes: Annotated[int, typer.Option(min=1024, help="Largest request body.")]
          = ServiceLimits.max_body_bytes,
          queue_backtests: Annotated[int, typer.Option(min=0, help="Backtests waiting beyond those running.")]
          = ServiceLimits.queue_backtests,
          queue_sweeps: Annotated[int, typer.Option(min=0, help="Sweeps waiting beyond those running.")]
          = ServiceLimits.queue_sweeps,
          queue_stress: Annotated[int, typer.Option(min=0, help="Stress tests waiting beyond those running.")]
          = ServiceLimits.queue_stress,
          docs: Annotated[bool, typer.Option(help="Serve /docs and /redoc (Swagger UI and ReDoc load their "
                                             "scripts from a CDN into the service's origin).")] = False,
          db: DbOption = None) -> None:
    """Start the HTTP API and the web dashboard (every path but /health and the dashboard needs a token)."""
    import uvicorn

    from ..api.app import create_app
    from ..api.auth import ensure_tokens
    from ..results.db import default_db_path

    hosts = tuple(allowed_host or ())
    if host not in LOOPBACK and not hosts:
        err.print(f"error: --host {host} answers beyond this machine: name the Host names it may answer with "
                  "--allowed-host (e.g. --allowed-host basiskit.internal)")
        raise typer.Exit(2)
    found, created = run_or_fail(lambda: ensure_tokens(tokens, db or default_db_path()))
    if created:
        err.print(f"created a token of the run and trade roles in {found.path} (owner-only); send it as "
                  "`Authorization: Bearer TOKEN`")
    limits = ServiceLimits(max_workers=max_workers, max_sweep_runs=max_sweep_runs,
                           max_keep_ticks_runs=max_keep_ticks_runs, max_body_bytes=max_body_bytes, running=workers,
                           queue_backtests=queue_backtests, queue_sweeps=queue_sweeps, queue_stress=queue_stress,
                           ray_local=ray_local)
    allowed = hosts + (() if hosts and host not in LOOPBACK else ("127.0.0.1", "localhost", "[::1]"))
    if host not in LOOPBACK:
        allowed += (host,)
    app = create_app(found, db_path=db, data_dir=data, workers=workers, limits=limits, allowed_hosts=allowed,
                     ray_address=ray_address, cors_origins=tuple(cors_origin or ()), docs=docs)
    uvicorn.run(app, host=host, port=port, log_level="info")
