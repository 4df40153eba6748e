"""The basiskit command line: a thin shell over the same functions the API uses, one module per
command group (backtest, data, runs, sweeps, stress, paper, live, chain) and shared output helpers in output.py."""

from __future__ import annotations

import os

import typer

from .backtest import backtest, modes
from .capacity import capacity
from .chain import chain_app
from .data import data_app
from .live import live_app
from .paper import paper_app
from .runs import report, runs_app, serve
from .stress import stress
from .sweeps import sweep, sweeps_app

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Backtest the fund's basis strategies.")


@app.callback()
def _owner_only() -> None:
    # every file a command creates (stores and their journals, tokens, results, Ray's session files) is the
    # owner's alone: a store holds positions, orders and alert outboxes
    os.umask(0o077)


app.command()(backtest)
app.command()(sweep)
app.command()(stress)
app.command()(capacity)
app.command()(modes)
app.add_typer(data_app, name="data")
app.add_typer(runs_app, name="runs")
app.add_typer(sweeps_app, name="sweeps")
app.add_typer(paper_app, name="paper")
app.add_typer(live_app, name="live")
app.add_typer(chain_app, name="chain")
app.command()(report)
app.command()(serve)

__all__ = ["app"]
