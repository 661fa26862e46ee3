"""Every figure of the two studies one command away: ``plateau-lens reproduce --list``.

The registry's names load on first use, after the entry modules (which register their
entries and import the training stack): the command line builds its parser without them.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING

ENTRY_MODULES = ("loss_plateau", "matrix_completion")
__all__ = ["REGISTRY", "STUDIES", "Context", "Reproduction", "get", "markdown_table", "register", "table"]


SUBMODULES = [module.name for module in pkgutil.iter_modules(__path__)]


def __getattr__(name: str):
    if name in SUBMODULES:  # ``plateau_lens.reproduce.common`` after a bare package import
        return importlib.import_module(f".{name}", __name__)
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    for module in ENTRY_MODULES:  # registers its entries (once: the import is cached)
        importlib.import_module(f".{module}", __name__)
    return getattr(importlib.import_module(".registry", __name__), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(SUBMODULES))


if TYPE_CHECKING:
    from .registry import (REGISTRY, STUDIES, Context, Reproduction, get, markdown_table, register,
                           table)
