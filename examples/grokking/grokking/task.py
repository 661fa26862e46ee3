"""Modular addition a + b mod p on a fixed train/held-out split (Nanda et al. 2023, §3).

Input "a b =" (three tokens: a, b in 0…p-1, "=" is token p), the answer c = (a + b) mod p
predicted at the last position from the p output logits. All p² pairs, shuffled with
``data_seed`` and cut at ``train_fraction`` (Nanda et al.: 30 %, p = 113, so 3 830 training
pairs and 8 939 held out). Loss: cross-entropy at the last position, computed in float64 as
their ``cross_entropy_high_precision`` does (grokking's late phase drives losses to 1e-7,
where float32 log-softmax rounds to 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from plateau_lens.tasks.base import SequenceBatch, check_batch_type, check_int

SPLITS = ("train", "test")


@dataclass(frozen=True)
class ModularAddition:
    """a + b mod ``p`` with a fixed split: ``train_fraction`` of the p² pairs for training."""

    p: int = 113
    train_fraction: float = 0.3
    data_seed: int = 598
    """Seed of the pairs' shuffle (Nanda et al.'s notebook uses 598)."""

    name: ClassVar[str] = "grokking"
    attention_dir: ClassVar[str] = "causal"
    readout_bias: ClassVar[bool] = False
    capabilities: ClassVar[frozenset[str]] = frozenset({"finite_data"})

    def __post_init__(self):
        check_int("task.p", self.p, 2, 1000)
        check_int("task.data_seed", self.data_seed, 0, 2**32 - 1)
        if isinstance(self.train_fraction, bool) or not isinstance(self.train_fraction, (int, float)) \
                or not 0 < self.train_fraction < 1:
            raise ValueError(f"task.train_fraction must be a number in (0, 1), got {self.train_fraction!r}")
        n_train = int(self.train_fraction * self.p ** 2)
        if not 0 < n_train < self.p ** 2:
            raise ValueError(f"task.train_fraction={self.train_fraction} leaves no pair in a split "
                             f"for p={self.p}")

    # ---------------------------------------------------------------- shape of the problem
    @property
    def n_positions(self) -> int:
        return 3

    @property
    def d_vocab(self) -> int:
        return self.p + 1  # 0…p-1 and "="

    @property
    def d_vocab_out(self) -> int:
        return self.p

    @property
    def equals_token(self) -> int:
        return self.p

    # ---------------------------------------------------------------- data
    def pairs(self) -> Int[Tensor, "pair 2"]:
        """Every (a, b), a-major: row a·p + b."""
        grid = torch.cartesian_prod(torch.arange(self.p), torch.arange(self.p))
        return grid

    def split_indices(self, split: str) -> Int[Tensor, "n"]:
        """Rows of :meth:`pairs` in ``split``: a permutation of all p² rows drawn from
        ``data_seed`` (numpy's PCG64), the first ⌊train_fraction·p²⌋ for training (Nanda et al.: int(frac · p²))."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
        order = np.random.default_rng(self.data_seed).permutation(self.p ** 2)
        n_train = int(self.train_fraction * self.p ** 2)
        chosen = order[:n_train] if split == "train" else order[n_train:]
        return torch.as_tensor(np.sort(chosen), dtype=torch.long)

    def batch_of(self, pairs: Int[Tensor, "n 2"], device: Any = "cpu") -> SequenceBatch:
        """Sequences "a b = c" for the given pairs (the model reads "a b =")."""
        a, b = pairs[:, 0], pairs[:, 1]
        equals = torch.full_like(a, self.equals_token)
        tokens = torch.stack([a, b, equals, (a + b) % self.p], dim=1)
        return SequenceBatch(tokens=tokens.to(device), prompt_length=3, task_name=self.name)

    def dataset(self, split: str, device: Any = "cpu") -> SequenceBatch:
        return self.batch_of(self.pairs()[self.split_indices(split)], device)

    def full_dataset(self, device: Any = "cpu") -> SequenceBatch:
        """All p² pairs, a-major (the grid progress measures read)."""
        return self.batch_of(self.pairs(), device)

    def sample(self, batch_size: int, generator: torch.Generator, device: Any = "cpu") -> SequenceBatch:
        """``batch_size`` training pairs drawn with replacement (for analyzers that ask for
        a batch; training itself uses :meth:`dataset`)."""
        check_int("batch_size", batch_size, 1)
        rows = self.split_indices("train")
        picks = torch.randint(len(rows), (batch_size,), generator=generator,
                              device=generator.device).cpu()
        return self.batch_of(self.pairs()[rows[picks]], device)

    # ---------------------------------------------------------------- scoring
    def answer_logits(self, output: Float[Tensor, "batch pos vocab"]) -> Float[Tensor, "batch vocab"]:
        return output[:, -1, :]

    def loss(self, output: Tensor, batch: SequenceBatch) -> Tensor:
        logits = self.answer_logits(output).double()
        return F.cross_entropy(logits, batch.answers[:, 0]).to(output.dtype)

    def metrics(self, output: Tensor, batch: SequenceBatch) -> dict[str, Tensor]:
        self.check_batch(batch)
        logits = self.answer_logits(output)
        accuracy = (logits.argmax(-1) == batch.answers[:, 0]).double().mean()
        return {"loss": self.loss(output, batch).detach(), "accuracy": accuracy}

    def check_batch(self, batch: SequenceBatch) -> None:
        check_batch_type(self, batch, SequenceBatch)
        tokens = batch.tokens
        if tokens.shape[1] != 4 or batch.prompt_length != 3:
            raise ValueError(f"a {self.name} batch holds 'a b = c' (4 tokens, prompt 3), got "
                             f"{tokens.shape[1]} tokens, prompt {batch.prompt_length}")

    # ---------------------------------------------------------------- declared capabilities
    def default_corruption(self, batch: SequenceBatch) -> SequenceBatch:
        """b replaced by b + 1 mod p (another answer, same format)."""
        tokens = batch.tokens.clone()
        tokens[:, 1] = (tokens[:, 1] + 1) % self.p
        tokens[:, 3] = (tokens[:, 0] + tokens[:, 1]) % self.p
        return SequenceBatch(tokens=tokens, prompt_length=3, task_name=self.name)

    def probe_targets(self) -> dict:
        return {}

    def collapse_positions(self) -> list[int]:
        return []

    def optimal_attention(self) -> Tensor | None:
        return None
