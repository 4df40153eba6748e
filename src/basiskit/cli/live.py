"""`basiskit live ...`: the fund's real accounts. `live accounts` reads what the chain says the wallets of
accounts.yaml hold (wallet tokens, Aave supplies and debts, Aave's own health factor); `live run` reads every
account each hour, explains the change, plans the strategy's orders on that book, sends them with --execute and
commits it all; `live status`, `live orders` and `live list` show the sessions; `live approve|reject|kill|resume`
govern the sending."""

from __future__ import annotations

import json
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..data.dataset import Dataset, resolve_data_dir
from ..engine.runconfig import load_run_config
from ..errors import BasiskitError, ConfigError
from ..live.accounts import accounts_path, load_accounts
from ..results.db import json_safe
from ..sessions.secrets import reference
from ..sessions.stopping import STOP
from .output import (
    ConfigOption,
    DataOption,
    DbOption,
    JsonOption,
    SetOption,
    epoch_option,
    err,
    fail,
    orders_table,
    out,
    run_or_fail,
)

live_app = typer.Typer(no_args_is_help=True, help="The fund's real accounts, read from the venues and the chain.")


AccountsOption = Annotated[Path | None, typer.Option("--accounts", help="accounts.yaml (else $BASISKIT_ACCOUNTS).")]


def connect(found, rpc_url: str | None, session=None):
    """The chain client (checked to serve accounts.yaml's chain) and one ExchangeAccount per exchange entry."""
    from ..connectors.chain import ChainClient, where_of
    from ..connectors.exchanges import ExchangeAccount
    from ..strategies.rules import ASSETS

    chain = None
    if found.wallets:
        if not rpc_url:
            raise ConfigError([("--rpc-url", None, "reading wallets needs an Ethereum RPC URL")])
        chain = ChainClient.from_url(rpc_url, found.market())
        try:
            served = chain.chain_id()
        except Exception as exc:  # noqa: BLE001 (any transport or RPC error: the URL cannot be read)
            # only scheme, host and port: a provider's URL often carries its API key in the path or the query
            # not a configuration error (exit 1, not 2): a supervisor starts it again until the node answers
            raise BasiskitError(f"--rpc-url {where_of(rpc_url)} cannot be read ({type(exc).__name__}): check the URL "
                                "and that the node is up (a service restarts until it answers)") from None
        if served != found.chain_id:
            raise ConfigError([("chain_id", found.chain_id, f"the RPC serves chain {served}; point --rpc-url at the "
                                "chain accounts.yaml names")])
    exchanges = {c.venue: ExchangeAccount(c.venue, c.api_key.get_secret_value(), c.secret.get_secret_value(),
                                          c.password.get_secret_value() if c.password else None, list(ASSETS), session)
                 for c in found.exchanges}
    return chain, exchanges


@live_app.command("accounts")
def accounts(
    accounts_file: AccountsOption = None,
    rpc_url: Annotated[str | None, typer.Option(help="Ethereum RPC URL (the chain accounts.yaml names).")] = None,
    as_json: JsonOption = False,
) -> None:
    """What the chain says each wallet of accounts.yaml holds now: ETH, tokens, Aave supplies, debts and HF."""
    found = run_or_fail(lambda: load_accounts(accounts_path(accounts_file)))
    if not found.wallets:
        return
    client, _ = run_or_fail(lambda: connect(found.model_copy(update={"exchanges": []}), rpc_url))
    block = client.w3.eth.block_number
    held = {w.name: client.account(w.address, block) for w in found.wallets}
    if as_json:
        sys.stdout.write(json.dumps(json_safe(held)) + "\n")
        return
    for name, a in held.items():
        t = Table(title=f"wallet {name} at block {a['block']}", show_header=True)
        for col in ("asset", "wallet", "supplied", "borrowed"):
            t.add_column(col, justify="right" if col != "asset" else "left")
        t.add_row("ETH", f"{a['eth']:,.6f}", "", "")
        for asset in a["wallet"]:
            t.add_row(asset, f"{a['wallet'][asset]:,.6f}", f"{a['supplied'][asset]:,.6f}",
                      f"{a['borrowed'][asset]:,.6f}")
        aave = a["aave"]
        t.add_row("Aave HF", f"{aave['health_factor']:.4f}", f"LTV {aave['ltv']:.2%}", f"eMode {aave['emode']}")
        out.print(t)


