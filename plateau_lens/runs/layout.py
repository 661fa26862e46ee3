"""The directory layouts plateau-lens writes and reads: every file and folder name, and the
small functions that build their paths. Nothing else in the package spells these names.

A run directory (``plateau-lens train --out RUN``)::

    RUN/config.json                         CONFIG_FILE: the run's config (JSON)
    RUN/metrics.csv                         METRICS_FILE: one row per logged step
    RUN/checkpoints/step_00000100.safetensors   checkpoint_path(RUN, 100): the weights
    RUN/checkpoints/step_00000100.state     its training-state sidecar (state_path)
    RUN/checkpoints/step_00000100.pt        a legacy (pickle) checkpoint
    RUN/analysis/<analyzer>.csv             analysis_path(RUN, name): ``plateau-lens analyze``
    RUN/figures/*.png                       FIGURE_DIR: the demo's and trackers' figures
    RUN/tensorboard/, RUN/mlruns/           the trackers' local stores

A sweep directory (``plateau-lens sweep --out DIR``): ``DIR/sweep.json`` (SWEEP_FILE),
``DIR/sweep.csv`` (SWEEP_SUMMARY_FILE), ``DIR/analysis.csv`` (SWEEP_ANALYSIS_FILE),
``DIR/figures/`` and one ordinary run directory per point, ``DIR/runs/<name>``
(:func:`named_run_dir`), which also holds the sweep's ``sweep_point.json``,
``sweep_status.json``, ``sweep.log`` and ``.sweep.lock``. ``plateau-lens reproduce --out DIR``
lays its runs out the same way.

A pretraining series (``plateau-lens pretrain``, or a hub series copied locally):
``SERIES/step{N}/`` (:func:`series_step_dir`), each a ``save_pretrained`` folder with
its ``config.json`` (HF_CONFIG_FILE), and ``SERIES/pretrain.json`` (PRETRAIN_SUMMARY_FILE).

A developmental report (``plateau-lens report --out DIR``): ``DIR/report.html`` and the
tables behind it (REPORT_TABLES).
"""

from __future__ import annotations

import re
from pathlib import Path

# ------------------------------------------------------------------ a training run
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.csv"
CHECKPOINT_DIR = "checkpoints"
RUN_FILES = (CONFIG_FILE, METRICS_FILE, CHECKPOINT_DIR)
"""What ``train`` writes into ``--out``: a directory holding any of them that is not a
plateau-lens run is refused rather than overwritten."""

WEIGHTS_SUFFIX = ".safetensors"
STATE_SUFFIX = ".state"
LEGACY_SUFFIX = ".pt"
CHECKPOINT_PREFIX = "step_"
CHECKPOINT_NAME = re.compile(r"^step_(\d{8})(\.safetensors|\.pt)$")
"""A checkpoint file's name: ``step_`` + the step in 8 digits + the weights (or legacy) suffix."""
CHECKPOINT_FORM = "step_NNNNNNNN.safetensors"
LEGACY_FORM = "step_NNNNNNNN.pt"

ANALYSIS_DIR = "analysis"
FIGURE_DIR = "figures"
LOSS_CURVE_FIGURE = "loss_curve.png"
TENSORBOARD_DIR = "tensorboard"
MLFLOW_DIR = "mlruns"

# ------------------------------------------------------------------ the demo's extras
ATTENTION_PROGRESS_FILE = "attention_progress.csv"
ATTENTION_PROGRESS_FIGURE = "attention_progress.png"

# ------------------------------------------------------------------ a sweep or a reproduction
RUNS_DIR = "runs"
"""``DIR/runs/<name>``: the run directories of a sweep's points or a reproduction's runs."""
SWEEP_FILE = "sweep.json"
SWEEP_SUMMARY_FILE = "sweep.csv"
SWEEP_ANALYSIS_FILE = "analysis.csv"
SWEEP_POINT_FILE = "sweep_point.json"
SWEEP_STATUS_FILE = "sweep_status.json"
SWEEP_LOG_FILE = "sweep.log"
SWEEP_LOCK_FILE = ".sweep.lock"

# ------------------------------------------------------------------ a pretraining series
HF_CONFIG_FILE = "config.json"
"""What ``save_pretrained`` writes beside the weights: marks a checkpoint folder."""
PRETRAIN_SUMMARY_FILE = "pretrain.json"
SERIES_STEP_DIR = re.compile(r"^step(\d+)$")
PROMPTS_FILE = "prompts.txt"

