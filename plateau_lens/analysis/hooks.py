"""Validation helpers shared by the analyzers: hook names, heads, batches."""

from __future__ import annotations

from typing import Iterable


def check_hook_names(model, names: Iterable[str]) -> list[str]:
    """Raise ``ValueError`` for a hook name the model does not have (before any work)."""
    names = list(names)
    available = set(model.hook_dict)
    missing = [n for n in names if n not in available]
    if missing:
        examples = sorted(n for n in available if n.startswith("blocks.0."))[:12]
        raise ValueError(
            f"unknown hook name(s) {missing}; the model has hooks such as {examples}"
        )
    return names


def check_task_batch(task, batch) -> None:
    """Raise ``ValueError`` if ``batch`` was not drawn from a task like ``task``."""
    expected = "lrmc" if task.kind == "regression" else "sequence"
    kind = "lrmc" if batch.__class__.__name__ == "MatrixBatch" else "sequence"
    if kind != expected:
        raise ValueError(f"batch of a {kind} task given for task {task.name!r}")
    width = batch.inputs.shape[-1]
    if width != task.n_positions:
        raise ValueError(
            f"batch has {width} positions but task {task.name!r} has {task.n_positions}")


def model_task(model, task=None):
    task = task if task is not None else getattr(model, "plateau_task", None)
    if task is None:
        raise ValueError("pass task=...: this model was not built by plateau-lens")
    return task
