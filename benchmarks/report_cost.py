"""Cost of each piece of ``plateau-lens report`` per checkpoint, on one run.

    python benchmarks/report_cost.py runs/mws --llc-checkpoints 20 [--llc-draws 60 ...]

Runs the report into a temporary directory (or ``--out``) and prints, per piece (head scores,
essential dynamics, LLC, onsets), its seconds, the checkpoints it covered and the seconds per
checkpoint, then the total, the LLC's share, its seconds per SGLD step, and the machine's load
average (``os.getloadavg``) before and after: on a shared machine the times scale with it.
Reading the run's metrics and drawing the figures are the rest of the total.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", nargs="+", help="plateau-lens run directory (several: seeds)")
    parser.add_argument("--out", help="report directory (default: a temporary one)")
    parser.add_argument("--llc-checkpoints", type=int, default=20)
    parser.add_argument("--llc-draws", type=int, default=60)
    parser.add_argument("--llc-burnin", type=int, default=20)
    parser.add_argument("--llc-chains", type=int, default=2)
    parser.add_argument("--llc-batch-size", type=int, default=64, help="SGLD minibatch m")
    parser.add_argument("--llc-lr", type=float, default=1e-3, help="SGLD step size ε")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()

    from plateau_lens.development.llc import LLCSettings
    from plateau_lens.development.report import build_report

    torch.set_num_threads(args.threads)
    settings = LLCSettings(draws=args.llc_draws, burnin=args.llc_burnin, chains=args.llc_chains,
                           batch_size=args.llc_batch_size, lr=args.llc_lr)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(args.out or scratch)
        started = time.perf_counter()
        build_report(args.run, out, llc_checkpoints=args.llc_checkpoints, llc_settings=settings,
                     progress=False)
        total = time.perf_counter() - started
        timings = pd.read_csv(out / "timings.csv")
    with pd.option_context("display.width", 120, "display.float_format", "{:.3f}".format):
        print(timings.to_string(index=False))
    llc = timings.loc[timings["piece"] == "LLC", "seconds"].sum()
    llc_checkpoints = timings.loc[timings["piece"] == "LLC", "checkpoints"].sum()
    sgld_steps = llc_checkpoints * settings.chains * (settings.draws + settings.burnin)
    print(f"total {total:.1f} s on {args.threads} thread(s); LLC {llc:.1f} s "
          f"({llc / total:.0%} of the total; {llc / max(sgld_steps, 1):.3f} s per SGLD step of "
          f"m = {settings.batch_size}); settings: {settings}")
    print("load average (1, 5, 15 min) before: {:.2f} {:.2f} {:.2f}; after: {:.2f} {:.2f} {:.2f}"
          .format(*load_before, *os.getloadavg()))


if __name__ == "__main__":
    main()
