"""The analyzer registry: every analyzer that ``analyze_run``, ``sweep --analyze`` and
``plateau-lens analyze --analyzers`` can run by name.

One signature: ``analyzer(model: PlateauModel, batch) -> pandas.DataFrame`` (tidy rows for one
checkpoint; ``analyze_run`` puts ``step`` in front). One decorator,
``@register_analyzer("name", needs={"answers"})``, whose ``needs`` are task capabilities
(:data:`plateau_lens.tasks.protocol.CAPABILITIES`): an analyzer is refused, before any work,
on a task that does not declare them all. Names resolve, in order: registered analyzers (the
shipped ones, those of imported plugin modules: a run's task module is imported when the run
is loaded, so analyzers registered beside a task come with it), the entry-point group
``plateau_lens.analyzers``, then a ``"module:function"`` path.

This module imports nothing heavy: the shipped analyzers are named by path and load on use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable

from .plugin_paths import entry_points_of, import_path, load_entry_point

ENTRY_POINT_GROUP = "plateau_lens.analyzers"
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
PATH_PATTERN = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


@dataclass(frozen=True)
class AnalyzerEntry:
    """An analyzer: ``target`` is the function, or its ``"module:function"`` path until it is
    first used; ``needs``: the task capabilities it requires."""

    name: str
    target: Callable | str
    needs: frozenset[str]

    def function(self) -> Callable:
        return _import_path(self.target) if isinstance(self.target, str) else self.target


ANALYZERS: dict[str, AnalyzerEntry] = {}

TASK_KINDS = {
    "matrix": "matrix-completion tasks (lrmc, lrmc_gpt)",
    "value_readout": "matrix-completion tasks with a value read-out (lrmc; not lrmc_gpt)",
    "answers": "tasks with answers to generate (the algorithmic tasks, lrmc_gpt)",
}
"""A capability an analyzer may need (``plateau_lens.tasks.protocol.CAPABILITIES``), and the
tasks that declare it, in words (for refusals)."""

ANALYZER_NEEDS = {
    "attention_structure": "matrix",
    **dict.fromkeys(["copying_test", "compare_to_nuclear_norm", "ood_evaluation",
                     "permuted_positions", "value_embeddings", "positional_embeddings",
                     "positional_embedding_norms", "positional_embedding_tsne",
                     "positional_embedding_neighbours"], "value_readout"),
    "repetition": "answers",
}
"""The shipped analyzers defined for one kind of task (registered or not: the others take
more than (model, batch)), and the capability that kind declares; the rest run on any task."""

# (model, batch) -> DataFrame analyzers shipped with the package, by path (loaded on use)
SHIPPED = {
    "attention_progress": "plateau_lens.analysis.attention_progress:attention_progress",
    "attention_structure": "plateau_lens.analysis.attention_structure:attention_structure",
    "ablation_sweep": "plateau_lens.analysis.ablation:ablation_sweep",
    "copying_test": "plateau_lens.analysis.copying:copying_test",
    "repetition": "plateau_lens.analysis.collapse:repetition",
    "representation_collapse": "plateau_lens.analysis.collapse:representation_collapse",
    "ablate_heads": "plateau_lens.analysis.ablation:ablate_heads",
}


def _check_needs(needs: Iterable[str], name: str) -> frozenset[str]:
    from .tasks.protocol import CAPABILITIES

    needs = frozenset([needs] if isinstance(needs, str) else needs)
    unknown = sorted(needs - set(CAPABILITIES))
    if unknown:
        raise ValueError(f"analyzer {name!r}: needs {unknown} are not task capabilities; "
                         f"allowed: {sorted(CAPABILITIES)}")
    return needs


def register_analyzer(name: str, *, needs: Iterable[str] = (), replace: bool = False
                      ) -> Callable[[Callable], Callable]:
    """Decorator: make ``fn(model, batch) -> DataFrame`` runnable by ``name`` in
    ``analyze_run``, ``sweep --analyze`` and ``plateau-lens analyze --analyzers``; ``needs``:
    task capabilities it requires (it is refused on other tasks, before any work)."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ValueError(f"analyzer name must be letters, digits, '_', '.' or '-', got {name!r}")
    checked = _check_needs(needs, name)

    def decorate(fn: Callable) -> Callable:
        if not callable(fn):
            raise TypeError(f"analyzer {name!r} must be a function (model, batch) -> DataFrame, "
                            f"got {fn!r}")
        existing = ANALYZERS.get(name)
        same = (existing is not None and not isinstance(existing.target, str)
                and _path_of(existing.target) == _path_of(fn))  # its module imported again
        if existing is not None and existing.target is not fn and not (replace or same):
            raise ValueError(f"analyzer {name!r} is already registered; pass replace=True")
        ANALYZERS[name] = AnalyzerEntry(name, fn, checked)
        return fn

    return decorate


for _name, _path in SHIPPED.items():
    _need = ANALYZER_NEEDS.get(_name)
    ANALYZERS[_name] = AnalyzerEntry(_name, _path, frozenset() if _need is None else frozenset({_need}))


def _path_of(fn: Callable) -> str:
    return f"{getattr(fn, '__module__', '')}:{getattr(fn, '__qualname__', '')}"


def _import_path(path: str) -> Callable:
    value = import_path(path, f"analyzer {path!r}")
    if not callable(value):
        raise ValueError(f"analyzer {path!r} is not a function")
    return value


def analyzer_names() -> list[str]:
    """Registered analyzers in registration order (the shipped ones first), then entry points."""
    entry_points = sorted(set(entry_points_of(ENTRY_POINT_GROUP))
                          - set(ANALYZERS))
    return [*ANALYZERS, *entry_points]


def resolve_analyzer(name: str) -> AnalyzerEntry:
    """The analyzer called ``name`` (registered, an entry point, or a ``"module:function"``
    path); ``ValueError`` naming the names there are."""
    if name in ANALYZERS:
        return ANALYZERS[name]
    points = entry_points_of(ENTRY_POINT_GROUP)
    if name in points:
        target = load_entry_point(points[name], f"analyzer {name!r}")
        if name not in ANALYZERS:  # loading may have registered it with its needs
            ANALYZERS[name] = AnalyzerEntry(name, target, frozenset())
        return ANALYZERS[name]
    if isinstance(name, str) and PATH_PATTERN.match(name):
        target = _import_path(name)
        if name not in ANALYZERS:
            ANALYZERS[name] = AnalyzerEntry(name, target, frozenset())
        return ANALYZERS[name]
    raise ValueError(f"unknown analyzer {name!r}; allowed: {', '.join(analyzer_names())} "
                     f"or a 'module:function' path")


def needs_of(name: str) -> frozenset[str]:
    """The capabilities analyzer ``name`` needs: its registration's, else
    :data:`ANALYZER_NEEDS` (shipped analyzers outside the registry)."""
    if name in ANALYZERS:
        return ANALYZERS[name].needs
    need = ANALYZER_NEEDS.get(name)
    return frozenset() if need is None else frozenset({need})


def parse_analyzers(text: str | None, flag: str = "--analyzers") -> list[str]:
    """``"attention_progress,my_plugin_analyzer"`` -> names, each resolved (an unknown name
    raises ``ValueError`` naming ``flag`` and the allowed names)."""
    if not text:
        return []
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise ValueError(f"{flag}: no analyzer named in {text!r}; allowed: {', '.join(analyzer_names())}")
    for name in names:
        try:
            resolve_analyzer(name)
        except ValueError as error:
            raise ValueError(f"{flag}: {error}") from None
    return names
