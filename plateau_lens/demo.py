"""The main job: train MWS through its plateau and drop, plot it, analyse the checkpoints."""

from __future__ import annotations

from pathlib import Path

from . import plots
from .analysis import analyze_run, attention_progress
from .config import load_config
from .runs.load import load_run
from .io import write_table
from .runs.layout import (ATTENTION_PROGRESS_FIGURE, ATTENTION_PROGRESS_FILE, LOSS_CURVE_FIGURE,
                          checkpoint_dir, figure_path, metrics_path)
from .training import train_or_resume


def run_demo(config_path: str | Path, out: Path, steps: int | None = None,
             progress: bool = True) -> dict[str, Path]:
    config = load_config(config_path)
    if steps is not None:
        config = config.replace(train={"steps": steps})
    train_or_resume(config, out, progress=progress)  # re-running the demo resumes it
    run = load_run(out)
    transition = run.transition()
    figure = plots.loss_curve(run.metrics, ["loss", "accuracy"], transition,
                              title=f"{run.task.name}: loss and greedy accuracy")
    curve_path = Path(plots.save(figure, figure_path(out, LOSS_CURVE_FIGURE)))
    progress_table = analyze_run(run, attention_progress, progress=progress)
    progress_path = out / ATTENTION_PROGRESS_FILE
    write_table(progress_table, progress_path)
    per_step = progress_table.groupby("step")["value"].mean().reset_index(name="attention_progress")
    figure = plots.loss_curve(per_step, ["attention_progress"], transition,
                              title="attention progress over checkpoints", log_y=False)
    progress_figure = Path(plots.save(figure, figure_path(out, ATTENTION_PROGRESS_FIGURE)))
    final = run.metrics.iloc[-1]
    print("\n=== plateau-lens demo ===")
    if transition is None:
        print("no plateau-and-drop found in the loss curve")
    else:
        print(f"plateau: {transition.describe()}")
    print(f"final logged step {int(final['step'])}: loss {final['loss']:.4f}, "
          f"accuracy {final['accuracy']:.3f}")
    paths = {
        "run directory": out, "metrics": metrics_path(out),
        "checkpoints": checkpoint_dir(out), "loss curve": curve_path,
        "attention progress table": progress_path, "attention progress figure": progress_figure,
    }
    for label, path in paths.items():
        print(f"{label:>26}: {path}")
    return paths
