"""Validation shared by the analyzers: hook names, and the model + batch they are given."""

from __future__ import annotations

from typing import Iterable

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
    can score (kind, width, token ids, not empty)."""
    handle = PlateauModel.resolve(model, task)
    handle.task.check_batch(batch)
    return handle


TASK_KINDS = {
    "m": "matrix-completion tasks (lrmc, lrmc_gpt)",
    "predictions": "matrix-completion tasks with a value read-out (lrmc; not lrmc_gpt)",
    "answer_length": "tasks with answers to generate (the algorithmic tasks, lrmc_gpt)",
}
"""What a task must have for an analyzer defined for one kind of task, and that kind."""


def missing_kind(task, attribute: str) -> str | None:
    """None when ``task`` is of the kind that has ``attribute`` (a key of
    :data:`TASK_KINDS`), else why not: "defined for <kind>, not task <name>"."""
    if hasattr(task, attribute):
        return None
    return f"defined for {TASK_KINDS[attribute]}, not task {task.name!r}"


def require(handle: PlateauModel, attribute: str, analyzer: str) -> None:
    """Raise ``ValueError`` when an analyzer defined for one kind of task (matrix tasks have
    ``m``, those with a value read-out ``predictions``, generating tasks ``answer_length``) is
    given another."""
    problem = missing_kind(handle.task, attribute)
    if problem is not None:
        raise ValueError(f"{analyzer} is {problem}")
