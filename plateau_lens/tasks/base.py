"""Shared pieces of the online task generators: batches, validation, per-step seeding."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Callable, ClassVar, Literal

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from ..errors import InputError
from .capabilities import has_capability, optional_member


def check_int(field_name: str, value: Any, low: int, high: int | None = None,
              bounded_by: str | None = None) -> int:
    """Return ``value`` as int or raise ``ValueError`` naming the field and its allowed range
    (``bounded_by``: the other field(s) the range comes from, named in the message too)."""
    allowed = f"[{low}, {high}]" if high is not None else f">= {low}"
    source = f" (the range is set by {bounded_by})" if bounded_by else ""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{field_name} must be an integer {allowed}, got {value!r}{source}")
    if value < low or (high is not None and value > high):
        raise InputError(f"{field_name} must be in {allowed}, got {value}{source}")
    return int(value)


def check_choice(field_name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise InputError(f"{field_name} must be one of {list(choices)}, got {value!r}")
    return value


def check_batch_type(task, batch, batch_type: type) -> None:
    """Raise ``ValueError`` unless ``batch`` is a non-empty ``batch_type`` whose width is the
    task's number of positions (shared start of every task's ``check_batch``)."""
    if not isinstance(batch, batch_type):
        raise InputError(f"batch must be a {batch_type.__name__} for task {task.name!r}, "
                         f"got {type(batch).__name__}")
    stored = getattr(batch, "tokens", None)  # a sequence batch's inputs are a view of its tokens
    stored = batch.inputs if stored is None else stored
    if not isinstance(stored, Tensor) or stored.ndim != 2:
        shape = tuple(stored.shape) if isinstance(stored, Tensor) else type(stored).__name__
        raise InputError(f"batch inputs must be a [batch, positions] tensor of token ids, got "
                         f"{shape} (build batches with task.sample or the task's own helpers)")
    if stored.is_floating_point() or stored.is_complex() or stored.dtype == torch.bool:
        raise InputError(f"batch inputs must be integer token ids (torch.long), got {stored.dtype}")
    inputs = batch.inputs
    if len(batch) == 0:
        raise InputError("batch is empty: give at least one sample")
    width = inputs.shape[-1]
    if width != task.n_positions:
        raise InputError(
            f"batch has {width} positions but task {task.name!r} has {task.n_positions}")
    expected = task.prompt_length if has_capability(task, "answers") else None
    given = getattr(batch, "prompt_length", None)
    if isinstance(expected, int) and given is not None and given != expected:
        raise InputError(f"batch.prompt_length is {given} but task {task.name!r} has prompts of "
                         f"{expected} tokens (build the batch with task.sample)")
    vocabulary = optional_member(task, "token_vocabulary")
    if vocabulary is not None:
        ids = batch.inputs
        if ids.numel() and (ids.min() < 0 or ids.max() >= vocabulary):
            raise InputError(f"batch token ids must be in [0, {vocabulary - 1}] for task "
                             f"{task.name!r}, got ids in [{ids.min().item()}, {ids.max().item()}]")


@dataclass(frozen=True)
class ProbeTarget:
    """What a linear probe reads out: ``values(task, batch)`` gives [batch, pos, k] float
    targets (``kind="regression"``) or [batch, pos] integer labels (``"classification"``);
    ``split_by_mask``: also report the MSE on masked and on observed positions."""

    kind: Literal["regression", "classification"]
    values: Callable[[Any, "Batch"], Tensor]
    split_by_mask: bool = False


def step_generator(seed: int, step: int, device: torch.device | str = "cpu") -> torch.Generator:
    """The generator for training batch ``step`` of a run seeded ``seed``.

    Each batch is a pure function of (seed, step), so a resumed run draws exactly the
    batches an uninterrupted one would, without carrying generator state around.
    """
    state = np.random.SeedSequence([int(seed), int(step)]).generate_state(2, dtype=np.uint32)
    generator = torch.Generator(device=device)
    generator.manual_seed(int(state[0]) << 32 | int(state[1]))
    return generator


@dataclass
class Batch:
    """Base class: every batch knows how to move itself to a device and slice itself."""

    def to(self, device: torch.device | str) -> "Batch":
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        moved = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in values.items()}
        return type(self)(**moved)

    def __getitem__(self, index) -> "Batch":
        values = {}
        for f in fields(self):
            value = getattr(self, f.name)
            values[f.name] = value[index] if isinstance(value, Tensor) else value
        return type(self)(**values)

    def __len__(self) -> int:
        return int(self.inputs.shape[0])  # type: ignore[attr-defined]


@dataclass
class MatrixBatch(Batch):
    """A batch of masked low-rank matrices, flattened row-major into ``m*n`` positions."""

    inputs: Int[Tensor, "batch pos"]
    """Model input ids (discrete tokens, or fixed-point values for the real encoding)."""
    matrix: Float[Tensor, "batch m n"]
    """The true matrix X = U Vᵀ."""
    observed: Bool[Tensor, "batch m n"]
    """True where the entry is shown to the model."""
    U: Float[Tensor, "batch m r"]
    V: Float[Tensor, "batch n r"]
    task_name: ClassVar[str] = "lrmc"


@dataclass
class SequenceBatch(Batch):
    """A batch of full token sequences for next-token training.

    The model reads ``tokens[:, :-1]`` and is trained to predict ``tokens[:, 1:]``;
    the answer occupies ``tokens[:, prompt_length:]``.
    """

    tokens: Int[Tensor, "batch seq"]
    prompt_length: int = 0
    task_name: str = field(default="sequence")

    @property
    def inputs(self) -> Int[Tensor, "batch seq_minus_1"]:
        return self.tokens[:, :-1]

    @property
    def targets(self) -> Int[Tensor, "batch seq_minus_1"]:
        return self.tokens[:, 1:]

    @property
    def prompts(self) -> Int[Tensor, "batch prompt"]:
        return self.tokens[:, : self.prompt_length]

    @property
    def answers(self) -> Int[Tensor, "batch answer"]:
        return self.tokens[:, self.prompt_length :]

    def __len__(self) -> int:
        return int(self.tokens.shape[0])
