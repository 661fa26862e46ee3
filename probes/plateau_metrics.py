"""Repetition frequency, representation collapse and attention progress over a sequence-task
run's checkpoints (the loss-plateau study's measurements).

    python probes/plateau_metrics.py runs/NAME [--steps ...]
"""

import sys

from plateau_lens.analysis import analyze_run, attention_progress, repetition, representation_collapse
from plateau_lens.plots import loss_curve, save
from plateau_lens.script_utils import open_run, run_arguments, run_script
from plateau_lens.io import write_table


def main() -> None:
    args = run_arguments(__doc__).parse_args()
    run, steps, out = open_run(args)
    table = analyze_run(run, {"repetition": repetition, "collapse": representation_collapse,
                              "progress": attention_progress}, steps=steps,
                        batch_size=args.batch_size)
    write_table(table, out / "plateau_metrics.csv")
    headline = table[(table["site"].isna() | (table["site"] == "pre_lm_h"))
                     & table["metric"].isin(["repetition_frequency", "accuracy", "attention_progress",
                                             "cosine_similarity"])]
    wide = headline.pivot_table(index="step", columns="metric", values="value").reset_index()
    figure = loss_curve(wide, ["repetition_frequency", "cosine_similarity", "attention_progress",
                               "accuracy"], run.transition(), log_y=False,
                        title="plateau metrics over checkpoints")
    print("wrote", save(figure, out / "plateau_metrics.png"))
    print("wrote", out / "plateau_metrics.csv")


if __name__ == "__main__":
    sys.exit(run_script(main))
