"""Repetition and collapse over a checkpoint series: resumable, one checkpoint in memory, with
the per-prompt generations saved beside the means.

Files in ``out_dir`` (written atomically with ordinary permissions after every checkpoint):

* ``<name>.csv``: one row per (step, settings): mean repetition frequency and cosine
  similarity, the number of prompts, and the settings they were computed with;
* ``<name>_generations.csv``: one row per (step, settings, prompt): the prompt text and ids,
  the generated ids (JSON lists) and text, and both metrics for that prompt.

Cache: a step is reused only when a row for it has the same *settings key* (a hash of the
prompts' text, ``n_new``, ``prepend_bos``, dtype, device, the method's version and the versions
of plateau-lens, ``transformers``, TransformerLens and torch) and the same checkpoint
fingerprint (file names, sizes and modification times of a local checkpoint; hub name and
revision otherwise). Anything else is recomputed; rows of other settings stay in the files
(the ``settings_key`` column tells them apart) but are never returned or plotted.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import re
import time
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..io import atomic_write, write_table
from .checkpoints import (CheckpointLoadError, checkpoint_fingerprint, hub_name,
                          is_single_checkpoint, local_checkpoint_dir, pythia_revision)
from .generation import generation_metrics, tokenize_prompts
from .reuse import series_models

log = logging.getLogger("plateau_lens")

METHOD_VERSION = 2
"""Bumped when ``generation_metrics`` changes what it computes (2: the study's tokenisation,
exactly ``n_new`` tokens with the EOS masked). Part of the settings key."""


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def series_file(out_dir: Path, name: str) -> Path:
    return Path(out_dir) / f"{_safe(name)}.csv"


def generations_file(out_dir: Path, name: str) -> Path:
    return Path(out_dir) / f"{_safe(name)}_generations.csv"


def _installed_version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown"


def series_settings(prompts: Sequence[str], n_new: int = 8, prepend_bos: bool = False,
                    dtype=None, device: str | None = None) -> dict:
    """Everything besides the checkpoint that changes ``analyze_series``' numbers, and its key."""
    import torch
    import transformer_lens
    import transformers

    __version__ = _installed_version("plateau-lens")
    digest = hashlib.sha256(json.dumps(list(map(str, prompts))).encode()).hexdigest()
    settings = {"prompts_sha256": digest, "n_prompts": len(prompts), "n_new": int(n_new),
                "prepend_bos": bool(prepend_bos), "dtype": str(dtype), "device": str(device),
                "method": METHOD_VERSION, "plateau_lens": __version__,
                "transformers": transformers.__version__,
                "transformer_lens": getattr(transformer_lens, "__version__", None)
                or _installed_version("transformer-lens"),
                "torch": torch.__version__}
    settings["settings_key"] = hashlib.sha256(
        json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    return settings


def read_results(out_dir: str | Path, name: str, settings_key: str | None = None,
                 steps: Sequence[int] | None = None) -> pd.DataFrame:
    """The saved means of ``name`` (only those of ``settings_key`` and ``steps`` if given)."""
    path = series_file(Path(out_dir), name)
    if not path.is_file():
        return pd.DataFrame()
    frame = pd.read_csv(path)
    if settings_key is not None:
        if "settings_key" not in frame:
            return frame.iloc[0:0]
        frame = frame[frame["settings_key"] == settings_key]
    if steps is not None:
        frame = frame[frame["step"].isin(list(steps))]
    return frame.sort_values("step").reset_index(drop=True)


def write_generations(frame: pd.DataFrame, path: Path) -> None:
    """The per-prompt table, every text field quoted: generated text holds any character, and
    an unquoted carriage return (which ``csv`` quotes only when it is in the line terminator)
    split rows when read back."""
    atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False, quoting=csv.QUOTE_NONNUMERIC))


