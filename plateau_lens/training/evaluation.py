"""Per-step metrics: what the studies log while training."""

from __future__ import annotations

from typing import Callable

import torch
from jaxtyping import Int
from torch import Tensor

from ..tasks.base import SequenceBatch

ForwardFn = Callable[[Tensor], Tensor]


@torch.no_grad()
def greedy_generate(forward: ForwardFn, prompts: Int[Tensor, "batch prompt"],
                    n_new: int) -> Int[Tensor, "batch prompt_plus_new"]:
    """Append ``n_new`` greedily decoded tokens (full re-forward each step, no KV cache)."""
    tokens = prompts
    for _ in range(n_new):
        next_token = forward(tokens)[:, -1].argmax(dim=-1, keepdim=True)
        tokens = torch.cat([tokens, next_token], dim=-1)
    return tokens


def repetition_frequency(outputs: Int[Tensor, "batch n"]) -> float:
    """Mean of [o_t == o_{t+1}] over adjacent output pairs and the batch."""
    if outputs.shape[-1] < 2:
        raise ValueError(f"repetition frequency needs >= 2 outputs, got {outputs.shape[-1]}")
    return (outputs[:, 1:] == outputs[:, :-1]).float().mean().item()


@torch.no_grad()
def sequence_metrics(task, forward: ForwardFn, batch: SequenceBatch) -> dict[str, float]:
    """Greedy-generation accuracy (overall and per answer position) and repetition frequency."""
    generated = greedy_generate(forward, batch.prompts, task.answer_length)
    predicted = generated[:, task.prompt_length :]
    correct = (predicted == batch.answers).float()
    row = {"accuracy": correct.mean().item()}
    for position, value in enumerate(correct.mean(dim=0).tolist()):
        row[f"accuracy_pos_{position}"] = value
    if task.answer_length > 1:
        row["repetition_frequency"] = repetition_frequency(predicted)
        row["repetition_frequency_data"] = repetition_frequency(batch.answers)
    return row


@torch.no_grad()
def plateau_metrics(task, bridge, batch: SequenceBatch) -> dict[str, float]:
    """Representation collapse at the final layer norm and (where the task defines an
    optimal attention) attention progress averaged over heads, teacher-forced."""
    from ..analysis.attention_progress import attention_progress_score
    from ..analysis.collapse import default_collapse_positions, mean_pairwise_cosine

    names = ["ln_final.hook_normalized"] + [
        f"blocks.{layer}.attn.hook_pattern" for layer in range(bridge.cfg.n_layers)]
    _, cache = bridge.run_with_cache(batch.inputs, names_filter=lambda n: n in names)
    positions = default_collapse_positions(task)
    row = {"cosine_similarity": mean_pairwise_cosine(cache[names[0]][:, positions])}
    try:
        optimal = task.optimal_attention()
    except NotImplementedError:
        return row
    scores = [attention_progress_score(cache[name], optimal, task.answer_rows()) for name in names[1:]]
    row["attention_progress"] = torch.cat(scores).mean().item()
    return row
