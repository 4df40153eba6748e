"""Building a run config: the preset, config files and overrides, field validation (config/), then
every rule between the fields, with those of the strategy and of the dataset (strategies/rules.py);
every problem is reported at once."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

from ..config.loading import parse, raw_run_config
from ..config.models import RunConfig, cross_problems
from ..data.dataset import Dataset, resolve_data_dir
from ..errors import ConfigError
from ..strategies.rules import run_config_problems

_DEFAULT: dict[Path, Dataset] = {}
_LOCK = threading.Lock()


def default_dataset() -> Dataset:
    """The dataset a run uses when none is named: $BASISKIT_DATA, else the embedded sample."""
    root = resolve_data_dir(None)[0]
    with _LOCK:
        if root not in _DEFAULT:
            _DEFAULT[root] = Dataset(root)
        return _DEFAULT[root]


def load_run_config(mode: str, config_files: Iterable[str | Path] = (), sets: Iterable[str] = (),
                    extra: dict | None = None, dataset: Dataset | None = None) -> RunConfig:
    """Preset `mode`, each --config file, `extra` (CLI flags), --set overrides; validated against `dataset`."""
    return validate_run_config(raw_run_config(mode, config_files, sets, extra), dataset)


def validate_run_config(raw: dict, dataset: Dataset | None = None) -> RunConfig:
    """Field problems first (the rules between fields need valid fields), then every rule at once."""
    cfg = parse(raw)
    check_run_config(cfg, dataset)
    return cfg


def check_run_config(cfg: RunConfig, dataset: Dataset | None = None) -> None:
    problems = cross_problems(cfg) + run_config_problems(cfg, dataset or default_dataset())
    if problems:
        raise ConfigError(problems)
