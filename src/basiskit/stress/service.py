"""`basiskit stress`: the baseline and the shocked run on the same window, side by side; with --grid, the
liquidation map over one or two axes, through the sweep machinery. The function the CLI and the API call."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from ..config.loading import Overrides, deep_merge, raw_run_config, run_overrides
from ..config.models import utc_hour
from ..data.dataset import Dataset
from ..data.timeutil import iso
from ..engine.runconfig import validate_run_config
from ..errors import ConfigError
from ..results.service import RunOutput, run_and_store
from ..results.sweep_store import SweepStore
from ..sweeps.service import sweep
from ..sweeps.size import value_count
from ..sweeps.spec import MAX_GRID, SweepRequest, parse_param
from .scenarios import combine

HURTS = {  # the liquidation distances (tick columns liq_distance:*) each shock can shrink
    "lst_rate_shock": lambda s: ["aave_v3"], "borrow_rate_spike": lambda s: ["aave_v3"],
    "eth_price_shock": lambda s: ["perp"] if s.get("magnitude", 0) > 0 else [],
    "btc_price_shock": lambda s: ["perp"] if s.get("magnitude", 0) > 0 else [],
    "venue_outage": lambda s: s.get("venues") or [], "funding_flip": lambda s: s.get("venues") or ["perp"],
}


class StressRequest(BaseModel):
    """Every option of `basiskit stress`, as the API takes it (POST /stress)."""

    model_config = ConfigDict(extra="forbid")

    mode: str = Field(max_length=100)
    scenarios: list[str] = Field(default_factory=list, max_length=10,
                                 description="library names (GET /scenarios; files too, from the CLI)")
    custom: list[Overrides] = Field(default_factory=list, max_length=20,
                                         description="shocks given in full, as a scenario file's `shocks`")
    shocks: list[str] = Field(default_factory=list, max_length=50, description="KEY=VALUE or NAME.KEY=VALUE")
    at: str = Field(description="when the shocks start: ISO 8601 UTC, or 'worst' (the baseline's hour closest "
                    "to liquidation for the positions the shocks can hurt)")
    grid: list[str] = Field(default_factory=list, max_length=2, description="KEY=V1,V2,... over shock or config keys")
    start: str | None = None
    end: str | None = None
    capital: float | None = None
    sets: list[str] = Field(default_factory=list, max_length=200)
    config_overrides: Overrides = Field(default_factory=dict)


class StressCancelled(Exception):
    """The stress test was cancelled by request (checked between its runs and inside its grid)."""


def stress(req: StressRequest, data_dir: Path, dataset: Dataset, store: SweepStore, source: str,
           out_dir: Path | None, config_files: list | tuple = (), files: bool = True,
           cancelled: Callable[[], bool] = lambda: False,
           on_part: Callable[[str, str], None] = lambda part, ident: None) -> dict:
    """Run the baseline and the scenario (and the grid, if any); the comparison. `on_part(part, id)` is told each
    run and sweep as soon as it is stored (baseline_run_id, scenario_run_id, grid_sweep_id, unshocked_sweep_id)."""

    def go_on() -> None:
        if cancelled():
            raise StressCancelled("cancelled by request")

    base_raw = _base_raw(req, config_files)
    worst = req.at == "worst"
    shocks = combine(req.scenarios, req.shocks, None if worst else req.at, req.custom, files)
    baseline_cfg = validate_run_config(base_raw, dataset)
    label = f"{data_dir} (stress {source})"
    go_on()
    baseline = run_and_store(baseline_cfg, data_dir, label, store, source, out_dir, dataset=dataset,
                             progress=lambda k, n: go_on())  # a cancel stops a long run between its hours
    on_part("baseline_run_id", baseline.summary["run_id"])
    go_on()
    at = worst_hour(baseline, shocks) if worst else req.at
    for shock in shocks:
        shock.setdefault("at", at)
    scenario_raw = copy.deepcopy(base_raw) | {"stress": shocks}
    scenario_cfg = validate_run_config(scenario_raw, dataset)
    scenario = run_and_store(scenario_cfg, data_dir, label, store, source, out_dir, dataset=dataset,
                             progress=lambda k, n: go_on())
    on_part("scenario_run_id", scenario.summary["run_id"])
    result = compare(baseline, scenario, scenario_cfg.model_dump(mode="json")["stress"])
    if req.grid:
        go_on()
        result["grid"] = liquidation_map(req, shocks, baseline, data_dir, dataset, store, config_files, cancelled,
                                         on_part)
        go_on()  # a grid cut short is not a liquidation map
    return result


def _base_raw(req: StressRequest, config_files) -> dict:
    """The unshocked run config as raw data (its `stress` emptied)."""
    raw = raw_run_config(req.mode, list(config_files), req.sets,
                         run_overrides(req.start, req.end, req.capital, req.config_overrides))
    return raw | {"stress": []}


def worst_hour(baseline: RunOutput, shocks: list[dict]) -> str:
    """The baseline's hour of smallest liquidation distance over the positions the shocks can hurt."""
    ticks = baseline.ticks
    wanted = {v for s in shocks for v in HURTS.get(s.get("type"), lambda s: [])(s)}
    columns = [c for c in ticks.columns if c.startswith("liq_distance:") and (
        c.split(":", 1)[1] in wanted or ("perp" in wanted and c != "liq_distance:aave_v3"))]
    values = ticks[columns].to_numpy(dtype=float) if columns else np.empty((len(ticks), 0))
    if not columns or not np.isfinite(values).any():
        raise ConfigError([("at", "worst", "no position of this run can be hurt by these shocks toward liquidation "
                            f"(distances it reports: {[c for c in ticks.columns if c.startswith('liq_distance:')]}); "
                            "give --at a time instead")])
    k = int(np.unravel_index(np.nanargmin(values), values.shape)[0])
    return ticks["timestamp"].iloc[k].strftime("%Y-%m-%dT%H:%M:%SZ")


