"""Algorithmic sequence tasks of the loss-plateau study (Gopalani & Hu, arXiv 2506.13688).

Every task yields full token sequences ``prompt ++ answer``; a causal model reads
``tokens[:, :-1]`` and is trained with next-token cross-entropy on all positions (the
study's loss). Accuracy is scored by greedy generation from the prompt, on the answer
positions only. ``optimal_attention`` gives, for tasks where it is defined, the 0/1 mask
M over (query row, key) of the model input that a perfect solution attends to: the query
row that predicts answer token j attends to the inputs answer j is computed from.

Every definition below that the study's metrics read (optimal masks, collapse rows and
pairs, entropy) follows the authors' ``src/train_*.py`` (github pulkitgopalani/tf-loss-plateau)
and names the script; where that code and the paper's definition disagree, the paper's is
used and the docstring says so.
"""

from __future__ import annotations

import itertools
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
    capabilities = frozenset({"answers", "collapse_pairs", "attention_masks"})

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
            check_int("high", self.high, self.low, bounded_by="low")

    def _check_separator(self, separator: int) -> None:
        """The separator token must be an integer ≥ 0 that no input (low..high) and no
        output (0..modulus − 1) can be, or the model could not tell it from the data."""
        check_int("separator", separator, 0)
        clashes, fields = [], []
        if self.low <= separator <= self.high:
            clashes.append(f"inputs {self.low}..{self.high}")
            fields.append("low..high")
        if separator < self.modulus:
            clashes.append(f"outputs 0..{self.modulus - 1}")
            fields.append("0..modulus-1")
        if clashes:
            raise ValueError(f"separator must be an integer >= 0 outside the {' and '.join(clashes)} "
                             f"({' and '.join(fields)}; e.g. {max(self.high, self.modulus - 1) + 1}), "
                             f"got {separator}")

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
        return self._cross_entropy(logits, batch, "mean")

    @staticmethod
    def _cross_entropy(logits: Float[Tensor, "batch pos vocab"], batch: SequenceBatch,
                       reduction: str) -> Tensor:
        """Next-token cross-entropy of every position in float32, reduced as ``reduction``."""
        return torch.nn.functional.cross_entropy(
            logits.float().flatten(0, 1), batch.targets.flatten(), reduction=reduction)

    @torch.no_grad()
    def metrics(self, logits: Float[Tensor, "batch pos vocab"], batch: SequenceBatch) -> dict[str, Tensor]:
        """``loss`` (next-token cross-entropy, every position) and ``teacher_forced_accuracy``
        (argmax on the answer rows; the study's accuracy is by generation, see
        ``plateau_lens.metrics.generation_metrics``). Each token's cross-entropy in float32, as in
        training (a float64 copy of an LLM's logits would be large), their mean in float64: the
        small differences analyzers report (ablated − clean) are then not float32 rounding of the
        mean (1e-8 of it; per token it averages out to ~1e-10)."""
        rows = self.answer_rows()
        predicted = logits[:, rows.start : rows.stop].argmax(-1)
        return {"loss": self._cross_entropy(logits, batch, "none").double().mean(),
                "teacher_forced_accuracy": (predicted == batch.answers).double().mean()}

    def check_batch(self, batch) -> None:
        """Raise ``ValueError`` unless ``batch`` is a non-empty sequence batch of this task."""
        check_batch_type(self, batch, SequenceBatch)

    def default_corruption(self, batch: SequenceBatch) -> SequenceBatch:
        raise ValueError(f"task {self.name!r} has no default corruption: pass corrupted_batch= "
                         f"(or corrupt=) for activation patching")

    def collapse_positions(self) -> list[int]:
        """The study's collapse rows: the answer-predicting rows after the separator's
        (17–31 in MWS: 15 rows, 105 pairs; ``mean_cosine_sim`` of ``src/train_mws.py``).
        Tasks whose study script reads other rows override this."""
        return list(self.answer_rows())[1:]

    def collapse_pairs(self) -> dict[str, list[tuple[int, int]]]:
        """The study's representation-collapse measures: logged metric name → the (row, row)
        pairs (i < j) whose cosine similarities are averaged (over samples and pairs, each
        pair once). ``cosine_similarity`` is the headline measure; by default every pair of
        ``collapse_positions()``."""
        return {"cosine_similarity": list(itertools.combinations(self.collapse_positions(), 2))}

    @property
    def log_entropy(self) -> bool:
        """Whether the study logs the entropy of the generated outputs for this task (it
        declares ``"output_entropy"``)."""
        return "output_entropy" in self.capabilities

    def attention_progress_masks(self, batch: SequenceBatch, n_layers: int) -> dict[int, Tensor]:
        """layer → the 0/1 mask of the study's attention progress for that layer's pattern:
        [query, key], or [batch, query, key] where the optimal keys depend on the sample.
        Default: ``optimal_attention()`` on the last layer (the study's ``GPTLinear`` returns
        the last block's attention map); empty where the study defines no mask."""
        optimal = self.optimal_attention()
        return {} if optimal is None else {n_layers - 1: optimal}

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
    predicting yᵢ attends to x_{i−k+1}…xᵢ for i ≥ k, and to xᵢ alone for the plain copies
    i < k (k = 2: row 16 → key 0, row 17+i → keys i, i+1, as in ``src/train_mws.py``).
    For k = 3 the authors' ``src/train_mws_random_init.py`` marks keys i, i+1 of output
    i+2's row (``i : i + 2``), one key short of the window; we mark the whole window, the
    paper's definition of the sum.
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
        check_int("window", self.window, 1, self.n_inputs, bounded_by="n_inputs")
        check_int("modulus", self.modulus, 2)
        self._check_separator(self.separator)

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
        k = self.window
        windows = [(i, i) if i < k - 1 else (i - k + 1, i) for i in range(self.n_inputs)]
        return _windowed_sum_mask(self.prompt_length, self.answer_length, windows)


