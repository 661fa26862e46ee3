"""Activation patching: clean vs corrupted input, or one checkpoint into another, via hooks.

Sites follow TransformerLens' axis conventions, through its own patch setters
(``transformer_lens.patching``): per-head vectors (``attn.hook_q/k/v/z``) are
[batch, pos, head, d_head], attention patterns/scores [batch, head, query, key], everything
else [batch, pos, ...]. The loop over sites is ours rather than TransformerLens'
``generic_activation_patch``: that function derives each hook name from
``get_act_name(name, layer)``, so it cannot patch hooks outside the blocks (``hook_embed``,
``ln_final.hook_out``, ``unembed.hook_out``), and it reports one scalar per metric function
where every analyzer here reports the task's whole metric dictionary from one forward.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import pandas as pd
import torch
from torch import Tensor
from ..progress import progress_bar
from transformer_lens.patching import (
    layer_head_pattern_patch_setter, layer_head_vector_patch_setter, layer_pos_patch_setter,
)

from ..metrics import finite_scalar_metrics
from ..models.handle import PlateauModel
from ..tasks.base import check_choice
from ..errors import InputError, check_finite_weights, check_name_list
from .hooks import check_hook_names, prepare, task_differences
from .schema import metric_records, tidy

GRANULARITIES = ("layer", "head", "position")
DIRECTIONS = ("denoise", "noise")
HEAD_VECTOR_HOOKS = ("attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_z")
"""[batch, pos, head, d_head] activations."""
PATTERN_HOOKS = ("attn.hook_pattern", "attn.hook_attn_scores")
"""[batch, head, query, key] activations."""
PER_LAYER_PREFIXES = ("hook_resid_", "hook_attn_", "hook_mlp_", "attn.", "mlp.", "ln1.", "ln2.")

PatchFn = Callable[[Tensor, Tensor], Tensor]


def hook_names(bridge, hooks: str | Sequence[str]) -> list[str]:
    """Expand per-layer names (``"attn.hook_z"``, ``"hook_resid_post"``) to
    ``blocks.{l}.…`` for every layer; full names pass through; validate all."""
    hooks = check_name_list("hooks", hooks)
    names = []
    for hook in hooks:
        if hook not in bridge.hook_dict and hook.startswith(PER_LAYER_PREFIXES):
            names.extend(f"blocks.{layer}.{hook}" for layer in range(bridge.cfg.n_layers))
        else:
            names.append(hook)
    return check_hook_names(bridge, names)


def _axes(name: str) -> str:
    if name.endswith(HEAD_VECTOR_HOOKS):
        return "head_vector"
    if name.endswith(PATTERN_HOOKS):
        return "pattern"
    return "position_first"


def patch_sites(name: str, activation: Tensor, granularity: str
                ) -> Iterator[tuple[int | None, int | None, PatchFn]]:
    """``(head, position, patch)`` for every site of one hook; ``patch(corrupted, clean)``
    returns the corrupted activation with that site taken from ``clean``."""
    axes = _axes(name)
    if granularity == "layer":
        yield None, None, lambda corrupted, clean: clean
    elif granularity == "position":
        # [b, p, ...] activations: TransformerLens' layer_pos setter; patterns: the query row
        count = activation.shape[2] if axes == "pattern" else activation.shape[1]
        for position in range(count):
            if axes == "pattern":
                def patch(corrupted, clean, position=position):
                    corrupted[:, :, position] = clean[:, :, position]
                    return corrupted
            else:
                def patch(corrupted, clean, position=position):
                    return layer_pos_patch_setter(corrupted, [None, position], clean)
            yield None, position, patch
    else:
        if axes == "position_first":
            raise InputError(f"granularity 'head' needs a per-head hook ({', '.join(HEAD_VECTOR_HOOKS + PATTERN_HOOKS)}), got {name}")
        setter = layer_head_vector_patch_setter if axes == "head_vector" else layer_head_pattern_patch_setter
        heads = activation.shape[2] if axes == "head_vector" else activation.shape[1]
        for head in range(heads):
            yield head, None, lambda corrupted, clean, head=head: setter(corrupted, [None, head], clean)


def _metrics(task, output: Tensor, truth_batch, other_batch=None) -> dict[str, float]:
    """The task metrics against ``truth_batch``; with ``other_batch``, also against its truth
    (``*_vs_corrupted``: e.g. LRMC's MSE to −X)."""
    row = finite_scalar_metrics(task, output, truth_batch)
    if other_batch is not None:
        other = finite_scalar_metrics(task, output, other_batch)
        row.update({f"{name}_vs_corrupted": value for name, value in other.items()})
    return row


@torch.no_grad()
def _patched_records(target: PlateauModel, source_cache, target_inputs: Tensor,
                     names: list[str], granularity: str, truth_batch, other_batch,
                     progress: bool, condition: str) -> list[dict]:
    records = []
    for name in progress_bar(names, desc="patching", disable=not progress, leave=False):
        clean_activation = source_cache[name]
        for head, position, patch in patch_sites(name, clean_activation, granularity):
            def hook(activation, hook, patch=patch, clean=clean_activation):
                return patch(activation.clone(), clean.to(activation.device, activation.dtype))
            with target.bridge.hooks(fwd_hooks=[(name, hook)]):
                output = target.bridge(target_inputs)
            records += metric_records(_metrics(target.task, output, truth_batch, other_batch),
                                      condition=condition, hook=name, head=head, position=position)
    return records


@torch.no_grad()
def patch_activations(model, clean_batch, corrupted_batch=None,
                      hooks: str | Sequence[str] = "attn.hook_z", granularity: str = "head",
                      direction: str = "denoise", task=None,
                      corrupt: Callable | None = None, progress: bool = True) -> pd.DataFrame:
    """Patch activations between a clean and a corrupted run of the same model.

    ``direction="denoise"``: run the corrupted input with clean activations patched in, one
    site at a time (site = a layer's whole activation, one head, or one position);
    ``"noise"``: the reverse. The default hook, ``attn.hook_z``, is each head's output
    before the output projection (the matrix-completion study's patched activation). The
    corrupted batch defaults to ``task.default_corruption(clean_batch)`` (LRMC: −X with the
    same mask, the study's) or ``corrupt(task, clean_batch)``. Metrics are against the clean
    run's truth, and ``*_vs_corrupted`` against the corrupted run's. Rows (see
    :mod:`.schema`): conditions ``clean`` and ``corrupted`` (unpatched, no hook) and
    ``patched``, labelled ``direction``.
    """
    check_choice("granularity", granularity, GRANULARITIES)
    check_choice("direction", direction, DIRECTIONS)
    model = prepare(model, clean_batch, task)
    task = model.task
    if corrupted_batch is None:
        corrupted_batch = corrupt(task, clean_batch) if corrupt else task.default_corruption(clean_batch)
    task.check_batch(corrupted_batch)
    if len(corrupted_batch) != len(clean_batch):
        raise InputError(f"corrupted_batch has {len(corrupted_batch)} samples, clean_batch "
                         f"{len(clean_batch)}: they must pair up")
    names = hook_names(model.bridge, hooks)
    source, target = ((clean_batch, corrupted_batch) if direction == "denoise"
                      else (corrupted_batch, clean_batch))
    _, cache = model.bridge.run_with_cache(source.inputs, names_filter=lambda n: n in names)
    records = (
        metric_records(_metrics(task, model(clean_batch.inputs), clean_batch, corrupted_batch),
                       condition="clean", direction=direction)
        + metric_records(_metrics(task, model(corrupted_batch.inputs), clean_batch, corrupted_batch),
                         condition="corrupted", direction=direction))
    for row in _patched_records(model, cache, target.inputs, names, granularity, clean_batch,
                                corrupted_batch, progress, "patched"):
        records.append({**row, "direction": direction})
    return tidy(records, ["direction"])


SHAPE_FIELDS = ("n_layers", "n_heads", "d_model", "d_head", "d_mlp")


@torch.no_grad()
def patch_between_models(source_model, target_model, batch,
                         hooks: str | Sequence[str] = "attn.hook_z", granularity: str = "layer",
                         task=None, progress: bool = True) -> pd.DataFrame:
    """Patch ``source_model``'s activations into ``target_model`` on the same input (e.g. a
    post-transition checkpoint into a pre-transition one), one site at a time. Rows:
    conditions ``source`` and ``target`` (unpatched) and ``patched``."""
    check_choice("granularity", granularity, GRANULARITIES)
    target = prepare(target_model, batch, task)
    if isinstance(source_model, PlateauModel) and isinstance(target_model, PlateauModel):
        differ = task_differences(source_model.task, target_model.task)
        if differ:
            raise InputError(f"source_model and target_model are of different tasks ({'; '.join(differ)}): "
                             f"their activations encode different inputs, so patching one into "
                             f"the other measures nothing; use two checkpoints of one run")
    source = PlateauModel.resolve(source_model, target.task)
    check_finite_weights(source, "source_model")
    different = [f"{field}: {getattr(source.cfg, field, None)} != {getattr(target.cfg, field, None)}"
                 for field in SHAPE_FIELDS
                 if getattr(source.cfg, field, None) != getattr(target.cfg, field, None)]
    if different:
        raise InputError(f"source_model and target_model must have the same shape to patch "
                         f"between them; they differ in {', '.join(different)}")
    names = hook_names(target.bridge, hooks)
    check_hook_names(source.bridge, names)
    _, cache = source.bridge.run_with_cache(batch.inputs, names_filter=lambda n: n in names)
    task = target.task
    records = (metric_records(_metrics(task, source(batch.inputs), batch), condition="source")
               + metric_records(_metrics(task, target(batch.inputs), batch), condition="target"))
    records += _patched_records(target, cache, batch.inputs, names, granularity, batch, None,
                                progress, "patched")
    return tidy(records)
