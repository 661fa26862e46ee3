"""plateau-lens: reproduce and dissect abrupt learning (loss plateaus, sudden drops).

The names below load on first use (``lazy_loader``, SPEC 1): ``import plateau_lens`` and the
command line's parser do not import torch or TransformerLens until something needs them.
"""

from typing import TYPE_CHECKING

from .lazy import lazy_package

__version__ = "0.1.0"

__getattr__, __dir__, __all__ = lazy_package(__name__, __path__, {
    "analysis": ["ablate_heads", "ablation_sweep", "analyze_run", "attention_patterns",
                 "attention_progress", "attention_structure", "compare_to_nuclear_norm",
                 "copying_test", "linear_probes", "next_token_probe", "nuclear_norm_complete",
                 "patch_activations", "patch_between_models", "representation_collapse",
                 "repetition", "swap_attention", "register_analyzer"],
    "config": ["ModelConfig", "RunConfig", "TrainConfig", "load_config"],
    "models": ["PlateauModel", "build_model", "build_network", "set_attention_bias", "wrap_in_bridge"],
    "tasks": ["TASKS", "make_task", "register_task"],
    "llm": ["iter_checkpoints", "load_checkpoint_model"],
    "reproduce": ["register_reproduction", "register_study"],
    "runs": ["CheckpointError", "Run", "load_run"],
    "training": ["resume", "train"],
    "transition": ["Transition", "detect_transition"],
})

if TYPE_CHECKING:  # what static tools and IDEs read
    from .analysis import (ablate_heads, ablation_sweep, analyze_run, attention_patterns,
                           attention_progress, attention_structure, compare_to_nuclear_norm,
                           copying_test, linear_probes, next_token_probe, nuclear_norm_complete,
                           patch_activations, patch_between_models, representation_collapse,
                           register_analyzer, repetition, swap_attention)
    from .config import ModelConfig, RunConfig, TrainConfig, load_config
    from .llm import iter_checkpoints, load_checkpoint_model
    from .models import PlateauModel, build_model, build_network, set_attention_bias, wrap_in_bridge
    from .reproduce import register_reproduction, register_study
    from .runs import CheckpointError, Run, load_run
    from .tasks import TASKS, make_task, register_task
    from .training import resume, train
    from .transition import Transition, detect_transition