@dataclass(frozen=True)
class ConcatMovingWindowSum(SequenceTask):
    """The study's concatenated MWS (mix "123_disjoint_454"): 16 inputs from {1..16}, SEP 17,
    then 13 outputs mod 17: y₀…y₃ = x₀…x₃ (copies), y₄…y₈ = x_i + x_{i+1} (5 window-2 sums),
    y₉…y₁₂ = x_{i+1} + x_{i+2} + x_{i+3} (4 window-3 sums; 0-indexed as in the authors' code).
    Vocabulary 18; scored: the 13 outputs.

    Collapse (``src/train_mws_concat.py``): pairs among rows 16–28 (the separator's row
    included), split by the earlier row's segment: ``cosine_similarity_copies`` (earlier
    row 16–19, 42 pairs: ``cosine_sim_1``), ``_window2`` (20–24, 30 pairs) and ``_window3``
    (25–28, 6 pairs); ``cosine_similarity`` is all 78. The study logs no attention progress
    for this task; ``optimal_attention`` (each output's window) is ours."""

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
        self._check_inputs()
        check_int("modulus", self.modulus, 2)
        self._check_separator(self.separator)

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

    def collapse_positions(self) -> list[int]:
        return list(self.answer_rows())

    def collapse_pairs(self) -> dict[str, list[tuple[int, int]]]:
        rows = self.collapse_positions()
        pairs = list(itertools.combinations(rows, 2))
        first = rows[0]
        segments = {"copies": range(first, first + 4), "window2": range(first + 4, first + 9),
                    "window3": range(first + 9, first + 13)}
        measures = {"cosine_similarity": pairs}
        for name, segment in segments.items():
            measures[f"cosine_similarity_{name}"] = [(i, j) for i, j in pairs if i in segment]
        return measures


