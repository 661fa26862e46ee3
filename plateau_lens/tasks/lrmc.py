"""Low-rank matrix completion (LRMC) as masked-language modelling.

The matrix-completion study (Gopalani et al., arXiv 2410.22244): X = U Vᵀ with U (m×r) and
V (n×r) i.i.d. Uniform[-1, 1]; each entry is masked with probability p (observed where
``rand > p``); X is flattened row-major into m·n positions and a bidirectional encoder
predicts every entry (MSE over all positions).

Two input encodings:

* ``"tokens"`` (the study's): x rounded to 2 decimals, clipped to [-10, 10],
  token = 1 + round(100·x) + 1000, MASK = 0: a vocabulary of 2002. (The study's code
  truncates instead of rounding; we round, so the token round-trip is exact.)
* ``"real"`` (ours): each position carries its real value; the model's embedding is
  x·w + b for an observed entry and a learned mask vector for a masked one. The value
  travels to the model as a fixed-point integer id (x·2²⁰, MASK = int64 min) so the
  TransformerBridge treats it as input ids and fires ``hook_embed`` on it.
"""

from __future__ import annotations

import math

from dataclasses import dataclass

import einops
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from ..codec import (FIXED_POINT_MASK, TOKEN_MASK, TOKEN_VOCAB_SIZE, values_to_fixed_point,
                     values_to_tokens)
from .base import MatrixBatch, ProbeTarget, check_batch_type, check_choice, check_int

FACTOR_DISTRIBUTIONS = ("uniform", "gaussian", "laplace")
ENCODINGS = ("real", "tokens")


@dataclass(frozen=True)
class LowRankMatrixCompletion:
    """Online generator of masked rank-r matrices X = U Vᵀ (m×n), flattened row-major.

    Args:
        m, n: matrix shape (default 7×7, as in the study).
        rank: r ≤ min(m, n) (default 2).
        p_mask: probability that an entry is masked, in [0, 1) (default 0.3).
        encoding: ``"real"`` or ``"tokens"`` (see the module docstring).
        factor_distribution: ``"uniform"`` (U[-1, 1], the study's), ``"gaussian"``
            (N(0, factor_scale²)) or ``"laplace"`` (Laplace(0, factor_scale)): the OOD options.
        factor_scale: scale of the Gaussian / Laplace factors (study: 0.5 and 0.25).

    Scored positions: all m·n entries (loss); metrics split masked / observed.
    """

    m: int = 7
    n: int = 7
    rank: int = 2
    p_mask: float = 0.3
    encoding: str = "real"
    factor_distribution: str = "uniform"
    factor_scale: float = 0.5

    name = "lrmc"
    readout_bias = True
    """A linear read-out with bias to one real per position (the study's regression head)."""
    attention_dir = "bidirectional"

    def __post_init__(self) -> None:
        check_int("m", self.m, 1)
        check_int("n", self.n, 1)
        check_int("rank", self.rank, 1, min(self.m, self.n))
        if isinstance(self.p_mask, bool) or not isinstance(self.p_mask, (int, float)) or not 0 <= self.p_mask < 1:
            raise ValueError(f"p_mask must be in [0, 1), got {self.p_mask!r}")
        check_choice("encoding", self.encoding, ENCODINGS)
        check_choice("factor_distribution", self.factor_distribution, FACTOR_DISTRIBUTIONS)
        if (isinstance(self.factor_scale, bool) or not isinstance(self.factor_scale, (int, float))
                or not 0 < self.factor_scale < math.inf):
            raise ValueError(f"factor_scale must be a finite number > 0, got {self.factor_scale!r}")

    @property
    def n_positions(self) -> int:
        return self.m * self.n

    @property
    def d_vocab(self) -> int:
        """Input vocabulary: 2002 tokens, or 2 rows (value direction, mask) for ``real``."""
        return TOKEN_VOCAB_SIZE if self.encoding == "tokens" else 2

    d_vocab_out = 1

    @property
    def token_vocabulary(self) -> int | None:
        """Valid input ids are 0…2001 with the token encoding; fixed-point ids are unbounded."""
        return TOKEN_VOCAB_SIZE if self.encoding == "tokens" else None

    def _factors(self, batch_size: int, rows: int, generator: torch.Generator, device) -> Tensor:
        shape = (batch_size, rows, self.rank)
        if self.factor_distribution == "uniform":
            return torch.rand(shape, generator=generator, device=device) * 2 - 1
        if self.factor_distribution == "gaussian":
            return torch.randn(shape, generator=generator, device=device) * self.factor_scale
        uniform = torch.rand(shape, generator=generator, device=device) - 0.5
        return -self.factor_scale * uniform.sign() * torch.log1p(-2 * uniform.abs())

    def encode(
        self, matrix: Float[Tensor, "batch m n"], observed: Bool[Tensor, "batch m n"]
    ) -> Int[Tensor, "batch pos"]:
        """Model input ids for a matrix and its observation mask."""
        flat_values = einops.rearrange(matrix, "b m n -> b (m n)")
        flat_observed = einops.rearrange(observed, "b m n -> b (m n)")
        if self.encoding == "tokens":
            ids = values_to_tokens(flat_values)
            return torch.where(flat_observed, ids, TOKEN_MASK)
        ids = values_to_fixed_point(flat_values)
        return torch.where(flat_observed, ids, FIXED_POINT_MASK)

    def sample(
        self, batch_size: int, generator: torch.Generator, device: torch.device | str = "cpu"
    ) -> MatrixBatch:
        check_int("batch_size", batch_size, 1)
        device = generator.device if device is None else torch.device(device)
        U = self._factors(batch_size, self.m, generator, device)
        V = self._factors(batch_size, self.n, generator, device)
        matrix = torch.einsum("bir,bjr->bij", U, V)
        observed = torch.rand(matrix.shape, generator=generator, device=device) > self.p_mask
        return MatrixBatch(
            inputs=self.encode(matrix, observed), matrix=matrix, observed=observed, U=U, V=V
        )

    def with_inputs(self, batch: MatrixBatch, matrix: Tensor | None = None,
                    observed: Tensor | None = None) -> MatrixBatch:
        """A copy of ``batch`` with a new matrix and/or observation mask (re-encoded)."""
        matrix = batch.matrix if matrix is None else matrix
        observed = batch.observed if observed is None else observed
        return MatrixBatch(inputs=self.encode(matrix, observed), matrix=matrix,
                           observed=observed, U=batch.U, V=batch.V)

    def predictions(self, output: Float[Tensor, "batch pos 1"]) -> Float[Tensor, "batch m n"]:
        return einops.rearrange(output[..., 0], "b (m n) -> b m n", m=self.m, n=self.n)

    def loss(self, output: Float[Tensor, "batch pos 1"], batch: MatrixBatch) -> Tensor:
        """MSE over all m·n entries, observed and masked (the study's loss)."""
        return torch.mean((self.predictions(output).float() - batch.matrix) ** 2)

    @torch.no_grad()
    def metrics(self, output: Float[Tensor, "batch pos 1"], batch: MatrixBatch) -> dict[str, Tensor]:
        """loss, masked_mse, observed_mse and mean |prediction| on masked entries (tensors)."""
        prediction = self.predictions(output).float()
        squared_error = (prediction - batch.matrix) ** 2
        masked = ~batch.observed
        n_masked = masked.sum().clamp(min=1)
        n_observed = batch.observed.sum().clamp(min=1)
        return {
            "loss": squared_error.mean(),
            "masked_mse": (squared_error * masked).sum() / n_masked,
            "observed_mse": (squared_error * batch.observed).sum() / n_observed,
            "masked_abs_pred": (prediction.abs() * masked).sum() / n_masked,
        }

    def check_batch(self, batch) -> None:
        """Raise ``ValueError`` unless ``batch`` is a non-empty matrix batch of this size."""
        check_batch_type(self, batch, MatrixBatch)
        if tuple(batch.matrix.shape[1:]) != (self.m, self.n):
            raise ValueError(f"batch holds {tuple(batch.matrix.shape[1:])} matrices but task "
                             f"{self.name!r} is {self.m}×{self.n}")

    def default_corruption(self, batch: MatrixBatch) -> MatrixBatch:
        """The study's corruption for activation patching: −X with the same observation mask."""
        return self.with_inputs(batch, matrix=-batch.matrix)

    def collapse_positions(self) -> list[int]:
        """Every entry (the study defines collapse for the sequence tasks only)."""
        return list(range(self.n_positions))

    def optimal_attention(self) -> None:
        """No fixed optimal attention mask is defined for matrix completion."""
        return None

    def probe_targets(self) -> dict[str, ProbeTarget]:
        return LRMC_PROBE_TARGETS

    def split_by_mask(self, batch: MatrixBatch) -> Bool[Tensor, "batch pos"]:
        """True at masked positions, flattened like the model's positions."""
        return einops.rearrange(~batch.observed, "b m n -> b (m n)")


