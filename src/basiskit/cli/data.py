"""`basiskit data check`, `basiskit data sample` and `basiskit data fetch`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..data.dataset import ENV_VAR, SAMPLE_DIR, Dataset
from .output import epoch_option, err, out, run_or_fail

data_app = typer.Typer(no_args_is_help=True, help="Check datasets and build the embedded sample.")


@data_app.command("check")
def data_check(directory: Annotated[Path, typer.Argument(help="A dataset folder with MANIFEST.json.")]) -> None:
    """Validate every series of a dataset and print its coverage."""
    from ..data.check import check_dataset

    rows = run_or_fail(lambda: check_dataset(Dataset(directory)))
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
    from ..data.sample import build_sample

    src = source or (Path(os.environ[ENV_VAR]) if os.environ.get(ENV_VAR) else None)
    if src is None:
        err.print(f"error: pass --source DIR (the full dataset) or set {ENV_VAR}.")
        raise typer.Exit(2)
    written = run_or_fail(lambda: build_sample(Dataset(src), dest or SAMPLE_DIR, start, end))
    out.print(f"sample written to {dest or SAMPLE_DIR}: {written['files']} files, {written['bytes']:,} bytes")


@data_app.command("fetch")
def data_fetch(
    dest: Annotated[
        Path, typer.Option("--out", help="The dataset folder to extend (MANIFEST.json beside its series).")
    ],
    since: Annotated[str | None, typer.Option(help="Fetch nothing older than this (ISO 8601 UTC).")] = None,
    until: Annotated[str | None, typer.Option(help="Up to this time (default: now).")] = None,
    series: Annotated[list[str] | None, typer.Option("--series", help="Only this series (repeatable).")] = None,
    rpc_url: Annotated[
        str | None, typer.Option(help="Ethereum RPC URL: also extend the Aave reserves and gas.")
    ] = None,
) -> None:
    """Append the rows published since each series' last row (exchanges via ccxt, chain via web3), update
    MANIFEST.json and validate the folder; a second run with nothing new changes nothing."""
    import time

    from ..data.fetch import fetch_dataset

    def work():
        chain = None
        if rpc_url:
            from ..connectors.chain import ChainClient

            chain = ChainClient.from_url(rpc_url)
        end = epoch_option(until, "--until") if until else int(time.time())
        return fetch_dataset(
            dest,
            end,
            series or None,
            epoch_option(since, "--since") if since else None,
            chain=chain,
            progress=lambda name, n: err.print(f"{name}: {n} new rows"),
        )

    appended = run_or_fail(work)
    total = sum(appended.values())
    out.print(
        f"{dest}: {total} rows appended to {sum(1 for n in appended.values() if n)} of {len(appended)} series"
        + ("" if total else " (nothing new)")
    )


@data_app.command("fit-rates")
def data_fit_rates(
    source: Annotated[Path | None, typer.Option(help="Full dataset (default: $BASISKIT_DATA).")] = None,
    dest: Annotated[Path | None, typer.Option("--out", help="Where to write (default: the package's file).")] = None,
) -> None:
    """Fit the Aave v3 rate strategies and reserve factors from the reserve snapshots, check them, write them."""
    import json

    from ..venues import rate_fit
    from ..venues.rate_strategy import shipped_path

    src = source or (Path(os.environ[ENV_VAR]) if os.environ.get(ENV_VAR) else None)
    if src is None:
        err.print(f"error: pass --source DIR (the full dataset) or set {ENV_VAR}.")
        raise typer.Exit(2)
    dataset = run_or_fail(lambda: Dataset(src))
    doc = run_or_fail(lambda: rate_fit.fit_all(dataset))
    t = Table(title="fitted Aave v3 rate strategies against the snapshots (APR, bp)")
    for col in ("reserve", "strategies", "checked", "changing", "borrow median", "borrow p95", "supply median",
                "supply p95"):
        t.add_column(col, justify="left" if col == "reserve" else "right")
    for symbol in doc["reserves"]:
        c = rate_fit.check_reserve(dataset, symbol, doc)
        doc["reserves"][symbol]["check"] = c
        t.add_row(symbol, str(len(doc["reserves"][symbol]["strategies"])), f"{c['checked']}/{c['snapshots']}",
                  str(c["changing"]), f"{c['borrow_median_bp']:.3f}", f"{c['borrow_p95_bp']:.2f}",
                  f"{c['supply_median_bp']:.3f}", f"{c['supply_p95_bp']:.2f}")
    path = dest or shipped_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    out.print(t)
    out.print(f"written to {path}")
