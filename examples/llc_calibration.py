"""Calibrate the LLC sampler on checkpoints of a run: ε × nβ sweep, diagnostics, chosen setting.

    python examples/llc_calibration.py runs/mws_s0 --steps 100 300 --out calibration_mws

For each ``--steps`` checkpoint, runs :func:`plateau_lens.development.llc_calibration` on the
report's evaluation batch (the run's held-out examples, ``--batch-size``) and the task's training
loss, prints the table (λ̂ mean/std over chains, first/last-third trace loss, drift, flags,
chosen) and the rule's choice, and writes ``OUT/calibration.csv`` and ``OUT/traces.csv``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="plateau-lens run directory")
    parser.add_argument("--steps", type=int, nargs="+", required=True,
                        help="checkpoint steps to calibrate on (e.g. one before, one after the drop)")
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-4, 3e-4, 1e-3, 3e-3, 1e-2])
    parser.add_argument("--nbetas", type=float, nargs="+", default=None,
                        help="nβ values in order of preference (default: only m/log m)")
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--draws", type=int, default=60)
    parser.add_argument("--burnin", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64,
                        help="held-out examples the loss is measured on (the report's default)")
    parser.add_argument("--llc-batch-size", type=int, default=64, help="SGLD minibatch m")
    parser.add_argument("--out", required=True, help="directory for calibration.csv, traces.csv")
    args = parser.parse_args()

    import plateau_lens as pl
    from plateau_lens.analysis.over_training import analysis_batch
    from plateau_lens.development import LLCSettings, llc_calibration
    from plateau_lens.development.llc import task_loss

    run = pl.load_run(args.run)
    missing = sorted(set(args.steps) - set(run.steps))
    if missing:
        raise SystemExit(f"--steps: no checkpoint at {missing}; the run has {run.steps}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    batch = analysis_batch(run, args.batch_size)
    settings = LLCSettings(chains=args.chains, draws=args.draws, burnin=args.burnin,
                           batch_size=args.llc_batch_size)
    tables, traces = [], []
    for step in args.steps:
        model = run.model(step)
        result = llc_calibration(model.network, task_loss(model, batch), len(batch.inputs),
                                 lrs=args.lrs, nbetas=args.nbetas or [None], settings=settings)
        tables.append(result.table.assign(step=step))
        traces.append(result.traces.assign(step=step))
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(f"checkpoint {step}:\n{result.table.to_string(index=False)}\n-> {result.reason}\n")
    pd.concat(tables).to_csv(out / "calibration.csv", index=False)
    pd.concat(traces).to_csv(out / "traces.csv", index=False)


if __name__ == "__main__":
    main()
