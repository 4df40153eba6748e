"""Run configuration: pydantic models, presets, overrides and validation with every error at once."""

from .loading import config_hash, load_run_config, preset_names, read_preset
from .models import RunConfig

__all__ = ["RunConfig", "config_hash", "load_run_config", "preset_names", "read_preset"]
