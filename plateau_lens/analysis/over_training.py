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


def analyze_run(run, analyzers: Callable | dict[str, Callable] | Iterable[Callable],
                steps: Iterable[int] | None = None, batch=None, batch_size: int = 256,
                progress: bool = True) -> pd.DataFrame:
    """Apply ``analyzer(model, batch) -> DataFrame`` to each checkpoint; adds ``step`` (and
    ``analyzer`` when several are given) in front. ``steps``: all checkpoints by default.

    One model is built and each checkpoint's weights are loaded into it. On glibc, calling
    ``plateau_lens.allocator.reuse_freed_memory()`` once beforehand keeps freed activation
    buffers in the heap for the next checkpoint (the process then keeps its peak memory; the
    docs' Python page gives what it measured): an explicit opt-in, since it changes the whole process."""
    if callable(analyzers):
        analyzers = {getattr(analyzers, "__name__", "analyzer"): analyzers}
    elif not isinstance(analyzers, dict):
        analyzers = {getattr(a, "__name__", f"analyzer_{i}"): a for i, a in enumerate(analyzers)}
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