def compare(baseline: RunOutput, scenario: RunOutput, shocks: list[dict]) -> dict:
    b, s = baseline.summary, scenario.summary
    nav_b, nav_s = baseline.ticks["nav"].to_numpy(), scenario.ticks["nav"].to_numpy()
    times = scenario.ticks["timestamp"]
    start = min(pd.Timestamp(sh["at"]) for sh in shocks)
    k0 = int((times < start).sum())  # the hour the first shock starts
    gap = nav_b - nav_s
    worst = int(np.argmax(gap))
    return {
        "mode": b["mode"], "at": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "shocks": shocks,
        "baseline": b, "scenario": s,
        "loss_vs_baseline": float(nav_b[-1] - nav_s[-1]),
        "max_loss_vs_baseline": {"value": float(gap[worst]), "at": iso(int(times.iloc[worst].timestamp()))},
        "time_to_recover_hours": time_to_recover(nav_s, k0),
        "liquidations": [_liquidation(e, times) for e in scenario.events.itertuples() if e.type == "liquidation"],
        "triggered_actions": triggered(baseline.events, scenario.events, k0),
    }


def time_to_recover(nav: np.ndarray, k0: int) -> int | None:
    """Hours from the shock until the NAV is back at its level just before it (None: not in the window)."""
    if k0 <= 0 or k0 >= len(nav):
        return None
    back = np.flatnonzero(nav[k0:] >= nav[k0 - 1])
    return int(back[0]) if len(back) else None


def _liquidation(e, times: pd.Series) -> dict:
    d = _details(e)
    return {"venue": d.get("venue"), "at": times.iloc[e.tick].strftime("%Y-%m-%dT%H:%M:%SZ"),
            "repaid": d.get("repaid"), "seized": d.get("seized_units"), "size": d.get("size"),
            "price": d.get("price"), "loss": d.get("loss"), "message": e.message}


def _details(e) -> dict:
    return json.loads(e.details) if isinstance(e.details, str) else (e.details or {})


