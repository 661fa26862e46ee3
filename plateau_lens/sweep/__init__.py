"""Sweeps on Ray: a grid over any config field, each point an ordinary run directory.

``plateau-lens sweep SWEEP.toml --out DIR`` (see :mod:`.cli`). Names load on first use
(``lazy_loader``); Ray is imported only when a sweep is run (``pip install
"plateau-lens[sweep]"``): loading a sweep file and summarizing a sweep directory work without it.
"""

from typing import TYPE_CHECKING

from ..lazy import lazy_package

__getattr__, __dir__, __all__ = lazy_package(__name__, __path__, {
    "spec": ["Point", "Sweep", "SweepError", "load_sweep"],
    "engine": ["run_sweep"],
    "summary": ["summarize"],
})

if TYPE_CHECKING:
    from .engine import run_sweep
    from .spec import Point, Sweep, SweepError, load_sweep
    from .summary import summarize
