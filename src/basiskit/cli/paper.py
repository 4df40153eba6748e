"""`basiskit paper run|resume|status|orders|list`: paper trading on the backtest's engine."""

from __future__ import annotations

import json
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..config.loading import run_overrides
from ..data.dataset import Dataset, resolve_data_dir
from ..engine.runconfig import load_run_config
from ..errors import BasiskitError
from ..paper.session import FEEDS, PaperOptions, PaperSession, live_window
from ..paper.status import session_status
from ..paper.store import PaperStore
from ..results.db import SESSION_STORE_WAIT_S, json_safe
from ..sessions.secrets import reference
from ..sessions.stopping import STOP
from .backtest import print_summary
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
    epoch_option,
    err,
    fail,
    orders_table,
    out,
    progress,
    run_or_fail,
)

paper_app = typer.Typer(
    no_args_is_help=True, help="Paper trading: the engine on a live clock and feeds; no real order is sent."
)
SpeedOption = Annotated[
    float | None, typer.Option(help="Replay pace: simulated hours per wall second (0: as fast as it can).")
]


@paper_app.command("run")
def run(
    mode: Annotated[str, typer.Argument(help="A preset name (see `basiskit modes`).")],
    feed: Annotated[str, typer.Option(help=f"Where the hours come from: {' | '.join(FEEDS)}.")] = "replay",
    speed: Annotated[
        float, typer.Option(help="Replay pace: simulated hours per wall second (0: as fast as it can).")
    ] = 0.0,
    session: Annotated[str | None, typer.Option(help="Session name (default MODE-YYYYmmddTHHMMSS).")] = None,
    rpc_url: Annotated[str | None, typer.Option(help="Ethereum RPC URL for the chain feed (--feed live); not "
                                                "stored: resume needs it again (or use --rpc-url-env).")] = None,
    rpc_url_env: Annotated[str | None, typer.Option(help="The environment variable holding the RPC URL (stored "
                                                    "by name, so resume finds it).")] = None,
    alert_webhook: Annotated[str | None, typer.Option(help="POST every alert as JSON to this URL; not stored: "
                                                      "resume needs it again (or use --alert-webhook-env).")] = None,
    alert_webhook_env: Annotated[str | None, typer.Option(help="The environment variable holding the webhook URL "
                                                          "(stored by name).")] = None,
    alert_hf: Annotated[
        float | None, typer.Option(help="Alert when the health factor falls below (default: leverage.hf_floor).")
    ] = None,
    alert_margin_ratio: Annotated[
        float | None, typer.Option(help="Alert at this margin ratio (default: risk.margin_ratio_alert).")
    ] = None,
    alert_net_delta: Annotated[
        float | None, typer.Option(help="Alert at this |net delta| / NAV (default: risk.max_net_delta_pct).")
    ] = None,
    alert_liq_distance: Annotated[
        float | None, typer.Option(help="Alert below this liquidation distance (default 0.10).")
    ] = None,
    alert_depeg: Annotated[
        float | None, typer.Option(help="Alert when the LST trades this far under its rate (default 0.01).")
    ] = None,
    capture: Annotated[
        Path | None, typer.Option(help="Folder a live session writes what it observed to (default OUT/SESSION-data).")
    ] = None,
    start: StartOption = None,
    end: EndOption = None,
    capital: CapitalOption = None,
    set_: SetOption = None,
    config: ConfigOption = None,
    data: DataOption = None,
    out_dir: OutOption = Path("runs"),
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Run MODE forward hour by hour on a feed, as it would trade, committing every tick; at the end of a
    finite replay print the backtest's summary."""
    signal.signal(signal.SIGTERM, STOP.handler)  # a service manager's stop: committed, status "stopped"
    try:
        if feed == "live":
            start, end = live_window(start, end)
        root, _ = resolve_data_dir(data)
        cfg = load_run_config(mode, config or [], set_ or [], run_overrides(start, end, capital), Dataset(root))
        thresholds = {
            "health_factor": alert_hf,
            "margin_ratio": alert_margin_ratio,
            "net_delta_pct": alert_net_delta,
            "liq_distance": alert_liq_distance,
            "lst_depeg": alert_depeg,
        }
        name = session or f"{mode}-{datetime.now(UTC):%Y%m%dT%H%M%S}"
        rpc_url, rpc_ref = reference(rpc_url, rpc_url_env, "rpc-url")
        alert_webhook, webhook_ref = reference(alert_webhook, alert_webhook_env, "alert-webhook")
        options = PaperOptions(
            feed=feed,
            data=str(root),
            speed=speed,
            rpc_url=rpc_url,
            rpc_url_ref=rpc_ref,
            webhook=alert_webhook,
            webhook_ref=webhook_ref,
            thresholds={k: v for k, v in thresholds.items() if v is not None},
            out=str(out_dir),
            capture=str(capture or out_dir / f"{name}-data") if feed == "live" else None,
        )
        store = PaperStore(db, lock_timeout=SESSION_STORE_WAIT_S)  # a session waits no longer: it keeps the hour
        if not as_json:
            err.print(f"paper session [bold]{name}[/] ({feed}): resume with `basiskit paper resume {name}`")
        _finish(PaperSession(store, name, cfg, options, quiet=False, progress=None), as_json)
    except BasiskitError as exc:
        fail(exc)
    except KeyboardInterrupt:  # stopped while it was starting: nothing changed
        err.print("paper session stopped before it started")
        raise typer.Exit(130) from None


@paper_app.command("resume")
def resume(
    name: Annotated[str, typer.Argument(help="The session to continue.")],
    speed: SpeedOption = None,
    rpc_url: Annotated[str | None, typer.Option(help="The RPC URL again (a session started with --rpc-url).")] = None,
    alert_webhook: Annotated[str | None, typer.Option(help="The webhook URL again (a session started with "
                                                      "--alert-webhook).")] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Continue a session from its last committed tick (after a crash or a stop): nothing lost, nothing doubled."""
    signal.signal(signal.SIGTERM, STOP.handler)
    try:
        resumed = PaperSession.resume(PaperStore(db, lock_timeout=SESSION_STORE_WAIT_S), name, speed, rpc_url=rpc_url,
                                      webhook=alert_webhook)
        _finish(resumed, as_json)
    except BasiskitError as exc:
        fail(exc)
    except KeyboardInterrupt:  # stopped while it was starting: nothing changed
        err.print(f"paper session {name} stopped; continue it with `basiskit paper resume {name}`")
        raise typer.Exit(130) from None


def _finish(session: PaperSession, as_json: bool) -> None:
    try:
        with progress(enabled=not as_json and sys.stderr.isatty(), label=f"paper {session.name}") as advance:
            session.progress = advance
            output = session.run()
    except KeyboardInterrupt:
        err.print(f"paper session {session.name} stopped; continue it with `basiskit paper resume {session.name}`")
        raise typer.Exit(130) from None
    summary = output.summary
    (Path(summary["results_dir"]) / "summary.json").write_text(json.dumps(json_safe(summary), indent=2))
    if as_json:
        sys.stdout.write(json.dumps(json_safe(summary)) + "\n")
    else:
        print_summary(summary)


@paper_app.command("status")
def status(
    name: Annotated[str, typer.Argument(help="A session name (see `basiskit paper list`).")],
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Positions, NAV in both units, health factor, margin ratios, liquidation distances, alerts, last tick."""
    s = run_or_fail(lambda: session_status(PaperStore(db), name))
    if as_json:
        sys.stdout.write(json.dumps(json_safe(s), default=str) + "\n")
        return
    t = Table(title=f"paper session {name}: {s['status']} ({s['feed']}, {s['mode']})", show_header=False)
    t.add_column("what", style="bold")
    t.add_column("value", justify="right")
    t.add_row("last tick", f"{s['last_tick']} at {s['last_ts']} of {s['n_points']}")
    if s["nav"] is not None:
        t.add_row("NAV", f"{s['nav']:,.6f} {s['share_class']}")
        t.add_row("NAV (USD)", f"{s['nav_usd']:,.2f} USD")
    for key, qty in s["positions"].items():
        t.add_row(f"  {key}", f"{qty:,.6f}")
    risk = s["risk"]
    if risk.get("health_factor") is not None:
        t.add_row("health factor", f"{risk['health_factor']:.4f}")
    for venue, r in risk.get("margin_ratio", {}).items():
        t.add_row(f"margin ratio {venue}", f"{r:.4f}")
    for venue, d in risk.get("liq_distance", {}).items():
        t.add_row(f"liquidation distance {venue}", "n/a" if d is None else f"{d:.2%}")
    if risk.get("net_delta_pct") is not None:
        t.add_row("|net delta| / NAV", f"{risk['net_delta_pct']:.4%}")
    t.add_row("alerts", str(s["alert_count"]))
    for a in s["alerts"]:
        t.add_row(f"  {a['timestamp']}", f"{a['kind']}: {a['message']}")
    if s["outbox"] is not None:
        o = s["outbox"]
        t.add_row("webhook outbox", f"{o['pending']} pending, {o['delivered']} delivered"
                  + (f" (last error: {o['last_error']})" if o["last_error"] else ""))
    if s["error"]:
        t.add_row("error", s["error"])
    out.print(t)


@paper_app.command("orders")
def orders(
    name: Annotated[str, typer.Argument(help="A session name.")],
    since: Annotated[str | None, typer.Option(help="Only orders at or after this time (ISO 8601 UTC).")] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """The order intents (venue, instrument, side, size, price seen, reason) an operator could place by hand."""

    def load():
        when = datetime.fromtimestamp(epoch_option(since, "--since"), UTC) if since else None
        return PaperStore(db).table(name, "orders", since=when)

    rows = run_or_fail(load)
    if as_json:
        sys.stdout.write(json.dumps(json_safe(rows), default=str) + "\n")
        return
    out.print(orders_table(rows, f"order intents of {name}" + (f" since {since}" if since else "")))


@paper_app.command("list")
def list_sessions(as_json: JsonOption = False, db: DbOption = None) -> None:
    """Every paper session in the store, newest first."""
    rows = run_or_fail(lambda: PaperStore(db).sessions())
    if as_json:
        sys.stdout.write(json.dumps(json_safe(rows), default=str) + "\n")
        return
    t = Table(title="paper sessions")
    for col in ("session", "mode", "feed", "status", "last tick", "of"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["name"], r["mode"], r["feed"], r["status"], str(r["last_ts"] or "-"), str(r["n_points"]))
    out.print(t)
