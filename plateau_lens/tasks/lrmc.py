"""Low-rank matrix completion (LRMC) as masked-language modelling.

The matrix-completion study (Gopalani et al., arXiv 2410.22244): X = U Vᵀ with U (m×r) and
V (n×r) i.i.d. Uniform[-1, 1]; each entry is masked with probability p (observed where
``rand > p``); X is flattened row-major into m·n positions and a bidirectional encoder
predicts every entry (MSE over all positions).

Two input encodings:

* ``"tokens"`` (the study's): x rounded to 2 decimals, clipped to [-10, 10],
  token = 1 + round(100·x) + 1000, MASK = 0: a vocabulary of 2002. The regression target
  is then the rounded matrix (``target``), as in the study's ``data.py`` (its ``X_rounded``).
  (The study's code truncates 100·x_rounded + 1001 to int, which for some values lands one
  token low, e.g. 0.29 → 1029 instead of 1030; we round, so every token stands for exactly
  its target value. The paper describes the tokens as the rounded values: we follow it.)
* ``"real"`` (ours): each position carries its real value; the model's embedding is
  x·w + b for an observed entry and a learned mask vector for a masked one. The value
  travels to the model as a fixed-point integer id (x·2²⁰, MASK = int64 min) so the
  TransformerBridge treats it as input ids and fires ``hook_embed`` on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import einops
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from ..codec import (FIXED_POINT_MASK, TOKEN_MASK, TOKEN_VOCAB_SIZE, round_to_tokens,
                     values_to_fixed_point, values_to_tokens)
from .base import MatrixBatch, ProbeTarget, check_batch_type, check_choice, check_int

FactorDistribution = Literal["uniform", "gaussian", "laplace"]
"""Distribution of the factors U, V (``factor_distribution``)."""
Encoding = Literal["real", "tokens"]
"""How entries enter the model (``encoding``)."""


def _input_capability(encoding: Encoding) -> str:
    """``real``: a value embedding reads the inputs; ``tokens``: id 0 is the MASK token."""
    return "real_inputs" if encoding == "real" else "mask_token"


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

    Scored positions: all m·n entries (loss); metrics split masked / observed. The target
    is X, rounded to 2 decimals with the token encoding (:meth:`target`).

    Other sizes (out-of-distribution): a model whose position table has at least m'·n' rows
    (``[model] max_positions``, or ``plateau_lens.models.with_max_positions`` on a trained
    model) is asked about an m'×n' matrix through ``make_task("lrmc", m=m', n=n', ...)``:
    the same row-major flattening, positions 0…m'n'−1 (so with n' ≠ n a position index
    means another (row, column) than in training, as for the study's BERT).
    """

    m: int = 7
    n: int = 7
    rank: int = 2
    p_mask: float = 0.3
    encoding: Encoding = "real"
    factor_distribution: FactorDistribution = "uniform"
    factor_scale: float = 0.5

    name = "lrmc"
    readout_bias = True
    """A linear read-out with bias to one real per position (the study's regression head)."""
    attention_dir = "bidirectional"

    @property
    def capabilities(self) -> frozenset[str]:
        """A matrix task with a value read-out; real inputs or a MASK token by ``encoding``."""
        return frozenset({"matrix", "value_readout", _input_capability(self.encoding)})

    def __post_init__(self) -> None:
        check_int("m", self.m, 1)
        check_int("n", self.n, 1)
        check_int("rank", self.rank, 1, min(self.m, self.n), bounded_by="m, n")
        if isinstance(self.p_mask, bool) or not isinstance(self.p_mask, (int, float)) or not 0 <= self.p_mask < 1:
            raise ValueError(f"p_mask must be in [0, 1), got {self.p_mask!r}")
        check_choice("encoding", self.encoding, get_args(Encoding))
        check_choice("factor_distribution", self.factor_distribution, get_args(FactorDistribution))
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

    def target(self, batch: MatrixBatch) -> Float[Tensor, "batch m n"]:
        """What the model is trained to output: X, rounded to the value its token stands for
        with the token encoding (the study's ``X_rounded``), X itself with the real one."""
        return round_to_tokens(batch.matrix) if self.encoding == "tokens" else batch.matrix

    def _squared_error(self, output: Tensor, batch: MatrixBatch,
                       dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
        prediction = einops.rearrange(output[..., 0], "b (m n) -> b m n",
                                      n=batch.matrix.shape[-1]).to(dtype)
        return prediction, (prediction - self.target(batch).to(dtype)) ** 2

    def loss(self, output: Float[Tensor, "batch pos 1"], batch: MatrixBatch) -> Tensor:
        """MSE over all m·n entries, observed and masked, against :meth:`target` (the study's
        loss: ``MSELoss`` on the whole read-out, ``train.py``)."""
        return self._squared_error(output, batch)[1].mean()

    @torch.no_grad()
    def metrics(self, output: Float[Tensor, "batch pos 1"], batch: MatrixBatch) -> dict[str, Tensor]:
        """loss, masked_mse, observed_mse and mean |prediction| on masked entries (tensors),
        against :meth:`target`: what the study's ``train.py`` logs ("mask loss", "obs loss",
        "mask value"). Reduced in float64, so that the small differences analyzers report
        (ablated − clean) are not float32 rounding of each value (1e-7 of it)."""
        prediction, squared_error = self._squared_error(output, batch, torch.float64)
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


def _row_and_column(batch: MatrixBatch) -> tuple[Tensor, Tensor]:
    """Row and column of each flattened position (from the batch's own m×n: the probe
    targets serve every size a task yields)."""
    m, n = batch.matrix.shape[-2:]
    rows = torch.arange(m).repeat_interleave(n)
    cols = torch.arange(n).repeat(m)
    return rows, cols


def _entry(task, batch: MatrixBatch) -> Tensor:
    return einops.rearrange(batch.matrix, "b m n -> b (m n) 1")


def _observed_row(task, batch: MatrixBatch) -> Tensor:
    """For each position, the entries of its row that are observed (0 where masked)."""
    visible = batch.matrix * batch.observed
    return einops.repeat(visible, "b m n -> b (m k) n", k=batch.matrix.shape[-1])


def _top_singular_vector(task, batch: MatrixBatch) -> Tensor:
    """u₁ of X, sign fixed so that its entries sum to ≥ 0; the same at every position."""
    u, _, _ = torch.linalg.svd(batch.matrix.double())
    top = u[..., 0]
    top = top * torch.where(top.sum(-1, keepdim=True) >= 0, 1.0, -1.0)
    return einops.repeat(top.float(), "b m -> b p m", p=batch.matrix[0].numel())


def _row_index(task, batch: MatrixBatch) -> Tensor:
    return einops.repeat(_row_and_column(batch)[0], "p -> b p", b=len(batch))


def _column_index(task, batch: MatrixBatch) -> Tensor:
    return einops.repeat(_row_and_column(batch)[1], "p -> b p", b=len(batch))


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


def _normalise_sizes(sizes) -> tuple[tuple[int, int], ...]:
    """``[5, 7, 9]`` (square) or ``[[5, 5], [7, 9]]`` (m×n pairs) as ((m, n), ...)."""
    if isinstance(sizes, (int, str)) or not hasattr(sizes, "__iter__"):
        raise ValueError(f"sizes must be a list of sizes (5 or [m, n]), got {sizes!r}")
    pairs = []
    for size in sizes:
        pair = (size, size) if not hasattr(size, "__iter__") else tuple(size)
        if len(pair) != 2:
            raise ValueError(f"sizes entries must be an integer or an [m, n] pair, got {size!r}")
        pairs.append((check_int("sizes[m]", pair[0], 1), check_int("sizes[n]", pair[1], 1)))
    if not pairs:
        raise ValueError("sizes is empty: give at least one matrix size")
    if len(set(pairs)) != len(pairs):
        raise ValueError(f"sizes must be distinct, got {list(sizes)!r}")
    return tuple(pairs)


@dataclass(frozen=True)
class MixedSizeMatrixCompletion:
    """LRMC on several matrix sizes in one run (the study's mixed-size experiment: 5×5, 7×7
    and 9×9 rank-1 matrices, "learned in an order").

    Design (how a mixed-size batch is encoded): each training batch holds matrices of ONE
    size, drawn uniformly from ``sizes`` by the batch's own generator (so batch t is still a
    pure function of (seed, t)), flattened row-major into m·n positions exactly as for
    :class:`LowRankMatrixCompletion` — no padding, no attention mask, positions 0…m·n−1 of a
    position table with max m·n rows. A 5×5 matrix is therefore the 25-token input a model
    trained on 7×7 would be asked out of distribution, and every analyzer runs on a batch of
    one size through :meth:`at_size` (a plain ``lrmc`` task). With absolute positions a
    position index means a different (row, column) at each width: the model has to tell the
    sizes apart from the sequence length (it sees it: attention is over all m·n positions).
    (The paper does not say how its batches were built; a padded batch would need an
    attention mask our models do not take.)

    Metrics: those of the batch's size, plus the same keys suffixed by the size
    (``masked_mse_5x5``: present in rows of steps that drew that size, so each size's curve
    is the non-empty rows of its column). ``collapse_positions``: the positions every size
    has (0…min m·n−1).
    """

    sizes: tuple = (5, 7, 9)
    rank: int = 1
    p_mask: float = 0.3
    encoding: Encoding = "real"
    factor_distribution: FactorDistribution = "uniform"
    factor_scale: float = 0.5

    name = "lrmc_mixed"
    readout_bias = True
    attention_dir = "bidirectional"
    d_vocab_out = 1

    @property
    def capabilities(self) -> frozenset[str]:
        """Real inputs or a MASK token by ``encoding``; its batches' single-size tasks
        (:meth:`task_of`) are the matrix tasks."""
        return frozenset({_input_capability(self.encoding)})

    def __post_init__(self) -> None:
        object.__setattr__(self, "sizes", _normalise_sizes(self.sizes))
        smallest = min(min(m, n) for m, n in self.sizes)
        check_int("rank", self.rank, 1, smallest, bounded_by="sizes")
        for m, n in self.sizes:  # validates p_mask, encoding, factors once per size
            self.at_size(m, n)

    def at_size(self, m: int, n: int) -> LowRankMatrixCompletion:
        """The single-size task of one of ``sizes`` (what analyzers take for its batches)."""
        return LowRankMatrixCompletion(m=m, n=n, rank=self.rank, p_mask=self.p_mask,
                                       encoding=self.encoding,
                                       factor_distribution=self.factor_distribution,
                                       factor_scale=self.factor_scale)

    @property
    def n_positions(self) -> int:
        """The largest size's m·n (the position table the model needs)."""
        return max(m * n for m, n in self.sizes)

    @property
    def d_vocab(self) -> int:
        return self.at_size(*self.sizes[0]).d_vocab

    @property
    def token_vocabulary(self) -> int | None:
        return self.at_size(*self.sizes[0]).token_vocabulary

    def task_of(self, batch: MatrixBatch) -> LowRankMatrixCompletion:
        """The single-size task a batch belongs to."""
        size = tuple(batch.matrix.shape[1:])
        if size not in self.sizes:
            raise ValueError(f"batch holds {size} matrices but task {self.name!r} has sizes "
                             f"{[list(s) for s in self.sizes]}")
        return self.at_size(*size)

    def sample(self, batch_size: int, generator: torch.Generator,
               device: torch.device | str = "cpu") -> MatrixBatch:
        check_int("batch_size", batch_size, 1)
        index = int(torch.randint(len(self.sizes), (1,), generator=generator,
                                  device=generator.device).item())
        return self.at_size(*self.sizes[index]).sample(batch_size, generator, device)

    def target(self, batch: MatrixBatch) -> Tensor:
        return self.task_of(batch).target(batch)

    def with_inputs(self, batch: MatrixBatch, matrix: Tensor | None = None,
                    observed: Tensor | None = None) -> MatrixBatch:
        return self.task_of(batch).with_inputs(batch, matrix, observed)

    def loss(self, output: Tensor, batch: MatrixBatch) -> Tensor:
        return self.task_of(batch).loss(output, batch)

    @torch.no_grad()
    def metrics(self, output: Tensor, batch: MatrixBatch) -> dict[str, Tensor]:
        m, n = batch.matrix.shape[1:]
        values = self.task_of(batch).metrics(output, batch)
        return values | {f"{name}_{m}x{n}": value for name, value in values.items()}

    def check_batch(self, batch) -> None:
        if not isinstance(batch, MatrixBatch):
            check_batch_type(self, batch, MatrixBatch)  # raises the shared message
        self.task_of(batch).check_batch(batch)

    def default_corruption(self, batch: MatrixBatch) -> MatrixBatch:
        return self.task_of(batch).default_corruption(batch)

    def collapse_positions(self) -> list[int]:
        return list(range(min(m * n for m, n in self.sizes)))

    def optimal_attention(self) -> None:
        return None

    def probe_targets(self) -> dict[str, ProbeTarget]:
        return LRMC_PROBE_TARGETS

    def split_by_mask(self, batch: MatrixBatch) -> Bool[Tensor, "batch pos"]:
        return self.task_of(batch).split_by_mask(batch)
