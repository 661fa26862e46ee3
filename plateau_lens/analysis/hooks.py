"""Validation shared by the analyzers: hook names, and the model + batch they are given."""

from __future__ import annotations

from typing import Iterable

from ..errors import InputError, check_finite_weights, check_name_list
from ..analyzers import ANALYZER_NEEDS, ANALYZERS, TASK_KINDS, needs_of
from ..models.handle import PlateauModel
from ..tasks.protocol import has_capability


def check_hook_names(bridge, names: Iterable[str], argument: str = "hooks") -> list[str]:
    """Raise :class:`InputError` naming ``argument`` for a hook name the model does not have,
    or a value that is not a list of names (before any work)."""
    names = check_name_list(argument, names)
    available = set(bridge.hook_dict)
    missing = [n for n in names if n not in available]
    if missing:
        examples = sorted(n for n in available if n.startswith("blocks.0."))[:12]
        raise InputError(
            f"{argument}: unknown hook name(s) {missing}; the model has hooks such as {examples}"
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


def task_problem(task, analyzer: str) -> str | None:
    """None when ``analyzer`` is defined for ``task`` (its ``needs``, from the analyzer
    registry or :data:`ANALYZER_NEEDS`), else why not: "defined for <kind>, not task <name>"."""
    missing = [c for c in needs_of(analyzer) if not has_capability(task, c)]
    if not missing:
        return None
    kinds = " and ".join(TASK_KINDS.get(c, f"tasks with capability {c!r}") for c in missing)
    return f"defined for {kinds}, not task {task.name!r}"


def require(handle: PlateauModel, analyzer: str) -> None:
    """Raise ``ValueError`` when ``analyzer`` is defined for another kind of task than the
    model's (:func:`task_problem`); ``analyzer`` must be a key of :data:`ANALYZER_NEEDS`."""
    if analyzer not in ANALYZER_NEEDS and analyzer not in ANALYZERS:
        raise KeyError(f"{analyzer!r} is not in ANALYZER_NEEDS nor registered: declare the kind "
                       f"of task it needs")
    problem = task_problem(handle.task, analyzer)
    if problem is not None:
        missing = sorted(c for c in needs_of(analyzer) if not has_capability(handle.task, c))
        raise ValueError(f"{analyzer} is {problem} (a task offers it by declaring the "
                         f"capabilities {missing})")
