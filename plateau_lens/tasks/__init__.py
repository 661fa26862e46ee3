"""Online task generators: ``make_task(name, **params)`` for a shipped task, one registered
with ``register_task``, an entry point of group ``plateau_lens.tasks`` or a ``"module:Class"``
path (``plateau_lens.tasks.registry``)."""

from __future__ import annotations

from typing import Any

from .algorithmic import (
    ConcatMovingWindowSum,
    Copy,
    Histogram,
    MovingWindowSum,
    MultiDigitAddition,
    Permutation,
    PrefixSum,
    RepeatK,
    Reverse,
    SequenceTask,
)
from .base import Batch, MatrixBatch, SequenceBatch, step_generator
from .lrmc import LowRankMatrixCompletion, MixedSizeMatrixCompletion
from .lrmc_gpt import MatrixCompletionSequence
from .protocol import CAPABILITIES, Task, capabilities_of, has_capability
from .registry import TaskImportError, register_task, task_names
from . import registry as _registry

TASKS: dict[str, type] = {
    "lrmc": LowRankMatrixCompletion,
    "lrmc_mixed": MixedSizeMatrixCompletion,
    "lrmc_gpt": MatrixCompletionSequence,
    "mws": MovingWindowSum,
    "concat_mws": ConcatMovingWindowSum,
    "prefix_sum": PrefixSum,
    "repeat": RepeatK,
    "addition": MultiDigitAddition,
    "permutation": Permutation,
    "histogram": Histogram,
    "copy": Copy,
    "reverse": Reverse,
}
"""The shipped tasks (every way of finding a task: :func:`task_class`)."""

for _name, _cls in TASKS.items():
    _registry.add(_name, _cls, None)


def task_class(name: str, source: str | None = None) -> type:
    """The class of task ``name`` (shipped, registered, entry point or ``"module:Class"``;
    else imported from ``source``, a run's recorded ``"module:Class"``)."""
    return _registry.resolve(name, source).cls


def task_source(name: str, source: str | None = None) -> str | None:
    """Where task ``name`` comes from, ``"module:Class"`` (None for a shipped task)."""
    return _registry.resolve(name, source).source


def make_task(name: str, source: str | None = None, **params: Any):
    """Build a task by name (see :func:`task_class`; ``source``: where to import it from if
    nothing registered ``name``); unknown names or parameters raise ``ValueError``."""
    cls = task_class(name, source)
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for task {name!r}; allowed: {sorted(known)}")
    return cls(**params)


__all__ = [
    "TASKS", "make_task", "task_class", "task_source", "register_task", "task_names",
    "TaskImportError", "Task", "CAPABILITIES", "capabilities_of", "has_capability", "Batch", "MatrixBatch", "SequenceBatch", "SequenceTask",
    "step_generator", "LowRankMatrixCompletion", "MixedSizeMatrixCompletion",
    "MatrixCompletionSequence", "MovingWindowSum", "ConcatMovingWindowSum",
    "PrefixSum", "RepeatK", "MultiDigitAddition", "Permutation", "Histogram", "Copy", "Reverse",
]
