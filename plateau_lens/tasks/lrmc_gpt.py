"""LRMC as next-token prediction: the matrix-completion study's GPT variant (authors'
``src/gpt/``: ``data.py``, ``train.py``, ``configs/gpt.yaml``).

The sequence is the masked matrix, a separator, then the full matrix, each flattened
row-major::

    X̃₁₁ … X̃ₘₙ  SEP  X₁₁ … Xₘₙ          (X̃ = X where observed, MASK where masked)

2·m·n + 1 tokens (99 for 7×7); a causal model reads all but the last and is trained with
next-token cross-entropy on every position (the study's loss: minGPT's loss over the whole
shifted sequence, prompt positions included). Completion = greedy generation of the m·n
answer tokens from the prompt (the masked matrix and SEP).

Tokens (the study's ``gpt/data.py``): a value x (rounded to 2 decimals) is 1 + 100·x + 200,
so [-2, 2] → 1…401; MASK = 0; SEP = 404; a vocabulary of 405 (402 and 403 unused). The
authors' int cast truncates 100·x_rounded + 201 (one token low for some values); we round, as
for the encoder (:mod:`plateau_lens.tasks.lrmc`). Values are clipped to [-2, 2], exact for
U[-1, 1] factors of rank ≤ 2 (|X_ij| ≤ r), so uniform factors of higher rank are refused.

The study's model for it (``tasks/lrmc_gpt.toml``): minGPT, pre-LN, 2 layers, 2 heads,
d_model 256, softmax attention, position table of 99 rows (their ``block_size``), Adam 1e-4,
batch 256; it "only learns to copy observed entries" (the paper).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

import torch
from jaxtyping import Float, Int
from torch import Tensor

from .algorithmic import SEQUENCE_PROBE_TARGETS, SequenceTask
from .base import ProbeTarget, SequenceBatch, check_choice, check_int
from .lrmc import FactorDistribution, LowRankMatrixCompletion

GPT_MASK = 0
GPT_SEPARATOR = 404
GPT_VOCAB_SIZE = 405
GPT_VALUE_LIMIT = 2.0
GPT_VALUE_OFFSET = 201
"""Token of value x: round(100·x) + 201 (the study's 1 + 100·x + 2·10²)."""


def values_to_gpt_tokens(values: Float[Tensor, "..."]) -> Int[Tensor, "..."]:
    """1 + round(100·x) + 200 over x ∈ [-2, 2] (tokens 1…401), rounded in float64."""
    clipped = values.double().clamp(-GPT_VALUE_LIMIT, GPT_VALUE_LIMIT)
    return torch.round(clipped * 100).long() + GPT_VALUE_OFFSET


def gpt_tokens_to_values(tokens: Int[Tensor, "..."]) -> Float[Tensor, "..."]:
    """Inverse of :func:`values_to_gpt_tokens`; MASK, SEP and unused ids map to NaN."""
    values = (tokens.double() - GPT_VALUE_OFFSET) / 100
    is_value = (tokens >= 1) & (tokens <= GPT_VALUE_OFFSET + 200)
    return torch.where(is_value, values, torch.nan).float()


@dataclass(frozen=True)
class MatrixCompletionSequence(SequenceTask):
    """The GPT variant of LRMC (see the module docstring).

    Args:
        m, n, rank, p_mask, factor_distribution, factor_scale: as for ``lrmc`` (7×7 rank 2,
            p = 0.3 in the study).

    Metrics (teacher-forced, on the m·n answer rows, against the rounded matrix): ``loss``,
    ``teacher_forced_accuracy``, ``observed_accuracy`` / ``masked_accuracy`` (the study logs
    the observed one, from generation, as "obs_acc"), ``observed_mse`` / ``masked_mse`` of
    the argmax token's value (a non-value token counts as 0). Training also logs greedy
    generation accuracy (``accuracy``, per position) like every task with answers.
    ``default_corruption``: −X with the same mask, as for ``lrmc``.
    """

    m: int = 7
    n: int = 7
    rank: int = 2
    p_mask: float = 0.3
    factor_distribution: FactorDistribution = "uniform"
    factor_scale: float = 0.5
    name = "lrmc_gpt"
    capabilities = SequenceTask.capabilities | {"matrix", "matrix_sequence"}

    def __post_init__(self) -> None:
        check_int("m", self.m, 1)
        check_int("n", self.n, 1)
        check_choice("factor_distribution", self.factor_distribution, get_args(FactorDistribution))
        limit = min(self.m, self.n)
        if self.factor_distribution == "uniform":
            limit = min(limit, int(GPT_VALUE_LIMIT))  # |X_ij| <= rank must fit [-2, 2]
        check_int("rank", self.rank, 1, limit, bounded_by="m, n, factor_distribution")
        self.matrices  # validates p_mask and factor_scale

    @property
    def matrices(self) -> LowRankMatrixCompletion:
        """The matrix distribution (the encoder task's sampler, same fields)."""
        return LowRankMatrixCompletion(m=self.m, n=self.n, rank=self.rank, p_mask=self.p_mask,
                                       factor_distribution=self.factor_distribution,
                                       factor_scale=self.factor_scale)

    @property
    def prompt_length(self) -> int:
        return self.m * self.n + 1

    @property
    def answer_length(self) -> int:
        return self.m * self.n

    @property
    def d_vocab(self) -> int:
        return GPT_VOCAB_SIZE

    def encode(self, matrix: Float[Tensor, "batch m n"], observed) -> Int[Tensor, "batch seq"]:
        """The token sequence of matrices and their observation masks."""
        full = values_to_gpt_tokens(matrix.flatten(1))
        masked = torch.where(observed.flatten(1), full, GPT_MASK)
        separator = torch.full_like(full[:, :1], GPT_SEPARATOR)
        return torch.cat([masked, separator, full], dim=-1)

    def sample(self, batch_size: int, generator: torch.Generator, device="cpu") -> SequenceBatch:
        check_int("batch_size", batch_size, 1)
        batch = self.matrices.sample(batch_size, generator, device)
        return self._batch(self.encode(batch.matrix, batch.observed))

    def observed(self, batch: SequenceBatch) -> Tensor:
        """[batch, m·n] True where the entry is shown in the prompt."""
        return batch.tokens[:, : self.m * self.n] != GPT_MASK

    @torch.no_grad()
    def metrics(self, logits: Float[Tensor, "batch pos vocab"], batch: SequenceBatch) -> dict[str, Tensor]:
        values = super().metrics(logits, batch)
        rows = self.answer_rows()
        predicted = logits[:, rows.start : rows.stop].argmax(-1)
        correct = (predicted == batch.answers).double()
        observed = self.observed(batch)
        masked = ~observed
        truth = gpt_tokens_to_values(batch.answers).double()
        squared = (torch.nan_to_num(gpt_tokens_to_values(predicted).double(), nan=0.0) - truth) ** 2
        n_observed, n_masked = observed.sum().clamp(min=1), masked.sum().clamp(min=1)
        return values | {
            "observed_accuracy": (correct * observed).sum() / n_observed,
            "masked_accuracy": (correct * masked).sum() / n_masked,
            "observed_mse": (squared * observed).sum() / n_observed,
            "masked_mse": (squared * masked).sum() / n_masked,
        }

    def default_corruption(self, batch: SequenceBatch) -> SequenceBatch:
        """−X with the same mask (value token t ↦ 402 − t; MASK and SEP unchanged)."""
        tokens = batch.tokens
        is_value = (tokens >= 1) & (tokens <= 2 * GPT_VALUE_OFFSET - 1)
        return self._batch(torch.where(is_value, 2 * GPT_VALUE_OFFSET - tokens, tokens))

    def entry_of_position(self) -> tuple[Tensor, Tensor]:
        """(row, column) of the matrix entry each input position carries (−1 for SEP):
        positions 0…mn−1 the masked matrix, mn the separator, mn+1…2mn−1 the full matrix
        (its last entry is only a target)."""
        rows = torch.arange(self.m).repeat_interleave(self.n)
        cols = torch.arange(self.n).repeat(self.m)
        minus = torch.tensor([-1])
        return (torch.cat([rows, minus, rows[:-1]]), torch.cat([cols, minus, cols[:-1]]))

    def probe_targets(self) -> dict[str, ProbeTarget]:
        return SEQUENCE_PROBE_TARGETS
