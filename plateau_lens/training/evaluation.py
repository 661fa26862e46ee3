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
