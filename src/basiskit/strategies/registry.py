"""Strategy classes registered by name; config names a strategy, never a code path.

The built-in strategies are imported once, under a lock, before any name is looked up, so a service
answering many first requests at once never sees a half-filled registry.
"""

from __future__ import annotations

import importlib
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Strategy

_REGISTRY: dict[str, type[Strategy]] = {}
_LOCK = threading.Lock()
_loaded = False

BUILTIN = ("pure_lending", "basis", "staking", "market_neutral")


def register(cls: type[Strategy]) -> type[Strategy]:
    with _LOCK:
        _REGISTRY[cls.name] = cls
    return cls


def load_builtins() -> None:
    """Import every built-in strategy module (once); safe to call from many threads at once."""
    global _loaded
    if _loaded:
        return
    with _LOCK:
        if _loaded:
            return
        modules = [f"{__package__}.{m}" for m in BUILTIN]
    for module in modules:  # outside the lock: each module's @register takes it
        importlib.import_module(module)
    with _LOCK:
        _loaded = all(name in _REGISTRY for name in BUILTIN)


def strategy_names() -> list[str]:
    load_builtins()
    return sorted(_REGISTRY)


def get_strategy(name: str) -> type[Strategy]:
    load_builtins()
    return _REGISTRY[name]
