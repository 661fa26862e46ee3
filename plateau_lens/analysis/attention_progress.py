"""Attention progress (loss-plateau study): how much attention mass sits on the optimal keys."""

from __future__ import annotations

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from .hooks import check_task_batch, model_task


def attention_progress_score(pattern: Float[Tensor, "batch head query key"],
                             optimal: Float[Tensor, "query key"],
                             rows: range | None = None) -> Float[Tensor, "head"]:
    """Σ|A|·M / Σ|A| over the given query rows, per sample, then batch-averaged (per head)."""
    if rows is not None:
        pattern, optimal = pattern[:, :, rows.start : rows.stop], optimal[rows.start : rows.stop]
    magnitude = pattern.abs().float()
    on_optimal = (magnitude * optimal.to(magnitude.device)).sum(dim=(-2, -1))
    total = magnitude.sum(dim=(-2, -1)).clamp(min=1e-30)
    return (on_optimal / total).mean(dim=0)


@torch.no_grad()
def attention_progress(model, batch, task=None) -> pd.DataFrame:
    """Attention progress of every head on the task's answer rows (one row per layer × head)."""
    task = model_task(model, task)
    check_task_batch(task, batch)
    optimal = task.optimal_attention()
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(model.cfg.n_layers)]
    _, cache = model.run_with_cache(batch.inputs, names_filter=lambda n: n in names)
    rows = []
    for layer, name in enumerate(names):
        scores = attention_progress_score(cache[name], optimal, task.answer_rows())
        for head, value in enumerate(scores.tolist()):
            rows.append({"layer": layer, "head": head, "attention_progress": value})
    return pd.DataFrame(rows)
