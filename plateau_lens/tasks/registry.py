"""Where tasks come from: the shipped ones, ``register_task`` from Python, the entry-point group
``plateau_lens.tasks`` of an installed (or merely importable) package, and a ``"module:Class"``
path in a config's ``[task] name``.

A task found any way but the shipped table gets a *source*, ``"module:QualName"``, that a run
writes into its ``config.json`` (``[task] source``): ``resume``, ``load_run`` and a sweep's Ray
workers re-import the task from it, in a process where nothing registered it.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import re
from dataclasses import dataclass
from typing import Any, Callable

from ..plugin_paths import entry_points_of, import_path, load_entry_point

ENTRY_POINT_GROUP = "plateau_lens.tasks"
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
SOURCE_PATTERN = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
REQUIRED = ("name", "attention_dir", "readout_bias", "n_positions", "d_vocab", "d_vocab_out",
            "sample", "loss", "metrics", "check_batch", "default_corruption", "probe_targets",
            "collapse_positions", "optimal_attention")
"""What every task class provides (:class:`~plateau_lens.tasks.protocol.Task`)."""


class TaskImportError(ValueError):
    """A task's module cannot be imported, or does not hold the named class."""


@dataclass(frozen=True)
class TaskEntry:
    """A registered task class, and where it was found: ``source`` is ``"module:QualName"``
    (None for the shipped tasks, which need no import)."""

    cls: type
    source: str | None


_REGISTRY: dict[str, TaskEntry] = {}


def source_of(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def check_task_class(cls: Any, name: str) -> type:
    """Raise ``TypeError`` unless ``cls`` is a dataclass (its fields are the task's settings)
    with every member of the task contract; returns ``cls``."""
    if not isinstance(cls, type) or not dataclasses.is_dataclass(cls):
        raise TypeError(f"task {name!r}: a task is a dataclass whose fields are its settings, "
                        f"got {cls!r}")
    reserved = sorted({"name", "source"} & {f.name for f in dataclasses.fields(cls)})
    if reserved:
        raise TypeError(f"task {name!r}: {reserved} cannot be settings (the [task] table "
                        f"uses 'name' and 'source' to find the task)")
    missing = [member for member in REQUIRED if not hasattr(cls, member)
               and member not in {f.name for f in dataclasses.fields(cls)}]
    if missing:
        raise TypeError(f"task {name!r} ({source_of(cls)}) lacks {missing} of the task contract "
                        f"(plateau_lens.tasks.protocol.Task)")
    from .protocol import check_capabilities

    check_capabilities(cls, name)
    return cls


def add(name: str, cls: type, source: str | None, *, replace: bool = False) -> None:
    """Register ``cls`` as ``name``; another class under a taken name is refused, unless it
    comes from the same ``source`` (its module imported again, e.g. ``importlib.reload``)."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ValueError(f"task name must be letters, digits, '_', '.' or '-' (starting with a "
                         f"letter or '_'), got {name!r}")
    check_task_class(cls, name)
    existing = _REGISTRY.get(name)
    reloaded = existing is not None and source is not None and existing.source == source
    if existing is not None and existing.cls is not cls and not (replace or reloaded):
        raise ValueError(f"task name {name!r} is already registered ({existing.source or 'shipped'}); "
                         f"pass replace=True to register_task to replace it")
    _REGISTRY[name] = TaskEntry(cls, source)


def register_task(name: str, *, replace: bool = False) -> Callable[[type], type]:
    """Class decorator: make a task class available as ``[task] name = "<name>"``.

    The run records the class's ``"module:QualName"`` as ``[task] source``, so a process that
    never imported your module (``resume``, a sweep worker) finds it again; a class defined in
    ``__main__`` can be trained but not re-imported elsewhere."""

    def decorate(cls: type) -> type:
        add(name, cls, source_of(cls), replace=replace)
        return cls

    return decorate


def import_source(source: str) -> type:
    """The class at ``"module:QualName"``; ``TaskImportError`` naming the module otherwise."""
    if not isinstance(source, str) or not SOURCE_PATTERN.match(source):
        raise TaskImportError(f"a task source is 'module.path:ClassName', got {source!r}")
    value = import_path(source, f"task {source!r}", TaskImportError)
    return check_task_class(value, source)


def entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return entry_points_of(ENTRY_POINT_GROUP)


def resolve(name: str, source: str | None = None) -> TaskEntry:
    """The task called ``name``: registered (shipped or ``register_task``), a ``"module:Class"``
    path, an entry point of group ``plateau_lens.tasks``, or else imported from ``source``
    (what a run recorded). ``ValueError`` lists the names there are."""
    if not isinstance(name, str):
        raise ValueError(f"task.name must be a string, got {name!r}")
    if name in _REGISTRY:
        return _REGISTRY[name]
    if ":" in name:
        return TaskEntry(import_source(name), name)
    points = entry_points()
    if name in points:
        cls = load_entry_point(points[name], f"task {name!r}", TaskImportError)
        add(name, check_task_class(cls, name), points[name].value)
        return _REGISTRY[name]
    if source is not None:
        cls = import_source(source)
        if name not in _REGISTRY:  # the module may have registered it itself
            add(name, cls, source)
        return _REGISTRY[name]
    raise ValueError(f"task name must be one of {task_names()} or a 'module:ClassName' path, "
                     f"got {name!r}")


def task_names() -> list[str]:
    """Every name a config can use without a path: registered and entry-point tasks."""
    return sorted(set(_REGISTRY) | set(entry_points()))


def registered() -> dict[str, TaskEntry]:
    return dict(_REGISTRY)
