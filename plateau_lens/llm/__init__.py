"""Pretrained checkpoint series (Pythia, OLMo, or a local pretraining series) through
TransformerBridge.boot_transformers, measured the way the loss-plateau study measures them."""

from .checkpoints import (
    PYTHIA_STEPS, CheckpointLoadError, iter_checkpoints, load_checkpoint_model, pythia_revision,
    PretrainedModel, study_tokenizer,
)
from .generation import generation_metrics
from .pretrain import PretrainConfig, pretrain_series, pythia_like_schedule
from .prompt_task import PromptTask, prompt_batch
from .prompts import PromptList, load_prompts
from .series import analyze_series, plot_series, read_results

__all__ = ["PYTHIA_STEPS", "CheckpointLoadError", "iter_checkpoints", "load_checkpoint_model",
           "pythia_revision", "PretrainedModel", "study_tokenizer", "generation_metrics", "PretrainConfig",
           "pretrain_series", "pythia_like_schedule", "load_prompts", "PromptList", "PromptTask",
           "prompt_batch", "analyze_series", "plot_series", "read_results"]