def triggered(baseline: pd.DataFrame, scenario: pd.DataFrame, k0: int) -> list[dict]:
    """The scenario's rebalances, margin transfers and outages from the shock on that the baseline did not make."""
    kinds = ("rebalance", "transfer", "outage", "rebalance_skipped", "error")

    def keyed(events: pd.DataFrame) -> set:
        return {(e.tick, e.type, e.message) for e in events.itertuples() if e.type in kinds and e.tick >= k0}

    seen = keyed(baseline)
    out = []
    for e in scenario.itertuples():
        if e.type in kinds and e.tick >= k0 and (e.tick, e.type, e.message) not in seen:
            d = _details(e)
            out.append({"tick": int(e.tick), "at": e.timestamp.strftime("%Y-%m-%dT%H:%M:%SZ"), "type": e.type,
                        "message": e.message, "trigger": d.get("trigger"), "cost": d.get("cost")})
    return out


def liquidation_map(req: StressRequest, shocks: list[dict], baseline: RunOutput, data_dir: Path,
                    dataset: Dataset, store: SweepStore, config_files,
                    cancelled: Callable[[], bool] = lambda: False,
                    on_part: Callable[[str, str], None] = lambda part, ident: None) -> dict:
    """Every value (or pair) of the grid through the sweep machinery: liquidated or not, the minimum HF, the
    loss against the same config unshocked."""
    axes = grid_axes(req.grid, shocks)
    params, shock_axis = [p for p, _ in axes], [on for _, on in axes]
    try:
        for p in params:
            parse_param(p)
    except ValueError as exc:
        raise ConfigError([("grid", req.grid, str(exc))]) from None
    overrides = {"stress": shocks}
    common = dict(mode=req.mode, start=req.start, end=req.end, capital=req.capital, sets=req.sets, workers=1)
    stressed = sweep(SweepRequest(params=params, config_overrides=deep_merge(req.config_overrides, overrides),
                                  **common), data_dir, dataset, store, "stress", list(config_files),
                     cancelled=cancelled, on_registered=lambda sid: on_part("grid_sweep_id", sid))
    plain = {}
    config_params = [p for p, on in zip(params, shock_axis, strict=True) if not on]
    if config_params and not cancelled():  # the same configs without the shocks, for the loss (none once cancelled)
        unshocked = sweep(SweepRequest(params=config_params, config_overrides=deep_merge(
            req.config_overrides, {"stress": []}), **common), data_dir, dataset, store, "stress", list(config_files),
            cancelled=cancelled, on_registered=lambda sid: on_part("unshocked_sweep_id", sid))
        plain = {tuple(sorted(r["params"].items())): r["final_nav"] for r in unshocked["runs"]}
    rows = []
    for r in stressed["runs"]:
        key = tuple(sorted((k, v) for k, v in r["params"].items() if not k.startswith("stress.")))
        base_nav = plain.get(key, baseline.summary["final_nav"])
        loss = None if r["final_nav"] is None or base_nav is None else base_nav - r["final_nav"]
        rows.append({"params": r["params"], "liquidated": bool(r["liquidations"]), "liquidations": r["liquidations"],
                     "min_health_factor": r["min_health_factor"], "loss": loss, "error": r["error"]})
    return {"sweep_id": stressed["sweep_id"], "axes": [p.split("=", 1)[0] for p in params], "runs": rows}


SHOCK_KEYS = ("magnitude", "apr", "factor", "hours", "ramp_hours", "recovery_hours", "at")


def grid_axes(grid: list[str], shocks: list[dict]) -> list[tuple[str, bool]]:
    """Each grid item as a sweep param (shock keys become `stress.I.KEY`) and whether it moves a shock."""
    names = [s.get("name") for s in shocks]
    axes = []
    for text in grid:
        key, values = text.split("=", 1) if "=" in text else (text, "")
        path = key.split(".")
        if path[0] in names and len(path) == 2:
            key, on_shock = f"stress.{names.index(path[0])}.{path[1]}", True
        elif len(path) == 1 and len(shocks) == 1 and path[0] in SHOCK_KEYS:
            key, on_shock = f"stress.0.{path[0]}", True
        else:
            on_shock = False
        axes.append((f"{key}={values}", on_shock))
    return axes


