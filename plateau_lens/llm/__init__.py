"""Pretrained checkpoint series (Pythia, OLMo, or a local pretraining series) through
TransformerBridge.boot_transformers, measured the way the loss-plateau study measures them.
Names load on first use (``lazy_loader``): the command line's parser needs none of them."""

import pkgutil
from typing import TYPE_CHECKING

import lazy_loader

_EXPORTS = {
    "checkpoints": ["PYTHIA_STEPS", "CheckpointLoadError", "iter_checkpoints", "load_checkpoint_model",
                    "pythia_revision", "PretrainedModel", "study_tokenizer"],
    "generation": ["generation_metrics"],
    "pretrain": ["PretrainConfig", "pretrain_series", "pythia_like_schedule"],
    "prompt_task": ["PromptTask", "prompt_batch"],
    "prompts": ["PromptList", "load_prompts"],
    "series": ["analyze_series", "plot_series", "read_results"],
}
# every submodule is an attribute too (``pl.analysis.wide``), without being exported by ``*``
__getattr__, __dir__, _ = lazy_loader.attach(
    __name__, submodules=[module.name for module in pkgutil.iter_modules(__path__)],
    submod_attrs=_EXPORTS)
__all__ = [name for names in _EXPORTS.values() for name in names]

if TYPE_CHECKING:
    from .checkpoints import (PYTHIA_STEPS, CheckpointLoadError, PretrainedModel, iter_checkpoints,
                              load_checkpoint_model, pythia_revision, study_tokenizer)
    from .generation import generation_metrics
    from .pretrain import PretrainConfig, pretrain_series, pythia_like_schedule
    from .prompt_task import PromptTask, prompt_batch
    from .prompts import PromptList, load_prompts
    from .series import analyze_series, plot_series, read_results
