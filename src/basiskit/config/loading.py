"""Presets (package YAML), --config files deep-merged over them, --set dotted overrides, validation."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

import yaml
from pydantic import ValidationError

from ..errors import ConfigError
from .models import RunConfig, cross_problems

PRESETS_DIR = Path(__file__).resolve().parent.parent / "presets"


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def read_preset(name: str) -> dict:
    if name not in preset_names():  # never build a path from unchecked input
        raise ConfigError([("mode", name, f"no such preset; known modes: {', '.join(preset_names())}")])
    return yaml.safe_load((PRESETS_DIR / f"{name}.yaml").read_text())


def deep_merge(base: dict, over: dict) -> dict:
    """`over` merged into a copy of `base`; nested mappings merge, everything else replaces."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_set(item: str) -> tuple[list[str], object]:
    """`a.b.c=value` -> (['a','b','c'], value parsed as a YAML scalar or JSON)."""
    if "=" not in item:
        raise ConfigError([(item, item, "an override must look like dotted.key=value")])
    key, raw = item.split("=", 1)
    path = [p for p in key.strip().split(".")]
    if not all(path):
        raise ConfigError([(key, raw, "empty part in the dotted key")])
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError([(key, raw, f"not a YAML/JSON value ({exc.problem})")]) from exc
    return path, value


def apply_set(cfg: dict, path: list[str], value: object) -> None:
    node = cfg
    for i, part in enumerate(path[:-1]):
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        if not isinstance(nxt, dict):
            raise ConfigError([(".".join(path[: i + 1]), nxt, "is not a mapping; cannot set a key under it")])
        node = nxt
    node[path[-1]] = value


def load_run_config(
    mode: str,
    config_files: Iterable[str | Path] = (),
    sets: Iterable[str] = (),
    extra: dict | None = None,
) -> RunConfig:
    """Preset `mode`, then each --config file, then `extra` (CLI flags), then --set overrides."""
    cfg = read_preset(mode)
    cfg["mode"] = mode
    for f in config_files:
        path = Path(f)
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError([("--config", str(path), f"cannot read YAML ({exc})")]) from exc
        if not isinstance(loaded, dict):
            raise ConfigError([("--config", str(path), "must hold a mapping of config keys")])
        cfg = deep_merge(cfg, loaded)
    if extra:
        cfg = deep_merge(cfg, extra)
    for item in sets:
        apply_set(cfg, *parse_set(item))
    if cfg.get("mode") != mode:
        raise ConfigError([("mode", cfg.get("mode"), f"is the preset's name ({mode}); choose another preset "
                            "instead of overriding it")])
    return validate(cfg)


def validate(cfg: dict) -> RunConfig:
    """Field problems (pydantic) first; when the fields are valid, the problems between them."""
    try:
        model = RunConfig.model_validate(cfg)
    except ValidationError as exc:
        raise ConfigError([_problem(e) for e in exc.errors()]) from None
    problems = cross_problems(model)
    if problems:
        raise ConfigError(problems)
    return model


def _problem(err: dict) -> tuple[str, object, str]:
    field = ".".join(str(p) for p in err["loc"]) or "(config)"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key (check the spelling; see `basiskit modes` and the preset YAML)"
    if err["type"] == "missing":
        msg = "required"
    return field, err.get("input"), msg


def config_hash(cfg: RunConfig) -> str:
    canonical = json.dumps(cfg.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
