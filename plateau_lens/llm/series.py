"""Repetition and collapse over a checkpoint series, resumable, one checkpoint in memory."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import pandas as pd
from tqdm.auto import tqdm

from ..io import write_table
from .checkpoints import load_checkpoint_model
from .generation import generation_metrics


def series_file(out_dir: Path, name: str) -> Path:
    return Path(out_dir) / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', name)}.csv"


def analyze_series(name: str, steps: Sequence[int], prompts: Sequence[str], out_dir: str | Path,
                   local_dir: str | Path | None = None, n_new: int = 8, dtype=None,
                   device: str | None = None, progress: bool = True) -> pd.DataFrame:
    """Per checkpoint step: mean repetition frequency and cosine similarity over ``prompts``.

    Results go to ``out_dir/<name>.csv`` after every checkpoint (atomically); steps already
    there are not recomputed. A missing, corrupt or foreign checkpoint (another architecture
    than the steps already analysed) raises ``CheckpointLoadError`` after the finished steps
    are saved."""
    path = series_file(Path(out_dir), name)
    done = pd.read_csv(path) if path.is_file() else pd.DataFrame()
    finished = set(done["step"]) if len(done) else set()
    expected = done["architecture"].iloc[0] if len(done) else None
    rows = done.to_dict("records")
    todo = [s for s in steps if s not in finished]
    for step in tqdm(todo, desc=f"{name} checkpoints", disable=not progress):
        model = load_checkpoint_model(name, step=step, local_dir=local_dir, dtype=dtype,
                                      device=device, expected_architecture=expected)
        architecture = type(model.original_model).__name__
        expected = expected or architecture
        metrics = generation_metrics(model, prompts, n_new)
        del model
        rows.append({"model": name, "step": step, "architecture": architecture,
                     "repetition_frequency": metrics["repetition_frequency"].mean(),
                     "cosine_similarity": metrics["cosine_similarity"].mean(),
                     "n_prompts": len(metrics)})
        write_table(pd.DataFrame(rows).sort_values("step"), path)
    return pd.DataFrame(rows).sort_values("step").reset_index(drop=True)


def plot_series(results: pd.DataFrame):
    """Repetition frequency and cosine similarity vs step (symlog axis), one line per model."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid")
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric in zip(axes, ["repetition_frequency", "cosine_similarity"]):
        sns.lineplot(data=results, x="step", y=metric, hue="model", marker="o", ax=axis)
        axis.set_xscale("symlog", linthresh=1)
        axis.set_title(metric.replace("_", " "))
    figure.tight_layout()
    return figure