@live_app.command("run")
def run(
    mode: Annotated[str, typer.Argument(help="The strategy mode (its risk limits and share class).")],
    accounts_file: AccountsOption = None,
    rpc_url: Annotated[str | None, typer.Option(help="Ethereum RPC URL (the chain accounts.yaml names).")] = None,
    session: Annotated[str | None, typer.Option(help="Session name (an existing one resumes).")] = None,
    ticks: Annotated[int | None, typer.Option(min=1, help="Stop after this many readings (default: run on).")]
    = None,
    every: Annotated[float, typer.Option(min=0.0, help="Seconds between readings (3600: on the hour).")] = 3600.0,
    tolerance_usd: Annotated[float, typer.Option(help="Alert on an unexplained move worth more (USD).")] = 1.0,
    alert_webhook: Annotated[str | None, typer.Option(help="POST every alert as JSON to this URL (kept until "
                                                       "delivered; the URL is not stored: give it at every start, "
                                                       "or use --alert-webhook-env).")] = None,
    alert_webhook_env: Annotated[str | None, typer.Option(help="The environment variable holding the webhook URL "
                                                           "(stored by name: the server posts a dead session's "
                                                           "alerts when it has the variable too).")] = None,
    plan: Annotated[bool, typer.Option(help="Run the mode's strategy on each reading: its decisions as order "
                                       "intents (`live orders`).")] = True,
    execute: Annotated[str, typer.Option(help="off: intents only; confirm: each batch waits for `live approve`; "
                                         "auto: sent within the config's live.* limits.")] = "off",
    kill_file: Annotated[Path | None, typer.Option(help="A file whose existence halts the session (a kill switch "
                                                   "an operator can touch).")] = None,
    exit_: Annotated[bool, typer.Option("--exit", help="Unwind: each reading's plan is the strategy's exit, every "
                                        "position freed into the wallet.")] = False,
    set_: SetOption = None,
    config: ConfigOption = None,
    data: DataOption = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Read the fund's accounts every hour, explain each holding's change (interest, funding, fees, flows, the
    session's own trades, the rest unexplained), attribute the hour's PnL, plan the strategy's orders on the book
    read, alert and commit; with --execute confirm|auto send the orders within the config's live.* limits."""
    from ..live.execution import Dispatcher, check_execute
    from ..live.lease import Lease, account_keys
    from ..live.plan import Planner
    from ..live.session import LiveLimits, LiveSession
    from ..live.store import SESSION_STORE_WAIT_S, LiveStore

    signal.signal(signal.SIGTERM, STOP.handler)
    try:
        found = load_accounts(accounts_path(accounts_file))
        dataset = Dataset(resolve_data_dir(data)[0])  # the reference: venue and risk parameters, series formats
        cfg = load_run_config(mode, config or [], set_ or [], {}, dataset)
        check_execute(execute, cfg.live)
        webhook_url, webhook_ref = reference(alert_webhook, alert_webhook_env, "alert-webhook")
        if exit_ and not plan:
            raise ConfigError([("--no-plan", True, "--exit plans the strategy's exit: drop --no-plan")])
        if execute != "off" and not plan:
            raise ConfigError([("--no-plan", True, f"--execute {execute} sends the plan's orders: drop --no-plan")])
        name = session or f"live-{mode}"
        store = LiveStore(db, lock_timeout=SESSION_STORE_WAIT_S)  # never waits longer on another process: it keeps the
        # hour in memory, alerts and reads again (live/session.py)
        # one session per wallet and exchange account: refused (exit 2, naming the holder) before anything is read
        lease = Lease(store, name, account_keys(found, store, name), cfg.live.heartbeat_s)
        lease.acquire()
        try:
            chain, exchanges = connect(found, rpc_url)
            planner = Planner(cfg, dataset, chain) if plan else None
            dispatcher = None
            if execute != "off":
                dispatcher = Dispatcher(store, name, execute, cfg.live, executors_of(found, chain, exchanges, cfg.live),
                                        kill_file)
            live = LiveSession(store, name, cfg, found, chain, exchanges, LiveLimits.for_config(cfg, tolerance_usd),
                               webhook=webhook_url, webhook_ref=webhook_ref, planner=planner, dispatcher=dispatcher,
                               unwind=exit_, lease=lease)
        except BaseException:
            lease.release()
            raise
        if not as_json:
            err.print(f"live session [bold]{name}[/]: `basiskit live status {name}` shows its last reading")

        def show(tick: dict) -> None:
            if as_json:
                sys.stdout.write(json.dumps(json_safe(tick)) + "\n")
                sys.stdout.flush()
            else:
                rec = tick["reconciliation"]
                left = f", unexplained {rec['attribution']['unexplained']:+,.2f} USD" if rec else ""
                planned = f", {tick['orders']} order intent(s)" if planner else ""
                out.print(f"tick {tick['tick']} block {tick['block']}: NAV {tick['nav_usd']:,.2f} USD{left}{planned}")

        live.run(ticks, every, show)
    except BasiskitError as exc:
        fail(exc)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


@live_app.command("status")
def status(
    name: Annotated[str, typer.Argument(help="The live session.")],
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """The session's last reading: its book, NAV, the hour explained and attributed, recent alerts."""
    from ..live.store import LiveStore

    got = run_or_fail(lambda: LiveStore(db).status(name))
    if as_json:
        sys.stdout.write(json.dumps(json_safe(got)) + "\n")
        return
    last = got["last"]
    beat = got.get("heartbeat_age_s")
    out.print(f"live session [bold]{got['name']}[/] ({got['mode']}), {got['status']}"
              + (f": {got['error']}" if got["error"] else "")
              + (f" (heartbeat {beat:.0f} s ago)" if beat is not None and got["status"] in ("running", "dead") else ""))
    if last is None:
        out.print("no reading committed yet")
        return
    out.print(f"tick {last['tick']} at {last['timestamp']} (block {last['block']}): NAV {last['nav_usd']:,.2f} USD")
    t = Table(show_header=True)
    for col in ("holding", "units", "price USD", "expected", "unexplained"):
        t.add_column(col, justify="left" if col == "holding" else "right")
    lines = {line["key"]: line for line in (last["reconciliation"] or {}).get("lines", [])}
    for key, h in last["book"]["holdings"].items():
        line = lines.get(key)
        if h["units"] or line:
            t.add_row(key, f"{h['units']:,.6f}", f"{h['price']:,.2f}", f"{line['expected']:,.6f}" if line else "",
                      f"{line['unexplained']:+,.6f}" if line else "")
    out.print(t)
    if last["reconciliation"]:
        attr = last["reconciliation"]["attribution"]
        out.print("hour attributed (USD): " + ", ".join(f"{k} {v:+,.2f}" for k, v in attr.items() if v))
    for a in got["alerts"][:10]:
        out.print(f"[yellow]ALERT[/] {a['timestamp']} {a['kind']}: {a['message']}")


@live_app.command("orders")
def orders(
    name: Annotated[str, typer.Argument(help="The live session.")],
    since: Annotated[str | None, typer.Option(help="Only intents at or after this time (ISO 8601 UTC).")] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """The orders the strategy planned on each reading (venue, instrument, side, size, price, reason) and how far
    each went (status, filled, client id): intents only unless the session runs with --execute."""
    from ..live.store import LiveStore

    def load():
        when = datetime.fromtimestamp(epoch_option(since, "--since"), UTC) if since else None
        return LiveStore(db).orders(name, since=when)

    rows = run_or_fail(load)
    if as_json:
        sys.stdout.write(json.dumps(json_safe(rows), default=str) + "\n")
        return
    rows = [r | {"plan": r["tick"]} for r in rows]  # the plan an order belongs to (`live approve --plan`)
    out.print(orders_table(rows, f"orders of live session {name}" + (f" since {since}" if since else ""),
                           extra=("plan", "status", "filled", "client_id")))


def chain_executors(found, chain, live) -> dict:
    """The on-chain executor of the one wallet with a keystore (none: on-chain orders are the operator's); `live` is
    the config's live section (its gas caps)."""
    from ..live.chain_executor import ChainExecutor

    signing = [w for w in found.wallets if w.keystore is not None]
    if len(signing) > 1:
        raise ConfigError([("wallets", ", ".join(w.name for w in signing), "one wallet signs a session's "
                            "transactions: keep one keystore")])
    if not signing:
        return {}
    wallet = signing[0]
    aave = found.aave
    ex = ChainExecutor(chain, found.signer(wallet), wallet.name, live.max_gas_gwei,
                       aave.lst_contracts if aave else None, flash_receiver=aave.flash_receiver if aave else None,
                       safety_gas_gwei=live.safety_gas_gwei)
    return {"aave_v3": ex, "ethereum": ex}


def executors_of(found, chain, exchanges: dict, live) -> dict:
    """Every executor a session sends through: a perp executor per exchange account, the chain's for the wallet."""
    from ..live.execution import PerpExecutor

    executors = {venue: PerpExecutor(account, live.max_slippage_bps or 0.0) for venue, account in exchanges.items()}
    if chain is not None and live.max_gas_gwei is not None:
        executors |= chain_executors(found, chain, live)
    return executors


IdsArgument = Annotated[list[str] | None, typer.Argument(help="Client ids of the plan (default: every order of the "
                                                        "plan awaiting approval).")]
PlanOption = Annotated[int, typer.Option("--plan", help="The plan (its tick, as `live orders` shows) whose orders "
                                                         "are decided: approving it never approves another.")]


def _decide(name: str, plan: int, ids: list[str] | None, approve: bool, db: Path | None) -> None:
    from ..live.store import LiveStore

    done = run_or_fail(lambda: LiveStore(db).decide(name, plan, ids or None, approve, "cli"))
    out.print(f"{len(done)} order(s) of plan {plan} {'approved' if approve else 'rejected'}"
              + (": the running session sends them at its next check (seconds), after planning again on a fresh "
                 "reading when its reading is older than live.fresh_reading_seconds (your approval stands if the "
                 "orders are the same)" if approve and done else ""))


@live_app.command("approve")
def approve(name: Annotated[str, typer.Argument(help="The live session.")], plan: PlanOption,
            ids: IdsArgument = None, db: DbOption = None) -> None:
    """Approve orders of one plan awaiting approval (`--execute confirm`): all of that plan's, or the client ids."""
    _decide(name, plan, ids, True, db)


@live_app.command("reject")
def reject(name: Annotated[str, typer.Argument(help="The live session.")], plan: PlanOption,
           ids: IdsArgument = None, db: DbOption = None) -> None:
    """Reject orders of one plan awaiting approval: they are never sent (the next plan decides again)."""
    _decide(name, plan, ids, False, db)


@live_app.command("kill")
def kill(name: Annotated[str, typer.Argument(help="The live session.")], accounts_file: AccountsOption = None,
         db: DbOption = None) -> None:
    """Halt the session: it cancels its open orders and sends nothing more until `live resume`. When the session is
    not running (dead, stopped, failed), this command cancels its open exchange orders itself (the accounts file:
    --accounts, else the one the session ran with; its keys from the environment)."""
    from ..live.store import LiveStore

    store = LiveStore(db)
    run_or_fail(lambda: store.kill(name, "basiskit live kill"))
    status = run_or_fail(lambda: store.status(name))
    alive = store.liveness(name)
    if alive["heartbeat_age_s"] is not None and not alive["dead"]:  # its process runs: it carries the kill out
        out.print(f"live session {name} halted: its open orders are cancelled at its next check (seconds); "
                  f"`basiskit live resume {name}` lets it send again")
        return
    run_or_fail(lambda: _kill_here(store, name, accounts_file or Path(status["accounts"])))
    out.print(f"live session {name} ({status['status']}) halted; its open exchange orders are cancelled (see `basiskit "
              f"live orders {name}`); `basiskit live resume {name}` lets it send again")


def _kill_here(store, name: str, path: Path, sessions: dict | None = None) -> None:
    """A kill carried out by this process for a session that is not running: every open order of ours cancelled at
    each exchange account of its accounts file (nothing rests on the chain). `sessions`: venue -> an HTTP session
    for its account (ccxt's transport seam)."""
    from ..config.models import LiveConfig
    from ..connectors.exchanges import ExchangeAccount
    from ..live.execution import Dispatcher, PerpExecutor
    from ..strategies.rules import ASSETS

    found = load_accounts(path)
    executors = {c.venue: PerpExecutor(ExchangeAccount(c.venue, c.api_key.get_secret_value(),
                                                       c.secret.get_secret_value(),
                                                       c.password.get_secret_value() if c.password else None,
                                                       list(ASSETS), (sessions or {}).get(c.venue)), 0.0)
                 for c in found.exchanges}
    d = Dispatcher(store, name, "off", LiveConfig(), executors)
    alerts = d.kill("basiskit live kill (the session was not running)")
    store.add_alerts(name, alerts)
    if d.kill_failed:  # the session stays halted; run the kill again (or the session, restarted, cancels them)
        raise BasiskitError("open orders NOT cancelled at " + "; ".join(f"{v} ({w})" for v, w in d.kill_failed.items())
                            + f": run `basiskit live kill {name}` again")
    store.kill_carried_out(name)


@live_app.command("resume")
def resume(name: Annotated[str, typer.Argument(help="The live session.")], db: DbOption = None) -> None:
    """Lift a kill: the session sends again (orders halted by the kill stay unsent)."""
    from ..live.store import LiveStore

    run_or_fail(lambda: LiveStore(db).resume(name))
    out.print(f"live session {name} may send again")


@live_app.command("list")
def list_sessions(as_json: JsonOption = False, db: DbOption = None) -> None:
    """Every live session: mode, status, last tick and NAV."""
    from ..live.store import LiveStore

    rows = run_or_fail(lambda: LiveStore(db).sessions())
    if as_json:
        sys.stdout.write(json.dumps(json_safe(rows)) + "\n")
        return
    t = Table(show_header=True)
    for col in ("name", "mode", "status", "last tick", "NAV USD"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["name"], r["mode"], r["status"], str(r["last_tick"] if r["last_tick"] is not None else "-"),
                  f"{r['nav_usd']:,.2f}" if r["nav_usd"] is not None else "-")
    out.print(t)
