"""Model vs nuclear-norm minimisation (the study's Fig. 3) at one checkpoint: MSE on all and
on masked entries and the nuclear norm of the completed matrices, over p = 0.1…0.6.

    python probes/nuclear_norm.py runs/NAME [--steps FINAL] [--matrices 512] [--lam 1e-3]
                                  [--lambda-sweep]

``--lambda-sweep`` also writes the regularised problem over the study's λ (5e-4 … 1e-2,
256 matrices at the run's p) beside the exact form.
"""

import sys

from plateau_lens import compare_to_nuclear_norm
from plateau_lens.analysis import nuclear_norm_lambda_sweep
from plateau_lens.analysis.nuclear_norm import STUDY_N_MATRICES
from plateau_lens.io import write_table
from plateau_lens.plots import lambda_sweep_figure, nuclear_norm_figure, save
from plateau_lens.script_utils import open_run, run_arguments, run_script


def main() -> None:
    parser = run_arguments(__doc__)
    parser.add_argument("--matrices", type=int, default=STUDY_N_MATRICES,
                        help="matrices per p (the study: 512)")
    parser.add_argument("--lam", type=float, default=None, help="regularised form (default exact)")
    parser.add_argument("--lambda-sweep", action="store_true",
                        help="also sweep λ of the regularised problem (256 matrices)")
    args = parser.parse_args()
    run, steps, out = open_run(args)
    step = steps[-1] if args.steps else run.steps[-1]
    table = compare_to_nuclear_norm(run.model(step), n_matrices=args.matrices, lam=args.lam)
    table.insert(0, "step", step)
    write_table(table, out / "nuclear_norm.csv")
    print("wrote", save(nuclear_norm_figure(table, f"step {step}, {args.matrices} matrices per p"),
                        out / "nuclear_norm.png"))
    print(table[table["metric"].isin(["mse", "masked_mse", "nuclear_norm"])].to_string(index=False))
    if args.lambda_sweep:
        sweep = nuclear_norm_lambda_sweep(run.task)
        write_table(sweep, out / "nuclear_norm_lambda.csv")
        print("wrote", save(lambda_sweep_figure(sweep), out / "nuclear_norm_lambda.png"))


if __name__ == "__main__":
    sys.exit(run_script(main))
