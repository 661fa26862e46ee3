"""Activation patching: clean vs corrupted input, or one checkpoint into another, via hooks."""

from __future__ import annotations

from typing import Callable, Sequence

import einops
import pandas as pd
import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..tasks.base import MatrixBatch
from .hooks import check_hook_names, check_task_batch, model_task
from .metrics import output_metrics

GRANULARITIES = ("layer", "head", "position")
DIRECTIONS = ("denoise", "noise")


def negate_matrix(task, batch: MatrixBatch) -> MatrixBatch:
    """The study's corruption: −X with the same observation mask."""
    return task.with_inputs(batch, matrix=-batch.matrix)


def hook_names(model, hooks: str | Sequence[str]) -> list[str]:
    """Expand per-layer names (``"attn.hook_z"``) to ``blocks.{l}.attn.hook_z``; validate."""
    hooks = [hooks] if isinstance(hooks, str) else list(hooks)
    names = []
    for hook in hooks:
        if hook in model.hook_dict or not hook.startswith(("hook_", "attn.", "mlp.", "ln")):
            names.append(hook)
        else:
            names.extend(f"blocks.{layer}.{hook}" for layer in range(model.cfg.n_layers))
    return check_hook_names(model, names)


def _as_heads(activation: Tensor, n_heads: int) -> Tensor:
    """View an activation with a head axis at dim 2 ([b, p, h, d]) or dim 1 for patterns."""
    if activation.ndim == 3 and activation.shape[-1] % n_heads == 0:
        return einops.rearrange(activation, "b p (h d) -> b p h d", h=n_heads)
    if activation.ndim == 4:
        return activation
    raise ValueError(f"cannot split an activation of shape {tuple(activation.shape)} by head")


def _sites(model, name: str, activation: Tensor, granularity: str):
    """(head, position, patch_fn) for every site of one hook."""
    n_heads = model.cfg.n_heads
    if granularity == "layer":
        yield None, None, lambda new, clean: clean
    elif granularity == "position":
        for position in range(activation.shape[1] if activation.ndim == 3 else activation.shape[2]):
            def patch(new, clean, position=position):
                new = new.clone()
                if new.ndim == 3:
                    new[:, position] = clean[:, position]
                else:  # pattern [b, h, q, k]: patch query row
                    new[:, :, position] = clean[:, :, position]
                return new
            yield None, position, patch
    else:
        if not (activation.ndim == 4 or name.endswith(("hook_z", "hook_q", "hook_k", "hook_v",
                                                          "hook_pattern", "hook_attn_scores"))):
            raise ValueError(f"granularity 'head' needs a per-head hook (hook_z/q/k/v/pattern), got {name}")
        for head in range(n_heads):
            def patch(new, clean, head=head):
                new = new.clone()
                if new.ndim == 4:
                    new[:, head] = clean[:, head]
                else:
                    _as_heads(new, n_heads)[:, :, head] = _as_heads(clean, n_heads)[:, :, head]
                return new
            yield head, None, patch


def _metrics(task, output, truth_batch, other_batch=None) -> dict[str, float]:
    """Metric vs the truth of ``truth_batch``; for LRMC also MSE vs ``other_batch``'s matrix."""
    row = output_metrics(task, output, truth_batch)
    if other_batch is not None and task.kind == "regression":
        other = output_metrics(task, output, other_batch)
        row.update({f"{k}_vs_other": v for k, v in other.items() if k != "masked_abs_pred"})
    return row


@torch.no_grad()
def _patch_runs(target_model, source_cache, target_inputs, names, granularity, task,
                truth_batch, other_batch, progress) -> list[dict]:
    rows = []
    for name in tqdm(names, desc="patching", disable=not progress):
        layer = int(name.split(".")[1]) if name.startswith("blocks.") else None
        clean_activation = source_cache[name]
        for head, position, patch in _sites(target_model, name, clean_activation, granularity):
            def hook(activation, hook, patch=patch, clean_activation=clean_activation):
                return patch(activation, clean_activation.to(activation.dtype))
            with target_model.hooks(fwd_hooks=[(name, hook)]):
                output = target_model(target_inputs)
            rows.append({"hook": name, "layer": layer, "head": head, "position": position,
                         **_metrics(task, output, truth_batch, other_batch)})
    return rows


@torch.no_grad()
def patch_activations(model, clean_batch, corrupted_batch=None,
                      hooks: str | Sequence[str] = "attn.hook_z", granularity: str = "head",
                      direction: str = "denoise", task=None,
                      corrupt: Callable | None = None, progress: bool = False) -> pd.DataFrame:
    """Patch activations between a clean and a corrupted run of the same model.

    ``direction="denoise"``: run the corrupted input with clean activations patched in, one
    site at a time (site = a layer's whole activation, one head, or one position);
    ``"noise"``: the reverse. The corrupted batch defaults to ``corrupt(task, clean_batch)``
    (LRMC: −X with the same mask, the study's). Metrics are against the clean run's truth
    (for LRMC also ``*_vs_other``: against the corrupted matrix). Rows with ``hook="none"``
    are the unpatched clean and corrupted runs.
    """
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {list(GRANULARITIES)}, got {granularity!r}")
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {list(DIRECTIONS)}, got {direction!r}")
    task = model_task(model, task)
    check_task_batch(task, clean_batch)
    if corrupted_batch is None:
        corrupt = corrupt or (negate_matrix if task.kind == "regression" else None)
        if corrupt is None:
            raise ValueError("pass corrupted_batch= (or corrupt=) for a sequence task")
        corrupted_batch = corrupt(task, clean_batch)
    check_task_batch(task, corrupted_batch)
    names = hook_names(model, hooks)
    source, target = ((clean_batch, corrupted_batch) if direction == "denoise"
                      else (corrupted_batch, clean_batch))
    _, cache = model.run_with_cache(source.inputs, names_filter=lambda n: n in names)
    other = corrupted_batch if task.kind == "regression" else None
    rows = [
        {"hook": "none", "run": "clean", **_metrics(task, model(clean_batch.inputs), clean_batch, other)},
        {"hook": "none", "run": "corrupted",
         **_metrics(task, model(corrupted_batch.inputs), clean_batch, other)},
    ]
    rows += [{"run": f"patched ({direction})", **row} for row in _patch_runs(
        model, cache, target.inputs, names, granularity, task, clean_batch, other, progress)]
    return pd.DataFrame(rows)


@torch.no_grad()
def patch_between_models(source_model, target_model, batch,
                         hooks: str | Sequence[str] = "attn.hook_z", granularity: str = "layer",
                         task=None, progress: bool = False) -> pd.DataFrame:
    """Patch ``source_model``'s activations into ``target_model`` on the same input (e.g. a
    post-transition checkpoint into a pre-transition one), one site at a time."""
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {list(GRANULARITIES)}, got {granularity!r}")
    task = model_task(target_model, task)
    check_task_batch(task, batch)
    names = hook_names(target_model, hooks)
    hook_names(source_model, names)
    _, cache = source_model.run_with_cache(batch.inputs, names_filter=lambda n: n in names)
    rows = [
        {"hook": "none", "run": "source", **_metrics(task, source_model(batch.inputs), batch)},
        {"hook": "none", "run": "target", **_metrics(task, target_model(batch.inputs), batch)},
    ]
    rows += [{"run": "patched", **row} for row in _patch_runs(
        target_model, cache, batch.inputs, names, granularity, task, batch, None, progress)]
    return pd.DataFrame(rows)
