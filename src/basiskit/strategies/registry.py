"""Strategy classes registered by name; config names a strategy, never a code path."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Strategy

_REGISTRY: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    _REGISTRY[cls.name] = cls
    return cls


BUILTIN = ("pure_lending", "basis", "staking", "market_neutral")


def _load_builtins() -> None:
    import importlib

    for module in BUILTIN:
        importlib.import_module(f"{__package__}.{module}")


def strategy_names() -> list[str]:
    if not _REGISTRY:
        _load_builtins()
    return sorted(_REGISTRY)


def get_strategy(name: str) -> type[Strategy]:
    strategy_names()
    return _REGISTRY[name]


def validate_strategy_config(cfg) -> list[str]:
    """Problems the named strategy finds in an otherwise well-formed config."""
    if cfg.strategy not in _REGISTRY:
        return []
    return _REGISTRY[cfg.strategy].validate_config(cfg)
