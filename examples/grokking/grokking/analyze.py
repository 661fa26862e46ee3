"""Summarise a grokking run: ``python -m grokking.analyze RUN_DIR --out results``.

Writes ``progress.csv`` (Nanda et al.'s progress measures per checkpoint, see
``grokking.progress``), ``onsets.csv``, ``summary.json`` (the steps below), ``summary.md`` (the
same as Markdown) and ``grokking.png``, and prints the summary:

* ``train_accuracy_1_step``: first logged step with train accuracy 1.0;
* ``test_accuracy_0.9_step``: first logged step with test accuracy > 0.9;
* ``transition``: what ``plateau_lens.detect_transition`` finds on ``test_loss``;
* ``onsets``: when each progress measure starts to move (:func:`onsets`), and its lead on the
  test loss.

It then prints the same as Markdown tables to paste into the README (:func:`markdown_report`).
Row s of metrics.csv is measured on checkpoint s, before update s (docs/run-directory.md).
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
    try:
        transition, transition_note = detect_transition(metrics, loss="test_loss"), ""
    except ValueError as too_short:  # e.g. fewer logged points than the detector needs
        transition, transition_note = None, str(too_short)
    return {
        "last_logged_step": int(metrics["step"].iloc[-1]),
        "train_accuracy_1_step": first_step(metrics, "train_accuracy", 1.0),
        "test_accuracy_0.9_step": first_step(metrics, "test_accuracy", 0.9, strict=True),
        "final": metrics.iloc[-1][["train_loss", "train_accuracy", "test_loss", "test_accuracy"]].to_dict(),
        "transition": None if transition is None else {
            name: getattr(transition, name) for name in ("plateau_start", "plateau_end", "drop_step",
                                                         "drop_end", "plateau_loss", "final_loss")
            if hasattr(transition, name)},
        "transition_note": transition_note,
    }


MEASURES = ("key_energy_fraction", "restricted_loss", "excluded_loss", "sum_squared_weights")
"""Nanda et al. 2023's progress measures (§5.1: restricted loss, excluded loss; the key
frequencies' share of the embedding, their Fig. 3; the sum of squared weights, §5.2)."""


def onsets(progress: pd.DataFrame, transition: dict | None, start: int | None = None) -> pd.DataFrame:
    """When each progress measure, and the test loss itself, starts to move (from checkpoint
    ``start`` on: the analysis passes the step where train accuracy reaches 1.0, so that the
    memorisation phase, in which every curve moves, is not what the first change point finds).

    The onset is the first change point of a continuous piecewise-linear fit with two breaks
    (``plateau_lens.development.onsets.curve_onset``: ``ruptures.Dynp``, cost "clinear"; the
    way Chen et al. 2023 order structure onsets before capability onsets), on the checkpoints of
    ``progress`` (columns ``step``, :data:`MEASURES`, ``test_loss``), so measure and test loss
    share one grid. ``lead_vs_test_loss`` = the test loss's onset − the measure's;
    ``lead_vs_transition`` = ``detect_transition``'s ``plateau_end`` on the test loss − the
    measure's onset (NA without a transition). Positive: the measure moves first.
    ``moves_before_test_loss`` judges by the transition where there is one, else by the test
    loss's onset. A curve with too few checkpoints gets NA and a ``note``."""
    from plateau_lens.development.onsets import onset_table

    if start is not None:
        progress = progress[progress["step"] >= start]
    measures = [m for m in (*MEASURES, "test_loss") if m in progress]
    curves = progress.melt(id_vars="step", value_vars=measures, var_name="measure")
    table = onset_table(curves).set_index("measure").reindex(measures)
    test_onset = table.loc["test_loss", "onset_step"]
    plateau_end = None if transition is None else transition.get("plateau_end")
    table["lead_vs_test_loss"] = (test_onset - table["onset_step"]).astype("Int64")
    table["lead_vs_transition"] = (pd.Series(pd.NA, index=table.index, dtype="Int64")
                                   if plateau_end is None else
                                   (plateau_end - table["onset_step"]).astype("Int64"))
    lead = table["lead_vs_test_loss"] if plateau_end is None else table["lead_vs_transition"]
    table["moves_before_test_loss"] = lead.map(lambda v: pd.NA if pd.isna(v) else bool(v > 0))
    table.loc["test_loss", "moves_before_test_loss"] = pd.NA
    return table.reset_index()[["measure", "onset_step", "end_step", "change", "lead_vs_test_loss",
                                "lead_vs_transition", "moves_before_test_loss", "note"]]


