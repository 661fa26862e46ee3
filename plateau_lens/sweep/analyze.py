"""Analyzers a sweep runs over every run's checkpoints (by name, from the analyzer registry
:mod:`plateau_lens.analyzers`), and the sweep-wide tidy table."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from ..runs.layout import analysis_path, runs_dir

if TYPE_CHECKING:
    import pandas as pd



def parse_analyzers(text: str | None) -> list[str]:
    """``"attention_progress,repetition"`` → names, each resolved in the analyzer registry
    (:mod:`plateau_lens.analyzers`: shipped, registered by a plugin, an entry point, or a
    ``"module:function"`` path)."""
    from ..analyzers import parse_analyzers as parse

    return parse(text, flag="--analyze")


def check_analyzers_apply(names: Sequence[str], points) -> None:
    """Before any work: each analyzer is defined for every point's task (the check the
    analyzer makes on its first checkpoint), so that an --analyze list that cannot run is
    refused up front, naming the run and the analyzers its task allows."""
    from ..analyzers import analyzer_names

    for point in points:
        task, n_layers = point.config.make_task(), point.config.model.n_layers
        for name in names:
            problem = _inapplicable(name, task, n_layers)
            if problem is not None:
                allowed = [a for a in analyzer_names() if _inapplicable(a, task, n_layers) is None]
                raise ValueError(f"--analyze {name}: {problem} (run {point.name}); allowed "
                                 f"for this task: {', '.join(allowed)}")


def _inapplicable(name: str, task, n_layers: int) -> str | None:
    """Why analyzer ``name`` refuses ``task`` (None: it runs), by the analyzers' own checks:
    the kind of task it is defined for (:func:`~plateau_lens.analysis.hooks.task_problem`),
    and for attention_progress an optimal attention mask."""
    from ..analysis.hooks import task_problem
    from ..metrics import attention_masks
    from ..tasks import step_generator

    if name == "attention_progress" and not attention_masks(
            task, task.sample(1, step_generator(0, 0)), n_layers):
        return f"needs an optimal attention mask, and task {task.name!r} defines none"
    return task_problem(task, name)


def analyzer_function(name: str) -> Callable:
    """The function of registered analyzer ``name``."""
    from ..analyzers import resolve_analyzer

    return resolve_analyzer(name).function()


def analysis_table(out: Path, analyzers: Sequence[str], fields: Sequence[str]) -> pd.DataFrame:
    """One table for the whole sweep: run, its swept values, analyzer, step, then the
    analyzer's own columns, from each run's ``analysis/<name>.csv``."""
    import pandas as pd

    from .rundir import read_point

    frames = []
    for run_dir in sorted(runs_dir(out).iterdir()):
        params = read_point(run_dir).get("params", {})
        for name in analyzers:
            path = analysis_path(run_dir, name)
            if not path.is_file():
                continue
            frame = pd.read_csv(path)
            front = {"run": run_dir.name, **{f: params.get(f) for f in fields}, "analyzer": name}
            for position, (column, value) in enumerate(front.items()):  # lists stay one value
                frame.insert(position, column, pd.Series([value] * len(frame), index=frame.index,
                                                         dtype=object))
            frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
