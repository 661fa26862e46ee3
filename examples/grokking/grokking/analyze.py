"""Summarise a grokking run: ``python -m grokking.analyze RUN_DIR --out results``.

Writes ``progress.csv`` (Nanda et al.'s progress measures per checkpoint, see
``grokking.progress``), ``summary.json`` (the steps below) and ``grokking.png``, and prints
the summary:

* ``train_accuracy_1_step``: first logged step with train accuracy 1.0;
* ``test_accuracy_0.9_step``: first logged step with test accuracy > 0.9;
* ``transition``: what ``plateau_lens.detect_transition`` finds on ``test_loss``.

Row s of metrics.csv is measured after update s (the weights of checkpoint s + 1).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from plateau_lens.runs.layout import metrics_path


def first_step(metrics: pd.DataFrame, column: str, threshold: float, strict: bool = False) -> int | None:
    """The first logged step where ``column`` reaches ``threshold`` (> with ``strict``)."""
    reached = metrics[column] > threshold if strict else metrics[column] >= threshold
    return int(metrics.loc[reached, "step"].iloc[0]) if reached.any() else None


def summarise(run_dir: Path) -> dict:
    from plateau_lens import detect_transition

    metrics = pd.read_csv(metrics_path(run_dir))
    transition = detect_transition(metrics, loss="test_loss")
    return {
        "last_logged_step": int(metrics["step"].iloc[-1]),
        "train_accuracy_1_step": first_step(metrics, "train_accuracy", 1.0),
        "test_accuracy_0.9_step": first_step(metrics, "test_accuracy", 0.9, strict=True),
        "final": metrics.iloc[-1][["train_loss", "train_accuracy", "test_loss", "test_accuracy"]].to_dict(),
        "transition": None if transition is None else {
            name: getattr(transition, name) for name in ("plateau_start", "plateau_end", "drop_step",
                                                         "drop_end", "plateau_loss", "final_loss")
            if hasattr(transition, name)},
    }


def figure(metrics: pd.DataFrame, progress: pd.DataFrame, summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (losses, accuracy) = plt.subplots(1, 2, figsize=(12, 4.5))
    losses.plot(metrics["step"], metrics["train_loss"], label="train loss (metrics.csv)")
    losses.plot(metrics["step"], metrics["test_loss"], label="test loss (metrics.csv)")
    if len(progress):
        losses.plot(progress["step"], progress["restricted_loss"], "o-", ms=3,
                    label="restricted loss (key frequencies only, all pairs)")
        losses.plot(progress["step"], progress["excluded_loss"], "s-", ms=3,
                    label="excluded loss (key frequencies removed, train pairs)")
    losses.set(yscale="log", xlabel="training step (full batch = epoch)", ylabel="cross-entropy (nats)",
               title="Grokking on a + b mod 113: losses")
    accuracy.plot(metrics["step"], metrics["train_accuracy"], label="train accuracy")
    accuracy.plot(metrics["step"], metrics["test_accuracy"], label="test accuracy")
    accuracy.set(xlabel="training step (full batch = epoch)", ylabel="accuracy (fraction correct)",
                 ylim=(0, 1.02), title="Accuracy")
    for axis in (losses, accuracy):
        for key, style, label in (("train_accuracy_1_step", ":", "train accuracy = 1"),
                                  ("test_accuracy_0.9_step", "--", "test accuracy > 0.9")):
            if summary[key] is not None:
                axis.axvline(summary[key], color="grey", linestyle=style, label=label)
        if summary["transition"] and summary["transition"].get("drop_step") is not None:
            axis.axvline(summary["transition"]["drop_step"], color="red", linestyle="-.",
                         label="detect_transition drop (test loss)")
        axis.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m grokking.analyze", description=__doc__)
    parser.add_argument("run", type=Path)
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--n-key", type=int, default=5, help="number of key frequencies (default 5)")
    args = parser.parse_args(argv)
    from .progress import progress_over_run

    args.out.mkdir(parents=True, exist_ok=True)
    summary = summarise(args.run)
    progress, keys = progress_over_run(args.run, n_key=args.n_key)
    summary["key_frequencies"] = keys
    progress.to_csv(args.out / "progress.csv", index=False)
    metrics = pd.read_csv(metrics_path(args.run))
    figure(metrics, progress, summary, args.out / "grokking.png")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    print(json.dumps(summary, indent=2, default=float))
    return summary


if __name__ == "__main__":
    main()
