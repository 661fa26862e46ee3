"""Out-of-distribution evaluation at one checkpoint (the study's ``ood.py``): Gaussian (0.5)
and Laplace (0.25) factors, other ranks, other p, and other sizes; total / observed / masked
MSE per condition in one table and one figure.

    python probes/ood.py runs/NAME [--steps FINAL] [--matrices 1024]
"""

import sys

from plateau_lens.analysis import ood_evaluation
from plateau_lens.io import write_table
from plateau_lens.plots import ood_figure, save
from plateau_lens.script_utils import open_run, run_arguments, run_script


def main() -> None:
    parser = run_arguments(__doc__)
    parser.add_argument("--matrices", type=int, default=1024, help="matrices per condition")
    args = parser.parse_args()
    run, steps, out = open_run(args)
    step = steps[-1] if args.steps else run.steps[-1]
    table = ood_evaluation(run.model(step), n_matrices=args.matrices)
    table.insert(0, "step", step)
    write_table(table, out / "ood.csv")
    print("wrote", save(ood_figure(table, title=f"step {step}"), out / "ood.png"))
    wide = table.pivot_table(index="condition", columns="metric", values="value", sort=False)
    print(wide[["loss", "observed_mse", "masked_mse", "masked_mse_ratio"]].to_string())


if __name__ == "__main__":
    sys.exit(run_script(main))
