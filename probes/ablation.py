"""Uniform-attention ablation of every head and layer over a run's checkpoints.

    python probes/ablation.py runs/NAME [--mode uniform|mean] [--steps ...]

Writes ablation.csv and ablation.png into RUN/probes (or --out).
"""

import sys

from plateau_lens import ablation_sweep
from plateau_lens.analysis import analyze_run
from plateau_lens.plots import ablation_vs_step, save
from plateau_lens.script_utils import open_run, run_arguments, run_script
from plateau_lens.io import write_table


def main() -> None:
    parser = run_arguments(__doc__)
    parser.add_argument("--mode", choices=["uniform", "mean"], default="uniform")
    args = parser.parse_args()
    run, steps, out = open_run(args)
    table = analyze_run(run, lambda model, batch: ablation_sweep(model, batch, args.mode),
                        steps=steps, batch_size=args.batch_size)
    write_table(table, out / "ablation.csv")
    metric = "masked_mse" if "masked_mse" in set(table["metric"]) else "loss"
    print("wrote", save(ablation_vs_step(table, metric, run.transition()), out / "ablation.png"))
    print("wrote", out / "ablation.csv")


if __name__ == "__main__":
    sys.exit(run_script(main))
