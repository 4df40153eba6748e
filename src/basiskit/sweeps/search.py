"""`--search tpe`: optuna's TPE sampler proposes configs from the params, a batch of `workers` at a
time, each scored by its mean objective across the windows; a config that breaks a constraint is
infeasible to the sampler, one without an objective a failed trial."""

from __future__ import annotations

from collections.abc import Callable

from .backends import Backend
from .plan import SweepPlan
from .rank import rank
from .spec import Param

PRIMITIVE = (type(None), bool, int, float, str)


def suggest(trial, p: Param):
    """A value of `p` from the trial: a float on the range's grid (rounded as the grid is), or one of
    the listed values."""
    if p.is_range:
        return round(trial.suggest_float(p.key, p.low, p.high, step=p.step), p.decimals)
    if all(isinstance(v, PRIMITIVE) for v in p.values):
        return trial.suggest_categorical(p.key, list(p.values))
    return p.values[trial.suggest_categorical(p.key, list(range(len(p.values))))]


def tpe_study(seed: int | None):
    """The study `--search tpe` runs: optuna's TPE sampler, maximising the objective."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))


def search(plan: SweepPlan, backend: Backend, keep_ticks: bool, on_row: Callable[[dict], None],
           cancelled: Callable[[], bool]) -> list[dict]:
    return run_trials(tpe_study(plan.request.seed), plan, backend, keep_ticks, on_row, cancelled)


def run_trials(study, plan: SweepPlan, backend: Backend, keep_ticks: bool, on_row: Callable[[dict], None],
               cancelled: Callable[[], bool]) -> list[dict]:
    """Ask `study` for plan.request.trials configs, a batch of `workers` at a time, and tell it each score."""
    from optuna.trial import TrialState

    rows: list[dict] = []
    done = 0
    while done < plan.request.trials and not cancelled():
        trials = [study.ask() for _ in range(min(plan.workers, plan.request.trials - done))]
        configs = [{p.key: suggest(t, p) for p in plan.params} for t in trials]
        batch = []
        for row in backend.run(plan.tasks(configs, first_config=done), keep_ticks, cancelled):
            on_row(row)
            batch.append(row)
        scored = {c.config_index: c for c in rank(batch, plan.objective, plan.constraints)}
        for i, trial in enumerate(trials, start=done):
            result = scored.get(i)
            if result is None or result.objective is None or len(result.rows) < len(plan.windows):
                study.tell(trial, state=TrialState.FAIL)
            else:
                trial.set_constraint("constraints", 0.0 if result.feasible else 1.0)  # > 0: infeasible
                study.tell(trial, result.objective)
        rows += batch
        done += len(trials)
    return rows