def _fingerprint(name: str, step: int, local_dir) -> str:
    if local_dir is not None:
        return checkpoint_fingerprint(local_checkpoint_dir(local_dir, step))
    repo = hub_name(name)
    revision = pythia_revision(step) if "pythia" in repo.lower() else f"step{step}"
    return f"{repo}@{revision}"


def analyze_series(name: str, steps: Sequence[int], prompts: Sequence[str], out_dir: str | Path,
                   local_dir: str | Path | None = None, n_new: int = 8, dtype=None,
                   device: str | None = None, progress: bool = True, prepend_bos: bool = False,
                   local_dir_hint: str = "local_dir=") -> pd.DataFrame:
    """Per checkpoint step: mean repetition frequency and cosine similarity over ``prompts``
    (``generation_metrics``: the study's tokenisation, exactly ``n_new`` greedy tokens).

    Results go to ``out_dir`` after every checkpoint (see the module docstring for the files
    and the cache). A missing, corrupt or foreign checkpoint (another architecture than the
    steps already analysed with these settings) raises ``CheckpointLoadError`` after the
    finished steps are saved. One bridge serves the whole series: each checkpoint's weights
    are mapped into it (:func:`~plateau_lens.llm.reuse.series_models`; a new bridge only where
    a checkpoint's config, weight names or shapes differ) while the next checkpoint is fetched (``local_dir``'s
    ``step{N}``, or the hub revision, downloaded where the Hugging Face cache lacks it) and
    read ahead, and the prompts are tokenised once per tokenizer. ``local_dir`` may be one ``save_pretrained`` folder; then
    ``steps`` must be a single step (the label it is saved under). Returns the rows of these
    settings for ``steps``, sorted by step. ``progress`` logs one line per step at INFO
    (else DEBUG) on the ``plateau_lens`` logger."""
    steps = sorted(dict.fromkeys(int(s) for s in steps))
    if not steps:
        raise ValueError("no steps to analyse")
    if not prompts:
        raise ValueError("no prompts")
    if local_dir is not None and is_single_checkpoint(local_dir) and len(steps) > 1:
        raise ValueError(f"{local_dir} is a single checkpoint; analyse it under one step, not "
                         f"{steps}")
    out = Path(out_dir)
    settings = series_settings(prompts, n_new, prepend_bos, dtype, device)
    key = settings["settings_key"]
    level = logging.INFO if progress else logging.DEBUG
    source = getattr(prompts, "source", "list of prompts")
    path, generations_path = series_file(out, name), generations_file(out, name)
    table = pd.read_csv(path) if path.is_file() else pd.DataFrame()
    generations = pd.read_csv(generations_path) if generations_path.is_file() else pd.DataFrame()
    for frame in (table, generations):
        if len(frame) and "settings_key" not in frame:
            frame["settings_key"] = "unkeyed (before plateau-lens keyed its cache)"
    same = table[table["settings_key"] == key] if len(table) else table
    expected = same["architecture"].iloc[0] if len(same) else None
    todo = []
    for step in steps:
        try:
            fingerprint = _fingerprint(name, step, local_dir)
        except CheckpointLoadError:  # raised in its turn, after the steps before it are saved
            todo.append((step, None))
            continue
        cached = same[(same["step"] == step) & (same["checkpoint"] == fingerprint)] if len(same) else same
        if len(cached):
            log.log(level, "%s step %d: cached (same prompts, n_new, tokenisation, versions and "
                    "checkpoint files)", name, step)
        else:
            todo.append((step, fingerprint))
    tokenized_by, token_ids = None, None
    fingerprints = dict(todo)
    models = series_models(name, list(fingerprints), local_dir=local_dir, dtype=dtype,
                           device=device, local_dir_hint=local_dir_hint,
                           expected_architecture=expected, same_architecture=True)
    while True:
        started = time.perf_counter()
        try:
            step, model = next(models)
        except StopIteration:
            break
        fingerprint = fingerprints[step] or _fingerprint(name, step, local_dir)
        loaded = time.perf_counter()
        if model.tokenizer is not tokenized_by:  # once per tokenizer (per series, usually)
            tokenized_by, token_ids = model.tokenizer, tokenize_prompts(model.tokenizer, prompts,
                                                                        prepend_bos)
        architecture = type(model.bridge.original_model).__name__
        metrics = generation_metrics(model, prompts, n_new, prepend_bos=prepend_bos,
                                     token_ids=token_ids)
        del model
        computed = time.perf_counter()
        row = {"model": name, "step": step, "architecture": architecture,
               "repetition_frequency": metrics["repetition_frequency"].mean(),
               "cosine_similarity": metrics["cosine_similarity"].mean(),
               "n_prompts": len(metrics), "n_new": n_new, "prepend_bos": prepend_bos,
               "prompt_source": source, "prompts_sha256": settings["prompts_sha256"],
               "settings_key": key, "checkpoint": fingerprint,
               "versions": json.dumps({k: settings[k] for k in (
                   "method", "plateau_lens", "transformers", "transformer_lens", "torch")})}
        if len(table):
            table = table[~((table["step"] == step) & (table["settings_key"] == key))]
        table = pd.concat([table, pd.DataFrame([row])], ignore_index=True)
        same = table[table["settings_key"] == key]
        per_prompt = metrics.assign(model=name, step=step, settings_key=key)
        for column in ("prompt_ids", "generated"):
            per_prompt[column] = per_prompt[column].map(json.dumps)
        if len(generations):
            generations = generations[~((generations["step"] == step)
                                        & (generations["settings_key"] == key))]
        generations = pd.concat([generations, per_prompt], ignore_index=True)
        write_generations(generations.sort_values(["settings_key", "step", "prompt"]),
                          generations_path)
        write_table(table.sort_values(["settings_key", "step"]), path)
        log.log(level, "%s step %d: repetition %.3f, cosine %.3f (%d prompts, %.1f s: load "
                "%.2f s, compute %.2f s, write %.2f s)", name, step, row["repetition_frequency"],
                row["cosine_similarity"], row["n_prompts"], time.perf_counter() - started,
                loaded - started, computed - loaded, time.perf_counter() - computed)
    return read_results(out, name, key, steps)


