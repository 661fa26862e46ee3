"""Cost of each piece of ``plateau-lens report`` per checkpoint, on one run.

    python benchmarks/report_cost.py runs/mws --llc-checkpoints 20 [--llc-draws 60 ...]

Runs the report into a temporary directory (or ``--out``) and prints, per piece (head scores,
essential dynamics, LLC, onsets), its seconds, the checkpoints it covered and the seconds per
checkpoint, then the total and the LLC's share. Reading the run's metrics and drawing the
figures are the rest of the total.
"""

from __future__ import annotations

import argparse
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
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()

    from plateau_lens.development.llc import LLCSettings
    from plateau_lens.development.report import build_report

    torch.set_num_threads(args.threads)
    settings = LLCSettings(draws=args.llc_draws, burnin=args.llc_burnin, chains=args.llc_chains)
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
    print(f"total {total:.1f} s on {args.threads} thread(s); LLC {llc:.1f} s "
          f"({llc / total:.0%} of the total); settings: {settings}")


if __name__ == "__main__":
    main()
