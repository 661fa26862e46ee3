"""Representation collapse and repetition bias (loss-plateau study)."""

from __future__ import annotations

from typing import Sequence

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from ..training.evaluation import sequence_metrics
from .hooks import check_hook_names, check_task_batch, model_task

COLLAPSE_HOOKS = {
    "final_ln": "ln_final.hook_normalized",
    "pre_attention": "blocks.{last}.ln1.hook_normalized",
    "attention_out": "blocks.{last}.hook_attn_out",
    "resid_mid": "blocks.{last}.hook_resid_mid",
    "mlp_out": "blocks.{last}.hook_mlp_out",
}


def mean_pairwise_cosine(hidden: Float[Tensor, "batch pos d"]) -> float:
    """Mean over samples and position pairs i < j of cos(h_i, h_j)."""
    if hidden.shape[1] < 2:
        raise ValueError(f"need >= 2 positions for pairwise similarity, got {hidden.shape[1]}")
    unit = torch.nn.functional.normalize(hidden.float(), dim=-1, eps=1e-12)
    similarity = unit @ unit.transpose(-1, -2)
    upper = torch.triu(torch.ones_like(similarity[0], dtype=torch.bool), diagonal=1)
    return similarity[:, upper].mean().item()


def default_collapse_positions(task) -> list[int]:
    """The study's positions: the answer-predicting rows after the separator (17–31 in MWS);
    every position for LRMC."""
    if task.kind == "regression":
        return list(range(task.n_positions))
    return list(task.answer_rows())[1:]


@torch.no_grad()
def representation_collapse(model, batch, hooks: Sequence[str] | None = None,
                            positions: Sequence[int] | None = None, task=None) -> pd.DataFrame:
    """Mean pairwise cosine similarity of hidden states across ``positions`` (teacher-forced).

    ``hooks``: hook names, or the keys of ``COLLAPSE_HOOKS`` (default: all of them; the study
    uses ``final_ln``, the final layer-norm output that feeds the unembedding)."""
    task = model_task(model, task)
    check_task_batch(task, batch)
    positions = default_collapse_positions(task) if positions is None else list(positions)
    last = model.cfg.n_layers - 1
    labels = list(COLLAPSE_HOOKS) if hooks is None else list(hooks)
    names = {label: COLLAPSE_HOOKS.get(label, label).format(last=last) for label in labels}
    check_hook_names(model, names.values())
    bad = [p for p in positions if not 0 <= p < batch.inputs.shape[1]]
    if bad:
        raise ValueError(f"positions must be in [0, {batch.inputs.shape[1] - 1}], got {bad}")
    wanted = set(names.values())
    _, cache = model.run_with_cache(batch.inputs, names_filter=lambda n: n in wanted)
    return pd.DataFrame([
        {"site": label, "hook": name, "cosine_similarity": mean_pairwise_cosine(cache[name][:, positions])}
        for label, name in names.items()
    ])


@torch.no_grad()
def repetition(model, batch, task=None) -> pd.DataFrame:
    """Greedy generation from the prompts; repetition frequency of the model's outputs beside
    that of the true outputs, plus accuracy overall and per answer position."""
    task = model_task(model, task)
    check_task_batch(task, batch)
    return pd.DataFrame([sequence_metrics(task, model, batch)])
