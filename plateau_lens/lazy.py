"""Packages whose names load on first use (``lazy_loader``, SPEC 1): ``import plateau_lens``
and the command line's parser then import neither torch nor TransformerLens."""

from __future__ import annotations

import pkgutil
from typing import Callable, Iterable

import lazy_loader


def lazy_package(name: str, path: Iterable[str], exports: dict[str, list[str]]
                 ) -> tuple[Callable, Callable, list[str]]:
    """``(__getattr__, __dir__, __all__)`` for package ``name`` (its ``__path__``): each
    submodule's ``exports`` and every submodule itself (``pl.analysis.wide``) load on first
    use; ``__all__`` holds the exported names only, so ``*`` imports no submodule."""
    get, listing, _ = lazy_loader.attach(
        name, submodules=[module.name for module in pkgutil.iter_modules(path)],
        submod_attrs=exports)
    return get, listing, [export for names in exports.values() for export in names]
