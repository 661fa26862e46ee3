"""Sweeps on Ray: a grid over any config field, each point an ordinary run directory.

``plateau-lens sweep SWEEP.toml --out DIR`` (see :mod:`.cli`). Ray is imported only when a
sweep is run (``pip install "plateau-lens[sweep]"``); loading a sweep file and summarizing a
sweep directory work without it.
"""

from .spec import Point, Sweep, SweepError, load_sweep
from .summary import summarize


def run_sweep(*args, **kwargs):
    """See :func:`plateau_lens.sweep.engine.run_sweep` (imported here lazily)."""
    from .engine import run_sweep as run

    return run(*args, **kwargs)


__all__ = ["Point", "Sweep", "SweepError", "load_sweep", "run_sweep", "summarize"]
