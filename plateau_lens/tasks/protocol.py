"""The task protocol: what every task (LRMC, the algorithmic tasks, LLM prompts) provides,
so that training and every analyzer work on any of them without asking which one it is."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from .base import Batch, ProbeTarget


@runtime_checkable
class Task(Protocol):
    """An online task. Besides sampling it owns its loss and metrics, its default corruption
    for patching, its probe targets, the positions where collapse is measured and (where the
    study defines one) the optimal attention mask."""

    name: str
    attention_dir: str
    """"causal" (decoders) or "bidirectional" (LRMC's encoder)."""
    readout_bias: bool
    """Whether the model's read-out layer has a bias (LRMC's regression head does)."""

    @property
    def n_positions(self) -> int: ...

    @property
    def d_vocab(self) -> int: ...

    @property
    def d_vocab_out(self) -> int: ...

    def sample(self, batch_size: int, generator: torch.Generator, device: Any = "cpu") -> Batch: ...

    def loss(self, output: Tensor, batch: Batch) -> Tensor: ...

    def metrics(self, output: Tensor, batch: Batch) -> dict[str, Tensor]:
        """The task metrics every analyzer reports (0-d tensors, ``loss`` among them)."""
        ...

    def check_batch(self, batch: Batch) -> None:
        """Raise ``ValueError`` for a batch this task cannot score (wrong kind, width, empty)."""
        ...

    def default_corruption(self, batch: Batch) -> Batch:
        """The corrupted input of activation patching (raise ``ValueError`` where none)."""
        ...

    def probe_targets(self) -> dict[str, ProbeTarget]: ...

    def collapse_positions(self) -> list[int]: ...

    def optimal_attention(self) -> Tensor | None: ...


SPLITS = ("train", "test")


@runtime_checkable
class FiniteTask(Task, Protocol):
    """A task with a fixed data set (grokking: Power et al. 2022, Nanda et al. 2023) instead
    of an online generator: a training split the trainer draws its batches from (the whole
    split when ``train.batch_size`` covers it, else shuffled epochs) and a held-out split.
    Each split is a pure function of the task's settings (its own seed among them), so a
    resumed run sees the same data. The trainer logs ``train_<metric>`` and ``test_<metric>``
    of ``metrics`` over each whole split (``train_loss``, ``train_accuracy``, ``test_loss``,
    ``test_accuracy``, …); ``sample`` still serves analyzers that ask for a batch."""

    def dataset(self, split: str, device: Any = "cpu") -> Batch:
        """The whole ``split`` ("train" or "test") as one batch, in a fixed order."""
        ...


def is_finite(task) -> bool:
    """Whether ``task`` trains on a fixed data set (declares ``dataset``)."""
    return callable(getattr(task, "dataset", None))
