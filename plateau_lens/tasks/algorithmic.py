"""Algorithmic sequence tasks of the loss-plateau study (Gopalani & Hu, arXiv 2506.13688).

Every task yields full token sequences ``prompt ++ answer``; a causal model reads
``tokens[:, :-1]`` and is trained with next-token cross-entropy on all positions (the
study's loss). Accuracy is scored by greedy generation from the prompt, on the answer
positions only. ``optimal_attention`` gives, for tasks where it is defined, the 0/1 mask
M over (query row, key) of the model input that a perfect solution attends to: the query
row that predicts answer token j attends to the inputs answer j is computed from.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from .base import ProbeTarget, SequenceBatch, check_batch_type, check_int


def _uniform_ints(low: int, high: int, shape, generator, device) -> Tensor:
    return torch.randint(low, high + 1, shape, generator=generator, device=device)


class SequenceTask:
    """Common API of the algorithmic tasks."""

    name: str
    attention_dir = "causal"
    readout_bias = False

    @property
    def prompt_length(self) -> int:
        """Inputs then one separator (tasks with another layout override this)."""
        return self.n_inputs + 1

    @property
    def answer_length(self) -> int:
        return self.n_inputs

    @property
    def sequence_length(self) -> int:
        return self.prompt_length + self.answer_length

    def _check_inputs(self) -> None:
        """Validate the shared fields n_inputs and low/high where a task has them."""
        check_int("n_inputs", self.n_inputs, 1)
        if hasattr(self, "high"):
            check_int("low", self.low, 0)
            check_int("high", self.high, self.low)

    @property
    def n_positions(self) -> int:
        """Positions the model sees: the sequence without its last token."""
        return self.sequence_length - 1

    @property
    def d_vocab_out(self) -> int:
        return self.d_vocab

    def answer_rows(self) -> range:
        """Query rows (input positions) whose next-token prediction is an answer token."""
        return range(self.prompt_length - 1, self.sequence_length - 1)

    def _batch(self, tokens: Tensor) -> SequenceBatch:
        return SequenceBatch(tokens=tokens.long(), prompt_length=self.prompt_length,
                             task_name=self.name)

    def optimal_attention(self) -> Float[Tensor, "query key"] | None:
        """The 0/1 mask M [query, key] a perfect solution attends to; None where the study
        defines none (the default)."""
        return None

    @property
    def token_vocabulary(self) -> int:
        return self.d_vocab

    def loss(self, logits: Float[Tensor, "batch pos vocab"], batch: SequenceBatch) -> Tensor:
        """Next-token cross-entropy over every position (the study's loss)."""
        return torch.nn.functional.cross_entropy(
            logits.float().flatten(0, 1), batch.targets.flatten()
        )

    @torch.no_grad()
    def metrics(self, logits: Float[Tensor, "batch pos vocab"], batch: SequenceBatch) -> dict[str, Tensor]:
        """``loss`` (next-token cross-entropy, every position) and ``teacher_forced_accuracy``
        (argmax on the answer rows; the study's accuracy is by generation, see
        ``plateau_lens.metrics.generation_metrics``)."""
        rows = self.answer_rows()
        predicted = logits[:, rows.start : rows.stop].argmax(-1)
        return {"loss": self.loss(logits, batch),
                "teacher_forced_accuracy": (predicted == batch.answers).float().mean()}

    def check_batch(self, batch) -> None:
        """Raise ``ValueError`` unless ``batch`` is a non-empty sequence batch of this task."""
        check_batch_type(self, batch, SequenceBatch)

    def default_corruption(self, batch: SequenceBatch) -> SequenceBatch:
        raise ValueError(f"task {self.name!r} has no default corruption: pass corrupted_batch= "
                         f"(or corrupt=) for activation patching")

    def collapse_positions(self) -> list[int]:
        """The study's collapse rows: the answer-predicting rows after the separator's
        (17–31 in MWS: 15 rows, 105 pairs)."""
        return list(self.answer_rows())[1:]

    def probe_targets(self) -> dict[str, ProbeTarget]:
        return SEQUENCE_PROBE_TARGETS


SEQUENCE_PROBE_TARGETS = {
    "next_token": ProbeTarget("classification", lambda task, batch: batch.targets),
    "current_token": ProbeTarget("classification", lambda task, batch: batch.inputs),
}


def _windowed_sum_mask(prompt_length: int, n_outputs: int, windows: list[tuple[int, int]]) -> Tensor:
    """Mask for outputs j computed from inputs windows[j] = (first, last) inclusive."""
    size = prompt_length + n_outputs - 1
    mask = torch.zeros(size, size)
    for j, (first, last) in enumerate(windows):
        mask[prompt_length - 1 + j, first : last + 1] = 1
    return mask


@dataclass(frozen=True)
class MovingWindowSum(SequenceTask):
    """Moving-window sum: x₁…x_T uniform in {low..high}, SEP, then y₁…y_T with
    yᵢ = (x_{i−k+1} + … + xᵢ) mod modulus for i ≥ k and yᵢ = xᵢ for i < k.

    Defaults (the study's): T = 16, {1..16}, k = 2, modulus 17, SEP = 17, vocabulary 18,
    33 tokens (the model sees 32). Scored: the 16 outputs. Optimal attention: the row
    predicting yᵢ attends to x_{i−k+1}…xᵢ (row 16 → key 0, row 17+i → keys i, i+1 for k = 2).
    """

    n_inputs: int = 16
    low: int = 1
    high: int = 16
    window: int = 2
    modulus: int = 17
    separator: int = 17
    name = "mws"

    def __post_init__(self) -> None:
        self._check_inputs()
        check_int("window", self.window, 1, self.n_inputs)
        check_int("modulus", self.modulus, 2)

    @property
    def d_vocab(self) -> int:
        return max(self.modulus - 1, self.high, self.separator) + 1

    def outputs(self, inputs: Int[Tensor, "batch n"]) -> Int[Tensor, "batch n"]:
        sums = inputs.clone()
        k = self.window
        if k > 1:
            windows = inputs.unfold(-1, k, 1).sum(-1)
            sums[:, k - 1 :] = windows
        return torch.remainder(sums, self.modulus)

    def sample(self, batch_size: int, generator: torch.Generator, device="cpu") -> SequenceBatch:
        check_int("batch_size", batch_size, 1)
        x = _uniform_ints(self.low, self.high, (batch_size, self.n_inputs), generator, device)
        sep = torch.full((batch_size, 1), self.separator, device=x.device)
        return self._batch(torch.cat([x, sep, self.outputs(x)], dim=-1))

    def optimal_attention(self) -> Float[Tensor, "query key"]:
        windows = [(max(0, i - self.window + 1), i) for i in range(self.n_inputs)]
        return _windowed_sum_mask(self.prompt_length, self.answer_length, windows)


@dataclass(frozen=True)
class ConcatMovingWindowSum(SequenceTask):
    """The study's concatenated MWS (mix "123_disjoint_454"): 16 inputs from {1..16}, SEP 17,
    then 13 outputs mod 17: y₀…y₃ = x₀…x₃ (copies), y₄…y₈ = x_i + x_{i+1} (5 window-2 sums),
    y₉…y₁₂ = x_{i+1} + x_{i+2} + x_{i+3} (4 window-3 sums; 0-indexed as in the authors' code).
    Vocabulary 18; scored: the 13 outputs."""

    n_inputs: int = 16
    low: int = 1
    high: int = 16
    modulus: int = 17
    separator: int = 17
    name = "concat_mws"

    prompt_length = 17
    answer_length = 13

    def __post_init__(self) -> None:
        check_int("n_inputs", self.n_inputs, 16, 16)

    @property
    def d_vocab(self) -> int:
        return max(self.modulus - 1, self.high, self.separator) + 1

    def windows(self) -> list[tuple[int, int]]:
        copies = [(i, i) for i in range(4)]
        pairs = [(i, i + 1) for i in range(4, 9)]
        triples = [(i + 1, i + 3) for i in range(9, 13)]
        return copies + pairs + triples

    def sample(self, batch_size: int, generator: torch.Generator, device="cpu") -> SequenceBatch:
        check_int("batch_size", batch_size, 1)
        x = _uniform_ints(self.low, self.high, (batch_size, self.n_inputs), generator, device)
        outputs = torch.stack([x[:, a : b + 1].sum(-1) for a, b in self.windows()], dim=-1)
        sep = torch.full((batch_size, 1), self.separator, device=x.device)
        return self._batch(torch.cat([x, sep, torch.remainder(outputs, self.modulus)], dim=-1))

    def optimal_attention(self) -> Float[Tensor, "query key"]:
        return _windowed_sum_mask(self.prompt_length, self.answer_length, self.windows())


@dataclass(frozen=True)
class PrefixSum(SequenceTask):
    """Prefix sum: x₁…x₁₆ from {1..16} (or, with ``no_repeat``, a random permutation of
    1..16), SEP = 17, then yᵢ = (x₁ + … + xᵢ) mod 17. Vocabulary 18; scored: the 16 outputs.
    Optimal attention: the row predicting yᵢ attends to x₁…xᵢ."""

    n_inputs: int = 16
    low: int = 1
    high: int = 16
    modulus: int = 17
    no_repeat: bool = False
    name = "prefix_sum"

    def __post_init__(self) -> None:
        self._check_inputs()
        if self.no_repeat and self.high - self.low + 1 != self.n_inputs:
            raise ValueError(
                f"no_repeat needs n_inputs == high - low + 1 = {self.high - self.low + 1}, "
                f"got n_inputs={self.n_inputs}"
            )

    @property
    def d_vocab(self) -> int:
        return max(self.modulus, self.high) + 1

    def sample(self, batch_size: int, generator: torch.Generator, device="cpu") -> SequenceBatch:
        check_int("batch_size", batch_size, 1)
        if self.no_repeat:
            keys = torch.rand((batch_size, self.n_inputs), generator=generator, device=device)
            x = keys.argsort(dim=-1) + self.low
        else:
            x = _uniform_ints(self.low, self.high, (batch_size, self.n_inputs), generator, device)
        sep = torch.full((batch_size, 1), self.modulus, device=x.device)
        return self._batch(torch.cat([x, sep, torch.remainder(x.cumsum(-1), self.modulus)], -1))

    def optimal_attention(self) -> Float[Tensor, "query key"]:
        windows = [(0, i) for i in range(self.n_inputs)]
        return _windowed_sum_mask(self.prompt_length, self.answer_length, windows)


@dataclass(frozen=True)
class RepeatK(SequenceTask):
    """Repeat-k: x₁…x₁₆ from {1..16}, SEP = 17, then 16 outputs in k equal blocks; block j
    (0-indexed) repeats (x₁ + j) mod 17. k ∈ {1, 2, 4}; vocabulary 18. Optimal attention:
    every output row attends to x₁ (key 0)."""

    k: int = 1
    n_inputs: int = 16
    low: int = 1
    high: int = 16
    name = "repeat"

    def __post_init__(self) -> None:
        self._check_inputs()
        check_int("k", self.k, 1, self.n_inputs)
        if self.n_inputs % self.k:
            raise ValueError(f"k must divide n_inputs={self.n_inputs}, got k={self.k}")

    @property
    def d_vocab(self) -> int:
        return self.high + 2

    def sample(self, batch_size: int, generator: torch.Generator, device="cpu") -> SequenceBatch:
        check_int("batch_size", batch_size, 1)
        x = _uniform_ints(self.low, self.high, (batch_size, self.n_inputs), generator, device)
        block = torch.arange(self.n_inputs, device=x.device) // (self.n_inputs // self.k)
        outputs = torch.remainder(x[:, :1] + block, self.high + 1)
        sep = torch.full((batch_size, 1), self.high + 1, device=x.device)
        return self._batch(torch.cat([x, sep, outputs], dim=-1))

    def optimal_attention(self) -> Float[Tensor, "query key"]:
        return _windowed_sum_mask(self.prompt_length, self.answer_length, [(0, 0)] * self.n_inputs)


@dataclass(frozen=True)
class MultiDigitAddition(SequenceTask):
    """Addition: "aaaa+bbbb=" then the (digits+1)-digit sum reversed; a, b uniform in
    [1, 10^digits − 1], zero-padded; '+' = 10, '=' = 11, vocabulary 12. Default 4 digits:
    15 tokens, scored: the 5 sum digits. Optimal attention: sum digit i (least significant
    first) attends to digit i of a and of b (carries are not in the mask)."""

    digits: int = 4
    name = "addition"
    plus_token = 10
    equal_token = 11
    d_vocab = 12

    def __post_init__(self) -> None:
        check_int("digits", self.digits, 1, 17)

    @property
    def prompt_length(self) -> int:
        return 2 * self.digits + 2

    @property
    def answer_length(self) -> int:
        return self.digits + 1

    @staticmethod
    def _digits(values: Tensor, count: int) -> Tensor:
        powers = 10 ** torch.arange(count - 1, -1, -1, device=values.device)
        return (values[:, None] // powers) % 10

    def sample(self, batch_size: int, generator: torch.Generator, device="cpu") -> SequenceBatch:
        check_int("batch_size", batch_size, 1)
        top = 10**self.digits - 1
        a = _uniform_ints(1, top, (batch_size,), generator, device)
        b = _uniform_ints(1, top, (batch_size,), generator, device)
        plus = torch.full((batch_size, 1), self.plus_token, device=a.device)
        equal = torch.full((batch_size, 1), self.equal_token, device=a.device)
        total = self._digits(a + b, self.digits + 1).flip(-1)
        tokens = [self._digits(a, self.digits), plus, self._digits(b, self.digits), equal, total]
        return self._batch(torch.cat(tokens, dim=-1))

    def optimal_attention(self) -> Float[Tensor, "query key"]:
        size = self.sequence_length - 1
        mask = torch.zeros(size, size)
        for i in range(self.digits):
            row = self.prompt_length - 1 + i
            mask[row, self.digits - 1 - i] = 1
            mask[row, 2 * self.digits - i] = 1
        return mask


@dataclass(frozen=True)
class Permutation(SequenceTask):
    """Permutation: x₁…x₁₆ from {17..32}, 0, then π(1)+1…π(16)+1 (a uniform permutation),
    SEP = 0, then yᵢ = x_{π(i)}. Vocabulary 33, 50 tokens; the study uses 2 layers.
    Scored: the 16 outputs. Optimal attention: the row predicting yᵢ attends to x_{π(i)},
    which depends on the sample, so no fixed mask is defined."""

    n_inputs: int = 16
    low: int = 17
    high: int = 32
    name = "permutation"

    def __post_init__(self) -> None:
        check_int("n_inputs", self.n_inputs, 1)
        check_int("low", self.low, self.n_inputs + 1)
        check_int("high", self.high, self.low)

    @property
    def prompt_length(self) -> int:
        return 2 * self.n_inputs + 2

    @property
    def answer_length(self) -> int:
        return self.n_inputs

    @property
    def d_vocab(self) -> int:
        return max(self.high, self.n_inputs) + 1

    def sample(self, batch_size: int, generator: torch.Generator, device="cpu") -> SequenceBatch:
        check_int("batch_size", batch_size, 1)
        x = _uniform_ints(self.low, self.high, (batch_size, self.n_inputs), generator, device)
        keys = torch.rand((batch_size, self.n_inputs), generator=generator, device=device)
        pi = keys.argsort(dim=-1)
        zero = torch.zeros((batch_size, 1), dtype=torch.long, device=x.device)
        return self._batch(torch.cat([x, zero, pi + 1, zero, x.gather(1, pi)], dim=-1))


@dataclass(frozen=True)
class Histogram(SequenceTask):
    """Histogram: x₁…x₁₆ from {1..12}, 0, then yᵢ = #{j : x_j = xᵢ}. Vocabulary 17; the study
    uses 2 layers and gradient clipping 1.0. Scored: the 16 counts. Optimal attention: the
    row predicting yᵢ attends to the inputs equal to xᵢ (sample-dependent: no fixed mask)."""

    n_inputs: int = 16
    alphabet_size: int = 12
    name = "histogram"

    def __post_init__(self) -> None:
        self._check_inputs()
        check_int("alphabet_size", self.alphabet_size, 1)

    @property
    def d_vocab(self) -> int:
        return max(self.alphabet_size, self.n_inputs) + 1

    def sample(self, batch_size: int, generator: torch.Generator, device="cpu") -> SequenceBatch:
        check_int("batch_size", batch_size, 1)
        x = _uniform_ints(1, self.alphabet_size, (batch_size, self.n_inputs), generator, device)
        counts = (x[:, :, None] == x[:, None, :]).sum(-1)
        zero = torch.zeros((batch_size, 1), dtype=torch.long, device=x.device)
        return self._batch(torch.cat([x, zero, counts], dim=-1))


@dataclass(frozen=True)
class Copy(SequenceTask):
    """Copy: x₁…x₁₆ from {1..16}, 0, then x₁…x₁₆. Vocabulary 17; scored: the 16 outputs.
    Optimal attention: the row predicting yᵢ attends to xᵢ."""

    n_inputs: int = 16
    low: int = 1
    high: int = 16
    name = "copy"
    reverse = False

    def __post_init__(self) -> None:
        self._check_inputs()

    @property
    def d_vocab(self) -> int:
        return self.high + 1

    def sample(self, batch_size: int, generator: torch.Generator, device="cpu") -> SequenceBatch:
        check_int("batch_size", batch_size, 1)
        x = _uniform_ints(self.low, self.high, (batch_size, self.n_inputs), generator, device)
        zero = torch.zeros((batch_size, 1), dtype=torch.long, device=x.device)
        outputs = x.flip(-1) if self.reverse else x
        return self._batch(torch.cat([x, zero, outputs], dim=-1))

    def optimal_attention(self) -> Float[Tensor, "query key"]:
        last = self.n_inputs - 1
        sources = [last - i if self.reverse else i for i in range(self.n_inputs)]
        return _windowed_sum_mask(self.prompt_length, self.answer_length,
                                  [(s, s) for s in sources])


@dataclass(frozen=True)
class Reverse(Copy):
    """Reverse: x₁…x₁₆ from {1..16}, 0, then x₁₆…x₁. Vocabulary 17; scored: the 16 outputs.
    Optimal attention: the row predicting yᵢ attends to x_{17−i}."""

    name = "reverse"
    reverse = True