# ------------------------------------------------------------------ a developmental report
REPORT_FILE = "report.html"
REPORT_TABLES = {"onsets": "onsets.csv", "curves": "curves.csv", "timings": "timings.csv"}
REPORT_CACHE_DIR = "series_cache"


def config_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / CONFIG_FILE


def metrics_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / METRICS_FILE


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR


def checkpoint_name(step: int) -> str:
    return f"{CHECKPOINT_PREFIX}{step:08d}{WEIGHTS_SUFFIX}"


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    """``RUN/checkpoints/step_NNNNNNNN.safetensors``."""
    return checkpoint_dir(run_dir) / checkpoint_name(step)


def state_path(path: str | Path) -> Path:
    """The training-state sidecar of a weights file."""
    return Path(path).with_suffix(STATE_SUFFIX)


def step_of_checkpoint(path: str | Path) -> int | None:
    """The step a checkpoint file's name holds; None for a file not named like one."""
    match = CHECKPOINT_NAME.match(Path(path).name)
    return None if match is None else int(match.group(1))


def state_sidecars(run_dir: str | Path) -> list[Path]:
    """Every ``step_*.state`` file in the run's checkpoint folder (sorted)."""
    directory = checkpoint_dir(run_dir)
    return sorted(directory.glob(f"{CHECKPOINT_PREFIX}*{STATE_SUFFIX}")) if directory.is_dir() else []


def legacy_checkpoints(run_dir: str | Path) -> list[Path]:
    """The run's legacy ``step_NNNNNNNN.pt`` files (sorted)."""
    directory = checkpoint_dir(run_dir)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob(f"{CHECKPOINT_PREFIX}*{LEGACY_SUFFIX}")
                  if CHECKPOINT_NAME.match(p.name))


def list_checkpoints(run_dir: str | Path) -> dict[int, Path]:
    """``{step: path}`` of a run's checkpoints: ``step_NNNNNNNN.safetensors`` files (a legacy
    ``step_NNNNNNNN.pt`` where no safetensors file has its step). Any other file (temp files,
    sidecars, ``step_backup.pt``) is ignored; files are listed, not verified."""
    directory = checkpoint_dir(run_dir)
    if not directory.is_dir():
        return {}
    found: dict[int, Path] = {}
    for path in sorted(directory.iterdir()):
        step = step_of_checkpoint(path)
        if step is None or not path.is_file():
            continue
        if path.suffix == WEIGHTS_SUFFIX or step not in found:
            found[step] = path
    return dict(sorted(found.items()))


def list_checkpoint_steps(run_dir: str | Path) -> list[int]:
    """The steps of a run's checkpoints, ascending."""
    return list(list_checkpoints(run_dir))


def analysis_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / ANALYSIS_DIR


def analysis_file(analyzer: str) -> str:
    """``<analyzer>.csv``: the file name of one analyzer's table."""
    return f"{analyzer}.csv"


def analysis_path(run_dir: str | Path, analyzer: str) -> Path:
    """``RUN/analysis/<analyzer>.csv``: one analyzer's table."""
    return analysis_dir(run_dir) / analysis_file(analyzer)


def figure_path(run_dir: str | Path, name: str) -> Path:
    """``RUN/figures/<name>``."""
    return Path(run_dir) / FIGURE_DIR / name


def runs_dir(out: str | Path) -> Path:
    return Path(out) / RUNS_DIR


def named_run_dir(out: str | Path, name: str) -> Path:
    """``DIR/runs/<name>``: one run of a sweep (a point) or of a reproduction."""
    return runs_dir(out) / name


def series_step_name(step: int) -> str:
    return f"step{step}"


def series_step_dir(series: str | Path, step: int) -> Path:
    """``SERIES/step{N}``: one checkpoint folder of a pretraining series."""
    return Path(series) / series_step_name(step)


def series_step_of(directory: str | Path) -> int | None:
    """``…/step3500`` → 3500; None for a folder not named ``step{N}``."""
    match = SERIES_STEP_DIR.match(Path(directory).name)
    return int(match.group(1)) if match else None


def is_checkpoint_folder(directory: str | Path) -> bool:
    """A ``save_pretrained`` folder (it holds a ``config.json``)."""
    return (Path(directory) / HF_CONFIG_FILE).is_file()
