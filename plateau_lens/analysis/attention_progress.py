"""Attention progress (loss-plateau study): how much attention mass sits on the optimal keys."""

from __future__ import annotations

import pandas as pd
import torch

from ..metrics import attention_masks, attention_progress_score
from ..tasks.protocol import has_capability
from .hooks import prepare
from .schema import record, tidy


@torch.no_grad()
def attention_progress(model, batch, task=None) -> pd.DataFrame:
    """Attention progress Σ|A|·M / Σ|A| of every head, over the task's answer rows, per
    sample then batch-averaged (the study's ``att_prog_measure``; A = ``hook_pattern``, the
    pattern after masking and any attention bias; M = the task's mask for that layer,
    ``task.attention_progress_masks`` — the last layer's ``optimal_attention()`` by default,
    one per layer and sample for permutation). Rows (see :mod:`.schema`): one per head of
    each layer with a mask, metric ``attention_progress``."""
    model = prepare(model, batch, task)
    masks = attention_masks(model.task, batch, model.cfg.n_layers)
    if not masks:
        raise ValueError(f"attention_progress needs an optimal attention mask, and task "
                         f"{model.task.name!r} defines none; use attention_patterns(model, batch), which "
                         f"reads every head's pattern on any task")
    if not has_capability(model.task, "answers"):
        raise ValueError(f"attention_progress scores the answer rows, and task {model.task.name!r} "
                         f"declares none: declare the capability 'answers' (prompt_length, "
                         f"answer_length, answer_rows())")
    names = {layer: f"blocks.{layer}.attn.hook_pattern" for layer in masks}
    _, cache = model.bridge.run_with_cache(batch.inputs, names_filter=lambda n: n in names.values())
    records = []
    for layer, name in names.items():
        scores = attention_progress_score(cache[name], masks[layer], model.task.answer_rows())
        records += [record("attention_progress", value, hook=name, head=head)
                    for head, value in enumerate(scores.tolist())]
    return tidy(records)
