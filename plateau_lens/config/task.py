"""The ``[task]`` section: a table with ``name`` (a shipped or registered task, or a
``"module:Class"`` path) and the task class's own fields, type-checked by a strict model
derived from the task dataclass, then range-checked by building the task once."""

from __future__ import annotations

import dataclasses
import functools
import typing
from typing import Any, Literal

from ..tasks import TaskImportError, make_task, task_class, task_names, task_source
from .base import ConfigError, Float, Int, StrictModel, type_name
from .limits import check_task_size


def _task_field_type(annotation: Any) -> Any:
    """Config-level type of a task dataclass field: ints are counts, sizes or token ids
    (>= 0), floats are finite; each task's own ``__post_init__`` checks its exact ranges."""
    if typing.get_origin(annotation) is Literal:
        return annotation  # the task's own choices: the message lists them
    if annotation is bool:
        return bool
    if annotation is int:
        return Int(ge=0)
    if annotation is float:
        return Float()
    if annotation is str:
        return str
    return Any  # e.g. lrmc_mixed's sizes: the task's __post_init__ checks it


@functools.lru_cache(maxsize=None)
def task_schema(cls: type) -> type[StrictModel]:
    """A strict model with the fields (types, defaults) of a task class (a dataclass)."""
    from pydantic import create_model

    hints = typing.get_type_hints(cls)
    fields = {f.name: (_task_field_type(hints.get(f.name, Any)),
                       f.default if f.default is not dataclasses.MISSING else ...)
              for f in dataclasses.fields(cls)}
    schema = create_model(f"{cls.__name__}Params", __base__=StrictModel, **fields)
    schema.section = "task"
    return schema


def validate_task(task: Any) -> dict[str, Any]:
    """The ``[task]`` table, type-checked field by field, then built once (the task class
    checks its ranges); returns the table as given (values normalised, no defaults added),
    with ``source`` (``"module:Class"``) added for a task that is not shipped, so that a run
    finds its task again in a process where nothing registered it."""
    if not isinstance(task, dict):
        raise ConfigError(f"task must be a table with a 'name' field (e.g. [task] name = \"mws\"), "
                          f"got {task!r} ({type_name(task)})")
    if "name" not in task:
        raise ConfigError(f"[task] needs a 'name' field, one of {task_names()} or a "
                          f"'module:ClassName' path")
    name, source = task["name"], task.get("source")
    if source is not None and not isinstance(source, str):
        raise ConfigError(f"task.source must be a 'module:ClassName' string, got {source!r}")
    try:
        cls = task_class(name, source)
        source = task_source(name, source)
    except (ValueError, TypeError) as error:
        field = "task.source" if isinstance(error, TaskImportError) and source is not None \
            and ":" not in name else "task.name"
        message = str(error)
        if message.startswith("task name "):
            raise ConfigError("task.name " + message[len("task name "):]) from None
        raise ConfigError(f"{field}: {message}") from None
    params = {k: v for k, v in task.items() if k not in ("name", "source")}
    schema = task_schema(cls)
    unknown = sorted(set(params) - set(schema.model_fields))
    if unknown:
        raise ConfigError(f"unknown [task] field(s) {unknown} for task {name!r}; "
                          f"allowed: {sorted(schema.model_fields)}")
    checked = schema(**params).model_dump(include=set(params))
    try:
        built = make_task(name, source, **checked)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"task.{error}") from None
    check_task_size(built, checked)
    origin = {} if source is None or source == name else {"source": source}
    return {"name": name, **origin, **{k: checked[k] for k in params}}
