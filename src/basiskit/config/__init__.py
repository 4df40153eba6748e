"""Run configuration as plain data: pydantic models, presets, overrides, field validation."""

from .loading import config_hash, parse, preset_names, raw_run_config, read_preset
from .models import RunConfig

__all__ = ["RunConfig", "config_hash", "parse", "preset_names", "raw_run_config", "read_preset"]
