"""Analyzers: each takes a model (a :class:`~plateau_lens.models.PlateauModel`, or a
TransformerBridge with ``task=``) and a batch, reads it through hook names, and returns a
tidy pandas DataFrame in one schema (:mod:`.schema`). On plateau-lens' own models with no
hook attached, ``ablation_sweep`` and ``linear_probes`` compute the same values on the
native modules (:mod:`.fastpath.partial_forward`)."""

from .ablation import ablate_heads, ablation_sweep, uniform_pattern
from .attention_progress import attention_progress
from .attention_structure import (attention_patterns, attention_structure, mask_rows,
                                  mean_attention_patterns, study_row_mask)
from .collapse import representation_collapse, repetition
from .copying import copying_test
from .embeddings import (permuted_positions, positional_embedding_neighbours,
                         positional_embedding_norms, positional_embedding_tsne,
                         token_embedding_norms, token_embedding_pca, token_progress)
from .nuclear_norm import (compare_to_nuclear_norm, nuclear_norm_batch, nuclear_norm_complete,
                           nuclear_norm_lambda_sweep)
from .ood import OODCondition, default_conditions, ood_evaluation
from .over_training import analysis_batch, analyze_run
from .fastpath.partial_forward import remaining_hooks
from .patching import patch_activations, patch_between_models
from ..analyzers import ANALYZERS, register_analyzer, resolve_analyzer
from .probes import fit_least_squares, linear_probes, probe_batches
from .schema import wide
from .surgery import swap_attention
from .token_probe import next_token_probe

__all__ = [
    "ablate_heads", "ablation_sweep", "remaining_hooks", "uniform_pattern",
    "attention_progress", "attention_patterns", "mean_attention_patterns",
    "attention_structure", "mask_rows", "study_row_mask", "representation_collapse", "repetition",
    "copying_test", "compare_to_nuclear_norm", "nuclear_norm_batch", "nuclear_norm_complete",
    "nuclear_norm_lambda_sweep", "analysis_batch", "analyze_run", "patch_activations",
    "patch_between_models", "fit_least_squares", "linear_probes", "probe_batches", "wide",
    "swap_attention", "next_token_probe",
    "token_embedding_norms", "token_embedding_pca", "token_progress", "positional_embedding_norms",
    "positional_embedding_tsne", "positional_embedding_neighbours", "permuted_positions",
    "OODCondition", "default_conditions", "ood_evaluation",
    "ANALYZERS", "register_analyzer", "resolve_analyzer",
]
