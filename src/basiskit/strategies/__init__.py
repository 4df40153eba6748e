"""Strategies: one small class per family, registered by name (see registry.BUILTIN)."""
