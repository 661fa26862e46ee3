"""Sweeps on Ray: a grid over any config field, each point an ordinary run directory.

``plateau-lens sweep SWEEP.toml --out DIR`` (see :mod:`.cli`). Names load on first use
(``lazy_loader``); Ray is imported only when a sweep is run (``pip install
"plateau-lens[sweep]"``): loading a sweep file and summarizing a sweep directory work without it.
"""

import pkgutil
from typing import TYPE_CHECKING

import lazy_loader

_EXPORTS = {
    "spec": ["Point", "Sweep", "SweepError", "load_sweep"],
    "engine": ["run_sweep"],
    "summary": ["summarize"],
}
# every submodule is an attribute too (``pl.analysis.wide``), without being exported by ``*``
__getattr__, __dir__, _ = lazy_loader.attach(
    __name__, submodules=[module.name for module in pkgutil.iter_modules(__path__)],
    submod_attrs=_EXPORTS)
__all__ = [name for names in _EXPORTS.values() for name in names]

if TYPE_CHECKING:
    from .engine import run_sweep
    from .spec import Point, Sweep, SweepError, load_sweep
    from .summary import summarize
