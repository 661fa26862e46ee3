"""Import a user's object from a ``"module.path:QualName"`` path (what a config's
``[task] name``, a run's recorded ``[task] source`` and an analyzer path name) or from an
entry point of an installed package. One place, so that tasks and analyzers report an
unimportable module the same way."""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import Any


def import_path(path: str, what: str, error: type[Exception] = ValueError) -> Any:
    """The object at ``path`` (``"module:QualName"``). Raises ``error`` naming the module and
    ``what`` the path is for (e.g. ``"task 'pkg.mod:Cls'"``) when the module cannot be imported
    (any exception of the user's module) or does not hold the name."""
    module_name, _, qualname = path.partition(":")
    try:
        value: Any = importlib.import_module(module_name)
    except Exception as failure:  # noqa: BLE001 - any failure of the user's module is reported
        raise error(f"cannot import {what.split(' ')[0]} module {module_name!r} ({what}): "
                    f"{type(failure).__name__}: {failure}") from None
    for part in qualname.split("."):
        if not hasattr(value, part):
            raise error(f"{what.split(' ')[0]} module {module_name!r} has no {qualname!r} ({what})")
        value = getattr(value, part)
    return value


def entry_points_of(group: str) -> dict[str, importlib.metadata.EntryPoint]:
    """The entry points of ``group`` (e.g. ``plateau_lens.tasks``) by name."""
    return {point.name: point for point in importlib.metadata.entry_points(group=group)}


def load_entry_point(point: importlib.metadata.EntryPoint, what: str,
                     error: type[Exception] = ValueError) -> Any:
    """``point.load()``; any failure of the user's package becomes ``error`` naming ``what``
    (e.g. ``"task 'name'"``) and the entry point's value."""
    try:
        return point.load()
    except Exception as failure:  # noqa: BLE001 - any failure of the user's module is reported
        raise error(f"cannot import {what} from entry point {point.value!r}: "
                    f"{type(failure).__name__}: {failure}") from None
