"""Where LRMC heads attend: same row, same column, observed vs masked keys; mean maps."""

from __future__ import annotations

from typing import Sequence

import einops
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from ..tasks.base import MatrixBatch
from .hooks import check_task_batch, model_task


def _pattern_names(model) -> list[str]:
    return [f"blocks.{layer}.attn.hook_pattern" for layer in range(model.cfg.n_layers)]


def mask_rows(task, batch: MatrixBatch, rows: Sequence[int]) -> MatrixBatch:
    """The batch with whole rows of X masked (the study's row-masking option)."""
    bad = [r for r in rows if not 0 <= r < task.m]
    if bad:
        raise ValueError(f"rows must be in [0, {task.m - 1}], got {bad}")
    observed = batch.observed.clone()
    observed[:, list(rows)] = False
    return task.with_inputs(batch, observed=observed)


@torch.no_grad()
def attention_patterns(model, batch) -> Float[Tensor, "layer head query key"]:
    """Batch-averaged attention pattern of every head."""
    names = _pattern_names(model)
    _, cache = model.run_with_cache(batch.inputs, names_filter=lambda n: n in names)
    return torch.stack([cache[name].float().mean(0) for name in names])


@torch.no_grad()
def attention_structure(model, batch, task=None) -> pd.DataFrame:
    """Per head, the mean share of attention a query puts on keys in its own row, its own
    column (excluding itself), itself, observed keys and masked keys; under uniform attention
    these are (n−1)/(mn), (m−1)/(mn), 1/(mn) and the observed/masked fractions."""
    task = model_task(model, task)
    if task.kind != "regression":
        raise ValueError(f"attention_structure is defined for LRMC, not task {task.name!r}")
    check_task_batch(task, batch)
    rows = torch.arange(task.m).repeat_interleave(task.n)
    cols = torch.arange(task.n).repeat(task.m)
    self_mask = torch.eye(task.m * task.n, dtype=torch.bool)
    same_row = (rows[:, None] == rows[None, :]) & ~self_mask
    same_col = (cols[:, None] == cols[None, :]) & ~self_mask
    key_observed = einops.rearrange(batch.observed, "b m n -> b 1 1 (m n)").float()
    names = _pattern_names(model)
    _, cache = model.run_with_cache(batch.inputs, names_filter=lambda n: n in names)
    result = []
    for layer, name in enumerate(names):
        pattern = cache[name].float()  # [b, h, q, k]
        total = pattern.abs().sum(-1).clamp(min=1e-30)

        def share(weights: Tensor) -> Tensor:
            return ((pattern.abs() * weights).sum(-1) / total).mean(dim=(0, 2))

        shares = {
            "same_row": share(same_row.float()), "same_column": share(same_col.float()),
            "self": share(self_mask.float()), "observed_keys": share(key_observed),
            "masked_keys": share(1 - key_observed),
        }
        for head in range(model.cfg.n_heads):
            result.append({"layer": layer, "head": head,
                           **{k: v[head].item() for k, v in shares.items()}})
    return pd.DataFrame(result)


def uniform_baseline(task, observed_fraction: float) -> dict[str, float]:
    size = task.m * task.n
    return {"same_row": (task.n - 1) / size, "same_column": (task.m - 1) / size,
            "self": 1 / size, "observed_keys": observed_fraction,
            "masked_keys": 1 - observed_fraction}
