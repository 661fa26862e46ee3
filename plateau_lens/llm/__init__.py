"""Pretrained checkpoint series (Pythia, OLMo, or a local pretraining series) through
TransformerBridge.boot_transformers, measured the way the loss-plateau study measures them.
Names load on first use (``lazy_loader``): the command line's parser needs none of them."""

from typing import TYPE_CHECKING

from ..lazy import lazy_package

__getattr__, __dir__, __all__ = lazy_package(__name__, __path__, {
    "checkpoints": ["PYTHIA_STEPS", "CheckpointLoadError", "load_checkpoint_model",
                    "pythia_revision", "PretrainedModel", "study_tokenizer"],
    "reuse": ["iter_checkpoints"],
    "generation": ["generation_metrics", "tokenize_prompts"],
    "batching": ["LeftPadded", "greedy_generate", "left_pad"],
    "pretrain": ["PretrainConfig", "pretrain_series", "pythia_like_schedule"],
    "prompt_task": ["PromptTask", "prompt_batch"],
    "prompts": ["PromptList", "load_prompts"],
    "series": ["analyze_series", "plot_series", "read_results"],
})

if TYPE_CHECKING:
    from .checkpoints import (PYTHIA_STEPS, CheckpointLoadError, PretrainedModel,
                              load_checkpoint_model, pythia_revision, study_tokenizer)
    from .reuse import iter_checkpoints
    from .batching import LeftPadded, greedy_generate, left_pad
    from .generation import generation_metrics, tokenize_prompts
    from .pretrain import PretrainConfig, pretrain_series, pythia_like_schedule
    from .prompt_task import PromptTask, prompt_batch
    from .prompts import PromptList, load_prompts
    from .series import analyze_series, plot_series, read_results
