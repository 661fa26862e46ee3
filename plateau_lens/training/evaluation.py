"""What training logs at each evaluation, on a held-out batch (both studies log after the
update: the training batch's task metrics, then metrics of a fresh test batch)."""

from __future__ import annotations

import torch

from ..metrics import (ForwardFn, attention_progress_score, generation_metrics,
                       mean_pairwise_cosine, readout_input_hook, scalar_metrics)
from ..models.handle import PlateauModel


@torch.no_grad()
def evaluation_metrics(model: PlateauModel, batch, forward: ForwardFn | None = None) -> dict[str, float]:
    """On ``batch``: the task metrics (``eval_``-prefixed); for tasks with answers to
    generate, greedy-generation accuracy (overall, per position) and repetition frequency;
    representation collapse (``cosine_similarity``: mean pairwise cosine of the read-out's
    input, ln_f's output with its affine, over ``task.collapse_positions()``: the study's
    ``pre_lm_h``); and where the task defines an optimal attention, attention progress
    averaged over heads. The same definitions as the analyzers (``plateau_lens.metrics``).
    ``forward``: what generates (default the bridge; training passes its native, possibly
    compiled, network: the same function without hook overhead)."""
    task, bridge = model.task, model.bridge
    final = readout_input_hook(bridge)
    names = [final] + [f"blocks.{layer}.attn.hook_pattern" for layer in range(bridge.cfg.n_layers)]
    output, cache = bridge.run_with_cache(batch.inputs, names_filter=lambda n: n in names)
    row = {f"eval_{name}": value for name, value in scalar_metrics(task, output, batch).items()}
    if getattr(task, "answer_length", None):
        row.update(generation_metrics(task, forward or bridge, batch))
    row["cosine_similarity"] = mean_pairwise_cosine(cache[final][:, task.collapse_positions()])
    optimal = task.optimal_attention()
    if optimal is not None:
        scores = [attention_progress_score(cache[name], optimal, task.answer_rows())
                  for name in names[1:]]
        row["attention_progress"] = torch.cat(scores).mean().item()
    return row