@dataclass(frozen=True)
class PrefixSum(SequenceTask):
    """Prefix sum: x₁…x₁₆ from {1..16} (or, with ``no_repeat``, a random permutation of
    1..16), SEP = 17, then yᵢ = (x₁ + … + xᵢ) mod 17. Vocabulary 18; scored: the 16 outputs.
    Optimal attention (``src/train_prefix.py``): yᵢ = y_{i−1} + xᵢ, so the row predicting yᵢ
    attends to xᵢ and to y_{i−1} (its own input token: row 16+i → keys i and 16+i for
    i ≥ 1; row 16 → key 0). Collapse: rows 17–31 as MWS. The study logs the entropy of the
    outputs (``log_entropy``)."""

    n_inputs: int = 16
    low: int = 1
    high: int = 16
    modulus: int = 17
    no_repeat: bool = False
    name = "prefix_sum"

    def __post_init__(self) -> None:
        self._check_inputs()
        check_int("modulus", self.modulus, 2)
        if self.low <= self.modulus <= self.high:
            raise ValueError(f"modulus is also the separator token, so it must lie outside the "
                             f"inputs {self.low}..{self.high} (low..high; e.g. {self.high + 1}), got {self.modulus}")
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

    capabilities = SequenceTask.capabilities | {"output_entropy"}

    def optimal_attention(self) -> Float[Tensor, "query key"]:
        size = self.sequence_length - 1
        first = self.prompt_length - 1
        mask = torch.zeros(size, size)
        mask[first, 0] = 1
        for i in range(1, self.n_inputs):
            mask[first + i, i] = 1  # x_{i+1}
            mask[first + i, first + i] = 1  # y_i, the row's own input token
        return mask


@dataclass(frozen=True)
class RepeatK(SequenceTask):
    """Repeat-k: x₁…x₁₆ from {1..16}, SEP = 17, then 16 outputs in k equal blocks; block j
    (0-indexed) repeats (x₁ + j) mod 17. k ∈ {1, 2, 4}; vocabulary 18.

    Collapse (``src/train_repeat.py``): k = 1 over rows 17–31 as MWS; k = 2 and 4 only
    within blocks, leaving out the row that predicts each block's first output (k = 2:
    pairs among rows 17–23 and among 25–31, 42 pairs; k = 4: among 17–19, 21–23, 25–27,
    29–31, 12 pairs). The study logs no attention progress for repeat-k; the mask here
    (every output row attends to x₁, key 0) is ours."""

    k: int = 1
    n_inputs: int = 16
    low: int = 1
    high: int = 16
    name = "repeat"

    def __post_init__(self) -> None:
        self._check_inputs()
        check_int("k", self.k, 1, self.n_inputs, bounded_by="n_inputs")
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

    def collapse_blocks(self) -> list[list[int]]:
        """Rows whose hidden states are compared with each other, one list per block."""
        if self.k == 1:
            return [self.collapse_positions()]
        size = self.n_inputs // self.k
        first = self.prompt_length - 1
        return [list(range(first + b * size + 1, first + (b + 1) * size)) for b in range(self.k)]

    def collapse_positions(self) -> list[int]:
        if self.k == 1:
            return super().collapse_positions()
        return [row for block in self.collapse_blocks() for row in block]

    def collapse_pairs(self) -> dict[str, list[tuple[int, int]]]:
        return {"cosine_similarity": [pair for block in self.collapse_blocks()
                                      for pair in itertools.combinations(block, 2)]}


@dataclass(frozen=True)
class MultiDigitAddition(SequenceTask):
    """Addition: "aaaa+bbbb=" then the (digits+1)-digit sum reversed; a, b uniform in
    [1, 10^digits − 1], zero-padded; '+' = 10, '=' = 11, vocabulary 12. Default 4 digits:
    15 tokens, scored: the 5 sum digits.

    Optimal attention (``src/train_add.py``): sum digit 0 (least significant, row 9)
    attends to digit 0 of a and of b (keys 3, 8); sum digit i = 1…3 (rows 10–12) to digit i
    of a and b and to digit i−1 of each, where its carry comes from (keys 3−i, 4−i, 8−i,
    9−i); the final carry (row 13) to the most significant digits (keys 0 and 5).
    Collapse: rows 9–12 (the digit rows without the final carry's; 6 pairs). The study
    logs the entropy of the outputs (``log_entropy``)."""

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

    capabilities = SequenceTask.capabilities | {"output_entropy"}

    def optimal_attention(self) -> Float[Tensor, "query key"]:
        n = self.digits
        size = self.sequence_length - 1
        first = self.prompt_length - 1
        mask = torch.zeros(size, size)
        mask[first, [n - 1, 2 * n]] = 1
        for i in range(1, n):  # digit i of a and b, and digit i−1 of each (the carry)
            mask[first + i, [n - 1 - i, n - i, 2 * n - i, 2 * n - i + 1]] = 1
        mask[first + n, [0, n + 1]] = 1  # the final carry: the most significant digits
        return mask

    def collapse_positions(self) -> list[int]:
        return list(self.answer_rows())[:-1]


