"""plateau-lens: reproduce and dissect abrupt learning (loss plateaus, sudden drops)."""

from .analysis import (
    ablate_heads, ablation_sweep, analyze_run, attention_patterns, attention_progress,
    attention_structure, compare_to_nuclear_norm, copying_test, linear_probes, next_token_probe,
    nuclear_norm_complete, patch_activations, patch_between_models, representation_collapse,
    repetition, swap_attention,
)
from .builder import build_model
from .config import RunConfig, TrainConfig, load_config
from .models import ModelConfig, PlateauModel, build_network, set_attention_bias, wrap_in_bridge
from .tasks import TASKS, make_task
from .llm import iter_checkpoints, load_checkpoint_model
from .run import Run, load_run
from .training import CheckpointError, resume, train
from .transition import Transition, detect_transition

__version__ = "0.1.0"

__all__ = [
    "ablate_heads", "ablation_sweep", "analyze_run", "attention_patterns", "attention_progress",
    "attention_structure", "compare_to_nuclear_norm", "copying_test", "linear_probes",
    "next_token_probe", "nuclear_norm_complete", "patch_activations", "patch_between_models",
    "representation_collapse", "repetition", "swap_attention", "build_model", "RunConfig",
    "TrainConfig", "load_config", "ModelConfig", "PlateauModel", "build_network",
    "set_attention_bias", "wrap_in_bridge", "TASKS", "make_task", "iter_checkpoints",
    "load_checkpoint_model", "Run", "load_run", "CheckpointError", "resume", "train",
    "Transition", "detect_transition",
]
