"""Head ablation: replace attention patterns by uniform (or batch-mean) attention via hooks."""

from __future__ import annotations

from typing import Iterable, Sequence, Union

import einops
import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from ..metrics import scalar_metrics
from ..models.handle import PlateauModel
from ..tasks.base import check_choice
from .hooks import prepare
from .partial_forward import (forward_from_layer, native_block, native_clean_pass, native_readout,
                              runs_native_modules)
from .schema import metric_records, tidy

HeadSpec = Union[str, int, Sequence[tuple[int, int]]]
ABLATION_MODES = ("uniform", "mean")


def resolve_heads(model, heads: HeadSpec) -> list[tuple[int, int]]:
    """``"all"``, a layer index, or ``[(layer, head), ...]`` → validated (layer, head) list."""
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    if isinstance(heads, str):
        if heads != "all":
            raise ValueError(f"heads must be 'all', a layer index or [(layer, head), ...], got {heads!r}")
        return [(layer, head) for layer in range(n_layers) for head in range(n_heads)]
    if _is_index(heads):
        if not 0 <= heads < n_layers:
            raise ValueError(f"heads: layer must be in [0, {n_layers - 1}], got {heads}")
        return [(int(heads), head) for head in range(n_heads)]
    resolved = []
    for item in heads:
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and all(map(_is_index, item))):
            raise ValueError(f"heads must be 'all', a layer index or a list of (layer, head) "
                             f"integer pairs, got {item!r} in {heads!r}")
        layer, head = item
        if not 0 <= layer < n_layers:
            raise ValueError(f"layer must be in [0, {n_layers - 1}], got {layer} in {item}")
        if not 0 <= head < n_heads:
            raise ValueError(f"head must be in [0, {n_heads - 1}], got {head} in {item}")
        resolved.append((int(layer), int(head)))
    if not resolved:
        raise ValueError("heads is empty: give at least one (layer, head)")
    return resolved


