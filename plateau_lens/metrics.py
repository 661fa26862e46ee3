"""Metrics shared by training (what is logged every step) and analysis (what analyzers
report): one definition each, on the ground floor so that neither imports the other."""

from __future__ import annotations

from typing import Callable

import torch
from jaxtyping import Float, Int
from torch import Tensor

from .errors import check_finite_output
from .tasks.protocol import has_capability

ForwardFn = Callable[[Tensor], Tensor]


def readout_input_hook(bridge) -> str:
    """The hook of what the read-out layer reads: ``ln_final.hook_out`` (the final norm's
    output with its weight and bias: the loss-plateau study's ``pre_lm_h``) where the model
    has a final norm, else the last block's output (post-LN models)."""
    if "ln_final.hook_out" in bridge.hook_dict:
        return "ln_final.hook_out"
    return f"blocks.{bridge.cfg.n_layers - 1}.hook_resid_post"


def scalar_metrics(task, output: Tensor, batch) -> dict[str, float]:
    """``task.metrics`` as plain floats (LRMC: loss, masked_mse, observed_mse,
    masked_abs_pred; sequence tasks: loss and teacher-forced accuracy)."""
    return {name: value.item() for name, value in task.metrics(output, batch).items()}


def finite_scalar_metrics(task, output: Tensor, batch, what: str = "the model's output") -> dict[str, float]:
    """:func:`scalar_metrics` for analyzers: refuses (``InputError``) a non-finite output
    instead of returning metrics computed from nan or inf."""
    return scalar_metrics(task, check_finite_output(output, what), batch)


def finite_forward(forward: ForwardFn, what: str = "the model's logits") -> ForwardFn:
    """``forward`` whose every output is checked finite (greedy generation's argmax of nan
    logits would be token 0, a plausible-looking answer)."""
    return lambda tokens: check_finite_output(forward(tokens), what)


def mean_pairwise_cosine(hidden: Float[Tensor, "batch pos d"]) -> float:
    """Representation collapse: the mean over samples and position pairs i < j of
    cos(h_i, h_j) (the loss-plateau study's cosine similarity)."""
    if hidden.shape[1] < 2:
        raise ValueError(f"need >= 2 positions for pairwise similarity, got {hidden.shape[1]}")
    unit = torch.nn.functional.normalize(hidden.double(), dim=-1, eps=1e-12)
    similarity = unit @ unit.transpose(-1, -2)
    upper = torch.triu(torch.ones_like(similarity[0], dtype=torch.bool), diagonal=1)
    return similarity[:, upper].mean().item()


def mean_cosine_over_pairs(hidden: Float[Tensor, "batch pos d"],
                           pairs: list[tuple[int, int]]) -> float:
    """The mean over samples and the given position pairs (i, j) of cos(h_i, h_j): the
    loss-plateau study's collapse measure where it reads a stated set of pairs (e.g. within
    the blocks of repeat-k). Every pair counts once."""
    if not pairs:
        raise ValueError("need at least one position pair for the cosine similarity")
    first, second = (torch.tensor(p, device=hidden.device) for p in zip(*pairs))
    unit = torch.nn.functional.normalize(hidden.double(), dim=-1, eps=1e-12)
    similarity = unit @ unit.transpose(-1, -2)  # [batch, pos, pos]: small beside [batch, pairs, d]
    return similarity[:, first, second].mean().item()


def output_entropy(outputs: Int[Tensor, "batch n"]) -> float:
    """Entropy (nats) of each sequence's empirical distribution of output tokens, averaged
    over the batch: the loss-plateau study's ``compute_entropy`` (prefix sum, addition;
    low when the outputs repeat a few tokens). The study adds 1e-6 inside its logarithm;
    this is the exact value (0·log 0 = 0), at most ~1e-5 nats away."""
    counts = torch.nn.functional.one_hot(outputs.long()).sum(dim=1).double()
    probs = counts / counts.sum(-1, keepdim=True)
    terms = torch.where(probs > 0, -probs * probs.clamp(min=1e-300).log(), torch.zeros_like(probs))
    return terms.sum(-1).mean().item()


def repetition_frequency(outputs: Int[Tensor, "batch n"]) -> float:
    """Mean of [o_t == o_{t+1}] over adjacent output pairs and the batch (the study's
    repetition frequency)."""
    if outputs.shape[-1] < 2:
        raise ValueError(f"repetition frequency needs >= 2 outputs, got {outputs.shape[-1]}")
    return (outputs[:, 1:] == outputs[:, :-1]).double().mean().item()


@torch.no_grad()
def greedy_generate(forward: ForwardFn, prompts: Int[Tensor, "batch prompt"],
                    n_new: int) -> Int[Tensor, "batch prompt_plus_new"]:
    """Append exactly ``n_new`` greedily decoded tokens (full re-forward each step, no KV
    cache; no token ends generation early)."""
    tokens = prompts
    for _ in range(n_new):
        next_token = forward(tokens)[:, -1].argmax(dim=-1, keepdim=True)
        tokens = torch.cat([tokens, next_token], dim=-1)
    return tokens


@torch.no_grad()
def generation_metrics(task, forward: ForwardFn, batch) -> dict[str, float]:
    """Greedy generation from the prompts (the study's accuracy): accuracy overall and per
    answer position, and the repetition frequency of the outputs beside that of the true
    answers."""
    generated = greedy_generate(forward, batch.prompts, task.answer_length)
    predicted = generated[:, task.prompt_length :]
    correct = (predicted == batch.answers).float()
    row = {"accuracy": correct.mean().item()}
    for position, value in enumerate(correct.mean(dim=0).tolist()):
        row[f"accuracy_pos_{position}"] = value
    if task.answer_length > 1:
        row["repetition_frequency"] = repetition_frequency(predicted)
        row["repetition_frequency_data"] = repetition_frequency(batch.answers)
    if has_capability(task, "output_entropy"):
        row["entropy"] = output_entropy(predicted)
        row["entropy_data"] = output_entropy(batch.answers)
    return row


def attention_masks(task, batch, n_layers: int) -> dict[int, Tensor]:
    """layer → the attention-progress mask the task defines for that layer's pattern
    (``task.attention_progress_masks``; empty where the study defines none)."""
    if has_capability(task, "attention_masks"):
        return task.attention_progress_masks(batch, n_layers)
    optimal = task.optimal_attention()
    return {} if optimal is None else {n_layers - 1: optimal}


def attention_progress_score(pattern: Float[Tensor, "batch head query key"],
                             optimal: Float[Tensor, "query key"],
                             rows: range | None = None) -> Float[Tensor, "head"]:
    """The loss-plateau study's attention progress, Σ|A|·M / Σ|A| over the given query
    rows, per sample, then batch-averaged (one value per head). ``optimal``: [query, key],
    or [batch, query, key] where the optimal keys depend on the sample (permutation)."""
    if optimal.ndim == 3:
        optimal = optimal[:, None]  # [batch, 1, query, key] against [batch, head, query, key]
    if rows is not None:
        pattern = pattern[..., rows.start : rows.stop, :]
        optimal = optimal[..., rows.start : rows.stop, :]
    magnitude = pattern.abs().double()
    on_optimal = (magnitude * optimal.to(magnitude.device, magnitude.dtype)).sum(dim=(-2, -1))
    total = magnitude.sum(dim=(-2, -1)).clamp(min=1e-300)
    return (on_optimal / total).mean(dim=0)
