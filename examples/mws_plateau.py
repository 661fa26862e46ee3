"""Loss-plateau study, end to end on the CPU (arXiv 2506.13688): moving-window sum.

1. Trains the study's MWS model (tasks/mws.toml) and plots the plateau and drop with the
   quantities the study tracks: per-position accuracy (y₁ = x₁ is learned first), repetition
   frequency of greedy outputs beside that of the data, representation collapse (mean pairwise
   cosine similarity of the final-LN states at positions 17–31), attention progress.
2. Attention biasing: steps to the transition for c ∈ {0.2, 0.5, 1, 2.5, 10} over several
   seeds (each run stops once its accuracy has stayed ≥ 0.95 for 30 steps).

    python examples/mws_plateau.py [--out runs/mws_example] [--seeds 0,1,2] [--batch-size 64]

Writes figures and CSV tables into --out and prints the tables.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from plateau_lens import load_config, load_run
from plateau_lens.plots import loss_curve, save
from plateau_lens.training import Trainer, train_or_resume
from plateau_lens.io import write_table

BIAS_VALUES = (0.2, 0.5, 1.0, 2.5, 10.0)


def train_until_solved(config, out: Path, chunk: int = 10, solved_for: int = 30) -> tuple[pd.DataFrame, int]:
    """Train in chunks; stop once accuracy ≥ 0.95 for ``solved_for`` steps (or at the budget).
    Returns the metrics rows and the number of steps trained."""
    with Trainer.open(config, out) as trainer:
        while trainer.step < config.train.steps:
            trainer.run(stop_at=trainer.step + chunk, progress=False)
            metrics = pd.DataFrame(trainer.rows)
            recent = metrics[metrics["step"] > trainer.step - solved_for]
            if len(recent) and (recent["accuracy"] >= 0.95).all() and trainer.step >= solved_for:
                break
        trainer.save()
        return pd.DataFrame(trainer.rows), trainer.step


def steps_to_transition(metrics: pd.DataFrame, threshold: float = 0.9) -> float:
    reached = metrics[metrics["accuracy"] >= threshold]
    return float(reached["step"].iloc[0]) if len(reached) else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="tasks/mws.toml")
    parser.add_argument("--out", default="runs/mws_example")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="batch for the biasing sweep (the main run uses the config's)")
    parser.add_argument("--max-steps", type=int, default=1500)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    out = Path(args.out)
    base = load_config(args.config)

    # 1. the study's run, with everything it tracks
    main_run = out / "mws_seed0"
    main_config = base.replace(train={"steps": 400, "checkpoint_every": 20})
    train_or_resume(main_config, main_run)
    run = load_run(main_run)
    transition = run.transition()
    metrics = run.metrics.copy()
    metrics["accuracy y1 (= x1)"] = metrics["accuracy_pos_0"]
    metrics["accuracy y2..y16"] = metrics[[f"accuracy_pos_{i}" for i in range(1, 16)]].mean(axis=1)
    columns = ["accuracy y1 (= x1)", "accuracy y2..y16", "repetition_frequency",
               "repetition_frequency_data", "cosine_similarity", "attention_progress"]
    figure = loss_curve(metrics, columns, transition, log_y=False,
                        title="MWS: partial solution, repetition, collapse, attention progress")
    print("wrote", save(figure, out / "mws_dynamics.png"))
    print("wrote", save(loss_curve(metrics, ["loss"], transition, title="MWS loss"),
                        out / "mws_loss.png"))
    print("transition:", transition)
    if transition is not None:
        plateau = metrics[metrics["step"].between(transition.plateau_start, transition.plateau_end)]
        after = metrics[metrics["step"] >= transition.drop_end]
        summary = pd.DataFrame({
            "during plateau": plateau[columns + ["loss"]].mean(),
            "after drop": after[columns + ["loss"]].mean()})
        print(summary.round(3).to_string())
        write_table(summary.reset_index(names="metric"), out / "plateau_vs_after.csv")

    # 2. attention biasing sweep
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for c in BIAS_VALUES:
            config = base.replace(train={"seed": seed, "attention_bias": c,
                                         "batch_size": args.batch_size, "steps": args.max_steps,
                                         "checkpoint_every": 100, "log_every": 10})
            metrics, steps_trained = train_until_solved(config, out / f"bias_c{c}_seed{seed}")
            found = load_run(out / f"bias_c{c}_seed{seed}").transition()
            rows.append({"c": c, "seed": seed,
                         "steps_to_accuracy_0.9": steps_to_transition(metrics),
                         "detected_drop_step": found.drop_step if found else float("nan"),
                         "steps_trained": steps_trained})
            print(rows[-1])
    table = pd.DataFrame(rows)
    write_table(table, out / "attention_bias.csv")
    print(table.pivot(index="c", columns="seed", values="steps_to_accuracy_0.9").to_string())


if __name__ == "__main__":
    main()
