"""Analyzers: each takes a model (TransformerBridge) and a batch, reads it through hook names,
and returns a tidy pandas DataFrame. On plateau-lens' own models with no hook attached,
``ablation_sweep`` and ``linear_probes`` compute the same values on the native modules
(:mod:`.partial_forward`)."""

from .ablation import ablate_heads, ablation_sweep, uniform_pattern
from .attention_progress import attention_progress, attention_progress_score
from .attention_structure import attention_patterns, attention_structure, mask_rows
from .copying import copying_test
from .nuclear_norm import compare_to_nuclear_norm, nuclear_norm_batch, nuclear_norm_complete
from .over_training import analysis_batch, analyze_run
from .partial_forward import remaining_hooks
from .patching import negate_matrix, patch_activations, patch_between_models
from .probes import fit_least_squares, linear_probes
from .surgery import swap_attention

__all__ = [
    "ablate_heads", "ablation_sweep", "remaining_hooks", "uniform_pattern",
    "attention_progress", "attention_progress_score", "attention_patterns",
    "attention_structure", "mask_rows", "copying_test", "compare_to_nuclear_norm",
    "nuclear_norm_batch", "nuclear_norm_complete", "analysis_batch", "analyze_run",
    "negate_matrix", "patch_activations", "patch_between_models", "fit_least_squares",
    "linear_probes", "swap_attention",
]