def plot_series(results: pd.DataFrame, title: str = ""):
    """Repetition frequency and cosine similarity vs step, one line per model.

    Step axis: symlog with ``linthresh=1`` (linear between 0 and 1, logarithmic above, so step 0
    has a place one decade-width left of step 1), ticks 0, 1, 10, 100, ... It spans exactly the
    first to the last step; the markers at both ends are drawn whole. Built on
    ``matplotlib.figure.Figure`` (no pyplot, no backend switch); save it with ``plateau_lens.plots.save``."""
    import seaborn as sns
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    first, last = int(results["step"].min()), int(results["step"].max())
    ticks = [t for t in [0] + [10 ** k for k in range(0, 8)] if first <= t <= last]
    with sns.axes_style("whitegrid"):
        figure = Figure(figsize=(10, 4), layout="constrained")
        axes = figure.subplots(1, 2)
        for axis, metric in zip(axes, ["repetition_frequency", "cosine_similarity"]):
            sns.lineplot(data=results, x="step", y=metric, hue="model", marker="o", ax=axis,
                         legend=axis is axes[0])
            axis.set_xscale("symlog", linthresh=1, linscale=1)
            if last > first:
                axis.set_xlim(first, last)
            axis.xaxis.set_major_locator(FixedLocator(ticks))
            axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            axis.xaxis.set_minor_locator(NullLocator())
            for line in axis.lines:
                line.set_clip_on(False)
            axis.set_title(metric.replace("_", " "))
            axis.set_ylabel(metric.replace("_", " "))
    axes[0].set_ylim(-0.02, 1.02)
    if title:
        figure.suptitle(title)
    return figure