def grid_runs(grid: list[str], shocks: list[dict]) -> int:
    """Runs a liquidation map makes, from the grid's text: every point shocked, and the config axes' points
    again unshocked (for the loss)."""
    axes = grid_axes(grid, shocks)
    shocked = math.prod(value_count(p) for p, _ in axes)
    config_axes = [p for p, on in axes if not on]
    return shocked + (math.prod(value_count(p) for p in config_axes) if config_axes else 0)


def check(req: StressRequest, dataset: Dataset, config_files=(), files: bool = True, max_runs: int = MAX_GRID,
          limit_hint: str = "") -> None:
    """Every problem with a stress request before anything runs (ConfigError): the grid's size (counted from its
    text before anything is parsed), the scenarios and --shock overrides, the base config, and the shocked
    config when --at is a time."""
    if req.grid:
        try:
            named = combine(req.scenarios, [], None, req.custom, files)
        except ConfigError:
            named = []
        runs = grid_runs(req.grid, named)
        if runs > min(max_runs, MAX_GRID):
            hint = f" ({limit_hint})" if limit_hint and max_runs <= MAX_GRID else ""
            raise ConfigError([("grid", f"{runs:,} runs", f"the grid makes {runs:,} runs: above the limit of "
                                f"{min(max_runs, MAX_GRID):,} runs per sweep{hint}")])
    problems = []
    if req.at != "worst":
        try:
            utc_hour(req.at)
        except ValueError as exc:
            problems.append(("at", req.at, f"{exc}, or 'worst'"))
    try:
        shocks = combine(req.scenarios, req.shocks, None if req.at == "worst" else req.at, req.custom, files)
    except ConfigError as exc:
        problems += exc.problems
        shocks = []
    for text in req.grid:
        try:
            parse_param(text)
        except ValueError as exc:
            problems.append(("grid", text, str(exc)))
    try:
        base_raw = _base_raw(req, config_files)
        validate_run_config(base_raw, dataset)
        if shocks and req.at != "worst" and not problems:
            validate_run_config(base_raw | {"stress": shocks}, dataset)
    except ConfigError as exc:
        problems += exc.problems
    gridded = {text.split("=", 1)[0].split(".")[-1] for text in req.grid}
    problems = [(f, v, f"{m} (the grid maps it; the side-by-side run needs a value too: --shock "
                       f"{f.rsplit('.', 1)[-1]}=V)" if f.rsplit(".", 1)[-1] in gridded and v is None else m)
                for f, v, m in problems]
    if problems:
        raise ConfigError(problems)


def stress_test(req: StressRequest, data_dir: Path, dataset: Dataset, store, source: str, out_dir: Path | None,
                config_files=(), stress_id: str | None = None, files: bool = True,
                cancelled: Callable[[], bool] = lambda: False,
                interrupted: Callable[[], str | None] = lambda: None) -> dict:
    """A stress test recorded in the store (registered unless `stress_id` already is), each of its runs and sweeps
    linked as it is stored; its result. A cancel while `interrupted()` gives a reason (the service stopping) leaves
    it failed with that reason, not cancelled."""
    from ..results.stress_store import new_stress_id

    if stress_id is None:
        stress_id = new_stress_id(req.mode)
        store.create_stress(stress_id, req.mode, source, req.model_dump(mode="json"))
    try:
        result = {"stress_id": stress_id} | stress(req, data_dir, dataset, store, source, out_dir, config_files,
                                                   files, cancelled,
                                                   lambda part, ident: store.link_stress(stress_id, part, ident))
    except StressCancelled as exc:
        why = interrupted()
        store.fail_stress(stress_id, why or str(exc), status="failed" if why else "cancelled")
        raise
    except Exception as exc:
        store.fail_stress(stress_id, str(exc) or type(exc).__name__)
        raise
    store.finish_stress(stress_id, result)
    return result