def _is_index(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def uniform_pattern(pattern: Float[Tensor, "batch head query key"], causal: bool) -> Tensor:
    """Uniform attention over the attended keys: 1/N (bidirectional) or 1/(i+1) (causal)."""
    n_query, n_key = pattern.shape[-2:]
    if not causal:
        return torch.full_like(pattern, 1.0 / n_key)
    allowed = torch.ones(n_query, n_key, device=pattern.device).tril()
    return (allowed / allowed.sum(-1, keepdim=True)).to(pattern.dtype).expand_as(pattern)


def replacement_patterns(pattern: Float[Tensor, "batch head query key"], layer: int, mode: str, causal: bool,
                         mean_patterns: dict[int, Tensor] | None) -> Tensor:
    """What an ablated head's pattern becomes: uniform, or its batch-mean pattern."""
    if mode == "uniform":
        return uniform_pattern(pattern, causal)
    return mean_patterns[layer].expand_as(pattern).to(pattern.dtype)


def ablation_hooks(model, heads: list[tuple[int, int]], mode: str, mean_patterns=None):
    """One ``hook_pattern`` hook per ablated layer, replacing the patterns of its ablated heads."""
    by_layer: dict[int, list[int]] = {}
    for layer, head in heads:
        by_layer.setdefault(layer, []).append(head)
    causal = model.cfg.attention_dir == "causal"
    hooks = []
    for layer, layer_heads in by_layer.items():
        ablated = head_masks(model.cfg.n_heads, [layer_heads])[0]

        def hook(pattern, hook, layer=layer, ablated=ablated):
            replacement = replacement_patterns(pattern, layer, mode, causal, mean_patterns)
            return torch.where(ablated.to(pattern.device), replacement, pattern)

        hooks.append((f"blocks.{layer}.attn.hook_pattern", hook))
    return hooks


def head_masks(n_heads: int, heads_per_copy: list[list[int]]) -> Tensor:
    """[copies 1 head 1 1] booleans, True where copy c ablates the head (broadcasts over
    [copies batch head query key])."""
    ablated = torch.zeros(len(heads_per_copy), n_heads, dtype=torch.bool)
    for copy, heads in enumerate(heads_per_copy):
        ablated[copy, heads] = True
    return einops.rearrange(ablated, "c h -> c 1 h 1 1")


@torch.no_grad()
def clean_pass(model: PlateauModel, batch, mode: str) -> tuple[dict[str, float],
                                                               dict[int, Tensor] | None,
                                                               dict[int, Tensor]]:
    """One cached forward: clean metrics, batch-mean patterns (``mode="mean"``, else None) and
    the residual entering every block, from which an ablation at layer l is recomputed."""
    layers = range(model.cfg.n_layers)
    patterns = {layer: f"blocks.{layer}.attn.hook_pattern" for layer in layers}
    residuals = {layer: f"blocks.{layer}.hook_resid_pre" for layer in layers}
    wanted = set(residuals.values()) | (set(patterns.values()) if mode == "mean" else set())
    output, cache = model.bridge.run_with_cache(batch.inputs, names_filter=lambda n: n in wanted)
    means = ({layer: cache[name].mean(0, keepdim=True) for layer, name in patterns.items()}
             if mode == "mean" else None)
    return (scalar_metrics(model.task, output, batch), means,
            {layer: cache[name] for layer, name in residuals.items()})


ABLATION_LABELS = ("scope", "heads", "mode")


@torch.no_grad()
def ablate_heads(model, batch, heads: HeadSpec = "all", mode: str = "uniform",
                 task=None, clean: dict[str, float] | None = None,
                 mean_patterns: dict[int, Tensor] | None = None,
                 residuals: dict[int, Tensor] | None = None) -> pd.DataFrame:
    """The task metrics with and without replacing the given heads' attention patterns
    (``blocks.{l}.attn.hook_pattern``, the softmax/linear pattern A after masking).

    ``mode="uniform"``: uniform attention over attended positions (1/N, or 1/(i+1) under a
    causal mask: the matrix-completion study's description); ``mode="mean"``: each head's
    batch-mean pattern (what the authors' ``uniform_ablation.py`` does).
    Rows (see :mod:`.schema`): conditions ``clean`` and ``ablated`` for every metric, labelled
    ``scope`` ("heads"), ``heads`` ("L0H1,L1H0") and ``mode``; ``hook`` is the pattern hook
    when every ablated head is in one layer.
    ``clean`` / ``mean_patterns`` / ``residuals``: the unablated metrics, batch-mean patterns
    and residual streams entering each block (``blocks.{l}.hook_resid_pre``), if already
    computed; with ``residuals`` the ablated pass starts at the first ablated layer
    (:func:`forward_from_layer`), since the layers below it are unchanged.
    """
    check_choice("mode", mode, ABLATION_MODES)
    model = prepare(model, batch, task)
    resolved = resolve_heads(model, heads)
    if clean is None or (mode == "mean" and mean_patterns is None):  # one clean pass for both
        clean_metrics, means, _ = clean_pass(model, batch, mode)
        clean = clean_metrics if clean is None else clean
        mean_patterns = means if mean_patterns is None else mean_patterns
    ablated = hooked_ablation_metrics(model, batch, resolved, mode, mean_patterns, residuals)
    return tidy(ablation_records(resolved, mode, clean, ablated, scope="heads"), ABLATION_LABELS)


def hooked_ablation_metrics(model: PlateauModel, batch, heads: list[tuple[int, int]], mode: str,
                            mean_patterns, residuals: dict[int, Tensor] | None) -> dict[str, float]:
    """The task metrics with ``heads`` ablated through ``hook_pattern`` hooks: a full forward,
    or with ``residuals`` one resumed at the first ablated layer."""
    first_layer = min(layer for layer, _ in heads)
    with model.bridge.hooks(fwd_hooks=ablation_hooks(model, heads, mode, mean_patterns)):
        if residuals is None:
            output = model.bridge(batch.inputs)
        else:
            output = forward_from_layer(model, residuals[first_layer], first_layer)
    return scalar_metrics(model.task, output, batch)


def ablation_records(heads: list[tuple[int, int]], mode: str, clean: dict[str, float],
                     ablated: dict[str, float], scope: str, head: int | None = None) -> list[dict]:
    """Schema records of one ablation: every metric, clean and ablated."""
    label = ",".join(f"L{layer}H{h}" for layer, h in heads)
    layers = {layer for layer, _ in heads}
    hook = f"blocks.{layers.pop()}.attn.hook_pattern" if len(layers) == 1 else None
    fields = dict(hook=hook, head=head, scope=scope, heads=label, mode=mode)
    return (metric_records(clean, condition="clean", **fields)
            + metric_records(ablated, condition="ablated", **fields))


# Floats in the widest activation of one stacked forward (16 MiB in float32). By default
# glibc serves larger buffers with a fresh mmap on every allocation, and their page faults
# cost more than wider stacking saves: measured on 2 cores, a batch-256 sweep took 2.2 s with
# 9 copies per forward and 1.4 s with 2 (batch 64: 0.55 s with 9, 0.44 s with 5). With the
# heap kept (plateau_lens.allocator.reuse_freed_memory, as analyze_run does) the faults are
# gone but a 16x larger budget was no faster (1 thread: 4.35 vs 4.52 s at batch 256, 1.32 vs
# 1.20 s at batch 64).
STACKED_ACTIVATION_BUDGET = 2 ** 22


def copies_per_forward(model, residual: Float[Tensor, "batch pos d_model"], n_copies: int) -> int:
    """How many stacked copies of the batch one forward takes: the widest activation
    (MLP hidden, residual or attention pattern) stays within ``STACKED_ACTIVATION_BUDGET``
    floats, at least one copy, and the copies are spread evenly over the forwards."""
    batch, seq = residual.shape[:2]
    cfg = model.cfg
    widest = seq * max(cfg.d_model, cfg.d_mlp or 0, cfg.n_heads * seq)
    fitting = max(1, STACKED_ACTIVATION_BUDGET // (batch * widest))
    forwards = -(-n_copies // fitting)
    return -(-n_copies // forwards)


@torch.no_grad()
def native_layer_ablations(model: PlateauModel, batch, layer: int, heads_per_copy: list[list[int]],
                           mode: str, mean_patterns, residual: Float[Tensor, "batch pos d_model"]
                           ) -> list[dict[str, float]]:
    """Metrics of several ablations at one layer on plateau-lens' native modules.

    Block ``layer`` computes Q, K, V and A once for the batch; the edited patterns of all
    copies in a group (:func:`copies_per_forward`) share them (z_c = A_c·V), and the copies
    run stacked along the batch axis from there on."""
    network = model.network
    causal = model.cfg.attention_dir == "causal"
    per_forward = copies_per_forward(model, residual, len(heads_per_copy))
    metrics = []
    for first in range(0, len(heads_per_copy), per_forward):
        group = heads_per_copy[first : first + per_forward]
        ablated = head_masks(model.cfg.n_heads, group).to(residual.device)

        def edit(pattern: Float[Tensor, "batch head query key"]) -> Tensor:
            replacement = replacement_patterns(pattern, layer, mode, causal, mean_patterns)
            return torch.where(ablated, replacement, pattern)  # [copies batch head query key]

        hidden = native_block(network.layers[layer], residual, edit)
        hidden = einops.rearrange(hidden, "c b p d -> (c b) p d")
        for block in network.layers[layer + 1:]:
            hidden = native_block(block, hidden)
        output = native_readout(network, hidden)
        for copy in einops.rearrange(output, "(c b) p o -> c b p o", c=len(group)):
            metrics.append(scalar_metrics(model.task, copy, batch))
    return metrics


def sweep_targets(model, layers: bool = True) -> list[tuple[str, int, int | None, HeadSpec]]:
    """``(scope, layer, head, heads)`` for each head alone and (``layers``) each whole layer,
    layer by layer: the ablations :func:`ablation_sweep` runs."""
    targets: list[tuple[str, int, int | None, HeadSpec]] = []
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            targets.append(("head", layer, head, [(layer, head)]))
        if layers:
            targets.append(("layer", layer, None, layer))
    return targets


def ablation_sweep(model, batch, mode: str = "uniform", task=None, layers: bool = True,
                   progress: bool = True) -> pd.DataFrame:
    """Ablate each head alone, and (``layers``) each whole layer, in turn (the study's
    per-head and per-layer uniform ablations); rows as :func:`ablate_heads`, with ``scope``
    "head" or "layer" and ``head`` set for single heads.

    One cached clean pass; each ablation then recomputes only the layers from the ablated one
    on (for 4 layers: 2.5 instead of 4 layers per ablation on average). On plateau-lens' own
    models with no hook attached, the sweep runs the native modules: the ablations of one
    layer share its Q, K, V and patterns and run as stacked copies of the batch
    (:func:`native_layer_ablations`); other models, or hooks of the user's, take one hooked
    forward per ablation."""
    check_choice("mode", mode, ABLATION_MODES)
    model = prepare(model, batch, task)
    targets = sweep_targets(model, layers)
    records = []
    if runs_native_modules(model):
        with torch.no_grad():
            output, residuals, patterns = native_clean_pass(model.network, batch.inputs,
                                                            keep_patterns=mode == "mean")
        clean = scalar_metrics(model.task, output, batch)
        means = (None if patterns is None else
                 {layer: pattern.mean(0, keepdim=True) for layer, pattern in enumerate(patterns)})
        for layer in tqdm(range(model.cfg.n_layers), desc="ablated layers", disable=not progress,
                          leave=False):
            layer_targets = [t for t in targets if t[1] == layer]
            heads = [resolve_heads(model, spec) for _, _, _, spec in layer_targets]
            metrics = native_layer_ablations(model, batch, layer,
                                             [[h for _, h in hs] for hs in heads], mode, means,
                                             residuals[layer])
            for (scope, _, head, _), resolved, ablated in zip(layer_targets, heads, metrics):
                records += ablation_records(resolved, mode, clean, ablated, scope, head)
    else:
        clean, means, residuals = clean_pass(model, batch, mode)
        for scope, layer, head, spec in tqdm(targets, desc="ablations", disable=not progress,
                                             leave=False):
            resolved = resolve_heads(model, spec)
            ablated = hooked_ablation_metrics(model, batch, resolved, mode, means, residuals)
            records += ablation_records(resolved, mode, clean, ablated, scope, head)
    return tidy(records, ABLATION_LABELS)


__all__: Iterable[str] = ["ablate_heads", "ablation_sweep", "resolve_heads", "uniform_pattern"]
