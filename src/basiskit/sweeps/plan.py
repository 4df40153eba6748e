"""A sweep made concrete: the base config, the configs (grid, random draws, or a search's trials), the
windows, and one task per config and window. Every problem with the request is reported at once."""

from __future__ import annotations

import copy
import importlib.util
import itertools
import json
import os
import random
import shlex
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..config.loading import apply_set, parse, parse_set, raw_run_config, run_overrides
from ..data.dataset import Dataset
from ..engine.run import default_window
from ..engine.runconfig import validate_run_config
from ..errors import BasiskitError, ConfigError
from .size import check_size
from .spec import (
    MAX_GRID,
    Constraint,
    Param,
    SweepRequest,
    Window,
    check_summary_key,
    parse_constraint,
    parse_param,
    parse_time,
    parse_windows,
)


@dataclass(frozen=True)
class Task:
    """One run of a sweep: a config (its params) over a window, as the raw config a backtest would build."""

    index: int
    config_index: int
    params: dict
    window: Window
    raw: dict


@dataclass
class SweepPlan:
    request: SweepRequest
    params: list[Param]
    windows: list[Window]
    constraints: list[Constraint]
    base: dict  # the raw config every run starts from (preset, --config files, overrides, --set)
    config_files: list[str] = field(default_factory=list)
    configs: list[dict] = field(default_factory=list)  # param values per config (empty for a search)
    workers: int = 1

    @property
    def objective(self) -> str:
        return self.request.objective

    @property
    def n_runs(self) -> int:
        n = self.request.trials if self.request.search else len(self.configs)
        return n * len(self.windows)

    def tasks(self, configs: list[dict], first_config: int = 0) -> list[Task]:
        """Every run of `configs` (numbered from first_config) over every window; run index =
        config index x windows + window index."""
        tasks = []
        for i, params in enumerate(configs, start=first_config):
            for w, window in enumerate(self.windows):
                raw = copy.deepcopy(self.base)
                for key, value in params.items():
                    apply_set(raw, key.split("."), value)
                if window.start is not None:
                    raw["start"], raw["end"] = window.start, window.end
                tasks.append(Task(i * len(self.windows) + w, i, params, window, raw))
        return tasks

    def command(self, params: dict, window: list[str] | None) -> str:
        """The `basiskit backtest` command that reproduces a run of the sweep in full."""
        req = self.request
        args = ["basiskit", "backtest", req.mode]
        if req.capital is not None:
            args += ["--capital", repr(req.capital)]
        start, end = (window or [None, None]) if any(w.start for w in self.windows) else (req.start, req.end)
        args += (["--start", start] if start else []) + (["--end", end] if end else [])
        for f in self.config_files:
            args += ["--config", f]
        for item in req.sets + _dotted(req.config_overrides):
            args += ["--set", item]
        for key, value in params.items():
            args += ["--set", f"{key}={set_value(value)}"]
        return shlex.join(args)


def set_value(value) -> str:
    """A value as `--set` writes it, parsed back to exactly the same value."""
    if isinstance(value, str):
        try:
            plain = parse_set(f"key={value}")[1] == value
        except ConfigError:
            plain = False
        return value if plain else json.dumps(value)
    return json.dumps(value) if isinstance(value, bool | list | dict) or value is None else repr(value)


def _dotted(overrides: dict, prefix: str = "") -> list[str]:
    items = []
    for key, value in overrides.items():
        if isinstance(value, dict) and value:
            items += _dotted(value, f"{prefix}{key}.")
        else:
            items.append(f"{prefix}{key}={set_value(value)}")
    return items


