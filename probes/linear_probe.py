"""Linear probes on every layer's residual stream over a run's checkpoints.

    python probes/linear_probe.py runs/NAME [--steps 0,4000,20000] [--every 5]

Writes linear_probe.csv and linear_probe_<metric>.png into RUN/probes (or --out).
"""

import sys

from plateau_lens import linear_probes
from plateau_lens.analysis import analysis_batch, analyze_run
from plateau_lens.plots import probe_vs_step, save
from plateau_lens.script_utils import open_run, run_arguments, run_script
from plateau_lens.io import write_table


def main() -> None:
    parser = run_arguments(__doc__)
    parser.add_argument("--train-size", type=int, default=2048, help="probe training matrices")
    args = parser.parse_args()
    run, steps, out = open_run(args)
    train_batch = analysis_batch(run, args.train_size, seed=run.config.train.seed + 1)
    test_batch = analysis_batch(run, args.batch_size)
    table = analyze_run(run, lambda model, batch: linear_probes(model, train_batch, batch),
                        steps=steps, batch=test_batch)
    write_table(table, out / "linear_probe.csv")
    transition = run.transition()
    for metric in sorted(table["metric"].unique()):
        print("wrote", save(probe_vs_step(table, metric, transition), out / f"linear_probe_{metric}.png"))
    print("wrote", out / "linear_probe.csv")


if __name__ == "__main__":
    sys.exit(run_script(main))
