"""Pretrained checkpoint series (Pythia, OLMo) through TransformerBridge.boot_transformers."""

from .checkpoints import (
    PYTHIA_STEPS, CheckpointLoadError, iter_checkpoints, load_checkpoint_model, pythia_revision,
)
from .generation import generation_metrics
from .prompt_task import PromptTask, prompt_batch
from .prompts import load_prompts
from .series import analyze_series, plot_series

__all__ = ["PYTHIA_STEPS", "CheckpointLoadError", "iter_checkpoints", "load_checkpoint_model",
           "pythia_revision", "generation_metrics", "load_prompts", "PromptTask", "prompt_batch", "analyze_series", "plot_series"]
