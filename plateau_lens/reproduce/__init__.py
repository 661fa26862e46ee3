"""Every figure of the two studies one command away: ``plateau-lens reproduce --list``.

The registry's names load on first use, after the entry modules (which register their
entries and import the training stack): the command line builds its parser without them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..lazy import lazy_package

ENTRY_MODULES = ("loss_plateau", "matrix_completion")

_lazy_getattr, __dir__, __all__ = lazy_package(__name__, __path__, {
    "registry": ["REGISTRY", "STUDIES", "Context", "Reproduction", "get", "markdown_table",
                 "register", "table"],
})


def __getattr__(name: str):
    """:func:`~plateau_lens.lazy.lazy_package`'s lookup, with every entry registered before a
    registry name is handed out."""
    if name in __all__:
        for module in ENTRY_MODULES:  # registers its entries (once: the import is cached)
            importlib.import_module(f".{module}", __name__)
    return _lazy_getattr(name)


if TYPE_CHECKING:
    from .registry import (REGISTRY, STUDIES, Context, Reproduction, get, markdown_table, register,
                           table)
