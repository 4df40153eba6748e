"""What every command shares: the consoles, error exits, the progress bar, the --db option."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from ..errors import BasiskitError, ConfigError
from ..results.db import RunStore

# Off a terminal (pipes, CI logs) rich would cut tables at 80 columns: give them room instead.
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
out = Console(width=None if sys.stdout.isatty() else 160)

DbOption = Annotated[str | None, typer.Option(
    "--db", help="The store: a file (SQLite) or a postgresql:// URL (default: $BASISKIT_DB, else basiskit.db in the "
    "user's data dir).")]
# The options every run-making command shares (backtest, sweep, stress).
StartOption = Annotated[str | None, typer.Option(help="Window start, ISO 8601 UTC (default: data start).")]
EndOption = Annotated[str | None, typer.Option(help="Window end, ISO 8601 UTC, its hour included (default: data end).")]
CapitalOption = Annotated[float | None, typer.Option(help="Initial capital in share-class units.")]
SetOption = Annotated[list[str] | None, typer.Option("--set", help="dotted.key=value override (repeatable).")]
ConfigOption = Annotated[list[Path] | None, typer.Option(help="YAML deep-merged over the preset.")]
DataOption = Annotated[Path | None, typer.Option(help="Dataset folder (else $BASISKIT_DATA, else the sample).")]
OutOption = Annotated[Path, typer.Option("--out", help="Folder for run results.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object and nothing else.")]
T = TypeVar("T")


def fail(exc: BasiskitError) -> None:
    """Print the error verbatim on stderr; exit 2 for a config error, 1 otherwise."""
    err.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, highlight=False, soft_wrap=True)
    raise typer.Exit(2 if isinstance(exc, ConfigError) else 1)


def epoch_option(text: str, option: str) -> int:
    """Epoch seconds of a time option, or a config error naming the option."""
    from ..data.timeutil import to_epoch

    try:
        return to_epoch(text)
    except ValueError as exc:
        problem = f"must be an ISO 8601 UTC time such as 2024-06-01T00:00:00Z ({exc})"
        raise ConfigError([(option, text, problem)]) from exc


def orders_table(rows: list[dict], title: str, extra: tuple[str, ...] = ()):
    """Order intents (paper or live) as a table: time, venue, instrument, side, size, price seen, `extra` columns
    (a live order's status, fill, client id), reason."""
    from rich.table import Table

    from ..data.timeutil import iso

    t = Table(title=title)
    for col in ("time", "venue", "instrument", "side", "size", "price", *extra, "reason"):
        t.add_column(col)
    for r in rows:
        more = [f"{r[c]:,.6f}" if isinstance(r[c], float) else "" if r[c] is None else str(r[c]) for c in extra]
        t.add_row(iso(int(r["timestamp"].timestamp())), r["venue"], r["instrument"], r["side"], f"{r['size']:,.6f}",
                  "" if r["price"] is None else f"{r['price']:,.2f}", *more, r["reason"])
    return t


def run_or_fail(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except BasiskitError as exc:
        fail(exc)


def store(db: Path | None) -> RunStore:
    return run_or_fail(lambda: RunStore(db))


class progress:
    """A rich progress bar on stderr (label, done/total and unit), or nothing when not on a terminal;
    the context value is `advance(done, total)` or None."""

    def __init__(self, enabled: bool, label: str = "backtest", unit: str = "h"):
        self.enabled = enabled
        self.label = label
        self.unit = unit

    def __enter__(self):
        if not self.enabled:
            return None
        count = TextColumn(f"{{task.completed}}/{{task.total}} {self.unit}")
        self.bar = Progress(TextColumn(self.label), BarColumn(), count, TimeRemainingColumn(), console=err,
                            transient=True)
        self.bar.start()
        task = self.bar.add_task("run", total=None)
        return lambda done, total: self.bar.update(task, completed=done, total=total)

    def __exit__(self, *exc):
        if self.enabled:
            self.bar.stop()
