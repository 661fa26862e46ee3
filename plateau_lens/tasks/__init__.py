"""Registry of online task generators: ``make_task(name, **params)``."""

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


def make_task(name: str, **params: Any):
    """Build a task by registry name; unknown names or parameters raise ``ValueError``."""
    if name not in TASKS:
        raise ValueError(f"task name must be one of {sorted(TASKS)}, got {name!r}")
    cls = TASKS[name]
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for task {name!r}; allowed: {sorted(known)}")
    return cls(**params)


__all__ = [
    "TASKS", "make_task", "Batch", "MatrixBatch", "SequenceBatch", "SequenceTask",
    "step_generator", "LowRankMatrixCompletion", "MixedSizeMatrixCompletion",
    "MatrixCompletionSequence", "MovingWindowSum", "ConcatMovingWindowSum",
    "PrefixSum", "RepeatK", "MultiDigitAddition", "Permutation", "Histogram", "Copy", "Reverse",
]
