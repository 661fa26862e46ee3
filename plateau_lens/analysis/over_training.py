"""Run any analyzer over a run's checkpoints."""

from __future__ import annotations

from typing import Callable, Iterable

import pandas as pd
from ..progress import progress_bar

from ..tasks.base import step_generator

ANALYSIS_SEED_OFFSET = 20_000_003


def analysis_batch(run, batch_size: int = 256, seed: int | None = None):
    """A held-out batch (fixed seed, not a training batch) for analysing a run."""
    seed = run.config.train.seed + ANALYSIS_SEED_OFFSET if seed is None else seed
    return run.task.sample(batch_size, step_generator(seed, 0))


def resolve_analyzers(analyzers, task) -> dict[str, Callable]:
    """name → function for ``analyze_run``'s ``analyzers``: registered names (a string, a
    comma-separated string or a list; see :mod:`plateau_lens.analyzers`), functions, or a
    dict of either. A named analyzer whose ``needs`` ``task`` does not declare is refused
    (``ValueError``) before any work."""
    from ..analyzers import parse_analyzers, resolve_analyzer
    from .hooks import task_problem

    if isinstance(analyzers, str):
        analyzers = parse_analyzers(analyzers, flag="analyzers")
    if callable(analyzers):
        analyzers = {getattr(analyzers, "__name__", "analyzer"): analyzers}
    elif not isinstance(analyzers, dict):
        analyzers = {a if isinstance(a, str) else getattr(a, "__name__", f"analyzer_{i}"): a
                     for i, a in enumerate(analyzers)}
    functions = {}
    for name, analyzer in analyzers.items():
        if isinstance(analyzer, str):
            problem = task_problem(task, analyzer)
            if problem is not None:
                raise ValueError(f"analyzer {analyzer}: {problem}")
            analyzer = resolve_analyzer(analyzer).function()
        if not callable(analyzer):
            raise ValueError(f"analyzers: {name!r} is neither a registered analyzer name nor a "
                             f"function (model, batch) -> DataFrame, got {analyzer!r}")
        functions[name] = analyzer
    if not functions:
        raise ValueError("analyzers: name at least one analyzer")
    return functions


def analyze_run(run, analyzers: str | Callable | dict[str, Callable | str] | Iterable[Callable | str],
                steps: Iterable[int] | None = None, batch=None, batch_size: int = 256,
                progress: bool = True) -> pd.DataFrame:
    """Apply ``analyzer(model, batch) -> DataFrame`` to each checkpoint; adds ``step`` (and
    ``analyzer`` when several are given) in front. ``steps``: all checkpoints by default.
    ``analyzers``: functions, or names in the analyzer registry (``"ablate_heads"``, a
    plugin's ``register_analyzer`` name), checked against the run's task first.

    One model is built and each checkpoint's weights are loaded into it. On glibc, calling
    ``plateau_lens.analysis.fastpath.allocator.reuse_freed_memory()`` once beforehand keeps freed activation
    buffers in the heap for the next checkpoint (the process then keeps its peak memory; the
    docs' Python page gives what it measured): an explicit opt-in, since it changes the whole process."""
    analyzers = resolve_analyzers(analyzers, run.task)
    steps = run.steps if steps is None else list(steps)
    if not steps:
        raise ValueError(f"no checkpoints to analyse in {run.path}")
    missing = [s for s in steps if s not in run.checkpoints]
    if missing:
        raise ValueError(f"steps {missing} have no checkpoint in {run.path}; available: {run.steps}")
    batch = analysis_batch(run, batch_size) if batch is None else batch
    frames = []
    for step, model in progress_bar(run.models(steps), total=len(steps), desc="checkpoints",
                            disable=not progress):
        for name, analyzer in analyzers.items():
            frame = analyzer(model, batch)
            frame.insert(0, "step", step)
            if len(analyzers) > 1:
                frame.insert(1, "analyzer", name)
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)
