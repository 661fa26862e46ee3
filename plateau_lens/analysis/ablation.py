"""Head ablation: replace attention patterns by uniform (or batch-mean) attention via hooks."""

from __future__ import annotations

from functools import partial
from typing import Callable, Iterable, Sequence, Union

import einops
import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor
from ..progress import progress_bar

from ..errors import InputError
from ..metrics import finite_scalar_metrics
from ..models.handle import PlateauModel
from ..tasks.base import check_choice
from .hooks import prepare
from .fastpath.clean_pass import CleanPass, shared_clean_pass
from .fastpath.parallel import analysis_workers, parallel_map, run_parallel, sample_chunks
from .fastpath.partial_forward import (forward_from_layer, materialised, native_block, native_readout,
                              runs_native_modules)
from .schema import metric_records, tidy

HeadSpec = Union[str, int, Sequence[tuple[int, int]]]
ABLATION_MODES = ("uniform", "mean")


def resolve_heads(model, heads: HeadSpec) -> list[tuple[int, int]]:
    """``"all"``, a layer index, or ``[(layer, head), ...]`` → validated (layer, head) list."""
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    if isinstance(heads, str):
        if heads != "all":
            raise InputError(f"heads must be 'all', a layer index or [(layer, head), ...], got {heads!r}")
        return [(layer, head) for layer in range(n_layers) for head in range(n_heads)]
    if not _is_index(heads) and (isinstance(heads, bytes) or not isinstance(heads, Iterable)):
        raise InputError(f"heads must be 'all', a layer index or a list of (layer, head) integer "
                         f"pairs, got {heads!r} ({type(heads).__name__})")
    if _is_index(heads):
        if not 0 <= heads < n_layers:
            raise InputError(f"heads: layer must be in [0, {n_layers - 1}], got {heads}")
        return [(int(heads), head) for head in range(n_heads)]
    resolved = []
    for item in heads:
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and all(map(_is_index, item))):
            raise InputError(f"heads must be 'all', a layer index or a list of (layer, head) "
                             f"integer pairs, got {item!r} in {heads!r}")
        layer, head = item
        if not 0 <= layer < n_layers:
            raise InputError(f"heads: layer must be in [0, {n_layers - 1}], got {layer} in {item}")
        if not 0 <= head < n_heads:
            raise InputError(f"heads: head must be in [0, {n_heads - 1}], got {head} in {item}")
        resolved.append((int(layer), int(head)))
    if not resolved:
        raise InputError("heads is empty: give at least one (layer, head)")
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
    return (finite_scalar_metrics(model.task, output, batch), means,
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
    if residuals is not None:
        check_residuals(model, batch, residuals, min(layer for layer, _ in resolved))
    if clean is None or (mode == "mean" and mean_patterns is None):  # one clean pass for both
        clean_metrics, means, _ = clean_pass(model, batch, mode)
        clean = clean_metrics if clean is None else clean
        mean_patterns = means if mean_patterns is None else mean_patterns
    ablated = hooked_ablation_metrics(model, batch, resolved, mode, mean_patterns, residuals)
    return tidy(ablation_records(resolved, mode, clean, ablated, scope="heads"), ABLATION_LABELS)


def check_residuals(model: PlateauModel, batch, residuals: dict[int, Tensor], layer: int) -> None:
    """``residuals[layer]`` must be a [batch, pos, d_model] tensor of this batch's size (the
    stream entering block ``layer``); only the shape is checked, not which samples it holds."""
    expected = (len(batch), batch.inputs.shape[1], model.cfg.d_model)
    found = residuals.get(layer) if isinstance(residuals, dict) else None
    if not isinstance(found, Tensor) or tuple(found.shape) != expected:
        shape = tuple(found.shape) if isinstance(found, Tensor) else found
        raise InputError(f"residuals[{layer}] must be the [batch, pos, d_model] = {list(expected)} "
                         f"residual stream entering block {layer} on this batch "
                         f"(blocks.{layer}.hook_resid_pre), got {shape}: pass the residuals "
                         f"computed on this batch, or none")


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
    return finite_scalar_metrics(model.task, output, batch)


def ablation_records(heads: list[tuple[int, int]], mode: str, clean: dict[str, float],
                     ablated: dict[str, float], scope: str, head: int | None = None) -> list[dict]:
    """Schema records of one ablation: every metric, clean and ablated."""
    label = ",".join(f"L{layer}H{h}" for layer, h in heads)
    layers = {layer for layer, _ in heads}
    hook = f"blocks.{layers.pop()}.attn.hook_pattern" if len(layers) == 1 else None
    fields = dict(hook=hook, head=head, scope=scope, heads=label, mode=mode)
    return (metric_records(clean, condition="clean", **fields)
            + metric_records(ablated, condition="ablated", **fields))


@torch.no_grad()
def native_sweep_outputs(model: PlateauModel, clean: CleanPass, heads_by_layer: dict[int, list[list[int]]],
                         mode: str, mean_patterns, progress: bool = False) -> dict[int, Tensor]:
    """The model's outputs [copies batch pos out] for several ablations per layer, on
    plateau-lens' native modules: copy c of layer l ablates ``heads_by_layer[l][c]``.

    Each ablation resumes at its layer from the clean pass's ``blocks.{l}.hook_resid_pre``.
    The batch is cut into chunks of samples (:func:`~.parallel.sample_chunks`, counting the
    copies' rows); in a chunk, block l computes Q, K, V and A once, the edited patterns of all
    the layer's copies share them (z_c = A_c·V), and the copies run stacked from there on.
    The chunks of every layer run on :func:`~.parallel.run_parallel`'s threads."""
    outputs: dict[int, Tensor] = {}
    tasks = []
    for layer, heads_per_copy in heads_by_layer.items():  # earliest layer (most work) first
        residual = clean.residuals[layer]
        outputs[layer] = clean.output.new_empty((len(heads_per_copy),) + tuple(clean.output.shape))
        edit = ablation_edit(model, layer, heads_per_copy, mode, mean_patterns)
        for chunk in sample_chunks(len(residual), len(heads_per_copy) * residual.shape[1]):
            tasks.append(partial(_ablated_chunk, model.network, layer, residual[chunk], edit,
                                 outputs[layer][:, chunk]))
    with progress_bar(total=len(tasks), desc="ablation chunks", disable=not progress, leave=False) as bar:
        run_parallel(tasks, analysis_workers(clean.output.device), done=bar.update)
    return outputs


def ablation_edit(model: PlateauModel, layer: int, heads_per_copy: list[list[int]], mode: str,
                  mean_patterns) -> Callable[[Tensor], Tensor]:
    """The pattern edit of ``layer`` that makes one copy per ablation: [batch head query key]
    → [copies batch head query key], copy c with the heads ``heads_per_copy[c]`` replaced."""
    ablated = head_masks(model.cfg.n_heads, heads_per_copy)
    causal = model.cfg.attention_dir == "causal"

    def edit(pattern: Float[Tensor, "batch head query key"]) -> Float[Tensor, "copies batch head query key"]:
        replacement = replacement_patterns(pattern, layer, mode, causal, mean_patterns)
        return torch.where(ablated.to(pattern.device), replacement, pattern)

    return edit


def _ablated_chunk(network, layer: int, residual: Float[Tensor, "batch pos d_model"],
                   edit: Callable[[Tensor], Tensor], out: Float[Tensor, "copies batch pos out"]) -> None:
    """One chunk of :func:`native_sweep_outputs`: every copy of ``layer``, written into
    ``out``. The blocks after ``layer`` materialise their patterns (:func:`materialised`)."""
    hidden = native_block(network.layers[layer], residual, edit)
    hidden = einops.rearrange(hidden, "c b p d -> (c b) p d")
    for block in network.layers[layer + 1:]:
        hidden = native_block(block, hidden, materialised)
    out.copy_(einops.rearrange(native_readout(network, hidden), "(c b) p o -> c b p o", c=len(out)))


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
    models with no hook attached, the sweep runs the native modules: the clean pass is the
    one shared with the checkpoint's other analyzers (:func:`~.clean_pass.shared_clean_pass`),
    and the ablations of one layer share its Q, K, V and patterns and run as stacked copies
    of the batch, in chunks on every core (:func:`native_sweep_outputs`); other models, or
    hooks of the user's, take one hooked forward per ablation."""
    check_choice("mode", mode, ABLATION_MODES)
    model = prepare(model, batch, task)
    targets = sweep_targets(model, layers)
    if runs_native_modules(model):
        records = native_sweep_records(model, batch, targets, mode, progress)
    else:
        records = []
        clean, means, residuals = clean_pass(model, batch, mode)
        for scope, layer, head, spec in progress_bar(targets, desc="ablations", disable=not progress,
                                             leave=False):
            resolved = resolve_heads(model, spec)
            ablated = hooked_ablation_metrics(model, batch, resolved, mode, means, residuals)
            records += ablation_records(resolved, mode, clean, ablated, scope, head)
    return tidy(records, ABLATION_LABELS)


def native_sweep_records(model: PlateauModel, batch, targets, mode: str, progress: bool) -> list[dict]:
    """The records of :func:`ablation_sweep` on the native modules: the shared clean pass,
    every ablation's output (:func:`native_sweep_outputs`), then the metrics of the clean
    output and of every copy, computed on every core (~10 small operations each)."""
    shared = shared_clean_pass(model, batch.inputs, patterns=mode == "mean")
    means = (None if mode != "mean" else
             {layer: pattern.mean(0, keepdim=True) for layer, pattern in enumerate(shared.patterns)})
    by_layer: dict[int, list[tuple[tuple, list[tuple[int, int]]]]] = {}
    for target in targets:
        by_layer.setdefault(target[1], []).append((target, resolve_heads(model, target[3])))
    heads_by_layer = {layer: [[head for _, head in resolved] for _, resolved in items]
                      for layer, items in by_layer.items()}
    outputs = native_sweep_outputs(model, shared, heads_by_layer, mode, means, progress)
    every_output = [shared.output] + [copy for layer in by_layer for copy in outputs[layer]]
    clean, *ablated = parallel_map(lambda output: finite_scalar_metrics(model.task, output, batch),
                                   every_output, analysis_workers(shared.output.device))
    records = []
    ablated_metrics = iter(ablated)
    for items in by_layer.values():
        for (scope, _, head, _), resolved in items:
            records += ablation_records(resolved, mode, clean, next(ablated_metrics), scope, head)
    return records


__all__: Iterable[str] = ["ablate_heads", "ablation_sweep", "resolve_heads", "uniform_pattern"]
