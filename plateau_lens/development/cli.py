"""``plateau-lens report RUN [RUN ...] --out DIR``: the developmental report (one HTML page).
Parsing imports nothing heavy; the work loads on run."""

from __future__ import annotations

import argparse


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def cmd_report(args: argparse.Namespace) -> int:
    from .llc import LLCSettings
    from .report import build_report

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    settings = LLCSettings(lr=args.llc_lr, nbeta=args.llc_nbeta, chains=args.llc_chains,
                           draws=args.llc_draws, burnin=args.llc_burnin,
                           batch_size=args.llc_batch_size)
    build_report(args.sources, args.out, llc_checkpoints=args.llc_checkpoints,
                 llc_settings=settings, batch_size=args.batch_size, prompts=args.prompts,
                 progress=not args.quiet)
    return 0


def add_report_parser(sub) -> None:
    p = sub.add_parser(
        "report", help="one HTML page: onset table, head scores, essential dynamics, LLC and "
                       "the training metrics on one step axis",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Writes OUT/report.html (self-contained), OUT/onsets.csv, OUT/curves.csv and "
               "OUT/timings.csv. Several runs (seeds of one config) give an onset summary over seeds.")
    p.add_argument("sources", nargs="+", metavar="RUN_OR_SERIES",
                   help="a plateau-lens run directory (several: seeds), or one local LLM series "
                        "(step{N} save_pretrained folders, e.g. from examples/pretraining_series.py)")
    p.add_argument("--out", required=True, help="directory for report.html and its tables")
    p.add_argument("--llc-checkpoints", type=_non_negative, default=None,
                   help="checkpoints (evenly spread) that get an LLC estimate; 0 skips the LLC "
                        "(default 20 for runs, 10 for an LLM series)")
    p.add_argument("--llc-lr", type=_positive_float, default=1e-3, help="SGLD step size ε")
    p.add_argument("--llc-nbeta", type=_positive_float, default=None,
                   help="inverse temperature nβ (default m/log m for the SGLD batch size m)")
    p.add_argument("--llc-chains", type=_non_negative, default=2)
    p.add_argument("--llc-draws", type=_non_negative, default=60)
    p.add_argument("--llc-burnin", type=_non_negative, default=20)
    p.add_argument("--llc-batch-size", type=_non_negative, default=64,
                   help="SGLD minibatch m (default 64; at most --batch-size): the LLC's cost per "
                        "step scales with it")
    p.add_argument("--batch-size", type=_non_negative, default=64,
                   help="held-out examples every checkpoint is measured on (default 64)")
    p.add_argument("--prompts", help="LLM series: prompt file (default SERIES/prompts.txt)")
    p.add_argument("--threads", type=_non_negative, default=0,
                   help="torch threads (default 0: torch's own choice). On a shared, loaded "
                        "machine 1 can be several times faster (measured: docs/development.md)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_report)
