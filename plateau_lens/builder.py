"""``build_model(config)``: a :class:`PlateauModel` straight from a run config."""

from __future__ import annotations

from typing import Any

from .config import ModelConfig, RunConfig, load_config
from .models.build import build_model as build_for_task
from .models.handle import PlateauModel


def build_model(config: Any, seed: int | None = None) -> PlateauModel:
    """A freshly initialised :class:`PlateauModel` for a run config (``RunConfig``, dict or
    TOML/JSON path; seed: the config's ``train.seed`` unless given) or a
    ``(task, ModelConfig)`` pair (seed 0 unless given)."""
    if isinstance(config, tuple):
        task, model_config = config
        if not isinstance(model_config, ModelConfig):
            raise ValueError(f"build_model((task, model_config)) needs a ModelConfig, got "
                             f"{type(model_config).__name__}")
        return build_for_task(task, model_config, seed or 0)
    if not isinstance(config, RunConfig):
        config = load_config(config)
    return build_for_task(config.make_task(), config.model,
                          config.train.seed if seed is None else seed)