@dataclass(frozen=True)
class Permutation(SequenceTask):
    """Permutation: x₁…x₁₆ from {17..32}, 0, then π(1)+1…π(16)+1 (a uniform permutation),
    SEP = 0, then yᵢ = x_{π(i)}. Vocabulary 33, 50 tokens; the study uses 2 layers.
    Scored: the 16 outputs.

    Attention progress (``src/train_permute.py``): layer 0's row predicting yᵢ (row 33+i)
    attends to the token π(i)+1 (key 17+i); layer 1's to x_{π(i)} (key π(i): a mask per
    sample, read from the batch). Collapse: rows 33–48 (the separator's row included,
    120 pairs). No fixed mask (``optimal_attention`` is None: no biasing)."""

    n_inputs: int = 16
    low: int = 17
    high: int = 32
    name = "permutation"

    def __post_init__(self) -> None:
        check_int("n_inputs", self.n_inputs, 1)
        check_int("low", self.low, self.n_inputs + 1, bounded_by="n_inputs")
        check_int("high", self.high, self.low, bounded_by="low")

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

    def collapse_positions(self) -> list[int]:
        return list(self.answer_rows())

    def attention_progress_masks(self, batch: SequenceBatch, n_layers: int) -> dict[int, Tensor]:
        n, size = self.n_inputs, self.n_positions
        first = self.prompt_length - 1
        rows = torch.arange(first, first + n)
        layer0 = torch.zeros(size, size)
        layer0[rows, torch.arange(n + 1, 2 * n + 1)] = 1
        masks = {0: layer0}
        if n_layers > 1:
            pi = batch.tokens[:, n + 1 : 2 * n + 1].cpu() - 1
            layer1 = torch.zeros(len(batch), size, size)
            layer1[torch.arange(len(batch))[:, None], rows[None, :], pi] = 1
            masks[1] = layer1
        return masks


@dataclass(frozen=True)
class Histogram(SequenceTask):
    """Histogram: x₁…x₁₆ from {1..12}, 0, then yᵢ = #{j : x_j = xᵢ}. Vocabulary 17; the study
    uses 2 layers and gradient clipping 1.0. Scored: the 16 counts.

    Attention progress (``src/train_hist.py``): layer 0 only, the row predicting yᵢ
    (row 16+i) attends to xᵢ itself (key i); the study defines no mask for layer 1.
    Collapse: rows 16–31 (the separator's row included, 120 pairs). No fixed
    ``optimal_attention`` (no biasing)."""

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

    def collapse_positions(self) -> list[int]:
        return list(self.answer_rows())

    def attention_progress_masks(self, batch: SequenceBatch, n_layers: int) -> dict[int, Tensor]:
        size, first = self.n_positions, self.prompt_length - 1
        mask = torch.zeros(size, size)
        mask[torch.arange(first, first + self.n_inputs), torch.arange(self.n_inputs)] = 1
        return {0: mask}


@dataclass(frozen=True)
class Copy(SequenceTask):
    """Copy: x₁…x₁₆ from {1..16}, 0, then x₁…x₁₆. Vocabulary 17; scored: the 16 outputs.
    Optimal attention: the row predicting yᵢ attends to xᵢ. Collapse
    (``src/train_copy_reverse.py``): rows 16–31, the separator's row included (120 pairs)."""

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

    def collapse_positions(self) -> list[int]:
        return list(self.answer_rows())

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
