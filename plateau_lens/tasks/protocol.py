"""The task contract: what every task (LRMC, the algorithmic tasks, LLM prompts, a plugin's)
provides, so that training and every analyzer work on any of them without asking which one
it is.

A task class is a dataclass whose fields are its **settings** (plain values: bool, int, float,
str, or tuples of them; the ``[task]`` table of a config), checked in ``__post_init__`` (raise
``ValueError`` naming the field and what it allows). It **samples** from a ``torch.Generator``
it is given (a batch is a pure function of the generator's seed), owns its **loss and
metrics**, and **declares** what it offers beyond that in ``capabilities`` (names from
:data:`CAPABILITIES`), so that models and analyzers ask the declaration, not the attributes.
Register one with :func:`plateau_lens.register_task`, an entry point or a ``"module:Class"``
path (``docs/extending.md``). Everything an analyzer may ask of a task is here: the members of
:class:`Task`, the members a declared capability promises (:data:`PROMISED_MEMBERS`) and the
optional members with their defaults (:data:`OPTIONAL_MEMBERS`, read with
:func:`optional_member`); the last three live in :mod:`plateau_lens.tasks.capabilities` and are
importable from here.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from .base import Batch, ProbeTarget
from .capabilities import (CAPABILITIES, OPTIONAL_MEMBERS, PROMISED_MEMBERS,  # noqa: F401
                           capabilities_of, check_capabilities, has_capability, optional_member)


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
    capabilities: frozenset[str]
    """What the task offers beyond the members below (keys of :data:`CAPABILITIES`)."""

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
    of an online generator, declared by the capability ``"finite_data"``: a training split the trainer draws its batches from (the whole
    split when ``train.batch_size`` covers it, else shuffled epochs) and a held-out split.
    Each split is a pure function of the task's settings (its own seed among them), so a
    resumed run sees the same data. The trainer logs ``train_<metric>`` and ``test_<metric>``
    of ``metrics`` over each whole split (``train_loss``, ``train_accuracy``, ``test_loss``,
    ``test_accuracy``, …); ``sample`` still serves analyzers that ask for a batch."""

    def dataset(self, split: str, device: Any = "cpu") -> Batch:
        """The whole ``split`` ("train" or "test") as one batch, in a fixed order."""
        ...


def is_finite(task) -> bool:
    """Whether ``task`` trains on a fixed data set (declares ``"finite_data"``)."""
    return has_capability(task, "finite_data")
