"""Stress scenarios: the library that ships with basiskit (`basiskit stress --list`) and YAML files of the
same form, validated like run configs (every problem at once), combined, with --shock overrides."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from ..config.loading import field_problem, parse_set
from ..config.models import SHOCK_PARAMS, SHOCKS, Shock, Strict
from ..errors import ConfigError

LIBRARY = Path(__file__).resolve().parent.parent / "scenarios"


class ScenarioFile(Strict):
    description: str = ""
    shocks: list[dict]


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    shocks: list[dict]  # raw shocks; each becomes a config `stress` item (validated there, with `at`)


def library() -> dict[str, Scenario]:
    """The named scenarios, then every shock type as a scenario of that one shock (its parameters from
    --shock, e.g. `--scenario lst_rate_shock --shock magnitude=0.1`)."""
    out = {}
    for path in sorted(LIBRARY.glob("*.yaml")):
        raw = yaml.safe_load(path.read_text())
        out[path.stem] = Scenario(path.stem, raw.get("description", ""), raw["shocks"])
    for kind in SHOCKS:
        param = SHOCK_PARAMS[kind][0]
        out.setdefault(kind, Scenario(kind, f"one {kind} shock" + (f"; give its {param} with --shock" if param
                                                                    else "; give its venues with --shock"),
                                      [{"type": kind}]))
    return out


def load(ref: str, files: bool = True) -> Scenario:
    """A library scenario by name, or (files=True) a YAML file by path; problems name the file and field."""
    lib = library()
    if ref in lib:
        return lib[ref]
    path = Path(ref)
    if not files or not path.suffix or not path.is_file():
        raise ConfigError([("scenarios", ref, f"no such scenario{'' if not files else ' or file'}; the library: "
                            f"{', '.join(lib)}")])
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError([("scenarios", ref, f"cannot read YAML ({exc})")]) from None
    if not isinstance(raw, dict):
        raise ConfigError([("scenarios", ref, "must hold a mapping with `shocks`")])
    return validated(path.stem, raw, f"{path.name}: shocks")


def validated(name: str, raw: dict, where: str) -> Scenario:
    """A scenario given as data ({description, shocks}); every problem named `where`.i.field."""
    try:
        parsed = ScenarioFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError([(f"{where.removesuffix('shocks')}{f}", v, m)
                           for f, v, m in map(field_problem, exc.errors())]) from None
    problems = []
    for i, shock in enumerate(parsed.shocks):
        try:
            Shock.model_validate({"at": "2024-01-01T00:00:00Z"} | shock)  # `at` comes from --at if not given
        except ValidationError as exc:
            problems += [(f"{where}.{i}.{f}".rstrip("."), v, m) for f, v, m in map(field_problem, exc.errors())]
    if problems:
        raise ConfigError(problems)
    return Scenario(name, parsed.description, parsed.shocks)


def combine(refs: list[str], shock_sets: list[str], at: str | None, custom: list[dict] | None = None,
            files: bool = True) -> list[dict]:
    """The shocks of every scenario (library names, files when `files`, then `custom` shocks given as
    data), named (the shock's own name, else its type; numbered when repeated), with --shock overrides
    (`KEY=VALUE` when there is one shock, `NAME.KEY=VALUE` otherwise) and `at`."""
    shocks: list[dict] = []
    problems: list[tuple[str, object, str]] = []
    scenarios = []
    for ref in refs:
        try:
            scenarios.append(load(ref, files))
        except ConfigError as exc:
            problems += exc.problems
    if custom:
        try:
            scenarios.append(validated("custom", {"shocks": custom}, "custom"))
        except ConfigError as exc:
            problems += exc.problems
    for scenario in scenarios:
        for raw in scenario.shocks:
            shock = dict(raw)
            base = shock.get("name") or shock.get("type", "shock")
            name, n = base, 2
            while any(s["name"] == name for s in shocks):
                name, n = f"{base}{n}", n + 1
            shocks.append(shock | {"name": name})
    for i, item in enumerate(shock_sets):
        try:
            path, value = parse_set(item)
        except ConfigError as exc:
            problems += [(f"shocks.{i}", item, p[2]) for p in exc.problems]
            continue
        if len(path) == 1:
            if len(shocks) != 1:
                problems.append((f"shocks.{i}", item, f"{len(shocks)} shocks: say which, NAME.KEY=VALUE "
                                 f"(names: {', '.join(s['name'] for s in shocks)})"))
                continue
            target = shocks[0]
        else:
            target = next((s for s in shocks if s["name"] == path[0]), None)
            if target is None or len(path) != 2:
                problems.append((f"shocks.{i}", item, f"no shock named {path[0]!r}; names: "
                                 f"{', '.join(s['name'] for s in shocks)}"))
                continue
        target[path[-1]] = value
    if not shocks and not problems:
        problems.append(("scenarios", refs, "give at least one scenario (or custom shocks)"))
    if problems:
        raise ConfigError(problems)
    if at is not None:
        for shock in shocks:
            shock.setdefault("at", at)
    return shocks
