"""Training interventions of the loss-plateau study: attention biasing, component-wise and
optimal-init training, frozen components."""

from __future__ import annotations

from typing import Iterable

import torch
from jaxtyping import Float
from torch import Tensor

from .models.components import COMPONENTS
from .models.handle import plateau_attentions, set_attention_bias  # noqa: F401  (re-exported)


OPTIMAL_INIT = {
    "mlp_ln2_unembed_lnf": ("mlp", "ln2", "unembed", "ln_final"),
    "attn_qk_embed_ln1": ("attn.q", "attn.k", "embed", "pos_embed", "ln1"),
    "attn_embed_ln1": ("attn", "embed", "pos_embed", "ln1"),
    "embed_unembed_lnf": ("embed", "pos_embed", "unembed", "ln_final"),
}
"""Optimal-init variants of the study's ``src/train_mws_optimal_init.py`` (Fig. 5): the
components copied from a trained model and frozen. The script's active line copies and
freezes MLP, ln_2, lm_head and ln_f (``mlp_ln2_unembed_lnf``, everything but the attention
and embeddings); its commented-out alternatives are attention Q/K + embeddings + ln_1
(``attn_qk_embed_ln1``), the whole attention + embeddings + ln_1 (``attn_embed_ln1``) and
embeddings + lm_head + ln_f (``embed_unembed_lnf``). "embeddings" is the study's wte and wpe:
our ``embed`` and ``pos_embed``. Use as ``[init] components``."""


def attention_bias_multiplier(task, c: float) -> Float[Tensor, "query key"]:
    """1 + (c − 1)·M for the task's optimal-attention mask M, leaving the first answer row
    (the separator's row) unscaled, as in the study."""
    if not c > 0:
        raise ValueError(f"attention bias c must be > 0, got {c}")
    optimal = task.optimal_attention()
    if optimal is None:
        raise ValueError(f"attention biasing needs an optimal attention mask, and task "
                         f"{task.name!r} defines none")
    optimal = optimal.clone()
    optimal[task.prompt_length - 1] = 0
    return 1 + (c - 1) * optimal


def configured_attention_bias(task, train_config, step: int) -> Tensor | None:
    """The multiplier a run's ``[train] attention_bias`` asks for at ``step`` (None: off)."""
    if train_config.attention_bias == 1.0 or step < train_config.attention_bias_start:
        return None
    return attention_bias_multiplier(task, train_config.attention_bias)


def component_parameters(network: torch.nn.Module, components: Iterable[str]) -> dict[str, torch.nn.Parameter]:
    """Parameters of the named components (see ``COMPONENTS``), by parameter name."""
    components = list(components)
    unknown = [c for c in components if c not in COMPONENTS]
    if unknown:
        raise ValueError(f"unknown component(s) {unknown}; allowed: {sorted(COMPONENTS)}")
    selected = {}
    for name, parameter in network.named_parameters():
        dotted = "." + name
        for component in components:
            if any(pattern in dotted if pattern.startswith(".") else name.startswith(pattern)
                   for pattern in COMPONENTS[component]):
                selected[name] = parameter
    return selected


def copy_components(target: torch.nn.Module, source_state: dict[str, Tensor],
                    components: Iterable[str]) -> list[str]:
    """Copy the named components' weights from a state dict into ``target``."""
    copied = []
    with torch.no_grad():
        for name, parameter in component_parameters(target, components).items():
            if name not in source_state or source_state[name].shape != parameter.shape:
                raise ValueError(f"reference checkpoint has no matching tensor for {name}")
            parameter.copy_(source_state[name])
            copied.append(name)
    return copied


def freeze_components(network: torch.nn.Module, components: Iterable[str]) -> list[str]:
    frozen = []
    for name, parameter in component_parameters(network, components).items():
        parameter.requires_grad_(False)
        frozen.append(name)
    return frozen
