"""Every figure of the two studies one command away: ``plateau-lens reproduce --list``.

The registry's names load on first use, after the entry modules (which register their
entries and import the training stack) and then the plugins' entries (the entry-point group
``plateau_lens.reproduce``: each names a module whose import registers its entries with
:func:`register_reproduction`): the command line builds its parser without them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..lazy import lazy_package

ENTRY_MODULES = ("loss_plateau", "matrix_completion")
ENTRY_POINT_GROUP = "plateau_lens.reproduce"
READS_REGISTRY = frozenset({"REGISTRY", "STUDIES", "get", "markdown_table", "table"})
"""The names that read the registry: they load every entry first (registering one does not)."""

_lazy_getattr, __dir__, __all__ = lazy_package(__name__, __path__, {
    "registry": ["REGISTRY", "STUDIES", "Context", "Reproduction", "get", "markdown_table",
                 "register", "register_reproduction", "register_study", "table"],
    "measured": ["Measured"],
})
_plugins_loaded = False


def load_plugin_entries() -> None:
    """Import each module of the entry-point group ``plateau_lens.reproduce`` (once); an
    entry point that names a :class:`Reproduction` itself registers it. A plugin that cannot
    be imported is a ``ValueError`` naming the entry point."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True  # first: a plugin's own import of this package must not recurse
    from ..plugin_paths import entry_points_of, load_entry_point
    from .registry import REGISTRY, Reproduction, register

    for name, point in entry_points_of(ENTRY_POINT_GROUP).items():
        value = load_entry_point(point, f"reproduction entries {name!r}")
        if isinstance(value, Reproduction) and REGISTRY.get(value.id) is not value:
            register(value)


def __getattr__(name: str):
    """:func:`~plateau_lens.lazy.lazy_package`'s lookup, with every entry (shipped and
    plugins') registered before a name that reads the registry is handed out."""
    if name in READS_REGISTRY:
        for module in ENTRY_MODULES:  # registers its entries (once: the import is cached)
            importlib.import_module(f".{module}", __name__)
        load_plugin_entries()
    return _lazy_getattr(name)


if TYPE_CHECKING:
    from .measured import Measured
    from .registry import (REGISTRY, STUDIES, Context, Reproduction, get, markdown_table, register,
                           register_reproduction, register_study, table)
