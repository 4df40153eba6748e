"""Ranking a sweep: each config's mean objective across its windows, among configs whose every window
ran and met the constraints; a null objective (undefined, or a failed window) ranks last."""

from __future__ import annotations

from dataclasses import dataclass, field

from .spec import Constraint, summary_value


@dataclass
class ConfigResult:
    config_index: int
    params: dict
    rows: list[dict] = field(default_factory=list)  # one per window, in window order
    objective: float | None = None  # mean across windows
    feasible: bool = False

    def spread(self) -> tuple[float, float] | None:
        values = [r["objective"] for r in self.rows if r["objective"] is not None]
        return (min(values), max(values)) if values else None


def rank(rows: list[dict], objective: str, constraints: list[Constraint]) -> list[ConfigResult]:
    """Configs best first: feasible before infeasible, then by mean objective (nulls last), then by index."""
    by_config: dict[int, ConfigResult] = {}
    for row in sorted(rows, key=lambda r: r["index"]):
        row["objective"] = summary_value(row.get("summary"), objective)
        row["constraints_met"] = row["error"] is None and all(c.met(row.get("summary")) for c in constraints)
        result = by_config.setdefault(row["config_index"], ConfigResult(row["config_index"], row["params"]))
        result.rows.append(row)
    for result in by_config.values():
        values = [r["objective"] for r in result.rows]
        result.objective = None if any(v is None for v in values) else sum(values) / len(values)
        result.feasible = all(r["constraints_met"] for r in result.rows)
    return sorted(by_config.values(), key=lambda c: (not c.feasible, c.objective is None,
                                                     -(c.objective or 0.0), c.config_index))


def best(ranked: list[ConfigResult]) -> ConfigResult | None:
    top = ranked[0] if ranked else None
    return top if top is not None and top.feasible and top.objective is not None else None
