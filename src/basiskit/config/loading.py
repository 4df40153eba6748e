"""Presets (package YAML), --config files deep-merged over them, --set dotted overrides, field validation.

Plain data: the rules of strategies and those that read a dataset are applied where a run config is
built (`basiskit.engine.runconfig`)."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, ValidationError

from ..errors import ConfigError
from .models import RunConfig

PRESETS_DIR = Path(__file__).resolve().parent.parent / "presets"
MAX_VALUE_CHARS = 65_536  # one --set value (a request's YAML is data, never a document)
MAX_VALUE_DEPTH = 16  # nesting of one value (lists and mappings)


class PlainLoader(yaml.SafeLoader):
    """YAML as plain data: anchors and aliases refused (an alias bomb expands 9x per ~43 bytes), nesting
    bounded by MAX_VALUE_DEPTH."""

    depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.YAMLError("anchors and aliases (& and *) are not accepted: write the value out")
        self.depth += 1
        if self.depth > MAX_VALUE_DEPTH:
            raise yaml.YAMLError(f"nested more than {MAX_VALUE_DEPTH} levels deep")
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _shallow(value):
    if nesting_depth(value) > MAX_VALUE_DEPTH:
        raise ValueError(f"nested more than {MAX_VALUE_DEPTH} levels deep")
    return value


# a request's overrides or shocks: JSON data nested at most MAX_VALUE_DEPTH levels
Overrides = Annotated[dict[str, Any], AfterValidator(_shallow)]


def plain_yaml(text: str):
    """`text` as a YAML/JSON value under PlainLoader's rules (yaml.YAMLError says why not)."""
    if len(text) > MAX_VALUE_CHARS:
        raise yaml.YAMLError(f"{len(text):,} characters: a value may have at most {MAX_VALUE_CHARS:,}")
    return yaml.load(text, Loader=PlainLoader)  # noqa: S506 (PlainLoader is a SafeLoader)


def nesting_depth(value, limit: int = MAX_VALUE_DEPTH) -> int:
    """How deep lists and mappings nest in `value`, counted up to limit + 1 (never recursing further)."""
    depth, level = 0, [value]
    while level and depth <= limit:
        nested = [v for item in level if isinstance(item, dict | list)
                  for v in (item.values() if isinstance(item, dict) else item)]
        depth += 1 if any(isinstance(item, dict | list) for item in level) else 0
        level = nested
    return depth


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
        value = plain_yaml(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError([(key, raw, f"not a YAML/JSON value ({getattr(exc, 'problem', None) or exc})")]) from None
    except (ValueError, OverflowError, RecursionError) as exc:  # e.g. 2024-13-01 looks like a YAML date
        raise ConfigError([(key, raw, f"not a valid value ({exc})")]) from None
    return path, value


def apply_set(cfg: dict, path: list[str], value: object) -> None:
    """Set a dotted path in a raw config; a number indexes a list (stress.0.magnitude, flows.1.amount)."""
    node: dict | list = cfg
    for i, part in enumerate(path):
        where = ".".join(path[: i + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError([(where, part, f"is not an index of the list (it has {len(node)} items)")])
            key: str | int = int(part)
        elif isinstance(node, dict):
            key = part
        else:
            raise ConfigError([(".".join(path[:i]), node, "is not a mapping; cannot set a key under it")])
        if i == len(path) - 1:
            node[key] = value
        else:
            if isinstance(node, dict) and node.get(key) is None:
                node[key] = {}
            node = node[key]


def merge_overrides(overrides: dict) -> dict:
    """Overrides given as JSON (nested mappings, or dotted keys as in --set) as one mapping to deep-merge."""
    out: dict = {}
    for key, value in overrides.items():
        if "." in key:
            apply_set(out, key.split("."), value)
        else:
            out = deep_merge(out, {key: value})
    return out



def run_overrides(start=None, end=None, capital=None, overrides: dict | None = None) -> dict:
    """What a command or request sets besides --set and --config: its `config_overrides` (nested or
    dotted), with the window and the capital given as options over them."""
    given = {k: v for k, v in (("start", start), ("end", end), ("initial_capital", capital)) if v is not None}
    return deep_merge(merge_overrides(overrides or {}), given)

def raw_run_config(
    mode: str,
    config_files: Iterable[str | Path] = (),
    sets: Iterable[str] = (),
    extra: dict | None = None,
) -> dict:
    """Preset `mode`, then each --config file, then `extra` (CLI flags), then --set overrides, unvalidated."""
    cfg = read_preset(mode)
    cfg["mode"] = mode
    for f in config_files:
        path = Path(f)
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError([("--config", str(path), f"cannot read YAML ({exc})")]) from None
        except (OSError, ValueError, OverflowError, RecursionError) as exc:  # unreadable, not text, bad date
            raise ConfigError([("--config", str(path), f"cannot read YAML ({exc})")]) from None
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
    return cfg


def parse(cfg: dict) -> RunConfig:
    """The fields of a run config (pydantic), every field problem at once."""
    try:
        return RunConfig.model_validate(cfg)
    except ValidationError as exc:
        raise ConfigError([field_problem(e) for e in exc.errors()]) from None


def field_problem(err: dict) -> tuple[str, object, str]:
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