def prepare(req: SweepRequest, dataset: Dataset, config_files: list[str] | None = None, max_runs: int = MAX_GRID,
            limit_hint: str = "") -> SweepPlan:
    """Check the request against the config model, the dataset and the rules of a sweep; every problem
    at once (ConfigError), or the plan."""
    config_files = [str(f) for f in config_files or []]
    check_size(req, dataset, max_runs, limit_hint,  # counted before anything is parsed or built
               exact_span=lambda: _span(req, _base(req, config_files), dataset))
    problems: list[tuple[str, object, str]] = []
    base: dict = {}
    try:
        base = _base(req, config_files)
    except ConfigError as exc:
        problems += exc.problems
    params: list[Param] = []
    where: dict[str, str] = {}  # key -> its field in the request (params.i)
    for i, text in enumerate(req.params):
        try:
            p = parse_param(text)
        except ValueError as exc:
            problems.append((f"params.{i}", text, str(exc)))
            continue
        if p.key == "mode":
            problems.append((f"params.{i}", text, "mode is the preset; sweep another mode in another sweep"))
        elif p.key in where:
            problems.append((f"params.{i}", text, f"{p.key} is swept twice"))
        else:
            params.append(p)
            where[p.key] = f"params.{i}"
    if base:
        problems += _unknown_keys(base, params, where)
    if req.random and req.search:
        problems.append(("random", req.random, "--random and --search exclude each other"))
    if req.search and not req.trials:
        problems.append(("trials", req.trials, "--search tpe needs --trials N"))
    if req.trials and not req.search:
        problems.append(("trials", req.trials, "--trials goes with --search tpe"))
    if (req.random or req.search) and not params:
        problems.append(("params", req.params, "--random and --search draw from params: give at least one"))
    if req.search and importlib.util.find_spec("optuna") is None:
        problems.append(("search", req.search, "needs optuna: pip install 'basiskit[search]'"))
    if req.backend == "ray" and importlib.util.find_spec("ray") is None:
        problems.append(("backend", req.backend, "needs Ray: pip install 'basiskit[ray]'"))
    try:
        check_summary_key(req.objective)
    except ValueError as exc:
        problems.append(("objective", req.objective, str(exc)))
    constraints = []
    for i, text in enumerate(req.constraints):
        try:
            constraints.append(parse_constraint(text))
        except ValueError as exc:
            problems.append((f"constraints.{i}", text, str(exc)))
    windows = [Window(None, None)]
    if req.windows:
        try:
            windows = parse_windows(req.windows, *_span(req, base, dataset))
        except (ValueError, OverflowError, BasiskitError) as exc:
            problems.append(("windows", req.windows, str(exc)))
    if problems:
        raise ConfigError(problems)
    configs: list[dict] = []
    if req.random:
        rng = random.Random(req.seed)
        configs = [{p.key: p.draw(rng) for p in params} for _ in range(req.random)]
    elif not req.search:
        configs = [dict(zip([p.key for p in params], values, strict=True))
                   for values in itertools.product(*(p.values for p in params))]
    plan = SweepPlan(req, params, windows, constraints, base, config_files, configs,
                     req.workers or os.cpu_count() or 1)
    if plan.n_runs > min(max_runs, MAX_GRID):  # counted before (check_size); checked again on what was built
        hint = f" ({limit_hint})" if limit_hint else ""
        raise ConfigError([("params", f"{plan.n_runs:,} runs", f"{plan.n_runs:,} runs: above the limit of "
                            f"{min(max_runs, MAX_GRID):,} runs per sweep{hint}")])
    return plan


def _base(req: SweepRequest, config_files: list[str]) -> dict:
    return raw_run_config(req.mode, config_files, req.sets,
                          run_overrides(req.start, req.end, req.capital, req.config_overrides))


def _unknown_keys(base: dict, params: list[Param], where: dict[str, str]) -> list[tuple[str, object, str]]:
    """A swept key the config does not have would fail every run: refuse it now."""
    problems = []
    for p in params:
        raw = copy.deepcopy(base)
        try:
            apply_set(raw, p.key.split("."), p.values[0])
            parse(raw)
        except ConfigError as exc:
            for f, _, reason in exc.problems:
                if reason.startswith("unknown key") and (f == p.key or p.key.startswith(f"{f}.")):
                    problems.append((where[p.key], p.key, "unknown config key (check the spelling; see the preset)"))
                elif "is not a mapping" in reason:
                    problems.append((where[p.key], p.key, reason))
    return problems


def _span(req: SweepRequest, base: dict, dataset: Dataset) -> tuple[datetime, datetime]:
    """Where rolling windows go: --start/--end, else the window the base config's data share."""
    if req.start and req.end:
        return parse_time(req.start), parse_time(req.end)
    if not base:
        raise ValueError("rolling windows need --start and --end, or a valid base config")
    lo, hi = default_window(validate_run_config(base, dataset), dataset)
    return (parse_time(req.start) if req.start else datetime.fromtimestamp(lo, UTC),
            parse_time(req.end) if req.end else datetime.fromtimestamp(hi, UTC))