def _cell(value, fmt: str = "{}") -> str:
    return "—" if value is None or (not isinstance(value, str) and pd.isna(value)) else fmt.format(value)


def markdown_report(summary: dict, onset_rows: pd.DataFrame) -> str:
    """The summary as two Markdown tables (paste into the README): the steps beside Nanda et
    al. 2023's, and each progress measure's onset and lead on the test loss."""
    last = summary["last_logged_step"]
    transition = summary["transition"]
    steps = [
        "| | this run | Nanda et al. 2023 |", "|---|---|---|",
        f"| train accuracy reaches 1.0 | step {_cell(summary['train_accuracy_1_step'])}"
        f"{'' if summary['train_accuracy_1_step'] is not None else f' (not within {last} steps)'} "
        f"| memorised within the first ~1k epochs |",
        f"| test accuracy passes 0.9 | "
        + (f"step {summary['test_accuracy_0.9_step']}" if summary["test_accuracy_0.9_step"] is not None
           else f"not reached within {last} steps (final {summary['final']['test_accuracy']:.3f})")
        + " | ~10k epochs |",
        "| `detect_transition` on the test loss | "
        + ((f"not computed: {summary['transition_note']}" if summary.get("transition_note")
            else "none (no plateau-then-drop in the test loss)") if transition is None else
           f"plateau {transition['plateau_start']}–{transition['plateau_end']} at "
           f"{transition['plateau_loss']:.3g}, steepest drop at {transition['drop_step']}, "
           f"over by {transition['drop_end']} ({transition['final_loss']:.3g})")
        + " | the test loss drops at grokking |",
        f"| key frequencies (final embedding) | {', '.join(map(str, summary.get('key_frequencies', [])))} "
        f"| 14, 35, 41, 42, 52 (their main run) |",
    ]
    reference = "test loss's onset" if transition is None else "plateau_end of detect_transition"
    table = ["| measure | onset step | end of change | change | lead on test-loss onset | "
             "lead on transition (plateau_end) | moves before the test loss? |",
             "|---|---|---|---|---|---|---|"]
    for row in onset_rows.itertuples(index=False):
        moves = {True: "yes", False: "no"}.get(row.moves_before_test_loss, "—")
        table.append(f"| {row.measure} | {_cell(row.onset_step)} | {_cell(row.end_step)} | "
                     f"{_cell(row.change, '{:+.3g}')} | {_cell(row.lead_vs_test_loss)} | "
                     f"{_cell(row.lead_vs_transition)} | {moves} |")
    window = summary.get("onset_window_start")
    since = "" if window is None else f" of the checkpoints from step {window} (train accuracy 1.0) on"
    return "\n".join([*steps, "", f"Onsets (first change point{since}; 'before' judged against "
                       f"the {reference}; lead in steps, positive = the measure moves first):", "",
                       *table])


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
    summary["onset_window_start"] = summary["train_accuracy_1_step"]
    onset_rows = onsets(progress, summary["transition"], start=summary["onset_window_start"])
    onset_rows.to_csv(args.out / "onsets.csv", index=False)
    summary["onsets"] = json.loads(onset_rows.to_json(orient="records"))
    metrics = pd.read_csv(metrics_path(args.run))
    figure(metrics, progress, summary, args.out / "grokking.png")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    print(json.dumps(summary, indent=2, default=float))
    report = markdown_report(summary, onset_rows)
    (args.out / "summary.md").write_text(report + "\n")
    print("\n" + report)
    return summary


if __name__ == "__main__":
    main()
