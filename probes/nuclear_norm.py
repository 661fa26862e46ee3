"""Model vs nuclear-norm minimisation, masked-entry MSE over p = 0.1…0.6, at one checkpoint.

    python probes/nuclear_norm.py runs/NAME [--steps FINAL] [--matrices 512] [--lam 1e-3]
"""

import seaborn as sns
from matplotlib import pyplot as plt

from plateau_lens import compare_to_nuclear_norm
from plateau_lens.plots import save
from plateau_lens.script_utils import open_run, run_arguments
from plateau_lens.io import write_table


def main() -> None:
    parser = run_arguments(__doc__)
    parser.add_argument("--matrices", type=int, default=128)
    parser.add_argument("--lam", type=float, default=None, help="regularised form (default exact)")
    args = parser.parse_args()
    run, steps, out = open_run(args)
    step = steps[-1] if args.steps else run.steps[-1]
    table = compare_to_nuclear_norm(run.model(step), n_matrices=args.matrices, lam=args.lam)
    table.insert(0, "step", step)
    write_table(table, out / "nuclear_norm.csv")
    figure, axis = plt.subplots(figsize=(6, 4))
    sns.lineplot(data=table[table["metric"] == "masked_mse"], x="p_mask", y="value",
                 hue="condition", marker="o", ax=axis)
    axis.set_ylabel("masked MSE")
    axis.set_yscale("log")
    axis.set_title(f"masked-entry MSE at step {step}")
    figure.tight_layout()
    print("wrote", save(figure, out / "nuclear_norm.png"))
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
