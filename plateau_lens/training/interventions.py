"""Training interventions of the loss-plateau study (Gopalani & Hu 2025, arXiv 2506.13688):
optimal-init training, i.e. components copied from a trained model and frozen (``[init]
checkpoint / components / freeze``). Its other intervention, attention biasing, is part of the
model at every step it applies to, so loading a checkpoint replays it: it lives in
:mod:`plateau_lens.models.attention_bias`."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor

from ..config.components import COMPONENTS


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


def components_of(network: torch.nn.Module, names: Iterable[str] = COMPONENTS) -> list[str]:
    """The ``names`` (default: all of ``COMPONENTS``) that select a parameter of ``network``:
    ``embed_ln`` only on post-LN (``architecture = "bert"``) models, ``ln_final`` only on
    pre-LN ones."""
    present = []
    for component in names:
        try:
            component_parameters(network, [component])
        except ValueError:
            continue
        present.append(component)
    return present


def component_parameters(network: torch.nn.Module, components: Iterable[str]) -> dict[str, torch.nn.Parameter]:
    """Parameters of the named components (see ``COMPONENTS``), by parameter name. A component
    the model does not have (``ln_final`` of a post-LN model, ``embed_ln`` of a pre-LN one)
    is refused rather than silently selecting nothing."""
    components = list(components)
    unknown = [c for c in components if c not in COMPONENTS]
    if unknown:
        raise ValueError(f"unknown component(s) {unknown}; allowed: {sorted(COMPONENTS)}")
    selected, found = {}, set()
    for name, parameter in network.named_parameters():
        dotted = "." + name
        for component in components:
            if any(pattern in dotted if pattern.startswith(".") else name.startswith(pattern)
                   for pattern in COMPONENTS[component]):
                selected[name] = parameter
                found.add(component)
    absent = [c for c in components if c not in found]
    if absent:
        raise ValueError(f"component(s) {absent} select no parameter of this model (a post-LN "
                         f"model has embed_ln and no ln_final; a pre-LN one the reverse)")
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
