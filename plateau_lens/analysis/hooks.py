"""Validation shared by the analyzers: hook names, and the model + batch they are given."""

from __future__ import annotations

from typing import Iterable

from ..errors import check_finite_weights
from ..models.handle import PlateauModel


def check_hook_names(bridge, names: Iterable[str]) -> list[str]:
    """Raise ``ValueError`` for a hook name the model does not have (before any work)."""
    names = list(names)
    available = set(bridge.hook_dict)
    missing = [n for n in names if n not in available]
    if missing:
        examples = sorted(n for n in available if n.startswith("blocks.0."))[:12]
        raise ValueError(
            f"unknown hook name(s) {missing}; the model has hooks such as {examples}"
        )
    return names


def prepare(model, batch, task=None) -> PlateauModel:
    """The model as a :class:`PlateauModel`, after checking that ``batch`` is one its task
    can score (kind, width, token ids, not empty) and that the model's weights are finite
    (a nan weight makes every measured number an artefact)."""
    handle = PlateauModel.resolve(model, task)
    handle.task.check_batch(batch)
    check_finite_weights(handle)
    return handle


def task_differences(first, second) -> list[str]:
    """The settings in which two tasks differ (``field: first != second``; the name alone
    when they are different tasks); empty when they are the same task."""
    import dataclasses

    if first is second or first == second:
        return []
    names = getattr(first, "name", type(first).__name__), getattr(second, "name", type(second).__name__)
    if names[0] != names[1] or not (dataclasses.is_dataclass(first) and dataclasses.is_dataclass(second)):
        return [f"task {names[0]!r} != {names[1]!r}"]
    a, b = dataclasses.asdict(first), dataclasses.asdict(second)
    return [f"{key}: {a.get(key)!r} != {b.get(key)!r}" for key in sorted(set(a) | set(b))
            if a.get(key) != b.get(key)] or [f"task {names[0]!r} settings"]


TASK_KINDS = {
    "m": "matrix-completion tasks (lrmc, lrmc_gpt)",
    "predictions": "matrix-completion tasks with a value read-out (lrmc; not lrmc_gpt)",
    "answer_length": "tasks with answers to generate (the algorithmic tasks, lrmc_gpt)",
}
"""What a task must have for an analyzer defined for one kind of task, and that kind."""

ANALYZER_NEEDS = {
    "attention_structure": "m",
    **dict.fromkeys(["copying_test", "compare_to_nuclear_norm", "ood_evaluation",
                     "permuted_positions", "value_embeddings", "positional_embeddings",
                     "positional_embedding_norms", "positional_embedding_tsne",
                     "positional_embedding_neighbours"], "predictions"),
    "repetition": "answer_length",
}
"""The analyzers defined for one kind of task, and the attribute (a key of
:data:`TASK_KINDS`) that the kind's tasks have; every other analyzer runs on any task."""


def task_problem(task, analyzer: str) -> str | None:
    """None when ``analyzer`` is defined for ``task`` (:data:`ANALYZER_NEEDS`), else why not:
    "defined for <kind>, not task <name>"."""
    attribute = ANALYZER_NEEDS.get(analyzer)
    if attribute is None or hasattr(task, attribute):
        return None
    return f"defined for {TASK_KINDS[attribute]}, not task {task.name!r}"


def require(handle: PlateauModel, analyzer: str) -> None:
    """Raise ``ValueError`` when ``analyzer`` is defined for another kind of task than the
    model's (:func:`task_problem`); ``analyzer`` must be a key of :data:`ANALYZER_NEEDS`."""
    if analyzer not in ANALYZER_NEEDS:
        raise KeyError(f"{analyzer!r} is not in ANALYZER_NEEDS: add the kind of task it needs")
    problem = task_problem(handle.task, analyzer)
    if problem is not None:
        raise ValueError(f"{analyzer} is {problem}")