def _row_and_column(task: LowRankMatrixCompletion) -> tuple[Tensor, Tensor]:
    rows = torch.arange(task.m).repeat_interleave(task.n)
    cols = torch.arange(task.n).repeat(task.m)
    return rows, cols


def _entry(task, batch: MatrixBatch) -> Tensor:
    return einops.rearrange(batch.matrix, "b m n -> b (m n) 1")


def _observed_row(task, batch: MatrixBatch) -> Tensor:
    """For each position, the entries of its row that are observed (0 where masked)."""
    visible = batch.matrix * batch.observed
    return einops.repeat(visible, "b m n -> b (m k) n", k=task.n)


def _top_singular_vector(task, batch: MatrixBatch) -> Tensor:
    """u₁ of X, sign fixed so that its entries sum to ≥ 0; the same at every position."""
    u, _, _ = torch.linalg.svd(batch.matrix.double())
    top = u[..., 0]
    top = top * torch.where(top.sum(-1, keepdim=True) >= 0, 1.0, -1.0)
    return einops.repeat(top.float(), "b m -> b p m", p=task.m * task.n)


def _row_index(task, batch: MatrixBatch) -> Tensor:
    return einops.repeat(_row_and_column(task)[0], "p -> b p", b=len(batch))


def _column_index(task, batch: MatrixBatch) -> Tensor:
    return einops.repeat(_row_and_column(task)[1], "p -> b p", b=len(batch))


def _is_masked(task, batch: MatrixBatch) -> Tensor:
    return einops.rearrange(~batch.observed, "b m n -> b (m n)").long()


LRMC_PROBE_TARGETS = {
    "entry": ProbeTarget("regression", _entry, split_by_mask=True),
    "observed_row": ProbeTarget("regression", _observed_row, split_by_mask=True),
    "top_singular_vector": ProbeTarget("regression", _top_singular_vector),
    "row_index": ProbeTarget("classification", _row_index),
    "column_index": ProbeTarget("classification", _column_index),
    "is_masked": ProbeTarget("classification", _is_masked),
}
