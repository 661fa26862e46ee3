"""Pieces the reproduction entries share: train (or resume) a config, save a figure + CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ..config import load_config, shipped_config
from ..io import write_table
from ..runs.load import Run, load_run
from ..training import train_or_resume
from .registry import Context
from ..plots import save

def trained_run(context: Context, config: str, name: str, **overrides: dict[str, Any]) -> Run:
    """Train ``tasks/config`` (with ``overrides``, e.g. ``train={"seed": 1}``, and the
    context's steps, batch size and device) into ``OUT/runs/name``, resuming a run already there."""
    loaded = load_config(shipped_config(config))
    train = dict(overrides.pop("train", {}))
    if context.steps is not None:
        train["steps"] = context.steps
    if context.batch_size is not None:
        train["batch_size"] = context.batch_size
    train["device"] = context.device
    loaded = loaded.replace(train=train, **overrides)
    run_dir = context.run_dir(name)
    train_or_resume(loaded, run_dir, progress=context.progress)
    return load_run(run_dir)


def save_outputs(context: Context, entry_id: str, figure, table: pd.DataFrame) -> dict[str, Path]:
    """``OUT/ID.png`` and ``OUT/ID.csv``."""

    figure_path = Path(save(figure, context.out / f"{entry_id}.png"))
    table_path = context.out / f"{entry_id}.csv"
    write_table(table, table_path)
    return {"figure": figure_path, "table": table_path}
